"""Contracts declared in an agent artifact: `contracts/<name>.yaml`, checked when the artifact loads.

Every contract's fallback goes through the prover (agents.contracts.prove): proven with Z3
in the decidable fragment, otherwise tested with hypothesis. A refuted fallback makes the
whole artifact fail to load, with the counterexample in the message, so an RC can never
ship a contract whose fallback breaks it.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import ValidationError

from ratchet.agents.contracts.model import Contract, FallbackProof
from ratchet.agents.errors import UserError, validation_message

CONTRACTS_DIR = "contracts"


def load_contracts(root: Path) -> tuple[dict[str, Contract], dict[str, FallbackProof]]:
    """The artifact's contracts by name and their fallbacks' proofs; UserError on any problem."""
    folder = root / CONTRACTS_DIR
    contracts: dict[str, Contract] = {}
    proofs: dict[str, FallbackProof] = {}
    if not folder.is_dir():
        return contracts, proofs
    for path in sorted(folder.glob("*.yaml")):
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise UserError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
        contract, proof = _checked(text, str(path))
        if contract.name != path.stem:
            raise UserError(f"{path}: field 'name': {contract.name!r} must match the file name {path.stem!r}")
        if proof.status == "refuted":
            from ratchet.agents.contracts.prove import describe

            raise UserError(f"{path}: {describe(proof)}; change the fallback or the clause")
        contracts[contract.name] = contract
        proofs[contract.name] = proof
    return contracts, proofs


@lru_cache(maxsize=128)
def _checked(text: str, where: str) -> tuple[Contract, FallbackProof]:
    """Parse and prove one contract file (cached by content: artifacts are loaded often)."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UserError(f"{where}: not valid YAML: {' '.join(str(exc).split())}") from exc
    if not isinstance(raw, dict):
        raise UserError(f"{where}: expected a mapping (name, output_schema, clauses, fallback, ...)")
    try:
        contract = Contract.model_validate(raw)
    except ValidationError as exc:
        raise UserError(f"{where}: {validation_message(exc)}") from exc
    from ratchet.agents.contracts.prove import (
        prove_fallback,
    )  # z3 and hypothesis load only for artifacts with contracts

    return contract, prove_fallback(contract)
