"""The one model call path of Ratchet: retries on transient errors only, bounded concurrency,
token and cost accounting, structured outputs, optional Router.

Requests travel through litellm (every provider, Routers), or, for a vLLM server
(`hosted_vllm/...` with an api_base), through the lean `agents.openai_http` transport; the
retries, accounting and records are the same either way.

`setup_models()` is the explicit setup step (no import-time side effects): it keeps
litellm offline (local cost map), quiet (no per-call logging work), and registers
Ratchet's own providers.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from ratchet.agents.artifact import ModelParams
from ratchet.agents.errors import ModelBackendError, StateError, UserError
from ratchet.agents.model_config import ModelConfig
from ratchet.agents.openai_http import HttpStatusError, MalformedResponseError, OpenAIHttpTransport
from ratchet.agents.providers import is_simulated, register_providers
from ratchet.agents.redaction import redact, register_key_variables
from ratchet.agents.trace import Message, ModelCall, ToolCallRequest, Usage

_READY = False
_DEFERRED = False  # setup_models(defer=True) was called: prepare litellm on first use


def setup_models(defer: bool = False) -> None:
    """Prepare litellm once per process: offline cost map, no telemetry or logging callbacks, our providers.

    `defer`: only allow it, and prepare litellm when the first ModelClient is made. The CLI defers:
    importing litellm takes seconds, and commands such as `ratchet gate` on result files never call a
    model."""
    global _READY, _DEFERRED
    if _READY:
        return
    if defer:
        _DEFERRED = True
        return
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    litellm.drop_params = True
    # (not turn_off_message_logging: with no callbacks it only adds a deepcopy per call)
    register_providers()
    _READY = True


def is_transient(exc: BaseException) -> bool:
    """Rate limits, 5xx, timeouts, connection errors, malformed responses: worth a retry. 4xx: never."""
    if isinstance(exc, HttpStatusError):
        return exc.transient
    if isinstance(
        exc, (MalformedResponseError, TimeoutError, aiohttp.ClientConnectionError, aiohttp.ClientPayloadError)
    ):
        return True
    import litellm

    if isinstance(
        exc,
        (
            litellm.RateLimitError,
            litellm.Timeout,
            litellm.APIConnectionError,
            litellm.InternalServerError,
            litellm.ServiceUnavailableError,
            litellm.BadGatewayError,
            litellm.APIResponseValidationError,
        ),
    ):
        return True
    if isinstance(exc, litellm.APIError):
        status = getattr(exc, "status_code", None)
        return not (isinstance(status, int) and 400 <= status < 500)  # 5xx, or a 200 with a malformed body
    return False


@dataclass(frozen=True)
class ModelReply:
    """The assistant message of one call plus its accounting."""

    message: Message
    call: ModelCall


class ModelClient:
    """Calls one configured model with fixed sampling parameters."""

    def __init__(self, config: ModelConfig | str, params: ModelParams, api_base: str | None = None) -> None:
        if not _READY and _DEFERRED:
            setup_models()
        if not _READY:
            raise StateError(
                "litellm is not set up in this process: call ratchet.pipeline.setup() (or "
                "ratchet.agents.setup_models()) once before making a ModelClient"
            )
        self.config = config if isinstance(config, ModelConfig) else ModelConfig(model=config, api_base=api_base)
        self.params = params
        self.model = self.config.model
        self.api_base = self.config.api_base
        self.simulated = is_simulated(self.model)
        self._router = _router(self.config) if len(self.config.deployments) > 1 else None
        self._http = _http_transport(self.config, params) if self.config.uses_http_transport() else None
        self._gates: dict[int, asyncio.Semaphore] = {}
        self._fixed = self._fixed_kwargs()

    @property
    def transport(self) -> str:
        """ "openai-http" or "litellm": how this client's requests travel."""
        return "litellm" if self._http is None else "openai-http"

    def _fixed_kwargs(self) -> dict[str, Any]:
        """The request arguments that never change between calls (built once, not per call)."""
        if self._http is not None:  # the OpenAI request body itself
            return {
                "model": self.config.served_name(),
                "temperature": self.params.temperature,
                "max_tokens": self.params.max_tokens,
            }
        kwargs: dict[str, Any] = {
            "model": self.model if self._router is None else _group(self.config),
            "temperature": self.params.temperature,
            "max_tokens": self.params.max_tokens,
            "timeout": self.config.timeout_s or self.params.timeout_s,
        }
        if self._router is None:
            kwargs["max_retries"] = 0  # ours are the only retries
            if self.api_base:
                kwargs["api_base"] = self.api_base
            if self.config.api_key_env:
                kwargs["api_key"] = _key(self.config.api_key_env)
        return kwargs

    def _gate(self) -> asyncio.Semaphore:
        loop = id(asyncio.get_running_loop())
        if loop not in self._gates:
            self._gates = {loop: asyncio.Semaphore(self.config.max_concurrency)}
        return self._gates[loop]

    async def complete(
        self,
        messages: list[Message],
        tools: list[dict[str, Any]],
        turn: int,
        response_format: dict[str, Any] | None = None,
        temperature: float | None = None,
        seed: int | None = None,
    ) -> ModelReply:
        """One chat completion, retried on transient errors; ModelBackendError when it still fails.

        `temperature` overrides the configured one for this call (guarded calls vary it per sample);
        `seed` is the OpenAI sampling seed (the runtime sends one per task and trial, so a trial is
        reproducible where the backend honours it, and the simulator draws its noise from it).
        """
        kwargs = dict(self._fixed, messages=[m.to_openai() for m in messages])
        if temperature is not None:
            kwargs["temperature"] = temperature
        if seed is not None:
            kwargs["seed"] = seed
        if tools:
            kwargs["tools"] = tools
        if tools and self._http is None:
            # litellm 1.106 imports its MCP proxy handler (and the optional `mcp` package) whenever
            # tools are passed; Ratchet's tools are plain functions, so skip that path.
            kwargs["_skip_mcp_handler"] = True
        if response_format is not None:
            kwargs["response_format"] = response_format
        started = time.perf_counter()
        attempts = 1
        try:
            async with self._gate():
                try:  # the common case, without building the retry machinery
                    response = await self._send(kwargs)
                except Exception as first:
                    if not is_transient(first) or self.config.retries == 0:
                        raise
                    await asyncio.sleep(random.uniform(0, self.config.backoff_s))  # full jitter, then exponential
                    async for attempt in self._retrying():
                        with attempt:
                            attempts += 1
                            response = await self._send(kwargs)
        except Exception as exc:
            raise ModelBackendError(self._failure(exc, turn, attempts)) from exc
        return _reply(response, self, turn, time.perf_counter() - started, attempts - 1)

    async def aclose(self) -> None:
        """Close the HTTP connections this client keeps open in the running event loop."""
        if self._http is not None:
            await self._http.aclose()

    async def _send(self, kwargs: dict[str, Any]) -> Any:
        if self._http is not None:
            return _Completion.from_json(await self._http.chat(kwargs))
        if self._router is not None:
            return await self._router.acompletion(**kwargs)
        import litellm

        return await litellm.acompletion(**kwargs)

    def _retrying(self) -> AsyncRetrying:
        """Retries after a first transient failure: up to `retries` more attempts, jittered backoff."""
        return AsyncRetrying(
            stop=stop_after_attempt(self.config.retries),
            wait=wait_random_exponential(multiplier=2 * self.config.backoff_s, max=self.config.backoff_max_s),
            retry=retry_if_exception(is_transient),
            reraise=True,
        )

    def _failure(self, exc: Exception, turn: int, attempts: int) -> str:
        detail = redact(" ".join(str(exc).split())) or _silent_failure(exc, self)
        detail = detail if len(detail) <= 300 else detail[:297] + "..."
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        return f"model {self.model!r} failed on turn {turn}{tries}: {type(exc).__name__}: {detail}"

    def cost(self, usage: Usage) -> float | None:
        """USD for these tokens at the configured prices, or None when no price is known."""
        cfg = self.config
        if cfg.input_cost_per_token is None and cfg.output_cost_per_token is None:
            return None
        return usage.prompt_tokens * (cfg.input_cost_per_token or 0.0) + usage.completion_tokens * (
            cfg.output_cost_per_token or 0.0
        )

    def supports_structured_outputs(self) -> bool:
        """Whether to send response_format json_schema (vLLM does); else prompt and validate."""
        if self.config.structured_outputs is not None:
            return self.config.structured_outputs
        if self.model.startswith("hosted_vllm/"):
            return True
        if self.simulated or self.model.startswith("scripted/"):
            return False
        import litellm

        try:
            return bool(litellm.supports_response_schema(model=self.model))
        except Exception:  # noqa: BLE001 - an unknown model: litellm raises instead of answering
            return False


def _reply(response: Any, client: ModelClient, turn: int, duration: float, retries: int) -> ModelReply:
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
        turn=turn,
        model=client.model,
        duration_s=round(duration, 6),
        usage=counts,
        finish_reason=choice.finish_reason,
        simulated=client.simulated,
        retries=retries,
        cost_usd=client.cost(counts),
    )
    return ModelReply(message=message, call=call)


class _Completion:
    """A chat completion JSON body with the attribute access `_reply` uses for litellm's objects."""

    __slots__ = ("choices", "usage")

    def __init__(self, choices: list[Any], usage: Any) -> None:
        self.choices = choices
        self.usage = usage

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> _Completion:
        try:
            choice = data["choices"][0]
            message = choice["message"]
            calls = [
                _Attrs(
                    id=c["id"], function=_Attrs(name=c["function"]["name"], arguments=c["function"].get("arguments"))
                )
                for c in message.get("tool_calls") or []
            ]
            first = _Attrs(
                message=_Attrs(content=message.get("content"), tool_calls=calls),
                finish_reason=choice.get("finish_reason"),
            )
        except (KeyError, TypeError, IndexError) as exc:
            raise MalformedResponseError(f"a 200 that is not a chat completion: missing {exc}") from exc
        usage = data.get("usage") or {}
        return cls(
            [first], _Attrs(prompt_tokens=usage.get("prompt_tokens"), completion_tokens=usage.get("completion_tokens"))
        )


class _Attrs:
    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)


def _silent_failure(exc: Exception, client: ModelClient) -> str:
    """Words for exceptions without a message (a timeout says nothing about itself)."""
    if isinstance(exc, TimeoutError):
        return f"no answer within {client.config.timeout_s or client.params.timeout_s} s"
    return "no detail given"


def _http_transport(config: ModelConfig, params: ModelParams) -> OpenAIHttpTransport:
    assert config.api_base is not None  # uses_http_transport() checked it
    key = _key(config.api_key_env) if config.api_key_env else None
    return OpenAIHttpTransport(config.api_base, key, timeout_s=config.timeout_s or params.timeout_s)


def _key(env_name: str) -> str:
    """The key in `$env_name`; from now on its value is redacted from every record, whatever the name."""
    register_key_variables([env_name])
    value = os.environ.get(env_name)
    if not value:
        raise UserError(
            f"the model's api_key_env names ${env_name}, which is not set; export it (the key is never stored)"
        )
    return value


def _group(config: ModelConfig) -> str:
    return f"ratchet-{config.behaviour_hash()[:12]}"


def _router(config: ModelConfig) -> Any:
    """A litellm Router over the deployments: shuffled load balancing; our retries move between them."""
    from litellm import Router

    model_list = []
    for d in config.deployments:
        params: dict[str, Any] = {"model": d.model}
        if d.api_base:
            params["api_base"] = d.api_base
        if d.api_key_env:
            params["api_key"] = _key(d.api_key_env)
        model_list.append({"model_name": _group(config), "litellm_params": params})
    return Router(model_list=model_list, num_retries=0, routing_strategy="simple-shuffle")
