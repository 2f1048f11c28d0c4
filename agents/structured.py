"""Structured outputs: ask for JSON that validates against a schema.

When the backend supports it (vLLM does) the schema goes into `response_format`
(json_schema) and the server constrains decoding; otherwise the schema is put in the
prompt. Either way the answer is parsed and validated here, and a failure is returned
as a value, not raised: guarded calls (FGGM) sample again on it. A reply that is not Unicode
text (a lone surrogate, also one that only its JSON escapes decode to) is such a failure; its
text is kept with the surrogate escaped.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import jsonschema

from ratchet.agents.models import ModelClient
from ratchet.agents.trace import (
    INVALID_MODEL_OUTPUT,
    Message,
    ModelCall,
    escape_surrogates,
    reply_problem,
    surrogate_at,
    surrogate_in,
)

FENCE = re.compile(r"^\s*```(?:json)?\s*\n(.*?)\n\s*```\s*$", re.DOTALL)


@dataclass(frozen=True)
class JsonAnswer:
    """A parsed, schema-checked answer; `error` says what was wrong when `value` is None."""

    value: Any
    error: str | None
    text: str
    call: ModelCall
    constrained: bool

    @property
    def valid(self) -> bool:
        return self.error is None


async def complete_json(
    client: ModelClient,
    messages: list[Message],
    schema: dict[str, Any],
    turn: int = 0,
    name: str = "answer",
    temperature: float | None = None,
) -> JsonAnswer:
    """One call asking for JSON valid under `schema`; backend errors still raise ModelBackendError."""
    constrained = client.supports_structured_outputs()
    if constrained:
        response_format = {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}
        reply = await client.complete(messages, [], turn, response_format=response_format, temperature=temperature)
    else:
        instruction = Message(
            role="system",
            content=(
                "Answer with one JSON value and nothing else. It must validate against this JSON schema:\n"
                + json.dumps(schema, sort_keys=True)
            ),
        )
        reply = await client.complete([*messages, instruction], [], turn, temperature=temperature)
    text = reply.message.content or ""
    problem = reply_problem(reply.message)
    if problem is not None:
        return JsonAnswer(
            value=None,
            error=f"{INVALID_MODEL_OUTPUT}: {problem}",
            text=escape_surrogates(text),
            call=reply.call,
            constrained=constrained,
        )
    value, error = parse_and_validate(text, schema)
    return JsonAnswer(value=value, error=error, text=text, call=reply.call, constrained=constrained)


def parse_and_validate(text: str, schema: dict[str, Any]) -> tuple[Any, str | None]:
    """(value, None) when `text` is JSON valid under `schema`, else (None, why)."""
    if (where := surrogate_at(text)) is not None:
        return None, f"not Unicode text: {where} is a lone surrogate"
    match = FENCE.match(text)
    body = match.group(1) if match else text
    try:
        value = json.loads(body)
    except json.JSONDecodeError as exc:
        return None, f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
    if (found := surrogate_in(value)) is not None:
        return None, f"not Unicode text: at {found[0] or '(root)'}, {found[1]} is a lone surrogate"
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(value), key=lambda e: list(e.path))
    if errors:
        where = "/".join(str(p) for p in errors[0].path) or "(root)"
        return None, f"schema violation at {where}: {errors[0].message[:200]}"
    return value, None
