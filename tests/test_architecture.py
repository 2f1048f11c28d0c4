"""The dependency direction of ARCHITECTURE.md, checked on the imports of every module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("agents", "critics", "gates", "releases", "pipeline")
# package -> what it may import (besides itself). `agents.errors` is the one module every package
# shares: the exception hierarchy. critics reads Task and Outcome (gates) because blind_view takes them.
ALLOWED = {
    "agents": set(),
    "critics": {"agents", "gates"},
    "gates": {"agents"},
    "releases": {"gates"},
    "pipeline": {"agents", "critics", "gates", "releases"},
}


def imports_of(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_follow_the_dependency_direction(package: str) -> None:
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for module in imports_of(path):
            top = module.split(".")[0]
            if top in PACKAGES and top != package and top not in ALLOWED[package] and module != "agents.errors":
                bad.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not bad, bad


def test_critics_take_only_types_from_gates() -> None:
    used = {m for p in (ROOT / "critics").rglob("*.py") for m in imports_of(p) if m.startswith("gates")}
    assert used <= {"gates.outcome", "gates.task"}
