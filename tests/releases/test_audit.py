"""`ratchet verify`'s checks (releases.audit) on real repositories written through the registry."""

from __future__ import annotations

import hashlib
import io
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from ratchet.agents.errors import UserError
from ratchet.gates import GatePolicy, JudgedSplit, judge
from ratchet.gates.statistics import paired_counts
from ratchet.pipeline.workspace import init_workspace
from ratchet.releases import ledger
from ratchet.releases.audit import AuditReport, read_ledger, verify_workspace
from ratchet.releases.gitstore import BOT, Identity
from ratchet.releases.ledger import GENESIS, new_entry
from ratchet.releases.registry import CandidateRef, Registry, evidence_dir

AGENT_YAML = "agents/coder/agent.yaml"
ADA = Identity(name="Ada Lovelace", email="ada@example.com")
TASKS = [f"T/{i}" for i in range(12)]


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    path = tmp_path / "ws"
    init_workspace(path)
    return path


def git(ws: Path, *args: str) -> str:
    """git as a person working by hand in the workspace."""
    command = ["git", "-c", "user.name=Mallory", "-c", "user.email=mallory@example.com", *args]
    return subprocess.run(command, cwd=ws, check=True, capture_output=True, text=True).stdout.strip()


def _candidate(registry: Registry, ws: Path, marker: str) -> CandidateRef:
    text = (
        (ws / AGENT_YAML)
        .read_text()
        .replace("  - Keep your answer brief.\n", f"  - Keep your answer brief.\n  - {marker}\n")
    )
    return registry.create_candidate("coder", {AGENT_YAML: text.encode()}, f"rc: {marker}")


def _outcomes(passes: dict[str, list[bool]]) -> bytes:
    rows = [
        {"task_id": t, "trial": i, "passed": p, "score": float(p), "error_type": None, "message": ""}
        for t, runs in passes.items()
        for i, p in enumerate(runs)
    ]
    buffer = io.StringIO()
    pd.DataFrame(rows).to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def gate_evidence(
    fixed: int, policy: GatePolicy | None = None, undecided: int = 0
) -> tuple[dict[str, bytes], dict[str, object]]:
    """Evidence files of a gate decision over TASKS where `fixed` tasks go from 0/6 to 6/6 (p = 0.001: confirmed
    at a false discovery rate of 0.05 over the tasks), and the ledger fields record() would write for it (as
    pipeline/record.py does). The last `undecided` tasks go from 2/2 to 0/2: neither confirmed nor cleared, they
    make the verdict inconclusive."""
    policy = policy or GatePolicy(name="default")
    broken = set(TASKS[len(TASKS) - undecided :]) if undecided else set()
    baseline = {t: [False] * 6 if i < fixed else [True, True] for i, t in enumerate(TASKS)}
    candidate = {
        t: [True] * 6 if i < fixed else [False, False] if t in broken else [True, True] for i, t in enumerate(TASKS)
    }
    files = {"outcomes-baseline-gate.csv": _outcomes(baseline), "outcomes-candidate-gate.csv": _outcomes(candidate)}
    frames = {name: pd.read_csv(io.BytesIO(data)) for name, data in files.items()}
    verdict = judge(policy, JudgedSplit(paired_counts(*frames.values()))).verdict
    files["verdict.json"] = verdict.model_dump_json(indent=2).encode()
    entry = dict(
        decision=verdict.decision,
        fixes=verdict.fixes,
        regressions=verdict.regressions,
        policy_hash=verdict.policy_hash,
        stage="gate",
        reason="; ".join(verdict.reasons),
        flip_counts={"P->F": len(broken), "F->P": fixed, "P->P": len(TASKS) - fixed - len(broken), "F->F": 0},
        outcome_hashes={n: hashlib.sha256(d).hexdigest() for n, d in files.items() if n.startswith("outcomes-")},
    )
    return files, entry


def record_gate_decision(
    registry: Registry,
    ws: Path,
    marker: str,
    fixed: int,
    policy: GatePolicy | None = None,
    undecided: int = 0,
    **forged: object,
) -> CandidateRef:
    """An RC with gate evidence, decided the way the verdict says (fields in `forged` replace the true ones)."""
    files, entry = gate_evidence(fixed, policy, undecided)
    rc = _candidate(registry, ws, marker)
    rc = registry.add_evidence(rc, files, f"{rc.branch} evidence")
    entry.update(evidence=evidence_dir("coder", rc.number), **forged)
    if entry["decision"] == "promote":
        registry.promote(rc, f"# {rc.branch}\n", **entry)
    elif entry["decision"] == "hold":
        registry.hold(rc, **entry)
    else:
        registry.reject(rc, f"{rc.branch} (rejected)\n", **entry)
    return rc


def problems(report: AuditReport) -> list[str]:
    return [f"{p.kind}: {p.where}: {p.message}" for a in report.agents for p in a.problems]


# --------------------------------------------------------------------------- clean histories


def test_a_new_workspace_verifies(ws: Path) -> None:
    report = verify_workspace(ws)
    assert report.ok and problems(report) == []
    (audit,) = report.agents
    assert (audit.agent, audit.entries, audit.tags, audit.gate_decisions, audit.rederived) == ("coder", 1, 1, 0, 0)
    assert report.main == git(ws, "rev-parse", "main")


def test_every_kind_of_decision_verifies_and_gate_verdicts_re_derive(ws: Path) -> None:
    registry = Registry(ws)
    record_gate_decision(registry, ws, "First idea.", fixed=3)  # promote
    record_gate_decision(registry, ws, "Second idea.", fixed=0)  # reject: no fix
    held = record_gate_decision(
        registry, ws, "Third idea.", fixed=2, policy=GatePolicy(name="default", require_manual_approval=True)
    )
    registry.promote(held, "# coder/v3\n", who=ADA, decision="manual_promote", reason="reviewed the diff")
    registry.rollback("coder", "coder/v2", "v3 misbehaves", ADA)

    report = verify_workspace(ws)
    assert report.ok, problems(report)
    (audit,) = report.agents
    assert (audit.entries, audit.tags) == (6, 5)  # v1..v4 and rc2-rejected
    assert (audit.gate_decisions, audit.rederived) == (3, 3)  # promote, reject, hold
    assert audit.warnings == []


def test_entries_without_outcome_hashes_are_warnings_not_problems_in_a_legacy_ledger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ledger, "LEDGER_VERSION", 1)  # as Ratchet wrote before outcome hashes existed
    ws = tmp_path / "legacy"
    init_workspace(ws)
    registry = Registry(ws)
    rc = registry.add_evidence(_candidate(registry, ws, "Old."), {"verdict.json": b"{}\n"}, "evidence")
    registry.promote(rc, "# coder/v2\n", decision="promote", reason="gate said so", fixes=2)
    report = verify_workspace(ws)
    assert report.ok
    (warning,) = report.agents[0].warnings
    assert warning.where == "releases/coder/ledger.jsonl line 2"
    assert "not re-derivable (ledger version 1, recorded before outcome hashes)" in warning.message


def test_an_unknown_agent_is_bad_input(ws: Path) -> None:
    with pytest.raises(UserError, match="no agent 'nobody'; agents: coder"):
        verify_workspace(ws, "nobody")


# --------------------------------------------------------------------------- verdicts


def test_a_ledger_entry_whose_fixes_do_not_re_derive_is_reported(ws: Path) -> None:
    # hash chain, tag and trailers all consistent: only the evidence shows the forgery
    record_gate_decision(Registry(ws), ws, "Forged.", fixed=2, fixes=5)
    report = verify_workspace(ws)
    assert not report.ok
    assert problems(report) == [
        "verdict: releases/coder/ledger.jsonl line 2: promote of rc/coder/1: the ledger records promote "
        "(5 confirmed fix(es), 0 regression(s)), but the evidence re-derives to promote (2 confirmed fix(es), "
        "0 regression(s))"
    ]
    assert report.agents[0].rederived == 0


def test_a_promotion_the_policy_would_have_rejected_is_reported(ws: Path) -> None:
    record_gate_decision(Registry(ws), ws, "No fix.", fixed=0, decision="promote")
    (problem,) = problems(verify_workspace(ws))
    assert "the ledger records promote (0 confirmed fix(es)" in problem and "re-derives to reject" in problem


def test_outcome_tables_that_differ_from_the_recorded_hash_are_reported(ws: Path) -> None:
    files, entry = gate_evidence(2)
    entry["outcome_hashes"] = {**entry["outcome_hashes"], "outcomes-candidate-gate.csv": "0" * 64}  # type: ignore[dict-item]
    registry = Registry(ws)
    rc = registry.add_evidence(_candidate(registry, ws, "Edited."), files, "evidence")
    registry.promote(rc, "# coder/v2\n", evidence=evidence_dir("coder", 1), **entry)
    (problem,) = problems(verify_workspace(ws))
    assert "outcomes-candidate-gate.csv has sha256" in problem and "the ledger recorded 000000000000" in problem


def test_a_promotion_of_a_candidate_the_gate_found_inconclusive_is_reported(ws: Path) -> None:
    """The attack on the three-valued gate: a ledger line (and verdict.json) claiming promote for evidence
    in which a task went 2/2 -> 0/2, neither confirmed nor cleared."""
    import json as _json

    files, _ = gate_evidence(2, undecided=1)
    assert _json.loads(files["verdict.json"])["decision"] == "inconclusive"
    record_gate_decision(Registry(ws), ws, "Sneaky.", fixed=2, undecided=1, decision="promote")
    found = problems(verify_workspace(ws))
    assert any("inconclusive" in problem and "promote" in problem for problem in found), found


def test_a_verdict_whose_policy_was_edited_is_reported(ws: Path) -> None:
    files, entry = gate_evidence(2)
    files["verdict.json"] = files["verdict.json"].replace(b'"alpha": 0.05', b'"alpha": 0.2')
    registry = Registry(ws)
    rc = registry.add_evidence(_candidate(registry, ws, "Loose."), files, "evidence")
    registry.promote(rc, "# coder/v2\n", evidence=evidence_dir("coder", 1), **entry)
    found = problems(verify_workspace(ws))
    assert any("the policy in it hashes to" in p and "the policy was edited after the decision" in p for p in found)
    assert len(found) == 1


def test_a_ledger_policy_hash_that_is_not_the_verdicts_is_reported(ws: Path) -> None:
    record_gate_decision(Registry(ws), ws, "Other policy.", fixed=2, policy_hash="f" * 64)
    (problem,) = problems(verify_workspace(ws))
    assert "the ledger records policy ffffffffffff, but releases/coder/rc-1/verdict.json at" in problem


# --------------------------------------------------------------------------- people


def test_an_override_by_the_bot_without_a_reason_is_reported(ws: Path) -> None:
    registry = Registry(ws)
    rc = record_gate_decision(registry, ws, "Rejected.", fixed=0)
    registry.promote(rc, "# coder/v2\n", who=BOT, decision="manual_promote", override=True, reason=" ")
    found = problems(verify_workspace(ws))
    assert found == [
        "manual: releases/coder/ledger.jsonl line 3: override of rc/coder/1: actor 'Ratchet Bot "
        "<ratchet-bot@localhost>' is Ratchet's own identity; a person's decision must name that person",
        "manual: releases/coder/ledger.jsonl line 3: override of rc/coder/1: no reason recorded; a person's "
        "decision must say why",
    ]


def test_a_manual_rejection_by_a_person_with_a_reason_is_fine_but_not_without_an_email(ws: Path) -> None:
    registry = Registry(ws)
    held = record_gate_decision(
        registry, ws, "Held.", fixed=2, policy=GatePolicy(name="default", require_manual_approval=True)
    )
    registry.reject(
        held, "rejected\n", who=Identity(name="Ada", email="nobody"), decision="manual_reject", reason="too risky"
    )
    (problem,) = problems(verify_workspace(ws))
    assert "manual reject of rc/coder/1: actor 'Ada <nobody>' is not 'Name <email>'" in problem


# --------------------------------------------------------------------------- tampering by hand


def test_a_hand_edited_ledger_line_names_the_line_and_the_commit(ws: Path) -> None:
    record_gate_decision(Registry(ws), ws, "Good.", fixed=3)
    ledger = ws / "releases/coder/ledger.jsonl"
    ledger.write_text(ledger.read_text().replace('"fixes":3', '"fixes":4'))
    git(ws, "commit", "-qam", "correct the count")
    edit = git(ws, "rev-parse", "--short=10", "HEAD")

    found = problems(verify_workspace(ws))
    assert (
        "ledger: releases/coder/ledger.jsonl line 2: the hash does not match the line's content (entry 2, "
        "promote); the line was edited after Ratchet wrote it" in found
    )
    assert (
        f"main: commit {edit} ('correct the count'): changes line(s) 2 of releases/coder/ledger.jsonl; "
        f"Ratchet only appends one line per decision and never edits the ledger" in found
    )
    assert any(
        p.startswith("tag: tag coder/v2: its trailers disagree") and "Ratchet-Fixes is '3', the ledger says '4'" in p
        for p in found
    )
    assert any(p.startswith("verdict: releases/coder/ledger.jsonl line 2") for p in found)


def test_a_rewritten_chain_still_breaks_at_the_tags(ws: Path) -> None:
    # recomputing every hash after the edit keeps the chain whole, but the tags remember the old facts
    registry = Registry(ws)
    registry.promote(_candidate(registry, ws, "One."), "# coder/v2\n", decision="promote", reason="ok")
    entries = registry.ledger("coder")
    forged: list = []
    for entry in entries:  # same timestamps: only line 2's reason (and the hashes from there on) change
        edited = entry.model_copy(
            update={
                "reason": "rewritten" if entry.seq == 2 else entry.reason,
                "prev_hash": forged[-1].hash if forged else entry.prev_hash,
            }
        )
        forged.append(edited.model_copy(update={"hash": edited.compute_hash()}))
    (ws / "releases/coder/ledger.jsonl").write_text("".join(e.model_dump_json() + "\n" for e in forged))
    git(ws, "commit", "-qam", "rewrite")
    found = problems(verify_workspace(ws))
    assert not any(p.startswith("ledger:") for p in found)
    assert any("tag coder/v2: its trailers disagree" in p and "Ratchet-Ledger-Hash" in p for p in found)
    assert any("('rewrite'): changes line(s) 2 of" in p for p in found)


def test_a_moved_tag_names_the_tag_and_both_commits(ws: Path) -> None:
    registry = Registry(ws)
    record_gate_decision(registry, ws, "One.", fixed=3)
    record_gate_decision(registry, ws, "Two.", fixed=3)
    right, wrong = git(ws, "rev-parse", "coder/v2^{commit}"), git(ws, "rev-parse", "main")
    (ws.parent / "msg").write_text(git(ws, "tag", "-l", "--format=%(contents)", "coder/v2") + "\n")
    git(ws, "tag", "-f", "-a", "--cleanup=verbatim", "coder/v2", wrong, "-F", str(ws.parent / "msg"))

    assert problems(verify_workspace(ws)) == [
        f"tag: tag coder/v2: points at {wrong[:10]}, but releases/coder/ledger.jsonl line 2 was added by commit "
        f"{right[:10]}; the tag was moved (Ratchet never moves tags)"
    ]


def test_missing_extra_and_lightweight_tags_are_reported(ws: Path) -> None:
    registry = Registry(ws)
    rc = record_gate_decision(registry, ws, "Bad.", fixed=0)
    registry.promote(_candidate(registry, ws, "One."), "# coder/v2\n", decision="promote", reason="ok")
    git(ws, "tag", "-d", "coder/rc1-rejected")
    git(ws, "tag", "-d", "coder/v2")
    git(ws, "tag", "coder/v2", "main")  # lightweight
    git(ws, "tag", "-a", "coder/v9", "-m", "made up", "main")
    found = problems(verify_workspace(ws))
    assert (
        "tag: tag coder/rc1-rejected: is missing; releases/coder/ledger.jsonl line 2 records reject rc/coder/1" in found
        and rc.branch == "rc/coder/1"
    )
    assert (
        "tag: tag coder/v2: is a lightweight tag; Ratchet's tags are annotated and carry the ledger entry's "
        "facts as trailers" in found
    )
    assert (
        "tag: tag coder/v9: has no ledger entry in releases/coder/ledger.jsonl; Ratchet makes this tag only "
        "together with its ledger line" in found
    )


def test_a_hand_commit_to_the_agent_names_the_commit_and_the_files(ws: Path) -> None:
    (ws / AGENT_YAML).write_text((ws / AGENT_YAML).read_text() + "# quick fix\n")
    git(ws, "commit", "-qam", "quick fix")
    sha = git(ws, "rev-parse", "--short=10", "HEAD")
    assert problems(verify_workspace(ws)) == [
        f"main: commit {sha} ('quick fix'): changes agents/coder/agent.yaml on main but adds no ledger entry; the "
        f"agent artifact only changes through a recorded release (`ratchet cycle`, `promote`, `rollback`)"
    ]


def test_other_hand_commits_on_main_are_fine(ws: Path) -> None:
    (ws / "README.md").write_text("notes about this workspace\n")
    git(ws, "add", "README.md")
    git(ws, "commit", "-qm", "docs")
    assert verify_workspace(ws).ok


# --------------------------------------------------------------------------- the ledger on its own


def test_read_ledger_lists_every_broken_line_instead_of_stopping_at_the_first() -> None:
    first = new_entry([], agent="coder", decision="release", release="coder/v1", actor="x", reason="r")
    second = new_entry([first], agent="coder", decision="release", release="coder/v2", actor="x", reason="r")
    third = new_entry([first, second], agent="other", decision="release", release="coder/v2", actor="x", reason="r")
    edited = second.model_copy(update={"reason": "edited"})
    text = "\n".join([first.model_dump_json(), "{not json", edited.model_dump_json(), third.model_dump_json()]) + "\n"
    lines, found = read_ledger("coder", text.encode())

    assert [line.number for line in lines] == [1, 3, 4]
    assert [(p.where.rsplit(" ", 1)[1], p.message.split(";")[0]) for p in found] == [
        ("2", "unreadable ledger entry (Invalid JSON: key must be a string at line 1 column 2)"),
        ("3", "the hash does not match the line's content (entry 2, release)"),
        ("4", "the entry is for agent 'other', in coder's ledger"),
        ("4", "release coder/v2 was already recorded on line 3"),
    ]
    assert first.prev_hash == GENESIS


def test_verify_counts_outcome_tables_exactly_as_the_gate_does() -> None:
    from ratchet.gates.statistics import paired_counts, paired_from_counts
    from ratchet.releases.evidence import outcome_counts

    rows = {
        "b": {t: [i % 3 == 0, i % 2 == 0, True][: 1 + i % 3] for i, t in enumerate(TASKS)},
        "c": {t: [i % 5 == 0] * (1 + i % 4) for i, t in enumerate(TASKS[2:])},
    }
    tables = {side: _outcomes(runs) for side, runs in rows.items()}
    expected = paired_counts(*(pd.read_csv(io.BytesIO(t), dtype={"task_id": str}) for t in tables.values()))
    got = paired_from_counts(*(outcome_counts(t) for t in tables.values()))
    pd.testing.assert_frame_equal(
        got.sort_values("task_id").reset_index(drop=True), expected.sort_values("task_id").reset_index(drop=True)
    )


def test_each_verdict_version_re_derives_with_the_rule_it_was_decided_under() -> None:
    from ratchet.gates.policy import GatePolicy, Verdict
    from ratchet.releases.rederive import _decide

    # 4/4 -> 0/4 (p = 0.0143) with four wobbling tasks (2/4 -> 1/4): a regression when every task had all of
    # alpha (version 1); promoted when the five share it and unconfirmed tasks did not count (version 2);
    # inconclusive under the three-valued rule (version 3: neither confirmed at 0.05 / 5 nor cleared)
    base = {"broke": (4, 4)} | {f"w{i}": (2, 4) for i in range(4)}
    cand = {"broke": (0, 4)} | {f"w{i}": (1, 4) for i in range(4)}
    tables = {"outcomes-baseline-gate.csv": base, "outcomes-candidate-gate.csv": cand}
    policy = GatePolicy(min_fixes=0)
    for version, decision, regressions in ((1, "reject", 1), (2, "promote", 0), (3, "inconclusive", 0)):
        verdict = Verdict(
            version=version, decision="reject", reasons=["x"], policy=policy, policy_hash=policy.content_hash()
        )
        derived, _ = _decide(verdict, tables, tables if version >= 3 else {})
        assert (derived.decision, derived.regressions) == (decision, regressions), version


def test_a_policy_written_before_flaky_confirmation_cap_keeps_its_hash() -> None:
    import hashlib
    import json

    from ratchet.gates.policy import GatePolicy

    older = {
        "name": "default",
        "description": "",
        "trials": 2,
        "max_regressions": 0,
        "min_fixes": 1,
        "require_manual_approval": False,
        "alpha": 0.05,
        "confirmation_cap": 9,
        "max_nfr": None,
        "min_intent_coverage": None,
        "holdout": "report",
        "smoke_max_drop": 0.25,
    }
    recorded = hashlib.sha256(json.dumps(older, separators=(",", ":")).encode()).hexdigest()
    assert GatePolicy.model_validate(older).content_hash() == recorded
    assert GatePolicy.model_validate(older | {"flaky_confirmation_cap": 5}).content_hash() != recorded
