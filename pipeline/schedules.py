"""Nightly cycles: the improvement flow as a Prefect deployment with a cron schedule, served here.

Why `flow.serve` (a deployment served by this process) and not a work pool: a cycle needs the
workspace's files and git repository, which live on the machine that serves it; `serve` runs
each scheduled cycle in a subprocess of `ratchet schedule` on that machine, with nothing else to
set up (no pool, no worker, no image). The deployment itself lives on the Prefect server: the
schedule, run history, logs and artifacts are visible in its UI, and a run can be started from
there ("Run now"). Two cycles of one agent never overlap: the deployment's concurrency limit is 1
(later runs wait in the server's queue, whichever machine serves them), and the cycle lock in
the workspace (pipeline/locking.py) refuses a second cycle on the same files.

Schedules need a real Prefect server (`prefect server start`); without PREFECT_API_URL Prefect
would start a temporary one that forgets the schedule when this process exits, so we refuse.
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict

from ratchet.agents import StateError, UserError

if TYPE_CHECKING:  # Prefect's client is for `ratchet status`, imported there
    from uuid import UUID

    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.objects import FlowRun, StateType
    from prefect.client.schemas.sorting import FlowRunSort

FLOW_NAME = "improve-cycle"
START_SERVER = (
    "schedules need a running Prefect server: start one with `prefect server start` (in another terminal "
    "or as a service), then `export PREFECT_API_URL=http://127.0.0.1:4200/api` and re-run"
)


class ScheduledCycle(BaseModel):
    """One deployment of the improvement flow, as the server reports it."""

    model_config = ConfigDict(frozen=True)
    name: str
    agent: str
    workspace: str
    schedules: list[str]
    paused: bool
    next_run: datetime | None = None
    last_run: datetime | None = None
    last_state: str | None = None


def deployment_name(agent: str, workspace: Path) -> str:
    """Stable per (agent, workspace): `coder-3f2a9c1d` (the workspace path's hash), so two
    workspaces on one server never share a schedule."""
    return f"{agent}-{hashlib.sha256(str(workspace.resolve()).encode()).hexdigest()[:8]}"


def require_server() -> str:
    """The configured server's API URL, checked to answer; UserError saying what to run otherwise."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        raise UserError(f"PREFECT_API_URL is not set; {START_SERVER}")
    from prefect.client.orchestration import get_client

    async def healthy() -> bool:
        async with get_client() as client:
            return (await client.api_healthcheck()) is None

    try:
        ok = asyncio.run(healthy())
    except Exception:  # noqa: BLE001 - any transport error means the same to the user
        ok = False
    if not ok:
        raise StateError(f"no Prefect server answers at {url}; {START_SERVER}")
    return str(url)


def check_cron(cron: str, timezone: str | None) -> None:
    from prefect.client.schemas.schedules import CronSchedule
    from pydantic import ValidationError

    try:
        CronSchedule(cron=cron)
    except ValidationError as exc:
        raise UserError(f"--cron {cron!r}: not a cron expression; e.g. '0 2 * * *' is 02:00 every day") from exc
    if timezone:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise UserError(f"--timezone {timezone!r}: unknown time zone; use an IANA name like Europe/Berlin") from exc


def serve_schedule(workspace: Path, agent: str, cron: str, timezone: str | None) -> None:
    """Register (or update) the agent's deployment with its cron schedule and serve it until interrupted."""
    from prefect import serve
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.deployments.runner import EntrypointType, RunnerDeployment
    from prefect.schedules import Cron

    from ratchet.pipeline.flows import improve_cycle

    check_cron(cron, timezone)
    require_server()
    deployment = improve_cycle.to_deployment(
        name=deployment_name(agent, workspace),
        schedules=[Cron(cron, timezone=timezone)],
        parameters={"workspace": str(workspace.resolve()), "agent": agent},
        concurrency_limit=ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE),
        description=f"Ratchet improvement cycle for agent {agent!r} in {workspace.resolve()}",
        tags=["ratchet", f"agent:{agent}"],
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    # to_deployment gives a coroutine only inside an event loop or an async flow; `ratchet schedule` runs in neither
    assert isinstance(deployment, RunnerDeployment)
    serve(deployment, print_starting_message=True)


def scheduled_cycles(agent: str | None = None, workspace: Path | None = None) -> list[ScheduledCycle]:
    """Every deployment of the improvement flow on the server (optionally one agent's, one workspace's)."""
    require_server()
    return asyncio.run(_scheduled_cycles(agent, workspace))


async def _scheduled_cycles(agent: str | None, workspace: Path | None) -> list[ScheduledCycle]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import DeploymentSort, FlowRunSort

    finished = [StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED, StateType.RUNNING]
    found = []
    async with get_client() as client:
        deployments = await client.read_deployments(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[FLOW_NAME])), limit=200, sort=DeploymentSort.NAME_ASC
        )
        for d in deployments:
            params: dict[str, Any] = d.parameters or {}
            if agent and params.get("agent") != agent:
                continue
            if workspace and params.get("workspace") != str(workspace.resolve()):
                continue
            upcoming = await _first_run(client, d.id, [StateType.SCHEDULED], FlowRunSort.EXPECTED_START_TIME_ASC)
            done = await _first_run(client, d.id, finished, FlowRunSort.START_TIME_DESC)
            found.append(
                ScheduledCycle(
                    name=f"{FLOW_NAME}/{d.name}",
                    agent=str(params.get("agent", "?")),
                    workspace=str(params.get("workspace", "?")),
                    schedules=[_describe(s.schedule) for s in d.schedules],
                    paused=bool(d.paused),
                    next_run=upcoming.expected_start_time if upcoming else None,
                    last_run=(done.start_time or done.expected_start_time) if done else None,
                    last_state=done.state_name if done else None,
                )
            )
    return found


async def _first_run(
    client: PrefectClient, deployment: UUID, states: list[StateType], sort: FlowRunSort
) -> FlowRun | None:
    """The deployment's first flow run in one of `states`, in `sort` order; None when it has none."""
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterDeploymentId,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )

    runs = await client.read_flow_runs(
        flow_run_filter=FlowRunFilter(
            deployment_id=FlowRunFilterDeploymentId(any_=[deployment]),
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=states)),
        ),
        sort=sort,
        limit=1,
    )
    return runs[0] if runs else None


def _describe(schedule: object) -> str:
    cron, timezone = getattr(schedule, "cron", None), getattr(schedule, "timezone", None)
    if cron:
        return f"cron {cron}" + (f" ({timezone})" if timezone else "")
    return str(schedule)


def remove_schedule(name: str) -> None:
    """Delete one deployment (`improve-cycle/coder-3f2a9c1d` or just `coder-3f2a9c1d`)."""
    require_server()
    asyncio.run(_remove(name if "/" in name else f"{FLOW_NAME}/{name}"))


async def _remove(full_name: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    async with get_client() as client:
        try:
            deployment = await client.read_deployment_by_name(full_name)
        except ObjectNotFound as exc:
            raise UserError(f"no scheduled cycle {full_name!r}; `ratchet schedule --list` shows them") from exc
        await client.delete_deployment(deployment.id)
