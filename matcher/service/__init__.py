"""Use cases, callable without HTTP: the API, the CLI, scripts and tests share them.

```python
matcher = open_runtime(settings)                    # store migrated, index rebuilt from it
case, _ = register_case(matcher, NewCase(...), [CasePhotoUpload(jpeg)])
result = ingest_sighting(matcher, jpeg, NewSighting(app="tips"))
candidates = sighting_candidates(matcher, result.sighting_id)
update_case(matcher, case.id, status="found")       # out of the index before it returns
```
Functions are synchronous and thread-safe; they may run torch and FAISS, so async callers run
them in a worker thread. They return the service's own frozen dataclasses (`records.py`, and
the results beside each function), never ORM rows; the store's errors they let through, and
the input records and queries callers build, are re-exported here, so a caller (the api)
needs no store module.
"""

from matcher.service.alert_feed import AlertFeed, CursorExpired, FeedEntry, FeedQuery, alert_feed
from matcher.service.alerts import (
    AlertExists,
    AlertRecord,
    AlertRefused,
    NoAlert,
    issue_alert,
    public_photo,
    read_alert,
    withdraw_alert,
)
from matcher.service.cases import (
    CaseMatching,
    CasePhotoResult,
    CasePhotoUpload,
    add_photo,
    browse_cases,
    case_matching,
    create_case,
    read_case,
    register_case,
    remove_photo,
    update_case,
)
from matcher.service.confidence import expected_false, searched_face_counts
from matcher.service.errors import (
    ApiKeyNotFound,
    CandidateNotFound,
    CaseNotFound,
    DuplicatePhoto,
    InvalidAdminKey,
    InvalidRecord,
    LastAdminKey,
    ModelNotEmbedded,
    NotFound,
    ServiceError,
    SightingNotFound,
    StoreError,
    UnsupportedPhoto,
)
from matcher.service.faces import FaceFeedback
from matcher.service.keys import authenticate, bootstrap_admin, new_key, revoke
from matcher.service.media import case_photo_image, face_crop, sighting_photo
from matcher.service.records import (
    AuditRecord,
    CandidateRecord,
    CaseDetail,
    CasePhotoRecord,
    CaseRecord,
    FaceRecord,
    KeyRecord,
    SightingRecord,
)
from matcher.service.retention import PurgeReport, erase, purge_sightings
from matcher.service.runtime import Runtime
from matcher.service.sightings import (
    SightingResult,
    browse_sightings,
    ingest_sighting,
    read_sighting,
    sighting_candidates,
)
from matcher.service.startup import matching_coverage, open_runtime

# What callers build and the store takes: a new case or sighting, a review queue's filters.
from matcher.store import NewCase, NewSighting
from matcher.store.review import GeoCircle, ReviewQuery, TimeField

__all__ = [
    "ApiKeyNotFound",
    "AuditRecord",
    "CandidateNotFound",
    "CandidateRecord",
    "CaseDetail",
    "CaseNotFound",
    "CasePhotoRecord",
    "CaseRecord",
    "FaceRecord",
    "GeoCircle",
    "InvalidRecord",
    "KeyRecord",
    "LastAdminKey",
    "NewCase",
    "NewSighting",
    "NotFound",
    "ReviewQuery",
    "SightingNotFound",
    "SightingRecord",
    "StoreError",
    "TimeField",
    "UnsupportedPhoto",
    "AlertExists",
    "AlertFeed",
    "AlertRecord",
    "AlertRefused",
    "CursorExpired",
    "FeedEntry",
    "FeedQuery",
    "NoAlert",
    "CaseMatching",
    "CasePhotoResult",
    "CasePhotoUpload",
    "DuplicatePhoto",
    "FaceFeedback",
    "InvalidAdminKey",
    "ModelNotEmbedded",
    "PurgeReport",
    "Runtime",
    "ServiceError",
    "SightingResult",
    "add_photo",
    "alert_feed",
    "issue_alert",
    "read_alert",
    "withdraw_alert",
    "authenticate",
    "bootstrap_admin",
    "browse_cases",
    "browse_sightings",
    "case_matching",
    "case_photo_image",
    "create_case",
    "erase",
    "expected_false",
    "searched_face_counts",
    "face_crop",
    "ingest_sighting",
    "matching_coverage",
    "new_key",
    "open_runtime",
    "purge_sightings",
    "public_photo",
    "read_case",
    "read_sighting",
    "register_case",
    "remove_photo",
    "revoke",
    "sighting_candidates",
    "sighting_photo",
    "update_case",
]
