"""Bulk git reads for `ratchet verify` (releases.audit) and the write commands' check of the release
line (releases.consistency): one process per kind of read.

`read_main_history` runs one `git log --raw` over main's first-parent history, `first_parent_line` one
`git rev-list` for its commits alone, `read_tags` one `git for-each-ref` with every tag's target and
message, and `read_objects` one `git cat-file --batch` for any number of `<rev>:<path>` names or blob
ids. No per-commit or per-tag process, so a workspace with thousands of releases verifies in seconds.
"""

from __future__ import annotations

import codecs
import hashlib
import subprocess
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from ratchet.agents import StateError

RECORD, FIELD = "\x1e", "\x1f"


class FileChange(BaseModel):
    """One path a commit changed against its first parent, with the blob ids before and after
    (all zeros for a file that did not exist on that side)."""

    model_config = ConfigDict(frozen=True)
    path: str
    old: str
    new: str


class MainCommit(BaseModel):
    """A commit on main's first-parent line and what it changed against its first parent."""

    model_config = ConfigDict(frozen=True)
    sha: str
    parents: tuple[str, ...]
    subject: str
    changes: tuple[FileChange, ...]

    def change(self, path: str) -> FileChange | None:
        return next((c for c in self.changes if c.path == path), None)


class TagRef(BaseModel):
    """A tag, the commit it points at, and its message (empty for a lightweight tag)."""

    model_config = ConfigDict(frozen=True)
    name: str
    commit: str
    annotated: bool
    message: str


def _git(path: Path, *args: str, stdin: bytes | None = None, check: bool = True) -> bytes:
    try:
        done = subprocess.run(
            ["git", "-C", str(path), "-c", "core.quotePath=false", *args], input=stdin, capture_output=True, check=check
        )
    except subprocess.CalledProcessError as exc:
        detail = exc.stderr.decode(errors="replace").strip()[:300]
        raise StateError(f"{path}: `git {args[0]}` failed: {detail}") from exc
    return done.stdout


def read_main_history(path: Path, main: str) -> list[MainCommit]:
    """Main's first-parent history, oldest first, with the paths each commit changed."""
    out = _git(
        path,
        "log",
        "--first-parent",
        "--root",
        "--diff-merges=first-parent",
        "--raw",
        "--no-renames",
        "--no-abbrev",
        f"--format={RECORD}%H %P{FIELD}%s",
        main,
        "--",
    )
    commits = []
    for record in out.decode(errors="replace").split(RECORD)[1:]:
        header, _, body = record.partition("\n")
        shas, _, subject = header.partition(FIELD)
        sha, *parents = shas.split()
        changes = tuple(_raw_change(line) for line in body.splitlines() if line.startswith(":"))
        commits.append(MainCommit(sha=sha, parents=tuple(parents), subject=subject, changes=changes))
    commits.reverse()
    return commits


def _raw_change(line: str) -> FileChange:
    """`:100644 100644 <old> <new> M<TAB>path` (a path with odd characters comes quoted)."""
    meta, _, name = line.partition("\t")
    fields = meta.split()
    if name.startswith('"') and name.endswith('"'):  # C-style quoting, octal escapes for bytes
        name = codecs.escape_decode(name[1:-1].encode())[0].decode(errors="replace")
    return FileChange(path=name, old=fields[2], new=fields[3])


def resolve_commit(path: Path, rev: str) -> str | None:
    """The commit `rev` names, or None."""
    out = _git(path, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False)
    return out.decode().strip() or None


def first_parent_line(path: Path, main: str) -> set[str]:
    """The commits of main's first-parent history (where Ratchet records every decision)."""
    return set(_git(path, "rev-list", "--first-parent", main, "--").decode().split())


def folder_names(path: Path, rev: str, folder: str) -> list[str]:
    """The names of the entries of `folder` at `rev` (none when it does not exist)."""
    out = _git(path, "ls-tree", "--name-only", "-z", f"{rev}:{folder}", check=False)
    return [name for name in out.decode(errors="replace").split("\0") if name]


def read_tags(path: Path) -> list[TagRef]:
    """Every tag with the commit it points at and, for an annotated tag, its message."""
    fmt = f"%(refname:strip=2){FIELD}%(objecttype){FIELD}%(objectname){FIELD}%(*objectname){FIELD}%(contents){RECORD}"
    out = _git(path, "for-each-ref", f"--format={fmt}", "refs/tags").decode(errors="replace")
    tags = []
    for record in out.split(f"{RECORD}\n"):
        if not record.strip():
            continue
        name, kind, target, peeled, message = record.lstrip("\n").split(FIELD, 4)
        annotated = kind == "tag"
        tags.append(
            TagRef(
                name=name,
                commit=peeled if annotated else target,
                annotated=annotated,
                message=message if annotated else "",
            )
        )
    return tags


def read_objects(path: Path, names: list[str]) -> dict[str, bytes | None]:
    """The contents of objects named `<rev>:<path>` or by id (None for a missing one)."""
    wanted = [n for n in dict.fromkeys(names) if n and "\n" not in n]
    if not wanted:
        return {}
    out = _git(path, "cat-file", "--batch", stdin="".join(f"{n}\n" for n in wanted).encode())
    found: dict[str, bytes | None] = {}
    position = 0
    for name in wanted:
        end = out.index(b"\n", position)
        header = out[position:end].decode(errors="replace")
        position = end + 1
        if header.endswith((" missing", " ambiguous")):
            found[name] = None
            continue
        size = int(header.rsplit(" ", 1)[1])
        found[name] = out[position : position + size]
        position += size + 1
    return found


def blob_id(data: bytes | memoryview, length: int = 40) -> str:
    """The id git gives a blob with this content (sha1, or sha256 in a repository with 64-digit ids)."""
    digest = hashlib.sha256() if length == 64 else hashlib.sha1()
    digest.update(b"blob %d\0" % len(data))
    digest.update(data)
    return digest.hexdigest()
