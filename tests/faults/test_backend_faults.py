"""Model backend faults: 5xx, hangs past the timeout, connection resets, malformed and truncated bodies.

The faulty server (`faulty_model_server.py`) answers as the simulated models do and fails a seeded
share of requests. On both transports (openai-http, litellm) its answers are the simulated models'
and each fault kind alone is retried as transient by `ModelClient`. A whole cycle whose models fail
30% of their requests (every kind seen; transport openai-http, a litellm cycle takes half as long
again) records the same decision, flips and outcome tables as the same cycle without faults, and
leaks neither the API key nor a traceback. `benchmarks/fault_campaign.py` runs more seeds
(`backend_campaign.run_backend_campaign`).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from pathlib import Path

import pytest

from ratchet.agents.artifact import ModelParams
from ratchet.agents.errors import ModelBackendError
from ratchet.agents.model_config import ModelConfig
from ratchet.agents.models import ModelClient
from ratchet.agents.trace import Message
from tests.faults.backend_campaign import (
    KEY_VALUE,
    BackendSettings,
    CycleRun,
    backend_cycle,
    differences,
    leaks,
)
from tests.faults.faulty_model_server import FAULT_KINDS, FaultPlan, FaultyModelServer

TRANSPORTS = ("openai-http", "litellm")
SEED = 7
RATE = 0.3


def ask(
    server: FaultyModelServer,
    transport: str,
    retries: int,
    world: str = "humaneval",
    prompt: str = "Complete this function.",
) -> Message:
    """One chat completion through Ratchet's client against the server."""
    config = ModelConfig(
        model=f"hosted_vllm/{world}",
        api_base=server.base_url,
        transport=transport,
        timeout_s=0.5,
        retries=retries,
        backoff_s=0.01,
        backoff_max_s=0.05,
    )
    client = ModelClient(config, ModelParams())

    async def once() -> Message:
        try:
            return (await client.complete([Message(role="user", content=prompt)], [], 0, seed=3)).message
        finally:
            await client.aclose()

    return asyncio.run(once())


def sim_answer(world: str, prompt: str) -> Message:
    """What the offline provider `sim/<world>` answers to the same request."""
    client = ModelClient(ModelConfig(model=f"sim/{world}"), ModelParams())
    return asyncio.run(client.complete([Message(role="user", content=prompt)], [], 0, seed=3)).message


def test_fault_decisions_are_seeded_reproducible_and_near_the_rate() -> None:
    plan = FaultPlan(rate=RATE, seed=SEED)
    digests = [hashlib.sha256(str(n).encode()).hexdigest() for n in range(4000)]
    faults = [plan.fault_for(d, attempt) for d in digests for attempt in range(2)]
    kinds = Counter(f for f in faults if f is not None)
    assert 0.27 < sum(kinds.values()) / len(faults) < 0.33
    assert set(kinds) == set(FAULT_KINDS) and min(kinds.values()) > 0.15 * sum(kinds.values()), kinds
    assert faults == [FaultPlan(rate=RATE, seed=SEED).fault_for(d, a) for d in digests for a in range(2)]
    assert faults != [FaultPlan(rate=RATE, seed=SEED + 1).fault_for(d, a) for d in digests for a in range(2)]
    assert all(FaultPlan(rate=0.0).fault_for(d, 0) is None for d in digests)
    with pytest.raises(ValueError, match="rate"):
        FaultPlan(rate=1.5)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_answers_are_the_simulated_models_whatever_faults_came_before(transport: str, demo_template: Path) -> None:
    from ratchet.gates.suite import load_suite

    prompts = [
        (world, task.input)
        for world in ("humaneval", "tqb")
        for task in load_suite(demo_template, world).split("gate")[:3]
    ]
    with FaultyModelServer(FaultPlan(rate=0.5, seed=SEED, hang_s=2.0)) as server:
        answers = [ask(server, transport, retries=12, world=world, prompt=prompt) for world, prompt in prompts]
        counts = server.counts()
    assert answers == [sim_answer(world, prompt) for world, prompt in prompts]
    assert counts["answered"] == len(prompts) < counts["requests"] and counts["bad_requests"] == 0
    assert all(answer.content != "I cannot solve this task." for answer in answers), "the tasks were recognised"


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_every_fault_kind_is_retried_as_transient_then_reported_in_one_line(kind: str, transport: str) -> None:
    with FaultyModelServer(FaultPlan(rate=1.0, seed=SEED, kinds=(kind,), hang_s=2.0)) as server:
        with pytest.raises(ModelBackendError) as failure:
            ask(server, transport, retries=2)
        counts = server.counts()
    # litellm's HTTP handler itself resent a request once on a failed connection up to 1.106; 1.109 does not
    per_attempt = (1, 2) if (transport, kind) == ("litellm", "reset") else (1,)
    assert counts["requests"] == counts["faults"][kind], "every request got the fault"
    assert counts["requests"] in {3 * n for n in per_attempt}, "the first attempt and both retries"
    message = str(failure.value)
    assert "\n" not in message and "hosted_vllm/humaneval" in message and "after 3 attempts" in message


@pytest.fixture(scope="module")
def prefect_url(prefect_server: None) -> str:
    from prefect.settings import PREFECT_API_URL

    return str(PREFECT_API_URL.value())


@pytest.fixture(scope="module")
def reference(demo_template: Path, tmp_path_factory: pytest.TempPathFactory, prefect_url: str) -> CycleRun:
    """The demo cycle with its models served by the server, fault-free."""
    run = backend_cycle(
        demo_template, tmp_path_factory.mktemp("backend") / "reference", FaultPlan(rate=0.0), prefect_url
    )
    assert run.exit_codes == [0], run.output[-3000:]
    assert run.verdict is not None and run.verdict["decision"] == "promote", run.verdict
    assert run.counts["requests"] == run.counts["answered"] > 0 and not any(run.counts["faults"].values())
    return run


@pytest.mark.slow
def test_a_cycle_with_30_percent_backend_faults_reaches_the_fault_free_verdict(
    reference: CycleRun, demo_template: Path, tmp_path: Path, prefect_url: str
) -> None:
    settings = BackendSettings()  # openai-http, the transport of hosted_vllm/ models (litellm: ~50% slower)
    plan = FaultPlan(rate=RATE, seed=SEED, hang_s=settings.hang_s)
    run = backend_cycle(demo_template, tmp_path / "ws", plan, prefect_url, settings)

    assert run.exit_codes == [0], f"no retries ran out, no restart: {run.output[-3000:]}"
    faults = run.counts["faults"]
    assert all(faults[kind] > 0 for kind in FAULT_KINDS), faults
    assert 0.2 < sum(faults.values()) / run.counts["requests"] < 0.4, run.counts
    assert differences(reference.verdict, run.verdict) == []
    assert run.authorizations == {f"Bearer {KEY_VALUE}"}, "the key was sent, so its absence below means something"
    assert leaks(run) == []
