"""`scripted/<name>`: a litellm provider whose replies are written by a test or a demo.

The scripted counterpart of `sim/<world>` (inspect_ai's `mockllm`, pydantic-ai's
`FunctionModel`): it goes through the real litellm call path, but each reply comes
from a script, either a list of `ScriptedReply` consumed in order or a function
`script(messages, tools) -> ScriptedReply`.

    provider = ScriptedProvider([ScriptedReply(tool_calls=[("python", {"code": "..."})]),
                                 ScriptedReply(content="def f(): ...")])
    model = register_scripted("fixer", provider)   # "scripted/fixer"
    litellm.completion(model=model, messages=[...])

Importing this module imports litellm: call `ratchet.agents.setup_models()` (or
`ratchet.pipeline.setup()`) first, which keeps litellm offline. `agents.providers` never imports
it, and nothing is registered until `register_scripted` is called.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from typing import Any

import litellm
from litellm.types.utils import Message, ModelResponse, Usage
from pydantic import BaseModel, ConfigDict, Field

from ratchet.agents.providers.no_streaming import NoStreamingProvider

__all__ = ["SCRIPTED_PREFIX", "ScriptedProvider", "ScriptedReply", "register_scripted", "unregister_scripted"]

SCRIPTED_PREFIX = "scripted/"
SCRIPTED_NO_STREAMING = "the scripted model scripted/<name> does not stream; call it without stream=True"
_PROVIDER_KEY = "scripted"


class ScriptedReply(BaseModel):
    """One assistant reply: text, tool calls, or both.

    A tool call is `(name, arguments)`; a dict is sent as JSON, a string is sent verbatim
    (so a script can produce arguments that are not valid JSON).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    content: str | None = Field(default=None, description="The assistant's text; None with tool calls only.")
    tool_calls: list[tuple[str, dict[str, Any] | str]] = Field(
        default_factory=list, description="(tool name, arguments) pairs, in call order."
    )


Script = Callable[[list[dict[str, Any]], list[dict[str, Any]] | None], ScriptedReply]


class ScriptedProvider(NoStreamingProvider):
    """Answers each chat request with the script's next reply (sync and async, no streaming).

    `requests` records what each call received: `{"messages": [...], "tools": [...] | None}`.
    """

    no_streaming = SCRIPTED_NO_STREAMING

    def __init__(self, script: Script | Sequence[ScriptedReply]) -> None:
        super().__init__()
        if callable(script):
            self._script: Script | None = script
            self._replies: list[ScriptedReply] = []
        else:
            self._script = None
            self._replies = list(script)
            bad = [type(r).__name__ for r in self._replies if not isinstance(r, ScriptedReply)]
            if bad:
                raise TypeError(f"a scripted reply list holds ScriptedReply items, got {bad[0]}")
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def reply(self, name: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> ScriptedReply:
        """The reply to one request (advances the script)."""
        with self._lock:
            self.requests.append({"messages": messages, "tools": tools})
            number = len(self.requests)
            if self._script is None:
                if number > len(self._replies):
                    raise _bad_request(
                        name, f"scripted/{name}: the script has {len(self._replies)} replies; call {number} has none"
                    )
                return self._replies[number - 1]
        reply = self._script(messages, tools)
        if not isinstance(reply, ScriptedReply):
            raise _bad_request(name, f"scripted/{name}: the script returned {type(reply).__name__}, not ScriptedReply")
        return reply

    def completion(self, model: str, messages: list[Any], *args: Any, **kwargs: Any) -> ModelResponse:
        """Answer one request; `model` is the registered name (litellm strips "scripted/")."""
        return _respond(self, model.removeprefix(SCRIPTED_PREFIX), messages, kwargs)

    async def acompletion(self, *args: Any, **kwargs: Any) -> ModelResponse:
        """Same as `completion`: a script has nothing to await."""
        return self.completion(*args, **kwargs)


class _ScriptedRouter(NoStreamingProvider):
    """The one handler litellm knows as provider "scripted": finds the provider by name."""

    no_streaming = SCRIPTED_NO_STREAMING

    def __init__(self) -> None:
        super().__init__()
        self.providers: dict[str, ScriptedProvider] = {}

    def _provider(self, model: str) -> tuple[str, ScriptedProvider]:
        name = model.removeprefix(SCRIPTED_PREFIX)
        provider = self.providers.get(name)
        if provider is None:
            known = ", ".join(sorted(self.providers)) or "none"
            hint = f"call register_scripted({name!r}, ...) first (registered: {known})"
            raise _bad_request(name, f"no scripted model named {name!r}; {hint}")
        return name, provider

    def completion(self, model: str, messages: list[Any], *args: Any, **kwargs: Any) -> ModelResponse:
        name, provider = self._provider(model)
        return _respond(provider, name, messages, kwargs)

    async def acompletion(self, model: str, messages: list[Any], *args: Any, **kwargs: Any) -> ModelResponse:
        return self.completion(model, messages, *args, **kwargs)


_ROUTER = _ScriptedRouter()


def register_scripted(name: str, provider: ScriptedProvider) -> str:
    """Serve `provider` as `scripted/<name>` (replacing one of the same name); returns that model string."""
    if not name or "/" in name:
        raise ValueError(f"a scripted model name is non-empty and has no '/': {name!r}")
    _ROUTER.providers[name] = provider
    if not any(item["provider"] == _PROVIDER_KEY for item in litellm.custom_provider_map):
        litellm.custom_provider_map.append({"provider": _PROVIDER_KEY, "custom_handler": _ROUTER})
    from litellm.utils import custom_llm_setup

    custom_llm_setup()
    return SCRIPTED_PREFIX + name


def unregister_scripted(name: str) -> None:
    """Forget `scripted/<name>` (no error if it was never registered)."""
    _ROUTER.providers.pop(name, None)


def _respond(provider: ScriptedProvider, name: str, messages: list[Any], kwargs: dict[str, Any]) -> ModelResponse:
    optional = kwargs.get("optional_params") or {}
    model_response: ModelResponse = kwargs.get("model_response") or ModelResponse()
    plain = [_as_dict(m) for m in messages]
    tools = optional.get("tools")
    reply = provider.reply(name, plain, [_as_dict(t) for t in tools] if tools else None)
    calls: list[dict[str, Any]] = [
        {
            "id": f"call_{len(provider.requests)}_{index}",
            "type": "function",
            "function": {"name": tool, "arguments": args if isinstance(args, str) else json.dumps(args)},
        }
        for index, (tool, args) in enumerate(reply.tool_calls, start=1)
    ]
    choice = model_response.choices[0]
    choice.message = Message(content=reply.content, role="assistant", tool_calls=calls or None)
    choice.finish_reason = "tool_calls" if calls else "stop"
    prompt_tokens = _tokens("".join(_message_text(m) for m in plain))
    completion_tokens = _tokens((reply.content or "") + "".join(c["function"]["arguments"] for c in calls))
    model_response.usage = Usage(  # type: ignore[attr-defined]  # litellm sets ModelResponse.usage at run time but does not declare it
        prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, total_tokens=prompt_tokens + completion_tokens
    )
    model_response.model = SCRIPTED_PREFIX + name
    model_response._hidden_params["scripted"] = True
    return model_response


def _as_dict(item: Any) -> dict[str, Any]:
    if isinstance(item, dict):
        return dict(item)
    if hasattr(item, "model_dump"):
        return item.model_dump()
    return dict(item)


def _message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(str(part.get("text", "")) if isinstance(part, dict) else str(part) for part in content)
    calls = message.get("tool_calls") or []
    args = "".join(str((_as_dict(c).get("function") or {}).get("arguments", "")) for c in calls)
    return (content or "") + args


def _tokens(text: str) -> int:
    """A rough token count (4 characters a token), at least 1."""
    return max(1, len(text) // 4)


def _bad_request(name: str, message: str) -> Exception:
    return litellm.BadRequestError(message=message, model=SCRIPTED_PREFIX + name, llm_provider=_PROVIDER_KEY)
