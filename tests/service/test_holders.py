"""One reindex at a time per store, and none beside a server it does not run in (issue 19,
defect 12): `matcher reindex` swapped serving.json under a running server, and two at once
ended in a 286-line IntegrityError traceback."""

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
from matcher.store import Role, session_scope
from matcher.store.holders import Holder, add_holder, holders
from matcher.store.models import StoreHolder
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
    with pytest.raises(StoreBusy, match="is running on this store"):
        claim(matcher.sessions, SERVE)  # no server starts meanwhile either
    won[0].release()
    serving = claim(matcher.sessions, SERVE)
    try:
        with pytest.raises(StoreBusy, match="POST /v1/admin/reindex"):
            claim(matcher.sessions, REINDEX)
        own = claim(matcher.sessions, REINDEX, server=serving)  # the server's own reindex
        with matcher.sessions() as session:
            assert sorted(h.kind for h in holders(session)) == [REINDEX, SERVE]
        own.release()
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
        add_holder(session, Holder("live", SERVE, "elsewhere", 1, now, now))
    with pytest.raises(StoreBusy, match="a server \\(pid 1 on elsewhere"):
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
            # Nor does a server start meanwhile: the reindex would change its model under it.
            with pytest.raises(StoreBusy, match="is running on this store"), \
                    TestClient(create_app(store, pipeline)):
                pass
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


def test_a_cli_reindex_beside_a_live_server_is_refused(
    settings: Settings, pipeline: FacePipeline, tmp_path: Path
) -> None:
    """Refused while the server runs, told to use the live reindex; once the server is gone
    (here: killed, its row left behind), it runs."""
    data_dir = tmp_path / "data"
    _store(settings.model_copy(update={"data_dir": data_dir}), pipeline, photos=4)
    server = LiveServer(data_dir, cache_from=settings.cache_dir)
    with server:
        server.start()
        refused = _reindex(data_dir, "--flip")
        out, err = refused.communicate(timeout=300)
        assert refused.returncode == 2, err
        assert "a server (pid" in err and "POST /v1/admin/reindex" in err, err
        assert "Traceback" not in err
        assert not (data_dir / "serving.json").exists()
        assert httpx.get(f"{server.base}/healthz").json()["model_id"] != FLIP
        server.kill()
    after = _reindex(data_dir, "--flip")
    out, err = after.communicate(timeout=600)
    assert after.returncode == 0, err
    assert json.loads(out)["swapped"] and json.loads(
        (data_dir / "serving.json").read_text())["embed_flip"] is True


def test_an_api_reindex_is_refused_beside_another_server(
    settings: Settings, pipeline: FacePipeline, tmp_path: Path
) -> None:
    """Two servers of one store: neither reindexes while the other serves (409: the other
    would go on with the old model); alone, one does."""
    store = _store(settings.model_copy(update={"data_dir": tmp_path}), pipeline, photos=6)
    with TestClient(create_app(store, pipeline)) as one:
        admin = {"Authorization": "Bearer " + new_key(
            one.app.state.matcher.sessions, Role.ADMIN, "ops")[1]}  # type: ignore[attr-defined]
        with TestClient(create_app(store, pipeline)):
            refused = one.post("/v1/admin/reindex", json={"embed_flip": True}, headers=admin)
            assert refused.status_code == 409, refused.text
            assert refused.json()["error"] == "reindex_refused"
            assert "serves this store too" in refused.json()["detail"]
            state = one.get("/v1/admin/reindex", headers=admin).json()
            assert not state["running"] and state["error"] is None
        started = one.post("/v1/admin/reindex", json={"embed_flip": True}, headers=admin)
        assert started.status_code == 202, started.text
        deadline = time.monotonic() + 300
        while (state := one.get("/v1/admin/reindex", headers=admin).json())["running"]:
            assert time.monotonic() < deadline, state
            time.sleep(0.1)
        assert state["error"] is None and state["report"]["swapped"], state
