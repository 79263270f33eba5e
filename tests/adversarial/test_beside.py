"""The maintenance commands an operator runs on the data dir while the server serves it
(issue 19, defects 12 and 13).

`matcher reindex` swapped serving.json under a running server, which went on with the old
model: now its swap is recorded in the store and the server moves to it within seconds
(test_kill.py runs the live reindex beside uploads). `matcher purge` may
run beside the server, but the purged faces stayed in the server's sighting index, pushing
real links out, and a clean stop wrote them back to disk: the server's housekeeping round
must drop them, and the clean stop at the end of the suite must save none (conftest.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from typing import Any

from tests.adversarial.harness import (
    HOUSEKEEPING_S,
    REPAIRED,
    Target,
    cast,
    indexed_faces,
    indexes_equal_store,
    model_id,
)
from tests.data import REPO_ROOT

PURGED = (20, 21)  # people of the cast with no case, sighted, every candidate rejected


def _command(target: Target, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "matcher", *args, "--data-dir", str(target.server.data_dir)],
        cwd=REPO_ROOT, env={**os.environ, "MATCHER_THREADS": "1"}, capture_output=True,
        text=True, timeout=300)


def _reindex_beside(target: Target, flip: bool) -> tuple[dict[str, Any], float]:
    """`matcher reindex --[no-]flip` run beside the server; its report and how long after it
    ended the server served its model."""
    done = _command(target, "reindex", "--flip" if flip else "--no-flip")
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    assert report["swapped"] and "Traceback" not in done.stderr, done.stderr
    ended = time.monotonic()
    while model_id(target) != report["to_model"]:
        assert time.monotonic() < ended + 30, f"the server still serves {model_id(target)}"
        time.sleep(0.1)
    indexes_equal_store(target, settle_s=10)
    return report, time.monotonic() - ended


def test_a_cli_reindex_beside_the_server_moves_it(target: Target) -> None:
    served = model_id(target)
    with target.attack("matcher reindex beside the server") as run:
        # To another model than the serving one and back (test_kill.py's reindex needs it).
        there, moved = _reindex_beside(target, not served.endswith("-flip"))
        back, returned = _reindex_beside(target, served.endswith("-flip"))
        run.sent(2)
        assert back["to_model"] == served != there["to_model"]
        run.holds(f"to {there['to_model']} and back, {there['faces_embedded']} faces "
                  f"embedded by the command; the server moved {moved:.1f} s and "
                  f"{returned:.1f} s after each ended, its indexes equal to the store")


def _needed(candidates: list[dict[str, Any]]) -> bool:
    """What keeps a sighting from a purge: a confirmed candidate, or one under its threshold
    still waiting or asked about (matcher/store/retention.py)."""
    return any(row["status"] == "confirmed" or (
        row["status"] in ("pending", "needs_info") and row["under_threshold"])
        for row in candidates)


def test_a_purge_beside_the_server(target: Target) -> None:
    people = cast(max(PURGED) + 1)
    ledger = target.ledger
    with target.attack("matcher purge beside the server", faults=(REPAIRED,)) as run:
        with target.client(target.tip) as app:
            sent = [target.upload(app, people[person][1]) for person in PURGED]
        assert [answer.status_code for answer in sent] == [201, 201]
        ours = {answer.json()["id"] for answer in sent}
        with target.client(target.investigator) as desk:
            for sighting in ours:
                for row in target.candidates(desk, sighting):
                    assert target.decide(desk, row["id"], "not_match").status_code == 201
            # Every sighting nobody needs goes: ours, and any earlier one left so.
            doomed = {sighting for sighting in list(ledger.sightings)
                      if not _needed(target.candidates(desk, sighting))}
        assert ours <= doomed
        indexed = indexed_faces(target)[1]
        log_from = target.log_size()
        done = _command(target, "purge", "--older-than-days", "0")
        run.sent()
        assert done.returncode == 0, done.stderr
        purged = re.match(r"purged (\d+) sightings", done.stdout)
        assert purged is not None and int(purged[1]) >= len(doomed), done.stdout
        with target.client(target.investigator) as desk:
            kept = {s for s in doomed if desk.get(f"/v1/sightings/{s}").status_code != 404}
        assert kept == set()
        ledger.purge(doomed)
        # The server drops the purged faces from its indexes: its follower of the store's
        # index change log at once, its housekeeping round (REPAIRED) as the safety net.
        indexes_equal_store(target, settle_s=3 * HOUSEKEEPING_S)
        dropped = indexed - indexed_faces(target)[1]
        assert dropped >= sum(_fit_faces(sent)) >= len(PURGED)
        how = ("its housekeeping round" if any(
            REPAIRED in line["msg"] for line in target.log_lines(log_from))
            else "the index change log")
        run.holds(f"{purged[1]} sightings purged by another process; the server dropped their "
                  f"{dropped} faces from its sighting index within {3 * HOUSEKEEPING_S:g} s "
                  f"({how})")


def _fit_faces(sent: list[Any]) -> list[int]:
    return [sum(face["fit"] for face in answer.json()["faces"]) for answer in sent]
