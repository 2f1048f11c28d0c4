"""Attacks on the sandbox's verdict and on the evaluator (issue 12, items 1 and 2).

1. Forged verdicts: the sandboxed program inherited the descriptor of the harness's result file, so a
   wrong answer that wrote `{'status': 'ok'}` to it and exited passed (56/56 on humaneval/dev with
   answers that implement nothing). Now the program runs in a thread with a descriptor table of its
   own, without the verdict channel, and the verdict means "the program's code returned".
2. Killing the evaluator: fcntl(F_SETOWN, getppid()) + F_SETSIG=SIGKILL + O_ASYNC on an inherited pipe
   made the kernel SIGKILL the process running the evaluation. Now seccomp denies every way to route a
   signal (and the guard refuses them where seccomp is missing).

Each protection mode runs in a child evaluator (tests/faults/sandbox_attacks.py), so a regression kills
that child, not pytest.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ratchet.gates.sandbox import available_isolation
from ratchet.gates.suite import load_suite
from ratchet.gates.verifier import verify
from tests.faults.sandbox_attacks import FD_SCAN, FORGERIES, SIGNAL_ATTACKS, run_mode

GUARDED_MODES = ("all layers", "seccomp + guard", "guard only")
DESCRIPTOR_ROUTES = (
    "write the verdict to every descriptor",
    "write the verdict to every descriptor, then exit 0",
    "reopen descriptors through /proc/self/fd and /dev/fd",
    "a finalizer on another thread writes the verdict",
    "threads keep writing the verdict after the failure",
)


@pytest.mark.parametrize("mode", GUARDED_MODES)
def test_no_attack_forges_a_pass_or_kills_the_evaluator(mode: str, tmp_path: Path) -> None:
    host = available_isolation()
    if mode == "all layers" and not (host.network and host.filesystem and host.processes):
        pytest.skip(f"this host allows only {host}: the weaker modes below cover it")
    if mode == "seccomp + guard" and not host.processes:
        pytest.skip("seccomp filters cannot be installed on this host")
    run = run_mode(mode, {**FORGERIES, **SIGNAL_ATTACKS}, tmp_path)
    assert run.alive and run.returncode == 0, f"the evaluator died (exit {run.returncode}): {run.stderr}"
    assert set(run.results) == {*FORGERIES, *SIGNAL_ATTACKS, "honest program"}, run.results
    passed = [name for name in {**FORGERIES, **SIGNAL_ATTACKS} if run.passed(name)]
    assert passed == [], f"forged passes in mode {mode}: {passed}"
    assert run.passed("honest program"), run.results["honest program"]
    refused = run.results["fcntl F_SETOWN + F_SETSIG SIGKILL + O_ASYNC on inherited descriptors"]
    assert refused["error_type"] == "AssertionError", "the attack ran to its end and failed as a wrong answer does"


def test_the_kernel_alone_closes_every_descriptor_route(tmp_path: Path) -> None:
    """With the guard switched off, no syscall of the program reaches the verdict channel."""
    if not available_isolation().processes:
        pytest.skip("seccomp filters cannot be installed on this host")
    run = run_mode("kernel only", {name: FORGERIES[name] for name in DESCRIPTOR_ROUTES} | SIGNAL_ATTACKS, tmp_path)
    assert run.alive, run.stderr
    assert [name for name in run.results if run.passed(name) and name != "honest program"] == []
    assert run.passed("honest program")


def test_the_forgery_checks_can_fail(tmp_path: Path) -> None:
    """The control: a harness whose worker keeps the shared descriptor table is forged at once."""
    run = run_mode(
        "control: shared descriptor table", {name: FORGERIES[name] for name in DESCRIPTOR_ROUTES[:2]}, tmp_path
    )
    assert run.passed(DESCRIPTOR_ROUTES[0]) and run.passed(DESCRIPTOR_ROUTES[1]), run.results


def test_answers_that_forge_the_verdict_fail_every_humaneval_dev_task(demo_template: Path) -> None:
    """End to end through the python_tests verifier: the attack that scored 56/56 now scores 0."""
    suite = load_suite(demo_template, "humaneval")
    tasks = [suite.tasks[task_id] for task_id in suite.splits["dev"]]
    forged = FD_SCAN + "scan()\nimport os\nos._exit(0)\n"

    async def check_all() -> list[bool]:
        outcomes = await asyncio.gather(*(verify(task, forged) for task in tasks))
        return [o.passed for o in outcomes]

    passed = asyncio.run(check_all())
    assert len(passed) >= 50 and sum(passed) == 0, f"{sum(passed)}/{len(passed)} forged passes"
