"""Which model serves: the model settings a reindex last swapped in, kept in the store
(`serving_model`, matcher/store/serving.py) so that every process of the store serves it, and
a restart serves the model the newest vectors were made for.

Which wins, in one place: for the model settings (MODEL_SETTINGS: detector, embedder,
embed_flip, ensemble_sface_weight, projection_file), the store's record wins over the
environment once a reindex (or the upgrade of a store on the plain model) has written it;
before that, the environment chooses. Every other setting comes from the environment. So after
the first reindex, a model is changed only by reindexing to it: `matcher reindex --embedder
...` (every model setting has its option) or POST /v1/admin/reindex; a MATCHER_EMBEDDER
changed in the environment is not used, and every start and every `matcher reindex` says so
(`overruled_by_serving`). A reindex's target starts from the serving model's settings and
changes what it is given (`reindex_target`).

Before revision 0020 the record was `<data dir>/serving.json`, one process's file: the first
start after the upgrade moves it into the store (`adopt_serving_file`)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session, sessionmaker

from matcher.config import Settings
from matcher.store import session_factory
from matcher.store.serving import serving_model, set_serving_model
from matcher.wiring import database_url, make_engine

if TYPE_CHECKING:
    from matcher.embed.pipeline import PipelineConfig

log = logging.getLogger(__name__)

# The settings that choose the model; all else (threads, limits, thresholds) stays as it is.
MODEL_SETTINGS = ("detector", "embedder", "embed_flip", "ensemble_sface_weight",
                  "projection_file")
SERVING_FILE = "serving.json"


def model_settings(settings: Settings | PipelineConfig) -> dict[str, Any]:
    """The model's settings (or those a pipeline was built with) as JSON values (a path as its
    absolute text: serving.json is read by later starts, from any folder)."""
    values = {name: getattr(settings, name) for name in MODEL_SETTINGS}
    return {k: str(v.resolve()) if isinstance(v, Path) else v for k, v in values.items()}


def with_model_settings(settings: Settings, changes: Mapping[str, Any]) -> Settings:
    """`settings` with these model settings changed, checked by the validators that check
    them at every start (pydantic's ValidationError, a ValueError): a reindex to settings they
    refuse swapped, wrote them into serving.json, and the next start failed. A relative
    projection path becomes absolute (the validator's doing)."""
    unknown = sorted(set(changes) - set(MODEL_SETTINGS))
    if unknown:
        raise ValueError(f"not model settings: {', '.join(unknown)}")
    return type(settings).model_validate({**settings.model_dump(), **changes})


def reindex_target(settings: Settings, changes: Mapping[str, Any]) -> Settings:
    """The settings a reindex moves to: the serving ones (`settings`) with `changes`, checked
    as `with_model_settings` checks them. A setting of one embedder that is not given falls
    back to its default when the embedder changes: `--embedder sface` kept
    `embed_flip=false` from serving.json (dlib's, where it is the default) and made SFace
    unflipped; embed_flip None is each embedder's own default, and the ensemble weight the
    field's."""
    wanted = dict(changes)
    if "embedder" in wanted and wanted["embedder"] != settings.embedder:
        wanted.setdefault("embed_flip", None)
        wanted.setdefault("ensemble_sface_weight",
                          type(settings).model_fields["ensemble_sface_weight"].default)
    return with_model_settings(settings, wanted)


Sessions = sessionmaker[Session]


def recorded_model(settings: Settings, sessions: Sessions | None = None
                   ) -> dict[str, Any] | None:
    """The model settings recorded for the store (None: none yet). `sessions`: the open
    store's; without them the store is read without being created or migrated (a CLI's look
    before it opens it). A `serving.json` not yet moved into the store counts as recorded."""
    found = _in_store(sessions) if sessions is not None else _peek(settings)
    path = settings.data_dir / SERVING_FILE
    if found is None and path.is_file():
        found = json.loads(path.read_text())
    return None if found is None else {k: v for k, v in found.items() if k in MODEL_SETTINGS}


def _in_store(sessions: Sessions) -> dict[str, Any] | None:
    with sessions() as session:
        return serving_model(session)


def _peek(settings: Settings) -> dict[str, Any] | None:
    url = database_url(settings)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").is_file():
        return None
    engine = make_engine(settings)
    try:
        return _in_store(session_factory(engine))
    finally:
        engine.dispose()


def overruled_by_serving(settings: Settings, sessions: Sessions | None = None
                         ) -> dict[str, Any]:
    """The model settings given to `settings` (by the environment or a caller) that the
    store's record overrules with another value: not used, since the record wins."""
    recorded = recorded_model(settings, sessions)
    if recorded is None:
        return {}
    given = model_settings(settings)
    return {k: given[k] for k in recorded
            if k in settings.model_fields_set and given[k] != recorded[k]}


def serving_settings(settings: Settings, sessions: Sessions | None = None) -> Settings:
    """Settings with the model a reindex last swapped in (the store's record), which wins
    over the environment: every process must serve the model the vectors were made for."""
    chosen = recorded_model(settings, sessions)
    if chosen is None:
        return settings
    if chosen != {k: v for k, v in model_settings(settings).items() if k in chosen}:
        overruled = overruled_by_serving(settings, sessions)
        log.warning("serving the model recorded in the store by the last reindex: %s%s",
                    chosen, f"; it wins over {_env(overruled)}, which is not used: to change "
                    "the model, reindex to it" if overruled else "")
    return type(settings).model_validate({**settings.model_dump(), **chosen})


def _env(values: Mapping[str, Any]) -> str:
    return ", ".join(f"MATCHER_{name.upper()}={value}" for name, value in values.items())


def record_serving(session: Session, settings: Settings | PipelineConfig,
                   model_id: str) -> None:
    """Makes `settings`' model the one every process serves, in the caller's transaction
    (with the `model` index change that moves the processes serving now)."""
    set_serving_model(session, model_settings(settings), model_id)


def adopt_serving_file(settings: Settings, sessions: Sessions, model_id: str) -> None:
    """The first start after revision 0020: `<data dir>/serving.json` (the record of a
    reindex before it) moves into the store, which wins from then on; the file goes."""
    path = settings.data_dir / SERVING_FILE
    if not path.is_file():
        return
    with sessions() as session, session.begin():
        if serving_model(session) is None:
            record_serving(session, settings, model_id)
            log.info("the serving model recorded in %s (%s) is now kept in the store", path,
                     model_id)
        else:
            log.warning("%s is not used: the store records the model every process serves",
                        path)
    path.unlink()
