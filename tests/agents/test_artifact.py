"""Agent artifacts: the demo loads, the content hash tracks every file, bad specs fail in one line."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

from ratchet.agents.artifact import AgentSpec, artifact_files, content_hash, load_artifact
from ratchet.agents.errors import UserError
from ratchet.pipeline.workspace import DEMO

DEMO_AGENT = DEMO / "agents" / "coder"


@pytest.fixture
def coder(tmp_path: Path) -> Path:
    """A private copy of the demo artifact `coder`."""
    target = tmp_path / "agents" / "coder"
    shutil.copytree(DEMO_AGENT, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def _edit_spec(root: Path, **fields: object) -> None:
    spec = yaml.safe_load((root / "agent.yaml").read_text())
    for key, value in fields.items():
        if value is None:
            spec.pop(key, None)
        else:
            spec[key] = value
    (root / "agent.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))


def _load_error(root: Path) -> str:
    with pytest.raises(UserError) as info:
        load_artifact(root)
    message = str(info.value)
    assert "\n" not in message, message
    return message


# --------------------------------------------------------------------------- the demo artifact


def test_demo_artifact_loads_and_renders(coder: Path) -> None:
    artifact = load_artifact(coder)
    assert isinstance(artifact.spec, AgentSpec)
    assert artifact.spec.name == "coder"
    assert artifact.spec.model == "sim/humaneval"
    assert artifact.spec.max_turns >= 1
    assert set(artifact.templates) == {"system", "user"}
    system = artifact.render("system", task_id="HumanEval/0")
    assert all(line in system for line in artifact.spec.instructions)
    user = artifact.render("user", task_id="HumanEval/0", task_input="def f(x):\n    '''Return x.'''\n")
    assert "def f(x):" in user and "Return x." in user


def test_content_hash_is_stable_and_independent_of_location(coder: Path, tmp_path: Path) -> None:
    first = load_artifact(coder).content_hash
    assert load_artifact(coder).content_hash == first
    elsewhere = tmp_path / "elsewhere" / "coder"
    shutil.copytree(coder, elsewhere)
    assert load_artifact(elsewhere).content_hash == first
    assert content_hash(artifact_files(coder)) == first
    assert len(first) == 64 and int(first, 16) >= 0


@pytest.mark.parametrize(
    "relative",
    ["agent.yaml", "prompts/system.md.j2", "prompts/user.md.j2", "meta/playbook.yaml", "meta/synthesizer.yaml"],
)
def test_content_hash_changes_when_any_file_changes(coder: Path, relative: str) -> None:
    before = load_artifact(coder).content_hash
    path = coder / relative
    assert path.is_file(), f"the demo artifact should have {relative}"
    path.write_text(path.read_text() + "\n# edited\n")
    assert load_artifact(coder).content_hash != before


def test_content_hash_changes_when_a_file_is_added_renamed_or_removed(coder: Path) -> None:
    seen = {load_artifact(coder).content_hash}
    (coder / "meta" / "notes.md").write_text("a note\n")
    seen.add(load_artifact(coder).content_hash)
    (coder / "meta" / "notes.md").rename(coder / "meta" / "notes2.md")
    seen.add(load_artifact(coder).content_hash)
    (coder / "meta" / "notes2.md").unlink()
    assert load_artifact(coder).content_hash in seen  # back to the original content
    assert len(seen) == 3


def test_content_hash_covers_pycache(coder: Path) -> None:
    # the gate evaluates exactly what it promotes: a file the hash skipped could change unseen
    before = load_artifact(coder).content_hash
    (coder / "meta" / "__pycache__").mkdir()
    (coder / "meta" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0junk")
    assert load_artifact(coder).content_hash != before


def test_content_hash_separates_path_from_content() -> None:
    # (path, length, bytes) framing: moving bytes between name and content must change the hash
    assert content_hash({"ab": b"c"}) != content_hash({"a": b"bc"})
    assert content_hash({"a": b"x", "b": b""}) != content_hash({"a": b"", "b": b"x"})


# --------------------------------------------------------------------------- invalid agent.yaml


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"max_turns": 0}, "max_turns"),
        ({"max_turns": "many"}, "max_turns"),
        ({"colour": "red"}, "colour"),
        ({"model": None}, "model"),
        ({"model": ""}, "model"),
        ({"name": "Not A Name"}, "name"),
        ({"model_params": {"temperature": 5}}, "model_params.temperature"),
        ({"model_params": {"top_k": 3}}, "model_params.top_k"),
        ({"prompts": {"system": "prompts/system.md.j2"}}, "prompts.user"),
        ({"tools": "python"}, "tools"),
    ],
)
def test_invalid_field_is_one_line_naming_file_and_field(coder: Path, fields: dict[str, object], field: str) -> None:
    _edit_spec(coder, **fields)
    message = _load_error(coder)
    assert message.startswith(f"{coder / 'agent.yaml'}: ")
    assert f"field '{field}'" in message


def test_bad_yaml_names_the_file_and_the_line(coder: Path) -> None:
    (coder / "agent.yaml").write_text("name: coder\nmodel: [sim/humaneval\nmax_turns: 3\n")
    message = _load_error(coder)
    assert message.startswith(f"{coder / 'agent.yaml'}: not valid YAML")
    assert "line " in message


@pytest.mark.parametrize("text", ["- name\n- model\n", "", "just a string\n"])
def test_yaml_that_is_not_a_mapping(coder: Path, text: str) -> None:
    (coder / "agent.yaml").write_text(text)
    message = _load_error(coder)
    assert message.startswith(f"{coder / 'agent.yaml'}: ") and "mapping" in message


def test_missing_agent_yaml(tmp_path: Path) -> None:
    message = _load_error(tmp_path)
    assert str(tmp_path / "agent.yaml") in message


def test_missing_template_file(coder: Path) -> None:
    _edit_spec(coder, prompts={"system": "prompts/system.md.j2", "user": "prompts/missing.md.j2"})
    message = _load_error(coder)
    assert message.startswith(f"{coder / 'agent.yaml'}: field 'prompts'")
    assert "prompts/missing.md.j2" in message


def test_template_syntax_error_names_template_and_line(coder: Path) -> None:
    (coder / "prompts" / "system.md.j2").write_text("line one\n{% if instructions %}\nline three\n{% endfor %}\n")
    message = _load_error(coder)
    assert message.startswith(f"{coder / 'prompts' / 'system.md.j2'}: line 4: template syntax error")


@pytest.mark.parametrize("escape", ["../outside.md.j2", "../../../etc/passwd", "/etc/passwd"])
def test_prompt_path_outside_the_folder(coder: Path, escape: str) -> None:
    (coder.parent / "outside.md.j2").write_text("outside\n")
    _edit_spec(coder, prompts={"system": "prompts/system.md.j2", "user": escape})
    message = _load_error(coder)
    assert message.startswith(f"{coder / 'agent.yaml'}: field 'prompts'")
    assert "outside the artifact folder" in message


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_prompt_symlink_outside_the_folder(coder: Path) -> None:
    secret = coder.parent / "secret.txt"
    secret.write_text("not a prompt\n")
    (coder / "prompts" / "link.md.j2").symlink_to(secret)
    _edit_spec(coder, prompts={"system": "prompts/system.md.j2", "user": "prompts/link.md.j2"})
    assert "outside the artifact folder" in _load_error(coder)


def test_template_that_is_not_utf8_is_a_user_error(coder: Path) -> None:
    (coder / "prompts" / "system.md.j2").write_bytes(b"\xff\xfe not utf-8")
    message = _load_error(coder)
    assert str(coder / "prompts" / "system.md.j2") in message


def test_render_with_an_undefined_variable_names_the_template(coder: Path) -> None:
    (coder / "prompts" / "user.md.j2").write_text("{{ task_input }} and {{ no_such_variable }}\n")
    artifact = load_artifact(coder)
    with pytest.raises(UserError) as info:
        artifact.render("user", task_id="t", task_input="x")
    assert str(coder / "prompts" / "user.md.j2") in str(info.value)
    assert "no_such_variable" in str(info.value)


WRONG_FALLBACK = """\
name: budget
input_schema:
  type: object
  properties: {limit: {type: integer, minimum: 0, maximum: 1000}, task: {type: string}}
  required: [limit, task]
output_schema:
  type: object
  properties: {steps: {type: integer}, note: {type: string}}
  required: [steps, note]
clauses:
  within_budget: output.steps <= input.limit
  mentions_task: input.task in output.note
fallback:
  template: {steps: 3, note: "no plan for {{ input.task }}"}
"""


def test_an_artifact_whose_fallback_is_refuted_does_not_load(workspace: Path) -> None:
    root = workspace / "agents/coder"
    (root / "contracts").mkdir()
    (root / "contracts/budget.yaml").write_text(WRONG_FALLBACK)
    with pytest.raises(UserError) as info:
        load_artifact(root)
    message = str(info.value)
    assert "contracts/budget.yaml" in message and "within_budget" in message and "z3 counterexample" in message
    assert '"limit": ' in message and "\n" not in message
    limit = int(message.split('"limit": ')[1].split(",")[0].split("}")[0])
    assert limit < 3, "the counterexample really breaks the clause"

    (root / "contracts/budget.yaml").write_text(WRONG_FALLBACK.replace("steps: 3,", "steps: 0,"))
    artifact = load_artifact(root)
    assert artifact.proofs["budget"].status == "proven" and artifact.proofs["budget"].method == "z3"
    assert set(artifact.contracts["budget"].clauses) == {"within_budget", "mentions_task"}


def test_a_contract_outside_the_fragment_is_tested_and_a_bad_one_named(workspace: Path) -> None:
    root = workspace / "agents/coder"
    (root / "contracts").mkdir()
    regex = WRONG_FALLBACK.replace("steps: 3,", "steps: 0,").replace(
        "mentions_task: input.task in output.note", 'mentions_task: matches(output.note, "(?s)no plan for .*")'
    )
    (root / "contracts/budget.yaml").write_text(regex)
    proof = load_artifact(root).proofs["budget"]  # (without (?s), hypothesis finds a task with a newline)
    assert proof.status == "tested" and proof.method == "hypothesis" and proof.examples > 0
    (root / "contracts/budget.yaml").write_text(regex.replace("output.steps <= input.limit", "open('x')"))
    with pytest.raises(UserError, match=r"contracts/budget.yaml: .*clause 'within_budget'.*unknown function"):
        load_artifact(root)
    (root / "contracts/budget.yaml").write_text(regex.replace("name: budget", "name: other"))
    with pytest.raises(UserError, match="must match the file name"):
        load_artifact(root)
