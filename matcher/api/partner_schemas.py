"""The bodies of the partner routes: registration, the partner as admins see it, and its
deliveries log."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from matcher.api.schemas import InputModel
from matcher.vocabulary import AlertChange, Category, DeliveryStatus


class HomeArea(InputModel):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    radius_km: float = Field(gt=0, le=20_100)


class PartnerCreate(InputModel):
    name: str = Field(min_length=1, max_length=200)
    url: str = Field(min_length=1, max_length=2000, description=(
        "its webhook: http(s), no credentials; every alert event is POSTed there, signed"))
    categories: list[Category] = Field(min_length=1, description="the categories it shows")
    home: HomeArea | None = Field(default=None, description=(
        "its users' area: it hears of an alert once the alert's area reaches it; none: the "
        "whole territory, with every widening"))


class HomeAreaPublic(BaseModel):
    model_config = {"from_attributes": True}

    lat: float
    lon: float
    radius_km: float


class PartnerPublic(BaseModel):
    model_config = {"from_attributes": True}

    id: int
    name: str
    url: str
    categories: list[Category]
    home: HomeAreaPublic | None
    created_at: dt.datetime
    revoked_at: dt.datetime | None


class PartnerCreated(PartnerPublic):
    secret: str = Field(description=(
        "the HMAC-SHA256 key of its signatures, shown once (README.md: checking one)"))


class DeliveryPublic(BaseModel):
    model_config = {"from_attributes": True}

    id: int
    event_id: str
    alert_id: int
    kind: AlertChange
    status: DeliveryStatus
    attempts: int
    created_at: dt.datetime
    next_attempt_at: dt.datetime | None
    last_attempt_at: dt.datetime | None
    last_status: int | None = Field(description="the HTTP status it answered last")
    last_error: str | None
    delivered_at: dt.datetime | None
