"""Smoke test of benchmarks/runner_throughput.py: a tiny run against its own fixed-latency server.

No timing thresholds: the machine is shared and noisy. It checks that the server speaks the
OpenAI chat API, and that one run writes JSON with every row and sane, self-consistent numbers.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
import urllib.request
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    sys.path.insert(0, str(ROOT / "benchmarks"))  # as when the script runs: its folder is on sys.path
    spec = importlib.util.spec_from_file_location("runner_throughput", ROOT / "benchmarks" / "runner_throughput.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read()


def test_fixed_latency_server_speaks_openai_chat(bench: ModuleType) -> None:
    with bench.fixed_latency_server(0.01, reply="ok") as (base_url, pid):
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1") and pid > 0
        assert _get(base_url.removesuffix("/v1") + "/health")[0] == 200
        assert json.loads(_get(base_url + "/models")[1])["data"][0]["id"] == "fixed"
        body = json.dumps({"model": "fixed", "messages": [{"role": "user", "content": "hi there"}], "max_tokens": 4})
        request = urllib.request.Request(
            base_url + "/chat/completions",
            data=body.encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            completion = json.loads(response.read())
    assert completion["object"] == "chat.completion"
    assert completion["choices"][0]["message"] == {"role": "assistant", "content": "ok"}
    assert completion["choices"][0]["finish_reason"] == "stop"
    assert completion["usage"]["prompt_tokens"] == 2 and completion["usage"]["total_tokens"] == 3


def test_tiny_benchmark_writes_every_row(bench: ModuleType, tmp_path: Path) -> None:
    cfg = bench.BenchConfig(
        tasks=20,
        concurrency=4,
        max_tokens=8,
        latency_s=0.01,
        repeats=1,
        inspect=False,
        out_dir=tmp_path / "results",
        store_dir=tmp_path,
    )
    result = bench.run_benchmark(cfg)

    written = json.loads((tmp_path / "results" / "runner_throughput.json").read_text())
    assert written == json.loads(json.dumps(result))
    assert len(list((tmp_path / "results").glob("runner_throughput-*.json"))) == 1
    rows = {(r["endpoint"], r["contender"]): r for r in written["rows"]}
    contenders = bench.CONTENDERS
    assert set(rows) == {(e, c) for e in ("vllm-cpu", "fixed-latency") for c in contenders}
    assert all(rows[("vllm-cpu", c)]["status"] == "skipped" for c in contenders)
    inspect = rows[("fixed-latency", "inspect-ai")]
    assert inspect["status"] == "not available" and "--no-inspect" in inspect["note"]

    for name in ("raw-openai", "raw-aiohttp", "ratchet", "ratchet-litellm", "litellm-concurrent", "litellm-sequential"):
        row = rows[("fixed-latency", name)]
        assert row["status"] == "ok", row
        assert row["tasks"] == 20 and len(row["samples"]) == 1
        assert row["concurrency"] == (1 if name == "litellm-sequential" else 4)
        assert row["wall_s"] > 0 and math.isclose(row["tasks_per_s"], 20 / row["wall_s"])
        assert row["ideal_wall_s"] == pytest.approx(math.ceil(20 / row["concurrency"]) * 0.01)
        assert row["wall_s"] >= row["ideal_wall_s"] * 0.9  # nobody beats the server's waits
        assert row["overhead"] == pytest.approx((row["wall_s"] - row["ideal_wall_s"]) / row["ideal_wall_s"])
        assert row["client_cpu_ms_per_task"] > 0
    assert rows[("fixed-latency", "raw-openai")]["ratio_to_raw"] == pytest.approx(1.0)
    assert rows[("fixed-latency", "raw-aiohttp")]["ratio_to_floor"] == pytest.approx(1.0)
    assert rows[("fixed-latency", "ratchet")]["passed"] == 20  # every exact-match task got "ok"
    endpoint = next(e for e in written["endpoints"] if e["name"] == "fixed-latency")
    assert endpoint["ideal_wall_s"] == pytest.approx(5 * 0.01)

    table, notes = bench.render_table(written)
    assert table.row_count == 1 + len(contenders)  # one line for the skipped endpoint
    assert any("no --vllm-url given" in note for note in notes)
