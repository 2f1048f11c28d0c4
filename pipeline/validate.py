"""Validate a proposal before any evaluation: edit surface, path hygiene, artifact loads, procedure loads, models.

A proposal's changes reach git as text per workspace path (`GitStore.commit` writes every one as a
regular file, mode 100644), so a proposal cannot create a symlink. What it can try is a path that
leaves its edit surface: another folder of the workspace (suites, gate policies, releases, another
agent), a `..` or absolute path, a name git or a file system reads in a surprising way, or a path
through a file of the artifact, such as a symlink committed earlier (`agents/coder/link/x` with
`link -> ../../gates`). Names are checked component by component (pipeline.path_names): git metadata
in every spelling git itself refuses on NTFS or HFS+ (`.git.`, `git~1`, `.gitattributes `,
`.g<U+200C>it`), generated names the hash would once have skipped (`__pycache__`), and names that
Windows or macOS store as another name. A proposal may also not swap a configured real model for the
offline simulator `sim/<world>`. Each is refused here with a reason that names the path and the rule;
the flow records it as the RC's reject reason.
"""

from __future__ import annotations

import posixpath
import tempfile
import unicodedata
from collections.abc import Mapping
from pathlib import Path

import yaml

from ratchet.agents import ModelConfig, UserError, is_simulated, load_artifact, resolve_model
from ratchet.pipeline.path_names import component_problem, folded
from ratchet.pipeline.synthesis.playbook import SETTINGS_FILE, load_meta

MODEL_FIELDS = {"agent.yaml": ("model",), SETTINGS_FILE: ("llm", "model")}  # artifact file -> keys of a model name


def path_problem(agent: str, path: object) -> str | None:
    """Why one changed workspace path is out of an RC's reach, or None."""
    surface = f"agents/{agent}/"
    if not isinstance(path, str) or not path:
        return f"RC path {path!r} is not a non-empty string"
    if any(unicodedata.category(c) == "Cc" for c in path) or "\\" in path:
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
    if not unicodedata.is_normalized("NFC", path):
        return (
            f"RC path {ascii(path)} is not in Unicode NFC form, so macOS would store it under another name; "
            f"write it as {ascii(unicodedata.normalize('NFC', path))}"
        )
    for part in path.split("/"):
        problem = component_problem(part)
        if problem:
            return f"RC path {path!r} {problem}"
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
    files = set(patched(agent, base_files, changes))
    for rel in sorted(files):
        parts = rel.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent in files:
                kind = "a symlink or file" if parent in base_files else "a file"
                return (
                    f"RC path {prefix + rel!r} goes through {prefix + parent!r}, which is {kind} in the "
                    f"artifact; an RC may not write through it"
                )
    return None


def collision_problem(agent: str, base_files: dict[str, str], changes: dict[str, str | None]) -> str | None:
    """Why a path the RC writes would be the same file or folder as another on a case-insensitive file
    system (Windows, macOS), where a checkout keeps only one of them, or None."""
    prefix = f"agents/{agent}/"
    spellings: dict[str, set[str]] = {}
    for rel in patched(agent, base_files, changes):
        parts = rel.split("/")
        for depth in range(1, len(parts) + 1):
            name = "/".join(parts[:depth])
            spellings.setdefault(folded(name), set()).add(name)
    for path in sorted(path for path, text in changes.items() if text is not None):
        parts = path[len(prefix) :].split("/")
        for depth in range(len(parts), 0, -1):  # the whole path first: it names what collides most plainly
            name = "/".join(parts[:depth])
            others = sorted(spellings.get(folded(name), set()) - {name})
            if others:
                return (
                    f"RC path {path!r} collides with {prefix + others[0]!r} on case-insensitive file systems "
                    f"(Windows, macOS); an RC may not add a second spelling of a name"
                )
    return None


def patched(agent: str, base_files: dict[str, str], changes: dict[str, str | None]) -> dict[str, str]:
    """The artifact's files (paths relative to agents/<agent>/) after the RC's changes."""
    prefix = f"agents/{agent}/"
    files = dict(base_files)
    for path, text in changes.items():
        rel = path[len(prefix) :]
        if text is None:
            files.pop(rel, None)
        else:
            files[rel] = text
    return files


def simulator_problem(
    agent: str, base_files: dict[str, str], files: dict[str, str], models: Mapping[str, ModelConfig]
) -> str | None:
    """Why the RC would put the offline simulator `sim/<world>` where the release configures a real model,
    or None. Names resolve through ratchet.toml's `[models.<alias>]` (a Router with one sim deployment
    counts as the simulator); sim -> sim and any change to a real model are left to the gate."""
    before = {rel: model_name(base_files, rel) for rel in MODEL_FIELDS}
    real = [name for name in before.values() if name is not None and not uses_simulator(name, models)]
    if not real:
        return None
    for rel, name in ((rel, model_name(files, rel)) for rel in MODEL_FIELDS):
        old = before[rel]
        if name is None or not uses_simulator(name, models) or (old is not None and uses_simulator(old, models)):
            continue
        field = ".".join(MODEL_FIELDS[rel])
        return (
            f"RC sets agents/{agent}/{rel} field {field!r} to {name!r}, Ratchet's offline simulator, in place "
            f"of the real model {old or real[0]!r}; only a person may make that switch, outside an RC"
        )
    return None


def model_name(files: dict[str, str], rel: str) -> str | None:
    """The model name at MODEL_FIELDS[rel] in the artifact file `rel`, or None (absent, or not YAML)."""
    try:
        value = yaml.safe_load(files.get(rel) or "")
    except yaml.YAMLError:
        return None
    for key in MODEL_FIELDS[rel]:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, str) else None


def uses_simulator(name: str, models: Mapping[str, ModelConfig]) -> bool:
    """Whether a model name (or the alias it is) runs `sim/<world>` for any request."""
    config = resolve_model(name, dict(models))
    return is_simulated(config.model) or any(is_simulated(d.model) for d in config.deployments)


def validate_proposal(
    agent: str,
    base_files: dict[str, str],
    changes: dict[str, str | None],
    models: Mapping[str, ModelConfig] | None = None,
) -> str | None:
    """None when the RC is acceptable for evaluation, else the reason it is rejected.

    `models`: the workspace's model aliases (ratchet.toml), to see through an alias to the simulator."""
    problem = (
        protected_path_problem(agent, list(changes))
        or through_file_problem(agent, base_files, changes)
        or collision_problem(agent, base_files, changes)
    )
    if problem:
        return problem
    files = patched(agent, base_files, changes)
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
    return simulator_problem(agent, base_files, files, models or {})
