"""The server's housekeeping thread: drops from the indexes the faces another process
removed from the store (a `matcher purge` beside the server), compacts an index once removals
have piled up (found cases, removed photos, purges leave tombstones), applies the retention
rule, sweeps the photo files no row references, and empties SQLite's write-ahead log (an
erasure whose own checkpoint a reader blocked is wiped here at the latest)."""

from __future__ import annotations

import datetime as dt
import logging
import threading

from matcher.service.holders import Hold, keeps_house
from matcher.service.retention import purge_sightings, sweep_orphans, wipe_deleted
from matcher.service.runtime import Runtime
from matcher.store import session_scope
from matcher.store.index_log import forget_changes
from matcher.store.models import utcnow

log = logging.getLogger(__name__)

# How long the index change log keeps a change (index_follow.py).
CHANGES_KEPT = dt.timedelta(days=1)


def maintain(matcher: Runtime, keeps_house: bool = True) -> None:
    """One round: faces gone from the store dropped and compaction where needed (this
    process's indexes); then, when `keeps_house` (one server of the store does: holders.py),
    the retention purge, the orphan sweep and the index changes older than a day forgotten;
    then the write-ahead log emptied (SQLite)."""
    matcher.drop_removed_faces()
    serving = matcher.serving
    for name, index in (("case", serving.index), ("sighting", serving.sighting_index)):
        if index.needs_rebuild:
            log.info("compacting the %s index (%d faces, %d removed)", name, len(index),
                     index.tombstone_count)
            index.compact()  # built off the lock; searches go on meanwhile
    if keeps_house:
        days = matcher.settings.sighting_retention_days
        if days is not None:
            purge_sightings(matcher, days)
        sweep_orphans(matcher)
        with session_scope(matcher.sessions) as session:  # a process a day behind rebuilds
            forget_changes(session, utcnow() - CHANGES_KEPT)
    wipe_deleted(matcher, "housekeeping")


class Maintenance:
    """Runs `maintain` every `settings.maintenance_interval_s` until stopped; the store's
    housekeeping when this server, holding the store with `hold`, keeps house."""

    def __init__(self, matcher: Runtime, hold: Hold) -> None:
        self.matcher = matcher
        self.hold = hold
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="maintenance", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=60)

    def _loop(self) -> None:
        while not self._stop.wait(self.matcher.settings.maintenance_interval_s):
            try:
                maintain(self.matcher, keeps_house(self.matcher.sessions, self.hold))
            except Exception:  # housekeeping must never take the service down
                log.exception("maintenance round failed; the next one retries")
