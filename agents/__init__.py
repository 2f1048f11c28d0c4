"""The base layer: an agent artifact, the model call path, traces, redaction, and the error hierarchy
every package shares. It imports no other Ratchet package.

This face is the package's public surface: other packages import these names from `ratchet.agents`
(tests/test_architecture.py enforces it). Each name is imported from its module on first use, so
importing the face costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ratchet.agents._face import lazy_exports

if TYPE_CHECKING:
    from ratchet.agents.artifact import Artifact, ModelParams, artifact_files, load_artifact
    from ratchet.agents.contracts.guarded import guarded_call
    from ratchet.agents.contracts.model import Contract
    from ratchet.agents.errors import ModelBackendError, RatchetError, StateError, UserError, validation_message
    from ratchet.agents.model_config import ModelConfig, resolve_model
    from ratchet.agents.models import ModelClient, setup_models
    from ratchet.agents.providers import is_simulated
    from ratchet.agents.redaction import (
        MASK,
        redact,
        redact_record,
        redact_strings,
        register_key_variables,
        secret_values,
    )
    from ratchet.agents.runtime import redact_trace, run_agent_unredacted
    from ratchet.agents.templating import package_templates
    from ratchet.agents.trace import (
        INVALID_MODEL_OUTPUT,
        GuardedCallRecord,
        Message,
        Trace,
        bounded_for_storage,
        escape_surrogates,
        storable,
        surrogate_at,
        surrogate_in,
    )

__all__ = [
    "Artifact",
    "Contract",
    "GuardedCallRecord",
    "INVALID_MODEL_OUTPUT",
    "MASK",
    "Message",
    "ModelBackendError",
    "ModelClient",
    "ModelConfig",
    "ModelParams",
    "RatchetError",
    "StateError",
    "Trace",
    "UserError",
    "artifact_files",
    "bounded_for_storage",
    "escape_surrogates",
    "guarded_call",
    "is_simulated",
    "lazy_exports",
    "load_artifact",
    "package_templates",
    "redact",
    "redact_record",
    "redact_strings",
    "redact_trace",
    "register_key_variables",
    "resolve_model",
    "run_agent_unredacted",
    "secret_values",
    "setup_models",
    "storable",
    "surrogate_at",
    "surrogate_in",
    "validation_message",
]
__getattr__ = lazy_exports(
    __name__,
    {
        "artifact": ["Artifact", "ModelParams", "artifact_files", "load_artifact"],
        "contracts.guarded": ["guarded_call"],
        "contracts.model": ["Contract"],
        "errors": ["ModelBackendError", "RatchetError", "StateError", "UserError", "validation_message"],
        "model_config": ["ModelConfig", "resolve_model"],
        "models": ["ModelClient", "setup_models"],
        "providers": ["is_simulated"],
        "redaction": ["MASK", "redact", "redact_record", "redact_strings", "register_key_variables", "secret_values"],
        "runtime": ["redact_trace", "run_agent_unredacted"],
        "templating": ["package_templates"],
        "trace": [
            "GuardedCallRecord",
            "INVALID_MODEL_OUTPUT",
            "Message",
            "Trace",
            "bounded_for_storage",
            "escape_surrogates",
            "storable",
            "surrogate_at",
            "surrogate_in",
        ],
    },
)
