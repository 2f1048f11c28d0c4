"""Agent artifacts: load and validate `agents/<name>/`, render its prompts, hash its content.

An artifact folder holds `agent.yaml` (validated by `AgentSpec`), the jinja2 prompt
templates it names, and `meta/` (the improvement procedure, read by the pipeline).
The content hash over every file identifies a version independently of git. It skips nothing
(`__pycache__/` and `.DS_Store` included): the pipeline hashes fresh checkouts that hold exactly
the blobs git holds, so the run store's key covers every file the gate evaluates and promotes.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

import jinja2
import yaml
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ratchet.agents.contracts.loading import CONTRACTS_DIR, load_contracts
from ratchet.agents.contracts.model import Contract, FallbackProof
from ratchet.agents.errors import UserError, validation_message

SPEC_FILE = "agent.yaml"


class ModelParams(BaseModel):
    """Sampling settings sent with every model call."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(default=1024, gt=0, le=200_000)
    timeout_s: float = Field(default=120.0, gt=0)


class PromptFiles(BaseModel):
    """Paths, relative to the artifact folder, of the jinja2 prompt templates."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    system: str
    user: str


class AgentSpec(BaseModel):
    """The schema of `agent.yaml`."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,39}$")
    description: str = ""
    model: str = Field(min_length=1, description="litellm model string, e.g. sim/humaneval or hosted_vllm/tiny.")
    model_params: ModelParams = Field(default_factory=ModelParams)
    max_turns: int = Field(default=4, ge=1, le=50)
    prompts: PromptFiles
    instructions: list[str] = Field(default_factory=list, description="Rendered into the system prompt.")
    tools: list[str] = Field(default_factory=list, description="Names of tools the agent may call, e.g. python.")
    answer_contract: str | None = Field(
        default=None,
        description="Name of a contracts/<name>.yaml the final answer (JSON) must satisfy; its "
        "input is {task: <the task input>}.",
    )


class Artifact(BaseModel):
    """A loaded, validated agent artifact."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    root: Path
    spec: AgentSpec
    templates: dict[str, str] = Field(description="Prompt role -> template source.")
    content_hash: str
    contracts: dict[str, Contract] = Field(default_factory=dict, description="contracts/<name>.yaml, by name.")
    proofs: dict[str, FallbackProof] = Field(default_factory=dict, description="Each contract's fallback proof.")

    def render(self, role: str, **context: Any) -> str:
        """Render the `system` or `user` template with the spec's fields and `context`."""
        template = _compiled(self.templates[role])
        try:
            return template.render(spec=self.spec, instructions=self.spec.instructions, **context).strip()
        except jinja2.TemplateError as exc:
            path = getattr(self.spec.prompts, role)
            raise UserError(f"{self.root / path}: cannot render: {exc}") from exc


_ENV = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


@functools.lru_cache(maxsize=256)
def _compiled(source: str) -> jinja2.Template:
    """Templates are compiled once per source text, not on every render (it is on the per-call path)."""
    return _ENV.from_string(source)


def artifact_files(root: Path) -> dict[str, bytes]:
    """Every file of the artifact, keyed by POSIX path relative to `root`, sorted (none is skipped)."""
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def content_hash(files: dict[str, bytes]) -> str:
    """sha256 over (path, length, bytes) of every file, in path order."""
    digest = hashlib.sha256()
    for rel in sorted(files):
        data = files[rel]
        digest.update(f"{rel}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def load_artifact(root: Path) -> Artifact:
    """Load `root/agent.yaml` and its templates; UserError naming the file and field if invalid."""
    spec_path = root / SPEC_FILE
    if not spec_path.is_file():
        raise UserError(
            f"{spec_path}: no agent.yaml here; an agent artifact is a folder agents/<name>/ with agent.yaml"
        )
    spec = _parse_spec(spec_path)
    templates = {role: _read_template(root, getattr(spec.prompts, role)) for role in ("system", "user")}
    contracts, proofs = load_contracts(root)
    if spec.answer_contract is not None and spec.answer_contract not in contracts:
        raise UserError(
            f"{spec_path}: field 'answer_contract': no contract {spec.answer_contract!r}; "
            f"add {CONTRACTS_DIR}/{spec.answer_contract}.yaml or remove the field"
        )
    return Artifact(
        root=root,
        spec=spec,
        templates=templates,
        content_hash=content_hash(artifact_files(root)),
        contracts=contracts,
        proofs=proofs,
    )


def _parse_spec(path: Path) -> AgentSpec:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid YAML: {_one_line(exc)}") from exc
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a mapping of fields (name, model, prompts, ...)")
    try:
        return AgentSpec.model_validate(raw)
    except ValidationError as exc:
        raise UserError(f"{path}: {validation_message(exc)}") from exc


def _read_template(root: Path, rel: str) -> str:
    path = (root / rel).resolve()
    if not path.is_relative_to(root.resolve()):
        raise UserError(f"{root / SPEC_FILE}: field 'prompts': {rel!r} points outside the artifact folder")
    if not path.is_file():
        raise UserError(f"{root / SPEC_FILE}: field 'prompts': template {rel!r} does not exist")
    try:
        source = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save the template as UTF-8"
        ) from exc
    try:
        ImmutableSandboxedEnvironment().parse(source)
    except jinja2.TemplateSyntaxError as exc:
        raise UserError(f"{path}: line {exc.lineno}: template syntax error: {exc.message}") from exc
    return source


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())
