"""Guarded model calls (SEVerA's FGGM): rejection sampling against a contract, then a fallback.

    result = await guarded_call(client, messages, contract, input)
    result.value       # satisfies `contract` for `input`, whatever the model did
    result.record      # samples drawn, which clauses failed on which sample, fallback used

Up to `contract.samples` samples are drawn (structured outputs when the backend supports
them; the temperature rises per sample so retries differ). The first sample that satisfies
the schema and every clause is returned. Otherwise the fallback is: an optional computed
fallback given by the caller (checked against the contract like a sample), then the
contract's declared fallback, which the prover checked when the contract was loaded.

A backend failure (ModelBackendError) counts as a failed sample: the guarantee is about the
returned value, and a model that is down gets the fallback, not a crash.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ratchet.agents.contracts.fallback import FallbackRenderError, render_fallback
from ratchet.agents.contracts.model import ClauseFailure, Contract, check
from ratchet.agents.errors import ModelBackendError, StateError
from ratchet.agents.models import ModelClient
from ratchet.agents.redaction import redact
from ratchet.agents.structured import complete_json
from ratchet.agents.trace import GuardedCallRecord, Message, SampleRecord

TEMPERATURE_STEP = 0.3
MAX_TEMPERATURE = 1.2
KEEP_TEXT = 400
__all__ = ["GuardedCallRecord", "GuardedResult", "SampleRecord", "guarded_call", "sample_temperatures"]


@dataclass(frozen=True)
class GuardedResult:
    value: Any
    record: GuardedCallRecord


def sample_temperatures(base: float, samples: int) -> list[float]:
    """The base temperature first, then higher ones, so a rejected sample is not simply repeated."""
    return [round(min(base + TEMPERATURE_STEP * i, max(base, MAX_TEMPERATURE)), 3) for i in range(samples)]


async def guarded_call(
    client: ModelClient,
    messages: list[Message],
    contract: Contract,
    input: Any,
    computed_fallback: Callable[[], Any] | None = None,
    samples: int | None = None,
    checks: Mapping[str, Callable[[Any], str | None]] | None = None,
) -> GuardedResult:
    """A value that satisfies `contract` for `input`: the first good sample, else a fallback.

    `checks`: named conditions the expression language cannot state (a patch applies, an artifact
    loads), each returning None or why the value fails; checked on samples and on the computed
    fallback after the contract's own clauses. The declared fallback must not need them.
    """

    def failures_of(value: Any) -> list[ClauseFailure]:
        failures = check(contract, input, value)
        for name, condition in (checks or {}).items():
            if failures:
                break
            why = condition(value)
            if why is not None:
                failures.append(ClauseFailure(clause=name, reason=why))
        return failures

    started = time.perf_counter()
    records: list[SampleRecord] = []
    count = contract.samples if samples is None else samples
    for index, temperature in enumerate(sample_temperatures(client.params.temperature, count)):
        record, value = await _sample(client, messages, contract, index, temperature, failures_of)
        records.append(record)
        if record.backend_error is None and not record.failures:
            return GuardedResult(value, _record(contract, records, "sample", started))

    computed_failures: list[ClauseFailure] = []
    if computed_fallback is not None:
        value = computed_fallback()
        computed_failures = failures_of(value)
        if not computed_failures:
            return GuardedResult(value, _record(contract, records, "computed_fallback", started))
    value = declared_fallback(contract, input)
    return GuardedResult(value, _record(contract, records, "fallback", started, computed_failures))


async def _sample(
    client: ModelClient,
    messages: list[Message],
    contract: Contract,
    index: int,
    temperature: float,
    failures_of: Callable[[Any], list[ClauseFailure]],
) -> tuple[SampleRecord, Any]:
    """One sample and what it broke (a backend error is recorded as such and never accepted)."""
    try:
        answer = await complete_json(
            client, messages, contract.output_schema, turn=index, name=contract.name, temperature=temperature
        )
    except ModelBackendError as exc:
        return SampleRecord(index=index, temperature=temperature, text="", backend_error=str(exc)), None
    if answer.error is not None:
        failures = [ClauseFailure(clause="schema", reason=answer.error)]
    else:
        failures = failures_of(answer.value)
    record = SampleRecord(
        index=index, temperature=temperature, text=excerpt(answer.text), failures=failures, usage=answer.call.usage
    )
    return record, answer.value


def declared_fallback(contract: Contract, input: Any) -> Any:
    """The contract's declared fallback for `input`; StateError when the input breaks input_schema (the
    prover shows the fallback satisfies every clause for inputs that match it)."""
    try:
        value = render_fallback(contract.fallback, input)
    except FallbackRenderError as exc:
        raise StateError(
            f"contract {contract.name!r}: {exc}; the input does not match the contract's input_schema"
        ) from exc
    broken = check(contract, input, value)
    if broken:  # the prover rules this out for inputs that match input_schema
        raise StateError(
            f"contract {contract.name!r}: its fallback breaks clause {broken[0].clause!r} "
            f"({broken[0].reason}) for this input; the input does not match input_schema"
        )
    return value


def _record(
    contract: Contract,
    samples: list[SampleRecord],
    source: Literal["sample", "computed_fallback", "fallback"],
    started: float,
    computed: list[ClauseFailure] | None = None,
) -> GuardedCallRecord:
    return GuardedCallRecord(
        contract=contract.name,
        samples=samples,
        source=source,
        computed_fallback_failures=computed or [],
        duration_s=round(time.perf_counter() - started, 6),
    )


def excerpt(text: str) -> str:
    """A sample's text as records keep it: redacted, at most KEEP_TEXT characters."""
    text = redact(text)
    return text if len(text) <= KEEP_TEXT else text[: KEEP_TEXT - 3] + "..."
