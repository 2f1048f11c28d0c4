"""Create workspaces: `ratchet init` and the quickstart's demo."""

from __future__ import annotations

from pathlib import Path

from ratchet.agents import UserError
from ratchet.gates import assign_splits, builtin_humaneval_tasks, builtin_tqbpp_tasks
from ratchet.releases import ReleaseRef, initialize

DEMO = Path(__file__).parent / "demo"
RENAMES = {"gitignore.txt": ".gitignore"}


def demo_files() -> dict[str, bytes]:
    """The demo workspace's files (agent `coder`, suites `humaneval` and `tqb` (smoke), gate `default`), with
    pinned splits."""
    files = {}
    for path in sorted(DEMO.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            rel = path.relative_to(DEMO).as_posix()
            files[RENAMES.get(rel, rel)] = path.read_bytes()
    files["suites/humaneval/splits.json"] = _splits_json([task.id for task in builtin_humaneval_tasks()])
    files["suites/tqb/splits.json"] = _splits_json([task.id for task in builtin_tqbpp_tasks()])
    return files


def _splits_json(task_ids: list[str]) -> bytes:
    import json

    return (json.dumps(assign_splits(task_ids), indent=2) + "\n").encode()


def init_workspace(path: Path) -> list[ReleaseRef]:
    """Create a new workspace at `path` (absent or empty), committed and tagged `coder/v1`."""
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise UserError(f"{path}: already exists and is not empty; choose a new directory (nothing was changed)")
    path.mkdir(parents=True, exist_ok=True)
    try:
        return initialize(
            path,
            demo_files(),
            ["coder"],
            "Initial workspace: agent coder, suites humaneval and tqb (smoke), gate default",
        )
    except Exception:
        _remove_partial(path)
        raise


def _remove_partial(path: Path) -> None:
    """Undo a half-made workspace: we created the folder, so we may remove it."""
    import shutil

    shutil.rmtree(path, ignore_errors=True)
