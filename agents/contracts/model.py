"""Output contracts: a JSON schema plus named clauses, and the fallback that always satisfies them.

A contract is declared in YAML (in an agent artifact under `contracts/<name>.yaml`, or next to
one of Ratchet's own LLM roles):

    name: label
    description: one label for a task, from the allowed set
    input_schema:                 # what `input` holds; the prover reasons over it
      type: object
      properties: {choices: {type: array, items: {type: string}}, task: {type: string}}
      required: [choices, task]
    output_schema:
      type: object
      properties: {label: {type: string}}
      required: [label]
    clauses:
      label_allowed: output.label in input.choices or output.label == "none"
      short: len(output.label) <= 40
    samples: 3                    # K: model samples before the fallback
    fallback:
      constant: {label: none}     # or  template: {label: "{{ input.task }}"}

`check(contract, input, output)` says which clauses an output breaks; the schema counts as
the clause `schema`.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, Literal

import jsonschema
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ratchet.agents.contracts.expr import Expr, ExprError, parse

SCHEMA_CLAUSE = "schema"


class Fallback(BaseModel):
    """What a guarded call returns when no sample satisfies the contract.

    `constant`: this JSON value. `template`: a JSON value whose strings may hold `{{ input.x }}`
    placeholders (jinja2), filled from the call's input.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    constant: Any = None
    template: Any = None

    @model_validator(mode="after")
    def _one_kind(self) -> Fallback:
        if (self.constant is None) == (self.template is None):
            raise ValueError("give exactly one of `constant` or `template`")
        return self

    @property
    def kind(self) -> str:
        return "constant" if self.constant is not None else "template"


class ClauseFailure(BaseModel):
    """One clause an output broke, and why."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    clause: str
    reason: str


class Contract(BaseModel):
    """The output contract of one call site."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,63}$")
    description: str = ""
    input_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    output_schema: dict[str, Any]
    clauses: dict[str, str] = Field(default_factory=dict)
    samples: int = Field(default=3, ge=1, le=20, description="K: model samples drawn before the fallback.")
    fallback: Fallback

    @field_validator("output_schema", "input_schema")
    @classmethod
    def _valid_schema(cls, schema: dict[str, Any]) -> dict[str, Any]:
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise ValueError(f"not a valid JSON schema: {exc.message}") from exc
        return schema

    @field_validator("clauses")
    @classmethod
    def _parsable(cls, clauses: dict[str, str]) -> dict[str, str]:
        for name, source in clauses.items():
            if name == SCHEMA_CLAUSE:
                raise ValueError(f"clause name {SCHEMA_CLAUSE!r} is reserved for the output schema")
            try:
                parse(source)
            except ExprError as exc:
                raise ValueError(f"clause {name!r}: {exc}") from exc
        return clauses

    @cached_property
    def parsed(self) -> dict[str, Expr]:
        return {name: parse(source) for name, source in self.clauses.items()}

    @cached_property
    def _output_validator(self) -> jsonschema.Draft202012Validator:
        return jsonschema.Draft202012Validator(self.output_schema)


class FallbackProof(BaseModel):
    """What is known about one contract's fallback: proven, only tested, or refuted by an input."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    contract: str
    status: Literal["proven", "tested", "refuted"]
    method: Literal["z3", "hypothesis"]
    clause: str | None = None
    """The clause (or `schema`) the counterexample breaks."""
    counterexample: Any = None
    """The input (a JSON value) the fallback fails on."""
    examples: int = 0
    """Inputs tried (hypothesis)."""
    detail: str = ""
    """One line: why the contract is outside the z3 fragment, or why the fallback fails."""


def check(contract: Contract, input: Any, output: Any) -> list[ClauseFailure]:
    """Every clause `output` breaks for `input` ([] means it satisfies the contract).

    The schema comes first; clauses are checked only on schema-valid outputs, since they are
    written against the schema's shape.
    """
    errors = sorted(contract._output_validator.iter_errors(output), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(top)"
        return [ClauseFailure(clause=SCHEMA_CLAUSE, reason=f"at {where}: {_short(first.message)}")]
    failures = []
    for name, expr in contract.parsed.items():
        holds, why = expr.evaluate(input, output)
        if not holds:
            failures.append(ClauseFailure(clause=name, reason=why or "is false"))
    return failures


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
