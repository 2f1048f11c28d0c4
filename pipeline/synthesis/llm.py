"""The LLM strategy: a model reads the engineering spec and the artifact and proposes one RC.

Unlike the critic, the synthesizer sees the implementation: every text file of the agent,
including its own procedure under `meta/` (Hyperagents: the procedure is part of the program
it improves). The prompt is the release's `meta/prompts/synthesizer.md.j2` when it has one,
else Ratchet's built-in template; so a meta-edit to that file changes how the next RC is made.

The answer goes through a guarded call (contracts/synthesizer.yaml) plus checks the contract
language cannot state: every edit is well-formed, the edits change something, they stay on
the agent's edit surface, and the patched artifact and procedure load. The fallback is "no
edits", after which `synthesize` moves on to the next strategy (the playbook) or makes no RC.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import yaml
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import ValidationError

from ratchet.agents import (
    Contract,
    GuardedCallRecord,
    Message,
    ModelClient,
    UserError,
    guarded_call,
    redact,
    redact_record,
)
from ratchet.critics import EngineeringSpec
from ratchet.pipeline.synthesis.candidate import Proposal, unified_diff
from ratchet.pipeline.synthesis.edits import Edit, apply_edits

HERE = Path(__file__).parent
PROMPT_FILE = "meta/prompts/synthesizer.md.j2"
MEMORY_FILE = "meta/memory.md"
_ENV = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)


@cache
def synthesizer_contract() -> Contract:
    return Contract.model_validate(
        yaml.safe_load((HERE / "contracts" / "synthesizer.yaml").read_text(encoding="utf-8"))
    )


def synthesizer_messages(
    spec: EngineeringSpec, files: dict[str, str], rejected: set[str], history: list[str] | None = None
) -> list[Message]:
    """The prompt, rendered from the release's own template when it has one."""
    source = files.get(PROMPT_FILE) or (HERE / "templates" / "synthesizer.md.j2").read_text(encoding="utf-8")
    try:
        prompt = _ENV.from_string(source).render(
            agent=spec.agent,
            spec_markdown=spec.markdown(),
            files=dict(sorted(files.items())),
            memory=files.get(MEMORY_FILE, ""),
            rejected=sorted(rejected),
            history=history or [],
        )
    except jinja2.TemplateError as exc:
        raise UserError(f"agents/{spec.agent}/{PROMPT_FILE}: cannot render: {exc}") from exc
    return [Message(role="user", content=prompt)]


async def propose_with_llm(
    spec: EngineeringSpec,
    files: dict[str, str],
    rejected: set[str],
    client: ModelClient,
    samples: int,
    validate: Callable[[dict[str, str | None]], str | None],
    history: list[str] | None = None,
) -> tuple[Proposal | None, GuardedCallRecord]:
    """One proposal from the model, or None when no sample passed (the record says why)."""
    checks = {
        "edits_well_formed": lambda value: _edits(value)[1],
        "changes_something": lambda value: (
            None
            if not value["edits"] or _changes(spec, files, value)
            else "the edits change nothing or do not apply to these files"
        ),
        "edit_surface_and_loads": lambda value: validate(_changes(spec, files, value)) if value["edits"] else None,
    }
    contract_input = {"labels": [p.label for p in spec.patterns], "rejected": sorted(rejected)}
    result = await guarded_call(
        client,
        synthesizer_messages(spec, files, rejected, history),
        synthesizer_contract(),
        contract_input,
        samples=samples,
        checks=checks,
    )
    value, record = result.value, redact_record(result.record)  # the record and the intent go to git
    if not value["edits"]:
        return None, record
    changes = _changes(spec, files, value)
    prefix = f"agents/{spec.agent}/"
    diff = "".join(
        unified_diff(path, files.get(path[len(prefix) :]) if path.startswith(prefix) else None, text)
        for path, text in sorted(changes.items())
    )
    expected = list(dict.fromkeys(t for p in spec.patterns if p.label in value["targets"] for t in p.task_ids))
    proposal = Proposal(
        agent=spec.agent,
        strategy="llm",
        remediation=value["remediation"],
        targets=value["targets"],
        intent=redact(value["intent"]),
        expected_fixes=expected,
        changes=changes,
        diff=diff,
        synthesis_call=record,
    )
    return proposal, record


def _edits(value: dict[str, Any]) -> tuple[list[Edit], str | None]:
    try:
        return [Edit.model_validate(e) for e in value["edits"]], None
    except ValidationError as exc:
        first = exc.errors()[0]
        return [], f"edit {first['loc'][0] if first['loc'] else ''}: {first['msg']}"


def _changes(spec: EngineeringSpec, files: dict[str, str], value: dict[str, Any]) -> dict[str, str | None]:
    edits, problem = _edits(value)
    if problem:
        return {}
    try:
        return apply_edits(spec.agent, files, edits)
    except UserError:
        return {}
