"""Ratchet's own model providers for litellm.

`sim/<world>` is the built-in OFFLINE SIMULATED model (see `worlds/humaneval.yaml`
for its rules): deterministic, seeded, never a real LLM. Importing this package
imports nothing heavy and registers nothing; `ratchet.agents.setup_models()` calls
`register_providers()` once per process, before the first `litellm.completion(model="sim/...")`.
"""

from __future__ import annotations

__all__ = ["SIM_PREFIX", "is_simulated", "register_providers"]

SIM_PREFIX = "sim/"


def is_simulated(model: str) -> bool:
    """Whether a litellm model name points at Ratchet's simulated model."""
    return model.startswith(SIM_PREFIX)


def register_providers() -> None:
    """Make `model="sim/<world>"` work in litellm. Idempotent.

    Called by `ratchet.agents.setup_models()`, which first keeps litellm offline.
    """
    import litellm

    from ratchet.agents.providers.sim import SimProvider

    if not any(item["provider"] == "sim" for item in litellm.custom_provider_map):
        litellm.custom_provider_map.append({"provider": "sim", "custom_handler": SimProvider()})
    # litellm also runs this on every call; running it here makes the provider
    # known at once (e.g. to get_llm_provider and get_supported_openai_params).
    from litellm.utils import custom_llm_setup

    custom_llm_setup()
