"""A decision that changes what was decided on a pair must carry a note.

Why: a confirmed match turned into "not the same" (or back) is the moment an audit will ask
about; the trail keeps who and when, and the note keeps why. The rule runs inside the
transaction that stores the decision, after the pair is locked, so two investigators deciding
at once cannot slip a silent change past it: the later one sees the earlier one's verdict.
A first decision, or the same verdict again, needs no note.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from matcher.service.errors import ServiceError
from matcher.store import Decision
from matcher.store.verdicts import verdict_before


class NoteRequired(ServiceError):
    """The decision changes the pair's verdict and its note is empty (nothing is stored)."""


def require_note_for_change(session: Session, decision: Decision) -> None:
    previous = verdict_before(session, decision)
    if previous is not None and previous != decision.verdict and not decision.note.strip():
        raise NoteRequired(
            f"this changes the decision on the pair from {previous.value} to "
            f"{decision.verdict.value}: say why in the note")
