"""Attacks on the release line itself (issue 13, items 4 and 5): stray tags, a rewritten main, forged ledger lines.

4. The live release. `Registry.current_release` took the highest-numbered tag, so a hand-made tag `coder/v9`
   with no ledger entry became the live release and the cycle's baseline. Now the ledger defines the live
   release, and one check (releases.consistency) stops `cycle`, `promote`, `reject` and `rollback` with one line
   naming the problem when tags and ledger disagree or a recorded release is no longer on main.
5. verify trusted what it should check. Hand-written ledger lines with correctly recomputed hashes passed: a gate
   `promote` with no evidence (a warning only) and a `manual_promote` of a candidate nobody held. Now every
   decision re-derives or is provably legacy (ledger version 1, before any line that records outcome hashes),
   every manual decision follows a state that allows it, and the bot's identity is refused as `--actor`.

Every forgery here is what an attacker can write by hand: git plumbing, and ledger lines hashed and chained with
the same sha256 over the same JSON that Ratchet computes (releases.ledger).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ratchet.gates.policy import GatePolicy
from ratchet.releases import ledger as ledger_module
from ratchet.releases.audit import AuditReport, verify_workspace
from ratchet.releases.gitstore import BOT
from ratchet.releases.ledger import LedgerEntry, append_line, new_entry, parse_ledger, trailer_block
from ratchet.releases.notes import ReleaseNotes
from ratchet.releases.registry import CandidateRef, Registry, evidence_dir
from tests.releases.test_audit import AGENT_YAML, gate_evidence, record_gate_decision

LEDGER = "releases/coder/ledger.jsonl"
ADA = "Ada Lovelace <ada@example.com>"
MALLORY = "Mallory <mallory@example.com>"


def git(ws: Path, *args: str) -> str:
    """git as a person working by hand in the workspace."""
    command = ["git", "-C", str(ws), "-c", "user.name=Mallory", "-c", "user.email=mallory@example.com", *args]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()


def snapshot(ws: Path) -> tuple[str, bytes]:
    """Every ref with its target, and the ledger on disk: what a refused command must leave alone."""
    return git(ws, "for-each-ref", "--format=%(refname) %(objectname)"), (ws / LEDGER).read_bytes()


def problems(report: AuditReport) -> list[str]:
    return [f"{p.kind}: {p.where}: {p.message}" for a in report.agents for p in a.problems]


def edit_agent(ws: Path, marker: str) -> None:
    path = ws / AGENT_YAML
    path.write_text(
        path.read_text().replace("  - Keep your answer brief.\n", f"  - Keep your answer brief.\n  - {marker}\n")
    )


def side_commit(ws: Path, branch: str, marker: str) -> str:
    """A commit with an unreviewed edit to the agent on branch `branch` (main stays checked out)."""
    git(ws, "checkout", "-q", "-b", branch, "main")
    edit_agent(ws, marker)
    git(ws, "commit", "-qam", f"hand edit: {marker}")
    sha = git(ws, "rev-parse", "HEAD")
    git(ws, "checkout", "-q", "main")
    return sha


def tag(ws: Path, name: str, target: str, message: str) -> None:
    (ws.parent / "tag-message").write_text(message)
    git(ws, "tag", "-a", "--cleanup=verbatim", name, target, "-F", str(ws.parent / "tag-message"))


def forge_line(ws: Path, merge: str | None = None, make_tag: str | None = None, **fields: object) -> LedgerEntry:
    """Append a ledger line with a correct hash and chain to main by hand (merging `merge` in the same commit,
    as a promotion does), and tag the commit with the entry's trailers as Ratchet would."""
    ledger = ws / LEDGER
    text = ledger.read_text()
    if merge:
        git(ws, "merge", "-q", "--no-ff", "--no-commit", merge)
    entry = new_entry(parse_ledger(text, "forged"), agent="coder", **fields)
    ledger.write_text(append_line(text, entry))
    git(ws, "add", "-A")
    git(ws, "commit", "-qm", f"{entry.decision} {entry.release or entry.rc}")
    if make_tag:
        tag(ws, make_tag, "HEAD", f"# {make_tag}\n\n{trailer_block(entry)}")
    return entry


def decided_candidate(
    registry: Registry,
    ws: Path,
    marker: str,
    fixed: int,
    policy: GatePolicy | None = None,
) -> CandidateRef:
    """An RC decided by the gate through the registry, with the evidence a cycle writes (notes.json included)."""
    files, entry = gate_evidence(fixed, policy)
    rc = registry.create_candidate(
        "coder",
        {
            AGENT_YAML: (ws / AGENT_YAML)
            .read_bytes()
            .replace(b"  - Keep your answer brief.\n", f"  - Keep your answer brief.\n  - {marker}\n".encode())
        },
        f"rc: {marker}",
    )
    notes = ReleaseNotes(
        agent="coder",
        title=rc.branch,
        base_release="coder/v1",
        rc=rc.branch,
        decision=str(entry["decision"]),
        actor=str(BOT),
        reasons=[str(entry["reason"])],
        intent=marker,
        targets=[],
        remediation="hand",
        model="sim/coder",
        simulated=True,
        counts={},
        flips=[],
    )
    files["notes.json"] = notes.model_dump_json().encode()
    rc = registry.add_evidence(rc, files, f"{rc.branch} evidence")
    entry.update(evidence=evidence_dir("coder", rc.number), base_release="coder/v1", intent=marker)
    if entry["decision"] == "hold":
        registry.hold(rc, **entry)
    else:
        assert entry["decision"] == "reject", entry
        registry.reject(rc, f"{rc.branch} (rejected)\n", **entry)
    return rc


# --------------------------------------------------------------------------- 4. the live release


def _stray_tag_on_main(ws: Path) -> str:
    edit_agent(ws, "Hotfix, never reviewed.")
    git(ws, "commit", "-qam", "hotfix")
    tag(ws, "coder/v9", "HEAD", "# coder/v9\n\nhotfix\n")
    return "coder/v9"


def _stray_tag_off_main(ws: Path) -> str:
    tag(ws, "coder/v9", side_commit(ws, "hotfix", "Hotfix, never reviewed."), "# coder/v9\n\nhotfix\n")
    return "coder/v9"


def _main_rewritten(ws: Path) -> str:
    record_gate_decision(Registry(ws), ws, "Reviewed idea.", fixed=3)  # coder/v2, a real promotion
    git(ws, "reset", "-q", "--soft", git(ws, "rev-list", "--max-parents=0", "main"))
    git(ws, "commit", "-qm", "squash the history")  # same files, ledger included: only the commits changed
    return "coder/v2"


TAMPERING = {
    "stray-tag-on-main": _stray_tag_on_main,
    "stray-tag-off-main": _stray_tag_off_main,
    "main-rewritten": _main_rewritten,
}


@pytest.fixture(params=list(TAMPERING))
def tampered(request: pytest.FixtureRequest, workspace: Path) -> tuple[Path, str, CandidateRef]:
    """The demo workspace with a candidate on hold, then tampered with: (workspace, the tag at fault, held RC)."""
    held = decided_candidate(
        Registry(workspace),
        workspace,
        "Held idea.",
        fixed=2,
        policy=GatePolicy(name="default", require_manual_approval=True),
    )
    return workspace, TAMPERING[request.param](workspace), held


def test_the_ledger_not_the_highest_tag_is_the_live_release(tampered: tuple[Path, str, CandidateRef]) -> None:
    ws, _, _ = tampered
    live = Registry(ws).current_release("coder")
    recorded = [e.release for e in Registry(ws).ledger("coder") if e.release]
    assert live.tag == recorded[-1] and live.tag != "coder/v9"


def _write_commands(held: CandidateRef) -> dict[str, list[str]]:
    return {
        "cycle": ["cycle"],
        "promote": ["promote", held.branch, "--reason", "reviewed the flips", "--actor", ADA],
        "reject": ["reject", held.branch, "--reason", "not convinced", "--actor", ADA],
        "rollback": ["rollback", "coder", "--to", "v1", "--reason", "production incident", "--actor", ADA],
    }


@pytest.mark.parametrize("command", ["cycle", "promote", "reject", "rollback"])
def test_every_write_command_stops_on_a_tampered_release_line(
    tampered: tuple[Path, str, CandidateRef], command: str, cli, prefect_server: None
) -> None:
    ws, culprit, held = tampered
    before = snapshot(ws)
    out = cli(*_write_commands(held)[command], "--workspace", str(ws))
    assert out.exit_code == 4, out.output
    assert len(out.output.strip().splitlines()) == 1, out.output
    assert culprit in out.output and "ratchet verify" in out.output, out.output
    assert snapshot(ws) == before, "a refused command wrote nothing"


def test_verify_names_a_release_tag_that_main_no_longer_holds(workspace: Path) -> None:
    _main_rewritten(workspace)
    found = problems(verify_workspace(workspace))
    assert any(p.startswith("tag: tag coder/v2:") and "is not on main" in p for p in found), found


def test_a_consistent_workspace_still_takes_every_write_command(workspace: Path, cli) -> None:
    held = decided_candidate(
        Registry(workspace),
        workspace,
        "Held idea.",
        fixed=2,
        policy=GatePolicy(name="default", require_manual_approval=True),
    )
    out = cli(*_write_commands(held)["promote"], "--workspace", str(workspace))
    assert out.exit_code == 0, out.output
    out = cli(*_write_commands(held)["rollback"], "--workspace", str(workspace))
    assert out.exit_code == 0, out.output
    assert Registry(workspace).current_release("coder").tag == "coder/v3"
    assert verify_workspace(workspace).ok, problems(verify_workspace(workspace))


# --------------------------------------------------------------------------- 5. forged ledger lines


def _forged_gate_promote(ws: Path, version: int) -> None:
    rc = side_commit(ws, "rc/coder/1", "Never evaluated.")
    forge_line(
        ws,
        merge=rc,
        make_tag="coder/v2",
        version=version,
        decision="promote",
        release="coder/v2",
        base_release="coder/v1",
        rc="rc/coder/1",
        rc_commit=rc,
        fixes=2,
        actor=str(BOT),
        reason="2 confirmed fix(es), 0 regression(s)",
    )


@pytest.mark.parametrize("version", [2, 1], ids=["current-schema", "claims-legacy"])
def test_a_gate_promotion_without_outcome_hashes_fails_verify(workspace: Path, version: int) -> None:
    _forged_gate_promote(workspace, version)
    found = problems(verify_workspace(workspace))
    assert any("line 2: promote of rc/coder/1" in p and "outcome" in p for p in found), found


def test_a_legacy_claim_after_a_line_with_outcome_hashes_fails_verify(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ledger_module, "LEDGER_VERSION", 1)  # as a Ratchet of ledger version 1 did
    shutil.rmtree(workspace)
    from ratchet.pipeline.workspace import init_workspace

    init_workspace(workspace)
    record_gate_decision(Registry(workspace), workspace, "Real idea.", fixed=3)  # v1 line with outcome hashes
    assert verify_workspace(workspace).ok
    rc = side_commit(workspace, "rc/coder/2", "Never evaluated.")
    forge_line(
        workspace,
        merge=rc,
        make_tag="coder/v3",
        version=1,
        decision="promote",
        release="coder/v3",
        base_release="coder/v2",
        rc="rc/coder/2",
        rc_commit=rc,
        fixes=2,
        actor=str(BOT),
        reason="ok",
    )
    found = problems(verify_workspace(workspace))
    assert any("line 3: promote of rc/coder/2" in p and "outcome" in p for p in found), found


def test_a_ledger_written_entirely_before_outcome_hashes_verifies_with_a_warning(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ledger_module, "LEDGER_VERSION", 1)
    shutil.rmtree(workspace)
    from ratchet.pipeline.workspace import init_workspace

    init_workspace(workspace)
    registry = Registry(workspace)
    rc = registry.create_candidate("coder", {"agents/coder/notes.txt": b"old\n"}, "rc: old")
    registry.promote(
        registry.add_evidence(rc, {"verdict.json": b"{}\n"}, "evidence"),
        "# coder/v2\n",
        decision="promote",
        reason="gate said so",
        fixes=2,
    )
    report = verify_workspace(workspace)
    assert report.ok, problems(report)
    assert [w.message for w in report.agents[0].warnings] == [
        "promote of rc/coder/1: not re-derivable (ledger version 1, recorded before outcome hashes)"
    ]


def _forged_manual(ws: Path, decision: str, **fields: object) -> None:
    rc = side_commit(ws, "rc/coder/1", "Never evaluated.")
    if decision == "manual_promote":
        forge_line(
            ws,
            merge=rc,
            make_tag="coder/v2",
            decision=decision,
            release="coder/v2",
            base_release="coder/v1",
            rc="rc/coder/1",
            rc_commit=rc,
            actor=MALLORY,
            reason="looks fine to me",
            **fields,
        )
    else:
        forge_line(ws, decision=decision, rc="rc/coder/1", rc_commit=rc, actor=MALLORY, reason="no", **fields)
        tag(ws, "coder/rc1-rejected", rc, "rejected\n\n" + trailer_block(Registry(ws).ledger("coder")[-1]))


@pytest.mark.parametrize(
    ("decision", "fields"),
    [("manual_promote", {}), ("manual_promote", {"override": True}), ("manual_reject", {})],
    ids=["promote", "override", "reject"],
)
def test_a_manual_decision_on_a_candidate_nobody_held_fails_verify(
    workspace: Path, decision: str, fields: dict[str, object]
) -> None:
    _forged_manual(workspace, decision, **fields)
    found = problems(verify_workspace(workspace))
    assert any(
        p.startswith("manual: releases/coder/ledger.jsonl line 2:") and "rc/coder/1" in p and "no decision" in p
        for p in found
    ), found


def test_a_manual_promotion_of_another_commit_than_the_held_one_fails_verify(workspace: Path) -> None:
    held = decided_candidate(
        Registry(workspace),
        workspace,
        "Held idea.",
        fixed=2,
        policy=GatePolicy(name="default", require_manual_approval=True),
    )
    git(workspace, "checkout", "-q", held.branch)
    edit_agent(workspace, "Slipped in after the gate.")
    git(workspace, "commit", "-qam", "one more thing")
    tip = git(workspace, "rev-parse", "HEAD")
    git(workspace, "checkout", "-q", "main")
    copied = (
        Registry(workspace)
        .ledger("coder")[-1]
        .model_dump(
            include={
                "base_release",
                "intent",
                "fixes",
                "policy_hash",
                "evidence",
                "stage",
                "flip_counts",
                "outcome_hashes",
            }
        )
    )
    forge_line(
        workspace,
        merge=tip,
        make_tag="coder/v2",
        decision="manual_promote",
        release="coder/v2",
        rc=held.branch,
        rc_commit=tip,
        actor=ADA,
        reason="reviewed",
        **copied,
    )
    found = problems(verify_workspace(workspace))
    assert any("manual promote of rc/coder/1" in p and "was held" in p for p in found), found


def test_a_release_line_after_the_first_fails_verify(workspace: Path) -> None:
    edit_agent(workspace, "Shipped as a 'release'.")
    forge_line(
        workspace,
        make_tag="coder/v2",
        decision="release",
        release="coder/v2",
        actor=str(BOT),
        reason="initial release created by `ratchet init`",
    )
    found = problems(verify_workspace(workspace))
    assert any("line 2" in p and "release" in p and "ratchet init" in p for p in found), found


def test_a_rollback_that_does_not_restore_its_target_fails_verify(workspace: Path) -> None:
    edit_agent(workspace, "Not what v1 had.")
    forge_line(
        workspace,
        make_tag="coder/v2",
        decision="rollback",
        release="coder/v2",
        base_release="coder/v1",
        rollback_to="coder/v1",
        intent="Restore coder/v1's artifact",
        actor=MALLORY,
        reason="incident",
    )
    found = problems(verify_workspace(workspace))
    assert any("rollback" in p and "coder/v1" in p and "line 2" in p for p in found), found


@pytest.mark.parametrize("how", ["--actor", "git config"])
def test_the_bot_cannot_be_named_as_the_person_deciding(workspace: Path, cli, how: str) -> None:
    rejected = decided_candidate(Registry(workspace), workspace, "Rejected idea.", fixed=0)
    before = snapshot(workspace)
    args = ["promote", rejected.branch, "--override", "--reason", "ship it", "--workspace", str(workspace)]
    if how == "--actor":
        args += ["--actor", str(BOT)]
    else:
        git(workspace, "config", "user.name", BOT.name)
        git(workspace, "config", "user.email", BOT.email)
        before = snapshot(workspace)
    out = cli(*args)
    assert out.exit_code == 2, out.output
    assert len(out.output.strip().splitlines()) == 1, out.output
    assert "Ratchet Bot" in out.output and "person" in out.output, out.output
    assert snapshot(workspace) == before
    assert verify_workspace(workspace).ok
