"""The contract expression language: a small, documented subset of Python expression syntax.

A clause is one expression over `input` (what the call was given) and `output` (what the
model returned, parsed JSON). It is parsed with `ast.parse` and checked against a whitelist,
then interpreted by `evaluate` below; nothing is ever handed to Python's `eval`.

    literals       "text"  42  1.5  true/false (True/False)  none (None)  [1, 2]
    fields         output.label   output["label"]   output.items[0]   input.view
    comparison     ==  !=  <  <=  >  >=  (chains allowed: 0 <= output.score <= 1)
    membership     x in [..]   x not in [..]   "sub" in text (substring)
    boolean        and  or  not   implies(a, b)
    arithmetic     +  -  *  (numbers; + also joins strings)
    functions      len(x)  matches(text, "regex") (full match)  startswith(t, p)  endswith(t, p)
                   lower(t)  is_string(x)  is_int(x)  is_list(x)
    quantifiers    all(<clause> for v in <list> [if <cond>])   any(...)  (nest freely)

An expression that cannot be computed for a value (a missing field, a wrong type) makes the
clause fail with that reason; it never raises out of `evaluate`.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any

MAX_SOURCE = 2000
MAX_DEPTH = 40
ROOTS = ("input", "output")
FUNCTIONS = {
    "len": 1,
    "matches": 2,
    "startswith": 2,
    "endswith": 2,
    "lower": 1,
    "implies": 2,
    "is_string": 1,
    "is_int": 1,
    "is_list": 1,
}
QUANTIFIERS = ("all", "any")
_CONSTANT_NAMES = {"true": True, "false": False, "none": None, "True": True, "False": False, "None": None}
_COMPARE = (ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn)


class ExprError(ValueError):
    """A clause that is not in the language; the message says where and what is allowed."""


class EvalFailure(Exception):
    """A clause that could not be computed on these values (missing field, wrong type)."""


@dataclass(frozen=True)
class Expr:
    """A parsed, whitelisted clause: its source and its syntax tree."""

    source: str
    tree: ast.expr
    regexes: dict[str, re.Pattern[str]]

    def evaluate(self, input: Any, output: Any) -> tuple[bool, str | None]:
        """(holds, why not): a clause holds only when it evaluates to exactly True."""
        try:
            value = _Interpreter(self.regexes).run(self.tree, {"input": input, "output": output})
        except EvalFailure as exc:
            return False, str(exc)
        except RecursionError:
            return False, "the value is nested too deeply to check"
        if value is True:
            return True, None
        return False, "is false" if value is False else f"is {_short(value)}, not a boolean"


def parse(source: str) -> Expr:
    """Parse and check one clause; ExprError with the offending part if it is not in the language."""
    if not isinstance(source, str) or not source.strip():
        raise ExprError("a clause must be a non-empty expression")
    if len(source) > MAX_SOURCE:
        raise ExprError(f"a clause is at most {MAX_SOURCE} characters")
    try:
        tree = ast.parse(source.strip(), mode="eval").body
    except SyntaxError as exc:
        raise ExprError(f"not an expression: {exc.msg} at column {exc.offset}") from exc
    regexes: dict[str, re.Pattern[str]] = {}
    _Checker(regexes).check(tree, bound=set(), depth=0)
    return Expr(source=source.strip(), tree=tree, regexes=regexes)


class _Checker:
    """Walks the tree once at load time: only whitelisted nodes, names and functions."""

    def __init__(self, regexes: dict[str, re.Pattern[str]]) -> None:
        self.regexes = regexes

    def fail(self, node: ast.AST, what: str) -> ExprError:
        return ExprError(
            f"{what} (column {getattr(node, 'col_offset', 0) + 1}); see agents/contracts/expr.py for the language"
        )

    def check(self, node: ast.AST, bound: set[str], depth: int) -> None:  # noqa: C901 - one case per node type
        if depth > MAX_DEPTH:
            raise self.fail(node, "the clause is nested too deeply")
        down = depth + 1
        if isinstance(node, ast.Constant):
            if not isinstance(node.value, (str, int, float, bool, type(None))):
                raise self.fail(node, f"constant {node.value!r} is not allowed")
        elif isinstance(node, ast.Name):
            if node.id not in ROOTS and node.id not in bound and node.id not in _CONSTANT_NAMES:
                raise self.fail(node, f"unknown name {node.id!r}: use input, output or a quantifier's variable")
        elif isinstance(node, ast.Attribute):
            if node.attr.startswith("_"):
                raise self.fail(node, f"field {node.attr!r}: names starting with _ are not allowed")
            self.check(node.value, bound, down)
        elif isinstance(node, ast.Subscript):
            if isinstance(node.slice, ast.Slice):
                raise self.fail(node, "slices are not allowed; index with one key or number")
            self.check(node.value, bound, down)
            self.check(node.slice, bound, down)
        elif isinstance(node, (ast.List, ast.Tuple)):
            for item in node.elts:
                self.check(item, bound, down)
        elif isinstance(node, ast.BoolOp):
            for value in node.values:
                self.check(value, bound, down)
        elif isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, (ast.Not, ast.USub)):
                raise self.fail(node, "only `not` and unary minus are allowed")
            self.check(node.operand, bound, down)
        elif isinstance(node, ast.BinOp):
            if not isinstance(node.op, (ast.Add, ast.Sub, ast.Mult)):
                raise self.fail(node, "only +, - and * are allowed")
            self.check(node.left, bound, down)
            self.check(node.right, bound, down)
        elif isinstance(node, ast.Compare):
            if not all(isinstance(op, _COMPARE) for op in node.ops):
                raise self.fail(node, "only ==, !=, <, <=, >, >=, in and not in compare")
            for part in (node.left, *node.comparators):
                self.check(part, bound, down)
        elif isinstance(node, ast.Call):
            self.check_call(node, bound, down)
        else:
            raise self.fail(node, f"{type(node).__name__} is not part of the contract language")

    def check_call(self, node: ast.Call, bound: set[str], depth: int) -> None:
        if not isinstance(node.func, ast.Name) or node.keywords:
            raise self.fail(node, "only the listed functions may be called, without keywords")
        name = node.func.id
        if name in QUANTIFIERS:
            if len(node.args) != 1 or not isinstance(node.args[0], ast.GeneratorExp):
                raise self.fail(node, f"{name}(...) takes one `<clause> for <var> in <list>`")
            gen = node.args[0]
            if len(gen.generators) != 1:
                raise self.fail(node, f"{name}(...) takes exactly one `for`")
            loop = gen.generators[0]
            if not isinstance(loop.target, ast.Name) or loop.is_async:
                raise self.fail(node, "a quantifier binds one plain variable name")
            if loop.target.id in ROOTS:
                raise self.fail(node, f"a quantifier variable cannot be called {loop.target.id!r}")
            self.check(loop.iter, bound, depth)
            inner = bound | {loop.target.id}
            for condition in loop.ifs:
                self.check(condition, inner, depth)
            self.check(gen.elt, inner, depth)
            return
        if name not in FUNCTIONS:
            known = ", ".join(sorted([*FUNCTIONS, *QUANTIFIERS]))
            raise self.fail(node, f"unknown function {name!r}; known: {known}")
        if len(node.args) != FUNCTIONS[name]:
            raise self.fail(node, f"{name}() takes {FUNCTIONS[name]} argument(s)")
        if name == "matches":
            pattern = node.args[1]
            if not (isinstance(pattern, ast.Constant) and isinstance(pattern.value, str)):
                raise self.fail(node, "matches(text, pattern): the pattern must be a string literal")
            try:
                self.regexes[pattern.value] = re.compile(pattern.value)
            except re.error as exc:
                raise self.fail(node, f"bad regex {pattern.value!r}: {exc}") from exc
        for arg in node.args:
            self.check(arg, bound, depth)


class _Interpreter:
    """Evaluates a checked tree. Type errors become EvalFailure, never Python exceptions."""

    def __init__(self, regexes: dict[str, re.Pattern[str]]) -> None:
        self.regexes = regexes

    def run(self, node: ast.expr, env: dict[str, Any]) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            if node.id in env:
                return env[node.id]
            return _CONSTANT_NAMES[node.id]
        if isinstance(node, ast.Attribute):
            return _field(self.run(node.value, env), node.attr)
        if isinstance(node, ast.Subscript):
            return _field(self.run(node.value, env), self.run(node.slice, env))
        if isinstance(node, (ast.List, ast.Tuple)):
            return [self.run(item, env) for item in node.elts]
        if isinstance(node, ast.BoolOp):
            return self.bool_op(node, env)
        if isinstance(node, ast.UnaryOp):
            value = self.run(node.operand, env)
            if isinstance(node.op, ast.Not):
                return not _boolean(value, "not")
            return -_number(value, "unary -")
        if isinstance(node, ast.BinOp):
            return _arith(node.op, self.run(node.left, env), self.run(node.right, env))
        if isinstance(node, ast.Compare):
            left = self.run(node.left, env)
            for op, right_node in zip(node.ops, node.comparators, strict=True):
                right = self.run(right_node, env)
                if not _compare(op, left, right):
                    return False
                left = right
            return True
        if isinstance(node, ast.Call):
            return self.call(node, env)
        raise EvalFailure(f"cannot evaluate {type(node).__name__}")  # unreachable after _Checker

    def bool_op(self, node: ast.BoolOp, env: dict[str, Any]) -> bool:
        is_and = isinstance(node.op, ast.And)
        for value_node in node.values:
            value = _boolean(self.run(value_node, env), "and" if is_and else "or")
            if value is not is_and:
                return value
        return is_and

    def call(self, node: ast.Call, env: dict[str, Any]) -> Any:  # noqa: C901 - one case per function
        assert isinstance(node.func, ast.Name)  # a checked tree (_Checker.check_call): only named calls
        name = node.func.id
        if name in QUANTIFIERS:
            gen = node.args[0]
            assert isinstance(gen, ast.GeneratorExp)  # _Checker: a quantifier takes one generator
            loop = gen.generators[0]
            assert isinstance(loop.target, ast.Name)  # _Checker: ... binding one plain name
            items = self.run(loop.iter, env)
            if not isinstance(items, list):
                raise EvalFailure(f"{name}(...) needs a list, got {_kind(items)}")
            want_all = name == "all"
            for item in items:
                inner = {**env, loop.target.id: item}
                if not all(_boolean(self.run(c, inner), "if") for c in loop.ifs):
                    continue
                if _boolean(self.run(gen.elt, inner), name) is not want_all:
                    return not want_all
            return want_all
        if name == "implies":
            return (not _boolean(self.run(node.args[0], env), "implies")) or _boolean(
                self.run(node.args[1], env), "implies"
            )
        args = [self.run(arg, env) for arg in node.args]
        if name == "len":
            if not isinstance(args[0], (str, list, dict)):
                raise EvalFailure(f"len() of {_kind(args[0])}")
            return len(args[0])
        if name == "matches":
            return self.regexes[args[1]].fullmatch(_text(args[0], name)) is not None
        if name == "startswith":
            return _text(args[0], name).startswith(_text(args[1], name))
        if name == "endswith":
            return _text(args[0], name).endswith(_text(args[1], name))
        if name == "lower":
            return _text(args[0], name).lower()
        if name == "is_string":
            return isinstance(args[0], str)
        if name == "is_int":
            return isinstance(args[0], int) and not isinstance(args[0], bool)
        if name == "is_list":
            return isinstance(args[0], list)
        raise EvalFailure(f"unknown function {name}")  # unreachable after _Checker


def _field(value: Any, key: Any) -> Any:
    if isinstance(value, dict):
        if key not in value:
            raise EvalFailure(f"no field {key!r}")
        return value[key]
    if isinstance(value, list) and isinstance(key, int) and not isinstance(key, bool):
        if not -len(value) <= key < len(value):
            raise EvalFailure(f"index {key} out of range for a list of {len(value)}")
        return value[key]
    raise EvalFailure(f"cannot take {key!r} of {_kind(value)}")


def _compare(op: ast.cmpop, left: Any, right: Any) -> bool:
    if isinstance(op, (ast.In, ast.NotIn)):
        if isinstance(right, str):
            found = _text(left, "in") in right
        elif isinstance(right, list):
            found = any(_equal(left, item) for item in right)
        elif isinstance(right, dict):
            found = isinstance(left, str) and left in right
        else:
            raise EvalFailure(f"`in` needs a string, list or object on the right, got {_kind(right)}")
        return found if isinstance(op, ast.In) else not found
    if isinstance(op, ast.Eq):
        return _equal(left, right)
    if isinstance(op, ast.NotEq):
        return not _equal(left, right)
    both_numbers = _is_number(left) and _is_number(right)
    both_strings = isinstance(left, str) and isinstance(right, str)
    if not (both_numbers or both_strings):
        raise EvalFailure(f"cannot order {_kind(left)} and {_kind(right)}")
    if isinstance(op, ast.Lt):
        return left < right
    if isinstance(op, ast.LtE):
        return left <= right
    if isinstance(op, ast.Gt):
        return left > right
    return left >= right


def _equal(left: Any, right: Any) -> bool:
    """JSON equality: true is not 1, 1 equals 1.0."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    return bool(left == right)


def _arith(op: ast.operator, left: Any, right: Any) -> Any:
    if isinstance(op, ast.Add) and isinstance(left, str) and isinstance(right, str):
        return left + right
    a, b = _number(left, "arithmetic"), _number(right, "arithmetic")
    if isinstance(op, ast.Add):
        return a + b
    if isinstance(op, ast.Sub):
        return a - b
    return a * b


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(value: Any, where: str) -> int | float:
    if not _is_number(value):
        raise EvalFailure(f"{where} needs a number, got {_kind(value)}")
    return value


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise EvalFailure(f"{where} needs a string, got {_kind(value)}")
    return value


def _boolean(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise EvalFailure(f"{where} needs true or false, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    names = {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
