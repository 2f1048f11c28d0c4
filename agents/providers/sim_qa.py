"""The behaviour of Ratchet's SIMULATED question-answering model `sim/<world>` for QA worlds.

A QA world is a YAML file in `worlds/qa/` (read `worlds/qa/tqb.yaml` for the rules in plain
words). Like `sim_world` for code, this is pure: the reply is a function of (world, item,
traits, sample), every "coin flip" a sha256 of (seed, fault, item id).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ratchet.agents.errors import UserError
from ratchet.agents.providers.sim_world import WORLDS_DIR, Noise, draw, noisy_sample

QA_WORLDS_DIR = WORLDS_DIR / "qa"
PACKAGES_ROOT = Path(__file__).resolve().parents[2]
QaTrait = Literal["brief", "step_by_step"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class QaTraits(_Frozen):
    brief: tuple[str, ...] = Field(min_length=1, description="Answer with the answer only.")
    step_by_step: tuple[str, ...] = Field(min_length=1, description="Reason before answering.")


class QaFault(_Frozen):
    rate: float = Field(ge=0.0, le=1.0, description="Share of eligible items that get the fault.")
    applies_when: tuple[QaTrait, ...] = ()
    suppressed_by: tuple[QaTrait, ...] = ()


class QaFaults(_Frozen):
    verbose: QaFault
    reasoning_leak: QaFault


class QaWorld(_Frozen):
    world: str
    description: str
    seed: int
    knowledge: str = Field(description="The items' JSON file, relative to the folder holding the packages.")
    traits: QaTraits
    faults: QaFaults
    noise: Noise = Field(default_factory=Noise)


@dataclass(frozen=True)
class QaItem:
    item_id: str
    question: str
    answer: str


def qa_worlds() -> list[str]:
    return sorted(path.stem for path in QA_WORLDS_DIR.glob("*.yaml"))


@functools.cache
def load_qa_world(name: str) -> QaWorld:
    path = QA_WORLDS_DIR / f"{name}.yaml"
    try:
        world = QaWorld.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"Cannot read world file {path}: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '<top>'}: {e['msg']}" for e in exc.errors())
        raise UserError(f"Invalid world file {path}: {problems}") from exc
    if world.world != name:
        raise UserError(f"Invalid world file {path}: world: {world.world!r} must equal the file name {name!r}")
    return world


@functools.cache
def knowledge(world: QaWorld) -> tuple[QaItem, ...]:
    path = PACKAGES_ROOT / world.knowledge
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"world {world.world!r}: field 'knowledge': cannot read {path}: {exc}") from exc
    return tuple(QaItem(str(i["id"]), str(i["text"]), str(i["label"])) for i in items)


def find_item(world: QaWorld, text: str) -> QaItem | None:
    """The item whose question occurs verbatim in `text` (the longest, if several do)."""
    found = [item for item in knowledge(world) if item.question in text]
    return max(found, key=lambda item: len(item.question)) if found else None


def detect_traits(world: QaWorld, text: str) -> frozenset[str]:
    lowered = text.lower()
    return frozenset(
        trait
        for trait, phrases in world.traits.model_dump().items()
        if any(phrase.lower() in lowered for phrase in phrases)
    )


def plan_faults(world: QaWorld, item: QaItem, traits: frozenset[str], sample: str | None = None) -> frozenset[str]:
    """The faults that hit this item under these traits (and this sample's noise)."""
    hits = set()
    for name, rule in world.faults:
        eligible = all(t in traits for t in rule.applies_when) and not any(t in traits for t in rule.suppressed_by)
        if eligible and draw(world.seed, name, item.item_id) < rule.rate:
            hits.add(name)
    if noisy_sample(world.seed, world.noise, item.item_id, sample):
        hits.add("wrong_value")
    return frozenset(hits)


def answer(world: QaWorld, item: QaItem, traits: frozenset[str], sample: str | None = None) -> str:
    """The final answer's text."""
    faults = plan_faults(world, item, traits, sample)
    value = f"not {item.answer}" if "wrong_value" in faults else item.answer
    if "reasoning_leak" in faults:
        return f"Let me think step by step about the question. The context says it directly. So: {value}"
    if "verbose" in faults:
        return f"The answer to the question is {value}."
    return value
