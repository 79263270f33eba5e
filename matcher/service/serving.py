"""Which model serves: the model settings a reindex last swapped in, kept under the data dir
(`serving.json`) so that a restart serves the model the newest vectors were made for."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from matcher.config import Settings
from matcher.files import write_atomic

log = logging.getLogger(__name__)

# The settings that choose the model; all else (threads, limits, thresholds) stays as it is.
MODEL_SETTINGS = ("detector", "embedder", "embed_flip", "ensemble_sface_weight",
                  "projection_file")
SERVING_FILE = "serving.json"


def model_settings(settings: Settings) -> dict[str, Any]:
    """The model's settings as JSON values (a path as its absolute text: serving.json is read
    by later starts, from any folder)."""
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


def is_recorded(settings: Settings) -> bool:
    """Whether a reindex (or an upgrade, `open_matcher`) recorded the model to serve."""
    return (settings.data_dir / SERVING_FILE).is_file()


def serving_settings(settings: Settings) -> Settings:
    """Settings with the model a reindex last swapped in (`<data dir>/serving.json`), which
    wins over the environment: a restart must serve the model the vectors were made for."""
    path = settings.data_dir / SERVING_FILE
    if not path.is_file():
        return settings
    chosen = {k: v for k, v in json.loads(path.read_text()).items() if k in MODEL_SETTINGS}
    if chosen != {k: v for k, v in model_settings(settings).items() if k in chosen}:
        log.warning("serving the model recorded in %s by the last reindex: %s", path, chosen)
    return type(settings).model_validate({**settings.model_dump(), **chosen})


def record_serving(settings: Settings) -> None:
    text = json.dumps(model_settings(settings), indent=2).encode()
    write_atomic(settings.data_dir / SERVING_FILE, lambda handle: handle.write(text))


