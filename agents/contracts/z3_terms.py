"""Symbolic values for the z3 prover: input fields as z3 variables, fallbacks as known or symbolic outputs.

`input_vars` turns an input JSON schema into an InputObject of z3 variables plus the schema's
constraints on them; `template_value` turns a fallback into a value whose templated strings are
z3 string terms. A field or construct the fragment does not model becomes Opaque, and using
it raises OutsideFragment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import z3

from ratchet.agents.contracts.expr import EvalFailure, _field
from ratchet.agents.contracts.fallback import template_parts


class OutsideFragment(Exception):
    """The contract uses something the z3 translation does not model; the message says what."""


# ---- z3: symbolic values -------------------------------------------------------------------------


@dataclass(frozen=True)
class Sym:
    """A value that depends on the input: its static kind and its z3 term."""

    kind: Literal["int", "str", "bool"]
    term: z3.ExprRef


@dataclass(frozen=True)
class Opaque:
    """An input field the fragment does not model; using it leaves the fragment."""

    reason: str


@dataclass(frozen=True)
class InputObject:
    """An input object: only its required, typed fields can be read."""

    path: str
    fields: dict[str, Any]


def lit(text: str) -> z3.SeqRef:
    """A z3 string literal. z3 reads `\\u{..}` escapes in StringVal, so everything but plain ASCII is escaped."""
    if any(ord(c) > 0x2FFFF for c in text):
        raise OutsideFragment("a string literal with characters beyond z3's alphabet (U+2FFFF)")
    return z3.StringVal("".join(c if " " <= c <= "~" and c != "\\" else f"\\u{{{ord(c):x}}}" for c in text))


def symbolic(value: Any) -> bool:
    if isinstance(value, (Sym, InputObject, Opaque)):
        return True
    if isinstance(value, list):
        return any(symbolic(v) for v in value)
    if isinstance(value, dict):
        return any(symbolic(v) for v in value.values())
    return False


def input_vars(schema: Any, path: str, constraints: list[z3.BoolRef]) -> InputObject:
    """z3 variables for the required fields of an object schema, with their schema constraints."""
    if not isinstance(schema, dict) or schema.get("type") != "object":
        raise OutsideFragment(f"{path} is not declared `type: object` in input_schema")
    required = set(schema.get("required", []))
    fields: dict[str, Any] = {}
    for name, sub in schema.get("properties", {}).items():
        where = f"{path}.{name}"
        if name not in required:
            fields[name] = Opaque(f"{where} is not required by input_schema")
            continue
        try:
            fields[name] = input_var(sub, where, constraints)
        except OutsideFragment as exc:
            fields[name] = Opaque(str(exc))
    return InputObject(path, fields)


def input_var(schema: Any, where: str, constraints: list[z3.BoolRef]) -> Any:
    if not isinstance(schema, dict):
        raise OutsideFragment(f"{where} has no schema the prover can read")
    kind = schema.get("type")
    listed = schema.get("enum", [schema["const"]] if "const" in schema else None)
    if kind is None and listed:
        kind = "string" if all(isinstance(v, str) for v in listed) else "integer"
    if kind == "object":
        return input_vars(schema, where, constraints)
    if kind == "boolean":
        return Sym("bool", z3.Bool(where))
    if kind == "string":
        var = z3.String(where)
        constraints += [z3.Length(var) >= schema.get("minLength", 0)]
        if "maxLength" in schema:
            constraints.append(z3.Length(var) <= schema["maxLength"])
        if listed is not None:
            if not all(isinstance(v, str) for v in listed):
                raise OutsideFragment(f"{where}: a string enum/const with non-string values")
            constraints.append(z3.Or([var == lit(v) for v in listed]))
        return Sym("str", var)
    if kind == "integer":
        var = z3.Int(where)
        low, high = int_bounds(schema)
        constraints += [var >= low] if low is not None else []
        constraints += [var <= high] if high is not None else []
        step = schema.get("multipleOf")
        constraints += [var % step == 0] if isinstance(step, int) and not isinstance(step, bool) else []
        if listed is not None:
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in listed):
                raise OutsideFragment(f"{where}: an integer enum/const with non-integer values")
            constraints.append(z3.Or([var == v for v in listed]))
        return Sym("int", var)
    raise OutsideFragment(f"{where} has type {kind!r}; the z3 fragment covers string, integer, boolean, object")


def template_value(value: Any, input: InputObject | Opaque) -> Any:
    """The template fallback as a JSON structure whose placeholder strings are z3 string terms."""
    if isinstance(value, list):
        return [template_value(v, input) for v in value]
    if isinstance(value, dict):
        return {k: template_value(v, input) for k, v in value.items()}
    if not isinstance(value, str) or ("{{" not in value and "{%" not in value):
        return value
    parts = template_parts(value)
    if parts is None:
        raise OutsideFragment(f"template {value!r} uses more than {{{{ input.x }}}} placeholders")
    terms = []
    for part in parts:
        if isinstance(part, str):
            if "\r" in part:
                raise OutsideFragment("template text with \\r (jinja rewrites newlines)")
            terms.append(lit(part))
            continue
        if any(hasattr(dict, key) for key in part):
            raise OutsideFragment(f"placeholder input.{'.'.join(part)} names a dict method in jinja")
        leaf: Any = input
        for key in part:
            leaf = z3_field(leaf, key)
        if not isinstance(leaf, Sym) or leaf.kind == "int":
            raise OutsideFragment(f"placeholder input.{'.'.join(part)} is not a string or boolean")
        terms.append(leaf.term if leaf.kind == "str" else z3.If(leaf.term, lit("True"), lit("False")))
    return Sym("str", z3.Concat(*terms) if len(terms) > 1 else terms[0])


def z3_field(base: Any, key: Any) -> Any:
    if isinstance(key, (Sym, InputObject, Opaque)):
        raise OutsideFragment("an index that depends on the input")
    if isinstance(base, Opaque):
        raise OutsideFragment(base.reason)
    if isinstance(base, InputObject):
        value = base.fields.get(key) if isinstance(key, str) else None
        if value is None:
            raise OutsideFragment(f"{base.path}.{key} is not a property of input_schema")
        if isinstance(value, Opaque):
            raise OutsideFragment(value.reason)
        return value
    if isinstance(base, Sym):
        raise OutsideFragment(f"taking {key!r} of an input {base.kind}")
    try:
        return _field(base, key)
    except EvalFailure as exc:
        raise OutsideFragment(f"cannot be computed on the fallback: {exc}") from exc


def default_value(schema: Any) -> Any:
    """A plain value for a field z3 did not choose; the whole input is validated afterwards."""
    if not isinstance(schema, dict):
        return None
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    kind = kind[0] if isinstance(kind, list) and kind else kind
    if kind == "object":
        return {k: default_value(schema.get("properties", {}).get(k, {})) for k in schema.get("required", [])}
    if kind == "array":
        return [default_value(schema.get("items", {}))] * schema.get("minItems", 0)
    if kind == "string":
        return "a" * schema.get("minLength", 0)
    if kind in ("integer", "number"):
        low, high = int_bounds(schema)
        return low if low is not None else min(0, high) if high is not None else 0
    return False if kind == "boolean" else None


def int_bounds(schema: dict[str, Any]) -> tuple[int | None, int | None]:
    """The least and greatest integers the schema's minimum/maximum keywords allow (None: unbounded)."""

    def num(key: str) -> float | None:
        value = schema.get(key)
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    lows = [math.ceil(v) for v in [num("minimum")] if v is not None]
    lows += [math.floor(v) + 1 for v in [num("exclusiveMinimum")] if v is not None]
    highs = [math.floor(v) for v in [num("maximum")] if v is not None]
    highs += [math.ceil(v) - 1 for v in [num("exclusiveMaximum")] if v is not None]
    return (max(lows) if lows else None), (min(highs) if highs else None)
