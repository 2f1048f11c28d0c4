"""`sim/<world>`: Ratchet's offline SIMULATED model as a litellm custom provider.

Import this module through `ratchet.agents.setup_models()`, which sets
`LITELLM_LOCAL_MODEL_COST_MAP` before litellm is imported. This file only
translates between litellm's chat format and the pure behaviour in `sim_world`.

Every response says it is simulated: `model` reads "sim/<world>",
`system_fingerprint` is "ratchet-sim/<world>" and `_hidden_params["simulated"]`
is True. The answer depends only on the messages, the tools and the `seed` (which
draws the world's per-sample noise): temperature, max_tokens and the other sampling
parameters are accepted and ignored.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import litellm
from litellm.types.utils import Message, ModelResponse, Usage

from ratchet.agents.errors import UserError
from ratchet.agents.providers import sim_qa, sim_world
from ratchet.agents.providers.no_streaming import NoStreamingProvider

SIM_FINGERPRINT_PREFIX = "ratchet-sim/"


def _field(item: Any, key: str) -> Any:
    """Read `key` from a dict or from an object (litellm may hand either)."""
    return item.get(key) if isinstance(item, dict) else getattr(item, key, None)


def _text(content: Any) -> str:
    """The text of a message's content: a string or a list of content parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(str(_field(part, "text") or "") for part in content)


def _has_python_tool(tools: list[Any] | None) -> bool:
    return any(_field(_field(tool, "function") or {}, "name") == "python" for tool in tools or [])


def read_conversation(messages: list[Any]) -> sim_world.Conversation:
    """How many tool calls the assistant made so far, and the last tool result."""
    calls = sum(len(_field(m, "tool_calls") or []) for m in messages if _field(m, "role") == "assistant")
    results = [_text(_field(m, "content")) for m in messages if _field(m, "role") == "tool"]
    return sim_world.Conversation(tool_calls_made=calls, last_tool_result=results[-1] if results else None)


def simulate(
    world_name: str, messages: list[Any], tools: list[Any] | None, seed: int | None = None
) -> tuple[sim_world.Reply, str | None]:
    """The simulated reply to one request, and the id of the task it recognised (or None).

    With a `seed`, the world's per-sample noise applies; the sample is the seed plus a hash of the
    prompt, so two agent versions asked with the same seed still draw independent noise.
    """
    if world_name in sim_qa.qa_worlds():
        return _simulate_qa(world_name, messages, seed)
    world = sim_world.load_world(world_name)
    instructions = [_text(_field(m, "content")) for m in messages if _field(m, "role") in ("system", "user")]
    text = "\n".join(instructions)
    task = sim_world.find_task(text)
    if task is None:
        return sim_world.Reply("final", sim_world.NO_TASK_ANSWER), None
    traits = sim_world.detect_traits(world, text.replace(task.prompt.strip(), " "), _has_python_tool(tools))
    sample = None if seed is None else f"{seed}:{hashlib.sha256(text.encode()).hexdigest()[:16]}"
    return sim_world.respond(world, task, traits, read_conversation(messages), sample), task.task_id


def _simulate_qa(world_name: str, messages: list[Any], seed: int | None) -> tuple[sim_world.Reply, str | None]:
    """A QA world (worlds/qa/): one final answer, no tool calls."""
    world = sim_qa.load_qa_world(world_name)
    text = "\n".join(_text(_field(m, "content")) for m in messages if _field(m, "role") in ("system", "user"))
    item = sim_qa.find_item(world, text)
    if item is None:
        return sim_world.Reply("final", sim_world.NO_TASK_ANSWER), None
    traits = sim_qa.detect_traits(world, text.replace(item.question, " "))
    sample = None if seed is None else f"{seed}:{hashlib.sha256(text.encode()).hexdigest()[:16]}"
    return sim_world.Reply("final", sim_qa.answer(world, item, traits, sample)), item.item_id


def _tool_call_id(task_id: str | None, number: int) -> str:
    digest = hashlib.sha256((task_id or "").encode()).hexdigest()[:10]
    return f"call_{digest}_{number}"


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def build_response(
    model_response: ModelResponse,
    world_name: str,
    messages: list[Any],
    tools: list[Any] | None,
    seed: int | None = None,
) -> ModelResponse:
    """Fill litellm's ModelResponse with the simulated reply."""
    reply, task_id = simulate(world_name, messages, tools, seed)
    choice = model_response.choices[0]
    if reply.kind == "tool_call":
        number = read_conversation(messages).tool_calls_made + 1
        arguments = json.dumps({"code": reply.text})
        call = {
            "id": _tool_call_id(task_id, number),
            "type": "function",
            "function": {"name": "python", "arguments": arguments},
        }
        choice.message = Message(content=None, role="assistant", tool_calls=[call])
        choice.finish_reason = "tool_calls"
        completion_text = arguments
    else:
        choice.message = Message(content=reply.text, role="assistant")
        choice.finish_reason = "stop"
        completion_text = reply.text
    prompt_text = "".join(_text(_field(m, "content")) for m in messages)
    prompt_tokens, completion_tokens = _tokens(prompt_text), _tokens(completion_text)
    model_response.usage = Usage(  # type: ignore[attr-defined]  # litellm sets ModelResponse.usage at run time but does not declare it
        prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, total_tokens=prompt_tokens + completion_tokens
    )
    model_response.model = f"sim/{world_name}"
    model_response.system_fingerprint = SIM_FINGERPRINT_PREFIX + world_name
    model_response._hidden_params["simulated"] = True
    return model_response


class SimProvider(NoStreamingProvider):
    """litellm handler for `model="sim/<world>"` (sync and async, no streaming)."""

    no_streaming = "the simulated model sim/<world> does not stream; call it without stream=True"

    def completion(
        self,
        model: str,
        messages: list[Any],
        api_base: str,
        custom_prompt_dict: dict[str, Any],
        model_response: ModelResponse,
        print_verbose: Callable[..., Any],
        encoding: Any,
        api_key: Any,
        logging_obj: Any,
        optional_params: dict[str, Any],
        *args: Any,
        **kwargs: Any,
    ) -> ModelResponse:
        """Answer one chat request; `model` is the world's name (litellm strips "sim/")."""
        world_name = model.removeprefix("sim/")
        try:
            return build_response(
                model_response, world_name, messages, optional_params.get("tools"), optional_params.get("seed")
            )
        except UserError as exc:
            raise litellm.BadRequestError(message=str(exc), model=f"sim/{world_name}", llm_provider="sim") from exc

    async def acompletion(self, *args: Any, **kwargs: Any) -> ModelResponse:
        """Same as `completion`: the simulator is pure and fast, nothing to await."""
        return self.completion(*args, **kwargs)
