"""Progress reporting from inside the flow to whoever drives it (the CLI shows rich bars).

The reporter is process-wide and set explicitly by the caller (`use_reporter`); the
default does nothing, so flows run quietly under tests and Prefect workers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class Reporter(Protocol):
    def stage(self, name: str, detail: str = "") -> None: ...

    def progress(self, label: str, done: int, total: int) -> None: ...


class NullReporter:
    def stage(self, name: str, detail: str = "") -> None:
        pass

    def progress(self, label: str, done: int, total: int) -> None:
        pass


_current: Reporter = NullReporter()


def reporter() -> Reporter:
    return _current


@contextmanager
def use_reporter(new: Reporter) -> Iterator[Reporter]:
    global _current
    previous, _current = _current, new
    try:
        yield new
    finally:
        _current = previous
