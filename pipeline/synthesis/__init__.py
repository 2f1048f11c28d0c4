"""Release-candidate synthesis, driven by the release's own `meta/` procedure."""

from __future__ import annotations

from critics.diagnosis import EngineeringSpec
from pipeline.synthesis.candidate import Proposal
from pipeline.synthesis.playbook import load_meta, propose_from_playbook

__all__ = ["Proposal", "synthesize"]


def synthesize(spec: EngineeringSpec, files: dict[str, str], rejected: set[str]) -> Proposal | None:
    """Exactly one proposal from the first strategy that has one, or None (no RC this cycle)."""
    settings, playbook = load_meta(spec.agent, files)
    for strategy in settings.strategies:
        if strategy == "playbook":
            proposal = propose_from_playbook(spec, files, settings, playbook, rejected)
            if proposal is not None:
                return proposal
    return None
