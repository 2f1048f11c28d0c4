"""`ratchet history` filters, `ratchet diff` and `ratchet why` on a workspace made by the real quickstart."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner, Result

from ratchet.gates.policy import load_policy
from ratchet.pipeline.cli.app import app
from ratchet.pipeline.release_outcomes import ReleaseLine
from ratchet.releases.evidence import EvidenceReader, task_ids, task_runs
from ratchet.releases.gitstore import GitStore
from ratchet.releases.ledger import LedgerEntry
from ratchet.releases.registry import Registry

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]


@pytest.fixture(scope="module")
def demo(quickstart_demo: Path) -> Path:
    """The session's quickstart workspace (two promotions, then one rejection)."""
    return quickstart_demo


@pytest.fixture(scope="module")
def ledger(demo: Path) -> list[LedgerEntry]:
    entries = Registry(demo).ledger("coder")
    assert [e.decision for e in entries] == ["release", "promote", "promote", "reject"], "the quickstart's story"
    return entries


def invoke(demo: Path, *args: str) -> Result:
    return CliRunner().invoke(app, [*args, "--workspace", str(demo)])


def ok(demo: Path, *args: str) -> str:
    result = invoke(demo, *args)
    assert result.exit_code == 0, result.output
    return result.output


def evidence(demo: Path, entry: LedgerEntry, name: str) -> bytes:
    with GitStore(demo) as git:
        data = git.read(entry.rc_commit or "", f"{entry.evidence}/{name}")
    assert data is not None, name
    return data


def first_confirmed_fix(demo: Path, entry: LedgerEntry) -> str:
    rows = csv.DictReader(io.StringIO(evidence(demo, entry, "flips.csv").decode()))
    return next(r["task_id"] for r in rows if r["kind"] == "F->P" and r["confirmed"] == "True")


# --- history ----------------------------------------------------------------------------------------


def test_history_filters_by_decision_and_time_and_prints_json(demo: Path, ledger: list[LedgerEntry]) -> None:
    promotions = json.loads(ok(demo, "history", "--decision", "promote", "--json"))
    assert [e["release"] for e in promotions] == ["coder/v2", "coder/v3"]
    assert [LedgerEntry.model_validate(e) for e in promotions] == ledger[1:3], "the ledger entries, field for field"

    both = json.loads(ok(demo, "history", "--verdict", "promote,reject", "--json"))
    repeated = json.loads(ok(demo, "history", "--decision", "reject", "--decision", "promote", "--json"))
    assert [e["seq"] for e in both] == [e["seq"] for e in repeated] == [2, 3, 4]

    since = ledger[2].timestamp  # ISO with a zone; entries at that second or later
    later = json.loads(ok(demo, "history", "--since", since, "--json"))
    assert [e["seq"] for e in later] == [e.seq for e in ledger if e.timestamp >= since]
    assert json.loads(ok(demo, "history", "--since", ledger[0].timestamp[:10], "--json"))[0]["seq"] == 1

    table = ok(demo, "history", "--decision", "reject")
    assert "rc/coder/3" in table and "coder/v2" not in table and "think-step-by-step" in table
    assert "no ledger entry of coder matches" in ok(demo, "history", "--since", "2999-01-01")
    assert json.loads(ok(demo, "history", "--since", "2999-01-01", "--json")) == []


def test_history_rejects_unknown_decisions_and_dates_in_one_line(demo: Path, cli) -> None:
    for args, message in (
        (["--decision", "promote,merge"], "--decision merge: not a decision; choose from release,"),
        (["--since", "last tuesday"], "--since 'last tuesday': expected an ISO date"),
    ):
        result = cli("history", *args, "--workspace", str(demo))
        assert result.exit_code == 2 and message in result.output
        assert len(result.output.strip().splitlines()) == 1


# --- diff -------------------------------------------------------------------------------------------


def instructions(demo: Path, release: str) -> list[str]:
    with GitStore(demo) as git:
        data = git.read(f"refs/tags/{release}", "agents/coder/agent.yaml")
    return yaml.safe_load(data or b"")["instructions"]


def test_diff_shows_the_artifact_change_and_the_flips_between_two_releases(
    demo: Path, ledger: list[LedgerEntry]
) -> None:
    added = [i for i in instructions(demo, "coder/v3") if i not in instructions(demo, "coder/v1")]
    assert len(added) == 2, "one instruction per promoted RC"
    out = ok(demo, "diff", "coder/v1", "coder/v3")
    patch, _, flips = out.partition("\nstored gate outcomes:")
    assert patch.startswith("diff --git a/agents/coder/agent.yaml b/agents/coder/agent.yaml")
    for instruction in added:
        assert any(line.startswith("+") and instruction in line for line in patch.splitlines()), instruction
    assert "rc-1/outcomes-baseline-gate.csv" in flips and "rc-2/outcomes-candidate-gate.csv" in flips
    assert "tasks that changed, coder/v1 -> coder/v3" in flips

    result = json.loads(ok(demo, "diff", "coder/v1", "coder/v3", "--json"))
    assert result["files"] and all(f.startswith("agents/coder/") for f in result["files"])
    assert result["alpha"] == load_policy(demo).alpha, "the later release's gate policy"
    assert (result["old_outcomes"]["side"], result["old_outcomes"]["rc"]) == ("baseline", "rc/coder/1")
    assert (result["new_outcomes"]["side"], result["new_outcomes"]["rc"]) == ("candidate", "rc/coder/2")
    fixed = {f["task_id"] for f in result["flips"] if f["kind"] == "F->P"}
    assert result["counts"]["F->P"] == len(fixed) >= ledger[1].fixes
    assert sum(result["counts"].values()) == len(task_ids(evidence(demo, ledger[2], "outcomes-candidate-gate.csv")))
    assert first_confirmed_fix(demo, ledger[1]) in fixed
    for task in fixed:
        assert f"  {task} " in flips and "F->P" in flips


def test_diff_of_a_release_with_itself_has_no_change(demo: Path) -> None:
    result = json.loads(ok(demo, "diff", "coder/v2", "coder/v2", "--json"))
    assert result["patch"] == "" and result["flips"] == [] and result["counts"]["P->F"] == 0
    assert "is the same in coder/v2 and coder/v2" in ok(demo, "diff", "coder/v2", "coder/v2")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["coder/v1", "coder/v9"], "no release 'coder/v9' in coder's ledger; releases: coder/v1, coder/v2, coder/v3"),
        (["coder/v1", "other/v2"], "coder/v1 and other/v2 are releases of different agents"),
        (["coder/v1", "rc/coder/3"], "'rc/coder/3' is not a release name; expected <agent>/v<N>"),
        (["nobody/v1", "nobody/v2"], "no agent 'nobody'; agents here: coder"),
    ],
)
def test_diff_errors_are_one_line(demo: Path, cli, args: list[str], message: str) -> None:
    result = cli("diff", *args, "--workspace", str(demo))
    assert result.exit_code == 2 and message in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


# --- why --------------------------------------------------------------------------------------------


def test_why_a_task_fixed_in_cycle_one(demo: Path, ledger: list[LedgerEntry]) -> None:
    task = first_confirmed_fix(demo, ledger[1])
    out = ok(demo, "why", "coder", task)
    assert f"fixed by rc/coder/1 ({ledger[1].remediation}) in coder/v2" in out
    assert f"{task} on coder's canonical line: failing in coder/v1;" in out

    history = json.loads(ok(demo, "why", "coder", task, "--json"))
    first = history["decisions"][0]
    assert (first["rc"], first["release"], first["kind"], first["confirmed"]) == (
        "rc/coder/1",
        "coder/v2",
        "F->P",
        True,
    )
    assert [s["release"] for s in history["canonical"]] == ["coder/v1", "coder/v2", "coder/v3"]
    assert history["events"][0] == {
        "release": "coder/v2",
        "change": "fixed",
        "decision": "promote",
        "rc": "rc/coder/1",
        "remediation": ledger[1].remediation,
        "rollback_to": None,
    }


def test_why_a_regression_of_the_rejected_candidate(demo: Path, ledger: list[LedgerEntry]) -> None:
    assert "HumanEval/11" in ledger[3].reason, "cycle 3's confirmed regressions"
    out = ok(demo, "why", "coder", "HumanEval/11")
    rc3 = next(line for line in out.splitlines() if "rc/coder/3" in line)
    assert "reject" in rc3 and "P->F" in rc3 and "yes" in rc3 and ledger[3].remediation in rc3
    assert "passing in every release (coder/v1 to coder/v3), never broken" in out
    assert f"Not promoted: rc/coder/3 ({ledger[3].remediation}, reject) broke it" in out

    history = json.loads(ok(demo, "why", "coder", "HumanEval/11", "--json"))
    assert [d["rc"] for d in history["decisions"]] == ["rc/coder/1", "rc/coder/2", "rc/coder/3"]
    assert history["events"] == [] and all(s["runs"]["passed"] for s in history["canonical"])
    rejected = history["decisions"][-1]
    assert rejected["baseline"]["passed"] and not rejected["candidate"]["passed"]


def test_why_counts_every_run_of_the_stored_outcome_tables(demo: Path, ledger: list[LedgerEntry]) -> None:
    """The fast row scan agrees with pandas on every task of every stored table, confirmation trials included."""
    for entry in ledger[1:]:
        for side in ("baseline", "candidate"):
            table = evidence(demo, entry, f"outcomes-{side}-gate.csv")
            counts = pd.read_csv(io.BytesIO(table)).groupby("task_id")["passed"].agg(["sum", "count"])
            for task, row in counts.iterrows():
                runs = task_runs(table, str(task))
                assert runs is not None and (runs.passes, runs.runs) == (row["sum"], row["count"])
            assert task_runs(table, "HumanEval/9999") is None


def test_why_unknown_task_suggests_the_closest_id(demo: Path, cli) -> None:
    result = cli("why", "coder", "humaneval/11", "--workspace", str(demo))
    assert result.exit_code == 2 and "no gate outcome of coder has a task 'humaneval/11'" in result.output
    assert "did you mean HumanEval/11?" in result.output and "outcomes-candidate-gate.csv" in result.output
    assert len(result.output.strip().splitlines()) == 1
    unknown = cli("why", "nobody", "HumanEval/11", "--workspace", str(demo))
    assert unknown.exit_code == 2 and "no agent 'nobody'" in unknown.output


def test_why_on_a_fresh_workspace_says_to_run_a_cycle(workspace: Path, cli) -> None:
    result = cli("why", "coder", "HumanEval/11", "--workspace", str(workspace))
    assert result.exit_code == 2 and "no stored gate outcomes yet; run `ratchet cycle --agent coder`" in result.output


# --- which outcomes belong to a release --------------------------------------------------------------


def test_a_rollback_release_has_the_outcomes_of_the_release_it_restored(
    demo: Path, tmp_path: Path, ledger: list[LedgerEntry]
) -> None:
    copy = tmp_path / "demo"
    shutil.copytree(demo, copy, symlinks=True)
    ok(copy, "rollback", "coder", "--to", "v1", "--reason", "test", "--actor", "Tester <t@example.com>")
    with GitStore(copy) as git:
        line = ReleaseLine("coder", Registry(copy).ledger("coder"), EvidenceReader(git))
        sources = {release: line.source(release) for release in line.releases}
    assert sources["coder/v4"] == sources["coder/v1"].model_copy(update={"release": "coder/v4", "restored": "coder/v1"})
    assert (sources["coder/v1"].side, sources["coder/v1"].rc) == ("baseline", "rc/coder/1")

    same = json.loads(ok(copy, "diff", "coder/v1", "coder/v4", "--json"))
    assert same["patch"] == "" and same["flips"] == []
    task = first_confirmed_fix(demo, ledger[1])  # failing in v1, so failing again in v4
    history = json.loads(ok(copy, "why", "coder", task, "--json"))
    states = {s["release"]: s["runs"]["passed"] for s in history["canonical"]}
    assert states["coder/v1"] is False and states["coder/v4"] is False and states["coder/v2"] is True
    if states["coder/v3"]:
        assert history["events"][-1]["decision"] == "rollback"
        assert "first broken by the rollback to coder/v1 in coder/v4" in history["summary"]
