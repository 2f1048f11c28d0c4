"""Edit operations a playbook remediation applies to an agent artifact.

Each operation is a one-key mapping, e.g. `{add_instruction: "..."}`. `apply_edits`
returns the changed files (paths relative to the workspace) or an empty dict when
the edits would change nothing, which makes the remediation inapplicable.
"""

from __future__ import annotations

import posixpath
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, model_validator

from ratchet.agents import UserError

OPERATIONS = ("add_instruction", "remove_instruction", "enable_tool", "disable_tool", "set", "write_file")


class Edit(BaseModel):
    """One edit operation (exactly one field set)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    add_instruction: str | None = None
    remove_instruction: str | None = None
    enable_tool: str | None = None
    disable_tool: str | None = None
    set: dict[str, Any] | None = None
    write_file: dict[str, str] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Edit:
        given = [name for name in OPERATIONS if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"each edit needs exactly one of {', '.join(OPERATIONS)}")
        if self.write_file is not None and set(self.write_file) != {"path", "content"}:
            raise ValueError("write_file needs 'path' and 'content'")
        return self


def apply_edits(agent: str, files: dict[str, str], edits: list[Edit]) -> dict[str, str | None]:
    """Apply `edits` to the artifact `files` (relative to agents/<agent>/); return changed workspace paths."""
    spec_text = files["agent.yaml"]
    header, data = _split_header(spec_text)
    changed: dict[str, str | None] = {}
    for edit in edits:
        if edit.write_file is not None:
            changed[posixpath.normpath(f"agents/{agent}/{edit.write_file['path']}")] = edit.write_file["content"]
        else:
            _apply_to_spec(data, edit)
    new_spec = header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1000)
    if yaml.safe_load(new_spec) != yaml.safe_load(spec_text):
        changed[f"agents/{agent}/agent.yaml"] = new_spec
    prefix = f"agents/{agent}/"
    return {
        path: text
        for path, text in changed.items()
        if not path.startswith(prefix) or text != files.get(path[len(prefix) :])
    }


def _apply_to_spec(data: dict[str, Any], edit: Edit) -> None:
    instructions = data.setdefault("instructions", [])
    tools = data.setdefault("tools", [])
    if edit.add_instruction is not None and edit.add_instruction not in instructions:
        instructions.append(edit.add_instruction)
    if edit.remove_instruction is not None and edit.remove_instruction in instructions:
        instructions.remove(edit.remove_instruction)
    if edit.enable_tool is not None and edit.enable_tool not in tools:
        tools.append(edit.enable_tool)
    if edit.disable_tool is not None and edit.disable_tool in tools:
        tools.remove(edit.disable_tool)
    if edit.set is not None:
        data.update(edit.set)


def _split_header(text: str) -> tuple[str, dict[str, Any]]:
    """Keep the leading comment block (YAML round trips drop comments)."""
    lines = text.splitlines(keepends=True)
    count = next((i for i, line in enumerate(lines) if not line.startswith("#")), len(lines))
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise UserError("agent.yaml: expected a mapping of fields")
    return "".join(lines[:count]), data
