"""What every stage of a cycle works with: the cycle's fixed context (workspace, settings, suite,
policy, run store, registry) and a release checked out of git. The stages (pipeline.stages) and the
Dask runner (pipeline.execution) both build on it, and neither on the other's internals."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from ratchet.agents import Artifact, ModelClient, load_artifact, resolve_model
from ratchet.gates import GatePolicy, RunStore, Suite, load_policy, load_suite
from ratchet.pipeline.settings import Settings, load_settings
from ratchet.releases import GitStore, Registry


@dataclass(frozen=True)
class CycleContext:
    """Everything a stage needs that is fixed for the whole cycle."""

    workspace: Path
    agent: str
    settings: Settings
    suite: Suite
    policy: GatePolicy
    store: RunStore
    registry: Registry
    model_override: str | None = None
    api_base: str | None = None

    @property
    def scratch(self) -> Path:
        return self.workspace / ".ratchet"


@dataclass(frozen=True)
class ReleaseState:
    """A release (or candidate) checked out of git into the scratch area, loaded."""

    label: str
    artifact: Artifact
    files: dict[str, str]


def open_context(
    workspace: Path, agent: str, model_override: str | None = None, api_base: str | None = None
) -> CycleContext:
    settings = load_settings(workspace)
    agent_settings = settings.agent(agent)
    if agent_settings.smoke_suite is not None:
        load_suite(workspace, agent_settings.smoke_suite)  # a broken smoke suite fails before any work, not after
    return CycleContext(
        workspace=workspace,
        agent=agent,
        settings=settings,
        suite=load_suite(workspace, agent_settings.suite),
        policy=load_policy(workspace, agent_settings.policy),
        store=RunStore(workspace / ".ratchet"),
        registry=Registry(workspace),
        model_override=model_override,
        api_base=api_base,
    )


def checkout_artifact(ctx: CycleContext, rev: str, label: str) -> ReleaseState:
    """Write `agents/<agent>/` as of `rev` to `.ratchet/checkouts/<label>/` and load it."""
    with GitStore(ctx.workspace) as git:
        raw = git.list_files(rev, f"agents/{ctx.agent}")
    dest = ctx.scratch / "checkouts" / label.replace("/", "-") / ctx.agent
    shutil.rmtree(dest, ignore_errors=True)
    for rel, data in raw.items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_bytes(data)
    files = {rel: data.decode("utf-8", errors="replace") for rel, data in raw.items()}
    return ReleaseState(label=label, artifact=load_artifact(dest), files=files)


def client_for(ctx: CycleContext, artifact: Artifact) -> ModelClient:
    """The agent's model (or the override), resolved through ratchet.toml's [models.<alias>] tables."""
    name = ctx.model_override or artifact.spec.model
    return ModelClient(resolve_model(name, ctx.settings.models, ctx.api_base), artifact.spec.model_params)
