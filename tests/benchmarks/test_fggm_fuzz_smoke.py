"""The FGGM fuzz benchmark's functions on a few hundred calls: no returned value breaks its contract."""

from __future__ import annotations

import asyncio
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))

import fggm_fuzz as fuzz


def test_guarded_calls_never_return_a_contract_violation(tmp_path: Path) -> None:
    fuzz.main(["--calls", "300", "--seed", "3", "--out-dir", str(tmp_path)])
    result = json.loads((tmp_path / "fggm_fuzz.json").read_text())
    assert sum(row["calls"] for row in result["rows"]) == 300
    for row in result["rows"]:
        assert row["violations_check"] == 0 and row["violations_oracle"] == 0, row
        assert 0 < row["fallback_rate"] < 1, "both samples and fallbacks happen"
        assert row["check_ms_median"] > 0
    assert {"near_miss", "huge", "not_json", "valid"} <= set(result["reply_kinds"])


def test_the_oracles_agree_with_the_contracts_on_adversarial_values() -> None:
    """The independent oracles are only worth something if they judge like `check` does."""
    from ratchet.agents.contracts.model import check

    r = random.Random(11)
    table = fuzz.contracts()
    for _ in range(400):
        name = r.choice(sorted(table))
        contract, make_input, oracle = table[name]
        inp = make_input(r)
        value = (
            fuzz.near_miss(fuzz.valid_answer(name, inp, r), r) if r.random() < 0.7 else fuzz.valid_answer(name, inp, r)
        )
        assert oracle(inp, value) == (check(contract, inp, value) == []), (name, value)
    assert asyncio.iscoroutinefunction(fuzz.fuzz)
