"""The service's long-lived parts: store, face pipeline and active case index, built once.

`open_matcher(settings)` migrates the store, loads the pipeline and rebuilds the active case
index from the store (the store is the truth: the index is never trusted over it). The API's
lifespan calls it once; the CLI and tests call it directly.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from matcher.config import Settings
from matcher.embed import FacePipeline, load_pipeline
from matcher.index import FaceIndex
from matcher.store import active_case_face_rows, make_engine, migrate, session_factory

log = logging.getLogger(__name__)

DIM = 128  # the dlib descriptor: the only embedder so far


@dataclass
class Matcher:
    """What every use case needs. Thread-safe: use cases run in worker threads."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    pipeline: FacePipeline
    index: FaceIndex
    # Serialises case changes with their index updates, so a case closed while a photo is being
    # added to it cannot leave that photo's faces in the index.
    case_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def model_id(self) -> str:
        return self.pipeline.model_id

    def rebuild_index(self) -> None:
        """Reads every face of every active case from the store into the index."""
        with self.sessions() as session:
            self.index.rebuild(active_case_face_rows(session, self.model_id))
        log.info("active case index rebuilt: %d faces of %d cases", len(self.index),
                 self.index.owner_count)

    def close(self) -> None:
        self.engine.dispose()


def open_matcher(settings: Settings, pipeline: FacePipeline | None = None) -> Matcher:
    """Store migrated, pipeline loaded (unless given), index rebuilt from the store."""
    engine = make_engine(settings)
    migrate(engine)
    pipeline = pipeline or load_pipeline(settings)
    index = FaceIndex.from_settings(settings, model_id=pipeline.model_id, dim=DIM)
    matcher = Matcher(settings, engine, session_factory(engine), pipeline, index)
    matcher.rebuild_index()
    return matcher
