"""Candidates the gate found `inconclusive`: recorded as a hold is (a ledger line on main, no tag), decided by a
person with `ratchet promote|reject` like a hold, audited by `ratchet verify`, listed by `ratchet history`.

Every candidate here is written through the registry the way pipeline/record.py writes the cycle's verdict
(`Registry.hold` with decision "inconclusive"), with the evidence a cycle commits (verdict.json, outcome tables,
notes.json), in real git workspaces.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from ratchet.agents.errors import StateError
from ratchet.gates import GatePolicy, Verdict
from ratchet.pipeline.cli.output import console, print_cycle
from ratchet.pipeline.cycle_result import CycleResult
from ratchet.pipeline.decisions import decide_manually
from ratchet.pipeline.stages import tried_remediations
from ratchet.releases.audit import AuditReport, verify_workspace
from ratchet.releases.gitstore import BOT, GitStore, Identity
from ratchet.releases.ledger import LedgerEntry, new_entry
from ratchet.releases.notes import ReleaseNotes
from ratchet.releases.registry import CandidateRef, Registry, evidence_dir
from tests.releases.test_audit import AGENT_YAML, gate_evidence, git

ADA = Identity(name="Ada Lovelace", email="ada@example.com")
LEDGER = "releases/coder/ledger.jsonl"


def _candidate(registry: Registry, ws: Path, marker: str) -> CandidateRef:
    text = (
        (ws / AGENT_YAML)
        .read_bytes()
        .replace(b"  - Keep your answer brief.\n", f"  - Keep your answer brief.\n  - {marker}\n".encode())
    )
    return registry.create_candidate("coder", {AGENT_YAML: text}, f"rc: {marker}")


def inconclusive_candidate(registry: Registry, ws: Path, marker: str, remediation: str = "hand") -> CandidateRef:
    """An RC with a cycle's evidence, recorded by the gate as inconclusive through `Registry.hold`."""
    files, entry = gate_evidence(2, GatePolicy(name="default"), undecided=1)  # the judge's own inconclusive
    verdict = Verdict.model_validate_json(files["verdict.json"])
    assert verdict.decision == "inconclusive" and verdict.undecided_count == 1
    (reason,) = verdict.reasons
    rc = _candidate(registry, ws, marker)
    notes = ReleaseNotes(
        agent="coder",
        title=f"{rc.branch} (inconclusive)",
        base_release="coder/v1",
        rc=rc.branch,
        decision="inconclusive",
        actor=str(BOT),
        reasons=[reason],
        intent=marker,
        targets=[],
        remediation=remediation,
        model="sim/coder",
        simulated=True,
        counts={},
        flips=[],
    )
    files["notes.json"] = notes.model_dump_json().encode()
    files["notes.md"] = notes.markdown().encode()
    rc = registry.add_evidence(rc, files, f"{rc.branch} inconclusive: {remediation}")
    entry.update(
        decision="inconclusive",
        reason=reason,
        evidence=evidence_dir("coder", rc.number),
        base_release="coder/v1",
        intent=marker,
        remediation=remediation,
    )
    registry.hold(rc, BOT, **entry)
    return rc


def problems(report: AuditReport) -> list[str]:
    return [f"{p.kind}: {p.where}: {p.message}" for a in report.agents for p in a.problems]


def tags(ws: Path) -> list[str]:
    with GitStore(ws) as store:
        return store.tag_names("*")


# --------------------------------------------------------------------------- recorded like a hold


def test_an_inconclusive_verdict_is_one_ledger_line_on_main_and_no_tag(workspace: Path) -> None:
    registry = Registry(workspace)
    main_before = registry.ledger("coder")
    rc = inconclusive_candidate(registry, workspace, "Unclear idea.")

    entry = registry.ledger("coder")[-1]
    assert len(registry.ledger("coder")) == len(main_before) + 1
    assert (entry.decision, entry.rc, entry.rc_commit, entry.actor) == ("inconclusive", rc.branch, rc.commit, str(BOT))
    assert tags(workspace) == ["coder/v1"], "an inconclusive candidate waits: no release, no rejected tag"
    assert registry.current_release("coder").tag == "coder/v1"
    assert entry.trailers()["Ratchet-Decision"] == "inconclusive"
    assert git(workspace, "log", "-1", "--format=%s", "main") == f"Ledger: inconclusive {rc.branch}"

    report = verify_workspace(workspace)
    assert report.ok, problems(report)
    (audit,) = report.agents
    assert (audit.gate_decisions, audit.rederived) == (1, 1), "an inconclusive verdict is the gate's own, re-derived"


def test_hold_records_only_verdicts_that_wait_for_a_person(workspace: Path) -> None:
    registry = Registry(workspace)
    rc = _candidate(registry, workspace, "Not a hold.")
    with pytest.raises(ValueError, match="not 'promote'"):
        registry.hold(rc, decision="promote", reason="the gate said promote")
    assert [e.decision for e in registry.ledger("coder")] == ["release"]


def test_the_notes_of_an_inconclusive_candidate_say_a_person_decides() -> None:
    notes = ReleaseNotes(
        agent="coder",
        title="rc/coder/4 (inconclusive)",
        base_release="coder/v3",
        rc="rc/coder/4",
        decision="inconclusive",
        actor=str(BOT),
        reasons=["T/5 stays in doubt"],
        intent="x",
        targets=[],
        remediation="r",
        model="sim/coder",
        simulated=True,
        counts={},
        flips=[],
    )
    text = notes.markdown()
    assert "# rc/coder/4 (inconclusive)" in text and "Decision: **inconclusive**" in text
    assert 'ratchet promote rc/coder/4 --reason "..."' in text and 'ratchet reject rc/coder/4 --reason "..."' in text
    promoted = notes.model_copy(update={"decision": "promote", "title": "coder/v4"}).markdown()
    assert "waits for a person" not in promoted, "once a person decided, the tag's notes say what they decided"


# --------------------------------------------------------------------------- verify


@pytest.mark.parametrize("decision", ["manual_promote", "manual_reject"])
def test_verify_accepts_a_persons_decision_after_an_inconclusive(workspace: Path, decision: str) -> None:
    registry = Registry(workspace)
    rc = inconclusive_candidate(registry, workspace, "Unclear idea.")
    carried = registry.ledger("coder")[-1].model_dump(include={"evidence", "outcome_hashes", "policy_hash", "stage"})
    if decision == "manual_promote":
        registry.promote(rc, "# coder/v2\n", who=ADA, decision=decision, reason="read T/5: noise", **carried)
    else:
        registry.reject(rc, "rejected\n", who=ADA, decision=decision, reason="T/5 is a real regression", **carried)

    report = verify_workspace(workspace)
    assert report.ok, problems(report)
    assert [e.decision for e in registry.ledger("coder")] == ["release", "inconclusive", decision]


def test_verify_still_refuses_a_persons_decision_that_no_gate_decision_comes_before(workspace: Path) -> None:
    registry = Registry(workspace)
    inconclusive_candidate(registry, workspace, "Unclear idea.")  # another candidate's inconclusive line
    rc = _candidate(registry, workspace, "Never gated.")
    registry.promote(rc, "# coder/v2\n", who=ADA, decision="manual_promote", reason="trust me")

    assert problems(verify_workspace(workspace)) == [
        "manual: releases/coder/ledger.jsonl line 3: manual promote of rc/coder/2: no decision about rc/coder/2 "
        "comes before it; a person decides only a candidate the gate held or found inconclusive (or, with "
        "--override, promotes one it rejected)"
    ]


def test_an_override_does_not_follow_an_inconclusive(workspace: Path) -> None:
    registry = Registry(workspace)
    rc = inconclusive_candidate(registry, workspace, "Unclear idea.")
    registry.promote(rc, "# coder/v2\n", who=ADA, decision="manual_promote", override=True, reason="ship it")

    assert problems(verify_workspace(workspace)) == [
        "manual: releases/coder/ledger.jsonl line 3: override of rc/coder/1: follows inconclusive on line 2, but an "
        "override follows a reject"
    ]


@pytest.mark.parametrize("second", ["promote", "reject", "hold", "inconclusive"])
def test_a_second_gate_decision_after_an_inconclusive_is_a_problem(workspace: Path, second: str) -> None:
    registry = Registry(workspace)
    rc = inconclusive_candidate(registry, workspace, "Unclear idea.")
    fields = registry.ledger("coder")[-1].model_dump(
        include={"evidence", "outcome_hashes", "policy_hash", "stage", "fixes", "regressions", "flip_counts"}
    )
    fields.update(decision=second, reason="decided again")
    if second == "promote":
        registry.promote(rc, "# coder/v2\n", **fields)
    elif second == "reject":
        registry.reject(rc, "rejected\n", **fields)
    else:
        registry.hold(rc, **fields)

    found = problems(verify_workspace(workspace))
    assert (
        f"verdict: releases/coder/ledger.jsonl line 3: {second} of rc/coder/1: line 2 already decided it "
        f"(inconclusive); the gate decides each candidate once"
    ) in found, found


def test_a_persons_decision_on_another_commit_than_the_inconclusive_one_is_a_problem(workspace: Path) -> None:
    registry = Registry(workspace)
    rc = inconclusive_candidate(registry, workspace, "Unclear idea.")
    ledger = workspace / LEDGER
    entries = registry.ledger("coder")
    forged = new_entry(
        entries, agent="coder", decision="manual_reject", rc=rc.branch, rc_commit="0" * 40, actor=str(ADA), reason="no"
    )
    ledger.write_text(ledger.read_text() + forged.model_dump_json() + "\n")
    git(workspace, "commit", "-qam", "a person's line")

    found = problems(verify_workspace(workspace))
    assert any(
        "manual reject of rc/coder/1: decides commit 0000000000, but rc/coder/1 was found inconclusive at commit "
        f"{rc.commit[:10]} (line 2)" in p
        for p in found
    ), found


# --------------------------------------------------------------------------- a person decides


def test_decide_manually_promotes_an_inconclusive_candidate_without_override(workspace: Path) -> None:
    registry = Registry(workspace)
    rc = inconclusive_candidate(registry, workspace, "Unclear idea.")

    entry, tag = decide_manually(workspace, rc.branch, "promote", "read T/5: it is noise", ADA)

    assert (entry.decision, entry.override, tag, entry.release) == ("manual_promote", False, "coder/v2", "coder/v2")
    assert (entry.evidence, entry.outcome_hashes) == (
        evidence_dir("coder", rc.number),
        registry.ledger("coder")[1].outcome_hashes,
    ), "the person's line carries the evidence the gate decided on"
    assert registry.current_release("coder").tag == "coder/v2"
    with GitStore(workspace) as store:
        notes = store.tag_message("coder/v2") or ""
    assert "Decision: **promote**" in notes and f"promoted by {ADA}: read T/5: it is noise" in notes
    assert verify_workspace(workspace).ok, problems(verify_workspace(workspace))

    with pytest.raises(StateError, match=r"is not on hold or inconclusive \(manual_promote\)"):
        decide_manually(workspace, rc.branch, "reject", "too late", ADA)


def test_an_override_on_an_inconclusive_candidate_says_none_is_needed(workspace: Path) -> None:
    registry = Registry(workspace)
    rc = inconclusive_candidate(registry, workspace, "Unclear idea.")
    with pytest.raises(StateError, match=r"is not one \(inconclusive\); it waits for a person: promote it without"):
        decide_manually(workspace, rc.branch, "promote", "ship it", ADA, override=True)
    assert registry.ledger("coder")[-1].decision == "inconclusive", "a refused decision writes nothing"


def test_the_cli_promotes_and_rejects_inconclusive_candidates(workspace: Path, cli: Callable) -> None:
    registry = Registry(workspace)
    first = inconclusive_candidate(registry, workspace, "First unclear idea.")
    out = cli("reject", first.branch, "--reason", "T/5 broke", "--actor", str(ADA), "--workspace", str(workspace))
    assert out.exit_code == 0, out.output
    assert f"rejected {first.branch}" in out.output
    assert "coder/rc1-rejected" in tags(workspace)

    second = inconclusive_candidate(registry, workspace, "Second unclear idea.")
    ws = str(workspace)
    out = cli("promote", second.branch, "--override", "--reason", "x", "--actor", str(ADA), "--workspace", ws)
    assert out.exit_code == 4 and "promote it without --override" in out.output, out.output
    out = cli("promote", second.branch, "--reason", "T/5 is flaky", "--actor", str(ADA), "--workspace", ws)
    assert out.exit_code == 0, out.output
    assert f"promoted {second.branch} as coder/v2" in out.output and "against" not in out.output

    decisions = [e.decision for e in registry.ledger("coder")]
    assert decisions == ["release", "inconclusive", "manual_reject", "inconclusive", "manual_promote"]
    report = verify_workspace(workspace)
    assert report.ok, problems(report)


# --------------------------------------------------------------------------- history and the cycle's output


def test_history_lists_inconclusive_candidates(workspace: Path, cli: Callable) -> None:
    registry = Registry(workspace)
    rc = inconclusive_candidate(registry, workspace, "Unclear idea.")
    registry.hold(_candidate(registry, workspace, "Held idea."), decision="hold", reason="policy asks a person")

    out = cli("history", "--decision", "inconclusive", "--json", "--workspace", str(workspace))
    assert out.exit_code == 0, out.output
    listed = json.loads(out.output)
    assert [(e["decision"], e["rc"]) for e in listed] == [("inconclusive", rc.branch)]

    out = cli("history", "--decision", "hold,inconclusive", "--json", "--workspace", str(workspace))
    assert [e["decision"] for e in json.loads(out.output)] == ["inconclusive", "hold"]

    out = cli("history", "--decision", "inconclusive", "--workspace", str(workspace))
    assert out.exit_code == 0 and "inconclusive" in out.output and rc.branch in out.output, out.output

    out = cli("history", "--decision", "undecided", "--workspace", str(workspace))
    assert out.exit_code == 2 and "hold, inconclusive, manual_promote" in " ".join(out.output.split()), out.output


def test_the_cycle_output_of_an_inconclusive_verdict_says_what_a_person_does() -> None:
    result = CycleResult(
        agent="coder",
        base_release="coder/v1",
        model="sim/coder",
        simulated=True,
        status="decided",
        dev_runs=4,
        dev_pass_rate=0.5,
        rc="rc/coder/3",
        remediation="r",
        intent="x",
        decision="inconclusive",
        stage="gate",
        reasons=["T/5 stays in doubt"],
    )
    with console.capture() as captured:
        print_cycle(1, result)
    text = " ".join(captured.get().split())
    assert "verdict: INCONCLUSIVE: T/5 stays in doubt" in text
    assert "the gate could not decide, so rc/coder/3 waits for a person" in text
    assert "git show rc/coder/3:releases/coder/rc-3/notes.md" in text
    assert "ratchet promote rc/coder/3 --reason ..." in text and "ratchet reject rc/coder/3 --reason ..." in text


# --------------------------------------------------------------------------- the next cycle's proposals


def _line(previous: list[LedgerEntry], decision: str, rc: str, remediation: str) -> LedgerEntry:
    actor = str(BOT) if decision in ("reject", "hold", "inconclusive") else str(ADA)
    return new_entry(
        previous, agent="coder", decision=decision, rc=rc, remediation=remediation, actor=actor, reason="r"
    )


def test_a_cycle_does_not_propose_a_remediation_left_inconclusive_again_unless_a_person_promoted_it() -> None:
    ledger: list[LedgerEntry] = []
    for decision, rc, remediation in [
        ("inconclusive", "rc/coder/1", "still-open"),
        ("inconclusive", "rc/coder/2", "promoted-later"),
        ("manual_promote", "rc/coder/2", "promoted-later"),
        ("inconclusive", "rc/coder/3", "rejected-later"),
        ("manual_reject", "rc/coder/3", "rejected-later"),
        ("hold", "rc/coder/4", "held"),
        ("reject", "rc/coder/5", "rejected"),
    ]:
        ledger.append(_line(ledger, decision, rc, remediation))

    assert tried_remediations(ledger) == {"still-open", "rejected-later", "rejected"}
