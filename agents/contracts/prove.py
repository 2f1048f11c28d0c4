"""Verified fallbacks: prove at load time that a contract's fallback satisfies it for every input.

A guarded call returns its fallback when no model sample satisfies the contract, so the
fallback must satisfy the contract itself, for every input that matches `input_schema`.

    z3          when the contract is in a decidable fragment (typed input fields: strings,
                integers, booleans; a constant fallback or a template of literal text and
                `{{ input.x }}` placeholders; clauses over equality, integer order and linear
                arithmetic, finite membership, substrings, len, prefixes and suffixes, and
                quantifiers over statically known lists), each clause is proven for all
                inputs or refuted by a counterexample that is re-checked with `check`.
    hypothesis  otherwise: inputs generated from `input_schema`, so the fallback is tested,
                not proven, or refuted by a shrunk counterexample.

Soundness comes first: anything the translation is unsure of leaves the fragment, input schema
keywords it does not model only make it prove more than needed, and a z3 counterexample that
does not really break the contract (or does not match the input schema) is never reported.
"""

from __future__ import annotations

import json

from ratchet.agents.contracts.hypothesis_check import check_with_hypothesis
from ratchet.agents.contracts.model import Contract, FallbackProof
from ratchet.agents.contracts.z3_proof import OutsideFragment, prove_with_z3

__all__ = ["FallbackProof", "describe", "prove_fallback"]


def prove_fallback(contract: Contract, examples: int = 200) -> FallbackProof:
    """Prove the fallback with z3 when the contract is in the fragment, else test it with hypothesis."""
    try:
        return prove_with_z3(contract)
    except OutsideFragment as exc:
        return check_with_hypothesis(contract, examples, str(exc))


def describe(proof: FallbackProof) -> str:
    """One line for users."""
    head = f"contract {proof.contract!r}: fallback"
    if proof.status == "proven":
        return f"{head} proven for every input (z3)"
    if proof.status == "tested":
        return f"{head} tested on {proof.examples} inputs, not proven (hypothesis: {proof.detail})"
    shown = json.dumps(proof.counterexample, ensure_ascii=False)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return f"{head} breaks clause {proof.clause!r} for input {shown} ({proof.method} counterexample)"
