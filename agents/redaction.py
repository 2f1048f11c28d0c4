"""Keep secrets out of everything Ratchet records (traces, run store, logs, git)."""

from __future__ import annotations

import json
import os
import re

SECRET_NAME = re.compile(r"(API_?KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL)", re.IGNORECASE)
SECRET_SHAPES = re.compile(r"\b(sk-[A-Za-z0-9_\-]{8,}|hf_[A-Za-z0-9]{16,}|gh[pousr]_[A-Za-z0-9]{20,})")
# The same shapes without the word boundary: a superset of SECRET_SHAPES' matches that also holds
# inside JSON text, where an escape such as `\n` can sit right before a token.
SECRET_SHAPES_ANYWHERE = re.compile(r"(sk-[A-Za-z0-9_\-]{8,}|hf_[A-Za-z0-9]{16,}|gh[pousr]_[A-Za-z0-9]{20,})")
MASK = "[REDACTED]"


def secret_values() -> list[str]:
    """Values of environment variables whose names look like secrets (at least 8 chars)."""
    values = [v for k, v in os.environ.items() if SECRET_NAME.search(k) and len(v) >= 8]
    return sorted(set(values), key=len, reverse=True)


def redact(text: str, secrets: list[str] | None = None) -> str:
    """Replace known secret values and secret-shaped tokens with a mask."""
    for value in secrets if secrets is not None else secret_values():
        text = text.replace(value, MASK)
    return SECRET_SHAPES.sub(MASK, text)


def might_hold_secrets(json_text: str, secrets: list[str]) -> bool:
    """False only when JSON text certainly holds no secret value and no secret-shaped token.

    A cheap test before walking a record string by string: a secret appears in JSON text as
    itself unless it has characters JSON escapes, so those secrets always answer True.
    """
    for value in secrets:
        if value in json_text or json.dumps(value, ensure_ascii=False)[1:-1] != value:
            return True
    return SECRET_SHAPES_ANYWHERE.search(json_text) is not None
