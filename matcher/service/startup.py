"""Start-up: the store opened and migrated, the pipeline loaded, the indexes loaded or rebuilt,
the runtime built (`open_runtime(settings)`).

Each index is the copy saved at the last clean shutdown when it holds exactly the faces the
store has for it, else a rebuild from the store (saved_index.py). Before serving, the start-up
checks what the configured model can match: a store embedded by another model is refused or
served on the plain model it was made with, and faces without a vector are reported. The
API's lifespan calls it once; the CLI and tests call it directly.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from sqlalchemy.orm import Session, sessionmaker

from matcher.calibration import load_serving
from matcher.config import Settings
from matcher.embed import FacePipeline
from matcher.embed.projection import ProjectedEmbedder
from matcher.files import private_folder
from matcher.fitted import CALIBRATIONS
from matcher.service.errors import ModelNotEmbedded
from matcher.service.likelihood import fill_false_match_rates
from matcher.service.runtime import Runtime, Serving, empty_serving
from matcher.service.saved_index import SAVED_INDEXES, load_saved
from matcher.service.serving import (
    adopt_serving_file,
    model_settings,
    record_serving,
    recorded_model,
    serving_settings,
)
from matcher.store import current_revision, migrate, session_factory, session_scope
from matcher.store.index_log import latest_change
from matcher.store.vectors import Coverage, count_vectors, coverage, vector_models
from matcher.wiring import index_params, load_pipeline, make_engine

log = logging.getLogger(__name__)


def matching_coverage(matcher: Runtime) -> Coverage:
    """What the serving model cannot match now: faces left without its vector (by a change of
    model settings, or a reindex that found them no more) and the cases they leave blind."""
    with matcher.sessions() as session:
        return coverage(session, matcher.model_id)


def _store_on_plain_model(settings: Settings, sessions: sessionmaker[Session],
                          pipeline: FacePipeline) -> Settings | None:
    """The plain model's settings, recorded in the store, when the default (the shipped
    learned distance) would start on a store whose vectors are all of the plain model it
    projects: a store made before the fit shipped keeps serving what it was embedded with until
    `matcher reindex --projection shipped` moves it (docs/reindex-and-retention.md). None
    otherwise."""
    embedder = pipeline.embedder
    if (settings.projection_file != "shipped" or recorded_model(settings, sessions) is not None
            or not isinstance(embedder, ProjectedEmbedder)):
        return None
    with sessions() as session:
        if (count_vectors(session, embedder.model_id)
                or not count_vectors(session, embedder.base.model_id)):
            return None
    plain = settings.model_copy(update={"projection_file": "none"})
    with session_scope(sessions) as session:
        record_serving(session, plain, embedder.base.model_id)
    log.warning("the store's vectors are of %s, not of the default %s: serving %s; `matcher "
                "reindex --projection shipped` moves the store to the default",
                embedder.base.model_id, embedder.model_id, embedder.base.model_id)
    return plain


def open_runtime(settings: Settings, pipeline: FacePipeline | None = None,
                 require_vectors: bool = False) -> Runtime:
    """Store migrated, pipeline loaded (unless given), index loaded if current or rebuilt.
    `require_vectors` (the server's start) refuses a model that has no vector of any stored
    face while other models have (ModelNotEmbedded): it would serve an empty index."""
    private_folder(settings.data_dir)
    engine = make_engine(settings)
    revision = current_revision(engine)
    migrate(engine)
    # A migration may copy tables and renumber what comes next (0007): indexes saved before it
    # are not trusted.
    migrated = current_revision(engine) != revision
    sessions = session_factory(engine)
    with sessions() as session:  # before the model and the indexes are read: later changes
        index_seq = latest_change(session)  # (a reindex's swap among them) are applied
    settings = serving_settings(settings, sessions)
    if pipeline is None or model_settings(pipeline.config) != model_settings(settings):
        pipeline = load_pipeline(settings)
    adopt_serving_file(settings, sessions, pipeline.model_id)
    plain = _store_on_plain_model(settings, sessions, pipeline)
    if plain is not None:
        settings, pipeline = plain, pipeline.plain()
    with sessions() as session:
        missing = coverage(session, pipeline.model_id)
        unembedded, unmatchable = missing.faces_without_vectors, missing.unmatchable_cases
        # Which models hold the vectors, asked only when the configured one has none at all.
        blind = require_vectors and unembedded and not count_vectors(session, pipeline.model_id)
        embedded_by = vector_models(session) if blind else {}
    if embedded_by:
        engine.dispose()
        raise ModelNotEmbedded(
            f"the configured model {pipeline.model_id} has no vector of the {unembedded} stored "
            f"faces, which were embedded by {', '.join(sorted(embedded_by))}: serving it would "
            f"match nothing. Set the model settings back (or restore the projection file they "
            f"name), or run `matcher reindex`: with these settings it embeds every face for "
            f"{pipeline.model_id}")
    if unembedded:
        log.warning("%d stored faces have no %s vector and are out of matching: run "
                    "`matcher reindex`", unembedded, pipeline.model_id)
    if unmatchable:
        log.warning("%d active cases have no face %s can match: %s", len(unmatchable),
                    pipeline.model_id, unmatchable)
    params = index_params(settings)
    loaded = {saved.attribute: load_saved(saved, settings.index_dir, params, sessions,
                                          pipeline.model_id, pipeline.embedder.dim,
                                          trusted=not migrated)
              for saved in SAVED_INDEXES}
    empty = empty_serving(settings, pipeline)
    serving = Serving(pipeline, loaded["index"] or empty.index,
                      loaded["sighting_index"] or empty.sighting_index)
    matcher = Runtime(settings, engine, sessions, serving, index_seq=index_seq)
    if loaded["index"] is None:
        matcher.rebuild_index()
    if loaded["sighting_index"] is None:
        matcher.rebuild_sighting_index()
    matcher.serving = replace(matcher.serving, calibrations=load_serving(
        settings.calibration_dir, CALIBRATIONS, pipeline.model_id))
    if matcher.calibrations:
        log.info("calibrated categories: %s", sorted(matcher.calibrations))
    if "child" not in matcher.calibrations:
        # Children look alike: at a model's published same-person distance many other
        # children's faces come closer (docs/calibration.md). Say so where operators look.
        fallback = ("the `any` calibration, which understates false matches among children"
                    if "any" in matcher.calibrations
                    else f"the raw threshold {matcher.match_threshold:.3f}")
        log.warning("no child calibration for %s: children's cases use %s; run `matcher "
                    "calibrate --category child` (docs/calibration.md)", pipeline.model_id,
                    fallback)
    fill_false_match_rates(matcher)  # candidates stored before their model's calibration
    return matcher
