"""Implementation-blind critics: a run's blind view, symptom reports (detectors or an LLM critic), and the
diagnosis that turns them into an engineering spec. Reads gates' Task and Outcome types only.

This face is the package's public surface: other packages import these names from `ratchet.critics`
(tests/test_architecture.py enforces it). Each name is imported from its module on first use, so
importing the face costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ratchet.agents import lazy_exports

if TYPE_CHECKING:
    from ratchet.critics.detectors import detect
    from ratchet.critics.diagnosis import EngineeringSpec, Pattern, diagnose, symptom_frame
    from ratchet.critics.llm_critic import llm_critique
    from ratchet.critics.symptoms import SymptomReport
    from ratchet.critics.view import BlindView, blind_view

__all__ = [
    "BlindView",
    "EngineeringSpec",
    "Pattern",
    "SymptomReport",
    "blind_view",
    "detect",
    "diagnose",
    "llm_critique",
    "symptom_frame",
]
__getattr__ = lazy_exports(
    __name__,
    {
        "detectors": ["detect"],
        "diagnosis": ["EngineeringSpec", "Pattern", "diagnose", "symptom_frame"],
        "llm_critic": ["llm_critique"],
        "symptoms": ["SymptomReport"],
        "view": ["BlindView", "blind_view"],
    },
)
