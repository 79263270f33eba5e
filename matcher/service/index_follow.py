"""Keeps this process's indexes equal to the store while other processes change it (issue 23).

Several processes may serve one store. Each holds its own indexes; each change to the faces
that can be matched is a row of the store's change log, in commit order
(matcher/store/index_log.py). A follower thread applies the rows this process has not seen, at
once when PostgreSQL's LISTEN wakes it, else every `index_follow_s` (the only path on SQLite).
Every change is applied so that applying it twice, or after the process made it itself, changes
nothing (`FaceIndex.add_new`, removals of what is held): the process's own use cases keep
updating its indexes directly, without waiting for the log.

A process that fell behind what the log keeps (it was stopped for longer than a day, or its
database connection was lost that long) rebuilds both indexes from the store, as at start-up;
`/healthz` says it is not ready meanwhile. A `model` change (a reindex swapped the model the
store serves) moves this process to that model (matcher/service/model_follow.py).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace

from matcher.service.model_follow import follow_model
from matcher.service.retention import drop_faces
from matcher.service.runtime import Runtime
from matcher.store.cases import case_status
from matcher.store.face_rows import case_face_rows, one_sighting_face_rows
from matcher.store.index_log import (
    Change,
    ChangeKind,
    change_listener,
    changes_after,
    latest_change,
    oldest_change,
)
from matcher.store.models import utcnow
from matcher.vocabulary import CaseStatus

log = logging.getLogger(__name__)

# How often the listening thread looks up from its wait to see whether it should stop: a
# server's stop waits for it at most this long.
STOP_CHECK_S = 0.2


@dataclass(frozen=True)
class FollowStatus:
    """How far this process's indexes are behind the store."""

    applied: int  # the number of the last change applied
    behind: int  # changes committed and not yet applied
    lag_s: float  # how long the oldest of those has waited (0: none)
    rebuilding: bool


class IndexFollower:
    """Applies the store's index changes to `matcher`'s indexes. `catch_up` may be called from
    any thread (one at a time applies); `start` runs it in a thread until `stop`."""

    def __init__(self, matcher: Runtime) -> None:
        self.matcher = matcher
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._rebuilding = False
        self._threads: list[threading.Thread] = []
        self.last_status = FollowStatus(matcher.index_seq, 0, 0.0, False)  # of the last round

    @property
    def applied(self) -> int:
        return self.matcher.index_seq

    def start(self) -> None:
        self._threads = [threading.Thread(target=self._loop, name="index-follow", daemon=True)]
        if self.matcher.engine.dialect.name == "postgresql":
            self._threads.append(threading.Thread(target=self._listen, name="index-listen",
                                                  daemon=True))
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def status(self) -> FollowStatus:
        """Read from the store: how many changes are committed past what was applied."""
        with self.matcher.sessions() as session:
            waiting = changes_after(session, self.applied, limit=1)
            newest = latest_change(session)
        lag = (utcnow() - waiting[0].created_at).total_seconds() if waiting else 0.0
        return FollowStatus(self.applied, max(newest - self.applied, 0), max(lag, 0.0),
                            self._rebuilding)

    def catch_up(self) -> int:
        """Applies every change committed after the last one applied; returns how many."""
        done = 0
        with self._lock:
            while True:
                with self.matcher.sessions() as session:
                    oldest = oldest_change(session)
                    if oldest is not None and oldest > self.applied + 1:
                        self._rebuild(latest_change(session))
                        continue
                    changes = changes_after(session, self.applied)
                if not changes:
                    return done
                for change in changes:
                    self._apply(change)
                    self.matcher.index_seq = change.seq
                done += len(changes)

    def _rebuild(self, seq: int) -> None:
        """The log no longer holds every change after the last applied: read both indexes
        from the store again (the changes after `seq`, read before, are applied after)."""
        log.warning("this process's indexes are behind what the change log keeps (at %d, the "
                    "log starts after): rebuilding them from the store", self.applied)
        self._rebuilding = True
        self.last_status = replace(self.last_status, rebuilding=True)
        try:
            # Moves to a model change among those the log forgot, building both indexes; else
            # rebuilds each index that no longer holds exactly the store's faces.
            follow_model(self.matcher)
            self.matcher.index_seq = seq
        finally:
            self._rebuilding = False

    def _apply(self, change: Change) -> None:
        matcher = self.matcher
        if change.kind in (ChangeKind.CASE_FACES, ChangeKind.CASE_IN):
            assert change.owner_id is not None
            self._add_case(change.owner_id)
        elif change.kind is ChangeKind.CASE_OUT:
            assert change.owner_id is not None
            with matcher.case_lock, matcher.sessions() as session:
                # As the store is now: a case out and back in since is left in.
                if case_status(session, change.owner_id) is not CaseStatus.ACTIVE:
                    matcher.index.remove_owner(change.owner_id)
        elif change.kind is ChangeKind.CASE_FACES_GONE:
            drop_faces(matcher.index, change.face_ids)
        elif change.kind is ChangeKind.SIGHTING_FACES:
            assert change.owner_id is not None
            with matcher.sessions() as session:
                batches = list(one_sighting_face_rows(session, change.owner_id,
                                                      matcher.model_id))
            for ids, owners, vectors in batches:
                matcher.sighting_index.add_new(ids, owners, vectors)  # never removed before
        elif change.kind is ChangeKind.SIGHTING_FACES_GONE:
            drop_faces(matcher.sighting_index, change.face_ids)
        elif change.kind is ChangeKind.MODEL:
            follow_model(matcher)

    def _add_case(self, case_id: int) -> None:
        """Every face of the case the serving model embedded, if the case is active now (a
        later change takes it out again otherwise). A case back in matching whose faces left
        this index before comes back through a rebuild from the store, as in update_case."""
        matcher = self.matcher
        with matcher.case_lock:  # as the process's own case changes: none runs meanwhile
            with matcher.sessions() as session:
                if case_status(session, case_id) is not CaseStatus.ACTIVE:
                    return
                batches = list(case_face_rows(session, case_id, matcher.model_id))
            counts = [matcher.index.add_new(ids, owners, vectors)
                      for ids, owners, vectors in batches]
            if any(removed for _, removed in counts):
                matcher.rebuild_index()
            if any(added or removed for added, removed in counts):
                matcher.case_index_changes += 1  # a sighting searched meanwhile searches again

    def _loop(self) -> None:
        interval = self.matcher.settings.index_follow_s
        while not self._stop.is_set():
            try:
                self.catch_up()
                self.last_status = self.status()
            except Exception:  # the next round retries; the process keeps serving
                log.exception("applying the store's index changes failed; retrying")
            self._wake.wait(interval)
            self._wake.clear()

    def _listen(self) -> None:
        """PostgreSQL: wakes the loop as soon as a change commits (a notification of
        CHANNEL), so another process's change is searchable here within milliseconds."""
        while not self._stop.is_set():
            try:
                with change_listener(self.matcher.engine) as wait:
                    self._wake.set()  # changes committed before the LISTEN
                    while not self._stop.is_set():
                        if wait(STOP_CHECK_S):
                            self._wake.set()
            except Exception:  # the loop's polling goes on meanwhile
                if self._stop.is_set():
                    return
                log.warning("listening for index changes failed; polling every %.1f s until "
                            "it is back", self.matcher.settings.index_follow_s, exc_info=True)
                self._stop.wait(5.0)

