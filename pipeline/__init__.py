"""The improvement cycle and its front ends: the stages, the Prefect flow, synthesis, evidence, reports,
schedules, serving, and the `ratchet` CLI. Nothing imports it.

This face is the package's public surface: other packages import these names from `ratchet.pipeline`
(tests/test_architecture.py enforces it). Each name is imported from its module on first use, so
importing the face costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ratchet.agents import lazy_exports

if TYPE_CHECKING:
    from ratchet.pipeline.cli.app import main
    from ratchet.pipeline.flows import improve_cycle
    from ratchet.pipeline.process_setup import setup

__all__ = ["improve_cycle", "main", "setup"]
__getattr__ = lazy_exports(
    __name__,
    {
        "cli.app": ["main"],
        "flows": ["improve_cycle"],
        "process_setup": ["setup"],
    },
)
