"""Ratchet's exception hierarchy, named by whose fault it is.

Every package may raise these (ARCHITECTURE.md: the one thing all packages share).
The CLI maps each class to an exit code and prints the message as one line.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError


class RatchetError(Exception):
    """Base class. The message must tell the user what went wrong and what to do."""

    exit_code: int = 1


class UserError(RatchetError):
    """Bad input from the user: a file, a field, an argument."""

    exit_code = 2


class ModelBackendError(RatchetError):
    """A model backend failed in a way retries did not fix."""

    exit_code = 3


class StateError(RatchetError):
    """The workspace is in a state that forbids the action (lock held, dirty tree, missing ref)."""

    exit_code = 4


def validation_message(exc: ValidationError, data: Any = None) -> str:
    """The first error of a pydantic ValidationError as one line: `field 'a.b.c': what is wrong`.

    With the validated `data`, the tag pydantic inserts into the location of a discriminated
    union (`verifier.python_tests.test`) is left out (`verifier.test`).
    """
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = _field_path(first["loc"], data)
    kind, ctx = first["type"], first.get("ctx") or {}
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        loc.append(str(ctx.get("discriminator", "type")).strip("'"))
        tags = [t.strip() for t in str(ctx.get("expected_tags", "")).split(",") if t.strip()]
        what = f"must be {' or '.join(tags)}" if tags and kind == "union_tag_invalid" else "missing"
    elif kind == "missing":
        what = "missing"
    elif kind == "extra_forbidden":
        what = "unknown field"
    else:
        what = first["msg"][:1].lower() + first["msg"][1:]
    more = f" (and {len(errors) - 1} more error(s))" if len(errors) > 1 else ""
    field = f"field '{'.'.join(loc)}': " if loc else ""
    return f"{field}{what}{more}"


def _field_path(loc: tuple[int | str, ...], data: Any) -> list[str]:
    """Location parts as strings, without union tags that are not keys of the data."""
    parts: list[str] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part not in node and isinstance(part, str) and part in node.values():
            continue  # a discriminator tag, e.g. 'python_tests'
        parts.append(str(part))
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            node = None
    return parts
