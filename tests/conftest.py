from __future__ import annotations

import ast
import inspect
import os
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from types import ModuleType

import pytest

import matcher  # noqa: F401  sets OMP_WAIT_POLICY before torch loads libgomp

# isort: split
import torch

from matcher.config import Settings
from matcher.embed import FacePipeline
from matcher.store import migrate
from matcher.store.db import fresh_database, sqlite_engine
from matcher.wiring import load_pipeline
from tests import data
from tests.store.postgres import throwaway_server


def pytest_configure(config: pytest.Config) -> None:
    # Two cores in CI: oversubscribed threads slow torch down many times, so pin them, and
    # share them out among pytest-xdist's workers (each loads its own networks; the commands
    # and servers the tests start inherit the environment).
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    threads = max(1, int(os.environ.get("MATCHER_THREADS", "2")) // workers)
    os.environ["MATCHER_THREADS"] = str(threads)
    torch.set_num_threads(threads)
    # The service, store, API and CLI tests (and the servers and commands they start, which
    # inherit the environment) were written for dlib's model: its 128-d vectors, its distances
    # and its speed. The production default is the dlib+sface ensemble; tests of accuracy and
    # of the embedders name their model (tests/eval/test_crossage.py, tests/embed). Run the
    # suite on another model with MATCHER_EMBEDDER=... set outside.
    os.environ.setdefault("MATCHER_EMBEDDER", "dlib")


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings with a throwaway data dir (the weight cache lands there). The tip-app rate
    limit is out of the way: tests upload faster than any phone, and tests/api/test_limits.py
    tests the limiter with its own settings."""
    return Settings(data_dir=tmp_path_factory.mktemp("matcher-data"), device="cpu",
                    tip_rate_per_minute=60_000, tip_burst=10_000)


@pytest.fixture(scope="session")
def pipeline(settings: Settings) -> FacePipeline:
    """The loaded detector and embedder of `settings`, shared by every test of the run: loading
    is cheap once the weights are cached, but each copy holds its networks in memory. Tests
    of another model load their own (`load_pipeline(settings.model_copy(update=...))`)."""
    return load_pipeline(settings)


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty SQLite store at the newest revision, migrated once per test process by the real
    `migrate` (the seventeen migrations take a third of a second, and hundreds of tests start on
    an empty store). `seed_store` copies it into a data dir: the store then starts as an install
    that is already current would. tests/store/test_migrations.py migrates for real."""
    path = tmp_path_factory.mktemp("migrated") / "matcher.db"
    engine = sqlite_engine(f"sqlite:///{path}")
    migrate(engine)
    with engine.connect() as connection:  # everything in the main file, none in the WAL
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    url = os.environ.get("MATCHER_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    with throwaway_server() as server_url:
        yield server_url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    """None for SQLite (the default: <data_dir>/matcher.db), else a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield None
        return
    with fresh_database(request.getfixturevalue("postgres_admin_url"), "matcher_test") as url:
        yield url


# Markers (registered in pyproject.toml), set here rather than in each module so that a new test
# gets them from where it lives and what it uses. `scripts/test.sh --fast` leaves out slow,
# postgres, browser and subprocess; CI runs everything.
TESTS = Path(__file__).resolve().parent
# Node id prefixes of the tests that took longest in `pytest --durations=0` on 2 busy cores
# (seconds, module fixtures included), and of the long runs that start servers or commands.
# Re-measure when the fast tier passes two minutes, and add here.
SLOW = (
    # The ports against dlib and OpenCV on many photos: the references are computed each run.
    "tests/embed/test_detector_recall.py",  # 62
    "tests/embed/test_mmod.py::test_fgnet_matches_dlib",  # 33
    "tests/embed/test_mmod.py::test_lfw_matches_dlib",  # 23
    "tests/embed/test_pipeline.py::test_given_the_same_box_vectors_match_dlib_end_to_end",  # 38
    "tests/embed/test_resnet.py::test_same_chips_give_dlibs_descriptors",  # 20
    "tests/embed/test_resnet.py::test_end_to_end_matches_compute_face_descriptor",  # 16
    "tests/embed/test_chip.py",  # 12, 8 of them its dlib chips shared by every test
    "tests/embed/test_landmarks.py::test_landmarks_equal_dlib",  # 9
    # Evaluations, fits and re-embeddings of whole stores.
    "tests/eval/test_calibrate.py::test_the_calibrated_threshold_holds_on_held_apart_people",  # 24
    "tests/eval/test_crossage.py",
    "tests/eval/test_children_protocol.py",
    "tests/service/test_store_fit.py",  # 17, 13 of them its store shared by every test
    "tests/service/test_reindex.py",  # 19 without its killed CLI run and its local Ray
    "tests/fitted/test_shipped.py::test_refitting_from_the_research_photos",
    # Load and crash runs.
    "tests/api/test_schema_fuzz.py",  # 43
    "tests/test_soak.py",
    # One server attacked in every way of issue 19, checked after each attack: 55-75.
    "tests/adversarial/",
    "tests/store/test_decision_races.py",  # 5
    # A live server killed and restarted while partners' receivers refuse, are down or slow.
    "tests/api/test_partner_delivery.py",  # 22
    # Three servers on one PostgreSQL, uploads racing a close and a purge beside them.
    "tests/multiprocess/",
    "tests/bench/test_follow.py",
    "tests/index/test_concurrency.py::test_searches_during_adds_removals_and_swaps[ivfpq]",  # 6
    # Live reindexes and the like: a few seconds each, together what kept the fast tier over
    # two minutes.
    "tests/api/test_reindex.py::test_a_live_reindex_swaps_the_model_and_keeps_every_decision",
    "tests/api/test_reindex.py::test_a_pair_found_by_two_models_is_one_queue_entry",
    "tests/api/test_calibration_swap.py",
    "tests/api/test_retro_reopen.py::test_every_earlier_sighting_under_the_threshold",
    "tests/embed/test_projection.py::test_a_reindex_moves_the_service_to_the_projected_model",
    "tests/embed/test_yunet.py::test_matches_opencv_on_real_photos",
    "tests/fitted/test_shipped.py::test_a_store_of_the_plain_model_keeps_serving_it",
    "tests/service/test_reindex_checks.py::test_progress_never_passes_its_total",
)
# Tests that measure the machine while they run (deadlines of a second, the peak memory of a
# server, latency figures): the full run gives them the machine alone, after the others ran on
# two processes (scripts/test.sh).
SERIAL = (
    "tests/adversarial/",
    "tests/api/test_decode_budget.py",
    "tests/test_soak.py",
)
# What reads the research photos. REPO_ROOT and the Photo type do not.
PHOTO_HELPERS = (data.test_data_dir, data.require_test_data, data.lfw_photos, data.fgnet_photos,
                 data.fgnet_photo)
SPAWNS = {"run", "Popen", "call", "check_call", "check_output"}  # of the subprocess module
CLUSTERS = {"ray"}  # packages whose use starts worker processes (a local Ray)


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by them
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if not isinstance(item, pytest.Function):
            continue
        if item.nodeid.startswith(SLOW):
            item.add_marker(pytest.mark.slow)
        if item.nodeid.startswith(SERIAL):
            item.add_marker(pytest.mark.serial)
        if _on_postgres(item):
            item.add_marker(pytest.mark.postgres)
        if item.path.is_relative_to(TESTS / "web"):
            item.add_marker(pytest.mark.browser)
        if _starts_a_process(item):
            item.add_marker(pytest.mark.subprocess)
        if _reads_photos(item):
            item.add_marker(pytest.mark.needs_data)


def _on_postgres(item: pytest.Function) -> bool:
    """The PostgreSQL half of `db_url` (and of `on_both_databases`), or the server itself."""
    callspec = getattr(item, "callspec", None)
    return ((callspec is not None and callspec.params.get("db_url") == "postgresql")
            or "postgres_admin_url" in item.fixturenames)


def _fixture_functions(item: pytest.Function) -> Iterator[object]:
    for definitions in item._fixtureinfo.name2fixturedefs.values():
        yield definitions[-1].func  # the one that applies to this test


def _reads_photos(item: pytest.Function) -> bool:
    """The test's module reads the photos, itself or through a helper module, or one of its
    fixtures comes from such a module (tests/eval/conftest.py's `small_manifests`)."""
    return any(_module_reads_photos(name) for name in
               {item.module.__name__, *(_origin(f) for f in _fixture_functions(item))})


def _origin(value: object) -> str:
    origin = getattr(value, "__module__", None)
    return origin if isinstance(origin, str) else ""


_VISITING: set[str] = set()  # modules being looked at: helper modules may import one another


@cache
def _module_reads_photos(name: str) -> bool:
    module = sys.modules.get(name)
    if module is None or not name.startswith("tests.") or name in _VISITING:
        return False
    _VISITING.add(name)
    try:
        return any(any(value is helper for helper in PHOTO_HELPERS)
                   or (_origin(value) not in ("", name) and _module_reads_photos(_origin(value)))
                   for value in vars(module).values())
    finally:
        _VISITING.discard(name)


def _starts_a_process(item: pytest.Function) -> bool:
    """The test, or a helper or fixture it uses, starts a child process: `subprocess.run` of
    `-m matcher`, tests/live.py's `matcher serve`, a killed saver... (found in the source)."""
    if (item.cls or item.function).__name__ in _spawners(item.module.__name__):
        return True
    return any(getattr(f, "__name__", "") in _spawners(_origin(f))
               for f in _fixture_functions(item))


@cache
def _spawners(name: str) -> frozenset[str]:
    """The module's top-level functions and classes that start a process, directly or through
    one another or through such a function of another test module. tests/store/postgres.py
    starts the PostgreSQL server: that is the `postgres` marker's."""
    module = sys.modules.get(name)
    if (module is None or not name.startswith("tests.") or name == "tests.store.postgres"
            or name in _VISITING):
        return frozenset()
    try:
        tree = ast.parse(inspect.getsource(module))
    except (OSError, TypeError):
        return frozenset()
    _VISITING.add(name)
    try:
        uses = {node.name: _names_used(node) for node in tree.body
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)}
        found = {n for n, used in uses.items() if any(_spawns(module, u) for u in used)}
    finally:
        _VISITING.discard(name)
    while grown := {n for n, used in uses.items() if n not in found and used & found}:
        found |= grown
    return frozenset(found)


def _spawns(module: ModuleType, used: str) -> bool:
    """`used` ("name" or "name.attribute") starts a process in `module`'s namespace."""
    if used.startswith("import "):
        return used.removeprefix("import ").partition(".")[0] in CLUSTERS
    head, _, attribute = used.partition(".")
    value = getattr(module, head, None)
    if isinstance(value, ModuleType) and value.__name__.partition(".")[0] in CLUSTERS:
        return True
    if value is subprocess:
        return attribute in SPAWNS
    if isinstance(value, ModuleType):
        return attribute in _spawners(value.__name__)
    if attribute or _origin(value) in ("", module.__name__):
        return False
    if _origin(value) == "subprocess":
        return getattr(value, "__name__", "") in SPAWNS
    return getattr(value, "__name__", "") in _spawners(_origin(value))


def _names_used(node: ast.AST) -> set[str]:
    """Names read in a definition's code ("name", "name.attribute") and what it imports
    ("import package.module"), annotations left out."""
    used: set[str] = set()
    stack: list[ast.AST] = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, ast.Attribute) and isinstance(current.value, ast.Name):
            used.add(f"{current.value.id}.{current.attr}")
        elif isinstance(current, ast.Name):
            used.add(current.id)
        elif isinstance(current, ast.Import):
            used.update(f"import {alias.name}" for alias in current.names)
        elif isinstance(current, ast.ImportFrom) and current.module and not current.level:
            used.add(f"import {current.module}")
        for field, value in ast.iter_fields(current):
            if field in ("annotation", "returns"):
                continue
            children = value if isinstance(value, list) else [value]
            stack.extend(child for child in children if isinstance(child, ast.AST))
    return used
