"""Every live alert in memory, as arrays, kept in step with the store by its change numbers.

Why: a tip app's question "which alerts cover this point now?" has a different answer for each
alert's age (its radius grows by the hour) and each point, so no database index answers it;
with 10,000 active alerts, reading them from the store for each request would take longer than
the whole answer may (issue 22: p50 <= 20 ms on 2 cores). The book reads only the alerts that
changed since the change number it last saw (one indexed query; one cheap read of the counter
when nothing changed), so every process of a store answers from the same truth.

An alert stays in the book while active and for `keep_s` after its resolution: long enough to
answer any cursor still valid (matcher/service/alert_feed.py).
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from sqlalchemy.orm import Session, sessionmaker

from matcher.service.alert_areas import Schedule
from matcher.store.alerts import AlertRow, alerts_changed_since, current_seq

NEVER = np.iinfo(np.int64).max  # the resolution number of an active alert


@dataclass(frozen=True)
class Snapshot:
    """The book at one change number: one array entry per alert (times in Unix seconds)."""

    seq: int  # every change up to this number is in
    rows: dict[int, AlertRow] = field(default_factory=dict)  # by alert id
    ids: NDArray[np.int64] = field(default_factory=lambda: np.empty(0, np.int64))
    lats: NDArray[np.float64] = field(default_factory=lambda: np.empty(0))  # NaN: erased
    lons: NDArray[np.float64] = field(default_factory=lambda: np.empty(0))
    issued: NDArray[np.float64] = field(default_factory=lambda: np.empty(0))
    resolved: NDArray[np.float64] = field(default_factory=lambda: np.empty(0))  # inf: active
    issued_seq: NDArray[np.int64] = field(default_factory=lambda: np.empty(0, np.int64))
    resolved_seq: NDArray[np.int64] = field(default_factory=lambda: np.empty(0, np.int64))
    updated_seq: NDArray[np.int64] = field(default_factory=lambda: np.empty(0, np.int64))  # 0
    schedule_of: NDArray[np.int64] = field(default_factory=lambda: np.empty(0, np.int64))
    schedules: tuple[Schedule, ...] = ()

    @classmethod
    def of(cls, seq: int, rows: dict[int, AlertRow]) -> Snapshot:
        ordered = sorted(rows.values(), key=lambda row: row.id)
        distinct: dict[tuple[tuple[float, float | None], ...], int] = {}
        schedule_of = [distinct.setdefault(Schedule.of(row.schedule).steps, len(distinct))
                       for row in ordered]

        def floats(values: list[float | None], missing: float) -> NDArray[np.float64]:
            return np.asarray([missing if v is None else v for v in values], dtype=np.float64)

        return cls(
            seq=seq, rows=dict(rows),
            ids=np.asarray([row.id for row in ordered], dtype=np.int64),
            lats=floats([row.lat for row in ordered], np.nan),
            lons=floats([row.lon for row in ordered], np.nan),
            issued=floats([row.issued_at.timestamp() for row in ordered], np.nan),
            resolved=floats([None if row.resolved_at is None else row.resolved_at.timestamp()
                             for row in ordered], np.inf),
            issued_seq=np.asarray([row.issued_seq for row in ordered], dtype=np.int64),
            resolved_seq=np.asarray([NEVER if row.resolved_seq is None else row.resolved_seq
                                     for row in ordered], dtype=np.int64),
            updated_seq=np.asarray([row.updated_seq or 0 for row in ordered], dtype=np.int64),
            schedule_of=np.asarray(schedule_of, dtype=np.int64),
            schedules=tuple(Schedule(steps) for steps in distinct),
        )

    def radii_km(self, hours: NDArray[np.float64]) -> NDArray[np.float64]:
        """Each alert's radius (inf: everywhere) at its own hours since the issue."""
        radii = np.empty_like(hours)
        for index, schedule in enumerate(self.schedules):
            chosen = self.schedule_of == index
            radii[chosen] = schedule.radii_km(hours[chosen])
        return radii


class AlertBook:
    """The live alerts of the store, refreshed from it at each read. Thread-safe: readers get
    an immutable snapshot; one refresh at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshot = Snapshot(seq=-1)

    def snapshot(self, sessions: sessionmaker[Session], now: float, keep_s: float) -> Snapshot:
        """The book with every change committed before this call. `now` (Unix seconds) and
        `keep_s` say which resolved alerts may go."""
        with sessions() as session:
            if current_seq(session) == self._snapshot.seq:
                return self._snapshot
        with self._lock:
            return self._refresh(sessions, now, keep_s)

    def _refresh(self, sessions: sessionmaker[Session], now: float, keep_s: float) -> Snapshot:
        old = self._snapshot
        with sessions() as session:
            # The counter first: a change committed between the two reads is read again next
            # time (its number is above `seq`), never missed.
            seq = current_seq(session)
            if seq == old.seq:
                return old
            first = old.seq < 0
            changed = alerts_changed_since(
                session, max(old.seq, 0),
                resolved_after=_utc(now - keep_s) if first else None)
        rows = dict(old.rows)
        rows.update((row.id, row) for row in changed)
        horizon = now - keep_s
        rows = {id_: row for id_, row in rows.items()
                if row.resolved_at is None or row.resolved_at.timestamp() >= horizon}
        self._snapshot = Snapshot.of(seq, rows)
        return self._snapshot


def _utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)
