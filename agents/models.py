"""The model call path: one async litellm call per agent turn.

`setup_models()` is the explicit setup step (no import-time side effects): it keeps
litellm offline (local cost map), quiet, and registers Ratchet's own providers.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from agents.artifact import ModelParams
from agents.errors import ModelBackendError
from agents.providers import is_simulated, register_providers
from agents.trace import Message, ModelCall, ToolCallRequest, Usage

_READY = False


def setup_models() -> None:
    """Prepare litellm once per process: offline cost map, no telemetry, sim providers."""
    global _READY
    if _READY:
        return
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    litellm.drop_params = True
    register_providers()
    _READY = True


@dataclass(frozen=True)
class ModelReply:
    """The assistant message of one call plus its accounting."""

    message: Message
    call: ModelCall


class ModelClient:
    """Calls one litellm model with fixed sampling parameters."""

    def __init__(self, model: str, params: ModelParams, api_base: str | None = None) -> None:
        setup_models()
        self.model = model
        self.params = params
        self.api_base = api_base
        self.simulated = is_simulated(model)

    async def complete(self, messages: list[Message], tools: list[dict[str, Any]], turn: int) -> ModelReply:
        """One chat completion; raises ModelBackendError when the backend fails."""
        import litellm

        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": [m.to_openai() for m in messages],
            "temperature": self.params.temperature,
            "max_tokens": self.params.max_tokens,
            "timeout": self.params.timeout_s,
        }
        if tools:
            kwargs["tools"] = tools
            # litellm 1.106 imports its MCP proxy handler (and the optional `mcp` package) whenever
            # tools are passed; Ratchet's tools are plain functions, so skip that path.
            kwargs["_skip_mcp_handler"] = True
        if self.api_base:
            kwargs["api_base"] = self.api_base
        started = time.perf_counter()
        try:
            response = await litellm.acompletion(**kwargs)
        except Exception as exc:  # litellm maps every backend failure to its own exception types
            detail = " ".join(str(exc).split())
            detail = detail if len(detail) <= 300 else detail[:297] + "..."
            raise ModelBackendError(f"model {self.model!r} failed on turn {turn}: {type(exc).__name__}: {detail}") from exc
        return _reply(response, self.model, turn, time.perf_counter() - started, self.simulated)


def _reply(response: Any, model: str, turn: int, duration: float, simulated: bool) -> ModelReply:
    choice = response.choices[0]
    raw = choice.message
    calls = [
        ToolCallRequest(id=c.id, name=c.function.name, arguments=c.function.arguments or "{}")
        for c in (getattr(raw, "tool_calls", None) or [])
    ]
    usage = getattr(response, "usage", None)
    counts = Usage(
        prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
        completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
    )
    message = Message(role="assistant", content=raw.content, tool_calls=calls)
    call = ModelCall(
        turn=turn, model=model, duration_s=round(duration, 6), usage=counts,
        finish_reason=choice.finish_reason, simulated=simulated,
    )
    return ModelReply(message=message, call=call)
