"""The contract language, contract checks and guarded calls (scripted model replies through litellm)."""

from __future__ import annotations

import asyncio
import json

import pytest

from ratchet.agents.artifact import ModelParams
from ratchet.agents.contracts.expr import ExprError, parse
from ratchet.agents.contracts.guarded import guarded_call, sample_temperatures
from ratchet.agents.contracts.model import Contract, check
from ratchet.agents.models import ModelClient
from ratchet.agents.providers.scripted import ScriptedProvider, ScriptedReply, register_scripted
from ratchet.agents.trace import Message

LABEL = Contract.model_validate(
    {
        "name": "label",
        "input_schema": {
            "type": "object",
            "properties": {"choices": {"type": "array", "items": {"type": "string"}}, "text": {"type": "string"}},
            "required": ["choices", "text"],
        },
        "output_schema": {
            "type": "object",
            "properties": {"label": {"type": "string"}, "quotes": {"type": "array", "items": {"type": "string"}}},
            "required": ["label", "quotes"],
        },
        "clauses": {
            "allowed": 'output.label in input.choices or output.label == "none"',
            "grounded": "all(q in input.text for q in output.quotes)",
            "short": "len(output.label) <= 12",
        },
        "samples": 3,
        "fallback": {"constant": {"label": "none", "quotes": []}},
    }
)
INPUT = {"choices": ["fix", "keep"], "text": "the run ended with NameError: name 'x' is not defined"}
MESSAGES = [Message(role="user", content="label it")]


@pytest.mark.parametrize(
    "source, value",
    [
        ("output.a + 1 == 3", True),
        ("0 <= output.a <= 2 and not output.flag", True),
        ("all(x > 0 for x in output.xs if x != 0)", True),
        ("any(x > 5 for x in output.xs)", False),
        ('matches(output.s, "[a-z]+-[0-9]+")', True),
        ('startswith(output.s, "ab") and endswith(output.s, "12")', True),
        ('lower("ABC") == "abc" and "b-1" in output.s', True),
        ("implies(output.flag, output.a > 100)", True),
        ("output.xs[0] == 1 and output['a'] == 2 and len(output.xs) == 3", True),
        ("is_int(output.a) and is_string(output.s) and is_list(output.xs) and not is_int(true)", True),
        ("output.flag == false and output.missing == none", False),
    ],
)
def test_clauses_evaluate(source: str, value: bool) -> None:
    output = {"a": 2, "flag": False, "xs": [1, 0, 3], "s": "ab-12"}
    assert parse(source).evaluate({}, output)[0] is value


@pytest.mark.parametrize(
    "source, complaint",
    [
        ("__import__('os').system('x')", "only the listed functions"),
        ("output.__class__", "names starting with _"),
        ("open('/etc/passwd')", "unknown function"),
        ("lambda: 1", "Lambda is not part"),
        ("[x for x in output.xs]", "ListComp is not part"),
        ("output.a ** 2", r"only \+, - and \*"),
        ("os.path", "unknown name 'os'"),
        ("output.xs[1:]", "slices are not allowed"),
        ("matches(output.s, output.s)", "must be a string literal"),
        ('matches(output.s, "(")', "bad regex"),
        ("all(x for x in output.xs for y in output.xs)", "exactly one `for`"),
        ("output.a ==", "not an expression"),
    ],
)
def test_anything_outside_the_language_is_refused_at_load(source: str, complaint: str) -> None:
    with pytest.raises(ExprError, match=complaint):
        parse(source)


def test_type_errors_fail_the_clause_instead_of_raising() -> None:
    holds, why = parse("len(output.a) > 1").evaluate({}, {"a": 5})
    assert not holds and "len() of a number" in why
    holds, why = parse("output.a < 3").evaluate({}, {"a": "text"})
    assert not holds and "cannot order" in why
    holds, why = parse("output.items[3] == 1").evaluate({}, {"items": [1]})
    assert not holds and "out of range" in why


def test_check_reports_the_schema_first_then_each_broken_clause() -> None:
    assert check(LABEL, INPUT, {"label": "fix", "quotes": ["NameError: name 'x'"]}) == []
    schema = check(LABEL, INPUT, {"label": 3})
    assert [f.clause for f in schema] == ["schema"]
    broken = check(LABEL, INPUT, {"label": "something-long-and-new", "quotes": ["not in the text"]})
    assert [f.clause for f in broken] == ["allowed", "grounded", "short"]


def test_a_contract_with_a_bad_clause_or_schema_does_not_load() -> None:
    base = LABEL.model_dump()
    with pytest.raises(ValueError, match="clause 'bad'.*unknown function"):
        Contract.model_validate({**base, "clauses": {"bad": "eval('1')"}})
    with pytest.raises(ValueError, match="not a valid JSON schema"):
        Contract.model_validate({**base, "output_schema": {"type": "no-such-type"}})
    with pytest.raises(ValueError, match="exactly one of"):
        Contract.model_validate({**base, "fallback": {}})


def scripted_client(name: str, replies: list[str]) -> tuple[ModelClient, ScriptedProvider]:
    provider = ScriptedProvider([ScriptedReply(content=r) for r in replies])
    return ModelClient(register_scripted(name, provider), ModelParams(temperature=0.2)), provider


def test_the_first_valid_sample_is_returned() -> None:
    good = json.dumps({"label": "keep", "quotes": ["NameError"]})
    client, provider = scripted_client("guard-first", ["not json", good, good])
    result = asyncio.run(guarded_call(client, MESSAGES, LABEL, INPUT))
    assert result.value == {"label": "keep", "quotes": ["NameError"]}
    record = result.record
    assert record.source == "sample" and not record.fallback_used and len(record.samples) == 2
    assert record.samples[0].failures[0].clause == "schema" and record.samples[1].accepted
    assert [s.temperature for s in record.samples] == [0.2, 0.5]
    assert len(provider.requests) == 2


def test_k_invalid_samples_give_the_fallback_and_say_why() -> None:
    ungrounded = json.dumps({"label": "fix", "quotes": ["an invented quote"]})
    unknown = json.dumps({"label": "rewrite", "quotes": []})
    client, provider = scripted_client("guard-fallback", [ungrounded, unknown, "{}"])
    result = asyncio.run(guarded_call(client, MESSAGES, LABEL, INPUT))
    assert result.value == {"label": "none", "quotes": []}
    assert check(LABEL, INPUT, result.value) == []
    record = result.record
    assert record.source == "fallback" and len(record.samples) == 3 == len(provider.requests)
    assert [[f.clause for f in s.failures] for s in record.samples] == [["grounded"], ["allowed"], ["schema"]]


def test_a_computed_fallback_is_used_only_when_it_satisfies_the_contract() -> None:
    client, _ = scripted_client("guard-computed", ["nope"])
    good = asyncio.run(
        guarded_call(
            client,
            MESSAGES,
            LABEL,
            INPUT,
            samples=1,
            computed_fallback=lambda: {"label": "fix", "quotes": ["NameError"]},
        )
    )
    assert good.record.source == "computed_fallback" and good.value["label"] == "fix"
    client, _ = scripted_client("guard-computed-bad", ["nope"])
    bad = asyncio.run(
        guarded_call(
            client, MESSAGES, LABEL, INPUT, samples=1, computed_fallback=lambda: {"label": "fix", "quotes": ["made up"]}
        )
    )
    assert bad.record.source == "fallback" and bad.value == {"label": "none", "quotes": []}
    assert bad.record.computed_fallback_failures[0].clause == "grounded"


def test_a_backend_that_is_down_gets_the_fallback_not_a_crash() -> None:
    from ratchet.agents.model_config import ModelConfig

    client = ModelClient(
        ModelConfig(model="hosted_vllm/tiny", api_base="http://127.0.0.1:9/v1", retries=0), ModelParams(timeout_s=2)
    )

    async def call_and_close():
        try:
            return await guarded_call(client, MESSAGES, LABEL, INPUT, samples=2)
        finally:
            await client.aclose()

    result = asyncio.run(call_and_close())
    assert result.value == {"label": "none", "quotes": []}
    assert all(s.backend_error for s in result.record.samples)


def test_sample_temperatures_rise_and_stay_bounded() -> None:
    assert sample_temperatures(0.0, 4) == [0.0, 0.3, 0.6, 0.9]
    assert max(sample_temperatures(1.0, 5)) == 1.2
