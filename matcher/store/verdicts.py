"""What was decided on a pair of sighting face and case before a given decision.

Why: a decision that changes the pair's verdict must say why (issue 21), so the service asks,
inside the transaction that stores the new decision, what the verdict was just before it.
Read after `decide` has locked the pair (decisions.py), it sees every decision committed
before.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from matcher.store.models import Decision
from matcher.vocabulary import Verdict


def verdict_before(session: Session, decision: Decision) -> Verdict | None:
    """The latest verdict on the decision's face and case stored before it; None if none."""
    found = session.scalar(
        select(Decision.verdict).where(
            Decision.sighting_face_id == decision.sighting_face_id,
            Decision.case_id == decision.case_id, Decision.id < decision.id)
        .order_by(Decision.id.desc()).limit(1))
    return None if found is None else Verdict(found)
