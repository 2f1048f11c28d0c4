"""The git registry on real repositories: init, candidates, evidence, promote / reject / hold."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ratchet.agents.errors import StateError, UserError
from ratchet.pipeline.workspace import init_workspace
from ratchet.releases.gitstore import BOT, Identity
from ratchet.releases.ledger import parse_trailers
from ratchet.releases.registry import CandidateRef, Registry, evidence_dir, rc_branch, rejected_tag, release_tag

AGENT_YAML = "agents/coder/agent.yaml"
PROMPT = "agents/coder/prompts/system.md.j2"


@pytest.fixture(autouse=True)
def no_git_identity(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """As on a CI machine: no global or system git config, no identity in the environment."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", "/dev/null")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "EMAIL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    path = tmp_path / "ws"
    init_workspace(path)
    return path


def git(ws: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=ws, check=True, capture_output=True, text=True).stdout.strip()


def _parents(ws: Path, rev: str) -> list[str]:
    return git(ws, "rev-list", "--parents", "-n", "1", rev).split()[1:]


def _edit(ws: Path, path: str = AGENT_YAML, marker: str = "- Return only the code.") -> dict[str, bytes | None]:
    text = (ws / path).read_text()
    if path == AGENT_YAML:
        text = text.replace("  - Keep your answer brief.\n", f"  - Keep your answer brief.\n  {marker}\n")
        assert marker in text
    else:
        text += f"\n{marker}\n"
    return {path: text.encode()}


def _candidate(registry: Registry, ws: Path, marker: str = "- Return only the code.") -> CandidateRef:
    return registry.create_candidate("coder", _edit(ws, marker=marker), f"rc: {marker}")


def _clean(ws: Path) -> None:
    assert git(ws, "status", "--porcelain") == ""


# --------------------------------------------------------------------------- init


def test_init_makes_main_tag_v1_clean_tree_and_first_ledger_line(ws: Path) -> None:
    assert git(ws, "symbolic-ref", "HEAD") == "refs/heads/main"
    main = git(ws, "rev-parse", "main")
    assert git(ws, "cat-file", "-t", "coder/v1") == "tag"  # annotated
    assert git(ws, "rev-parse", "coder/v1^{commit}") == main
    assert git(ws, "log", "--format=%an <%ae>|%cn <%ce>", "-1", "main") == f"{BOT}|{BOT}"
    _clean(ws)
    assert (ws / AGENT_YAML).is_file() and (ws / ".gitignore").is_file()

    registry = Registry(ws)
    release = registry.current_release("coder")
    assert (release.tag, release.number, release.commit) == ("coder/v1", 1, main)
    (entry,) = registry.ledger("coder")
    assert (entry.seq, entry.decision, entry.release, entry.agent) == (1, "release", "coder/v1", "coder")
    assert git(ws, "show", "main:releases/coder/ledger.jsonl").count("\n") == 0  # exactly one line


def test_init_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    from ratchet.agents.errors import UserError

    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "file").write_text("x")
    with pytest.raises(UserError, match="not empty"):
        init_workspace(tmp_path / "full")
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["file"]


def test_unknown_agent_has_no_release(ws: Path) -> None:
    with pytest.raises(StateError, match="nobody/v1"):
        Registry(ws).current_release("nobody")


# --------------------------------------------------------------------------- candidates and evidence


def test_create_candidate_branches_from_main_without_touching_the_tree(ws: Path) -> None:
    registry = Registry(ws)
    main = git(ws, "rev-parse", "main")
    before = (ws / AGENT_YAML).read_bytes()
    rc = _candidate(registry, ws)

    assert (rc.branch, rc.number, rc.base_commit) == ("rc/coder/1", 1, main)
    assert git(ws, "rev-parse", "rc/coder/1") == rc.commit
    assert _parents(ws, rc.commit) == [main]
    assert git(ws, "diff", "--name-only", main, rc.commit) == AGENT_YAML
    assert b"Return only the code." in git(ws, "show", f"{rc.commit}:{AGENT_YAML}").encode()
    assert git(ws, "symbolic-ref", "HEAD") == "refs/heads/main"
    assert git(ws, "rev-parse", "main") == main
    assert (ws / AGENT_YAML).read_bytes() == before
    _clean(ws)

    second = _candidate(registry, ws, marker="- Another idea.")
    assert (second.branch, second.base_commit) == ("rc/coder/2", main)
    assert registry.next_rc_number("coder") == 3


def test_add_evidence_commits_under_the_rc_folder(ws: Path) -> None:
    registry = Registry(ws)
    rc = _candidate(registry, ws)
    files = {"verdict.json": b'{"decision": "promote"}\n', "spec.md": b"# spec\n"}
    with_evidence = registry.add_evidence(rc, files, "gate evidence")

    assert with_evidence.commit != rc.commit and with_evidence.base_commit == rc.base_commit
    assert git(ws, "rev-parse", rc.branch) == with_evidence.commit
    assert _parents(ws, with_evidence.commit) == [rc.commit]
    changed = git(ws, "diff", "--name-only", rc.commit, with_evidence.commit).splitlines()
    assert sorted(changed) == [f"{evidence_dir('coder', 1)}/spec.md", f"{evidence_dir('coder', 1)}/verdict.json"]
    assert git(ws, "show", f"{rc.branch}:releases/coder/rc-1/spec.md") == "# spec"
    assert not (ws / "releases" / "coder" / "rc-1").exists()
    _clean(ws)

    found = registry.candidate("coder", 1)
    assert found == with_evidence  # base found by walking past the evidence commit
    with pytest.raises(StateError, match="rc/coder/9"):
        registry.candidate("coder", 9)


# --------------------------------------------------------------------------- decisions


def test_promote_merges_tags_and_updates_the_checkout(ws: Path) -> None:
    registry = Registry(ws)
    old_main = git(ws, "rev-parse", "main")
    rc = registry.add_evidence(_candidate(registry, ws), {"verdict.json": b"{}\n"}, "evidence")
    notes = "# coder/v2\n\nFixes 3 tasks, breaks none.\n"
    entry = registry.promote(
        rc, notes, decision="promote", reason="gate: 3 fixes, 0 regressions", intent="stop prose around code", fixes=3
    )

    main = git(ws, "rev-parse", "main")
    assert _parents(ws, main) == [old_main, rc.commit]
    assert git(ws, "cat-file", "-t", "coder/v2") == "tag"
    assert git(ws, "rev-parse", "coder/v2^{commit}") == main
    assert "Fixes 3 tasks, breaks none." in git(ws, "tag", "-l", "--format=%(contents)", "coder/v2")
    assert git(ws, "tag", "-l", "--format=%(taggername) %(taggeremail)", "coder/v2") == str(BOT)

    assert "Return only the code." in (ws / AGENT_YAML).read_text()  # the working tree follows main
    assert (ws / "releases" / "coder" / "rc-1" / "verdict.json").is_file()
    _clean(ws)

    assert (entry.decision, entry.release, entry.rc, entry.rc_commit, entry.fixes) == (
        "promote",
        "coder/v2",
        "rc/coder/1",
        rc.commit,
        3,
    )
    assert registry.ledger("coder")[-1] == entry and len(registry.ledger("coder")) == 2
    assert registry.current_release("coder").tag == "coder/v2"
    assert "stop prose around code" in git(ws, "log", "-1", "--format=%B", "main")


def test_reject_tags_the_rc_and_leaves_the_agent_alone(ws: Path) -> None:
    registry = Registry(ws)
    old_main = git(ws, "rev-parse", "main")
    agent_tree = git(ws, "rev-parse", "main:agents/coder")
    rc = registry.add_evidence(_candidate(registry, ws), {"verdict.json": b"{}\n"}, "evidence")
    entry = registry.reject(rc, "rc/coder/1 (rejected): 2 regressions", decision="reject", reason="2 regressions")

    main = git(ws, "rev-parse", "main")
    assert _parents(ws, main) == [old_main]
    assert git(ws, "diff", "--name-only", old_main, main) == "releases/coder/ledger.jsonl"
    assert git(ws, "rev-parse", "main:agents/coder") == agent_tree
    assert git(ws, "cat-file", "-t", rejected_tag("coder", 1)) == "tag"
    assert git(ws, "rev-parse", "coder/rc1-rejected^{commit}") == rc.commit
    message = git(ws, "tag", "-l", "--format=%(contents)", "coder/rc1-rejected")
    body, trailers = message.strip().split("\n\n", 1)
    assert body == "rc/coder/1 (rejected): 2 regressions"
    assert parse_trailers(message) == entry.trailers(), "the tag carries the ledger entry's facts as trailers"
    assert "Ratchet-Decision: reject" in trailers and f"Ratchet-Ledger-Hash: {entry.hash}" in trailers
    assert "Return only the code." not in (ws / AGENT_YAML).read_text()
    assert registry.current_release("coder").tag == "coder/v1"
    assert [e.decision for e in registry.ledger("coder")] == ["release", "reject"] and entry.rc == "rc/coder/1"
    _clean(ws)


def test_hold_appends_a_ledger_line_only(ws: Path) -> None:
    registry = Registry(ws)
    old_main = git(ws, "rev-parse", "main")
    tags = git(ws, "tag", "-l")
    rc = _candidate(registry, ws)
    entry = registry.hold(rc, decision="hold", reason="1 regression needs a person")

    main = git(ws, "rev-parse", "main")
    assert _parents(ws, main) == [old_main]
    assert git(ws, "diff", "--name-only", old_main, main) == "releases/coder/ledger.jsonl"
    assert git(ws, "tag", "-l") == tags
    assert (entry.decision, entry.rc, entry.reason) == ("hold", "rc/coder/1", "1 regression needs a person")
    assert len(registry.ledger("coder")) == 2
    _clean(ws)


def test_a_held_candidate_can_still_be_promoted(ws: Path) -> None:
    # the hold's ledger commit moves main, but not agents/coder: the candidate is not stale
    registry = Registry(ws)
    rc = _candidate(registry, ws)
    registry.hold(rc, decision="hold", reason="needs a person")
    person = Identity(name="Ada Lovelace", email="ada@example.com")
    entry = registry.promote(rc, "# coder/v2\n", who=person, decision="manual_promote", reason="looked fine")
    assert entry.release == "coder/v2"
    assert [e.decision for e in registry.ledger("coder")] == ["release", "hold", "manual_promote"]
    assert "Return only the code." in (ws / AGENT_YAML).read_text()
    _clean(ws)


def test_tag_message_keeps_the_notes_verbatim_and_ends_in_the_ledger_trailers(ws: Path) -> None:
    registry = Registry(ws)
    notes = "# coder/v2\n\nDecision: promote.\n\n## Flips\n\n| task | kind |\n"
    entry = registry.promote(_candidate(registry, ws), notes, decision="promote", reason="ok")
    with registry.store() as store:
        message = store.tag_message("coder/v2") or ""
    assert message.startswith(notes), "the notes come first, verbatim"
    assert parse_trailers(message) == entry.trailers() and entry.trailers()["Ratchet-Release"] == "coder/v2"
    assert git(ws, "tag", "-l", "--format=%(contents)", "coder/v1").startswith("# coder/v1")


def test_decisions_refuse_a_dirty_checkout(ws: Path) -> None:
    registry = Registry(ws)
    rc = _candidate(registry, ws)
    main = git(ws, "rev-parse", "main")
    (ws / PROMPT).write_text((ws / PROMPT).read_text() + "\nhand edit\n")
    with pytest.raises(StateError, match="uncommitted changes"):
        registry.promote(rc, "# coder/v2\n", decision="promote", reason="ok")
    with pytest.raises(StateError, match="uncommitted changes"):
        registry.hold(rc, decision="hold", reason="h")
    assert git(ws, "rev-parse", "main") == main and git(ws, "tag", "-l") == "coder/v1"
    assert "hand edit" in (ws / PROMPT).read_text()


def test_promoting_a_stale_candidate_is_refused(ws: Path) -> None:
    registry = Registry(ws)
    first = _candidate(registry, ws)
    second = registry.create_candidate("coder", _edit(ws, PROMPT, "Be careful."), "rc: careful")
    registry.promote(first, "# coder/v2\n", decision="promote", reason="ok")
    main = git(ws, "rev-parse", "main")
    tags = git(ws, "tag", "-l")
    with pytest.raises(StateError, match="rc/coder/2 was built on an older agents/coder"):
        registry.promote(second, "# coder/v3\n", decision="promote", reason="ok")
    assert git(ws, "rev-parse", "main") == main and git(ws, "tag", "-l") == tags
    assert len(registry.ledger("coder")) == 2
    _clean(ws)


def test_tags_are_never_moved(ws: Path) -> None:
    registry = Registry(ws)
    rc = _candidate(registry, ws)
    registry.reject(rc, "no", decision="reject", reason="no")
    with pytest.raises(StateError, match="already exists"):
        registry.reject(rc, "again", decision="reject", reason="again")


def test_manual_decision_records_the_person(ws: Path) -> None:
    registry = Registry(ws)
    rc = _candidate(registry, ws)
    person = Identity(name="Ada Lovelace", email="ada@example.com")
    entry = registry.promote(rc, "# coder/v2\n", who=person, decision="manual_promote", reason="reviewed")
    assert entry.actor == "Ada Lovelace <ada@example.com>"
    assert git(ws, "log", "-1", "--format=%an <%ae>", "main") == str(person)
    assert git(ws, "tag", "-l", "--format=%(taggername) %(taggeremail)", "coder/v2") == str(person)


# --------------------------------------------------------------------------- the whole story


def test_a_history_of_decisions_keeps_the_repository_sound(ws: Path) -> None:
    registry = Registry(ws)
    one = _candidate(registry, ws)
    registry.reject(registry.add_evidence(one, {"verdict.json": b"{}\n"}, "e1"), "r", decision="reject", reason="r")
    two = _candidate(registry, ws, marker="- Second idea.")
    registry.promote(
        registry.add_evidence(two, {"verdict.json": b"{}\n"}, "e2"), "# coder/v2\n", decision="promote", reason="p"
    )
    three = registry.create_candidate("coder", _edit(ws, PROMPT, "Third idea."), "rc: third")
    registry.hold(three, decision="hold", reason="h")
    four = registry.create_candidate("coder", _edit(ws, PROMPT, "Fourth idea."), "rc: fourth")
    registry.promote(four, "# coder/v3\n", decision="promote", reason="p")

    assert [e.decision for e in registry.ledger("coder")] == ["release", "reject", "promote", "hold", "promote"]
    assert [e.seq for e in registry.ledger("coder")] == [1, 2, 3, 4, 5]
    assert git(ws, "tag", "-l").splitlines() == ["coder/rc1-rejected", "coder/v1", "coder/v2", "coder/v3"]
    assert sorted(git(ws, "branch", "--format=%(refname:short)").splitlines()) == [
        "main",
        *(rc_branch("coder", n) for n in (1, 2, 3, 4)),
    ]
    assert registry.current_release("coder").tag == release_tag("coder", 3)
    assert "Fourth idea." in (ws / PROMPT).read_text() and "Second idea." in (ws / AGENT_YAML).read_text()
    authors = set(git(ws, "log", "--all", "--format=%an <%ae>|%cn <%ce>").splitlines())
    assert authors == {f"{BOT}|{BOT}"}
    _clean(ws)
    fsck = subprocess.run(["git", "fsck", "--full", "--strict"], cwd=ws, capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stderr
    assert "error" not in fsck.stderr.lower() and "dangling" not in fsck.stdout


def test_rollback_makes_a_new_release_with_the_old_artifact_and_rewrites_nothing(ws: Path) -> None:
    from ratchet.releases.gitstore import Identity

    registry = Registry(ws)
    registry.promote(_candidate(registry, ws), "# coder/v2\n", decision="promote", reason="ok")
    tags_before = {t: git(ws, "rev-parse", t) for t in git(ws, "tag", "-l").split()}
    ada = Identity(name="Ada", email="ada@example.com")

    entry = registry.rollback("coder", "coder/v1", "v2 misbehaves in production", ada)

    assert entry.decision == "rollback" and entry.release == "coder/v3" and entry.rollback_to == "coder/v1"
    assert entry.actor == "Ada <ada@example.com>" and entry.base_release == "coder/v2"
    assert git(ws, "rev-parse", "coder/v3:agents/coder") == git(ws, "rev-parse", "coder/v1:agents/coder")
    assert {t: git(ws, "rev-parse", t) for t in tags_before} == tags_before, "no tag moved"
    assert git(ws, "merge-base", "--is-ancestor", "coder/v2", "main") == "", "main only moved forward"
    assert parse_trailers(git(ws, "tag", "-l", "--format=%(contents)", "coder/v3"))["Ratchet-Rollback-To"] == "coder/v1"
    _clean(ws)
    with pytest.raises(UserError, match="already equals coder/v1"):
        registry.rollback("coder", "coder/v1", "again", ada)
    with pytest.raises(UserError, match="no release of 'coder' with that name; releases: coder/v1, coder/v2, coder/v3"):
        registry.rollback("coder", "coder/v9", "typo", ada)
