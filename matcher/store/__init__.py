"""The store: SQLAlchemy models, Alembic migrations and photo files. It is the truth; indexes
are rebuilt from it. Never imports matcher.api or matcher.embed.

Every query lives here, in a function named for what it does, in the module of its subject:
`cases` (and their photos), `sightings`, `faces`, `candidates`, `decisions`, `review` (the
queue), `vectors` (descriptors by model), `face_rows` (what the indexes hold) and `digest`
(its fingerprint), `keys`, `audit`, `holders`, `retention`, `fitting`; `photos` keeps the
photo files (`orphans` sweeps those no row references), `models` the tables, `db` engines and
migrations. The functions add and flush but never commit: the caller owns the transaction.

```python
engine = open_engine(store_url(database_url, data_dir)); migrate(engine)
Session = session_factory(engine)
with Session() as session, photo_transaction(session, data_dir) as photos:
    photo = photos.store(jpeg_bytes)                  # re-encoded, no EXIF/GPS, by sha256
    sighting = create_sighting(session, NewSighting(app="tips"), photo, faces)
index = FaceIndex.from_rows(model_id, 128, active_case_face_rows(session, model_id))
key, plaintext = create_key(session, Role.INVESTIGATOR, "desk 4")   # plaintext shown once
```
"""

# What open_engine returns. The service holds one (to dispose of it, to empty SQLite's log) and
# names its type from here: it imports nothing from SQLAlchemy but the session types.
from sqlalchemy import Engine

from matcher.store.alerts import Alert, AlertSequence
from matcher.store.audit import AuditEntry, list_events, record
from matcher.store.candidates import (
    NewCandidate,
    add_candidates,
    list_candidates,
    matchable,
    set_candidate_status,
)
from matcher.store.cases import (
    NewCase,
    add_case_photo,
    create_case,
    delete_case,
    delete_case_photo,
    edit_case,
    get_case,
    list_cases,
    set_case_status,
    set_public_fields,
)
from matcher.store.db import (
    current_revision,
    migrate,
    open_engine,
    session_factory,
    session_scope,
    store_url,
    truncate_wal,
)
from matcher.store.digest import FaceSetSummary
from matcher.store.errors import (
    CandidateNotFound,
    CaseNotFound,
    InvalidRecord,
    MigrationError,
    NotFound,
    SightingNotFound,
    StoreError,
    UnsupportedPhoto,
)
from matcher.store.face_rows import (
    FaceRowBatch,
    active_case_face_rows,
    active_case_face_summary,
    active_case_faces_by_category,
    case_face_rows,
)
from matcher.store.faces import NewFace, get_faces
from matcher.store.index_log import IndexChange
from matcher.store.keys import (
    ApiKeyNotFound,
    LastAdminKey,
    create_key,
    list_keys,
    revoke_key,
    verify_key,
)
from matcher.store.models import (
    ApiKey,
    AuditEvent,
    Candidate,
    Case,
    CasePhoto,
    Decision,
    Face,
    FaceVector,
    Sighting,
    descriptor_from_bytes,
    descriptor_to_bytes,
)
from matcher.store.orphans import orphan_files, remove_orphans
from matcher.store.partners import Delivery, Partner
from matcher.store.photos import (
    PhotoWriter,
    StoredPhoto,
    is_referenced,
    photo_path,
    photo_transaction,
    read_photo,
    store_photo,
)
from matcher.store.reports import SightingReport
from matcher.store.serving import ServingModel
from matcher.store.sightings import NewSighting, create_sighting, get_sighting, list_sightings

# The shared words, defined in matcher/vocabulary.py: re-exported so that the importers that
# found them here (the CLI, scripts, tests) keep working. New code imports matcher.vocabulary.
from matcher.vocabulary import (
    PUBLIC_CASE_FIELDS,
    SYSTEM,
    Actor,
    CandidateStatus,
    CaseStatus,
    Category,
    Role,
    Sex,
    Verdict,
)

__all__ = [
    "SYSTEM",
    "Engine",
    "Actor",
    "Alert",
    "AlertSequence",
    "IndexChange",
    "ServingModel",
    "Delivery",
    "Partner",
    "AuditEntry",
    "PUBLIC_CASE_FIELDS",
    "ApiKey",
    "ApiKeyNotFound",
    "LastAdminKey",
    "AuditEvent",
    "Candidate",
    "CandidateNotFound",
    "CandidateStatus",
    "Case",
    "CaseNotFound",
    "CasePhoto",
    "CaseStatus",
    "Category",
    "Decision",
    "Face",
    "FaceVector",
    "FaceRowBatch",
    "FaceSetSummary",
    "InvalidRecord",
    "MigrationError",
    "NewCandidate",
    "NewCase",
    "NewFace",
    "NewSighting",
    "NotFound",
    "PhotoWriter",
    "Role",
    "Sex",
    "Sighting",
    "SightingReport",
    "SightingNotFound",
    "StoreError",
    "StoredPhoto",
    "UnsupportedPhoto",
    "Verdict",
    "active_case_face_rows",
    "active_case_faces_by_category",
    "case_face_rows",
    "active_case_face_summary",
    "add_candidates",
    "add_case_photo",
    "create_case",
    "create_key",
    "create_sighting",
    "current_revision",
    "store_url",
    "delete_case",
    "delete_case_photo",
    "descriptor_from_bytes",
    "descriptor_to_bytes",
    "edit_case",
    "get_case",
    "get_faces",
    "get_sighting",
    "is_referenced",
    "list_candidates",
    "list_cases",
    "list_events",
    "list_keys",
    "list_sightings",
    "open_engine",
    "matchable",
    "migrate",
    "orphan_files",
    "photo_path",
    "photo_transaction",
    "read_photo",
    "record",
    "remove_orphans",
    "revoke_key",
    "session_factory",
    "session_scope",
    "set_candidate_status",
    "set_case_status",
    "set_public_fields",
    "store_photo",
    "truncate_wal",
    "verify_key",
]
