"""Verified fallbacks: z3 proofs and refutations, the hypothesis path, and honest counterexamples."""

from __future__ import annotations

from typing import Any

import pytest
import z3

from ratchet.agents.contracts import z3_proof
from ratchet.agents.contracts.fallback import render_fallback
from ratchet.agents.contracts.model import Contract, check
from ratchet.agents.contracts.prove import FallbackProof, describe, prove_fallback

TASK_INPUT = {"type": "object", "properties": {"task": {"type": "string"}}, "required": ["task"]}


def contract(
    clauses: dict[str, str],
    fallback: dict[str, Any],
    *,
    input_schema: dict[str, Any] | None = None,
    output_schema: dict[str, Any] | None = None,
) -> Contract:
    return Contract.model_validate(
        {
            "name": "probe",
            "input_schema": input_schema or TASK_INPUT,
            "output_schema": output_schema or {"type": "object"},
            "clauses": clauses,
            "fallback": fallback,
        }
    )


def assert_really_breaks(c: Contract, proof: FallbackProof) -> None:
    """A refutation is only worth reporting if `check` agrees on the counterexample."""
    assert proof.status == "refuted"
    failures = check(c, proof.counterexample, render_fallback(c.fallback, proof.counterexample))
    assert proof.clause in [f.clause for f in failures]


def ints(**props: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {k: {"type": "integer", **v} for k, v in props.items()},
        "required": list(props),
    }


# ---- z3: proven -------------------------------------------------------------------------------------


def test_constant_fallback_is_proven() -> None:
    c = contract(
        {"allowed": 'output.label in ["keep", "none"]', "short": "len(output.label) <= 10"},
        {"constant": {"label": "none"}},
        output_schema={"type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"]},
    )
    proof = prove_fallback(c)
    assert (proof.status, proof.method) == ("proven", "z3")
    assert describe(proof) == "contract 'probe': fallback proven for every input (z3)"


def test_template_fallback_is_proven() -> None:
    c = contract(
        {
            "prefixed": 'startswith(output.echo, "id-")',
            "echoes": "input.task in output.echo",
            "longer": "len(output.echo) == len(input.task) + 3",
        },
        {"template": {"echo": "id-{{ input.task }}"}},
        output_schema={"type": "object", "properties": {"echo": {"type": "string", "minLength": 3}}},
    )
    assert prove_fallback(c).status == "proven"


def test_membership_over_an_input_enum_is_proven() -> None:
    schema = {
        "type": "object",
        "properties": {"mode": {"enum": ["fast", "slow"]}, "flag": {"type": "boolean"}},
        "required": ["mode", "flag"],
    }
    c = contract(
        {
            "known": 'output.mode in ["fast", "slow", "off"]',
            "flag": 'implies(input.flag, output.mode != "") and output.flag in ["True", "False"]',
            "each": 'all(startswith(v, output.mode) for v in [output.mode, output.mode + "!"])',
        },
        {"template": {"mode": "{{ input.mode }}", "flag": "{{ input.flag }}"}},
        input_schema=schema,
    )
    assert prove_fallback(c).status == "proven"


def test_quantifier_over_a_constant_list_is_proven() -> None:
    c = contract(
        {"small": "all(v < input.k for v in output.scores if v > 0)", "some": "any(v == 0 for v in output.scores)"},
        {"constant": {"scores": [0, 1, 2, -5]}},
        input_schema=ints(k={"minimum": 3}),
    )
    assert prove_fallback(c).status == "proven"


def test_linear_arithmetic_is_proven_under_schema_bounds() -> None:
    c = contract(
        {"fits": "output.n + input.a <= input.b", "scaled": "2 * input.a - output.n < input.b * 3"},
        {"constant": {"n": 5}},
        input_schema=ints(a={"maximum": 10}, b={"exclusiveMinimum": 14}),
    )
    assert prove_fallback(c).status == "proven"


def test_templated_string_meets_the_output_schema() -> None:
    schema = {"type": "object", "properties": {"mode": {"type": "string", "enum": ["a", "b"]}}, "required": ["mode"]}
    c = contract(
        {},
        {"template": {"mode": "{{ input.mode }}"}},
        input_schema={
            "type": "object",
            "properties": {"mode": {"type": "string", "enum": ["a", "b"]}},
            "required": ["mode"],
        },
        output_schema=schema,
    )
    assert prove_fallback(c).status == "proven"


# ---- z3: refuted ------------------------------------------------------------------------------------


def test_wrong_constant_is_refuted_with_a_real_counterexample() -> None:
    c = contract({"enough": "output.n >= input.k"}, {"constant": {"n": 5}}, input_schema=ints(k={"maximum": 100}))
    proof = prove_fallback(c)
    assert (proof.status, proof.method, proof.clause) == ("refuted", "z3", "enough")
    assert 5 < proof.counterexample["k"] <= 100
    assert_really_breaks(c, proof)
    assert describe(proof).startswith("contract 'probe': fallback breaks clause 'enough' for input {\"k\": ")


def test_template_is_refuted_by_length() -> None:
    c = contract({"short": "len(output.echo) <= 20"}, {"template": {"echo": "id-{{ input.task }}"}})
    proof = prove_fallback(c)
    assert (proof.status, proof.method, proof.clause) == ("refuted", "z3", "short")
    assert len(proof.counterexample["task"]) > 17
    assert_really_breaks(c, proof)
    assert describe(proof).endswith("(z3 counterexample)")


def test_linear_arithmetic_is_refuted_when_the_bounds_allow_it() -> None:
    c = contract(
        {"fits": "output.n + input.a <= input.b"},
        {"constant": {"n": 5}},
        input_schema=ints(a={"maximum": 10}, b={"minimum": 0}),
    )
    proof = prove_fallback(c)
    assert (proof.status, proof.method) == ("refuted", "z3")
    assert 5 + proof.counterexample["a"] > proof.counterexample["b"] >= 0
    assert_really_breaks(c, proof)


def test_input_enum_outside_the_allowed_labels_is_refuted() -> None:
    schema = {
        "type": "object",
        "properties": {"mode": {"type": "string", "enum": ["fast", "slow", "odd"]}},
        "required": ["mode"],
    }
    c = contract(
        {"known": 'output.mode not in ["odd"]'}, {"template": {"mode": "{{ input.mode }}"}}, input_schema=schema
    )
    proof = prove_fallback(c)
    assert (proof.method, proof.counterexample) == ("z3", {"mode": "odd"})
    assert_really_breaks(c, proof)


def test_constant_violating_the_output_schema_is_refuted() -> None:
    c = contract(
        {},
        {"constant": {"label": 3}},
        output_schema={"type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"]},
    )
    proof = prove_fallback(c)
    assert (proof.status, proof.clause) == ("refuted", "schema")
    assert_really_breaks(c, proof)


def test_templated_string_can_break_the_output_schema() -> None:
    c = contract(
        {},
        {"template": {"echo": "{{ input.task }}"}},
        output_schema={"type": "object", "properties": {"echo": {"type": "string", "minLength": 1}}},
    )
    proof = prove_fallback(c)
    assert (proof.method, proof.clause, proof.counterexample) == ("z3", "schema", {"task": ""})
    assert_really_breaks(c, proof)


# ---- hypothesis ---------------------------------------------------------------------------------------


def test_regex_clause_goes_to_hypothesis_and_is_tested() -> None:
    c = contract({"slug": 'matches(output.echo, "(?s)id-.*")'}, {"template": {"echo": "id-{{ input.task }}"}})
    proof = prove_fallback(c, examples=50)
    assert (proof.status, proof.method) == ("tested", "hypothesis")
    assert 0 < proof.examples <= 50
    assert "matches()" in proof.detail
    assert "tested on" in describe(proof) and "not proven" in describe(proof)


def test_wrong_regex_clause_is_refuted_by_hypothesis() -> None:
    c = contract({"digits": 'matches(output.echo, "id-[0-9]*")'}, {"template": {"echo": "id-{{ input.task }}"}})
    proof = prove_fallback(c)
    assert (proof.status, proof.method, proof.clause) == ("refuted", "hypothesis", "digits")
    assert_really_breaks(c, proof)


def test_hypothesis_covers_numbers_arrays_and_nulls() -> None:
    schema = {
        "type": "object",
        "required": ["xs", "r", "z"],
        "properties": {
            "xs": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
            "r": {"type": "number", "minimum": 0, "maximum": 1},
            "z": {"type": "null"},
        },
    }
    ok = contract(
        {"in_range": "0 <= input.r <= 1", "few": "len(input.xs) <= 3"}, {"constant": {"n": 1}}, input_schema=schema
    )
    assert prove_fallback(ok).status == "tested"
    wrong = contract({"empty": "len(input.xs) == 0"}, {"constant": {"n": 1}}, input_schema=schema)
    proof = prove_fallback(wrong)
    assert (proof.status, proof.method, len(proof.counterexample["xs"])) == ("refuted", "hypothesis", 1)
    assert_really_breaks(wrong, proof)


def test_a_missing_template_field_counts_as_a_failure() -> None:
    schema = {"type": "object", "properties": {"task": {"type": "string"}}}
    c = contract({}, {"template": {"echo": "{{ input.task }}"}}, input_schema=schema)
    proof = prove_fallback(c)
    assert (proof.status, proof.method, proof.clause, proof.counterexample) == ("refuted", "hypothesis", "template", {})


@pytest.mark.parametrize("clause", ["is_int(input.k)", "input.k * input.k >= 0", "lower(output.s) == output.s"])
def test_outside_the_fragment_never_claims_a_proof(clause: str) -> None:
    c = contract(
        {"c": clause},
        {"template": {"s": "x{{ input.s }}"}},
        input_schema={
            "type": "object",
            "properties": {"k": {"type": "integer"}, "s": {"type": "string"}},
            "required": ["k", "s"],
        },
    )
    proof = prove_fallback(c, examples=30)
    assert proof.method == "hypothesis"
    assert proof.detail


def test_z3_escape_sequences_in_literals_are_plain_text() -> None:
    """z3 reads `\\u{41}` in a string value as "A"; the prover must not let that prove a false clause."""
    c = contract({"starts": 'startswith(output.echo, "A")'}, {"template": {"echo": "\\u{41}é{{ input.task }}"}})
    proof = prove_fallback(c)
    assert (proof.status, proof.method) == ("refuted", "z3")
    assert_really_breaks(c, proof)
    exact = contract(
        {"exact": 'output.echo == "\\\\u{41}é" + input.task and len(output.echo) >= 7'},
        {"template": {"echo": "\\u{41}é{{ input.task }}"}},
    )
    assert prove_fallback(exact).status == "proven"


def test_counterexample_strings_come_back_exactly() -> None:
    c = contract({"no_nul": 'not ("\\x00\\\\" in output.echo)'}, {"template": {"echo": "{{ input.task }}"}})
    proof = prove_fallback(c)
    assert (proof.method, proof.status) == ("z3", "refuted")
    assert "\x00\\" in proof.counterexample["task"]
    assert_really_breaks(c, proof)


def test_counterexample_outside_the_input_schema_is_not_reported_by_z3() -> None:
    """`pattern` is not modelled in z3: its candidate input is invalid, so hypothesis finds a real one."""
    schema = {
        "type": "object",
        "required": ["k", "code"],
        "properties": {"k": {"type": "integer", "minimum": 0}, "code": {"type": "string", "pattern": "^b+$"}},
    }
    c = contract({"enough": "output.n >= input.k"}, {"constant": {"n": 1}}, input_schema=schema)
    proof = prove_fallback(c)
    assert (proof.status, proof.method) == ("refuted", "hypothesis")
    assert "does not match input_schema" in proof.detail
    assert proof.counterexample["k"] == 2 and proof.counterexample["code"].startswith("b")
    assert_really_breaks(c, proof)


def test_a_translation_gap_is_never_reported_as_a_refutation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(z3_proof._Translator, "compare", lambda self, op, a, b: z3.BoolVal(False))
    c = contract({"short": "len(output.echo) >= 3"}, {"template": {"echo": "id-{{ input.task }}"}})
    proof = prove_fallback(c, examples=20)
    assert (proof.status, proof.method) == ("tested", "hypothesis")
    assert "does not break it" in proof.detail
