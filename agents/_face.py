"""Lazy package faces (PEP 562): a package's `__init__` names its public objects and where they live;
each is imported on first use, so `from ratchet.gates import Task` does not pay for pandas."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any


def lazy_exports(package: str, modules: dict[str, list[str]]) -> Callable[[str], Any]:
    """A module `__getattr__` for `package` that imports each name from `package.<module>` when first asked for."""
    where = {name: f"{package}.{module}" for module, names in modules.items() for name in names}
    namespace = import_module(package).__dict__

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(module), name)
        namespace[name] = value  # the next lookup is a plain attribute
        return value

    return __getattr__
