"""Runs the program inside the sandbox: the only harness code that sits above the program's frames.

`gates/_sandbox_harness.py` loads this file's code into a fresh dict (not a module, not the harness's
globals) and calls `run` from a chain of C calls in the worker thread. So `run`'s frame is the one
frame above the program's (its `f_back` is None), and nothing reachable from it, its locals or this
namespace leads to the harness's state: the verdict channel, the guard, or the lock whose release
means "the program finished". The program may read or change anything here; the worst it can do is
spoil its own error report. It cannot make the run pass: that takes `run` returning normally, which
happens only when the program's code did.

Stdlib only; this file is compiled once per process and runs once per sandboxed program.
"""

import os
import sys

_reserve = [bytearray(1 << 20)]  # released before reporting, so that a MemoryError can still be reported


def run(source, namespace, exit_now, report, catch=BaseException):
    """Run the program as __main__. Return only if it finished; otherwise report how it ended and
    end the process (`exit_now` and `catch` are bound before the program runs, so it cannot swap them)."""
    try:
        exec(compile(source, "solution.py", "exec", dont_inherit=True), namespace)
    except catch as exc:
        try:
            report(exc)
        finally:
            exit_now(0)
    flush_output()


def flush_output():
    """Flush what the program printed: the process ends with os._exit, which does not."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass


def report_error(details_fd, guard_error, violations, exc):
    """Send how the program ended (type, one-line message, line in solution.py) on the details channel."""
    _reserve.clear()
    try:
        verdict = error_verdict(exc, guard_error)
    except BaseException:
        verdict = {"status": "error", "error_type": "Exception", "message": "<unprintable exception>", "line": None}
    verdict["violations"] = list(violations)
    flush_output()
    send(details_fd, verdict)


def error_verdict(exc, guard_error):
    """The exception's type, one-line message and the last line of solution.py it passed through."""
    try:
        message = str(exc)
    except BaseException:
        message = "<unprintable exception>"
    line = getattr(exc, "lineno", None) if isinstance(exc, SyntaxError) else None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_next is None and isinstance(exc, guard_error):
            break  # the guard's own frame: the guard refuses to hand it out
        if tb.tb_frame.f_code.co_filename == "solution.py":
            line = tb.tb_lineno
        tb = tb.tb_next
    return {
        "status": "error",
        "error_type": str(type(exc).__name__),
        "message": one_line(message),
        "line": line if type(line) is int else None,
    }


def one_line(text, limit=300):
    text = " ".join(part.strip() for part in str(text).splitlines() if part.strip())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def send(fd, message, write=os.write):
    """Write one message (a Python literal on one line) to a channel; never raises. (`write` is bound
    here so that a program that replaced os.write does not make its own report loop forever.)"""
    try:
        data = (repr(message) + "\n").encode("utf-8", "backslashreplace")
        while data:
            written = write(fd, data)
            if type(written) is not int or written <= 0:
                return
            data = data[written:]
    except BaseException:
        pass
