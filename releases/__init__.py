"""The canonical version line in git: release tags, RC branches, the hash-chained ledger, release notes,
crash recovery and the audit (`ratchet verify`).

This face is the package's public surface: other packages import these names from `ratchet.releases`
(tests/test_architecture.py enforces it). Each name is imported from its module on first use, so
importing the face costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ratchet.agents import lazy_exports

if TYPE_CHECKING:
    from ratchet.releases.audit import AuditReport, Problem, verify_workspace
    from ratchet.releases.evidence import (
        CRITIC_CALLS,
        FLIPS,
        INTENT,
        NOTES_JSON,
        NOTES_MD,
        SMOKE,
        SPEC_JSON,
        SPEC_MD,
        SYMPTOMS,
        VERDICT,
        EvidenceReader,
        Side,
        TaskRuns,
        evidence_dir,
        flip_row,
        is_outcome_file,
        outcome_csv,
        outcome_file,
        outcome_frame,
        outcomes_of,
        task_ids,
        task_runs,
    )
    from ratchet.releases.gitstore import BOT, GitStore, Identity
    from ratchet.releases.ledger import (
        AWAITING_PERSON,
        MAIN,
        DecisionKind,
        LedgerEntry,
        actor_problem,
        ledger_path,
        parse_ledger,
    )
    from ratchet.releases.notes import FlipRow, ReleaseNotes
    from ratchet.releases.registry import CandidateRef, Registry, ReleaseRef, initialize, rejected_tag, release_tag

__all__ = [
    "AWAITING_PERSON",
    "AuditReport",
    "BOT",
    "CRITIC_CALLS",
    "CandidateRef",
    "DecisionKind",
    "EvidenceReader",
    "FLIPS",
    "FlipRow",
    "GitStore",
    "INTENT",
    "Identity",
    "LedgerEntry",
    "MAIN",
    "NOTES_JSON",
    "NOTES_MD",
    "Problem",
    "Registry",
    "ReleaseNotes",
    "ReleaseRef",
    "SMOKE",
    "SPEC_JSON",
    "SPEC_MD",
    "SYMPTOMS",
    "Side",
    "TaskRuns",
    "VERDICT",
    "actor_problem",
    "evidence_dir",
    "flip_row",
    "initialize",
    "is_outcome_file",
    "ledger_path",
    "outcome_csv",
    "outcome_file",
    "outcome_frame",
    "outcomes_of",
    "parse_ledger",
    "rejected_tag",
    "release_tag",
    "task_ids",
    "task_runs",
    "verify_workspace",
]
__getattr__ = lazy_exports(
    __name__,
    {
        "audit": ["AuditReport", "Problem", "verify_workspace"],
        "evidence": [
            "CRITIC_CALLS",
            "EvidenceReader",
            "FLIPS",
            "INTENT",
            "NOTES_JSON",
            "NOTES_MD",
            "SMOKE",
            "SPEC_JSON",
            "SPEC_MD",
            "SYMPTOMS",
            "Side",
            "TaskRuns",
            "VERDICT",
            "evidence_dir",
            "flip_row",
            "is_outcome_file",
            "outcome_csv",
            "outcome_file",
            "outcome_frame",
            "outcomes_of",
            "task_ids",
            "task_runs",
        ],
        "gitstore": ["BOT", "GitStore", "Identity"],
        "ledger": [
            "AWAITING_PERSON",
            "DecisionKind",
            "LedgerEntry",
            "MAIN",
            "actor_problem",
            "ledger_path",
            "parse_ledger",
        ],
        "notes": ["FlipRow", "ReleaseNotes"],
        "registry": ["CandidateRef", "Registry", "ReleaseRef", "initialize", "rejected_tag", "release_tag"],
    },
)
