"""Keep secrets out of everything Ratchet records (traces, run store, logs, git, Prefect's database).

A secret is:
- the value of an environment variable whose name looks like one (SECRET_NAME), or that a model
  config names as its key (`api_key_env`, whatever the name; see `register_key_variables`),
  at least MIN_SECRET_CHARS long, in any letter case;
- a token of a known key shape (SECRET_SHAPES);
- a credential in a URL: its user info (`scheme://user:password@host`) and the value of a query
  parameter named like a key (`?api_key=...`, `&token=...`).

Redaction is for what is stored or shown. What is sent to a model, and what a verifier scores,
is the text as it is.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any, TypeVar

from pydantic import BaseModel

Record = TypeVar("Record", bound=BaseModel)

SECRET_NAME = re.compile(r"(API_?KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL)", re.IGNORECASE)
SECRET_SHAPES = re.compile(r"\b(sk-[A-Za-z0-9_\-]{8,}|hf_[A-Za-z0-9]{16,}|gh[pousr]_[A-Za-z0-9]{20,})")
# The same shapes without the word boundary: a superset of SECRET_SHAPES' matches that also holds
# inside JSON text, where an escape such as `\n` can sit right before a token.
SECRET_SHAPES_ANYWHERE = re.compile(r"(sk-[A-Za-z0-9_\-]{8,}|hf_[A-Za-z0-9]{16,}|gh[pousr]_[A-Za-z0-9]{20,})")
# The user info of a URL (`user:password@`), and the value of a query parameter named like a key.
URL_USER_INFO = re.compile(r"(?<=://)[^/?#@\s]+@")
_KEY_PARAMETER = (
    r"[?&][A-Za-z0-9_.\-]*(?:key|token|secret|passw(?:or)?d|pass|pwd|auth|sig(?:nature)?|credential)[A-Za-z0-9_.\-]*="
)
URL_KEY_PARAMETER = re.compile(rf"({_KEY_PARAMETER})[^&#\s'\"]+", re.IGNORECASE)
# What may be a URL credential in JSON text (a superset of the two patterns' matches there).
URL_CREDENTIAL_HINT = re.compile(rf"://[^/?#@]*@|{_KEY_PARAMETER}", re.IGNORECASE)
MASK = "[REDACTED]"
MIN_SECRET_CHARS = 8

_KEY_VARIABLES: set[str] = set()


def register_key_variables(names: Iterable[str | None]) -> None:
    """Mark environment variables as holding keys (what configs name with `api_key_env`).

    Their values are secrets from now on in this process, whatever the variables' names. The
    call layer registers every variable it reads a key from; loading ratchet.toml registers
    every variable it names.
    """
    _KEY_VARIABLES.update(name for name in names if name)


def secret_values() -> list[str]:
    """Values (at least MIN_SECRET_CHARS long) of the environment variables that hold secrets: names
    that look like secrets, and the variables configs name as keys. Longest first."""
    values = [
        v
        for k, v in os.environ.items()
        if (SECRET_NAME.search(k) or k in _KEY_VARIABLES) and len(v) >= MIN_SECRET_CHARS
    ]
    return sorted(set(values), key=len, reverse=True)


def redact(text: str, secrets: list[str] | None = None) -> str:
    """Replace known secret values (in any letter case), secret-shaped tokens and credentials in URLs with a mask."""
    pattern = _values_pattern(tuple(secrets if secrets is not None else secret_values()))
    if pattern is not None:
        text = pattern.sub(MASK, text)
    text = SECRET_SHAPES.sub(MASK, text)
    text = URL_USER_INFO.sub(MASK + "@", text)
    return URL_KEY_PARAMETER.sub(lambda match: match.group(1) + MASK, text)


def might_hold_secrets(json_text: str, secrets: list[str]) -> bool:
    """False only when JSON text certainly holds no secret value, secret-shaped token or URL credential.

    A cheap test before walking a record string by string: a secret appears in JSON text as
    itself unless it has characters JSON escapes, so those secrets always answer True.
    """
    if any(json.dumps(value, ensure_ascii=False)[1:-1] != value for value in secrets):
        return True
    pattern = _values_pattern(tuple(secrets))
    if pattern is not None and pattern.search(json_text):
        return True
    return SECRET_SHAPES_ANYWHERE.search(json_text) is not None or URL_CREDENTIAL_HINT.search(json_text) is not None


def redact_strings(value: Any, secrets: list[str]) -> Any:
    """JSON-like data (dicts, lists, scalars) with every string redacted."""
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, dict):
        return {k: redact_strings(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_strings(v, secrets) for v in value]
    return value


def redact_record(record: Record, secrets: list[str] | None = None) -> Record:
    """The record (a pydantic model) with every secret masked in every string it holds; itself when none."""
    secrets = secret_values() if secrets is None else secrets
    if not might_hold_secrets(record.model_dump_json(), secrets):
        return record
    data = record.model_dump(mode="json")
    cleaned = redact_strings(data, secrets)
    return record if cleaned == data else type(record).model_validate(cleaned)


@lru_cache(maxsize=16)
def _values_pattern(values: tuple[str, ...]) -> re.Pattern[str] | None:
    """One case-insensitive pattern for all values, longest first (a verifier may quote an answer lowercased)."""
    if not values:
        return None
    ordered = sorted(set(values), key=len, reverse=True)
    return re.compile("|".join(re.escape(v) for v in ordered), re.IGNORECASE)
