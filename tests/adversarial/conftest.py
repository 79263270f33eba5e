"""The one server every attack of this package hits, started once (a start costs seconds), and
the summary of the attacks printed at the end of the run."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from matcher.config import Settings
from matcher.store.face_rows import active_case_face_pairs, sighting_face_pairs
from tests.adversarial.harness import (
    SERVER_SETTINGS,
    Attack,
    Target,
    cast,
    model_id,
    store_session,
    summary,
)
from tests.data import require_test_data
from tests.live import LiveServer

SUMMARY = pytest.StashKey[list[Attack]]()
SEEDED = 3  # cases registered before the first attack: every sighting has candidates


@pytest.fixture(scope="package")
def target(settings: Settings, request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """The server, with SEEDED cases. At the end it is stopped cleanly, and the indexes it
    saves must hold exactly the store's faces: no erased or purged descriptor goes to disk."""
    require_test_data()
    server = LiveServer(tmp_path_factory.mktemp("adversarial") / "data",
                        cache_from=settings.cache_dir, **SERVER_SETTINGS)
    attacked = Target(server)
    request.config.stash[SUMMARY] = attacked.attacks
    with server:
        attacked.start()
        with attacked.client(attacked.manager) as desk:
            for i, photos in enumerate(cast(SEEDED)):
                attacked.new_case(desk, f"seed {i}", photos[0])
        yield attacked
        served = model_id(attacked)
        server.stop()
        saved_indexes_equal_store(attacked, served)


def saved_indexes_equal_store(target: Target, served: str) -> None:
    index_dir = target.server.data_dir / "index"
    with store_session(target) as session:
        for folder, pairs in (("active-cases", active_case_face_pairs),
                              ("sightings", sighting_face_pairs)):
            stored = {int(face) for ids, _ in pairs(session, served) for face in ids}
            saved = list((index_dir / folder).glob("*.npz"))
            assert len(saved) == 1, f"{folder}: {len(saved)} copies saved at the clean stop"
            with np.load(saved[0]) as arrays:
                assert set(arrays["ids"].tolist()) == stored, folder
                assert arrays["tombstones"].size == 0, folder


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter,
                            config: pytest.Config) -> None:
    attacks = config.stash.get(SUMMARY, [])
    if attacks:
        terminalreporter.write_sep("-", "adversarial attacks (tests/adversarial)")
        for line in summary(attacks):
            terminalreporter.write_line(line)
