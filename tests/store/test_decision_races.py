"""Decisions posted at the same moment on the same candidates, on SQLite and PostgreSQL: each
candidate's status follows its latest decision (issue 19, defect 1).

On SQLite `with_for_update` renders nothing, and the ORM skips an UPDATE whose value equals the
one it read: a `match` read as `confirmed` before a concurrent `not_match` committed left the
candidate `rejected` under a later `match`, missing from the case's matches.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, sessionmaker

from matcher.store import (
    Candidate,
    Decision,
    NewCandidate,
    NewSighting,
    Verdict,
    add_candidates,
    add_case_photo,
    create_case,
    create_sighting,
    session_scope,
    store_photo,
)
from matcher.store.decisions import decide
from tests.store.builders import MODEL, new_case, new_face, pixels

CANDIDATES = 8
ROUNDS = 3
# Long enough for every thread to read its candidate and queue behind the held write.
QUEUE_S = 1.0


def _candidates(factory: sessionmaker[Session], data_dir: Path) -> list[int]:
    with session_scope(factory) as session:
        case = create_case(session, new_case("raced"))
        photo = add_case_photo(session, case.id, store_photo(data_dir, pixels(1)),
                               [new_face(1)], age_at_photo=8)
        faces = [create_sighting(session, NewSighting(app="tips"),
                                 store_photo(data_dir, pixels(100 + i)),
                                 [new_face(100 + i)]).faces[0].id for i in range(CANDIDATES)]
        rows = add_candidates(session, [
            NewCandidate(face, case.id, photo.faces[0].id, 0.3, 1, MODEL, 0.6)
            for face in faces])
        ids = [row.id for row in rows]
    for candidate in ids:  # confirmed first, as in the attack
        with session_scope(factory) as session:
            decide(session, candidate, Verdict.MATCH, reviewer="first")
    return ids


def test_every_candidate_s_status_follows_its_latest_decision_under_concurrency(
    factory: sessionmaker[Session], engine: Engine, data_dir: Path
) -> None:
    """Per round, two investigators who disagree post `match` and `not_match` on every
    candidate at once while another transaction holds a write on the candidates, so that all
    the decisions are in flight together and go on in whatever order the database lets them."""
    ids = _candidates(factory, data_dir)
    errors: list[BaseException] = []

    def investigator(candidate: int, verdict: Verdict) -> None:
        try:
            # One transaction per decision, as the service's decide_candidate.
            with session_scope(factory) as session:
                decide(session, candidate, verdict, reviewer=f"inv {verdict.value}")
        except BaseException as error:  # collected and re-raised in the main thread
            errors.append(error)

    for _ in range(ROUNDS):
        with engine.begin() as holder:
            # A write held open: SQLite's write lock, PostgreSQL's row locks.
            holder.execute(update(Candidate).values(reviewed_by=Candidate.reviewed_by))
            threads = [threading.Thread(target=investigator, args=(candidate, verdict))
                       for candidate in ids for verdict in (Verdict.MATCH, Verdict.NOT_MATCH)]
            for thread in threads:
                thread.start()
            time.sleep(QUEUE_S)
        for thread in threads:
            thread.join()
    assert errors == []

    with factory() as session:
        latest: dict[int, Decision] = {}
        for decision in session.scalars(select(Decision).order_by(Decision.id)):
            assert decision.candidate_id is not None
            latest[decision.candidate_id] = decision
        rows = session.execute(select(Candidate.id, Candidate.status,
                                      Candidate.reviewed_by)).all()
    assert sorted(latest) == sorted(ids)
    lost = {row.id: (latest[row.id].verdict.value, latest[row.id].reviewer, row.status.value,
                     row.reviewed_by) for row in rows
            if row.status is not latest[row.id].verdict.candidate_status
            or row.reviewed_by != latest[row.id].reviewer}
    assert lost == {}, "candidate: (latest verdict and reviewer, status and reviewer)"
