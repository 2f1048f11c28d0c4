"""Keep secrets out of everything Ratchet records (traces, run store, logs, git)."""

from __future__ import annotations

import os
import re

SECRET_NAME = re.compile(r"(API_?KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL)", re.IGNORECASE)
SECRET_SHAPES = re.compile(r"\b(sk-[A-Za-z0-9_\-]{8,}|hf_[A-Za-z0-9]{16,}|gh[pousr]_[A-Za-z0-9]{20,})")
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
