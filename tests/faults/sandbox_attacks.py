"""Attacks on the sandbox's verdict and on the evaluator, for tests/faults/test_trust_sandbox.py and the
fault campaign (benchmarks/fault_campaign.py).

Every attack program fails its task in the end (it raises AssertionError, as a wrong answer's hidden
tests would), after trying to make the run pass anyway (forgery) or to signal the process that runs
the evaluation (the evaluator). The evaluation runs in a child process per protection mode, so an
attack that works kills that child, not the caller: `run_mode` reports what each run returned and
whether the evaluator was still alive at the end.

Protection modes are what a host can give: `all layers` (namespaces + seccomp + guard; this host, if
it allows them), `seccomp + guard` (no user namespaces), `guard only` (neither), and `kernel only`
(the guard switched off: the kernel layers alone). `control: shared descriptor table` runs a harness
whose worker keeps the verdict pipe, to show that the forgery checks can fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FAIL = "\nraise AssertionError('the hidden tests failed')\n"

FD_SCAN = """
import os
def scan(first=3, last=1024):
    # a file (seekable) gets a fresh verdict literal; a pipe gets the line a verdict pipe would carry
    for fd in range(first, last):
        try:
            os.lseek(fd, 0, 0)
            os.ftruncate(fd, 0)
            os.write(fd, b"{'status': 'ok'}")
        except OSError:
            try:
                os.write(fd, b"finished\\n")
            except OSError:
                pass
"""

FORGERIES: dict[str, str] = {
    "write the verdict to every descriptor": FD_SCAN + "scan()" + FAIL,
    "write the verdict to every descriptor, then exit 0": FD_SCAN + "scan()\nos._exit(0)\n",
    "print a verdict, then exit 0": "print('finished')\nprint({'status': 'ok'})\nimport os\nos._exit(0)\n",
    "reopen descriptors through /proc/self/fd and /dev/fd": """
for folder in ("/proc/self/fd", "/dev/fd", "/proc/self/task/1/fd"):
    for fd in range(3, 64):
        try:
            with open(f"{folder}/{fd}", "wb") as handle:
                handle.write(b"finished\\n")
        except Exception:
            pass
"""
    + FAIL,
    "a finalizer on another thread writes the verdict": FD_SCAN
    + """
import gc, threading
gc.set_threshold(1)
class Trap:
    def __init__(self):
        self.me = self
    def __del__(self):
        scan()
def litter():
    for _ in range(20000):
        Trap()
for _ in range(4):
    threading.Thread(target=litter, daemon=True).start()
"""
    + FAIL,
    "threads keep writing the verdict after the failure": FD_SCAN
    + """
import threading
def forever():
    while True:
        scan(3, 64)
for _ in range(2):
    threading.Thread(target=forever, daemon=True).start()
"""
    + FAIL,
    "release every lock other threads' frames hold": """
import sys
try:
    for frame in sys._current_frames().values():
        while frame is not None:
            for value in list(frame.f_locals.values()):
                for item in (value if isinstance(value, (list, tuple)) else [value]):
                    for name in ("release", "func"):
                        try:
                            getattr(item, name)()
                        except Exception:
                            pass
            frame = frame.f_back
except Exception:
    pass
"""
    + FAIL,
    "release every lock the garbage collector knows": """
import gc
try:
    for obj in gc.get_objects():
        try:
            if type(obj).__name__ == "partial" and getattr(obj.func, "__name__", "") == "release":
                obj()
        except Exception:
            pass
except Exception:
    pass
"""
    + FAIL,
    "switch the guard off through its traceback, then the garbage collector": """
import gc
try:
    open("/etc/hostname").read()
except Exception as exc:
    tb = exc.__traceback__
    try:
        while tb.tb_next is not None:
            tb = tb.tb_next
        guard = tb.tb_frame.f_locals.get("self")
        guard.rules.clear()
    except Exception:
        pass
try:
    for obj in gc.get_objects():
        if type(obj).__name__ == "lock":
            try:
                obj.release()
            except Exception:
                pass
except Exception:
    pass
"""
    + FAIL,
    "hand the guard a hostile object to run code inside it": """
import sys, gc
class Hostile:
    def __fspath__(self):
        frame = sys._getframe(1)
        while frame is not None:
            if "rules" in getattr(frame.f_locals.get("self"), "__dict__", {}):
                frame.f_locals["self"].rules.clear()
            frame = frame.f_back
        return "x"
    def __repr__(self):
        return self.__fspath__()
class Meta(type):
    def __eq__(cls, other):
        Hostile().__fspath__()
        return False
    __hash__ = type.__hash__
class Odd(metaclass=Meta):
    pass
for event, args in (("open", (Hostile(), "r", 0)), ("os.listdir", (Hostile(),)), ("socket.connect", (None, Odd())),
                    ("os.kill", (Odd(), 9)), ("object.__getattr__", (Odd(), "tb_frame"))):
    try:
        sys.audit(event, *args)
    except Exception:
        pass
try:
    for obj in gc.get_objects():
        if type(obj).__name__ == "lock":
            obj.release()
except Exception:
    pass
"""
    + FAIL,
    "trace the runner to jump over its error handling": """
import sys
def tracer(frame, event, arg):
    if event == "line" and frame.f_code.co_name == "run":
        try:
            frame.f_lineno = frame.f_code.co_firstlineno + 9
        except Exception:
            pass
    return tracer
try:
    sys.settrace(tracer)
    sys._getframe(1).f_trace = tracer
except Exception:
    pass
"""
    + FAIL,
    "replace builtins the harness looks up": """
import builtins, os
class NotAnException(Exception):
    pass
for name in ("BaseException", "Exception"):
    setattr(builtins, name, NotAnException)
builtins.len = lambda *a: 0
builtins.type = lambda *a: str
os._exit = lambda code: None
os.write = lambda fd, data: len(data)
"""
    + FAIL,
    "rewrite the runner's namespace": """
import sys
frame = sys._getframe(1)
frame.f_globals["flush_output"] = lambda: None
frame.f_globals["report_error"] = lambda *a: None
frame.f_locals["exit_now"] = lambda code: None
"""
    + FAIL,
    "interrupt the main thread, then exit quietly": """
import _thread, os, signal
_thread.interrupt_main()
os.kill(os.getpid(), signal.SIGINT)
raise SystemExit(0)
""",
    "end the worker thread quietly": "import _thread\n_thread.exit()\n",
}

SIGNAL_ROUTING = """
import fcntl, os, signal, socket, struct, time
parent = os.getppid()
targets = [parent, -os.getpgid(parent) if parent > 1 else parent]
"""

SIGNAL_ATTACKS: dict[str, str] = {
    "fcntl F_SETOWN + F_SETSIG SIGKILL + O_ASYNC on inherited descriptors": SIGNAL_ROUTING
    + """
for fd in range(0, 32):
    try:
        fcntl.fcntl(fd, fcntl.F_SETOWN, parent)
        fcntl.fcntl(fd, 10, signal.SIGKILL)  # F_SETSIG
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_ASYNC)
    except Exception:
        pass
print("x" * 200000, flush=True)
time.sleep(0.3)
"""
    + FAIL,
    "fcntl F_SETOWN_EX (the owner as a struct)": SIGNAL_ROUTING
    + """
for fd in range(0, 32):
    try:
        fcntl.fcntl(fd, 15, struct.pack("ii", 1, parent))  # F_SETOWN_EX, F_OWNER_PID
        fcntl.fcntl(fd, 10, signal.SIGKILL)
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_ASYNC)
    except Exception:
        pass
print("x" * 200000, flush=True)
time.sleep(0.3)
"""
    + FAIL,
    "ioctl FIOSETOWN / SIOCSPGRP on descriptors and a socket": SIGNAL_ROUTING
    + """
fds = list(range(0, 32))
try:
    pair = socket.socketpair()
    fds += [s.fileno() for s in pair]
except Exception:
    pair = ()
for fd in fds:
    for request in (0x8901, 0x8902, 0x5410):
        try:
            fcntl.ioctl(fd, request, struct.pack("i", parent))
            fcntl.fcntl(fd, 10, signal.SIGKILL)
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_ASYNC)
        except Exception:
            pass
for s in pair:
    try:
        s.send(b"x")
    except Exception:
        pass
print("x" * 200000, flush=True)
time.sleep(0.3)
"""
    + FAIL,
    "pidfd_open + pidfd_send_signal": SIGNAL_ROUTING
    + """
try:
    fd = os.pidfd_open(parent)
    signal.pidfd_send_signal(fd, signal.SIGKILL)
except Exception:
    pass
time.sleep(0.2)
"""
    + FAIL,
    "kill and killpg the parent and its group": SIGNAL_ROUTING
    + """
for target in targets:
    for send in (lambda: os.kill(target, signal.SIGKILL), lambda: os.killpg(abs(target), signal.SIGKILL)):
        try:
            send()
        except Exception:
            pass
time.sleep(0.2)
"""
    + FAIL,
}

HONEST = "assert sum(range(10)) == 45\nprint('honest')\n"
MODES = ("all layers", "seccomp + guard", "guard only", "kernel only", "control: shared descriptor table")

# Runs in the child: the evaluator for one protection mode. Prints one JSON line per attack.
_CHILD = r"""
import asyncio, json, sys
from pathlib import Path
from ratchet.gates import sandbox
from ratchet.gates.sandbox import Isolation, SandboxLimits, run_python

mode, attacks = json.loads(sys.stdin.read())
host = sandbox.available_isolation()
wanted = {"all layers": host, "kernel only": host, "control: shared descriptor table": host,
          "seccomp + guard": Isolation(network=False, filesystem=False, processes=host.processes),
          "guard only": Isolation(network=False, filesystem=False, processes=False)}[mode]
sandbox.available_isolation = lambda: wanted
sandbox.IN_PROCESS_GUARD = mode != "kernel only"
if mode.startswith("control"):
    broken = Path(sys.argv[1]) / "harness.py"
    source = sandbox.HARNESS.read_text()
    broken.write_text(source.replace("    os.close(verdict_fd)\n", "    return\n", 1)
                            .replace("        unshare(CLONE_FILES)\n", "        return\n", 1)
                            .replace("        if libc.unshare(CLONE_FILES) != 0:", "        if False:", 1))
    sandbox.HARNESS = broken
    sandbox._bytecode.cache_clear()
print(json.dumps({"isolation": wanted.model_dump(), "guard": sandbox.IN_PROCESS_GUARD}), flush=True)
for name, program in attacks:
    result = asyncio.run(run_python(program, SandboxLimits(timeout_s=3)))
    print(json.dumps({"attack": name, "status": result.status, "error_type": result.error_type,
                      "message": result.message[:200], "violations": result.violations[:3]}), flush=True)
print(json.dumps({"alive": True}), flush=True)
"""


@dataclass
class ModeRun:
    """What one evaluator process (one protection mode) saw."""

    mode: str
    isolation: dict[str, bool] = field(default_factory=dict)
    guard: bool = True
    results: dict[str, dict[str, object]] = field(default_factory=dict)
    alive: bool = False
    returncode: int | None = None
    stderr: str = ""

    def passed(self, attack: str) -> bool:
        return self.results.get(attack, {}).get("status") == "ok"


def run_mode(mode: str, attacks: dict[str, str], workdir: Path, timeout_s: float = 300) -> ModeRun:
    """Run `attacks` (name -> program) in a child evaluator under `mode`; the honest program last."""
    workdir.mkdir(parents=True, exist_ok=True)
    payload = json.dumps([mode, [*attacks.items(), ("honest program", HONEST)]])
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_CHILD), str(workdir)],
        input=payload,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        cwd=ROOT,
        env=env,
    )
    run = ModeRun(mode=mode, returncode=done.returncode, stderr=done.stderr[-2000:])
    for line in done.stdout.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if "isolation" in record:
            run.isolation, run.guard = record["isolation"], record["guard"]
        elif "attack" in record:
            run.results[record.pop("attack")] = record
        elif record.get("alive"):
            run.alive = True
    return run


def campaign(workdir: Path, modes: tuple[str, ...] = MODES) -> dict[str, object]:
    """Every forgery and signal attack in every protection mode: forged passes and evaluator deaths."""
    rows = []
    for mode in modes:
        run = run_mode(mode, {**FORGERIES, **SIGNAL_ATTACKS}, workdir / mode.replace(" ", "-").replace(":", ""))
        forged = [name for name in FORGERIES if run.passed(name)]
        unanswered = [name for name in {**FORGERIES, **SIGNAL_ATTACKS} if name not in run.results]
        rows.append(
            {
                "mode": mode,
                "isolation": run.isolation,
                "guard": run.guard,
                "forgeries": len(FORGERIES),
                "forged_passes": forged,
                "signal_attacks": len(SIGNAL_ATTACKS),
                "evaluator_died": not run.alive,
                "evaluator_returncode": run.returncode,
                "unanswered": unanswered,
                "honest_program_passed": run.passed("honest program"),
                "results": run.results,
            }
        )
    return {"rows": rows}
