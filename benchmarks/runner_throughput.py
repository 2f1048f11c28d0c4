"""Tasks per second of Ratchet's runner against a raw client, bare litellm and inspect-ai.

Every contender runs the same N one-turn chat tasks at the same concurrency C and max_tokens M
against the same OpenAI-compatible endpoint:

    raw-openai          openai.AsyncOpenAI, a semaphore of C, asyncio.gather (the limit)
    raw-aiohttp         one aiohttp session posting JSON, no SDK (the endpoint's floor: the
                        openai SDK's httpx pool costs ~3 ms of CPU per request at C=64)
    ratchet             gates.evaluation.evaluate() on an exact-match suite of N tasks, agent
                        model hosted_vllm/<served-name>, a fresh RunStore per run; requests take
                        the default transport for a vLLM endpoint (agents.openai_http)
    ratchet-litellm     the same, with the model's transport set to "litellm"
    litellm-concurrent  bare `litellm.acompletion`, same semaphore (separates litellm's cost
                        from Ratchet's own)
    litellm-sequential  `await litellm.acompletion(...)` one after the other, min(N, 200) calls
    inspect-ai          inspect_ai.eval(...) in its own venv, as a subprocess; only eval() is timed

on two endpoints: a real vLLM CPU server (`--vllm-url`, skipped when not given) and a
fixed-latency server this script starts (benchmarks/fixed_latency_server.py). Contenders are
interleaved (A B C D A B C D ...) for `--repeats` rounds after one warm-up each, and the
medians are reported. Results: benchmarks/results/runner_throughput.json (+ a timestamped copy).

    PYTHONPATH=. python benchmarks/runner_throughput.py            # fixed-latency endpoint only
    PYTHONPATH=. python benchmarks/runner_throughput.py --quick    # N=200, 1 repeat
    PYTHONPATH=. python benchmarks/runner_throughput.py --vllm-url http://127.0.0.1:8000/v1 --vllm-model tiny
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from results_json import write_results  # benchmarks/ is on sys.path when a script runs

ROOT = Path(__file__).resolve().parents[1]
SERVER_SCRIPT = Path(__file__).resolve().parent / "fixed_latency_server.py"
DEFAULT_OUT = ROOT / "benchmarks" / "results"
INSPECT_VERSION = "0.3.285"
DEFAULT_INSPECT_VENV = Path(tempfile.gettempdir()) / "inspect-venv"
SEQUENTIAL_CAP = 200
WARMUP_TASKS = 4
SYSTEM_PROMPT = "Answer with one word."
REPLY = "ok"
CONTENDERS = (
    "raw-openai",
    "raw-aiohttp",
    "ratchet",
    "ratchet-litellm",
    "litellm-concurrent",
    "litellm-sequential",
    "inspect-ai",
)


@dataclass(frozen=True)
class Endpoint:
    """One OpenAI-compatible endpoint and the workload run against it."""

    name: str
    base_url: str  # ends with /v1
    served_model: str
    tasks: int
    concurrency: int
    max_tokens: int
    latency_s: float | None = None  # the fixed-latency server's wait; None for a real model

    @property
    def ideal_wall_s(self) -> float | None:
        """ceil(N / C) * latency: the wall time of a client with zero overhead."""
        if self.latency_s is None:
            return None
        return math.ceil(self.tasks / self.concurrency) * self.latency_s


@dataclass
class BenchConfig:
    """Everything one run of the benchmark is told."""

    tasks: int = 1000
    concurrency: int = 64
    max_tokens: int = 16
    latency_s: float = 0.2
    repeats: int = 3
    vllm_url: str | None = None
    vllm_model: str = "tiny"
    vllm_tasks: int = 200
    vllm_concurrency: int = 16
    vllm_max_tokens: int = 8
    inspect: bool = True
    inspect_python: str | None = None
    contenders: tuple[str, ...] = CONTENDERS
    out_dir: Path = DEFAULT_OUT
    store_dir: Path | None = None  # where Ratchet's run stores go (default: system temp)
    run_timeout_s: float = 600.0
    profile: bool = False


@dataclass
class Sample:
    """One timed run of one contender."""

    tasks: int
    wall_s: float | None = None  # filled in by `timed` unless the contender times itself (inspect-ai)
    cpu_s: float | None = None  # CPU time of the client process during the run
    passed: int | None = None
    server_cpu_s: float | None = None


@dataclass
class Row:
    """One contender on one endpoint: every sample plus the medians."""

    endpoint: str
    contender: str
    status: str  # ok | skipped | not available | failed
    tasks: int
    concurrency: int
    max_tokens: int
    note: str = ""
    samples: list[Sample] = field(default_factory=list)
    wall_s: float | None = None
    tasks_per_s: float | None = None
    ratio_to_raw: float | None = None  # tasks/s over raw-openai's on the same endpoint
    ratio_to_floor: float | None = None  # tasks/s over raw-aiohttp's on the same endpoint
    overhead: float | None = None
    ideal_wall_s: float | None = None
    client_cpu_ms_per_task: float | None = None
    server_cpu_share: float | None = None
    passed: int | None = None


# --- the contenders -------------------------------------------------------------------------


def messages_for(i: int) -> list[dict[str, str]]:
    """The chat every contender sends for task i (Ratchet renders the same from its templates)."""
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": f"Task {i}: reply with ok."}]


async def bounded_gather(n: int, concurrency: int, call: Callable[[int], Awaitable[Any]]) -> None:
    """Run call(0..n-1) with at most `concurrency` in flight."""
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with gate:
            await call(i)

    await asyncio.gather(*(one(i) for i in range(n)))


class RawOpenAI:
    """(a) The limit: the openai SDK's async client and nothing else."""

    def __init__(self, ep: Endpoint) -> None:
        from openai import AsyncOpenAI

        self.ep = ep
        self.client = AsyncOpenAI(base_url=ep.base_url, api_key="x", max_retries=0, timeout=120)

    async def aclose(self) -> None:
        await self.client.close()

    async def run(self, n: int) -> Sample:
        async def call(i: int) -> None:
            await self.client.chat.completions.create(
                model=self.ep.served_model, messages=messages_for(i), max_tokens=self.ep.max_tokens, temperature=0
            )

        await bounded_gather(n, self.ep.concurrency, call)
        return Sample(tasks=n)


class RawAiohttp:
    """The endpoint's floor: one aiohttp session, POST JSON, parse JSON; no SDK at all."""

    def __init__(self, ep: Endpoint) -> None:
        self.ep = ep
        self.session: Any = None

    async def run(self, n: int) -> Sample:
        import aiohttp

        if self.session is None:
            self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        url = self.ep.base_url + "/chat/completions"

        async def call(i: int) -> None:
            body = {
                "model": self.ep.served_model,
                "messages": messages_for(i),
                "max_tokens": self.ep.max_tokens,
                "temperature": 0,
            }
            async with self.session.post(url, json=body, headers={"Authorization": "Bearer x"}) as response:
                response.raise_for_status()
                (await response.json())["choices"][0]["message"]["content"]

        await bounded_gather(n, self.ep.concurrency, call)
        return Sample(tasks=n)

    async def aclose(self) -> None:
        if self.session is not None:
            await self.session.close()


class BareLitellm:
    """(c) `litellm.acompletion` with Ratchet's litellm settings, concurrent or one at a time."""

    def __init__(self, ep: Endpoint, sequential: bool) -> None:
        import litellm

        litellm.telemetry = False
        litellm.suppress_debug_info = True
        self.ep = ep
        self.sequential = sequential

    async def run(self, n: int) -> Sample:
        import litellm

        async def call(i: int) -> None:
            await litellm.acompletion(
                model=f"hosted_vllm/{self.ep.served_model}",
                api_base=self.ep.base_url,
                messages=messages_for(i),
                max_tokens=self.ep.max_tokens,
                temperature=0,
                timeout=120,
            )

        if self.sequential:
            for i in range(n):
                await call(i)
        else:
            await bounded_gather(n, self.ep.concurrency, call)
        return Sample(tasks=n)


def ratchet_model_client(artifact: Any, api_base: str, concurrency: int, transport: str = "auto") -> Any:
    """The one place this benchmark touches Ratchet's model layer (agents.models, agents.model_config).

    Default retries and everything else as a user gets them; only the client's own concurrency
    gate is opened to the benchmark's C, so that it never caps Ratchet below the others.
    """
    from ratchet.agents.model_config import ModelConfig
    from ratchet.agents.models import ModelClient

    config = ModelConfig(model=artifact.spec.model, api_base=api_base, max_concurrency=concurrency, transport=transport)
    return ModelClient(config, artifact.spec.model_params)


def write_artifact(folder: Path, served_model: str, max_tokens: int) -> Path:
    """A one-turn, tool-less agent whose prompts render exactly `messages_for(i)`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "system.j2").write_text(SYSTEM_PROMPT + "\n", encoding="utf-8")
    (folder / "user.j2").write_text("{{ task_input }}\n", encoding="utf-8")
    spec = {
        "name": "bench",
        "description": "runner throughput benchmark",
        "model": f"hosted_vllm/{served_model}",
        "model_params": {"temperature": 0.0, "max_tokens": max_tokens},
        "max_turns": 1,
        "prompts": {"system": "system.j2", "user": "user.j2"},
        "tools": [],
    }
    (folder / "agent.yaml").write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")  # JSON is YAML
    return folder


def exact_match_suite(n: int, name: str = "bench") -> Any:
    """N exact-match tasks (expected answer `ok`), all in the gate split."""
    from ratchet.gates.suite import Suite
    from ratchet.gates.task import ExactMatchVerifier, Task

    tasks = {
        f"{name}/{i}": Task(
            id=f"{name}/{i}", input=messages_for(i)[1]["content"], verifier=ExactMatchVerifier(expected=[REPLY])
        )
        for i in range(n)
    }
    return Suite(name=name, tasks=tasks, splits={"dev": [], "gate": list(tasks), "holdout": []})


class RatchetRunner:
    """(b) Ratchet's runner: evaluate() over the suite, a fresh run store per run (nothing reused)."""

    def __init__(self, ep: Endpoint, workdir: Path, transport: str = "auto") -> None:
        from ratchet.agents.artifact import load_artifact

        self.ep = ep
        self.workdir = workdir
        self.artifact = load_artifact(write_artifact(workdir / "agent", ep.served_model, ep.max_tokens))
        self.client = ratchet_model_client(self.artifact, ep.base_url, ep.concurrency, transport)
        self.suites: dict[int, Any] = {}
        self.runs = 0

    async def run(self, n: int) -> Sample:
        from ratchet.gates.evaluation import evaluate
        from ratchet.gates.run_store import RunStore

        suite = self.suites.get(n) or self.suites.setdefault(n, exact_match_suite(n))
        self.runs += 1
        store = RunStore(self.workdir / f"store-{self.runs}")
        result = await evaluate(
            self.artifact,
            self.client,
            suite,
            suite.split("gate"),
            store,
            split="gate",
            trials=1,
            concurrency=self.ep.concurrency,
        )
        if result.summary.reused:
            raise RuntimeError(f"ratchet reused {result.summary.reused} stored runs; the timing would be wrong")
        return Sample(tasks=n, passed=result.summary.passed)

    async def aclose(self) -> None:
        await self.client.aclose()


async def timed(runner: Any, n: int, timeout_s: float, server_pid: int | None) -> Sample:
    """Run once; wall and client CPU time around the run only (after a gc)."""
    gc.collect()
    server_cpu = process_cpu_s(server_pid)
    cpu, started = time.process_time(), time.perf_counter()
    sample = await asyncio.wait_for(runner.run(n), timeout_s)
    if sample.wall_s is not None:  # self-timed in a subprocess: the server's CPU time would include its warm-up
        return sample
    sample.wall_s = time.perf_counter() - started
    sample.cpu_s = time.process_time() - cpu
    after = process_cpu_s(server_pid)
    sample.server_cpu_s = None if server_cpu is None or after is None else after - server_cpu
    return sample


def process_cpu_s(pid: int | None) -> float | None:
    """user + system CPU seconds of another process (Linux /proc), or None."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


# --- inspect-ai, in its own venv ------------------------------------------------------------

INSPECT_SCRIPT = r"""
import json, sys, time
from inspect_ai import Task, eval
from inspect_ai.dataset import Sample
from inspect_ai.scorer import exact
from inspect_ai.solver import generate, system_message

cfg = json.loads(sys.argv[1])


def run(n):
    samples = [Sample(id=i, input=cfg["user_format"].format(i=i), target=cfg["expected"]) for i in range(n)]
    task = Task(dataset=samples, solver=[system_message(cfg["system"]), generate()], scorer=exact())
    cpu, started = time.process_time(), time.perf_counter()
    logs = eval(task, model=cfg["model"], max_connections=cfg["concurrency"], max_tokens=cfg["max_tokens"],
                temperature=0, display="none", log_dir=cfg["log_dir"])
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    log = logs[0]
    if log.status != "success":
        raise SystemExit(f"inspect eval status {log.status}: {log.error}")
    metrics = log.results.scores[0].metrics
    accuracy = (metrics.get("accuracy") or metrics.get("mean") or next(iter(metrics.values()))).value
    return {"wall_s": wall, "cpu_s": cpu, "tasks": n, "passed": round(accuracy * n)}


run(cfg["warmup"])
print("RESULT " + json.dumps(run(cfg["tasks"])), flush=True)
"""


def inspect_python(cfg: BenchConfig) -> tuple[str | None, str]:
    """(python with inspect-ai, note): --inspect-python, else DEFAULT_INSPECT_VENV, made on demand."""
    if cfg.inspect_python:
        version = _inspect_version(cfg.inspect_python)
        if version is None:
            return None, f"--inspect-python {cfg.inspect_python} cannot import inspect_ai"
        return cfg.inspect_python, f"inspect-ai {version}"
    python = DEFAULT_INSPECT_VENV / "bin" / "python"
    if _inspect_version(str(python)) is None:
        made = make_inspect_venv(DEFAULT_INSPECT_VENV)
        if made:
            return None, made
    version = _inspect_version(str(python))
    return (str(python), f"inspect-ai {version}") if version else (None, "inspect_ai does not import in the venv")


def make_inspect_venv(venv: Path) -> str:
    """python -m venv VENV && VENV/bin/pip install inspect-ai==0.3.285 openai; '' or why it failed."""
    print(f"making {venv} (pip install inspect-ai=={INSPECT_VERSION} openai) ...", file=sys.stderr, flush=True)
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [str(venv / "bin" / "pip"), "install", "-q", f"inspect-ai=={INSPECT_VERSION}", "openai"],
    ]
    for step in steps:
        try:
            done = subprocess.run(step, check=False, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"cannot make {venv}: {exc}"
        if done.returncode != 0:
            return f"cannot make {venv}: {' '.join(step[:3])} failed: {done.stderr.strip()[-200:]}"
    return ""


def _inspect_version(python: str) -> str | None:
    try:
        done = subprocess.run(
            [python, "-c", "import inspect_ai; print(inspect_ai.__version__)"],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


class InspectRunner:
    """(d) inspect_ai.eval() in a subprocess; it warms up itself and times only the timed eval()."""

    def __init__(self, ep: Endpoint, python: str, workdir: Path) -> None:
        self.ep = ep
        self.python = python
        self.workdir = workdir
        self.script = workdir / "inspect_bench.py"
        self.script.write_text(INSPECT_SCRIPT, encoding="utf-8")

    async def run(self, n: int) -> Sample:
        cfg = {
            "model": f"openai-api/local/{self.ep.served_model}",
            "concurrency": self.ep.concurrency,
            "max_tokens": self.ep.max_tokens,
            "tasks": n,
            "warmup": WARMUP_TASKS,
            "system": SYSTEM_PROMPT,
            "user_format": "Task {i}: reply with ok.",
            "expected": REPLY,
            "log_dir": str(self.workdir / "logs"),
        }
        env = {
            **os.environ,
            "LOCAL_BASE_URL": self.ep.base_url,
            "LOCAL_API_KEY": "x",
            "INSPECT_DISPLAY": "none",
            "INSPECT_LOG_DIR": cfg["log_dir"],
        }
        proc = await asyncio.create_subprocess_exec(
            self.python,
            str(self.script),
            json.dumps(cfg),
            env=env,
            cwd=str(self.workdir),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await proc.communicate()
        except asyncio.CancelledError:
            proc.kill()
            await proc.wait()
            raise
        lines = [line for line in out.decode().splitlines() if line.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            raise RuntimeError(f"inspect subprocess exited {proc.returncode}: {err.decode().strip()[-300:]}")
        result = json.loads(lines[-1][len("RESULT ") :])
        return Sample(wall_s=result["wall_s"], cpu_s=result["cpu_s"], tasks=result["tasks"], passed=result["passed"])


# --- the fixed-latency server ---------------------------------------------------------------


@contextlib.contextmanager
def fixed_latency_server(
    latency_s: float, reply: str = REPLY, start_timeout_s: float = 30.0
) -> Iterator[tuple[str, int]]:
    """Start benchmarks/fixed_latency_server.py on a free 127.0.0.1 port; yield (base_url .../v1, pid)."""
    import select

    proc = subprocess.Popen(
        [sys.executable, str(SERVER_SCRIPT), "--port", "0", "--latency", str(latency_s), "--reply", reply],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], start_timeout_s)
        line = proc.stdout.readline() if ready else ""
        if not line.startswith("listening on "):
            raise RuntimeError(f"fixed-latency server did not start (exit code {proc.poll()}, said {line!r})")
        yield line.split()[-1] + "/v1", proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- one endpoint: warm up, interleave, summarise ---------------------------------------------


def make_runners(ep: Endpoint, cfg: BenchConfig, workdir: Path, rows: dict[str, Row]) -> dict[str, Any]:
    """The runners that can run; a contender that cannot gets its row marked instead."""
    runners: dict[str, Any] = {}
    for name in cfg.contenders:
        try:
            if name == "raw-openai":
                runners[name] = RawOpenAI(ep)
            elif name == "raw-aiohttp":
                runners[name] = RawAiohttp(ep)
            elif name == "ratchet":
                runners[name] = RatchetRunner(ep, workdir / "ratchet")
            elif name == "ratchet-litellm":
                runners[name] = RatchetRunner(ep, workdir / "ratchet-litellm", transport="litellm")
            elif name in ("litellm-concurrent", "litellm-sequential"):
                runners[name] = BareLitellm(ep, sequential=name == "litellm-sequential")
            elif name == "inspect-ai":
                python, note = inspect_python(cfg) if cfg.inspect else (None, "--no-inspect given")
                rows[name].note = note
                if python is None:
                    rows[name].status = "not available"
                    continue
                (workdir / "inspect").mkdir(parents=True, exist_ok=True)
                runners[name] = InspectRunner(ep, python, workdir / "inspect")
        except Exception as exc:
            rows[name].status, rows[name].note = "failed", f"setup: {_one_line(exc)}"
    return runners


def empty_rows(ep: Endpoint, cfg: BenchConfig, status: str, note: str = "") -> dict[str, Row]:
    rows = {}
    for name in cfg.contenders:
        sequential = name == "litellm-sequential"
        rows[name] = Row(
            endpoint=ep.name,
            contender=name,
            status=status,
            note=note,
            tasks=min(ep.tasks, SEQUENTIAL_CAP) if sequential else ep.tasks,
            concurrency=1 if sequential else ep.concurrency,
            max_tokens=ep.max_tokens,
        )
    return rows


async def bench_endpoint(ep: Endpoint, cfg: BenchConfig, server_pid: int | None = None) -> list[Row]:
    """Warm every contender up once, then time them interleaved for cfg.repeats rounds."""
    rows = empty_rows(ep, cfg, "ok")
    with tempfile.TemporaryDirectory(prefix="ratchet-bench-", dir=cfg.store_dir) as tmp:
        runners = make_runners(ep, cfg, Path(tmp), rows)
        for name, runner in list(runners.items()):
            if name == "inspect-ai":
                continue  # warms up inside its own subprocess, every time
            try:
                await asyncio.wait_for(runner.run(min(WARMUP_TASKS, ep.tasks)), cfg.run_timeout_s)
            except Exception as exc:
                rows[name].status, rows[name].note = "failed", f"warm-up: {_one_line(exc)}"
                del runners[name]
        for round_no in range(cfg.repeats):
            for name, runner in list(runners.items()):
                print(f"  {ep.name} round {round_no + 1}/{cfg.repeats}: {name} ...", file=sys.stderr, flush=True)
                try:
                    sample = await timed(runner, rows[name].tasks, cfg.run_timeout_s, server_pid)
                except Exception as exc:
                    rows[name].status, rows[name].note = "failed", _one_line(exc)
                    del runners[name]
                    continue
                rows[name].samples.append(sample)
        if cfg.profile and "ratchet" in runners:
            await profile_runner(runners["ratchet"], ep, cfg.out_dir / f"runner_throughput_profile_{ep.name}.txt")
        for runner in runners.values():
            if hasattr(runner, "aclose"):
                await runner.aclose()
    return summarise(list(rows.values()), ep)


async def bench_endpoints(endpoints: list[Endpoint], cfg: BenchConfig, server_pid: int) -> list[Row]:
    rows: list[Row] = []
    for ep in endpoints:
        rows += await bench_endpoint(ep, cfg, server_pid if ep.name == "fixed-latency" else None)
    return rows


def summarise(rows: list[Row], ep: Endpoint) -> list[Row]:
    """Medians over the samples; tasks/s, ratio to raw-openai, overhead against the ideal wall."""
    for row in rows:
        if not row.samples:
            continue
        row.wall_s = statistics.median(s.wall_s for s in row.samples if s.wall_s is not None)
        row.tasks_per_s = row.tasks / row.wall_s
        cpus = [s.cpu_s for s in row.samples if s.cpu_s is not None]
        row.client_cpu_ms_per_task = statistics.median(cpus) / row.tasks * 1000 if cpus else None
        shares = [s.server_cpu_s / s.wall_s for s in row.samples if s.server_cpu_s is not None and s.wall_s]
        row.server_cpu_share = statistics.median(shares) if shares else None
        passed = [s.passed for s in row.samples if s.passed is not None]
        row.passed = min(passed) if passed else None
        if ep.latency_s is not None:
            row.ideal_wall_s = math.ceil(row.tasks / row.concurrency) * ep.latency_s
            row.overhead = (row.wall_s - row.ideal_wall_s) / row.ideal_wall_s
    raw = next((r.tasks_per_s for r in rows if r.contender == "raw-openai" and r.tasks_per_s), None)
    floor = next((r.tasks_per_s for r in rows if r.contender == "raw-aiohttp" and r.tasks_per_s), None)
    for row in rows:
        if row.tasks_per_s:
            row.ratio_to_raw = row.tasks_per_s / raw if raw else None
            row.ratio_to_floor = row.tasks_per_s / floor if floor else None
    return rows


async def profile_runner(runner: Any, ep: Endpoint, path: Path) -> None:
    """One more (untimed) Ratchet run under cProfile: top functions by own and by cumulative time."""
    import cProfile
    import io
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    await runner.run(ep.tasks)
    profiler.disable()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text).strip_dirs()
    for order in ("tottime", "cumulative"):
        text.write(f"\n===== ratchet, {ep.tasks} tasks on {ep.name}, sorted by {order} =====\n")
        stats.sort_stats(order).print_stats(45)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.getvalue(), encoding="utf-8")
    print(f"profile written to {path}", file=sys.stderr)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]


# --- the whole run: endpoints, JSON, table ----------------------------------------------------


def endpoints_for(cfg: BenchConfig, fixed_url: str) -> list[Endpoint]:
    fixed = Endpoint("fixed-latency", fixed_url, "fixed", cfg.tasks, cfg.concurrency, cfg.max_tokens, cfg.latency_s)
    if not cfg.vllm_url:
        return [fixed]
    vllm = Endpoint(
        "vllm-cpu", _v1(cfg.vllm_url), cfg.vllm_model, cfg.vllm_tasks, cfg.vllm_concurrency, cfg.vllm_max_tokens
    )
    return [vllm, fixed]


def run_benchmark(cfg: BenchConfig) -> dict[str, Any]:
    """Run every endpoint, write the JSON (plus a timestamped copy) and return it."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from ratchet.pipeline import setup

    setup()  # litellm offline, Ratchet's providers registered: what the CLI does first
    started = datetime.now(UTC)
    load_before = os.getloadavg()
    with fixed_latency_server(cfg.latency_s) as (fixed_url, server_pid):
        endpoints = endpoints_for(cfg, fixed_url)
        rows = asyncio.run(bench_endpoints(endpoints, cfg, server_pid))  # one loop: litellm caches clients per loop
    if not cfg.vllm_url:
        skipped = Endpoint("vllm-cpu", "", cfg.vllm_model, cfg.vllm_tasks, cfg.vllm_concurrency, cfg.vllm_max_tokens)
        endpoints.insert(0, skipped)
        rows = list(empty_rows(skipped, cfg, "skipped", "no --vllm-url given").values()) + rows
    result = {
        "version": 1,
        "benchmark": "runner_throughput",
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": host_facts(load_before),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
        "endpoints": [{**asdict(ep), "ideal_wall_s": ep.ideal_wall_s} for ep in endpoints],
        "rows": [asdict(row) for row in rows],
    }
    write_results("runner_throughput", result, cfg.out_dir, started)
    return result


def host_facts(load_before: tuple[float, float, float]) -> dict[str, Any]:
    """What a reader needs to judge the numbers: machine, load, versions."""
    versions: dict[str, str | None] = {}
    for name in ("litellm", "openai", "pydantic", "httpx", "aiohttp"):
        try:
            from importlib.metadata import version

            versions[name] = version(name)
        except Exception:
            versions[name] = None
    git = ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]
    commit = subprocess.run(git, check=False, capture_output=True, text=True)
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_avg_before": load_before,
        "load_avg_after": os.getloadavg(),
        "versions": versions,
        "ratchet_commit": commit.stdout.strip() or None,
    }


def render_table(result: dict[str, Any]) -> tuple[Any, list[str]]:
    """The rich table of the rows (medians, tasks/s, ratio to raw-openai, overhead) and its notes."""
    from rich.table import Table

    table = Table(title=f"Runner throughput: medians of {result['config']['repeats']} interleaved run(s)")
    for column in (
        "endpoint",
        "contender",
        "tasks",
        "conc.",
        "wall s",
        "tasks/s",
        "x raw",
        "x floor",
        "overhead",
        "CPU ms/task",
        "passed",
        "status",
    ):
        left = column in ("endpoint", "contender", "status")
        table.add_column(column, justify="left" if left else "right", no_wrap=left)
    notes: list[str] = []
    skipped: set[str] = set()
    for row in result["rows"]:
        if row["note"] and row["endpoint"] not in skipped:
            who = "(all)" if row["status"] == "skipped" else row["contender"]
            notes.append(f"{row['endpoint']} {who}: {row['status']}: {row['note']}")
        if row["status"] == "skipped":
            if row["endpoint"] not in skipped:
                table.add_row(row["endpoint"], "(all)", *["-"] * 9, "skipped")
            skipped.add(row["endpoint"])
            continue
        table.add_row(
            row["endpoint"],
            row["contender"],
            str(row["tasks"]),
            str(row["concurrency"]),
            _fmt(row["wall_s"], "{:.2f}"),
            _fmt(row["tasks_per_s"], "{:.1f}"),
            _fmt(row["ratio_to_raw"], "{:.2f}"),
            _fmt(row["ratio_to_floor"], "{:.2f}"),
            _fmt(row["overhead"], "{:+.1%}"),
            _fmt(row["client_cpu_ms_per_task"], "{:.2f}"),
            _fmt(row["passed"], "{}"),
            row["status"],
        )
    return table, notes


def _fmt(value: Any, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def _v1(url: str) -> str:
    url = url.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


def parse_args(argv: list[str] | None = None) -> BenchConfig:
    p = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    d = BenchConfig()
    p.add_argument("--tasks", type=int, default=d.tasks, help="N on the fixed-latency endpoint (default 1000)")
    p.add_argument("--concurrency", type=int, default=d.concurrency, help="C on the fixed endpoint (default 64)")
    p.add_argument("--max-tokens", type=int, default=d.max_tokens, help="M on the fixed-latency endpoint (default 16)")
    p.add_argument("--latency", type=float, default=d.latency_s, help="fixed server wait per request, s (default 0.2)")
    p.add_argument("--repeats", type=int, default=d.repeats, help="interleaved rounds; medians reported (default 3)")
    p.add_argument("--quick", action="store_true", help="smoke run: N=200 on the fixed endpoint, 1 repeat")
    p.add_argument("--vllm-url", help="a running vLLM server, e.g. http://127.0.0.1:8000/v1 (skipped if absent)")
    p.add_argument("--vllm-model", default=d.vllm_model, help="its served model name (default tiny)")
    p.add_argument("--vllm-tasks", type=int, default=d.vllm_tasks, help="N on vLLM (default 200)")
    p.add_argument("--vllm-concurrency", type=int, default=d.vllm_concurrency, help="C on vLLM (default 16)")
    p.add_argument("--vllm-max-tokens", type=int, default=d.vllm_max_tokens, help="M on vLLM (default 8)")
    p.add_argument("--no-inspect", action="store_true", help="leave inspect-ai out")
    p.add_argument(
        "--inspect-python",
        help=f"python of a venv with inspect-ai (default: {DEFAULT_INSPECT_VENV}, made on demand with pip)",
    )
    p.add_argument("--contenders", default=",".join(CONTENDERS), help="comma-separated subset, in run order")
    p.add_argument("--out-dir", type=Path, default=d.out_dir, help="where the JSON goes (default benchmarks/results)")
    p.add_argument("--store-dir", type=Path, help="parent folder of Ratchet's run stores (default: system temp)")
    p.add_argument("--run-timeout", type=float, default=d.run_timeout_s, help="limit per timed run, s (default 600)")
    p.add_argument("--profile", action="store_true", help="after timing, cProfile one more Ratchet run per endpoint")
    a = p.parse_args(argv)
    contenders = tuple(c.strip() for c in a.contenders.split(",") if c.strip())
    unknown = sorted(set(contenders) - set(CONTENDERS))
    if unknown:
        p.error(f"unknown contender(s) {', '.join(unknown)}; known: {', '.join(CONTENDERS)}")
    cfg = BenchConfig(
        tasks=a.tasks,
        concurrency=a.concurrency,
        max_tokens=a.max_tokens,
        latency_s=a.latency,
        repeats=a.repeats,
        vllm_url=a.vllm_url,
        vllm_model=a.vllm_model,
        vllm_tasks=a.vllm_tasks,
        vllm_concurrency=a.vllm_concurrency,
        vllm_max_tokens=a.vllm_max_tokens,
        inspect=not a.no_inspect,
        inspect_python=a.inspect_python,
        contenders=contenders,
        out_dir=a.out_dir,
        store_dir=a.store_dir,
        run_timeout_s=a.run_timeout,
        profile=a.profile,
    )
    return replace(cfg, tasks=200, repeats=1) if a.quick else cfg


def main(argv: list[str] | None = None) -> None:
    from rich.console import Console

    cfg = parse_args(argv)
    result = run_benchmark(cfg)
    console = Console(width=max(Console().width, 140))
    table, notes = render_table(result)
    console.print(table)
    for note in notes:
        console.print(f"  {note}", highlight=False)
    ideal = [e for e in result["endpoints"] if e["ideal_wall_s"]]
    for e in ideal:
        console.print(
            f"{e['name']}: ideal wall = ceil({e['tasks']}/{e['concurrency']}) x {e['latency_s']} s "
            f"= {e['ideal_wall_s']:.2f} s; overhead = (wall - ideal) / ideal"
        )
    console.print(f"results: {cfg.out_dir / 'runner_throughput.json'} (+ timestamped copy)")


if __name__ == "__main__":
    main()
