"""Test-wide setup: offline litellm, isolated git identity, helpers for workspaces and the CLI."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """The process setup the CLI and the flow run (ratchet.pipeline.setup), before any test module is imported."""
    from ratchet.pipeline import setup

    setup()


@pytest.fixture(autouse=True)
def isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No global git identity or config, as on a CI machine: Ratchet must set identities itself."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", "/dev/null")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """An isolated Prefect server (SQLite) for the whole session, started on first use (~8 s)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One demo workspace made by `init_workspace`, copied by `workspace` (git init is cheap, splits are not)."""
    from ratchet.pipeline.workspace import init_workspace

    path = tmp_path_factory.mktemp("template") / "ws"
    init_workspace(path)
    return path


@pytest.fixture(scope="session")
def quickstart_demo(tmp_path_factory: pytest.TempPathFactory, prefect_server: None) -> Path:
    """The demo workspace after the real `ratchet quickstart` cycles (two promotions, then one rejection),
    made once per session. Read it, or copy it before changing anything."""
    from typer.testing import CliRunner

    from ratchet.pipeline.cli.app import app

    path = tmp_path_factory.mktemp("quickstart") / "demo"
    with pytest.MonkeyPatch.context() as mp:  # no global git identity, as on CI
        mp.setenv("GIT_CONFIG_GLOBAL", "/dev/null")
        mp.setenv("GIT_CONFIG_NOSYSTEM", "1")
        result = CliRunner().invoke(app, ["quickstart", "--dir", str(path)])
    assert result.exit_code == 0, result.output
    return path


@pytest.fixture
def workspace(demo_template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the demo workspace (release coder/v1, nothing run yet)."""
    target = tmp_path / "ws"
    shutil.copytree(demo_template, target, symlinks=True)
    return target


@dataclass
class CliResult:
    exit_code: int
    output: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    """Run the real `ratchet` entry point in-process; returns exit code and combined output."""
    from ratchet.pipeline.cli.app import main

    def run(*args: str) -> CliResult:
        monkeypatch.setattr(sys, "argv", ["ratchet", *args])
        capsys.readouterr()
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return CliResult(exit_code=code, output=captured.out + captured.err)

    return run
