"""The rules of docs/architecture.md, checked on the code: one namespace, the dependency arrows,
package faces, no import circles, no import-time side effects, and the package list of pyproject.toml."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("agents", "critics", "gates", "releases", "pipeline")
# package -> the packages it may import (besides itself), as docs/architecture.md draws them.
ALLOWED = {
    "agents": set(),
    "critics": {"agents", "gates"},
    "gates": {"agents"},
    "releases": {"agents", "gates"},
    "pipeline": {"agents", "critics", "gates", "releases"},
}
# critics read a run through gates' record types only: blind_view takes a Task and an Outcome.
CRITICS_FROM_GATES = {"Task", "Outcome"}
# releases raise agents' errors and render their notes with its template environment; nothing else of agents.
RELEASES_FROM_AGENTS = {
    "RatchetError",
    "StateError",
    "UserError",
    "validation_message",
    "lazy_exports",
    "package_templates",
}
# Where Python code lives beside the packages; none of it may use the old top-level import names.
OTHER_CODE = ("tests", "benchmarks", "scripts")


def package_files(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if "demo" not in p.relative_to(ROOT).parts)


@cache
def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def imports(path: Path, in_strings: bool = False) -> list[tuple[int, str, list[str]]]:
    """(line, module, names) of every absolute import in `path`, wherever it sits (lazy imports included);
    with `in_strings`, also in string constants that are Python code (what a test runs with `python -c`)."""
    found = []
    nodes: list[ast.AST] = list(ast.walk(tree(path)))
    if in_strings:
        for node in list(nodes):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and "import" in node.value:
                try:
                    nodes += [n for n in ast.walk(ast.parse(node.value)) if isinstance(n, ast.Import | ast.ImportFrom)]
                except SyntaxError:
                    continue  # prose that mentions importing, not code
    for node in nodes:
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module, [alias.name for alias in node.names]))
    return found


def metrics() -> object:
    spec = importlib.util.spec_from_file_location("code_metrics", ROOT / "scripts" / "code_metrics.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("folder", PACKAGES + OTHER_CODE)
def test_everything_imports_ratchet_under_its_namespace(folder: str) -> None:
    """`import agents` is the OpenAI Agents SDK's name: our code says `ratchet.agents`, everywhere."""
    bad = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in sorted((ROOT / folder).rglob("*.py"))
        for line, module, _ in imports(path, in_strings=True)
        if module.split(".")[0] in PACKAGES and not (folder == "tests" and path.name == "test_architecture.py")
    ]
    assert not bad, bad


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_follow_the_dependency_direction(package: str) -> None:
    bad = []
    for path in package_files(package):
        for line, module, _ in imports(path):
            parts = module.split(".")
            if parts[0] == "ratchet" and len(parts) > 1 and parts[1] != package and parts[1] not in ALLOWED[package]:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert not bad, bad


@pytest.mark.parametrize("package", PACKAGES)
def test_other_packages_import_only_the_face(package: str) -> None:
    """`from ratchet.gates import Task`, never `from ratchet.gates.task import Task`, and only names in __all__."""
    bad = []
    for path in package_files(package):
        for line, module, names in imports(path):
            parts = module.split(".")
            if parts[0] != "ratchet" or len(parts) < 2 or parts[1] == package:
                continue
            where = f"{path.relative_to(ROOT)}:{line}"
            if len(parts) > 2 or not names:
                bad.append(f"{where} imports {module}: import from the face, ratchet.{parts[1]}")
                continue
            exported = importlib.import_module(module).__all__
            bad += [f"{where}: {name} is not in {module}.__all__" for name in names if name not in exported]
    assert not bad, bad


@pytest.mark.parametrize("package", PACKAGES)
def test_each_face_exports_what_it_declares(package: str) -> None:
    """Every name of __all__ resolves, to the object of the module the face names, and the type checker's
    imports (under TYPE_CHECKING) say the same as the lazy map."""
    face = importlib.import_module(f"ratchet.{package}")
    assert face.__doc__ and len(face.__all__) == len(set(face.__all__))
    checked: dict[str, str] = {}
    for node in ast.walk(tree(ROOT / package / "__init__.py")):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom) and stmt.module
                checked.update({alias.name: stmt.module for alias in stmt.names})
    assert set(checked) == set(face.__all__) - {"lazy_exports"}
    for name in face.__all__:
        value = getattr(face, name)
        if name in checked:
            assert value is getattr(importlib.import_module(checked[name]), name), name
    submodules = {p.stem for p in (ROOT / package).glob("*.py")} | {p.name for p in (ROOT / package).iterdir()}
    assert not set(face.__all__) & submodules, "an exported name that is also a module's name is shadowed on import"


@pytest.mark.parametrize(
    ("package", "imported", "allowed"),
    [("critics", "gates", CRITICS_FROM_GATES), ("releases", "agents", RELEASES_FROM_AGENTS)],
)
def test_narrow_arrows_carry_only_their_names(package: str, imported: str, allowed: set[str]) -> None:
    used = {
        name
        for path in package_files(package)
        for _, module, names in imports(path)
        if module.startswith(f"ratchet.{imported}")
        for name in names
    }
    assert used <= allowed, sorted(used - allowed)


def test_no_import_circles() -> None:
    """No two modules import each other, directly or through others, lazy imports included."""
    assert metrics().measure()["import_circles"] == []  # type: ignore[attr-defined]


def test_importing_ratchet_changes_nothing() -> None:
    """Importing every module sets no environment variable, registers no litellm provider and starts
    nothing; the explicit setup (ratchet.pipeline.setup) does, and is what the CLI calls first."""
    code = """
import importlib, json, os, pkgutil, sys
before = dict(os.environ)
for package in ("agents", "critics", "gates", "releases", "pipeline"):
    face = importlib.import_module(f"ratchet.{package}")
    for info in pkgutil.walk_packages(face.__path__, f"ratchet.{package}."):
        if not any(part in info.name for part in ("demo", "_sandbox_", "__main__")):
            importlib.import_module(info.name)
changed = sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k))
import litellm
providers = [item["provider"] for item in litellm.custom_provider_map]
from ratchet.pipeline import setup
setup()
print(json.dumps({"changed": changed, "providers": providers,
                  "after_setup": [item["provider"] for item in litellm.custom_provider_map],
                  "bare": [m for m in ("agents", "critics", "gates", "releases", "pipeline") if m in sys.modules]}))
"""
    env = {k: v for k, v in os.environ.items() if k not in ("LITELLM_LOCAL_MODEL_COST_MAP",)}
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # this test's own litellm import must stay offline
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd="/", timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["changed"] == [] and found["providers"] == [] and found["bare"] == []
    assert "sim" in found["after_setup"]


def test_a_model_client_before_setup_says_what_to_do() -> None:
    code = (
        "from ratchet.agents import ModelClient, ModelParams, StateError\n"
        "try:\n    ModelClient('sim/humaneval', ModelParams())\nexcept StateError as exc:\n    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", timeout=120)
    assert "call ratchet.pipeline.setup()" in done.stdout, done.stderr[-2000:]


def test_the_openai_agents_sdk_installs_beside_ratchet(tmp_path: Path) -> None:
    """A team's agent built on the OpenAI Agents SDK (`import agents`) runs in the same environment."""
    code = (
        "import agents, ratchet.agents, json\n"
        "from agents import Agent, Runner\n"
        "from ratchet.agents import RatchetError\n"
        "print(json.dumps([agents.__file__, ratchet.agents.__file__, Agent.__name__, Runner.__name__,"
        " RatchetError.__name__]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    sdk, ours, *names = json.loads(done.stdout.strip().splitlines()[-1])
    assert "site-packages" in sdk and Path(sdk).parent.name == "agents"
    assert Path(ours) == ROOT / "agents" / "__init__.py"
    assert names == ["Agent", "Runner", "RatchetError"]


def test_pyproject_lists_every_package_folder() -> None:
    """The namespace is a package-dir mapping, so each folder holding package files must be listed."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["package-dir"] == {f"ratchet.{p}": p for p in PACKAGES}
    folders = {
        "ratchet." + ".".join(path.relative_to(ROOT).parts)
        for package in PACKAGES
        for path in [ROOT / package, *(ROOT / package).rglob("*")]
        if path.is_dir() and "__pycache__" not in path.parts and any(f.is_file() for f in path.iterdir())
    }
    assert folders == set(setuptools["packages"])


def test_the_documented_arrows_are_the_enforced_ones() -> None:
    """docs/architecture.md draws the arrows this file enforces: the two cannot drift apart."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = text.split("## Dependency rules", 1)[1].split("```", 2)[1]
    drawn = {}
    for line in block.strip().splitlines():
        package, _, targets = line.partition("──►")
        names = {word.strip() for word in re.sub(r"\([^)]*\)", "", targets).split(",")}
        drawn[package.strip()] = set() if "nothing" in targets else {n for n in names if n}
    assert drawn == ALLOWED
