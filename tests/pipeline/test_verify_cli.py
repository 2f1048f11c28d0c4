"""`ratchet verify` on a workspace after real improvement cycles, clean and tampered with by hand."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ratchet.releases.registry import Registry

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]
LEDGER = "releases/coder/ledger.jsonl"


def git(ws: Path, *args: str) -> str:
    """git as a person working by hand in the workspace."""
    command = ["git", "-C", str(ws), "-c", "user.name=Mallory", "-c", "user.email=mallory@example.com", *args]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def cycled(quickstart_demo: Path) -> Path:
    """The session's quickstart workspace: promotions until the gate rejected an RC."""
    decisions = [e.decision for e in Registry(quickstart_demo).ledger("coder")]
    assert decisions.count("promote") >= 2 and decisions[-1] == "reject", decisions
    return quickstart_demo


@pytest.fixture
def ws(cycled: Path, tmp_path: Path) -> Path:
    """A copy of the cycled workspace to tamper with (the run store is not needed to verify)."""
    target = tmp_path / "ws"
    shutil.copytree(cycled, target, symlinks=True, ignore=shutil.ignore_patterns(".ratchet"))
    return target


def test_a_workspace_after_real_cycles_verifies_and_every_gate_verdict_re_derives(ws: Path, cli) -> None:
    out = cli("verify", "--workspace", str(ws))
    assert out.exit_code == 0, out.output
    assert re.search(
        r"OK: hash chain, tags, gate verdicts, manual decisions and main's history agree \(\d+\.\d+ s\)", out.output
    )

    report = json.loads(cli("verify", "--workspace", str(ws), "--json").output)
    (audit,) = report["agents"]
    entries = Registry(ws).ledger("coder")
    automatic = [e for e in entries if e.decision in ("promote", "reject") and e.stage == "gate"]
    assert report["ok"] is True and audit["problems"] == [] and audit["warnings"] == []
    assert audit["gate_decisions"] == audit["rederived"] == len(automatic) >= 3
    assert audit["entries"] == len(entries) and audit["tags"] == len(git(ws, "tag").split())
    assert f"{audit['rederived']}/{audit['gate_decisions']}" in out.output


def _edit_ledger_line(ws: Path) -> list[str]:
    lines = (ws / LEDGER).read_text().splitlines(keepends=True)
    fixes = json.loads(lines[1])["fixes"]
    lines[1] = lines[1].replace(f'"fixes":{fixes},', f'"fixes":{fixes + 1},')
    (ws / LEDGER).write_text("".join(lines))
    git(ws, "commit", "-qam", "fix the count")
    sha = git(ws, "rev-parse", "HEAD")[:10]
    return [
        f"{LEDGER} line 2: the hash does not match the line's content (entry 2, promote); the line was edited "
        f"after Ratchet wrote it",
        f"commit {sha} ('fix the count'): changes line(s) 2 of {LEDGER}; Ratchet only appends one line",
        f"tag coder/v2: its trailers disagree with {LEDGER} line 2: Ratchet-Fixes is '{fixes}', the ledger says "
        f"'{fixes + 1}'",
        f"{LEDGER} line 2: promote of rc/coder/1: the ledger records promote ({fixes + 1} confirmed fix(es)",
    ]


def _move_tag(ws: Path) -> list[str]:
    right, wrong = git(ws, "rev-parse", "coder/v2^{commit}"), git(ws, "rev-parse", "main")
    message = ws.parent / "message"
    message.write_text(git(ws, "tag", "-l", "--format=%(contents)", "coder/v2") + "\n")
    git(ws, "tag", "-f", "-a", "--cleanup=verbatim", "coder/v2", wrong, "-F", str(message))
    return [
        "1 problem(s):",  # only the move: the tag message was kept
        f"tag coder/v2: points at {wrong[:10]}, but {LEDGER} line 2 was added by commit {right[:10]}; the tag "
        f"was moved",
    ]


def _commit_to_the_agent(ws: Path) -> list[str]:
    agent = ws / "agents/coder/agent.yaml"
    agent.write_text(agent.read_text() + "# tuned by hand\n")
    git(ws, "commit", "-qam", "tune the agent")
    sha = git(ws, "rev-parse", "HEAD")[:10]
    return [
        "1 problem(s):",
        f"commit {sha} ('tune the agent'): changes agents/coder/agent.yaml on main but adds no ledger entry",
    ]


@pytest.mark.parametrize(
    "tamper",
    [_edit_ledger_line, _move_tag, _commit_to_the_agent],
    ids=["edited-ledger-line", "moved-tag", "hand-commit-to-agent"],
)
def test_tampering_by_hand_fails_with_a_message_naming_it(ws: Path, cli, tamper) -> None:
    expected = tamper(ws)
    out = cli("verify", "--workspace", str(ws))
    assert out.exit_code == 1, out.output
    for text in expected:
        assert text in out.output, out.output
    assert re.search(r"FAILED: \d+ problem\(s\)", out.output)


def test_verify_of_an_unknown_agent_is_bad_input(ws: Path, cli) -> None:
    out = cli("verify", "--workspace", str(ws), "--agent", "nobody")
    assert out.exit_code == 2 and "no agent 'nobody'; agents: coder" in out.output
