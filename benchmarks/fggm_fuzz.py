"""FGGM fuzz: guarded calls against a model that answers adversarially; no returned value may break its contract.

For each of N calls (default 10,000) a contract is picked (Ratchet's critic and synthesizer
contracts, plus two artifact-style contracts), an input is generated, and the "model" answers
every sample with a seeded adversarial reply: random JSON, near misses of a valid answer (one
field nudged, a quote off by a character, an extra or missing property), wrong types, huge
strings (up to 1 MB), hostile unicode (NUL, RTL marks, combining characters, lone
surrogates, emoji), truncated or fenced JSON, prose, and now and then a valid answer.

The real `guarded_call` runs with a model client whose `complete` returns those replies
in-process (no transport: this measures the guard, not the network). Every returned value is
checked twice: by `check` and by an independent oracle written by hand for that contract.

Output: a table and benchmarks/results/fggm_fuzz.json (+ a timestamped copy).

    PYTHONPATH=. python benchmarks/fggm_fuzz.py              # 10,000 calls, seed 7
    PYTHONPATH=. python benchmarks/fggm_fuzz.py --calls 500  # smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import statistics
import string
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from results_json import write_results  # benchmarks/ is on sys.path when a script runs

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results"
HOSTILE = ["\u0000", "\u202e", "e\u0301", "\ud800", "\U0001f600", "\u200b", "\\", '"', "\n", "{{ input }}"]


def contracts() -> dict[str, Any]:
    """The contracts under test, with an input generator and an independent oracle each."""
    from ratchet.agents.contracts.model import Contract
    from ratchet.critics.llm_critic import critic_contract
    from ratchet.critics.symptoms import TAXONOMY
    from ratchet.pipeline.synthesis.llm import synthesizer_contract

    label = Contract.model_validate(
        {
            "name": "label",
            "input_schema": {
                "type": "object",
                "properties": {"choices": {"type": "array", "items": {"type": "string"}}, "text": {"type": "string"}},
                "required": ["choices", "text"],
            },
            "output_schema": {
                "type": "object",
                "properties": {"label": {"type": "string"}, "confidence": {"type": "integer"}},
                "required": ["label", "confidence"],
            },
            "clauses": {
                "allowed": 'output.label in input.choices or output.label == "none"',
                "range": "0 <= output.confidence <= 100",
                "short": "len(output.label) <= 20",
            },
            "fallback": {"constant": {"label": "none", "confidence": 0}},
        }
    )
    echo = Contract.model_validate(
        {
            "name": "echo",
            "input_schema": {"type": "object", "properties": {"task": {"type": "string"}}, "required": ["task"]},
            "output_schema": {"type": "object", "properties": {"summary": {"type": "string"}}, "required": ["summary"]},
            "clauses": {
                "prefixed": 'startswith(output.summary, "summary of ")',
                "mentions": "input.task in output.summary",
            },
            "fallback": {"template": {"summary": "summary of {{ input.task }}"}},
        }
    )
    taxonomy = sorted(TAXONOMY)
    return {
        "critic": (critic_contract(), lambda r: {"view": _text(r, 400), "taxonomy": taxonomy}, _critic_oracle),
        "synthesizer": (
            synthesizer_contract(),
            lambda r: {"labels": r.sample(taxonomy, 3), "rejected": ["code-only-output"]},
            _synthesizer_oracle,
        ),
        "label": (
            label,
            lambda r: {"choices": r.sample(["fix", "keep", "drop", "retry"], 2), "text": _text(r, 80)},
            _label_oracle,
        ),
        "echo": (echo, lambda r: {"task": _text(r, 30)}, _echo_oracle),
    }


def _text(r: random.Random, n: int) -> str:
    alphabet = string.ascii_letters + string.digits + " .,:'()\n"
    return "".join(r.choice(alphabet) for _ in range(r.randint(1, n)))


# --- independent oracles: the contracts' meaning, written out in plain Python ---------------


def _critic_oracle(inp: dict[str, Any], out: Any) -> bool:
    if not (isinstance(out, dict) and set(out) == {"symptoms"} and isinstance(out["symptoms"], list)):
        return False
    if len(out["symptoms"]) > 5:
        return False
    for s in out["symptoms"]:
        if not (isinstance(s, dict) and set(s) == {"label", "new_label", "description", "evidence"}):
            return False
        label, new, desc, evidence = s["label"], s["new_label"], s["description"], s["evidence"]
        if not (
            isinstance(label, str)
            and 1 <= len(label) <= 40
            and isinstance(new, bool)
            and isinstance(desc, str)
            and len(desc) <= 400
            and isinstance(evidence, list)
            and 1 <= len(evidence) <= 5
        ):
            return False
        if not all(isinstance(q, str) and 3 <= len(q) <= 400 and q in inp["view"] for q in evidence):
            return False
        if new and (label in inp["taxonomy"] or not re.fullmatch(r"[a-z][a-z0-9_]*", label)):
            return False
        if not new and label not in inp["taxonomy"]:
            return False
    return True


def _synthesizer_oracle(inp: dict[str, Any], out: Any) -> bool:
    keys = {"remediation", "intent", "targets", "edits"}
    if not (isinstance(out, dict) and set(out) == keys):
        return False
    rem, intent, targets, edits = (out[k] for k in ("remediation", "intent", "targets", "edits"))
    if not (
        isinstance(rem, str)
        and re.search(r"^[a-z0-9][a-z0-9-]{0,47}$", rem)
        and isinstance(intent, str)
        and len(intent) <= 600
        and isinstance(targets, list)
        and len(targets) <= 5
        and all(isinstance(t, str) for t in targets)
        and isinstance(edits, list)
        and len(edits) <= 8
        and all(isinstance(e, dict) for e in edits)
    ):
        return False
    if not all(t in inp["labels"] for t in targets):
        return False
    return not edits or (len(targets) > 0 and len(intent) >= 10 and rem not in inp["rejected"])


def _label_oracle(inp: dict[str, Any], out: Any) -> bool:
    return (
        isinstance(out, dict)
        and isinstance(out.get("label"), str)
        and type(out.get("confidence")) is int
        and (out["label"] in inp["choices"] or out["label"] == "none")
        and 0 <= out["confidence"] <= 100
        and len(out["label"]) <= 20
    )


def _echo_oracle(inp: dict[str, Any], out: Any) -> bool:
    return (
        isinstance(out, dict)
        and isinstance(out.get("summary"), str)
        and out["summary"].startswith("summary of ")
        and inp["task"] in out["summary"]
    )


# --- the adversarial model --------------------------------------------------------------------


def valid_answer(name: str, inp: dict[str, Any], r: random.Random) -> Any:
    if name == "critic":
        view = inp["view"]
        start = r.randrange(0, max(1, len(view) - 3))
        return {
            "symptoms": [
                {
                    "label": r.choice(inp["taxonomy"]),
                    "new_label": False,
                    "description": "seen",
                    "evidence": [view[start : start + 3 + r.randint(0, 20)]],
                }
            ]
        }
    if name == "synthesizer":
        return {
            "remediation": "add-tests",
            "intent": "Run the code before answering.",
            "targets": [inp["labels"][0]],
            "edits": [{"enable_tool": "python"}],
        }
    if name == "label":
        return {"label": r.choice(inp["choices"]), "confidence": r.randint(0, 100)}
    return {"summary": "summary of " + inp["task"]}


def random_json(r: random.Random, depth: int = 0) -> Any:
    kind = r.randrange(7 if depth < 3 else 4)
    if kind == 0:
        return r.choice([None, True, False])
    if kind == 1:
        return r.choice([0, -1, 101, 2**63, 1.5, float("1e308")])
    if kind == 2:
        return "".join(r.choice(HOSTILE + list(string.ascii_letters)) for _ in range(r.randint(0, 12)))
    if kind == 3:
        return r.choice(["none", "fix", "", "summary of "])
    if kind in (4, 5):
        return {
            r.choice(["label", "symptoms", "summary", "edits", "x"]): random_json(r, depth + 1)
            for _ in range(r.randint(0, 4))
        }
    return [random_json(r, depth + 1) for _ in range(r.randint(0, 4))]


def near_miss(value: Any, r: random.Random) -> Any:
    """One small, plausible corruption of a valid answer."""
    text = json.dumps(value)
    data = json.loads(text)
    paths = list(_leaves(data))
    if not paths:
        return data
    path, leaf = r.choice(paths)
    choice = r.randrange(6)
    if isinstance(leaf, str) and choice < 2:
        new: Any = leaf + r.choice(["x", " ", "\u200b"]) if choice == 0 else leaf[1:] + "!"
    elif isinstance(leaf, bool):
        new = not leaf
    elif isinstance(leaf, int) and choice < 3:
        new = leaf + r.choice([-101, -1, 1, 101])
    elif choice == 3:
        new = r.choice([None, 1, "1", [leaf], {"v": leaf}])
    elif choice == 4:
        new = "A" * r.choice([41, 401, 1_000_000])
    else:
        new = r.choice(HOSTILE) * r.randint(1, 5)
    _set(data, path, new)
    if r.random() < 0.2 and isinstance(data, dict):
        data[r.choice(["extra", "label", "symptoms"])] = r.choice([1, "x", []])
    return data


def _leaves(value: Any, path: tuple = ()) -> Any:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _leaves(v, (*path, i))
    else:
        yield path, value


def _set(data: Any, path: tuple, value: Any) -> None:
    for key in path[:-1]:
        data = data[key]
    data[path[-1]] = value


def adversarial_reply(name: str, inp: dict[str, Any], r: random.Random) -> tuple[str, str]:
    """(kind, text) of one model reply."""
    kind = r.choices(
        ["valid", "near_miss", "random_json", "wrong_type", "huge", "not_json", "truncated", "fenced"],
        weights=[6, 30, 20, 10, 5, 10, 10, 9],
    )[0]
    good = valid_answer(name, inp, r)
    if kind == "valid":
        return kind, json.dumps(good)
    if kind == "near_miss":
        return kind, json.dumps(near_miss(good, r))
    if kind == "random_json":
        return kind, json.dumps(random_json(r))
    if kind == "wrong_type":
        return kind, json.dumps(r.choice([[good], "text", 3, None, {"symptoms": "all of them"}]))
    if kind == "huge":
        return kind, json.dumps({k: "Z" * 1_000_000 for k in (good if isinstance(good, dict) else {"x": 1})})
    if kind == "not_json":
        return kind, r.choice(["Sure! Here is the JSON you asked for.", "", "null", "NaN", "{'label': 'fix'}"])
    if kind == "truncated":
        text = json.dumps(good)
        return kind, text[: r.randint(1, max(1, len(text) - 1))]
    return kind, "```json\n" + json.dumps(near_miss(good, r) if r.random() < 0.5 else good) + "\n```"


def adversarial_client(r: random.Random, name: str, inp: dict[str, Any], kinds: Counter) -> Any:
    """A ModelClient whose replies come from `adversarial_reply`, in-process."""
    from ratchet.agents.artifact import ModelParams
    from ratchet.agents.model_config import ModelConfig
    from ratchet.agents.models import ModelClient, ModelReply
    from ratchet.agents.trace import Message, ModelCall, Usage

    class Adversary(ModelClient):
        async def complete(
            self, messages: Any, tools: Any, turn: int, response_format: Any = None, temperature: float | None = None
        ) -> ModelReply:
            kind, text = adversarial_reply(name, inp, r)
            kinds[kind] += 1
            call = ModelCall(turn=turn, model="fuzz/adversary", duration_s=0.0, usage=Usage(completion_tokens=1))
            return ModelReply(message=Message(role="assistant", content=text), call=call)

        def supports_structured_outputs(self) -> bool:
            return r.random() < 0.5  # both paths of complete_json

    return Adversary(ModelConfig(model="fuzz/adversary"), ModelParams())


# --- the run --------------------------------------------------------------------------------


async def fuzz(calls: int, seed: int) -> dict[str, Any]:
    import ratchet.agents.contracts.guarded as guarded
    import ratchet.agents.structured as structured
    from ratchet.agents.trace import Message

    checking: list[float] = []
    real_check, real_parse = guarded.check, structured.parse_and_validate

    def timed(fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args)
            finally:
                checking[-1] += time.perf_counter() - started

        return wrapper

    # What the guard costs: parsing + schema validation of each sample, then the clauses.
    guarded.check, structured.parse_and_validate = timed(real_check), timed(real_parse)
    table = contracts()
    r = random.Random(seed)
    rows: dict[str, Counter] = {name: Counter() for name in table}
    kinds: Counter = Counter()
    per_call_ms: dict[str, list[float]] = {name: [] for name in table}
    try:
        for _ in range(calls):
            name = r.choice(sorted(table))
            contract, make_input, oracle = table[name]
            inp = make_input(r)
            checking.append(0.0)
            result = await guarded.guarded_call(
                adversarial_client(r, name, inp, kinds), [Message(role="user", content="fuzz")], contract, inp
            )
            per_call_ms[name].append(checking[-1] * 1000)
            row = rows[name]
            row["calls"] += 1
            row["samples"] += len(result.record.samples)
            row["fallbacks"] += result.record.fallback_used
            row["violations_check"] += bool(real_check(contract, inp, result.value))
            row["violations_oracle"] += not oracle(inp, result.value)
    finally:
        guarded.check, structured.parse_and_validate = real_check, real_parse
    summary = []
    for name, row in rows.items():
        times = sorted(per_call_ms[name])
        summary.append(
            {
                "contract": name,
                "calls": row["calls"],
                "samples": row["samples"],
                "fallback_rate": row["fallbacks"] / row["calls"] if row["calls"] else None,
                "violations_check": row["violations_check"],
                "violations_oracle": row["violations_oracle"],
                "check_ms_median": statistics.median(times) if times else None,
                "check_ms_p99": times[int(0.99 * (len(times) - 1))] if times else None,
            }
        )
    return {"rows": summary, "reply_kinds": dict(kinds)}


def main(argv: list[str] | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000, help="guarded calls (default 10,000)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from ratchet.pipeline import setup

    setup()  # litellm offline, Ratchet's providers registered: what the CLI does first
    started = datetime.now(UTC)
    clock = time.perf_counter()
    result = asyncio.run(fuzz(args.calls, args.seed))
    result.update(
        {
            "version": 1,
            "benchmark": "fggm_fuzz",
            "calls": args.calls,
            "seed": args.seed,
            "started_at": started.isoformat(timespec="seconds"),
            "wall_s": round(time.perf_counter() - clock, 2),
            "host": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()},
        }
    )
    write_results("fggm_fuzz", result, args.out_dir, started)

    table = Table(title=f"FGGM fuzz: {args.calls} guarded calls against an adversarial model (seed {args.seed})")
    for column in (
        "contract",
        "calls",
        "samples",
        "fallback rate",
        "violations (check)",
        "violations (oracle)",
        "check ms median",
        "check ms p99",
    ):
        table.add_column(column, justify="left" if column == "contract" else "right")
    for row in result["rows"]:
        table.add_row(
            row["contract"],
            str(row["calls"]),
            str(row["samples"]),
            f"{row['fallback_rate']:.1%}",
            str(row["violations_check"]),
            str(row["violations_oracle"]),
            f"{row['check_ms_median']:.3f}",
            f"{row['check_ms_p99']:.3f}",
        )
    console = Console(width=max(Console().width, 120))
    console.print(table)
    console.print("model replies: " + ", ".join(f"{k} {v}" for k, v in sorted(result["reply_kinds"].items())))
    console.print(
        "check ms = time per guarded call (all its samples) in parsing, schema validation and clauses; "
        f"wall {result['wall_s']} s"
    )
    console.print(f"results: {args.out_dir / 'fggm_fuzz.json'} (+ timestamped copy)")


if __name__ == "__main__":
    main()
