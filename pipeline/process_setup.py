"""The one explicit setup of a Ratchet process: no module of Ratchet changes the environment or a
library's globals when it is imported. The CLI (`ratchet ...`), the Prefect flow (also when a
scheduled deployment runs it in another process), Dask evaluation workers and the test fixtures
call `setup()` before anything else; calling it again does nothing."""

from __future__ import annotations

import os

from ratchet.agents import setup_models

# Offline and quiet defaults for the libraries Ratchet drives, set before they are imported; a value
# the user set wins. litellm's own switch (LITELLM_LOCAL_MODEL_COST_MAP) is set by setup_models.
ENVIRONMENT_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
}


def setup(defer_models: bool = False) -> None:
    """Environment defaults, then litellm (local cost map, no telemetry) and Ratchet's providers (`sim/...`);
    with `defer_models` (the CLI), litellm is prepared when the first model client is made."""
    for name, value in ENVIRONMENT_DEFAULTS.items():
        os.environ.setdefault(name, value)
    setup_models(defer=defer_models)
