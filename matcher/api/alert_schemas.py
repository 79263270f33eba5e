"""The bodies of the alert routes: the feed tip apps read, and an alert as its case manager
sees it."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from matcher.vocabulary import AlertChange, AlertOutcome, AlertStatus, Category


class FeedAlert(BaseModel):
    """An alert as a tip app shows it: public fields only."""

    alert_id: int
    case_id: int
    status: AlertStatus
    outcome: AlertOutcome | None = Field(description="once resolved: found or cancelled")
    issued_at: dt.datetime
    resolved_at: dt.datetime | None
    radius_km: float | None = Field(description=(
        "the radius of its area now (when it was resolved, once resolved); null: the whole "
        "territory"))
    distance_km: float | None = Field(description=(
        "great-circle km from the point asked about to where the person was last seen; null "
        "without a point"))
    change: AlertChange | None = Field(description=(
        "with updated_since: why it is in the answer (issued, widened into the point, "
        "resolved, or updated: its public fields or photos changed); null otherwise"))
    fields: dict[str, object] = Field(description="the fields its case manager made public")
    photo_urls: list[str] = Field(description="its public photos, while the alert is active")


class AlertPage(BaseModel):
    alerts: list[FeedAlert]
    next_cursor: str | None = Field(description=(
        "pass as `cursor` for the next page of this listing; null on the last"))
    changes_cursor: str = Field(description=(
        "pass as `updated_since` on the next poll, after the last page: the answer then holds "
        "only what changed since this listing"))


class AlertPublic(BaseModel):
    """An alert as its case manager sees it."""

    model_config = {"from_attributes": True}

    id: int
    case_id: int
    category: Category
    status: AlertStatus
    outcome: AlertOutcome | None
    lat: float | None = Field(description="the last-seen point it was issued at")
    lon: float | None
    last_seen_at: dt.datetime | None
    issued_at: dt.datetime
    issued_by: str
    resolved_at: dt.datetime | None
    schedule: list[tuple[float, float | None]] = Field(description=(
        "its area by the hours since the issue: [from hour, radius km (null: the whole "
        "territory)], as it was issued"))
    radius_km: float | None = Field(description=(
        "the radius now (when it was resolved, once resolved); null: the whole territory"))
