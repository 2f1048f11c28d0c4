"""Validate a proposal before any evaluation: edit surface, artifact loads, procedure loads."""

from __future__ import annotations

import posixpath
import tempfile
from pathlib import Path

from agents.artifact import load_artifact
from agents.errors import UserError
from pipeline.synthesis.playbook import load_meta


def protected_path_problem(agent: str, paths: list[str]) -> str | None:
    """Why a change to these workspace paths is out of an RC's reach, or None."""
    surface = f"agents/{agent}/"
    for path in paths:
        normal = posixpath.normpath(path)
        if path.startswith("/") or normal.startswith("..") or not normal.startswith(surface) or "\\" in path:
            return f"RC edits protected path {path!r}; an RC may only edit {surface}"
    return None


def validate_proposal(agent: str, base_files: dict[str, str], changes: dict[str, str | None]) -> str | None:
    """None when the RC is acceptable for evaluation, else the reason it is rejected."""
    problem = protected_path_problem(agent, list(changes))
    if problem:
        return problem
    files = dict(base_files)
    prefix = f"agents/{agent}/"
    for path, text in changes.items():
        rel = posixpath.normpath(path)[len(prefix):]
        if text is None:
            files.pop(rel, None)
        else:
            files[rel] = text
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / agent
        for rel, text in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text, encoding="utf-8")
        try:
            load_artifact(root)
            load_meta(agent, files)
        except UserError as exc:
            return f"RC artifact does not load: {str(exc).replace(tmp, '')}"
    return None
