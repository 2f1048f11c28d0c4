"""The hypothesis half of the prover: a fallback outside the z3 fragment, tested on generated inputs.

Inputs are generated from `input_schema` by a small strategy builder and kept only when they
match it; the run is deterministic (derandomized, no example database). A failure, shrunk,
refutes the fallback; otherwise it is "tested, not proven".
"""

from __future__ import annotations

from typing import Any

import jsonschema
from hypothesis import HealthCheck, Phase, find, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument, NoSuchExample, Unsatisfiable

from ratchet.agents.contracts.fallback import fallback_failures
from ratchet.agents.contracts.model import Contract, FallbackProof
from ratchet.agents.contracts.z3_terms import int_bounds


def check_with_hypothesis(contract: Contract, examples: int, why: str) -> FallbackProof:
    """Inputs generated from input_schema (and kept only if valid); the first failure, shrunk, refutes."""
    notes: list[str] = []
    validator = jsonschema.Draft202012Validator(contract.input_schema)
    strategy = _strategy(contract.input_schema, notes).filter(validator.is_valid)
    tried, found_at = 0, 0

    def breaks(input: Any) -> bool:
        nonlocal tried, found_at
        tried += 1
        failed = bool(fallback_failures(contract, input))
        found_at = found_at or (tried if failed else 0)
        return failed

    config = settings(
        max_examples=examples,
        database=None,
        derandomize=True,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.generate, Phase.shrink],
    )
    detail = "; ".join([why, *notes])
    try:
        counterexample = find(strategy, breaks, settings=config)
    except (NoSuchExample, Unsatisfiable, InvalidArgument) as exc:
        if not isinstance(exc, NoSuchExample):
            detail += f"; could not generate more inputs from input_schema ({type(exc).__name__})"
        return FallbackProof(
            contract=contract.name, status="tested", method="hypothesis", examples=tried, detail=detail
        )
    failure = fallback_failures(contract, counterexample)[0]
    return FallbackProof(
        contract=contract.name,
        status="refuted",
        method="hypothesis",
        clause=failure.clause,
        counterexample=counterexample,
        examples=found_at,
        detail=f"{failure.reason} ({detail})",
    )


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


def _strategy(schema: Any, notes: list[str]) -> st.SearchStrategy[Any]:
    """Values for a JSON schema; what it cannot shape becomes any JSON value (and is noted)."""
    if not isinstance(schema, dict) or not schema.get("type") and not {"enum", "const"} & set(schema):
        return _JSON
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema["type"]
    if isinstance(kind, list):
        return st.one_of([_strategy({**schema, "type": k}, notes) for k in kind])
    if kind == "object":
        props, required = schema.get("properties", {}), set(schema.get("required", []))
        return st.fixed_dictionaries(
            {k: _strategy(props.get(k, {}), notes) for k in required},
            optional={k: _strategy(v, notes) for k, v in props.items() if k not in required},
        )
    if kind == "array":
        return st.lists(
            _strategy(schema.get("items", {}), notes),
            min_size=schema.get("minItems", 0),
            max_size=schema.get("maxItems", max(schema.get("minItems", 0), 5)),
        )
    if kind == "string":
        low, high = schema.get("minLength", 0), schema.get("maxLength")
        if "pattern" in schema:  # lengths are left to the validity filter
            return st.from_regex(schema["pattern"])
        return st.text(min_size=low, max_size=high)
    if kind == "integer":
        low, high = int_bounds(schema)
        return st.integers(min_value=low, max_value=high)
    if kind == "number":
        return st.floats(
            min_value=schema.get("minimum"), max_value=schema.get("maximum"), allow_nan=False, allow_infinity=False
        ) | st.integers(*int_bounds(schema))
    if kind in ("boolean", "null"):
        return st.booleans() if kind == "boolean" else st.none()
    notes.append(f"input type {kind!r} generated as any JSON value")
    return _JSON
