"""Path components that git, Windows or macOS read as something else (used by pipeline.validate).

Git refuses some names because a checkout on NTFS or HFS+ would turn them into its own metadata
(`verify_path` with `core.protectNTFS`/`core.protectHFS`: `is_ntfs_dotgit`, `is_hfs_dotgit` and their
`.gitmodules`, `.gitattributes`, `.gitignore` and `.mailmap` siblings). NTFS drops trailing dots and
spaces and everything from a `:` (an alternate data stream), matches case-insensitively and answers
to 8.3 short names (`GIT~1`, `GITMOD~1`, `GI7EBA~1`); HFS+ skips zero-width and direction marks and
folds case. `component_problem` refuses every such spelling of git's files, whichever of those rules
the local git enforces, plus names Windows or macOS would store under another name or not at all,
and generated names (`__pycache__`, `.DS_Store`), which an RC has no reason to write.
"""

from __future__ import annotations

import re
import unicodedata

GIT_FILES = ("git", "gitmodules", "gitattributes", "gitignore", "mailmap")  # each read by git as `.<name>`
NTFS_SHORT_HASHES = {"gitmodules": "gi7eba", "gitattributes": "gi7d29", "gitignore": "gi250a", "mailmap": "maba30"}
GENERATED = frozenset({"__pycache__", ".ds_store"})
WINDOWS_DEVICES = frozenset(
    {"con", "prn", "aux", "nul", *(f"com{n}" for n in range(1, 10)), *(f"lpt{n}" for n in range(1, 10))}
)
WINDOWS_FORBIDDEN = ':*?"<>|'
FALLBACK_SHORT_NAME = re.compile(r"([a-z0-9]{0,6})~[1-9][0-9]*")  # NTFS's hashed 8.3 name: 8 characters
SHORT_NAME_STEM = re.compile(r"[^~]{0,6}~[1-9][0-9]*")
PORTABLE = "an RC may only use names every system stores as written"


def git_alias(name: str) -> str | None:
    """The git file (`.git`, `.gitmodules`, ...) that a path component is on NTFS or HFS+, or None."""
    plain = "".join(c for c in name if unicodedata.category(c) != "Cf")  # HFS+ skips zero-width and direction marks
    plain = plain.split(":", 1)[0].rstrip(" .").lower()  # NTFS: stream suffix, trailing dots and spaces; case
    for git_name in GIT_FILES:
        if plain == f".{git_name}" or _ntfs_short_name(plain, git_name):
            return f".{git_name}"
    return None


def _ntfs_short_name(plain: str, git_name: str) -> bool:
    if git_name == "git":
        return plain == "git~1"
    if re.fullmatch(re.escape(git_name[:6]) + "~[1-4]", plain):
        return True
    fallback = FALLBACK_SHORT_NAME.fullmatch(plain)
    return fallback is not None and len(plain) == 8 and NTFS_SHORT_HASHES[git_name].startswith(fallback.group(1))


def component_problem(name: str) -> str | None:
    """Why one path component is out of an RC's reach (the words after "RC path '...'"), or None."""
    alias = git_alias(name)
    if alias is not None:
        spelled = f"{name!r}" if name == alias else f"{name!r}, which is {alias!r} on Windows or macOS"
        return f"names git metadata ({spelled}); an RC may only edit the artifact's own files"
    if name.lower() in GENERATED:
        return f"names a generated file or folder ({name!r}); an RC may only edit the artifact's source files"
    invisible = next((c for c in name if unicodedata.category(c) == "Cf"), None)
    if invisible is not None:
        return f"has an invisible character (U+{ord(invisible):04X}) that macOS drops from names; {PORTABLE}"
    return _windows_problem(name)


def _windows_problem(name: str) -> str | None:
    if name.endswith((".", " ")):
        return f"has a name that ends in a dot or a space ({name!r}), which Windows drops; {PORTABLE}"
    forbidden = next((c for c in name if c in WINDOWS_FORBIDDEN), None)
    if forbidden is not None:
        return (
            f"has {forbidden!r} in a name, which Windows cannot store (':' starts an NTFS alternate data "
            f"stream); {PORTABLE}"
        )
    stem = name.split(".", 1)[0].rstrip(" ").lower()
    if stem in WINDOWS_DEVICES:
        return f"uses the reserved device name {stem.upper()!r} of Windows; {PORTABLE}"
    if len(stem) <= 8 and SHORT_NAME_STEM.fullmatch(stem):
        return f"looks like a Windows 8.3 short name ({name!r}), which can stand for another file there; {PORTABLE}"
    return None


def folded(path: str) -> str:
    """A path as a case-insensitive file system compares it (Windows, macOS)."""
    return unicodedata.normalize("NFC", path).casefold()
