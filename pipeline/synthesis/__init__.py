"""Release-candidate synthesis, driven by the release's own `meta/` procedure."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ratchet.agents import ModelClient, ModelParams
from ratchet.critics import EngineeringSpec
from ratchet.pipeline.synthesis.candidate import Proposal
from ratchet.pipeline.synthesis.llm import propose_with_llm
from ratchet.pipeline.synthesis.playbook import LlmSettings, load_meta, propose_from_playbook

__all__ = ["Proposal", "synthesize"]

ClientFactory = Callable[[str, ModelParams], ModelClient]
Validator = Callable[[dict[str, str | None]], str | None]


def synthesize(
    spec: EngineeringSpec,
    files: dict[str, str],
    rejected: set[str],
    client_for: ClientFactory | None = None,
    validate: Validator | None = None,
    history: list[str] | None = None,
) -> Proposal | None:
    """Exactly one proposal from the first strategy that has one, or None (no RC this cycle).

    Strategy order and budgets come from the release's own `meta/synthesizer.yaml`. The llm
    strategy needs `client_for(model, params)` (resolves ratchet.toml aliases) and `validate`
    (the same check an RC gets before evaluation); `history` (what the gate did with earlier
    RCs, one line each) goes into its prompt.
    """
    settings, playbook = load_meta(spec.agent, files)
    for strategy in settings.strategies:
        if strategy == "playbook":
            proposal = propose_from_playbook(spec, files, settings, playbook, rejected)
        else:
            proposal = _llm(
                spec,
                files,
                rejected if settings.skip_rejected else set(),
                settings.llm,
                client_for,
                validate,
                history or [],
            )
        if proposal is not None:
            return proposal
    return None


def _llm(
    spec: EngineeringSpec,
    files: dict[str, str],
    rejected: set[str],
    llm: LlmSettings | None,
    client_for: ClientFactory | None,
    validate: Validator | None,
    history: list[str],
) -> Proposal | None:
    assert llm is not None  # SynthesizerSettings requires it with strategy llm
    if client_for is None or validate is None:
        raise ValueError("the llm strategy needs client_for and validate")
    client = client_for(llm.model, ModelParams(temperature=llm.temperature, max_tokens=llm.max_tokens))

    async def run() -> Proposal | None:
        try:
            return (await propose_with_llm(spec, files, rejected, client, llm.samples, validate, history))[0]
        finally:
            await client.aclose()

    return asyncio.run(run())
