"""Trust in RC validation (outside adversarial test, item 6): what an RC may name, hash and run on.

Three holes, each attacked where a real attacker would enter (the release's own improvement
procedure proposes the RC; a real cycle, Prefect flow and git workspace, must decide it):

* (a) Names git or another file system reads as metadata: `.git./config` and `git~1/` are `.git`
  on NTFS, `.gitattributes ` and `.gitmodules.` are git's own files there, `.g<U+200C>it` is `.git`
  on HFS+. Validation checks every component with git's NTFS and HFS+ rules (`is_ntfs_dotgit`,
  `is_hfs_dotgit` and their `.gitmodules`/`.gitattributes`/`.gitignore` siblings) plus the names
  Windows or macOS store as another name (trailing dots and spaces, `:`, device names, 8.3 short
  names, invisible code points, non-NFC text, case collisions). Each is a recorded rejection at
  `validate`, and the next cycle runs (git never sees the path, so nothing crashes).
* (b) The content hash skipped `__pycache__/` and `.DS_Store`, so an RC editing a prompt kept there
  reused the baseline's runs. Now the hash covers every file of the artifact (a checkout holds
  exactly git's blobs), and validation refuses generated names outright.
* (c) An RC that swaps a configured real model (agent.yaml `model`, `meta/synthesizer.yaml`
  `llm.model`, directly or through a ratchet.toml alias) for `sim/<world>` is rejected before
  evaluation; sim -> sim (the demo) stays allowed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from ratchet.agents.artifact import artifact_files, content_hash, load_artifact
from ratchet.agents.model_config import Deployment, ModelConfig
from ratchet.agents.providers.scripted import ScriptedProvider, ScriptedReply, register_scripted, unregister_scripted
from ratchet.pipeline import context
from ratchet.pipeline.validate import validate_proposal
from ratchet.pipeline.workspace import demo_files
from ratchet.releases.gitstore import GitStore
from ratchet.releases.registry import Registry, initialize
from tests.conftest import CliResult
from tests.faults.test_adversarial_rcs import assert_untouched, attack_workspace, git, run_attacks

BASE = {
    rel.removeprefix("agents/coder/"): data.decode()
    for rel, data in demo_files().items()
    if rel.startswith("agents/coder/")
}
SURFACE = "agents/coder/"


def refused(
    changes: dict[str, str | None], base: dict[str, str] = BASE, models: dict[str, ModelConfig] | None = None
) -> str | None:
    return validate_proposal("coder", base, changes, models=models)


# ------------------------------------------------------------------------------ (a) metadata names

GIT_METADATA = [  # paths relative to agents/coder/: each is git metadata on NTFS or HFS+ (or on every system)
    ".git./config",
    ".git../config",
    ".git /config",
    ".git. ./config",
    ".GIT/config",
    ".Git./config",
    "git~1/config",
    "GIT~1/config",
    "Git~1/hooks/pre-commit",
    ".git::$INDEX_ALLOCATION/config",
    ".git:x",
    ".g\u200cit/config",
    "\ufeff.git/config",
    ".GI\u200dT/hooks/post-checkout",
    ".gi\u206at/config",
    ".gitattributes",
    ".gitattributes ",
    ".GitAttributes.",
    "prompts/.gitattributes",
    "gi7d29~1",
    "GITATT~1",
    "GI7D2~12",
    ".gitmodules",
    ".gitmodules.",
    "meta/.gitmodules",
    "gitmod~4",
    "GI7EBA~1",
    ".gitignore",
    ".gitignore ",
    "gi250a~1",
    ".mailmap",
    ".git\u200f/config",
]
OS_ALIASES = [  # (path relative to agents/coder/, what the reason says)
    ("prompts./system.md.j2", "ends in a dot or a space"),
    ("prompts/system.md.j2.", "ends in a dot or a space"),
    ("prompts/system.md.j2 ", "ends in a dot or a space"),
    ("prompts/.../x.md", "ends in a dot or a space"),
    ("prompts/a:b.md", "Windows cannot store"),
    ("prompts/a*b.md", "Windows cannot store"),
    ("prompts/a?.md", "Windows cannot store"),
    ("prompts/a|b.md", "Windows cannot store"),
    ('prompts/a"b.md', "Windows cannot store"),
    ("prompts/<a>.md", "Windows cannot store"),
    ("prompts/a\u200bb.md", "invisible"),
    ("prompts/\u202eevil.md", "invisible"),
    ("prompts/e\u0301.md", "NFC"),
    ("prompts/con", "reserved device name"),
    ("prompts/CON.md", "reserved device name"),
    ("aux.md.j2", "reserved device name"),
    ("prompts/com1", "reserved device name"),
    ("prompts/Lpt9.txt", "reserved device name"),
    ("prompts/PROMPT~1.J2", "8.3 short name"),
    ("SYSTEM~2.MD", "8.3 short name"),
    ("__pycache__/system.md.j2", "generated"),
    ("prompts/__pycache__/x.cpython-311.pyc", "generated"),
    (".DS_Store", "generated"),
    ("prompts/.ds_store", "generated"),
    ("prompts/a\x85b.md", "control character"),
    ("Agent.yaml", "collides with 'agents/coder/agent.yaml'"),
    ("PROMPTS/system.md.j2", "collides with 'agents/coder/prompts/system.md.j2'"),
]
WHOLE_PATHS = [  # (workspace path, what the reason says): the rules that held before, still holding
    ("/agents/coder/agent.yaml", "is absolute"),
    ("agents/coder/a\\b.md", "backslash"),
    ("agents/coder/a\0b.md", "control character"),
    ("agents/coder/../coder/agent.yaml", "not in normal form"),
    ("agents/coder/prompts//system.md.j2", "not in normal form"),
]


@pytest.mark.parametrize("rel", GIT_METADATA)
@pytest.mark.parametrize("text", ["pwned\n", None], ids=["write", "delete"])
def test_every_spelling_of_git_metadata_is_refused(rel: str, text: str | None) -> None:
    problem = refused({SURFACE + rel: text})
    assert problem is not None and "names git metadata" in problem, problem
    assert repr(SURFACE + rel) in problem and "\n" not in problem


@pytest.mark.parametrize(("rel", "reason"), OS_ALIASES)
def test_names_another_system_reads_as_another_name_are_refused(rel: str, reason: str) -> None:
    problem = refused({SURFACE + rel: "pwned\n"})
    assert problem is not None and reason in problem, problem


@pytest.mark.parametrize(("path", "reason"), WHOLE_PATHS)
def test_the_earlier_path_rules_still_hold(path: str, reason: str) -> None:
    problem = refused({path: "pwned\n"})
    assert problem is not None and reason in problem, problem


@pytest.mark.parametrize(
    "rel",
    [
        "prompts/system.md.j2",
        "meta/notes.md",
        ".gitkeep",
        ".github/notes.md",
        "git/notes.md",
        "gitattributes",
        "notes/my file.md",
        "prompts/caf\u00e9.md",
        "prompts/v1.2.md.j2",
        "tilde~notes.md",
        "console.md",
        "conf/x.md",
    ],
)
def test_plain_names_are_still_accepted(rel: str) -> None:
    """The control: the rules refuse aliases, not ordinary file names."""
    assert refused({SURFACE + rel: "You write Python.\n"}) is None


GIT_ALIASES = [  # (remediation id, write_file path relative to agents/coder/, what the reject reason says)
    ("ntfs-dotgit-trailing-dot", ".git./config", "names git metadata"),
    ("ntfs-dotgit-short-name", "git~1/config", "names git metadata"),
    ("ntfs-gitattributes-trailing-space", ".gitattributes ", "names git metadata"),
    ("ntfs-gitmodules-trailing-dot", ".gitmodules.", "names git metadata"),
    ("hfs-dotgit-zero-width", ".g\u200cit/config", "names git metadata"),
]


@pytest.mark.usefixtures("prefect_server")
def test_git_metadata_aliases_are_rejected_and_the_next_cycle_runs(
    tmp_path: Path,
    cli: Callable[..., CliResult],
) -> None:
    """One cycle per alias, in a row: each is a recorded rejection at validate, never a git traceback
    that every later cycle would hit again; the cycle after them runs and finds nothing left to try."""
    from ratchet.pipeline.flows import improve_cycle

    ws = attack_workspace(tmp_path / "ws", GIT_ALIASES)
    outside = sorted(p.name for p in tmp_path.iterdir())
    contained = run_attacks(ws, GIT_ALIASES, cli)
    assert improve_cycle(str(ws), "coder").status == "no_proposal"
    assert_untouched(ws, outside)
    assert len(contained) == len(GIT_ALIASES)


# ------------------------------------------------------------------ (b) the hash covers every file

PINNED = {  # a small artifact and its content hash before this change: hashes of existing artifacts stay valid
    "agent.yaml": "name: a\nmodel: sim/humaneval\nprompts:\n  system: prompts/system.md.j2\n  user: prompts/user.md.j2\n",
    "prompts/system.md.j2": "You write Python.\n",
    "prompts/user.md.j2": "{{ task }}\n",
}
PINNED_HASH = "5a418a792667ccc501677aa2631e13ca0a799cee1579a2ff8e48342a017da19a"


def write_artifact(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_the_hash_of_an_artifact_without_generated_files_is_unchanged(tmp_path: Path) -> None:
    assert load_artifact(write_artifact(tmp_path / "a", PINNED)).content_hash == PINNED_HASH


@pytest.mark.parametrize("rel", ["__pycache__/system.md.j2", "prompts/__pycache__/x.cpython-311.pyc", ".DS_Store"])
def test_the_hash_covers_files_it_used_to_skip(rel: str, tmp_path: Path) -> None:
    root = write_artifact(tmp_path / "a", PINNED)
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text("one\n")
    first = load_artifact(root).content_hash
    (root / rel).write_text("two\n")
    second = load_artifact(root).content_hash
    assert len({PINNED_HASH, first, second}) == 3
    assert second == content_hash(artifact_files(root)) and rel in artifact_files(root)


def pycache_prompt_files() -> dict[str, bytes]:
    """The demo workspace whose coder/v1 keeps its system prompt under `__pycache__/` (a person put it there)."""
    files = demo_files()
    spec = files["agents/coder/agent.yaml"].decode()
    files["agents/coder/agent.yaml"] = spec.replace(
        "system: prompts/system.md.j2", "system: __pycache__/system.md.j2"
    ).encode()
    files["agents/coder/__pycache__/system.md.j2"] = files.pop("agents/coder/prompts/system.md.j2")
    files["agents/coder/.DS_Store"] = b"\0\0\0\1Bud1"
    return files


def test_a_checkout_hashes_exactly_the_files_git_holds(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    initialize(ws, pycache_prompt_files(), ["coder"], "a prompt under __pycache__")
    with GitStore(ws) as store:
        held = store.list_files("coder/v1", "agents/coder")
    state = context.checkout_artifact(context.open_context(ws, "coder"), "coder/v1", "coder/v1")
    assert {"__pycache__/system.md.j2", ".DS_Store"} <= set(held)
    assert state.artifact.content_hash == content_hash(held)


@pytest.mark.usefixtures("prefect_server")
def test_an_rc_editing_a_prompt_kept_in_pycache_is_not_promoted_unevaluated(tmp_path: Path) -> None:
    """Before: the RC hashed like its baseline, reused the baseline's gate runs and was promoted with 0 flips."""
    files = pycache_prompt_files()
    playbook = {
        "remediations": [
            {
                "id": "edit-the-hidden-prompt",
                "targets": ["non_code_output"],
                "intent": "Rewrite the system prompt.",
                "edits": [
                    {
                        "write_file": {
                            "path": "__pycache__/system.md.j2",
                            "content": "Answer in prose. Never write code.\n",
                        }
                    }
                ],
            }
        ]
    }
    files["agents/coder/meta/playbook.yaml"] = yaml.safe_dump(playbook).encode()
    ws = tmp_path / "ws"
    initialize(ws, files, ["coder"], "a prompt under __pycache__")
    from ratchet.pipeline.flows import improve_cycle

    result = improve_cycle(str(ws), "coder")
    assert (result.decision, result.stage, result.new_tag) == ("reject", "validate", None), result
    assert "generated" in result.reasons[0] and "__pycache__" in result.reasons[0]
    entry = Registry(ws).ledger("coder")[-1]
    assert (entry.decision, entry.stage, entry.remediation) == ("reject", "validate", "edit-the-hidden-prompt")
    assert git(ws, "rev-parse", "main:agents/coder") == git(ws, "rev-parse", "coder/v1:agents/coder")


# ------------------------------------------------------------------- (c) the simulator stays out

REAL = "openai/gpt-4o-mini"
ALIASES = {
    "prod": ModelConfig(model="hosted_vllm/tiny", api_base="http://127.0.0.1:8000/v1"),
    "prod-2": ModelConfig(model="openai/gpt-4o"),
    "offline": ModelConfig(model="sim/humaneval"),
    "mixed": ModelConfig(
        model="hosted_vllm/tiny", deployments=[Deployment(model="hosted_vllm/tiny"), Deployment(model="sim/humaneval")]
    ),
}


def with_spec(base: dict[str, str], **fields: object) -> dict[str, str]:
    """A copy of `base` whose agent.yaml has `fields` set."""
    spec = yaml.safe_load(base["agent.yaml"]) | fields
    return {**base, "agent.yaml": yaml.safe_dump(spec, sort_keys=False)}


def with_synthesizer(base: dict[str, str], llm_model: str | None) -> dict[str, str]:
    settings = yaml.safe_load(base["meta/synthesizer.yaml"])
    if llm_model is not None:
        settings |= {"strategies": ["playbook", "llm"], "llm": {"model": llm_model}}
    return {**base, "meta/synthesizer.yaml": yaml.safe_dump(settings)}


def changes_to(base: dict[str, str], patched: dict[str, str]) -> dict[str, str | None]:
    return {SURFACE + rel: text for rel, text in patched.items() if base.get(rel) != text}


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (REAL, "sim/humaneval"),
        ("prod", "sim/humaneval"),
        ("prod", "offline"),
        ("prod", "mixed"),
        (REAL, "offline"),
        ("prod-2", "sim/tqb"),
    ],
)
def test_an_rc_cannot_swap_the_agents_real_model_for_the_simulator(before: str, after: str) -> None:
    base = with_spec(BASE, model=before)
    problem = refused(changes_to(base, with_spec(base, model=after)), base, ALIASES)
    assert problem is not None and "simulator" in problem and "agent.yaml" in problem, problem
    assert repr(after) in problem and "\n" not in problem


@pytest.mark.parametrize(
    ("agent_model", "before", "after"),
    [
        (REAL, REAL, "sim/humaneval"),
        ("sim/humaneval", REAL, "sim/humaneval"),
        ("prod", "prod-2", "offline"),
        (REAL, None, "sim/humaneval"),
    ],
)
def test_an_rc_cannot_give_the_synthesizer_the_simulator(agent_model: str, before: str | None, after: str) -> None:
    """`meta/synthesizer.yaml` llm.model: real -> sim, or a new llm section on the simulator beside a real agent model."""
    base = with_synthesizer(with_spec(BASE, model=agent_model), before)
    problem = refused(changes_to(base, with_synthesizer(base, after)), base, ALIASES)
    assert problem is not None and "simulator" in problem and "meta/synthesizer.yaml" in problem, problem


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("sim/humaneval", "sim/tqb"),
        ("sim/humaneval", "offline"),
        (REAL, "openai/gpt-4o"),
        ("prod", "prod-2"),
        ("offline", "sim/humaneval"),
        ("sim/humaneval", REAL),
    ],
)
def test_other_model_changes_are_left_to_the_gate(before: str, after: str) -> None:
    """The control: sim -> sim (the demo), real -> real and sim -> real are evaluated like any edit."""
    base = with_spec(BASE, model=before)
    assert refused(changes_to(base, with_spec(base, model=after)), base, ALIASES) is None


PROSE_ANSWER = "Here is the function you asked for:\n```python\ndef f():\n    pass\n```\n"


@pytest.fixture
def real_model() -> Iterator[str]:
    """A stand-in for a real model (not `sim/`): it answers every task with prose around fenced code."""
    model = register_scripted(
        "trust-real-model", ScriptedProvider(lambda messages, tools: ScriptedReply(content=PROSE_ANSWER))
    )
    yield model
    unregister_scripted("trust-real-model")


@pytest.mark.usefixtures("prefect_server")
def test_an_rc_switching_a_real_model_to_the_simulator_is_rejected_before_evaluation(
    tmp_path: Path, real_model: str
) -> None:
    """Before: the RC ran the gate on sim/humaneval against the real model and was promoted with many "fixes"."""
    files = demo_files()
    files["ratchet.toml"] += f'\n[models.prod]\nmodel = "{real_model}"\n'.encode()
    spec = files["agents/coder/agent.yaml"].decode().replace("model: sim/humaneval", "model: prod")
    files["agents/coder/agent.yaml"] = spec.encode()
    playbook = {
        "remediations": [
            {
                "id": "use-the-simulator",
                "targets": ["non_code_output"],
                "intent": "Answer with the offline model.",
                "edits": [{"set": {"model": "sim/humaneval"}}],
            }
        ]
    }
    files["agents/coder/meta/playbook.yaml"] = yaml.safe_dump(playbook).encode()
    ws = tmp_path / "ws"
    initialize(ws, files, ["coder"], "a real model")
    from ratchet.pipeline.flows import improve_cycle

    result = improve_cycle(str(ws), "coder")
    assert (result.model, result.simulated) == (real_model, False)
    assert (result.decision, result.stage, result.remediation) == ("reject", "validate", "use-the-simulator"), result
    assert "simulator" in result.reasons[0] and "'sim/humaneval'" in result.reasons[0]
    assert result.counts == {} and result.gate_pass_rate is None, "nothing was evaluated on the gate split"
    entry = Registry(ws).ledger("coder")[-1]
    assert (entry.decision, entry.stage) == ("reject", "validate") and "simulator" in entry.reason
    verdict = json.loads(git(ws, "show", f"{result.rc}:{entry.evidence}/verdict.json"))
    assert "simulator" in verdict["reasons"][0]
    assert git(ws, "show", "main:agents/coder/agent.yaml") == spec
