"""Trace: everything one run of one agent version on one task did.

Traces are records: frozen pydantic models with a schema `version`, written to the
run store as JSON. They never hold secrets (see `agents.redaction`), and only Unicode text:
a lone UTF-16 surrogate (`"\\ud800"` in JSON) is no character, and UTF-8 cannot encode it.
A model reply that holds one is invalid model output (`reply_problem`); what is stored keeps
such code points escaped as text (`storable`).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import PydanticSerializationError

from ratchet.agents.contracts.model import ClauseFailure


class Usage(BaseModel):
    """Token counts reported by the model backend."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
        )


class ToolCallRequest(BaseModel):
    """A function call the model asked for."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str
    name: str
    arguments: str = Field(description="The raw JSON arguments string, as the model wrote it.")


class Message(BaseModel):
    """One chat message, in OpenAI shape."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = None
    tool_calls: list[ToolCallRequest] = Field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None

    def to_openai(self) -> dict[str, Any]:
        """The dict litellm expects."""
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in self.tool_calls
            ]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        if self.name is not None and self.role == "tool":
            out["name"] = self.name
        return out


class ModelCall(BaseModel):
    """One request to the model backend."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    turn: int
    model: str
    duration_s: float
    usage: Usage = Field(default_factory=Usage)
    finish_reason: str | None = None
    error: str | None = None
    simulated: bool = False
    retries: int = Field(default=0, description="Transient failures retried before this answer.")
    cost_usd: float | None = Field(default=None, description="At the configured prices; None when unknown.")


class ToolCall(BaseModel):
    """One tool execution and what it returned to the model."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    turn: int
    id: str
    name: str
    arguments: dict[str, Any]
    result: str
    duration_s: float
    error: str | None = None


class SampleRecord(BaseModel):
    """One model sample of a guarded call and what the contract said about it."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    index: int
    temperature: float
    text: str = Field(description="The model's answer, redacted and shortened.")
    failures: list[ClauseFailure] = Field(default_factory=list)
    backend_error: str | None = None
    usage: Usage = Field(default_factory=Usage)

    @property
    def accepted(self) -> bool:
        return not self.failures and self.backend_error is None


class GuardedCallRecord(BaseModel):
    """Everything a guarded call did; goes into traces and evidence (never holds secrets)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    contract: str
    samples: list[SampleRecord]
    source: Literal["sample", "computed_fallback", "fallback"]
    computed_fallback_failures: list[ClauseFailure] = Field(default_factory=list)
    duration_s: float

    @property
    def fallback_used(self) -> bool:
        return self.source != "sample"

    @property
    def usage(self) -> Usage:
        return sum((s.usage for s in self.samples), Usage())


class Trace(BaseModel):
    """What one agent version did on one task, one trial."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    version: int = 1
    task_id: str
    trial: int = 0
    agent: str
    artifact_hash: str
    model: str
    simulated: bool = Field(description="True when the model is Ratchet's offline simulator (sim/...).")
    messages: list[Message]
    model_calls: list[ModelCall] = Field(default_factory=list)
    tool_calls: list[ToolCall] = Field(default_factory=list)
    final_output: str = ""
    error: str | None = Field(default=None, description="Why the run ended abnormally, if it did.")
    started_at: str
    duration_s: float
    usage: Usage = Field(default_factory=Usage)
    answer_guard: GuardedCallRecord | None = Field(
        default=None, description="With an answer_contract: the final answer's samples, broken clauses, fallback."
    )


STORED_TEXT_CHARS = 256 * 1024  # no answer a verifier checks is longer (gates.verifier.MAX_ANSWER_CHARS)


def clipped(text: str, limit: int = STORED_TEXT_CHARS) -> str:
    """`text`, or its first `limit` characters and a marker with the full length and sha256."""
    if len(text) <= limit:
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return (
        f"{text[:limit]}\n[... {len(text) - limit:,} more characters not stored; {len(text):,} in all, sha256 {digest}]"
    )


def bounded_for_storage(trace: Trace, limit: int = STORED_TEXT_CHARS) -> Trace:
    """The trace as the run store keeps it: the final answer and every message's text clipped to
    `limit` characters. A model that answers 10 MB (a runaway generation, an adversarial RC) would
    otherwise put 20 MB per run in the store (the answer is the last message and the final output)."""
    long_message = any(m.content is not None and len(m.content) > limit for m in trace.messages)
    if len(trace.final_output) <= limit and not long_message:
        return trace
    messages = [
        m.model_copy(update={"content": clipped(m.content, limit)}) if m.content is not None else m
        for m in trace.messages
    ]
    return trace.model_copy(update={"final_output": clipped(trace.final_output, limit), "messages": messages})


INVALID_MODEL_OUTPUT = "InvalidModelOutput"  # the error type of a run whose model reply is not Unicode text
_SURROGATE = re.compile("[\ud800-\udfff]")
Record = TypeVar("Record", bound=BaseModel)


def surrogate_at(text: str) -> str | None:
    """Where `text` stops being Unicode text ("U+D800 at character 5": its first surrogate code point), or None."""
    if text.isascii():
        return None
    found = _SURROGATE.search(text)
    return None if found is None else f"U+{ord(found.group()):04X} at character {found.start() + 1}"


def surrogate_in(value: Any, path: str = "") -> tuple[str, str] | None:
    """(field path, where) of the first surrogate in JSON-like data (dict keys included), or None."""
    if isinstance(value, str):
        where = surrogate_at(value)
        return None if where is None else (path, where)
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list | tuple) else ()
    for key, item in items:
        if isinstance(key, str) and (where := surrogate_at(key)) is not None:
            return path, f"{where} of a key"
        found = surrogate_in(item, f"{path}.{key}" if path else str(key))
        if found is not None:
            return found
    return None


def escape_surrogates(text: str) -> str:
    """`text` with each surrogate code point written as its Python escape (`\\ud800`, six characters)."""
    if surrogate_at(text) is None:
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def storable(record: Record) -> Record:
    """`record` when it is Unicode text throughout; else a copy with every surrogate escaped (`escape_surrogates`)."""
    try:
        record.model_dump_json()
    except PydanticSerializationError:
        return type(record).model_validate(_escaped(record.model_dump()))
    return record


def reply_problem(message: Message) -> str | None:
    """Why a model's reply is not Unicode text, or None: a surrogate in its text or in a tool call's id, name
    or arguments (also arguments that only decode to one, such as `{"a": "\\ud800"}`)."""
    fields = [("its text", message.content or "")]
    for number, call in enumerate(message.tool_calls, 1):
        fields += [(f"the {part} of tool call {number}", getattr(call, part)) for part in ("id", "name", "arguments")]
    for name, text in fields:
        if (where := surrogate_at(text)) is not None:
            return f"{name} holds {where}, a lone surrogate (not Unicode text)"
    for number, call in enumerate(message.tool_calls, 1):
        if (found := _decoded_surrogate(call.arguments)) is not None:
            field = f" (field '{found[0]}')" if found[0] else ""
            return (
                f"the arguments of tool call {number} decode to {found[1]}{field}, a lone surrogate (not Unicode text)"
            )
    return None


def _decoded_surrogate(arguments: str) -> tuple[str, str] | None:
    """Where JSON text that is itself Unicode decodes to a surrogate (a `\\udXXX` escape), or None."""
    if "\\u" not in arguments:
        return None
    try:
        return surrogate_in(json.loads(arguments))
    except (ValueError, RecursionError):
        return None


def _escaped(value: Any) -> Any:
    if isinstance(value, str):
        return escape_surrogates(value)
    if isinstance(value, dict):
        return {_escaped(k): _escaped(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_escaped(v) for v in value)
    return value
