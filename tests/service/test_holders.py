"""One reindex at a time per store (issue 19, defect 12: two at once ended in a 286-line
IntegrityError traceback), beside any number of servers, which all move to its model at the
swap (issue 23: `matcher reindex` swapped serving.json under a running server, which went on
with the old model and switched silently at its next start)."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from matcher.api import create_app
from matcher.config import Settings
from matcher.embed import FacePipeline
from matcher.service import Runtime, new_key, open_runtime
from matcher.service.holders import REINDEX, SERVE, StoreBusy, claim, keeps_house
from matcher.service.serving import recorded_model
from matcher.store import Role, session_scope
from matcher.store.holders import Holder, add_holder, holders
from matcher.store.models import StoreHolder
from matcher.store.vectors import count_faces_without_vectors
from tests.data import REPO_ROOT
from tests.live import LiveServer
from tests.service.test_reindex import FLIP, _store


def _reindex(data_dir: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "MATCHER_THREADS": "1", "MATCHER_WORKERS": "1",
           "MATCHER_DETECT_BATCH_SIZE": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "matcher", "reindex", "--data-dir", str(data_dir), *args],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _reindexing(matcher: Runtime) -> bool:
    with matcher.sessions() as session:
        return any(holder.kind == REINDEX for holder in holders(session))


def test_of_two_claims_at_once_one_wins(matcher: Runtime) -> None:
    """Decided in one transaction with the table locked, on SQLite and on PostgreSQL."""
    start = threading.Barrier(2)
    won, refused = [], []

    def try_claim() -> None:
        start.wait()
        try:
            won.append(claim(matcher.sessions, REINDEX))
        except StoreBusy as exc:
            refused.append(str(exc))

    threads = [threading.Thread(target=try_claim) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1 and len(refused) == 1, refused
    assert f"pid {os.getpid()}" in refused[0] and "is running on this store" in refused[0]
    serving = claim(matcher.sessions, SERVE)  # a server starts meanwhile: it follows the swap
    try:
        with matcher.sessions() as session:
            assert sorted(h.kind for h in holders(session)) == [REINDEX, SERVE]
        won[0].release()
        claim(matcher.sessions, REINDEX).release()  # and a reindex runs beside a server
    finally:
        serving.release()
    with matcher.sessions() as session:
        assert holders(session) == []


def test_a_holder_that_died_or_went_silent_is_stale(matcher: Runtime) -> None:
    """A process of this machine that is gone (kill -9) at once; one elsewhere once its
    heartbeat is older than a minute; a live one elsewhere holds."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    now = dt.datetime.now(dt.UTC)
    rows = [Holder("dead", REINDEX, socket.gethostname(), gone.pid, now, now),
            Holder("silent", SERVE, "elsewhere", 1, now, now - dt.timedelta(minutes=2))]
    with session_scope(matcher.sessions) as session:
        for row in rows:
            add_holder(session, row)
    claim(matcher.sessions, REINDEX).release()
    with matcher.sessions() as session:
        assert holders(session) == []
    with session_scope(matcher.sessions) as session:
        add_holder(session, Holder("live", REINDEX, "elsewhere", 1, now, now))
    with pytest.raises(StoreBusy, match="a reindex \\(pid 1 on elsewhere"):
        claim(matcher.sessions, REINDEX)


def test_one_server_of_a_store_keeps_house_and_the_next_takes_over(
        matcher: Runtime) -> None:
    """The longest-running live server runs the store's housekeeping, once for all; a dead
    one (its process gone) hands it to the next at once."""
    first = claim(matcher.sessions, SERVE)
    second = claim(matcher.sessions, SERVE)
    assert keeps_house(matcher.sessions, first) and not keeps_house(matcher.sessions, second)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with session_scope(matcher.sessions) as session:  # first's row, as if its process died
        session.execute(update(StoreHolder).where(StoreHolder.id == first.id)
                        .values(pid=gone.pid))
    assert keeps_house(matcher.sessions, second)
    first.release()
    second.release()


def test_of_two_cli_reindexes_one_is_refused_cleanly(
    settings: Settings, pipeline: FacePipeline, tmp_path: Path
) -> None:
    """The second asks while the first holds the store: the first is paused (SIGSTOP) once it
    has claimed, so the two overlap however fast the first would run."""
    store = _store(settings.model_copy(update={"data_dir": tmp_path}), pipeline, photos=6)
    first = _reindex(tmp_path, "--flip")
    watch = open_runtime(store, pipeline)
    try:
        deadline = time.monotonic() + 120
        while not _reindexing(watch) and first.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        first.send_signal(signal.SIGSTOP)
        try:
            second = _reindex(tmp_path, "--flip")
            out, err = second.communicate(timeout=300)
        finally:
            first.send_signal(signal.SIGCONT)
    finally:
        watch.close()
    assert second.returncode == 2, err
    assert "is running on this store" in err and f"pid {first.pid}" in err, err
    assert "Traceback" not in err and out == ""
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    assert json.loads(out)["swapped"]


def _serves(base: str, model_id: str, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if httpx.get(f"{base}/healthz").json()["model_id"] == model_id:
            return True
        time.sleep(0.1)
    return False


def test_a_cli_reindex_beside_a_live_server_moves_it(
    settings: Settings, pipeline: FacePipeline, tmp_path: Path
) -> None:
    """The server learns of the swap from the store and serves the new model within
    seconds, with every face in its index; its next start serves it too."""
    data_dir = tmp_path / "data"
    store = _store(settings.model_copy(update={"data_dir": data_dir}), pipeline, photos=4)
    server = LiveServer(data_dir, cache_from=settings.cache_dir)
    with server:
        server.start()
        assert httpx.get(f"{server.base}/healthz").json()["model_id"] != FLIP
        faces = server.metric("matcher_index_case_faces")
        reindex = _reindex(data_dir, "--flip")
        out, err = reindex.communicate(timeout=600)
        assert reindex.returncode == 0, err
        assert json.loads(out)["swapped"] and "Traceback" not in err
        assert (recorded_model(store) or {})["embed_flip"] is True
        assert _serves(server.base, FLIP, within_s=30)
        assert server.metric("matcher_index_case_faces") == faces > 0
    server.start()
    with server:
        assert httpx.get(f"{server.base}/healthz").json()["model_id"] == FLIP


def test_an_api_reindex_on_one_server_moves_the_other(
    settings: Settings, pipeline: FacePipeline, tmp_path: Path
) -> None:
    """Two servers of one store; the reindex runs in one, the other follows the swap, and a
    case photo the other stored while the reindex ran is matchable under the new model."""
    store = _store(settings.model_copy(update={"data_dir": tmp_path}), pipeline, photos=6)
    with TestClient(create_app(store, pipeline)) as one, \
            TestClient(create_app(store, pipeline)) as other:
        admin = {"Authorization": "Bearer " + new_key(
            one.app.state.matcher.sessions, Role.ADMIN, "ops")[1]}  # type: ignore[attr-defined]
        started = one.post("/v1/admin/reindex", json={"embed_flip": True}, headers=admin)
        assert started.status_code == 202, started.text
        deadline = time.monotonic() + 300
        while (state := one.get("/v1/admin/reindex", headers=admin).json())["running"]:
            assert time.monotonic() < deadline, state
            time.sleep(0.1)
        assert state["error"] is None and state["report"]["swapped"], state
        followed: Runtime = other.app.state.matcher  # type: ignore[attr-defined]
        while followed.model_id != FLIP:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        reindexed: Runtime = one.app.state.matcher  # type: ignore[attr-defined]
        assert len(followed.index) == len(reindexed.index) > 0
        with followed.sessions() as session:
            assert count_faces_without_vectors(session, FLIP) == 0
