"""Fixtures shared by the fault suite: the Prefect server's URL and one uninterrupted reference cycle."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.kill_campaign import Reference, make_reference


@pytest.fixture(scope="session")
def prefect_url(prefect_server: None) -> str:
    from prefect.settings import PREFECT_API_URL

    return str(PREFECT_API_URL.value())


@pytest.fixture(scope="session")
def reference(demo_template: Path, tmp_path_factory: pytest.TempPathFactory, prefect_url: str) -> Reference:
    """The demo's first cycle, never interrupted: what every faulted cycle must end up deciding."""
    return make_reference(demo_template, tmp_path_factory.mktemp("reference"), prefect_url)
