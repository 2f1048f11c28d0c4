"""The agent runtime: a multi-turn tool loop over litellm that produces a Trace."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2

from agents.artifact import Artifact
from agents.contracts.guarded import excerpt, guarded_call
from agents.contracts.model import ClauseFailure, check
from agents.errors import UserError
from agents.models import ModelClient
from agents.redaction import might_hold_secrets, redact, secret_values
from agents.structured import parse_and_validate
from agents.tools import Tool, tool_schema
from agents.trace import GuardedCallRecord, Message, ModelCall, SampleRecord, ToolCall, Trace, Usage

_FEEDBACK = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"), undefined=jinja2.StrictUndefined,
).get_template("answer_feedback.md.j2")


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
    """Run the agent on one task until it answers without a tool call or `max_turns` runs out.

    `secrets`: the values to mask in the trace (default: `secret_values()` of the environment now;
    an evaluation reads them once for all its runs).
    """
    enabled = select_tools(artifact, tools or {})
    by_name = {t.name: t for t in enabled}
    schemas = [tool_schema(t) for t in enabled]
    messages = [
        Message(role="system", content=artifact.render("system", task_id=task_id)),
        Message(role="user", content=artifact.render("user", task_id=task_id, task_input=task_input)),
    ]
    model_calls: list[ModelCall] = []
    tool_calls: list[ToolCall] = []
    started_at = datetime.now(UTC).isoformat(timespec="milliseconds")
    clock = time.perf_counter()
    final_output, error = "", None
    seed = trial_seed(task_id, trial)
    for turn in range(artifact.spec.max_turns):
        reply = await client.complete(messages, schemas, turn, seed=seed)
        model_calls.append(reply.call)
        messages.append(reply.message)
        if not reply.message.tool_calls:
            final_output = reply.message.content or ""
            break
        for request in reply.message.tool_calls:
            call = await _run_tool(by_name, request.id, request.name, request.arguments, turn)
            tool_calls.append(call)
            messages.append(Message(role="tool", content=call.result, tool_call_id=request.id, name=request.name))
    else:
        error = f"no final answer after max_turns={artifact.spec.max_turns} turns"
    guard = None
    if artifact.spec.answer_contract is not None and error is None:
        final_output, guard = await _guard_answer(artifact, client, messages, final_output, task_input)
    usage = sum((c.usage for c in model_calls), Usage()) + (guard.usage if guard else Usage())
    trace = Trace(
        task_id=task_id, trial=trial, agent=artifact.spec.name, artifact_hash=artifact.content_hash,
        model=client.model, simulated=client.simulated, messages=messages, model_calls=model_calls,
        tool_calls=tool_calls, final_output=final_output, error=error, started_at=started_at,
        duration_s=round(time.perf_counter() - clock, 6), usage=usage, answer_guard=guard,
    )
    return redact_trace(trace, secrets)


def trial_seed(task_id: str, trial: int) -> int:
    """The sampling seed of one (task, trial): stable across processes, different per trial."""
    return int(hashlib.sha256(f"{task_id}:{trial}".encode()).hexdigest()[:8], 16)


async def _guard_answer(artifact: Artifact, client: ModelClient, messages: list[Message], answer: str,
                        task_input: str) -> tuple[str, GuardedCallRecord]:
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
    first = SampleRecord(index=0, temperature=client.params.temperature, text=excerpt(answer), failures=failures,
                         usage=Usage())
    if not failures:
        record = GuardedCallRecord(contract=contract.name, samples=[first], source="sample",
                                   duration_s=round(time.perf_counter() - started, 6))
        return json.dumps(value, ensure_ascii=False), record
    feedback = Message(role="user", content=_FEEDBACK.render(failure=failures[0]).strip())
    result = await guarded_call(client, [*messages, feedback], contract, given, samples=contract.samples - 1)
    again = [s.model_copy(update={"index": s.index + 1}) for s in result.record.samples]
    record = result.record.model_copy(update={
        "samples": [first, *again], "duration_s": round(time.perf_counter() - started, 6)})
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
    if error is not None:
        result = f"error: {error}"
    else:
        result = await tool.call(arguments)
    return ToolCall(
        turn=turn, id=call_id, name=name, arguments=arguments, result=result,
        duration_s=round(time.perf_counter() - started, 6), error=error,
    )


def redact_trace(trace: Trace, secrets: list[str] | None = None) -> Trace:
    """The trace with every known secret value masked in every string it holds."""
    secrets = secret_values() if secrets is None else secrets
    if not might_hold_secrets(trace.model_dump_json(), secrets):
        return trace
    data = trace.model_dump(mode="json")
    cleaned = _redact_strings(data, secrets)
    return trace if cleaned == data else Trace.model_validate(cleaned)


def _redact_strings(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, dict):
        return {k: _redact_strings(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_strings(v, secrets) for v in value]
    return value
