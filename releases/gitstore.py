"""Git plumbing for the registry: commits built without touching the working tree.

Commits are assembled in a temporary index from a base commit plus file changes,
refs move with compare-and-swap `update-ref`, and identities are set explicitly
(CI machines have no global git identity). Repos are opened per operation with
`with Repo(...)`, since GitPython leaks `git cat-file` processes otherwise.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path

from git import BadName, GitCommandError, Repo
from git.objects import Blob
from gitdb import IStream
from pydantic import BaseModel, ConfigDict

from ratchet.agents import StateError

ZERO = "0" * 40


class Identity(BaseModel):
    """Who a commit or tag is from."""

    model_config = ConfigDict(frozen=True)
    name: str
    email: str

    def env(self) -> dict[str, str]:
        return {
            "GIT_AUTHOR_NAME": self.name,
            "GIT_AUTHOR_EMAIL": self.email,
            "GIT_COMMITTER_NAME": self.name,
            "GIT_COMMITTER_EMAIL": self.email,
        }

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>"


BOT = Identity(name="Ratchet Bot", email="ratchet-bot@localhost")


class GitStore:
    """One open repository; use as a context manager."""

    def __init__(self, path: Path) -> None:
        try:
            self.repo = Repo(path)
        except Exception as exc:
            raise StateError(f"{path}: not a git repository; create a workspace with `ratchet init`") from exc
        self.path = Path(self.repo.working_tree_dir or path)

    def __enter__(self) -> GitStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.repo.close()

    def resolve(self, rev: str) -> str | None:
        """The commit sha a revision names, or None."""
        try:
            return self.repo.commit(rev).hexsha
        except (BadName, ValueError, GitCommandError):
            return None

    def read(self, rev: str, path: str) -> bytes | None:
        """A file's bytes at a revision, or None if absent."""
        try:
            blob = self.repo.commit(rev).tree / path
        except (KeyError, BadName, ValueError):
            return None
        return blob.data_stream.read()

    def tree_id(self, rev: str, path: str) -> str | None:
        """The object id of a folder at a revision, or None."""
        try:
            return self.repo.git.rev_parse(f"{rev}:{path}")
        except GitCommandError:
            return None

    def merge_trees(self, ours: str, theirs: str) -> str:
        """The tree of a clean three-way merge (git merge-tree --write-tree); StateError on conflicts."""
        try:
            return self.repo.git.merge_tree("--write-tree", ours, theirs).splitlines()[0].strip()
        except GitCommandError as exc:
            raise StateError(
                f"{theirs[:10]} does not merge cleanly into {ours[:10]}: {exc.stdout.strip()[:300]}"
            ) from exc

    def list_files(self, rev: str, folder: str) -> dict[str, bytes]:
        """Every file below `folder` at `rev`, keyed by path relative to `folder`; StateError if `rev` is unknown."""
        try:
            commit = self.repo.commit(rev)
        except (BadName, ValueError) as exc:
            name = rev.removeprefix("refs/tags/")
            raise StateError(f"{self.path}: no release or candidate {name!r}; `ratchet history` lists them") from exc
        try:
            tree = commit.tree / folder
        except KeyError:
            return {}
        return {
            Path(item.path).relative_to(folder).as_posix(): item.data_stream.read()
            for item in tree.traverse()
            if isinstance(item, Blob)
        }

    def commit(
        self,
        parents: list[str],
        changes: dict[str, bytes | None],
        message: str,
        who: Identity = BOT,
        base: str | None = None,
    ) -> str:
        """Create a commit whose tree is `base` (default: first parent) plus `changes` (None deletes)."""
        with tempfile.TemporaryDirectory() as tmp:
            env = {"GIT_INDEX_FILE": os.path.join(tmp, "index")}
            start = base or (parents[0] if parents else None)
            if start:
                self.repo.git.read_tree(start, env=env)
            for path, data in sorted(changes.items()):
                if data is None:
                    self.repo.git.update_index("--force-remove", "--", path, env=env)
                else:
                    sha = self.repo.odb.store(IStream(Blob.type, len(data), BytesIO(data))).hexsha.decode()
                    self.repo.git.update_index("--add", "--cacheinfo", f"100644,{sha},{path}", env=env)
            tree = self.repo.git.write_tree(env=env)
            args = [tree]
            for parent in parents:
                args += ["-p", parent]
            message_file = os.path.join(tmp, "message")
            Path(message_file).write_text(message, encoding="utf-8")
            return self.repo.git.commit_tree(*args, "-F", message_file, env=who.env()).strip()

    def update_ref(self, ref: str, new: str, old: str | None, reason: str) -> None:
        """Move `ref` to `new` only if it still points at `old` (None: must not exist)."""
        try:
            self.repo.git.update_ref("-m", reason, ref, new, old or ZERO)
        except GitCommandError as exc:
            raise StateError(
                f"{ref} moved while Ratchet was updating it; re-run the command ({exc.stderr.strip()})"
            ) from exc

    def tag(self, name: str, target: str, message: str, who: Identity = BOT) -> None:
        """Create an annotated tag; refuses to move an existing one."""
        if self.resolve(f"refs/tags/{name}"):
            raise StateError(f"tag {name} already exists; tags are never moved")
        with tempfile.TemporaryDirectory() as tmp:
            message_file = os.path.join(tmp, "message")
            Path(message_file).write_text(message, encoding="utf-8")
            self.repo.git.tag("-a", "--cleanup=verbatim", name, target, "-F", message_file, env=who.env())

    def tag_message(self, name: str) -> str | None:
        ref = next((t for t in self.repo.tags if t.name == name), None)
        if ref is None or ref.tag is None:
            return None
        return ref.tag.message

    def tag_names(self, pattern: str) -> list[str]:
        return [t for t in self.repo.git.tag("--list", pattern).splitlines() if t]

    def branch_names(self, pattern: str) -> list[str]:
        out = self.repo.git.for_each_ref("--format=%(refname:short)", f"refs/heads/{pattern}")
        return [b for b in out.splitlines() if b]

    def dirty_paths(self) -> list[str]:
        """Tracked files changed in the working tree or index (untracked files are fine)."""
        out = self.repo.git.status("--porcelain", "--untracked-files=no")
        return [line[3:] for line in out.splitlines() if line.strip()]

    def checked_out(self, branch: str) -> bool:
        try:
            return self.repo.git.symbolic_ref("-q", "HEAD") == f"refs/heads/{branch}"
        except GitCommandError:
            return False

    def require_clean_checkout(self, branch: str) -> None:
        """StateError when `branch` is checked out with uncommitted changes to tracked files."""
        if not self.checked_out(branch):
            return
        self.repo.git.update_index("-q", "--refresh", with_exceptions=False)
        dirty = self.dirty_paths()
        if dirty:
            shown = ", ".join(dirty[:5]) + (" ..." if len(dirty) > 5 else "")
            raise StateError(
                f"{self.path}: uncommitted changes on {branch} ({shown}); commit or stash them first, "
                f"Ratchet moves {branch} and updates the checkout"
            )

    def sync_checkout(self, branch: str, old: str, new: str) -> None:
        """If `branch` is checked out, move index and files from `old` to `new` (refuses to clobber edits)."""
        if self.checked_out(branch):
            self.repo.git.update_index("-q", "--refresh", with_exceptions=False)
            self.repo.git.read_tree("-m", "-u", old, new)


@contextmanager
def open_store(path: Path) -> Iterator[GitStore]:
    store = GitStore(path)
    try:
        yield store
    finally:
        store.repo.close()
