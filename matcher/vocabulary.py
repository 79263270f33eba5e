"""The words every layer shares: who may ask (roles, `Actor`), what a case or a candidate can
be (categories, sexes, statuses, verdicts), and the limits the api checks before the store
would refuse a value (id range, note length, the fields a case may publish).

Why a module of its own: the api validates requests against these words and the store keeps
them in its columns, but the api must not import the store. Kept here, beside neither, both
import them from one place and cannot drift apart. It imports nothing from matcher and no
SQLAlchemy (the column types built from these enums live in matcher/store/models.py), so any
layer may import it without pulling in another.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# The largest id the store's 64-bit integer keys hold: a larger one is refused where it enters
# (422), instead of overflowing the database driver (a 500).
MAX_ID = 2**63 - 1

# The longest note an investigator may attach to a decision.
NOTE_MAX = 2000


class Category(StrEnum):
    CHILD = "child"
    ELDERLY = "elderly"


class Sex(StrEnum):
    FEMALE = "female"
    MALE = "male"
    UNKNOWN = "unknown"


class CaseStatus(StrEnum):
    ACTIVE = "active"
    FOUND = "found"
    CLOSED = "closed"


class CandidateStatus(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"  # an investigator decided "match"
    REJECTED = "rejected"  # "not_match": never proposed again for this face and case
    NEEDS_INFO = "needs_info"  # parked until someone gets more (another photo, a call back)
    INCONCLUSIVE = "inconclusive"  # compared, and what there is cannot decide (revision 0014)


class Verdict(StrEnum):
    """An investigator's decision on a candidate. `needs_info` asks for more before deciding
    (the candidate stays open, in the queue's "needs info" list); `inconclusive` is the face
    examiner's conclusion that the pictures at hand cannot decide (closed, neither a match
    nor an exclusion: docs/review.md)."""

    MATCH = "match"
    NOT_MATCH = "not_match"
    NEEDS_INFO = "needs_info"
    INCONCLUSIVE = "inconclusive"

    @property
    def candidate_status(self) -> CandidateStatus:
        return {
            Verdict.MATCH: CandidateStatus.CONFIRMED,
            Verdict.NOT_MATCH: CandidateStatus.REJECTED,
            Verdict.NEEDS_INFO: CandidateStatus.NEEDS_INFO,
            Verdict.INCONCLUSIVE: CandidateStatus.INCONCLUSIVE,
        }[self]


class AlertStatus(StrEnum):
    ACTIVE = "active"  # shown where its area covers, widening with time
    RESOLVED = "resolved"  # the case was found or closed: shown as such for a while, then gone


class AlertOutcome(StrEnum):
    FOUND = "found"
    CANCELLED = "cancelled"  # closed, withdrawn by its case manager, or erased


class AlertChange(StrEnum):
    """Why an alert is in a tip app's answer to `updated_since`."""

    ISSUED = "issued"
    WIDENED = "widened"  # its area grew to cover the app's point
    RESOLVED = "resolved"
    UPDATED = "updated"  # what it shows changed: the case's public fields or photos


class DeliveryStatus(StrEnum):
    """Where an alert event for a partner's webhook stands."""

    PENDING = "pending"  # in the outbox: due, leased or waiting for its next attempt
    DELIVERED = "delivered"  # acknowledged (2xx): never sent again
    FAILED = "failed"  # given up after the retry period
    CANCELLED = "cancelled"  # its partner was removed before it went


class Role(StrEnum):
    TIP_APP = "tip_app"
    INVESTIGATOR = "investigator"
    CASE_MANAGER = "case_manager"
    ADMIN = "admin"


# Fields of a case that its manager may publish; everything else stays internal.
PUBLIC_CASE_FIELDS = frozenset({
    "category", "name", "sex", "date_of_birth", "age_when_missing", "missing_since",
    "last_seen_place", "last_seen_lat", "last_seen_lon", "last_seen_at", "description",
    "status", "photos",
})


@dataclass(frozen=True)
class Actor:
    """Who is asking: the API key (id, name, role) and the address the request came from."""

    key_id: int | None
    name: str
    role: str
    client: str | None = None


# Work the service does on its own behalf (start-up, batch jobs, tests without a key).
SYSTEM = Actor(key_id=None, name="matcher", role="system")
