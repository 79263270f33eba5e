"""matcher.bench stays outside the serving package: the rooms that serve import none of it,
so the service never carries benchmark code or depends on how a benchmark fills a store."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "matcher"
SERVING = ("api", "service", "store", "embed", "index")


def imported_modules(source: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text(), str(source))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


@pytest.mark.parametrize("room", SERVING)
def test_no_serving_room_imports_the_benchmarks(room: str) -> None:
    found = [f"{path.relative_to(PACKAGE.parent)}: {name}"
             for path in sorted((PACKAGE / room).rglob("*.py"))
             for name in sorted(imported_modules(path))
             if name == "matcher.bench" or name.startswith("matcher.bench.")]
    assert not found, "\n".join(found)
