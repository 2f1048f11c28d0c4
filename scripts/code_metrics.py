"""Size and seam figures of the package code: the before/after table of the architecture issue.

    python scripts/code_metrics.py [--json PATH]

Counts, over agents/ critics/ gates/ releases/ pipeline/ (tests and benchmarks aside):
- import circles: strongly connected groups of modules that import each other, counting imports
  inside functions too (a lazy import hides a circle from the interpreter, not from a reader);
- modules over 400 lines and functions over 50 lines (the habits of STYLE.md);
- `noqa` and `type: ignore` comments.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("agents", "critics", "gates", "releases", "pipeline")
MODULE_LINES = 400
FUNCTION_LINES = 50


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return "ratchet." + ".".join(parts)


def package_modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def imported_modules(path: Path, name: str, known: set[str]) -> set[str]:
    """The package modules `path` imports, wherever the import statement sits."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            targets = [module] + [f"{module}.{alias.name}" for alias in node.names]
        for target in targets:
            if not target.startswith("ratchet."):
                target = "ratchet." + target
            if target in known and target != name:
                found.add(target)
    return found


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    sys.setrecursionlimit(10_000)
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def long_functions(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        f"{path.relative_to(ROOT)}:{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > FUNCTION_LINES
    ]


def measure() -> dict[str, object]:
    modules = package_modules()
    graph = {name: imported_modules(path, name, set(modules)) for name, path in modules.items()}
    # A package's __init__ re-exporting its own modules is not a circle between those modules.
    for name in graph:
        graph[name] = {m for m in graph[name] if not (modules[m].name == "__init__.py" and name.startswith(m + "."))}
    texts = {name: path.read_text() for name, path in modules.items()}
    return {
        "modules": len(modules),
        "lines": sum(t.count("\n") for t in texts.values()),
        "import_circles": circles(graph),
        "modules_over_400_lines": sorted(
            f"{modules[n].relative_to(ROOT)} ({t.count(chr(10))} lines)"
            for n, t in texts.items()
            if t.count("\n") > MODULE_LINES
        ),
        "functions_over_50_lines": sorted(f for p in modules.values() for f in long_functions(p)),
        "noqa": sum(t.count("# noqa") for t in texts.values()),
        "type_ignore": sum(t.count("# type: ignore") for t in texts.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    figures = measure()
    rows = [
        ("modules", figures["modules"]),
        ("lines", figures["lines"]),
        ("import circles", len(figures["import_circles"])),  # type: ignore[arg-type]
        ("modules over 400 lines", len(figures["modules_over_400_lines"])),  # type: ignore[arg-type]
        ("functions over 50 lines", len(figures["functions_over_50_lines"])),  # type: ignore[arg-type]
        ("noqa comments", figures["noqa"]),
        ("type: ignore comments", figures["type_ignore"]),
    ]
    for label, value in rows:
        print(f"{label:<26}{value:>8}")
    for key in ("import_circles", "modules_over_400_lines", "functions_over_50_lines"):
        for item in figures[key]:  # type: ignore[attr-defined]
            print(f"  {key}: {item}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
