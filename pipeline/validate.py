"""Validate a proposal before any evaluation: edit surface, path hygiene, artifact loads, procedure loads.

A proposal's changes reach git as text per workspace path (`GitStore.commit` writes every one as a
regular file, mode 100644), so a proposal cannot create a symlink. What it can try is a path that
leaves its edit surface: another folder of the workspace (suites, gate policies, releases, another
agent), a `..` or absolute path, a name git or a file system reads in a surprising way (NUL or
other control characters, a backslash, `.git`), or a path through a file of the artifact, such as a
symlink committed earlier (`agents/coder/link/x` with `link -> ../../gates`). Each is refused here
with a reason that names the path and the rule; the flow records it as the RC's reject reason.
"""

from __future__ import annotations

import posixpath
import tempfile
from pathlib import Path

from agents.artifact import load_artifact
from agents.errors import UserError
from pipeline.synthesis.playbook import load_meta

GIT_NAMES = (".git", ".gitmodules", ".gitattributes")  # compared case-insensitively, as git does on some systems


def path_problem(agent: str, path: object) -> str | None:
    """Why one changed workspace path is out of an RC's reach, or None."""
    surface = f"agents/{agent}/"
    if not isinstance(path, str) or not path:
        return f"RC path {path!r} is not a non-empty string"
    if any(ord(c) < 32 or ord(c) == 127 for c in path) or "\\" in path:
        return f"RC path {path!r} has a control character or a backslash; an RC may only edit plain paths"
    if path.startswith("/"):
        return f"RC path {path!r} is absolute; an RC may only edit {surface}"
    normal = posixpath.normpath(path)
    if normal == ".." or normal.startswith("../"):
        return f"RC path {path!r} leaves the workspace; an RC may only edit {surface}"
    if normal != path:
        return f"RC path {path!r} is not in normal form ({normal!r}); an RC may only name paths plainly"
    if not path.startswith(surface):
        return f"RC edits protected path {path!r}; an RC may only edit {surface}"
    if any(part.lower() in GIT_NAMES for part in path.split("/")):
        return f"RC path {path!r} names git metadata; an RC may only edit the artifact's own files"
    return None


def protected_path_problem(agent: str, paths: list[str]) -> str | None:
    """Why a change to these workspace paths is out of an RC's reach, or None (the first problem)."""
    for path in paths:
        problem = path_problem(agent, path)
        if problem:
            return problem
    return None


def through_file_problem(agent: str, base_files: dict[str, str], changes: dict[str, str | None]) -> str | None:
    """Why the patched artifact would hold a path both as a file and as a folder, or None.

    `base_files` has one entry per blob of the artifact, symlinks included (git stores a symlink as a
    blob holding its target), so an edit below a symlink shows up here as an edit below a file.
    """
    prefix = f"agents/{agent}/"
    files = set(base_files)
    for path, text in changes.items():
        rel = path[len(prefix):]
        if text is None:
            files.discard(rel)
        else:
            files.add(rel)
    for rel in sorted(files):
        parts = rel.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent in files:
                kind = "a symlink or file" if parent in base_files else "a file"
                return (f"RC path {prefix + rel!r} goes through {prefix + parent!r}, which is {kind} in the "
                        f"artifact; an RC may not write through it")
    return None


def validate_proposal(agent: str, base_files: dict[str, str], changes: dict[str, str | None]) -> str | None:
    """None when the RC is acceptable for evaluation, else the reason it is rejected."""
    problem = protected_path_problem(agent, list(changes)) or through_file_problem(agent, base_files, changes)
    if problem:
        return problem
    files = dict(base_files)
    prefix = f"agents/{agent}/"
    for path, text in changes.items():
        rel = path[len(prefix):]
        if text is None:
            files.pop(rel, None)
        else:
            files[rel] = text
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / agent
        try:
            for rel, text in files.items():
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                (root / rel).write_text(text, encoding="utf-8", errors="surrogateescape")
            load_artifact(root)
            load_meta(agent, files)
        except (UserError, OSError) as exc:
            return f"RC artifact does not load: {str(exc).replace(tmp, '')}"
    return None
