"""The feed tip apps show: the alerts whose area covers a point now, nearest first, and what
changed since an app last asked.

What is in the feed at a moment t, seen from a point: every active alert whose radius at t
covers the point, and every alert resolved less than `alert_resolved_hours` before t whose
radius covered the point when it was resolved (so apps can take it down and say the person was
found). Without a point: every active alert, and the recently resolved ones.

A view is (change number, moment): the feed as the store was at that number, the radii as they
were at that moment. `updated_since=<cursor>` answers the alerts whose place in the feed
changed between the cursor's view and now: new (`issued`), grown to cover the point
(`widened`), `resolved`, or shown before and showing something else now (`updated`: the case's
public fields or photos were edited); nothing else, and nothing twice across polls that chain
their cursors. Pages are keyset-paged on (distance, alert id), or (newest first) on the alert id,
and every page of a listing is computed at the view of its first page, so paging neither skips
nor repeats an alert however the feed changes meanwhile. Cursors live as long as a resolved
alert stays in the feed: an older one answers CursorExpired (start again without it).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from matcher.service.alert_areas import distances_km
from matcher.service.alert_book import Snapshot
from matcher.service.errors import ServiceError
from matcher.service.runtime import Runtime
from matcher.store import InvalidRecord
from matcher.store.alerts import public_cases
from matcher.vocabulary import AlertChange, AlertOutcome, AlertStatus

MAX_LIMIT = 500


class CursorExpired(ServiceError):
    """A cursor older than the feed keeps resolved alerts: list the feed again without it."""


@dataclass(frozen=True)
class View:
    """The feed as of change number `seq`, with radii as of `at` (Unix seconds)."""

    seq: int
    at: float


@dataclass(frozen=True)
class FeedQuery:
    lat: float | None = None
    lon: float | None = None
    updated_since: str | None = None  # a `changes_cursor` handed out earlier
    cursor: str | None = None  # a `next_cursor`: the next page of the same listing
    limit: int = 100

    def __post_init__(self) -> None:
        if (self.lat is None) != (self.lon is None):
            raise InvalidRecord("lat and lon go together")
        if self.lat is not None and self.lon is not None and not (
                -90 <= self.lat <= 90 and -180 <= self.lon <= 180):
            raise InvalidRecord(f"not a position: {self.lat}, {self.lon}")
        if not 1 <= self.limit <= MAX_LIMIT:
            raise InvalidRecord(f"limit is 1 to {MAX_LIMIT}")

    @property
    def point(self) -> tuple[float, float] | None:
        return None if self.lat is None or self.lon is None else (self.lat, self.lon)


@dataclass(frozen=True)
class FeedEntry:
    alert_id: int
    case_id: int
    status: AlertStatus
    outcome: AlertOutcome | None
    issued_at: dt.datetime
    resolved_at: dt.datetime | None
    radius_km: float | None  # at the view (at the resolution, once resolved); None: everywhere
    distance_km: float | None  # from the point asked about (None without one, or erased)
    change: AlertChange | None  # with updated_since: why it is in the answer
    fields: dict[str, Any]  # the case's public fields
    photo_ids: list[int]  # its public photos, while the alert is active


@dataclass(frozen=True)
class AlertFeed:
    alerts: list[FeedEntry]
    next_cursor: str | None  # the next page, None on the last
    changes_cursor: str  # pass as `updated_since` on the next poll
    etag: str  # changes whenever this page's content does


@dataclass(frozen=True)
class _Page:
    """What a page cursor carries: the listing's view, its question, and where it stopped."""

    view: View
    since: View | None
    point: tuple[float, float] | None
    after: tuple[float, int]  # the last (sort key, alert id) handed out


def alert_feed(matcher: Runtime, query: FeedQuery) -> AlertFeed:
    """A page of the feed (see the module's docstring)."""
    window_s = matcher.settings.alert_resolved_hours * 3600
    now = matcher.clock().timestamp()
    snapshot = matcher.alert_book.snapshot(matcher.sessions, now, 2 * window_s)
    page = _page_of(query, snapshot, now)
    for view in (page.view, page.since):
        if view is not None and view.at < now - window_s:
            raise CursorExpired("the cursor is older than the feed keeps resolved alerts: "
                                "list the feed again without it")
    chosen, keys, more = _select(snapshot, page, window_s, query.limit)
    entries = _entries(matcher, snapshot, chosen)
    next_cursor = None
    if more and len(chosen.ids):
        last = (float(keys[-1]), int(chosen.ids[-1]))
        next_cursor = _encode("p1", _page_json(_Page(page.view, page.since, page.point, last)))
    changes = _encode("c1", {"s": page.view.seq, "t": page.view.at})
    return AlertFeed(entries, next_cursor, changes, _etag(entries, more))


@dataclass(frozen=True)
class _Chosen:
    ids: NDArray[np.int64]
    rows: NDArray[np.int64]  # positions in the snapshot
    radius: NDArray[np.float64]
    distance: NDArray[np.float64]
    resolved: NDArray[np.bool_]
    change: list[AlertChange | None]


def _visible(snapshot: Snapshot, view: View, point: tuple[float, float] | None,
             window_s: float) -> tuple[NDArray[np.bool_], NDArray[np.bool_], NDArray[np.float64],
                                       NDArray[np.float64]]:
    """Which alerts are in the feed at `view` (and which of those are resolved then), with
    each alert's radius and distance."""
    present = snapshot.issued_seq <= view.seq
    resolved = snapshot.resolved_seq <= view.seq
    until = np.where(resolved, snapshot.resolved, view.at)
    radius = snapshot.radii_km((until - snapshot.issued) / 3600)
    recent = ~resolved | (view.at - snapshot.resolved <= window_s)
    if point is None:
        distance = np.full(len(snapshot.ids), np.nan)
        covered = np.ones(len(snapshot.ids), dtype=bool)
    else:
        distance = distances_km(point[0], point[1], snapshot.lats, snapshot.lons)
        # An erased case's alert has no place left: every app is told it is resolved.
        covered = (distance <= radius) | (resolved & np.isnan(distance))
    return present & recent & covered, resolved, radius, distance


def _select(snapshot: Snapshot, page: _Page, window_s: float,
            limit: int) -> tuple[_Chosen, NDArray[np.float64], bool]:
    """The page's alerts in order, their sort keys, and whether more follow."""
    shown, resolved, radius, distance = _visible(snapshot, page.view, page.point, window_s)
    kinds = np.zeros(len(snapshot.ids), dtype=np.int8)  # 0: no change, else an AlertChange
    if page.since is not None:
        before, resolved_before, _, _ = _visible(snapshot, page.since, page.point, window_s)
        new = shown & ~resolved & ~(before & ~resolved_before)
        kinds[new & (snapshot.issued_seq > page.since.seq)] = 1
        kinds[new & (snapshot.issued_seq <= page.since.seq)] = 2
        kinds[shown & resolved & (snapshot.resolved_seq > page.since.seq)] = 3
        # Edited within (since, view]: a later edit is the next poll's (its view is this one).
        edited = (snapshot.updated_seq > page.since.seq) & (snapshot.updated_seq <= page.view.seq)
        kinds[(kinds == 0) & shown & ~resolved & before & ~resolved_before & edited] = 4
        shown = kinds > 0
    keys = (np.where(np.isnan(distance), -1.0, distance) if page.point is not None
            else -snapshot.ids.astype(np.float64))
    after_key, after_id = page.after
    shown &= (keys > after_key) | ((keys == after_key) & (snapshot.ids > after_id))
    candidates = np.flatnonzero(shown)
    order = candidates[np.lexsort((snapshot.ids[candidates], keys[candidates]))]
    more = len(order) > limit
    rows = order[:limit]
    names = (None, AlertChange.ISSUED, AlertChange.WIDENED, AlertChange.RESOLVED,
             AlertChange.UPDATED)
    chosen = _Chosen(snapshot.ids[rows], rows, radius[rows], distance[rows], resolved[rows],
                     [names[int(kind)] for kind in kinds[rows]])
    return chosen, keys[rows], more


def _entries(matcher: Runtime, snapshot: Snapshot, chosen: _Chosen) -> list[FeedEntry]:
    rows = [snapshot.rows[int(alert_id)] for alert_id in chosen.ids]
    with matcher.sessions() as session:
        cases = public_cases(session, (row.case_id for row in rows))
    entries = []
    for index, row in enumerate(rows):
        resolved = bool(chosen.resolved[index])
        public = cases.get(row.case_id)
        if not resolved and (public is None or not (public.fields or public.photo_ids)):
            continue  # a case that publishes nothing shows nothing, not even its id
        radius, distance = float(chosen.radius[index]), float(chosen.distance[index])
        entries.append(FeedEntry(
            alert_id=row.id, case_id=row.case_id,
            status=AlertStatus.RESOLVED if resolved else AlertStatus.ACTIVE,
            outcome=row.outcome if resolved else None, issued_at=row.issued_at,
            resolved_at=row.resolved_at if resolved else None,
            radius_km=None if math.isinf(radius) else round(radius, 3),
            distance_km=None if math.isnan(distance) else round(distance, 3),
            change=chosen.change[index], fields={} if public is None else public.fields,
            photo_ids=[] if resolved or public is None else public.photo_ids))
    return entries


def _etag(entries: list[FeedEntry], more: bool) -> str:
    body = json.dumps([[e.alert_id, e.case_id, e.status.value, e.outcome, e.radius_km,
                        e.distance_km, e.change, e.fields, e.photo_ids] for e in entries]
                      + [more], sort_keys=True, default=str)
    return '"' + hashlib.sha256(body.encode()).hexdigest()[:32] + '"'


# --- cursors: opaque to apps, checked where they come back ---------------------------------


def _page_of(query: FeedQuery, snapshot: Snapshot, now: float) -> _Page:
    """The page a query asks for: the first of a listing at the current view, or the one a
    page cursor names (whose question the other parameters, if sent, must repeat)."""
    since = None if query.updated_since is None else _changes_view(query.updated_since)
    if query.cursor is None:
        start = (-math.inf, 0)
        return _Page(View(snapshot.seq, now), since, query.point, start)
    page = _page_from(_decode("p1", query.cursor))
    if (query.point is not None and query.point != page.point) or (
            since is not None and since != page.since):
        raise InvalidRecord("this cursor is the next page of another listing: send it alone, "
                            "or with the lat, lon and updated_since of its first page")
    if page.view.seq > snapshot.seq:
        raise InvalidRecord("not a cursor of this feed")
    return page


def _changes_view(cursor: str) -> View:
    return _view(_decode("c1", cursor))


def _view(data: Any) -> View:
    seq, at = data.get("s"), data.get("t")
    if not (isinstance(seq, int) and isinstance(at, int | float) and math.isfinite(at)):
        raise InvalidRecord("not a cursor of this feed")
    return View(seq, float(at))


def _page_json(page: _Page) -> dict[str, Any]:
    return {"s": page.view.seq, "t": page.view.at,
            "since": None if page.since is None else [page.since.seq, page.since.at],
            "p": None if page.point is None else list(page.point),
            "k": [page.after[0], page.after[1]]}


def _page_from(data: Any) -> _Page:
    try:
        since, point, (key, last_id) = data["since"], data["p"], data["k"]
        page = _Page(
            _view(data), None if since is None else View(int(since[0]), float(since[1])),
            None if point is None else (float(point[0]), float(point[1])),
            (float(key), int(last_id)))
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise InvalidRecord("not a cursor of this feed") from error
    if page.point is not None:
        FeedQuery(lat=page.point[0], lon=page.point[1])  # refuses a position out of range
    return page


def _encode(kind: str, data: dict[str, Any]) -> str:
    text = json.dumps(data, separators=(",", ":")).encode()
    return kind + "." + base64.urlsafe_b64encode(text).decode().rstrip("=")


def _decode(kind: str, cursor: str) -> Any:
    prefix, _, body = cursor.partition(".")
    if prefix != kind:
        raise InvalidRecord(f"not a {'page' if kind == 'p1' else 'changes'} cursor of this "
                            "feed")
    try:
        data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (binascii.Error, ValueError) as error:
        raise InvalidRecord("not a cursor of this feed") from error
    if not isinstance(data, dict):
        raise InvalidRecord("not a cursor of this feed")
    return data
