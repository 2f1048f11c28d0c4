"""The fault campaign: a cycle must survive kills, a faulty model backend, adversarial RCs and bad input.

    PYTHONPATH=. python benchmarks/fault_campaign.py                  # 50 kills, 10 backend seeds, corpora
    PYTHONPATH=. python benchmarks/fault_campaign.py --kills 6 --backend-seeds 2   # a quick look

Rows (targets from issue 7):

    kills        SIGKILL at seeded random points of the demo's first cycle (every stage; one kill in
                 four at a named point inside record), restart, repeat; per seed the final state must
                 have the uninterrupted verdict (same decision, fixes, regressions, flip counts and
                 outcome tables), no finished run redone, git fsck clean, `ratchet verify` OK
                 (tests/faults/kill_campaign.py). Target: 50 kills landed, all resumed.
    backend      the same cycle with its models behind an OpenAI-compatible server on 127.0.0.1 that
                 fails 30% of requests (5xx, hangs past the timeout, connection resets, malformed and
                 truncated JSON); same verdict as fault-free (tests/faults/backend_campaign.py).
                 Target: 10/10.
    adversarial  the adversarial RC cases of tests/faults/test_adversarial_rcs.py (run by pytest):
                 refused or contained. Target: all.
    bad inputs   the corpus of tests/faults/test_bad_inputs.py (broken TOML/YAML/JSON, duplicate ids,
                 non-UTF-8 files, 10 MB outputs, hanging and forking verifiers): a clean one-line
                 error with nothing written, or a recorded failure. Target: all.
    sandbox      (issue 12) every forgery of the verdict and every attempt to signal the evaluator of
                 tests/faults/sandbox_attacks.py, in every protection mode a host can give (all
                 layers, seccomp + guard, guard only), each mode in its own evaluator process.
                 Targets: 0 forged passes, 0 evaluator deaths, the honest program passes. Two more
                 rows show what the guard and the descriptor table each add: the kernel layers
                 alone, and a control harness whose worker shares the verdict pipe.
    trust        (issue 12) the attack tests of tests/faults/test_trust_*.py (run by pytest): secrets,
                 the live release, ledger checks, RC validation, bad bytes. Target: all.

Prints a table and writes benchmarks/results/fault_campaign.json (+ a timestamped copy).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("GIT_CONFIG_GLOBAL", "/dev/null")
os.environ.setdefault("GIT_CONFIG_NOSYSTEM", "1")

from results_json import write_results  # noqa: E402  (benchmarks/ is on sys.path when a script runs)

if TYPE_CHECKING:
    from rich.table import Table

DEFAULT_OUT = ROOT / "benchmarks" / "results"


def kill_campaign(kills: int, per_seed: int, template: Path, workdir: Path, url: str) -> dict[str, object]:
    from tests.faults.kill_campaign import make_reference, run_seed

    reference = make_reference(template, workdir, url)
    print(
        f"reference cycle: {reference.seconds:.1f} s, {reference.decision['decision']} {reference.decision['release']}",
        flush=True,
    )
    seeds, landed, stages, problems = [], 0, Counter(), []
    seed = 0
    while landed < kills:
        seed += 1
        result = run_seed(seed, min(per_seed, kills - landed), template, workdir, url, reference)
        hits = [k for k in result.kills if k.landed]
        landed += len(hits)
        stages.update(k.stage.split(":")[0] if k.stage.startswith("record") else k.stage for k in hits)
        seeds.append(
            {"seed": seed, "kills": [k.__dict__ for k in result.kills], "ok": result.ok, "problems": result.problems}
        )
        problems.extend(f"seed {seed}: {p}" for p in result.problems)
        print(
            f"seed {seed}: {len(hits)} kill(s) landed ({', '.join(k.stage for k in hits) or '-'}); "
            f"{'same verdict, nothing redone' if result.ok else 'PROBLEMS: ' + '; '.join(result.problems)}",
            flush=True,
        )
    resumed = sum(len([k for k in s["kills"] if k["landed"]]) for s in seeds if s["ok"])
    return {
        "kills_landed": landed,
        "kills_resumed_same_verdict": resumed,
        "seeds": len(seeds),
        "reference_seconds": round(reference.seconds, 1),
        "stages": dict(stages),
        "per_seed": seeds,
        "problems": problems,
    }


def backend_campaign(seeds: int, rate: float, workdir: Path, url: str) -> dict[str, object]:
    from tests.faults.backend_campaign import run_backend_campaign

    rows = run_backend_campaign(list(range(1, seeds + 1)), rate, workdir, url)
    return {"runs": len(rows), "same_verdict": sum(bool(r["same_verdict"]) for r in rows), "rate": rate, "rows": rows}


def adversarial(workdir: Path) -> dict[str, object]:
    """The adversarial test cases (one attack in one protection mode each; the proposal attacks run as
    real cycles, in two cases holding ATTACKS and UNCOMMITTABLE)."""
    from tests.faults.test_adversarial_rcs import ATTACKS, UNCOMMITTABLE

    cases = pytest_corpus("tests/faults/test_adversarial_rcs.py", workdir)
    through_cycles = (
        "test_adversarial_proposals_are_rejected_before_evaluation",
        "test_proposals_git_cannot_hold_are_rejected_not_crashed",
    )
    cycles_ok = not any(name in failed for name in through_cycles for failed in cases["failed"])
    return {
        **cases,
        "proposal_attacks_in_cycles": len(ATTACKS) + len(UNCOMMITTABLE),
        "proposal_attacks_rejected": len(ATTACKS) + len(UNCOMMITTABLE) if cycles_ok else 0,
    }


def bad_inputs(workdir: Path, url: str) -> dict[str, object]:
    from tests.faults.test_bad_inputs import bad_input_corpus_results

    workdir.mkdir(parents=True)
    rows = bad_input_corpus_results(workdir, url)
    return {
        "cases": len(rows),
        "passed": sum(bool(r["clean"]) for r in rows),
        "failed": [f"{r['case']}: {'; '.join(map(str, r['problems']))}" for r in rows if not r["clean"]],
        "rows": rows,
    }


def sandbox_attacks(workdir: Path) -> dict[str, object]:
    from tests.faults.sandbox_attacks import campaign

    return campaign(workdir)


def trust_corpus(workdir: Path) -> dict[str, object]:
    """The issue-12 attack tests, one pytest run per file, added up."""
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests" / "faults").glob("test_trust_*.py"))
    runs = {f: pytest_corpus(f, workdir) for f in files}
    return {
        "files": files,
        "cases": sum(int(r["cases"]) for r in runs.values()),
        "passed": sum(int(r["passed"]) for r in runs.values()),
        "failed": [f"{f}: {name}" for f, r in runs.items() for name in r["failed"]],
        "per_file": runs,
    }


def pytest_corpus(test_file: str, workdir: Path) -> dict[str, object]:
    """Run one corpus test file; count its cases (pytest testcases) that passed."""
    report = workdir / (Path(test_file).stem + ".xml")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test_file, f"--junitxml={report}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    if not report.exists():
        return {"cases": 0, "passed": 0, "failed": [f"pytest did not run: {done.stdout[-500:]}"]}
    cases = list(ET.parse(report).getroot().iter("testcase"))
    bad = [c.get("name", "?") for c in cases if c.find("failure") is not None or c.find("error") is not None]
    skipped = [c.get("name", "?") for c in cases if c.find("skipped") is not None]
    return {
        "cases": len(cases) - len(skipped),
        "passed": len(cases) - len(skipped) - len(bad),
        "failed": bad,
        "skipped": skipped,
    }


def main(argv: list[str] | None = None) -> None:
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness
    from rich.console import Console
    from rich.table import Table

    from ratchet.pipeline.workspace import init_workspace

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--kills", type=int, default=50, help="kills that must land (default 50)")
    parser.add_argument("--kills-per-seed", type=int, default=3, help="kills chained on one workspace (default 3)")
    parser.add_argument("--backend-seeds", type=int, default=10, help="fault-injected cycles (default 10)")
    parser.add_argument("--backend-rate", type=float, default=0.3)
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=["kills", "backend", "adversarial", "bad-inputs", "sandbox", "trust"],
    )
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    started, clock = datetime.now(UTC), time.perf_counter()
    result: dict[str, object] = {
        "version": 1,
        "benchmark": "fault_campaign",
        "started_at": started.isoformat(timespec="seconds"),
    }
    with tempfile.TemporaryDirectory(prefix="ratchet-faults-") as tmp, prefect_test_harness(server_startup_timeout=120):
        work = Path(tmp)
        url = str(PREFECT_API_URL.value())
        template = work / "template"
        init_workspace(template)
        if "kills" not in args.skip:
            result["kills"] = kill_campaign(args.kills, args.kills_per_seed, template, work / "kills", url)
        if "backend" not in args.skip:
            result["backend"] = backend_campaign(args.backend_seeds, args.backend_rate, work / "backend", url)
        if "adversarial" not in args.skip:
            result["adversarial"] = adversarial(work)
        if "bad-inputs" not in args.skip:
            result["bad_inputs"] = bad_inputs(work / "bad-inputs", url)
        if "sandbox" not in args.skip:
            result["sandbox"] = sandbox_attacks(work / "sandbox")
        if "trust" not in args.skip:
            result["trust"] = trust_corpus(work)
    result["wall_s"] = round(time.perf_counter() - clock, 1)
    result["host"] = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()}
    write_results("fault_campaign", result, args.out_dir, started)

    table = Table(title="Fault campaign")
    for column in ("fault", "tried", "survived", "target"):
        table.add_column(column, justify="left" if column == "fault" else "right")
    if "kills" in result:
        k = result["kills"]
        table.add_row(
            f"SIGKILL at random points ({k['seeds']} seeds)",
            str(k["kills_landed"]),
            str(k["kills_resumed_same_verdict"]),
            f"{args.kills}/{args.kills}",
        )
    if "backend" in result:
        b = result["backend"]
        table.add_row(
            f"backend faults at {args.backend_rate:.0%}",
            str(b["runs"]),
            str(b["same_verdict"]),
            f"{args.backend_seeds}/{args.backend_seeds}",
        )
    if "adversarial" in result:
        a = result["adversarial"]
        table.add_row(
            "adversarial proposals, real cycles: rejected + recorded",
            str(a["proposal_attacks_in_cycles"]),
            str(a["proposal_attacks_rejected"]),
            "all",
        )
    for key, label in (
        ("adversarial", "adversarial test cases (attack x protection mode)"),
        ("bad_inputs", "bad inputs: clean error or recorded failure"),
        ("trust", "trust attacks (issue 12 tests): refused, redacted or recorded"),
    ):
        if key in result:
            c = result[key]
            table.add_row(label, str(c["cases"]), str(c["passed"]), "all")
    sandbox = result.get("sandbox")
    for row in sandbox["rows"] if isinstance(sandbox, dict) else []:
        add_sandbox_rows(table, row)
    console = Console(width=max(Console().width, 100))
    console.print(table)
    if "kills" in result:
        console.print("kills by stage: " + ", ".join(f"{s} {n}" for s, n in sorted(result["kills"]["stages"].items())))
    console.print(f"results: {args.out_dir / 'fault_campaign.json'}; wall {result['wall_s']} s")


def add_sandbox_rows(table: Table, row: dict[str, Any]) -> None:
    """Two rows per protection mode: forgeries that did not pass, signal attacks the evaluator survived."""
    shown = ", ".join(k for k, v in row["isolation"].items() if v) or "no kernel layer"
    mode = f"{row['mode']} ({shown}{', guard' if row['guard'] else ', no guard'})"
    weak = str(row["mode"]).startswith(("kernel only", "control"))
    died = bool(row["evaluator_died"]) or bool(row["unanswered"])
    table.add_row(
        f"forged verdicts refused: {mode}",
        str(row["forgeries"]),
        str(row["forgeries"] - len(row["forged_passes"])),
        "(what the guard adds)" if weak else "all",
    )
    table.add_row(
        f"signal attacks survived: {mode}",
        str(row["signal_attacks"]),
        "0 (evaluator died)" if died else str(row["signal_attacks"]),
        "all",
    )


if __name__ == "__main__":
    main()
