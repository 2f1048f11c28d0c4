"""Rendering a contract's fallback for one input: a constant as is, a template filled from `input`."""

from __future__ import annotations

import copy
import re
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ratchet.agents.contracts.model import ClauseFailure, Contract, Fallback, check

# The placeholders the prover understands: {{ input.a.b }} or {{ input["a"] }}, nothing else.
PLACEHOLDER = re.compile(r"\{\{\s*input((?:\.[A-Za-z_][A-Za-z0-9_]*|\[\"[^\"]+\"\])+)\s*\}\}")


class FallbackRenderError(ValueError):
    """The template could not be filled from this input (a missing field)."""


_ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


@lru_cache(maxsize=512)
def _template(source: str) -> Template:
    return _ENV.from_string(source)


def render_fallback(fallback: Fallback, input: Any) -> Any:
    """The fallback's value for `input` (a fresh copy: callers may keep or change it)."""
    if fallback.constant is not None:
        return copy.deepcopy(fallback.constant)
    return _fill(fallback.template, input)


def _fill(value: Any, input: Any) -> Any:
    if isinstance(value, str):
        if "{{" not in value and "{%" not in value:
            return value
        try:
            return _template(value).render(input=input)
        except TemplateError as exc:
            raise FallbackRenderError(f"fallback template {value!r}: {exc}") from exc
    if isinstance(value, list):
        return [_fill(item, input) for item in value]
    if isinstance(value, dict):
        return {key: _fill(item, input) for key, item in value.items()}
    return value


def template_parts(text: str) -> list[str | tuple[str, ...]] | None:
    """A template string as literal pieces and input paths, or None if it uses more than placeholders."""
    parts: list[str | tuple[str, ...]] = []
    position = 0
    for match in PLACEHOLDER.finditer(text):
        if match.start() > position:
            parts.append(text[position : match.start()])
        path = re.findall(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[\"([^\"]+)\"\]", match.group(1))
        parts.append(tuple(a or b for a, b in path))
        position = match.end()
    rest = text[position:]
    if "{{" in rest or "{%" in rest or "{#" in rest:
        return None
    if rest:
        parts.append(rest)
    if any(isinstance(p, str) and ("{{" in p or "{%" in p or "{#" in p) for p in parts):
        return None
    return parts


def fallback_failures(contract: Contract, input: Any) -> list[ClauseFailure]:
    """What the contract's own fallback breaks for `input` ([]: nothing); an unfillable template is clause
    `template`."""
    try:
        output = render_fallback(contract.fallback, input)
    except FallbackRenderError as exc:
        return [ClauseFailure(clause="template", reason=str(exc))]
    return check(contract, input, output)
