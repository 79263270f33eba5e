"""The tables of who uses the store: API keys, the audit trail of what their holders did, and
the processes that hold the store."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from matcher.store.models.base import NO_ID_REUSE, Base, Id, enum_type, one_of, utcnow
from matcher.vocabulary import Role


class AuditEvent(Base):
    """Who read or changed what, when and from where. Rows are only ever added."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_at", "at"),
        Index("ix_audit_events_object_type_object_id", "object_type", "object_id"),
        NO_ID_REUSE,
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    api_key_id: Mapped[int | None] = mapped_column(Id)  # no foreign key: the trail outlives keys
    actor: Mapped[str] = mapped_column(String(200))  # the key's name
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(32))  # read, decide, create, update, delete...
    object_type: Mapped[str] = mapped_column(String(32))  # candidate, case, case_photo, ...
    object_id: Mapped[str] = mapped_column(String(64))
    client: Mapped[str | None] = mapped_column(String(64))  # address the request came from
    detail: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)


class ApiKey(Base):
    """An API key: only its SHA-256 is stored, with a short non-secret prefix to look it up."""

    __tablename__ = "api_keys"
    __table_args__ = (one_of("role", Role), NO_ID_REUSE)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))  # hex SHA-256 of the whole key
    role: Mapped[Role] = mapped_column(enum_type(Role))
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column()
    # Written at most once a minute per key (matcher/service/key_use.py): a coarse "still in
    # use?" for the operator deciding on a revocation, not a log of requests.
    last_used_at: Mapped[dt.datetime | None] = mapped_column()


class StoreHolder(Base):
    """A process that holds the store: a server for its lifetime (several may), a reindex for
    its run (one at a time). `beat_at` is renewed while the process lives (matcher/service/
    holders.py decides when a row is stale). The id is the holder's own random token, never
    reused, so the table keeps no id sequence."""

    __tablename__ = "store_holders"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # serve, reindex
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    beat_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
