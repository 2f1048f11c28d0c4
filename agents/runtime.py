"""The agent runtime: a multi-turn tool loop over litellm that produces a Trace."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ratchet.agents.artifact import Artifact
from ratchet.agents.contracts.guarded import excerpt, guarded_call
from ratchet.agents.contracts.model import ClauseFailure, check
from ratchet.agents.errors import UserError
from ratchet.agents.models import ModelClient
from ratchet.agents.redaction import redact_record
from ratchet.agents.structured import parse_and_validate
from ratchet.agents.templating import package_templates
from ratchet.agents.tools import Tool, tool_schema
from ratchet.agents.trace import (
    INVALID_MODEL_OUTPUT,
    GuardedCallRecord,
    Message,
    ModelCall,
    SampleRecord,
    ToolCall,
    Trace,
    Usage,
    escape_surrogates,
    reply_problem,
    storable,
)

_FEEDBACK = package_templates(Path(__file__).parent / "templates").get_template("answer_feedback.md.j2")


def select_tools(artifact: Artifact, available: Mapping[str, Tool]) -> list[Tool]:
    """The tools `agent.yaml` enables, taken from those the caller offers."""
    unknown = [name for name in artifact.spec.tools if name not in available]
    if unknown:
        offered = ", ".join(sorted(available)) or "none"
        raise UserError(
            f"{artifact.root / 'agent.yaml'}: field 'tools': unknown tool {unknown[0]!r}; available: {offered}"
        )
    return [available[name] for name in artifact.spec.tools]


async def run_agent(
    artifact: Artifact,
    task_id: str,
    task_input: str,
    client: ModelClient,
    tools: Mapping[str, Tool] | None = None,
    trial: int = 0,
    secrets: list[str] | None = None,
) -> Trace:
    """The trace of `run_agent_unredacted`, with every secret masked: what may be stored or shown.

    `secrets`: the values to mask in the trace (default: `secret_values()` of the environment now;
    an evaluation reads them once for all its runs).
    """
    trace = await run_agent_unredacted(artifact, task_id, task_input, client, tools=tools, trial=trial)
    return redact_trace(trace, secrets)


async def run_agent_unredacted(
    artifact: Artifact,
    task_id: str,
    task_input: str,
    client: ModelClient,
    tools: Mapping[str, Tool] | None = None,
    trial: int = 0,
) -> Trace:
    """Run the agent on one task until it answers without a tool call or `max_turns` runs out.

    The trace holds what the model said, secrets included: score its `final_output`, then store
    `redact_trace(trace)` only (an answer that equals a secret-shaped string is still right).
    """
    enabled = select_tools(artifact, tools or {})
    by_name = {t.name: t for t in enabled}
    schemas = [tool_schema(t) for t in enabled]
    messages = [
        Message(role="system", content=artifact.render("system", task_id=task_id)),
        Message(role="user", content=artifact.render("user", task_id=task_id, task_input=task_input)),
    ]
    started_at = datetime.now(UTC).isoformat(timespec="milliseconds")
    clock = time.perf_counter()
    model_calls: list[ModelCall] = []
    tool_calls: list[ToolCall] = []
    final_output, error = await _tool_loop(
        artifact, client, messages, by_name, schemas, trial_seed(task_id, trial), model_calls, tool_calls
    )
    guard = None
    if artifact.spec.answer_contract is not None and error is None:
        final_output, guard = await _guard_answer(artifact, client, messages, final_output, task_input)
    usage = sum((c.usage for c in model_calls), Usage()) + (guard.usage if guard else Usage())
    return Trace(
        task_id=task_id,
        trial=trial,
        agent=artifact.spec.name,
        artifact_hash=artifact.content_hash,
        model=client.model,
        simulated=client.simulated,
        messages=messages,
        model_calls=model_calls,
        tool_calls=tool_calls,
        final_output=final_output,
        error=error,
        started_at=started_at,
        duration_s=round(time.perf_counter() - clock, 6),
        usage=usage,
        answer_guard=guard,
    )


async def _tool_loop(
    artifact: Artifact,
    client: ModelClient,
    messages: list[Message],
    tools: Mapping[str, Tool],
    schemas: list[dict[str, Any]],
    seed: int,
    model_calls: list[ModelCall],
    tool_calls: list[ToolCall],
) -> tuple[str, str | None]:
    """Model turns (and the tool calls they ask for) until an answer without a tool call: (final output,
    error). Appends to `messages`, `model_calls` and `tool_calls` as it goes."""
    for turn in range(artifact.spec.max_turns):
        reply = await client.complete(messages, schemas, turn, seed=seed)
        model_calls.append(reply.call)
        problem = reply_problem(reply.message)  # not Unicode text: the run ends here, its reply kept escaped
        messages.append(reply.message if problem is None else storable(reply.message))
        if problem is not None:
            return "", f"{INVALID_MODEL_OUTPUT}: turn {turn}: {problem}"
        if not reply.message.tool_calls:
            return reply.message.content or "", None
        for request in reply.message.tool_calls:
            call = await _run_tool(tools, request.id, request.name, request.arguments, turn)
            tool_calls.append(call)
            messages.append(Message(role="tool", content=call.result, tool_call_id=request.id, name=request.name))
    return "", f"no final answer after max_turns={artifact.spec.max_turns} turns"


def trial_seed(task_id: str, trial: int) -> int:
    """The sampling seed of one (task, trial): stable across processes, different per trial."""
    return int(hashlib.sha256(f"{task_id}:{trial}".encode()).hexdigest()[:8], 16)


async def _guard_answer(
    artifact: Artifact, client: ModelClient, messages: list[Message], answer: str, task_input: str
) -> tuple[str, GuardedCallRecord]:
    """The final answer checked against the artifact's answer contract (FGGM).

    The tool loop's answer is sample 0. If it breaks the contract the model is told how (the
    first broken clause) and sampled again, up to the contract's K samples in all, then the
    proven fallback is used. Returns the answer as JSON text and the record of what happened.
    """
    contract = artifact.contracts[artifact.spec.answer_contract or ""]
    given = {"task": task_input}
    started = time.perf_counter()
    value, problem = parse_and_validate(answer, contract.output_schema)
    failures = [ClauseFailure(clause="schema", reason=problem)] if problem else check(contract, given, value)
    first = SampleRecord(
        index=0, temperature=client.params.temperature, text=excerpt(answer), failures=failures, usage=Usage()
    )
    if not failures:
        record = GuardedCallRecord(
            contract=contract.name, samples=[first], source="sample", duration_s=round(time.perf_counter() - started, 6)
        )
        return json.dumps(value, ensure_ascii=False), record
    feedback = Message(role="user", content=_FEEDBACK.render(failure=failures[0]).strip())
    result = await guarded_call(client, [*messages, feedback], contract, given, samples=contract.samples - 1)
    again = [s.model_copy(update={"index": s.index + 1}) for s in result.record.samples]
    record = result.record.model_copy(
        update={"samples": [first, *again], "duration_s": round(time.perf_counter() - started, 6)}
    )
    return json.dumps(result.value, ensure_ascii=False), record


async def _run_tool(tools: Mapping[str, Tool], call_id: str, name: str, raw_args: str, turn: int) -> ToolCall:
    started = time.perf_counter()
    arguments: dict[str, Any] = {}
    error = None
    try:
        parsed = json.loads(raw_args or "{}")
        arguments = parsed if isinstance(parsed, dict) else {}
    except json.JSONDecodeError:
        error = "ToolArgumentError: arguments are not valid JSON"
    tool = tools.get(name)
    if tool is None:
        error = f"UnknownTool: no tool named {name!r} (available: {', '.join(sorted(tools)) or 'none'})"
    if error is not None or tool is None:  # no tool always comes with an error
        result = f"error: {error}"
    else:
        result = escape_surrogates(await tool.call(arguments))  # what code printed or raised, as text
    return ToolCall(
        turn=turn,
        id=call_id,
        name=name,
        arguments=arguments,
        result=result,
        duration_s=round(time.perf_counter() - started, 6),
        error=error,
    )


def redact_trace(trace: Trace, secrets: list[str] | None = None) -> Trace:
    """The trace with every known secret value masked in every string it holds."""
    return redact_record(trace, secrets)
