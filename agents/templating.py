"""The jinja2 environments of Ratchet's own templates (prompts, specs, release notes, the report): one per
template folder and settings, built once. Artifacts' templates, which an RC may write, use the sandboxed
environments in agents.artifact and agents.contracts.fallback instead."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import jinja2


@cache
def package_templates(
    folder: Path, *, trim_blocks: bool = False, autoescape: bool = False, keep_trailing_newline: bool = False
) -> jinja2.Environment:
    """An environment over `folder` that fails on any undefined name (StrictUndefined)."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder),
        undefined=jinja2.StrictUndefined,
        trim_blocks=trim_blocks,
        lstrip_blocks=trim_blocks,
        autoescape=autoescape,
        keep_trailing_newline=keep_trailing_newline,
    )
