"""The LLM critic: symptoms of a failed run, written by a model that sees only the blind view.

The model gets the run rendered from `blind_view(...)` (templates/view.txt.j2) inside the
prompt templates/critic.md.j2, and answers through a guarded call whose contract
(contracts/critic.yaml) requires taxonomy labels (or new ones flagged as new) and evidence
quoted verbatim from that rendering. When no sample satisfies it, the deterministic
detectors' report is the fallback (checked against the same contract), and past that the
contract's own fallback, an empty report.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

from ratchet.agents import (
    Contract,
    GuardedCallRecord,
    Message,
    ModelClient,
    guarded_call,
    package_templates,
    redact_record,
)
from ratchet.critics.detectors import detect
from ratchet.critics.symptoms import TAXONOMY, Symptom, SymptomReport
from ratchet.critics.view import BlindView

HERE = Path(__file__).parent
CRITIC_NAME = "llm-critic"
_ENV = package_templates(HERE / "templates", keep_trailing_newline=True)


@cache
def critic_contract() -> Contract:
    """The critic's contract, from contracts/critic.yaml."""
    return Contract.model_validate(yaml.safe_load((HERE / "contracts" / "critic.yaml").read_text(encoding="utf-8")))


def render_view(view: BlindView) -> str:
    """The blind view as the text the critic reads; quotes are checked against exactly this."""
    return _ENV.get_template("view.txt.j2").render(view=view)


def critic_messages(view: BlindView) -> list[Message]:
    """The whole prompt: instructions, taxonomy and the rendered view. Nothing else goes in."""
    prompt = _ENV.get_template("critic.md.j2").render(taxonomy=TAXONOMY, view_text=render_view(view))
    return [Message(role="user", content=prompt)]


async def llm_critique(client: ModelClient, view: BlindView) -> tuple[SymptomReport, GuardedCallRecord | None]:
    """The critic's report on one run; passing runs get an empty report without a model call.

    Report and record are records (symptoms.csv, critic-calls.jsonl): every secret in them is masked,
    whatever the critic model said (an endpoint may echo the key it was called with)."""
    if view.passed:
        return detect(view), None
    text = render_view(view)
    contract_input = {"view": text, "taxonomy": sorted(TAXONOMY)}
    detected = detect(view)
    result = await guarded_call(
        client, critic_messages(view), critic_contract(), contract_input, computed_fallback=lambda: _as_output(detected)
    )
    record = redact_record(result.record)
    if record.source == "computed_fallback":
        return detected.model_copy(update={"critic_call": record}), record
    symptoms = [
        Symptom(
            label=s["label"],
            description=s["description"] or TAXONOMY.get(s["label"], ""),
            evidence=s["evidence"],
            detector=CRITIC_NAME,
            new_label=s["new_label"],
        )
        for s in result.value["symptoms"]
    ]
    report = detected.model_copy(update={"symptoms": symptoms, "source": "llm", "critic_call": record})
    return redact_record(report), record


def _as_output(report: SymptomReport) -> dict[str, Any]:
    """A detectors' report in the critic's output shape (so the contract can check it)."""
    return {
        "symptoms": [
            {
                "label": s.label,
                "new_label": False,
                "description": s.description[:400],
                "evidence": [e for e in s.evidence if len(e) >= 3][:5] or [s.label],
            }
            for s in report.symptoms[:5]
        ]
    }
