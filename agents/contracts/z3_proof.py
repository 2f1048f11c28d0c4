"""The z3 half of the prover: a contract in the decidable fragment, proven or refuted for every input.

Typed input fields (strings, integers, booleans, nested objects of these) become z3 variables;
a constant fallback, or a template of literal text and `{{ input.x }}` placeholders, becomes a
known or symbolic output; clauses over equality, integer order and linear arithmetic, finite
membership, substrings, len, prefixes and suffixes, and quantifiers over statically known lists
are translated clause by clause. Anything else raises OutsideFragment and the contract goes to
the hypothesis half (agents.contracts.hypothesis_check). A counterexample is re-checked with
`check` before it is reported, so a translation gap can never refute a correct fallback.
"""

from __future__ import annotations

import ast
import re
from typing import Any

import jsonschema
import z3

# The interpreter's own helpers, so constant parts are computed exactly as `check` computes them.
from ratchet.agents.contracts.expr import _CONSTANT_NAMES, EvalFailure, _arith, _compare, _equal, _Interpreter
from ratchet.agents.contracts.fallback import fallback_failures
from ratchet.agents.contracts.model import SCHEMA_CLAUSE, Contract, FallbackProof
from ratchet.agents.contracts.z3_terms import (
    InputObject,
    Opaque,
    OutsideFragment,
    Sym,
    default_value,
    input_vars,
    lit,
    symbolic,
    template_value,
    z3_field,
)

TIMEOUT_MS = 2000
_LEAF_KEYS = {
    "type",
    "enum",
    "const",
    "minLength",
    "maxLength",
    "format",
    "title",
    "description",
    "default",
    "examples",
    "$comment",
}
_PATH_KEYS = {
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "title",
    "description",
    "default",
    "examples",
    "$comment",
    "$schema",
    "$id",
}


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
        return lit(value)
    if kind == "bool" and isinstance(value, bool):
        return z3.BoolVal(value)
    raise OutsideFragment(f"{where} needs {'an integer' if kind == 'int' else 'a string'} the prover can type")


def _kind_of(value: Any) -> str | None:
    return value.kind if isinstance(value, Sym) else {bool: "bool", str: "str", int: "int"}.get(type(value))


def _eq(a: Any, b: Any) -> Any:
    """JSON equality (as in expr._equal) on values that may hold z3 terms: a Python or z3 bool."""
    if not symbolic(a) and not symbolic(b):
        return _equal(a, b)
    if isinstance(a, (InputObject, Opaque)) or isinstance(b, (InputObject, Opaque)):
        raise OutsideFragment("comparing a whole input object")
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and z3.And([_b(_eq(x, y), "==") for x, y in zip(a, b, strict=True)])
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


def _on_constants(operation: Any, op: Any, a: Any, b: Any) -> Any:
    """An operator on two known values, computed exactly as `check` computes it."""
    try:
        return operation(op, a, b)
    except EvalFailure as exc:
        raise OutsideFragment(f"cannot be computed on the fallback: {exc}") from exc


class _Translator:
    """Turns a clause tree into a z3 boolean over the input variables; OutsideFragment if it cannot."""

    def run(self, node: ast.expr, env: dict[str, Any]) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return env[node.id] if node.id in env else _CONSTANT_NAMES[node.id]
        if isinstance(node, ast.Attribute):
            return z3_field(self.run(node.value, env), node.attr)
        if isinstance(node, ast.Subscript):
            return z3_field(self.run(node.value, env), self.run(node.slice, env))
        if isinstance(node, (ast.List, ast.Tuple)):
            return [self.run(item, env) for item in node.elts]
        if isinstance(node, ast.BoolOp):
            values = [_b(self.run(v, env), "and/or") for v in node.values]
            return Sym("bool", z3.And(values) if isinstance(node.op, ast.And) else z3.Or(values))
        if isinstance(node, ast.UnaryOp):
            value = self.run(node.operand, env)
            if isinstance(node.op, ast.Not):
                return Sym("bool", z3.Not(_b(value, "not")))
            if symbolic(value):
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
        if not symbolic(a) and not symbolic(b):
            return _on_constants(_arith, op, a, b)
        if isinstance(op, ast.Add) and "str" in (_kind_of(a), _kind_of(b)):
            return Sym("str", z3.Concat(_typed(a, "str", "+"), _typed(b, "str", "+")))
        x, y = _typed(a, "int", "arithmetic"), _typed(b, "int", "arithmetic")
        if isinstance(op, ast.Mult) and symbolic(a) and symbolic(b):
            raise OutsideFragment("multiplying two input values (not linear)")
        return Sym("int", x + y if isinstance(op, ast.Add) else x - y if isinstance(op, ast.Sub) else x * y)

    def compare(self, op: ast.cmpop, a: Any, b: Any) -> Any:
        if not symbolic(a) and not symbolic(b):
            return _on_constants(_compare, op, a, b)
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

    def call(self, node: ast.Call, env: dict[str, Any]) -> Any:
        assert isinstance(node.func, ast.Name)  # clause trees passed expr's _Checker: only named calls
        name = node.func.id
        if name in ("all", "any"):
            gen = node.args[0]
            assert isinstance(gen, ast.GeneratorExp)  # _Checker: a quantifier takes one generator
            return self.quantifier(name, gen, env)
        args = [self.run(arg, env) for arg in node.args]
        if name == "implies":
            return Sym("bool", z3.Implies(_b(args[0], "implies"), _b(args[1], "implies")))
        if name in ("matches", "lower"):
            if symbolic(args):
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
        assert isinstance(loop.target, ast.Name)  # _Checker: a quantifier binds one plain name
        terms = []
        for item in items:
            inner = {**env, loop.target.id: item}
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
    errors = [
        e for e in jsonschema.Draft202012Validator(schema).iter_errors(skeleton) if tuple(e.absolute_path) not in paths
    ]
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
        node = (
            node.get("items", True)
            if isinstance(key, int)
            else (props[key] if key in props else node.get("additionalProperties", True))
        )
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
            goals.append(z3.Or([term == lit(v) for v in allowed if isinstance(v, str)]))
    return z3.And(goals)


def prove_with_z3(contract: Contract) -> FallbackProof:
    """Each goal (the schema, then every clause) is unsat when negated: proven; sat: a checked counterexample."""
    constraints: list[z3.BoolRef] = []
    try:
        input: InputObject | Opaque = input_vars(contract.input_schema, "input", constraints)
    except OutsideFragment as exc:  # fine as long as no clause or placeholder reads the input
        input = Opaque(str(exc))
    if contract.fallback.kind == "constant":
        output = contract.fallback.constant
        schema_ok = contract._output_validator.is_valid(output)
        goals: list[tuple[str, Any]] = [(SCHEMA_CLAUSE, lambda: z3.BoolVal(schema_ok))]
    else:
        output = template_value(contract.fallback.template, input)
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
        raise OutsideFragment(
            f"z3's counterexample to clause {name!r} does not match input_schema (a keyword the prover does not model)"
        )
    failures = fallback_failures(contract, candidate)
    if not failures:
        raise OutsideFragment(f"z3's counterexample to clause {name!r} does not break it (a gap in the translation)")
    failure = next((f for f in failures if f.clause == name), failures[0])
    return FallbackProof(
        contract=contract.name,
        status="refuted",
        method="z3",
        clause=failure.clause,
        counterexample=candidate,
        detail=failure.reason,
    )


def _model_input(schema: dict[str, Any], obj: InputObject | Opaque, model: z3.ModelRef) -> Any:
    if isinstance(obj, Opaque):
        return default_value(schema)
    out: dict[str, Any] = {}
    for name in schema.get("required", []):
        sub, value = schema.get("properties", {}).get(name, {}), obj.fields.get(name)
        if isinstance(value, InputObject):
            out[name] = _model_input(sub, value, model)
        elif isinstance(value, Sym):
            out[name] = _model_value(value, model)
        else:
            out[name] = default_value(sub)
    return out


def _model_value(value: Sym, model: z3.ModelRef) -> Any:
    term = model.eval(value.term, model_completion=True)
    if value.kind == "str":  # code point by code point: as_string() escapes
        size = model.eval(z3.Length(term), model_completion=True).as_long()
        codes = [model.eval(z3.StrToCode(z3.SubString(term, i, 1)), model_completion=True) for i in range(size)]
        return "".join(chr(code.as_long()) for code in codes)
    return term.as_long() if value.kind == "int" else z3.is_true(term)
