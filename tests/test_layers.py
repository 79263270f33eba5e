"""The layer contracts of docs/architecture.md, checked on the source: which room of matcher/
may import which.

Every module under matcher/ is parsed (nothing is imported, so a contract broken inside a
function or under TYPE_CHECKING counts as well), and each import is read as the module it
names: `from matcher.store.models import Case`, `import matcher.store` and `from matcher
import store` all import matcher.store. A broken contract names the module, the line and the
import.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.data import REPO_ROOT

PACKAGE = REPO_ROOT / "matcher"


@dataclass(frozen=True)
class Import:
    module: str  # the importing file, relative to the repository: matcher/api/deps.py
    line: int
    name: str  # what it imports, dotted: matcher.store, matcher.store.Case

    def __str__(self) -> str:
        return f"{self.module}:{self.line} imports {self.name}"


def imports_of(source: str, module: str) -> Iterator[Import]:
    """Every import in `source`, the text of the file `module` (a path under the repository);
    relative imports are resolved against its package. `from X import a` yields X.a, whether
    `a` is a module of X (`from matcher import store`) or a name defined in it."""
    package = module.removesuffix(".py").split("/")[:-1]
    for node in ast.walk(ast.parse(source, filename=module)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            name = ".".join([*base, *([node.module] if node.module else [])])
            for alias in node.names:
                yield Import(module, node.lineno, f"{name}.{alias.name}")


@dataclass(frozen=True)
class Contract:
    """The modules under `rooms` (folders or files of matcher/) import none of `forbidden`
    (a module and everything in it) but the names in `allowed` (dotted, exactly), nor any name
    in `names` from anywhere."""

    rule: str
    rooms: tuple[str, ...]
    forbidden: tuple[str, ...]
    names: tuple[str, ...] = ()
    allowed: tuple[str, ...] = ()

    def breaks(self, found: Import) -> bool:
        if found.name in self.allowed:
            return False
        return (any(found.name == f or found.name.startswith(f + ".") for f in self.forbidden)
                or found.name.rpartition(".")[2] in self.names)

    def violations(self) -> list[Import]:
        return [found for path in self._modules() for found in imports_of(
            path.read_text(encoding="utf-8"), path.relative_to(REPO_ROOT).as_posix())
            if self.breaks(found)]

    def _modules(self) -> list[Path]:
        paths: list[Path] = []
        for room in self.rooms:
            place = PACKAGE / room
            assert place.exists(), f"{place} is gone: update the contract '{self.rule}'"
            paths += sorted(place.rglob("*.py")) if place.is_dir() else [place]
        return paths


LOWER = ("embed", "index", "store")
# What the service may import from SQLAlchemy: the types of the sessions it opens and commits
# (transactions are the service's job). Its engine's type comes from matcher.store.
SESSION_TYPES = ("sqlalchemy.orm.Session", "sqlalchemy.orm.sessionmaker")

CONTRACTS = [
    pytest.param(Contract(
        "the api imports no store module: the service hands it its own records",
        ("api",), ("matcher.store",)), id="api-imports-no-store"),
    pytest.param(Contract(
        "embed, index and store take plain parameters, never Settings: the top makes them "
        "(matcher/wiring.py)", LOWER, ("matcher.config", "matcher.wiring"), names=("Settings",)),
        id="lower-rooms-read-no-settings"),
    pytest.param(Contract(
        "the vocabulary imports nothing from matcher, nor SQLAlchemy, so any room may import it",
        ("vocabulary.py",), ("matcher", "sqlalchemy")), id="vocabulary-stands-alone"),
    pytest.param(Contract(
        "nothing runs back up: embed, index and store import neither service nor api", LOWER,
        ("matcher.service", "matcher.api")), id="nothing-runs-back-up"),
    pytest.param(Contract(
        "the service builds no SQL: every query is a store function named for what it does; "
        "it holds sessions and their transactions, and that is all it takes from SQLAlchemy",
        ("service",), ("sqlalchemy",), allowed=SESSION_TYPES), id="service-builds-no-sql"),
]


@pytest.mark.parametrize("contract", CONTRACTS)
def test_the_rooms_keep_their_contracts(contract: Contract) -> None:
    broken = [str(found) for found in contract.violations()]
    assert not broken, f"{contract.rule}; broken by:\n" + "\n".join(broken)


@pytest.mark.parametrize(("module", "source", "name"), [
    ("matcher/api/a.py", "from matcher.store.models import Case", "matcher.store.models.Case"),
    ("matcher/api/a.py", "import matcher.store", "matcher.store"),
    ("matcher/api/a.py", "import matcher.store.review as review", "matcher.store.review"),
    ("matcher/api/a.py", "from matcher import store", "matcher.store"),
    ("matcher/api/routes/a.py", "from ...store import Case", "matcher.store.Case"),
    ("matcher/api/__init__.py", "from ..store import review", "matcher.store.review"),
    ("matcher/api/a.py", "def f():\n    from matcher.store import Case", "matcher.store.Case"),
])
def test_every_form_of_import_is_seen(module: str, source: str, name: str) -> None:
    """The check itself: an import it could not read would let the contract pass silently."""
    api = Contract("test", ("api",), ("matcher.store",))
    found = [i.name for i in imports_of(source, module) if api.breaks(i)]
    assert name in found, found


@pytest.mark.parametrize(("source", "broken"), [
    ("from sqlalchemy.orm import Session, sessionmaker", False),
    ("from sqlalchemy import select", True),
    ("from sqlalchemy.orm import aliased", True),
    ("import sqlalchemy.orm", True),
    ("from sqlalchemy import Engine", True),
])
def test_the_service_may_take_only_the_session_types(source: str, broken: bool) -> None:
    service = Contract("test", ("service",), ("sqlalchemy",), allowed=SESSION_TYPES)
    assert any(service.breaks(i) for i in imports_of(source, "matcher/service/a.py")) is broken


def test_settings_are_seen_by_name_too() -> None:
    lower = Contract("test", LOWER, ("matcher.config",), names=("Settings",))
    assert any(lower.breaks(i) for i in imports_of("from matcher import Settings",
                                                   "matcher/store/a.py"))
    assert not any(lower.breaks(i) for i in imports_of("from matcher.store.db import make_engine",
                                                       "matcher/store/a.py"))
