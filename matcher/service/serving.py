"""Which model serves: the model settings a reindex last swapped in, kept under the data dir
(`serving.json`) so that a restart serves the model the newest vectors were made for.

Which wins, in one place: for the model settings (MODEL_SETTINGS: detector, embedder,
embed_flip, ensemble_sface_weight, projection_file), serving.json wins over the environment
once a reindex (or the upgrade of a store on the plain model) has written it; before that,
the environment chooses. Every other setting comes from the environment. So after the first
reindex, a model is changed only by reindexing to it: `matcher reindex --embedder ...` (every
model setting has its option) or POST /v1/admin/reindex; a MATCHER_EMBEDDER changed in the
environment is not used, and every start and every `matcher reindex` says so
(`overruled_by_serving`). A reindex's target starts from the serving model's settings and
changes what it is given (`reindex_target`)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from matcher.config import Settings
from matcher.files import write_atomic

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


def overruled_by_serving(settings: Settings) -> dict[str, Any]:
    """The model settings given to `settings` (by the environment or a caller) that
    serving.json overrules with another value: not used, since serving.json wins."""
    path = settings.data_dir / SERVING_FILE
    if not path.is_file():
        return {}
    recorded = _recorded(path)
    given = model_settings(settings)
    return {k: given[k] for k in recorded
            if k in settings.model_fields_set and given[k] != recorded[k]}


def _recorded(path: Path) -> dict[str, Any]:
    return {k: v for k, v in json.loads(path.read_text()).items() if k in MODEL_SETTINGS}


def is_recorded(settings: Settings) -> bool:
    """Whether a reindex (or an upgrade, `open_runtime`) recorded the model to serve."""
    return (settings.data_dir / SERVING_FILE).is_file()


def serving_settings(settings: Settings) -> Settings:
    """Settings with the model a reindex last swapped in (`<data dir>/serving.json`), which
    wins over the environment: a restart must serve the model the vectors were made for."""
    path = settings.data_dir / SERVING_FILE
    if not path.is_file():
        return settings
    chosen = _recorded(path)
    if chosen != {k: v for k, v in model_settings(settings).items() if k in chosen}:
        overruled = overruled_by_serving(settings)
        log.warning("serving the model recorded in %s by the last reindex: %s%s", path, chosen,
                    f"; it wins over {_env(overruled)}, which is not used: to change the model, "
                    "reindex to it" if overruled else "")
    return type(settings).model_validate({**settings.model_dump(), **chosen})


def _env(values: Mapping[str, Any]) -> str:
    return ", ".join(f"MATCHER_{name.upper()}={value}" for name, value in values.items())


def record_serving(settings: Settings) -> None:
    text = json.dumps(model_settings(settings), indent=2).encode()
    write_atomic(settings.data_dir / SERVING_FILE, lambda handle: handle.write(text))


