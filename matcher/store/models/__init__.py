"""The tables (SQLAlchemy 2), one module per subject: cases and their photos (`cases`),
sightings, faces and their descriptors (`faces`), candidates and decisions (`review`), keys,
the audit trail and the store's holders (`access`); `base` holds what they share.

The schema itself is created by the Alembic migrations in `matcher/store/migrations`; these
classes must match them (tests/store/test_migrations.py compares the two). Importing this
package puts every table on `Base.metadata`, which the migrations and that test read.
"""

from matcher.store.models.access import ApiKey, AuditEvent, StoreHolder
from matcher.store.models.base import MODEL_ID_LENGTH, Base, utcnow
from matcher.store.models.cases import Case, CasePhoto
from matcher.store.models.faces import (
    Face,
    FaceVector,
    Sighting,
    descriptor_from_bytes,
    descriptor_to_bytes,
    descriptors_from_bytes,
)
from matcher.store.models.review import SMALLEST_THRESHOLD, Candidate, Decision, distance_ratio

# The words these columns hold are defined in matcher/vocabulary.py, which every layer may
# import; scripts that import them from here still find them.
from matcher.vocabulary import CandidateStatus, CaseStatus, Category, Role, Sex, Verdict

__all__ = [
    "MODEL_ID_LENGTH",
    "SMALLEST_THRESHOLD",
    "ApiKey",
    "AuditEvent",
    "Base",
    "Candidate",
    "CandidateStatus",
    "Case",
    "CasePhoto",
    "CaseStatus",
    "Category",
    "Decision",
    "Face",
    "FaceVector",
    "Role",
    "Sex",
    "Sighting",
    "StoreHolder",
    "Verdict",
    "descriptor_from_bytes",
    "descriptor_to_bytes",
    "descriptors_from_bytes",
    "distance_ratio",
    "utcnow",
]
