"""Bad bytes (trust issue, item 7): text that is not Unicode, from a suite or from a model.

A lone UTF-16 surrogate (`"\\ud800"`) is valid JSON text but no Unicode character: UTF-8 cannot
encode it, so every record that holds one (a suite hash, a trace, a run-store line, evidence in
git) breaks when written. Two sources, two answers:

* Suite text (a task's input, expected answer, test code, any field or key) is the user's input:
  `ratchet eval` exits 2 with one line naming the task file, the line (or YAML item) and the field,
  and writes nothing (the bad-input corpus's `ErrorCase`, run by its `run_corpus`).
* A model's reply (its text, a tool call's name or arguments, even when the arguments only decode
  to a surrogate) is odd model output: a recorded failed run with error type `InvalidModelOutput`,
  never a crash. The verifier never sees an altered answer; the stored reply keeps the bad code
  points escaped (`\\ud800` as text). What code the model wrote prints or raises (a tool's result, a
  verifier's message) and backend metadata (a finish_reason) are not what the model said: kept
  escaped, and the run goes on. The replies come from a real OpenAI-compatible server on
  127.0.0.1 (`tests/agents/openai_stub.py`), through both transports (the lean openai-http one and
  litellm), in real `ratchet eval` processes; the run store is read back and a second `eval`
  resumes from it. NUL characters are text like any other (stored, compared, refused by the
  compiler); raw bytes that are not UTF-8 (or a raw NUL) are not JSON, so the transport cannot
  deliver them as a reply: a backend fault (exit 3, one line), like any malformed body.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.agents.openai_stub import StubServer, completion
from tests.faults.test_bad_inputs import (
    AGENT,
    CLI_TIMEOUT_S,
    EVAL,
    ROOT,
    CaseResult,
    ErrorCase,
    chain,
    cli_env,
    commit_all,
    fresh_workspace,
    git,
    own_suite,
    run_corpus,
    state,
    write,
)

# ---- suite text: exit 2, file, line and field, nothing written ----------------------------------


def escaped_line(task_id: str, text: str = "Say yes.", expected: str = "yes", **verifier: Any) -> bytes:
    """One task as a JSONL line with every non-ASCII character as a JSON escape (so `\\ud800` can be written)."""
    spec = verifier or {"type": "exact_match", "expected": [expected]}
    return json.dumps({"id": task_id, "input": text, "verifier": spec}).encode() + b"\n"


GOOD = escaped_line("t1")
TASKS = "suites/mine/tasks.jsonl"
SURROGATE_CASES = [  # through the CLI: a real `ratchet eval` process each
    ErrorCase(
        "suite-input-high-surrogate",
        "a lone high surrogate in a task's input: exit 2, file, line, field",
        own_suite(GOOD + escaped_line("t2", text="Say \ud800 no.")),
        EVAL,
        2,
        (f"{TASKS} line 2", "field 'input'", "U+D800", "character 5"),
    ),
    ErrorCase(
        "suite-expected-surrogate",
        "a lone surrogate in an expected answer: exit 2, file, line, field",
        own_suite(escaped_line("t1", expected="y\ud800s") + escaped_line("t2")),
        EVAL,
        2,
        (f"{TASKS} line 1", "field 'verifier.expected.0'", "U+D800"),
    ),
    ErrorCase(
        "suite-yaml-surrogate",
        "a `\\ud800` escape in a YAML task file: exit 2, file, item, field",
        own_suite(
            b'- id: t1\n  input: "Say \\ud800."\n  verifier: {type: exact_match, expected: ["yes"]}\n'
            b'- id: t2\n  input: Say no.\n  verifier: {type: exact_match, expected: ["no"]}\n',
            source="tasks.yaml",
        ),
        EVAL,
        2,
        ("suites/mine/tasks.yaml item 1", "field 'input'", "U+D800"),
    ),
]
LOADER_CASES = [  # through `load_task_file` (what the CLI calls): line 2 of a file, and what the error must say
    ("input-low-surrogate", escaped_line("t2", text="\udfff"), ("field 'input'", "U+DFFF", "character 1")),
    ("input-reversed-pair", escaped_line("t2", text="no \udc00\ud800"), ("field 'input'", "U+DC00", "character 4")),
    (
        "test-code-surrogate",
        escaped_line("t2", type="python_tests", entry_point="f", test="def check(c):\n    assert c() == '\udbff'\n"),
        ("field 'verifier.test'", "U+DBFF"),
    ),
    ("id-surrogate", escaped_line("t\ud800"), ("field 'id'", "U+D800")),
    (
        "metadata-key-surrogate",
        escaped_line("t2").replace(b'"id"', b'"metadata": {"\\ud800": "x"}, "id"'),
        ("field 'metadata'", "a key", "U+D800"),
    ),
    (
        "rubric-surrogate",
        escaped_line("t2").replace(b'"id"', b'"rubric": "\\udfff", "id"'),
        ("field 'rubric'", "U+DFFF"),
    ),
]


@pytest.fixture(scope="module")
def suite_results(demo_template: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, CaseResult]:
    return run_corpus(list(SURROGATE_CASES), demo_template, tmp_path_factory.mktemp("bad-bytes-suite"), None)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("case", [pytest.param(case, id=case.name) for case in SURROGATE_CASES])
def test_surrogates_in_suite_text_are_a_one_line_user_error(
    case: ErrorCase, suite_results: dict[str, CaseResult]
) -> None:
    result = suite_results[case.name]
    assert not result.problems and not result.known, "\n".join(result.problems + result.known)


@pytest.mark.parametrize(("line", "says"), [pytest.param(line, says, id=name) for name, line, says in LOADER_CASES])
def test_surrogates_anywhere_in_a_task_name_file_line_and_field(
    line: bytes, says: tuple[str, ...], tmp_path: Path
) -> None:
    from ratchet.agents.errors import UserError
    from ratchet.gates.suite import load_task_file

    tasks_file = tmp_path / "tasks.jsonl"
    tasks_file.write_bytes(GOOD + line)
    with pytest.raises(UserError) as raised:
        load_task_file(tasks_file, "suites/mine/tasks.jsonl")
    message = str(raised.value)
    assert message.startswith("suites/mine/tasks.jsonl line 2: ") and "\n" not in message, message
    assert all(part in message for part in says), message
    message.encode("utf-8")  # the error itself is printable


def test_a_valid_surrogate_pair_escape_is_a_character(tmp_path: Path) -> None:
    """`\\ud83d\\ude00` in JSON is one character (U+1F600): the suite loads, and hashes."""
    from ratchet.gates.suite import Suite, load_task_file
    from ratchet.gates.task import ExactMatchVerifier

    tasks_file = tmp_path / "tasks.jsonl"
    tasks_file.write_bytes(escaped_line("smile", text="Say \U0001f600.", expected="\U0001f600"))
    assert b"\\ud83d\\ude00" in tasks_file.read_bytes()
    tasks = load_task_file(tasks_file)
    verifier = tasks[0].verifier
    assert tasks[0].input == "Say \U0001f600." and isinstance(verifier, ExactMatchVerifier)
    assert verifier.expected == ["\U0001f600"]
    assert len(Suite(name="s", tasks={"smile": tasks[0]}, splits={"dev": ["smile"]}).content_hash()) == 64


# ---- model replies: a recorded failed run, never a crash ------------------------------------------

Reply = Callable[[dict[str, Any]], web.StreamResponse | dict[str, Any]]


def reply(content: str | None, finish_reason: str = "stop") -> dict[str, Any]:
    """A completion holding `content` as the server's JSON sends it (non-ASCII as `\\uXXXX` escapes)."""
    body = completion(content or "")
    body["choices"][0]["message"]["content"] = content
    body["choices"][0]["finish_reason"] = finish_reason
    return body


def tool_call(name: str, arguments: str) -> dict[str, Any]:
    """A completion asking for one tool call with the raw `arguments` text."""
    body = reply(None, "tool_calls")
    body["choices"][0]["message"]["tool_calls"] = [
        {"id": "call_1", "type": "function", "function": {"name": name, "arguments": arguments}}
    ]
    return body


def then_yes(first: dict[str, Any]) -> Reply:
    """`first` on the opening turn, "yes" once a tool has answered."""
    return lambda body: reply("yes") if body["messages"][-1]["role"] == "tool" else first


def raw(data: bytes) -> Reply:
    """A 200 whose body is `data` exactly (bytes the JSON encoder would never write)."""
    return lambda body: web.Response(status=200, body=data, content_type="application/json")


@dataclass(frozen=True)
class ReplyCase:
    """A task whose model reply is `answer`; its stored run must end with `outcome` (an error type or "pass")."""

    name: str
    expectation: str
    answer: Reply
    outcome: str
    task: dict[str, Any] | None = None  # the verifier; default: exact match of "yes"


RAISE_SURROGATE = "def f():\n    raise ValueError('bad ' + chr(0xD800))\n"
REPLY_CASES = [
    ReplyCase(
        "content-high-surrogate",
        "a lone high surrogate in the reply's text",
        lambda body: reply("ye\ud800s"),
        "InvalidModelOutput",
    ),
    ReplyCase(
        "content-low-surrogate",
        "a lone low surrogate in the reply's text",
        lambda body: reply("\udfff"),
        "InvalidModelOutput",
    ),
    ReplyCase(
        "content-reversed-pair",
        "a reversed surrogate pair in the reply's text",
        lambda body: reply("yes \udc00\ud800"),
        "InvalidModelOutput",
    ),
    ReplyCase(
        "content-valid-pair",
        "control: a well-formed pair is one character, and the right answer",
        lambda body: reply("\U0001f600"),
        "pass",
        {"type": "exact_match", "expected": ["\U0001f600"]},
    ),
    ReplyCase(
        "content-nul",
        "a NUL character in the text: a plain wrong answer, stored",
        lambda body: reply("yes\x00"),
        "WrongAnswer",
    ),
    ReplyCase(
        "content-nul-code",
        "a NUL in code: the compiler refuses it, a recorded SyntaxError",
        lambda body: reply("def f():\n    return 1\x00\n"),
        "SyntaxError",
        {"type": "python_tests", "test": "def check(c):\n    assert c() == 1\n", "entry_point": "f"},
    ),
    ReplyCase(
        "finish-reason-surrogate",
        "a lone surrogate in the finish_reason (metadata, not what the model said): "
        "the right answer, its record stored escaped",
        lambda body: reply("yes", "st\ud800op"),
        "pass",
    ),
    ReplyCase(
        "tool-args-surrogate",
        "a lone surrogate in a tool call's arguments text",
        then_yes(tool_call("python", json.dumps({"code": "x = 1"}).replace("1", "'\ud800'"))),
        "InvalidModelOutput",
    ),
    ReplyCase(
        "tool-args-escaped-surrogate",
        "tool arguments that are ASCII but decode to a lone surrogate",
        then_yes(tool_call("python", '{"code": "x = \'\\ud800\'"}')),
        "InvalidModelOutput",
    ),
    ReplyCase(
        "tool-name-surrogate",
        "a lone surrogate in a tool call's name",
        then_yes(tool_call("pyth\udc00on", "{}")),
        "InvalidModelOutput",
    ),
    ReplyCase(
        "tool-args-nul",
        "a NUL in tool code: the tool reports the error, the run goes on",
        then_yes(tool_call("python", json.dumps({"code": "x = 1\x00"}))),
        "pass",
    ),
    ReplyCase(
        "tool-result-surrogate",
        "code whose error message holds a surrogate: the tool's answer escaped",
        then_yes(tool_call("python", json.dumps({"code": "raise ValueError(chr(0xD800))"}))),
        "pass",
    ),
    ReplyCase(
        "answer-raises-surrogate",
        "an answer whose error message holds a surrogate: a recorded failure",
        lambda body: reply(RAISE_SURROGATE),
        "ValueError",
        {"type": "python_tests", "test": "def check(c):\n    c()\n", "entry_point": "f"},
    ),
]
RAW_CASES = [
    ReplyCase(
        "raw-invalid-utf8",
        "a 200 whose JSON holds bytes that are not UTF-8: a backend fault",
        raw(b'{"choices": [{"message": {"role": "assistant", "content": "ye\xffs"}, "finish_reason": "stop"}]}'),
        "ModelBackendError",
    ),
    ReplyCase(
        "raw-nul-byte",
        "a 200 whose JSON string holds a raw NUL byte: a backend fault",
        raw(b'{"choices": [{"message": {"role": "assistant", "content": "ye\x00s"}, "finish_reason": "stop"}]}'),
        "ModelBackendError",
    ),
]
TRANSPORTS = {"lean": "openai-http", "viallm": "litellm"}  # model alias -> ModelConfig.transport
KEY_ENV, KEY_VALUE = "BAD_BYTES_API_KEY", "bad-bytes-test-key"


def route(cases: list[ReplyCase]) -> Callable[[int, dict[str, Any]], web.StreamResponse | dict[str, Any]]:
    """The stub's behaviour: the task named in the user message picks the answer."""

    def answer(number: int, body: dict[str, Any]) -> web.StreamResponse | dict[str, Any]:
        for case in cases:
            if f"case:{case.name}." in body["messages"][1]["content"]:
                return case.answer(body)
        return reply("no such case")

    return answer


def bytes_workspace(template: Path, folder: Path, api_base: str) -> Path:
    """The demo with suite `bytes` (reply cases in dev, raw cases in gate), two model aliases on the stub,
    and `rc/coder/2`: the release with the python tool enabled."""
    lines = [
        json.dumps(
            {
                "id": case.name,
                "input": f"case:{case.name}.",
                "verifier": case.task or {"type": "exact_match", "expected": ["yes"]},
            }
        ).encode()
        + b"\n"
        for case in [*REPLY_CASES, *RAW_CASES]
    ]
    splits = {"dev": [c.name for c in REPLY_CASES], "gate": [c.name for c in RAW_CASES], "holdout": []}
    models = "".join(
        f'\n[models.{alias}]\nmodel = "hosted_vllm/tiny-{alias}"\napi_base = "{api_base}"\n'
        f'api_key_env = "{KEY_ENV}"\ntransport = "{transport}"\ntimeout_s = 10\nretries = 0\n'
        for alias, transport in TRANSPORTS.items()
    )
    ws = fresh_workspace(template, folder)
    chain(
        own_suite(b"".join(lines), splits=json.dumps(splits).encode()),
        lambda ws: (ws / "ratchet.toml").write_text((ws / "ratchet.toml").read_text() + models),
    )(ws)
    commit_all(ws, "suite bytes, models on the stub")
    git(ws, "checkout", "-q", "-b", f"rc/{AGENT}/2")
    write(
        f"agents/{AGENT}/agent.yaml",
        (ws / f"agents/{AGENT}/agent.yaml").read_bytes().replace(b"tools: []", b"tools: [python]"),
    )(ws)
    commit_all(ws, "rc: the python tool")
    git(ws, "checkout", "-q", "main")
    return ws


def ratchet_eval(ws: Path, alias: str, split: str) -> tuple[int, str]:
    """One `ratchet eval rc/coder/2` process: exit code, stdout and stderr."""
    command = [
        sys.executable,
        "-m",
        "ratchet.pipeline.cli",
        "eval",
        f"rc/{AGENT}/2",
        "--split",
        split,
        "--model",
        alias,
        "--workspace",
        str(ws),
    ]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=CLI_TIMEOUT_S,
        env={**cli_env(None), KEY_ENV: KEY_VALUE},
    )
    return done.returncode, done.stdout + done.stderr


def stored_outcomes(ws: Path) -> dict[str, dict[str, tuple[str, str]]]:
    """Every run the store holds, read back with the store's own reader: file -> task -> (outcome, message)."""
    from ratchet.gates.run_store import RunRecord

    found: dict[str, dict[str, tuple[str, str]]] = {}
    for path in sorted((ws / ".ratchet" / "runs").glob("*.jsonl")):
        for line in path.read_bytes().splitlines():
            record = RunRecord.model_validate_json(line)
            kind = "pass" if record.outcome.passed else str(record.outcome.error_type)
            found.setdefault(path.name, {})[record.task_id] = (kind, record.outcome.message)
    return found


@dataclass
class ReplyRuns:
    """What the `eval` processes against the stub printed and stored."""

    workspace: Path
    runs: dict[str, tuple[int, str]]  # "<alias>/<split>[/again]" -> (exit code, output)
    stored: dict[str, dict[str, tuple[str, str]]]


@pytest.fixture(scope="module")
def reply_runs(demo_template: Path, tmp_path_factory: pytest.TempPathFactory) -> ReplyRuns:
    """Both transports evaluate the reply cases at once; then, at once, the lean one again (it must resume,
    writing nothing) and both on the raw cases (a backend fault: nothing written either)."""
    server = StubServer(route([*REPLY_CASES, *RAW_CASES])).start()
    try:
        ws = bytes_workspace(demo_template, tmp_path_factory.mktemp("bad-bytes-replies"), server.base_url)
        first = {f"{alias}/dev": (alias, "dev") for alias in TRANSPORTS}
        runs = evals_at_once(ws, first)
        before = state(ws)["runs"]
        runs |= evals_at_once(
            ws, {"lean/dev/again": ("lean", "dev"), **{f"{alias}/gate": (alias, "gate") for alias in TRANSPORTS}}
        )
        runs["unchanged-runs"] = (0, repr(state(ws)["runs"] == before))
        return ReplyRuns(ws, runs, stored_outcomes(ws))
    finally:
        server.stop()


def evals_at_once(ws: Path, evals: dict[str, tuple[str, str]]) -> dict[str, tuple[int, str]]:
    """`ratchet eval` processes side by side: label -> (model alias, split); their (exit code, output) by label."""
    with ThreadPoolExecutor(len(evals)) as pool:
        futures = {label: pool.submit(ratchet_eval, ws, alias, split) for label, (alias, split) in evals.items()}
        return {label: future.result() for label, future in futures.items()}


def no_traceback(code: int, output: str, expected_code: int) -> None:
    assert "Traceback" not in output, output[-3000:]
    assert code == expected_code, f"exit {code}, expected {expected_code}: {output[-3000:]}"


@pytest.mark.timeout(600)
@pytest.mark.parametrize("alias", list(TRANSPORTS))
def test_odd_replies_end_an_eval_like_any_failed_task(alias: str, reply_runs: ReplyRuns) -> None:
    code, output = reply_runs.runs[f"{alias}/dev"]
    no_traceback(code, output, 0)
    passes = sum(case.outcome == "pass" for case in REPLY_CASES)
    assert f"{passes}/{len(REPLY_CASES)} passed" in output, output[-3000:]
    assert "InvalidModelOutput" in output  # the failures table


@pytest.mark.timeout(600)
@pytest.mark.parametrize("case", [pytest.param(case, id=case.name) for case in REPLY_CASES])
def test_each_odd_reply_is_a_stored_run(case: ReplyCase, reply_runs: ReplyRuns) -> None:
    """Stored by each transport, read back by the store's reader, with the expected outcome."""
    outcomes = {name: runs[case.name] for name, runs in reply_runs.stored.items() if case.name in runs}
    assert len(outcomes) == len(TRANSPORTS), f"one run-store file per transport: {list(reply_runs.stored)}"
    assert {kind for kind, _ in outcomes.values()} == {case.outcome}, f"{case.name}: stored {outcomes}"
    for kind, message in outcomes.values():
        if kind == "InvalidModelOutput":
            assert "surrogate" in message and "U+D" in message, message


@pytest.mark.timeout(600)
def test_a_second_eval_resumes_from_the_stored_odd_runs(reply_runs: ReplyRuns) -> None:
    code, output = reply_runs.runs["lean/dev/again"]
    no_traceback(code, output, 0)
    assert f"{len(REPLY_CASES)} run(s) reused from the run store" in output, output[-3000:]


@pytest.mark.timeout(600)
@pytest.mark.parametrize("alias", list(TRANSPORTS))
def test_raw_bytes_that_are_not_utf8_json_are_a_backend_fault(alias: str, reply_runs: ReplyRuns) -> None:
    """Not UTF-8, or a raw NUL inside a JSON string: not JSON, so not a reply; one line, exit 3, nothing stored."""
    code, output = reply_runs.runs[f"{alias}/gate"]
    no_traceback(code, output, 3)
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "hosted_vllm/tiny" in lines[0], output[-3000:]
    assert reply_runs.runs["unchanged-runs"] == (0, "True")  # (the lean resume wrote nothing either)


# ---- the layers, in-process ------------------------------------------------------------------------


def test_the_verifier_refuses_an_answer_that_is_not_unicode_text() -> None:
    """Neither compared nor run: the answer as the model gave it, refused with its first surrogate named."""
    from ratchet.gates.task import ExactMatchVerifier, PythonTestsVerifier, Task
    from ratchet.gates.verifier import verify

    specs = (
        ExactMatchVerifier(expected=["yes"]),
        PythonTestsVerifier(test="def check(c):\n    pass\n", entry_point="f"),
    )
    for spec in specs:
        outcome = asyncio.run(verify(Task(id="t", input="?", verifier=spec), "ye\ud800s"))
        assert (outcome.passed, outcome.error_type) == (False, "InvalidModelOutput")
        assert "U+D800" in outcome.message and "character 3" in outcome.message
        outcome.model_dump_json()


def test_structured_answers_refuse_values_that_are_not_unicode_text() -> None:
    from ratchet.agents.structured import parse_and_validate

    assert parse_and_validate('{"a": "x"}', {"type": "object"}) == ({"a": "x"}, None)
    for text in ('{"a": "\\ud800"}', '["ok", "\\udfff"]', '{"\\udc00\\ud800": 1}'):
        value, error = parse_and_validate(text, {})
        assert value is None and error is not None and "surrogate" in error, (text, error)
    value, error = parse_and_validate("\ud800", {})
    assert value is None and error is not None and "U+D800" in error


def test_a_structured_reply_that_is_not_unicode_text_is_a_rejected_sample() -> None:
    """FGGM's samples (critic, synthesizer, answer contracts): an invalid value with storable text."""
    from ratchet.agents.artifact import ModelParams
    from ratchet.agents.models import ModelClient
    from ratchet.agents.providers.scripted import (
        ScriptedProvider,
        ScriptedReply,
        register_scripted,
        unregister_scripted,
    )
    from ratchet.agents.structured import complete_json
    from ratchet.agents.trace import Message

    model = register_scripted("bad-bytes-json", ScriptedProvider([ScriptedReply(content='{"a": "\ud800"}')]))
    try:
        client = ModelClient(model, ModelParams())
        answer = asyncio.run(complete_json(client, [Message(role="user", content="JSON?")], {"type": "object"}))
    finally:
        unregister_scripted("bad-bytes-json")
    assert answer.value is None and answer.error is not None and answer.error.startswith("InvalidModelOutput")
    assert answer.text == '{"a": "\\ud800"}'
    answer.text.encode("utf-8")


def test_the_run_store_escapes_what_it_cannot_encode_and_reads_it_back(tmp_path: Path) -> None:
    """The last layer: any surrogate left in a record is stored escaped, never a failed write."""
    from ratchet.agents.trace import Message, Trace, storable
    from ratchet.gates.outcome import Outcome
    from ratchet.gates.run_store import RunKey, RunRecord, RunStore

    key = RunKey(artifact_hash="a" * 64, suite_hash="b" * 64, model_config_hash="c" * 64)
    trace = Trace(
        task_id="t",
        agent="coder",
        artifact_hash="a" * 64,
        model="m",
        simulated=False,
        messages=[Message(role="tool", content="error: ValueError: \ud800")],
        started_at="now",
        duration_s=0.0,
    )
    outcome = Outcome(task_id="t", passed=False, score=0.0, error_type="ValueError", message="ValueError: \udfff")
    record = RunRecord(key=key, task_id="t", trial=0, trace=trace, outcome=outcome)
    store = RunStore(tmp_path)
    store.append(record)
    stored = store.load(key)[("t", 0)]
    assert stored == storable(record)
    assert stored.trace.messages[0].content == "error: ValueError: \\ud800"
    assert stored.outcome.message == "ValueError: \\udfff"
    assert storable(stored) is stored  # a record that is text throughout is kept as it is
