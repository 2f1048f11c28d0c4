"""Verified fallbacks: prove at load time that a contract's fallback satisfies it for every input.

A guarded call returns its fallback when no model sample satisfies the contract, so the
fallback must satisfy the contract itself, for every input that matches `input_schema`.

    z3          when the contract is in a decidable fragment (typed input fields: strings,
                integers, booleans; a constant fallback or a template of literal text and
                `{{ input.x }}` placeholders; clauses over equality, integer order and linear
                arithmetic, finite membership, substrings, len, prefixes and suffixes, and
                quantifiers over statically known lists), each clause is proven for all
                inputs or refuted by a counterexample that is re-checked with `check`.
    hypothesis  otherwise: inputs generated from `input_schema`, so the fallback is tested,
                not proven, or refuted by a shrunk counterexample.

Soundness comes first: anything the translation is unsure of leaves the fragment, input schema
keywords it does not model only make it prove more than needed, and a z3 counterexample that
does not really break the contract (or does not match the input schema) is never reported.
"""

from __future__ import annotations

import ast
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Literal

import jsonschema
import z3
from hypothesis import HealthCheck, Phase, find, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument, NoSuchExample, Unsatisfiable

# The interpreter's own helpers, so constant parts are computed exactly as `check` computes them.
from agents.contracts.expr import _CONSTANT_NAMES, EvalFailure, _arith, _compare, _equal, _field, _Interpreter
from agents.contracts.fallback import FallbackRenderError, render_fallback, template_parts
from agents.contracts.model import SCHEMA_CLAUSE, ClauseFailure, Contract, FallbackProof, check

TIMEOUT_MS = 2000
_LEAF_KEYS = {"type", "enum", "const", "minLength", "maxLength", "format", "title", "description", "default",
              "examples", "$comment"}
_PATH_KEYS = {"type", "properties", "required", "additionalProperties", "items", "minItems", "maxItems",
              "minProperties", "maxProperties", "title", "description", "default", "examples", "$comment",
              "$schema", "$id"}


class OutsideFragment(Exception):
    """The contract uses something the z3 translation does not model; the message says what."""


def prove_fallback(contract: Contract, examples: int = 200) -> FallbackProof:
    """Prove the fallback with z3 when the contract is in the fragment, else test it with hypothesis."""
    try:
        return _prove_z3(contract)
    except OutsideFragment as exc:
        return _test_hypothesis(contract, examples, str(exc))


def describe(proof: FallbackProof) -> str:
    """One line for users."""
    head = f"contract {proof.contract!r}: fallback"
    if proof.status == "proven":
        return f"{head} proven for every input (z3)"
    if proof.status == "tested":
        return f"{head} tested on {proof.examples} inputs, not proven (hypothesis: {proof.detail})"
    shown = json.dumps(proof.counterexample, ensure_ascii=False)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return f"{head} breaks clause {proof.clause!r} for input {shown} ({proof.method} counterexample)"


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


def _lit(text: str) -> z3.SeqRef:
    """A z3 string literal. z3 reads `\\u{..}` escapes in StringVal, so everything but plain ASCII is escaped."""
    if any(ord(c) > 0x2FFFF for c in text):
        raise OutsideFragment("a string literal with characters beyond z3's alphabet (U+2FFFF)")
    return z3.StringVal("".join(c if " " <= c <= "~" and c != "\\" else f"\\u{{{ord(c):x}}}" for c in text))


def _symbolic(value: Any) -> bool:
    if isinstance(value, (Sym, InputObject, Opaque)):
        return True
    if isinstance(value, list):
        return any(_symbolic(v) for v in value)
    if isinstance(value, dict):
        return any(_symbolic(v) for v in value.values())
    return False


def _input_vars(schema: Any, path: str, constraints: list[z3.BoolRef]) -> InputObject:
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
            fields[name] = _input_var(sub, where, constraints)
        except OutsideFragment as exc:
            fields[name] = Opaque(str(exc))
    return InputObject(path, fields)


def _input_var(schema: Any, where: str, constraints: list[z3.BoolRef]) -> Any:
    if not isinstance(schema, dict):
        raise OutsideFragment(f"{where} has no schema the prover can read")
    kind = schema.get("type")
    listed = schema.get("enum", [schema["const"]] if "const" in schema else None)
    if kind is None and listed:
        kind = "string" if all(isinstance(v, str) for v in listed) else "integer"
    if kind == "object":
        return _input_vars(schema, where, constraints)
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
            constraints.append(z3.Or([var == _lit(v) for v in listed]))
        return Sym("str", var)
    if kind == "integer":
        var = z3.Int(where)
        low, high = _int_bounds(schema)
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


def _template_value(value: Any, input: InputObject | Opaque) -> Any:
    """The template fallback as a JSON structure whose placeholder strings are z3 string terms."""
    if isinstance(value, list):
        return [_template_value(v, input) for v in value]
    if isinstance(value, dict):
        return {k: _template_value(v, input) for k, v in value.items()}
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
            terms.append(_lit(part))
            continue
        if any(hasattr(dict, key) for key in part):
            raise OutsideFragment(f"placeholder input.{'.'.join(part)} names a dict method in jinja")
        leaf: Any = input
        for key in part:
            leaf = _z3_field(leaf, key)
        if not isinstance(leaf, Sym) or leaf.kind == "int":
            raise OutsideFragment(f"placeholder input.{'.'.join(part)} is not a string or boolean")
        terms.append(leaf.term if leaf.kind == "str" else z3.If(leaf.term, _lit("True"),
                                                                   _lit("False")))
    return Sym("str", z3.Concat(*terms) if len(terms) > 1 else terms[0])


def _z3_field(base: Any, key: Any) -> Any:
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


# ---- z3: clauses ---------------------------------------------------------------------------------

def _b(value: Any, where: str) -> z3.BoolRef:
    if isinstance(value, bool):
        return z3.BoolVal(value)
    if isinstance(value, z3.BoolRef):  # from _eq
        return value
    if isinstance(value, Sym) and value.kind == "bool":
        return value.term
    raise OutsideFragment(f"{where} needs true or false")


def _typed(value: Any, kind: str, where: str) -> z3.ExprRef:
    if isinstance(value, Sym) and value.kind == kind:
        return value.term
    if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
        return z3.IntVal(value)
    if kind == "str" and isinstance(value, str):
        return _lit(value)
    if kind == "bool" and isinstance(value, bool):
        return z3.BoolVal(value)
    raise OutsideFragment(f"{where} needs {'an integer' if kind == 'int' else 'a string'} the prover can type")


def _kind_of(value: Any) -> str | None:
    return value.kind if isinstance(value, Sym) else {bool: "bool", str: "str", int: "int"}.get(type(value))


def _eq(a: Any, b: Any) -> Any:
    """JSON equality (as in expr._equal) on values that may hold z3 terms: a Python or z3 bool."""
    if not _symbolic(a) and not _symbolic(b):
        return _equal(a, b)
    if isinstance(a, (InputObject, Opaque)) or isinstance(b, (InputObject, Opaque)):
        raise OutsideFragment("comparing a whole input object")
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and z3.And([_b(_eq(x, y), "==") for x, y in zip(a, b)])
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and z3.And([_b(_eq(a[k], b[k]), "==") for k in a])
    if not isinstance(a, Sym) and not isinstance(b, Sym):
        return False  # a list and an object, or a container and a scalar
    if isinstance(b, Sym):
        a, b = b, a
    if isinstance(b, float) and b.is_integer() and a.kind == "int":
        b = int(b)
    if _kind_of(b) != a.kind:
        return False
    return a.term == (b.term if isinstance(b, Sym) else _typed(b, a.kind, "=="))


class _Translator:
    """Turns a clause tree into a z3 boolean over the input variables; OutsideFragment if it cannot."""

    def run(self, node: ast.expr, env: dict[str, Any]) -> Any:  # noqa: C901 - one case per node type
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return env[node.id] if node.id in env else _CONSTANT_NAMES[node.id]
        if isinstance(node, ast.Attribute):
            return _z3_field(self.run(node.value, env), node.attr)
        if isinstance(node, ast.Subscript):
            return _z3_field(self.run(node.value, env), self.run(node.slice, env))
        if isinstance(node, (ast.List, ast.Tuple)):
            return [self.run(item, env) for item in node.elts]
        if isinstance(node, ast.BoolOp):
            values = [_b(self.run(v, env), "and/or") for v in node.values]
            return Sym("bool", z3.And(values) if isinstance(node.op, ast.And) else z3.Or(values))
        if isinstance(node, ast.UnaryOp):
            value = self.run(node.operand, env)
            if isinstance(node.op, ast.Not):
                return Sym("bool", z3.Not(_b(value, "not")))
            if _symbolic(value):
                return Sym("int", -_typed(value, "int", "unary -"))
            return self.arith(ast.Sub(), 0, value)
        if isinstance(node, ast.BinOp):
            return self.arith(node.op, self.run(node.left, env), self.run(node.right, env))
        if isinstance(node, ast.Compare):
            left, parts = self.run(node.left, env), []
            for op, right_node in zip(node.ops, node.comparators, strict=True):
                right = self.run(right_node, env)
                parts.append(_b(self.compare(op, left, right), "compare"))
                left = right
            return Sym("bool", z3.And(parts))
        if isinstance(node, ast.Call):
            return self.call(node, env)
        raise OutsideFragment(f"{type(node).__name__} is outside the z3 fragment")

    def arith(self, op: ast.operator, a: Any, b: Any) -> Any:
        if not _symbolic(a) and not _symbolic(b):
            try:
                return _arith(op, a, b)
            except EvalFailure as exc:
                raise OutsideFragment(f"cannot be computed on the fallback: {exc}") from exc
        if isinstance(op, ast.Add) and "str" in (_kind_of(a), _kind_of(b)):
            return Sym("str", z3.Concat(_typed(a, "str", "+"), _typed(b, "str", "+")))
        x, y = _typed(a, "int", "arithmetic"), _typed(b, "int", "arithmetic")
        if isinstance(op, ast.Mult) and _symbolic(a) and _symbolic(b):
            raise OutsideFragment("multiplying two input values (not linear)")
        return Sym("int", x + y if isinstance(op, ast.Add) else x - y if isinstance(op, ast.Sub) else x * y)

    def compare(self, op: ast.cmpop, a: Any, b: Any) -> Any:
        if not _symbolic(a) and not _symbolic(b):
            try:
                return _compare(op, a, b)
            except EvalFailure as exc:
                raise OutsideFragment(f"cannot be computed on the fallback: {exc}") from exc
        if isinstance(op, (ast.Eq, ast.NotEq)):
            same = _b(_eq(a, b), "==")
            return Sym("bool", same if isinstance(op, ast.Eq) else z3.Not(same))
        if isinstance(op, (ast.In, ast.NotIn)):
            if isinstance(b, list):
                found = z3.Or([_b(_eq(a, item), "in") for item in b])
            elif _kind_of(b) == "str":
                found = z3.Contains(_typed(b, "str", "in"), _typed(a, "str", "in"))
            elif isinstance(b, dict):
                found = z3.Or([_b(_eq(a, key), "in") for key in b]) if _kind_of(a) == "str" else z3.BoolVal(False)
            else:
                raise OutsideFragment("`in` over a value the prover cannot enumerate")
            return Sym("bool", found if isinstance(op, ast.In) else z3.Not(found))
        x, y = _typed(a, "int", "ordering"), _typed(b, "int", "ordering")
        table = {ast.Lt: x < y, ast.LtE: x <= y, ast.Gt: x > y, ast.GtE: x >= y}
        return Sym("bool", table[type(op)])

    def call(self, node: ast.Call, env: dict[str, Any]) -> Any:  # noqa: C901 - one case per function
        name = node.func.id  # type: ignore[attr-defined]
        if name in ("all", "any"):
            return self.quantifier(name, node.args[0], env)  # type: ignore[arg-type]
        args = [self.run(arg, env) for arg in node.args]
        if name == "implies":
            return Sym("bool", z3.Implies(_b(args[0], "implies"), _b(args[1], "implies")))
        if name in ("matches", "lower"):
            if _symbolic(args):
                raise OutsideFragment(f"{name}() on an input-dependent value is outside the z3 fragment")
            return self.concrete_call(name, args)
        if name in ("startswith", "endswith"):
            text, affix = _typed(args[0], "str", name), _typed(args[1], "str", name)
            return Sym("bool", z3.PrefixOf(affix, text) if name == "startswith" else z3.SuffixOf(affix, text))
        value = args[0]
        if name == "len" and isinstance(value, Sym) and value.kind == "str":
            return Sym("int", z3.Length(value.term))
        if isinstance(value, (InputObject, Opaque)) or (name == "len" and isinstance(value, Sym)):
            raise OutsideFragment(f"{name}() of an input value the prover does not model")
        if name == "len":
            return len(value) if isinstance(value, (str, list, dict)) else self.concrete_call(name, args)
        if isinstance(value, Sym):
            if name == "is_int" and value.kind == "int":
                raise OutsideFragment("is_int() of an input integer (JSON schema `integer` also admits 1.0)")
            return value.kind == {"is_string": "str", "is_int": "int", "is_list": "list"}[name]
        return self.concrete_call(name, args)

    def concrete_call(self, name: str, args: list[Any]) -> Any:
        """A call on constant values, computed by the real interpreter so the semantics are identical."""
        regexes = {args[1]: re.compile(args[1])} if name == "matches" and isinstance(args[1], str) else {}
        call = ast.Call(func=ast.Name(id=name), args=[ast.Constant(value=a) for a in args], keywords=[])
        try:
            return _Interpreter(regexes).call(call, {})
        except EvalFailure as exc:
            raise OutsideFragment(f"{name}() cannot be computed on the fallback: {exc}") from exc

    def quantifier(self, name: str, gen: ast.GeneratorExp, env: dict[str, Any]) -> Any:
        loop = gen.generators[0]
        items = self.run(loop.iter, env)
        if not isinstance(items, list):
            raise OutsideFragment(f"{name}() over a list that is not statically known")
        terms = []
        for item in items:
            inner = {**env, loop.target.id: item}  # type: ignore[union-attr]
            guard = z3.And([_b(self.run(c, inner), "if") for c in loop.ifs])
            body = _b(self.run(gen.elt, inner), name)
            terms.append(z3.Implies(guard, body) if name == "all" else z3.And(guard, body))
        return Sym("bool", z3.And(terms) if name == "all" else z3.Or(terms))


# ---- z3: the output schema and the driver ---------------------------------------------------------

def _skeleton(value: Any, leaves: list[tuple[tuple[Any, ...], Sym]], path: tuple[Any, ...] = ()) -> Any:
    """The output with each templated string replaced by "", collecting (path, term) of those strings."""
    if isinstance(value, Sym):
        leaves.append((path, value))
        return ""
    if isinstance(value, list):
        return [_skeleton(v, leaves, (*path, i)) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _skeleton(v, leaves, (*path, k)) for k, v in value.items()}
    return value


def _schema_goal(schema: dict[str, Any], output: Any) -> z3.BoolRef:
    """The output schema on a template fallback: the fixed structure checked now, templated strings in z3.

    Errors located at a templated string come from the schema of that string alone (the keywords on
    the way down are whitelisted), so they are left to `_leaf_goal`; any other error holds for every input.
    """
    leaves: list[tuple[tuple[Any, ...], Sym]] = []
    skeleton = _skeleton(output, leaves)
    paths = {path for path, _ in leaves}
    errors = [e for e in jsonschema.Draft202012Validator(schema).iter_errors(skeleton)
              if tuple(e.absolute_path) not in paths]
    if errors:
        return z3.BoolVal(False)
    return z3.And([_leaf_goal(schema, path, leaf.term) for path, leaf in leaves])


def _leaf_goal(schema: Any, path: tuple[Any, ...], term: z3.ExprRef) -> z3.BoolRef:
    """What the output schema asks of the templated string at `path`; OutsideFragment for what z3 skips."""
    node = schema
    for key in path:
        if isinstance(node, bool):
            break
        if extra := set(node) - _PATH_KEYS:
            raise OutsideFragment(f"output_schema uses {', '.join(sorted(extra))} around a templated string")
        props = node.get("properties", {})
        node = node.get("items", True) if isinstance(key, int) else (
            props[key] if key in props else node.get("additionalProperties", True))
    if isinstance(node, bool):
        return z3.BoolVal(node)
    if extra := set(node) - _LEAF_KEYS:
        raise OutsideFragment(f"output_schema puts {', '.join(sorted(extra))} on a templated string")
    types = node.get("type", "string")
    if "string" not in ([types] if isinstance(types, str) else types):
        return z3.BoolVal(False)
    goals = [z3.Length(term) >= node.get("minLength", 0)]
    if "maxLength" in node:
        goals.append(z3.Length(term) <= node["maxLength"])
    for allowed in ([node["const"]] if "const" in node else None, node.get("enum")):
        if allowed is not None:
            goals.append(z3.Or([term == _lit(v) for v in allowed if isinstance(v, str)]))
    return z3.And(goals)


def _prove_z3(contract: Contract) -> FallbackProof:
    """Each goal (the schema, then every clause) is unsat when negated: proven; sat: a checked counterexample."""
    constraints: list[z3.BoolRef] = []
    try:
        input: InputObject | Opaque = _input_vars(contract.input_schema, "input", constraints)
    except OutsideFragment as exc:  # fine as long as no clause or placeholder reads the input
        input = Opaque(str(exc))
    if contract.fallback.kind == "constant":
        output = contract.fallback.constant
        schema_ok = contract._output_validator.is_valid(output)
        goals: list[tuple[str, Any]] = [(SCHEMA_CLAUSE, lambda: z3.BoolVal(schema_ok))]
    else:
        output = _template_value(contract.fallback.template, input)
        goals = [(SCHEMA_CLAUSE, lambda: _schema_goal(contract.output_schema, output))]
    env = {"input": input, "output": output}
    for name, expr in contract.parsed.items():
        goals.append((name, lambda tree=expr.tree, name=name: _b(_Translator().run(tree, env), f"clause {name!r}")))
    for name, goal in goals:
        solver = z3.Solver()
        solver.set("timeout", TIMEOUT_MS)
        solver.add(*constraints, z3.Not(goal()))
        result = solver.check()
        if result == z3.unknown:
            raise OutsideFragment(f"z3 could not decide clause {name!r} ({solver.reason_unknown()})")
        if result == z3.sat:
            return _refuted_by_model(contract, input, solver.model(), name)
    vacuous = z3.Solver()
    vacuous.add(*constraints)
    detail = f"the output schema and {len(contract.clauses)} clause(s) hold for every input"
    if vacuous.check() == z3.unsat:
        detail = "no input matches input_schema, so the proof is vacuous"
    return FallbackProof(contract=contract.name, status="proven", method="z3", detail=detail)


def _refuted_by_model(contract: Contract, input: InputObject | Opaque, model: z3.ModelRef, name: str) -> FallbackProof:
    """Turn z3's model into a JSON input and re-check it: a translation gap must never be reported as a bug."""
    candidate = _model_input(contract.input_schema, input, model)
    if not jsonschema.Draft202012Validator(contract.input_schema).is_valid(candidate):
        raise OutsideFragment(f"z3's counterexample to clause {name!r} does not match input_schema "
                              "(a keyword the prover does not model)")
    failures = _failures(contract, candidate)
    if not failures:
        raise OutsideFragment(f"z3's counterexample to clause {name!r} does not break it (a gap in the translation)")
    failure = next((f for f in failures if f.clause == name), failures[0])
    return FallbackProof(contract=contract.name, status="refuted", method="z3", clause=failure.clause,
                         counterexample=candidate, detail=failure.reason)


def _model_input(schema: dict[str, Any], obj: InputObject | Opaque, model: z3.ModelRef) -> Any:
    if isinstance(obj, Opaque):
        return _default(schema)
    out: dict[str, Any] = {}
    for name in schema.get("required", []):
        sub, value = schema.get("properties", {}).get(name, {}), obj.fields.get(name)
        if isinstance(value, InputObject):
            out[name] = _model_input(sub, value, model)
        elif isinstance(value, Sym):
            out[name] = _model_value(value, model)
        else:
            out[name] = _default(sub)
    return out


def _model_value(value: Sym, model: z3.ModelRef) -> Any:
    term = model.eval(value.term, model_completion=True)
    if value.kind == "str":  # code point by code point: as_string() escapes
        size = model.eval(z3.Length(term), model_completion=True).as_long()
        codes = [model.eval(z3.StrToCode(z3.SubString(term, i, 1)), model_completion=True) for i in range(size)]
        return "".join(chr(code.as_long()) for code in codes)
    return term.as_long() if value.kind == "int" else z3.is_true(term)


def _default(schema: Any) -> Any:
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
        return {k: _default(schema.get("properties", {}).get(k, {})) for k in schema.get("required", [])}
    if kind == "array":
        return [_default(schema.get("items", {}))] * schema.get("minItems", 0)
    if kind == "string":
        return "a" * schema.get("minLength", 0)
    if kind in ("integer", "number"):
        low, high = _int_bounds(schema)
        return low if low is not None else min(0, high) if high is not None else 0
    return False if kind == "boolean" else None


def _int_bounds(schema: dict[str, Any]) -> tuple[int | None, int | None]:
    """The least and greatest integers the schema's minimum/maximum keywords allow (None: unbounded)."""
    def num(key: str) -> float | None:
        value = schema.get(key)
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    lows = [math.ceil(v) for v in [num("minimum")] if v is not None]
    lows += [math.floor(v) + 1 for v in [num("exclusiveMinimum")] if v is not None]
    highs = [math.floor(v) for v in [num("maximum")] if v is not None]
    highs += [math.ceil(v) - 1 for v in [num("exclusiveMaximum")] if v is not None]
    return (max(lows) if lows else None), (min(highs) if highs else None)


def _failures(contract: Contract, input: Any) -> list[ClauseFailure]:
    try:
        output = render_fallback(contract.fallback, input)
    except FallbackRenderError as exc:
        return [ClauseFailure(clause="template", reason=str(exc))]
    return check(contract, input, output)


# ---- hypothesis ----------------------------------------------------------------------------------

def _test_hypothesis(contract: Contract, examples: int, why: str) -> FallbackProof:
    """Inputs generated from input_schema (and kept only if valid); the first failure, shrunk, refutes."""
    notes: list[str] = []
    validator = jsonschema.Draft202012Validator(contract.input_schema)
    strategy = _strategy(contract.input_schema, notes).filter(validator.is_valid)
    tried, found_at = 0, 0

    def breaks(input: Any) -> bool:
        nonlocal tried, found_at
        tried += 1
        failed = bool(_failures(contract, input))
        found_at = found_at or (tried if failed else 0)
        return failed

    config = settings(max_examples=examples, database=None, derandomize=True, deadline=None,
                      suppress_health_check=list(HealthCheck), phases=[Phase.generate, Phase.shrink])
    detail = "; ".join([why, *notes])
    try:
        counterexample = find(strategy, breaks, settings=config)
    except (NoSuchExample, Unsatisfiable, InvalidArgument) as exc:
        if not isinstance(exc, NoSuchExample):
            detail += f"; could not generate more inputs from input_schema ({type(exc).__name__})"
        return FallbackProof(contract=contract.name, status="tested", method="hypothesis", examples=tried,
                             detail=detail)
    failure = _failures(contract, counterexample)[0]
    return FallbackProof(contract=contract.name, status="refuted", method="hypothesis", clause=failure.clause,
                         counterexample=counterexample, examples=found_at, detail=f"{failure.reason} ({detail})")


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                     | st.text(max_size=10), lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=6)


def _strategy(schema: Any, notes: list[str]) -> st.SearchStrategy[Any]:  # noqa: C901 - one case per type
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
        return st.fixed_dictionaries({k: _strategy(props.get(k, {}), notes) for k in required},
                                     optional={k: _strategy(v, notes) for k, v in props.items() if k not in required})
    if kind == "array":
        return st.lists(_strategy(schema.get("items", {}), notes), min_size=schema.get("minItems", 0),
                        max_size=schema.get("maxItems", max(schema.get("minItems", 0), 5)))
    if kind == "string":
        low, high = schema.get("minLength", 0), schema.get("maxLength")
        if "pattern" in schema:  # lengths are left to the validity filter
            return st.from_regex(schema["pattern"])
        return st.text(min_size=low, max_size=high)
    if kind == "integer":
        low, high = _int_bounds(schema)
        return st.integers(min_value=low, max_value=high)
    if kind == "number":
        return st.floats(min_value=schema.get("minimum"), max_value=schema.get("maximum"), allow_nan=False,
                         allow_infinity=False) | st.integers(*_int_bounds(schema))
    if kind in ("boolean", "null"):
        return st.booleans() if kind == "boolean" else st.none()
    notes.append(f"input type {kind!r} generated as any JSON value")
    return _JSON
