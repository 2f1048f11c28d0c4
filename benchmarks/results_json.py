"""How every benchmark keeps its results: `<name>.json` (the latest) plus a timestamped copy."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any


def write_results(name: str, result: dict[str, Any], out_dir: Path, started: datetime) -> list[Path]:
    """Write `result` as `<name>.json` and `<name>-<UTC start>.json` under `out_dir`; return both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=2) + "\n"
    paths = [out_dir / f"{name}.json", out_dir / f"{name}-{started:%Y%m%dT%H%M%SZ}.json"]
    for path in paths:
        path.write_text(text, encoding="utf-8")
    return paths
