"""The public feed of active cases: only the fields each case's manager made public."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from matcher.service.context import Matcher
from matcher.store import Case, CaseNotFound, get_case, list_cases, read_photo
from matcher.vocabulary import CaseStatus

PAGE = 500


@dataclass(frozen=True)
class Alert:
    case_id: int
    fields: dict[str, Any]  # public fields only (no "photos": those are photo_ids)
    photo_ids: list[int]  # empty unless the case made its photos public


@dataclass(frozen=True)
class AlertFeed:
    alerts: list[Alert]
    etag: str  # changes whenever anything in the feed changes


def _public(case: Case) -> Alert:
    fields: dict[str, Any] = {}
    for name in case.public_fields:
        if name == "photos":
            continue
        value = getattr(case, name)
        fields[name] = value.isoformat() if isinstance(value, dt.date) else (
            value.value if hasattr(value, "value") else value)
    photos = [p.id for p in case.photos] if "photos" in case.public_fields else []
    return Alert(case.id, fields, photos)


def alert_feed(matcher: Matcher) -> AlertFeed:
    alerts: list[Alert] = []
    with matcher.sessions() as session:
        after = 0
        while True:
            page = list_cases(session, status=CaseStatus.ACTIVE, limit=PAGE, after_id=after)
            if not page:
                break
            # A case with nothing public is not in the feed at all: its id, its being
            # active and when it closes are not the public's either.
            alerts.extend(alert for alert in map(_public, page)
                          if alert.fields or alert.photo_ids)
            after = page[-1].id
    body = json.dumps([[a.case_id, a.fields, a.photo_ids] for a in alerts], sort_keys=True)
    return AlertFeed(alerts, '"' + hashlib.sha256(body.encode()).hexdigest()[:32] + '"')


def public_photo(matcher: Matcher, case_id: int, photo_id: int) -> bytes:
    """JPEG bytes of an active case's photo, only when the case made its photos public."""
    with matcher.sessions() as session:
        case = get_case(session, case_id)
        photo = next((p for p in case.photos if p.id == photo_id), None)
        if (case.status is not CaseStatus.ACTIVE or "photos" not in case.public_fields
                or photo is None):
            raise CaseNotFound(f"no public photo {photo_id} of case {case_id}")
        path = photo.path
    return read_photo(matcher.settings.data_dir, path)
