"""Model settings after a reindex (issue 19, defect 14): serving.json wins over the environment
and `matcher reindex` says so; every model setting has its option; a new embedder takes its
own flip, not the one serving.json recorded for the last."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import typer.main

from matcher.cli import MODEL_OPTIONS, app
from matcher.config import Settings
from matcher.embed import FacePipeline
from matcher.service import open_runtime
from matcher.service.serving import (
    MODEL_SETTINGS,
    SERVING_FILE,
    model_settings,
    overruled_by_serving,
    recorded_model,
    reindex_target,
)
from tests.data import REPO_ROOT
from tests.seed import record_model

SFACE, SFACE_FLIP = "sface-2021dec", "sface-2021dec-flip"


def _dry_run(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "matcher", "reindex", "--dry-run", "--data-dir", str(data_dir),
         *args], cwd=REPO_ROOT, env={**os.environ, "MATCHER_THREADS": "1", **env},
        capture_output=True, text=True, timeout=300)


def _after_a_reindex(settings: Settings, tmp_path: Path) -> Path:
    """A data dir whose last reindex (an API one: {"embed_flip": false}) recorded dlib without
    the flip; the store is empty, which a dry run does not mind."""
    data_dir = tmp_path / "data"
    record_model(settings.model_copy(update={"data_dir": data_dir, "embedder": "dlib",
                                               "embed_flip": False}))
    return data_dir


def test_every_model_setting_has_a_reindex_option() -> None:
    assert set(MODEL_OPTIONS) == set(MODEL_SETTINGS)
    command = typer.main.get_command(app).commands["reindex"]  # type: ignore[attr-defined]
    options = {name for param in command.params for name in (*param.opts,
                                                             *param.secondary_opts)}
    for option in MODEL_OPTIONS.values():
        assert set(option.split("/")) <= options, option


def test_a_new_embedder_takes_its_own_flip_unless_one_is_given(
    settings: Settings, tmp_path: Path
) -> None:
    serving = settings.model_copy(update={"data_dir": tmp_path, "embedder": "dlib",
                                          "embed_flip": False, "ensemble_sface_weight": 0.35})
    assert reindex_target(serving, {"embedder": "sface"}).embed_flip is None  # sface's: on
    assert reindex_target(serving, {"embedder": "sface", "embed_flip": False}).embed_flip \
        is False
    assert reindex_target(serving, {"embedder": "dlib+sface"}).ensemble_sface_weight == 0.5
    assert reindex_target(serving, {"embed_flip": True}).ensemble_sface_weight == 0.35
    assert reindex_target(serving, {"embedder": "dlib"}).embed_flip is False  # unchanged


def test_the_cli_reindexes_to_sface_flipped_after_dlib_unflipped(
    settings: Settings, tmp_path: Path
) -> None:
    """`--embedder sface` kept embed_flip=false from the record."""
    data_dir = _after_a_reindex(settings, tmp_path)
    plain = _dry_run(data_dir, "--embedder", "sface")
    assert plain.returncode == 0, plain.stderr
    assert json.loads(plain.stdout)["to_model"] == SFACE_FLIP
    unflipped = _dry_run(data_dir, "--embedder", "sface", "--no-flip")
    assert unflipped.returncode == 0, unflipped.stderr
    assert json.loads(unflipped.stdout)["to_model"] == SFACE


def test_the_cli_sets_the_ensemble_weight(settings: Settings, tmp_path: Path) -> None:
    data_dir = _after_a_reindex(settings, tmp_path)
    weighted = _dry_run(data_dir, "--embedder", "dlib+sface", "--ensemble-sface-weight", "0.35",
                        "--projection", "none")
    assert weighted.returncode == 0, weighted.stderr
    assert json.loads(weighted.stdout)["to_model"] == (
        "dlib-resnet-v1-flip+sface-2021dec-flip-w0.35")
    refused = _dry_run(data_dir, "--embedder", "dlib+sface", "--ensemble-sface-weight", "0.333")
    assert refused.returncode == 2 and "two decimals" in refused.stderr, refused.stderr


def test_the_record_wins_over_the_environment_and_the_cli_says_so(
    settings: Settings, tmp_path: Path
) -> None:
    """`MATCHER_EMBEDDER=sface matcher reindex --dry-run` answered only "the service already
    runs dlib-resnet-v1": README's advice worked until the first reindex."""
    data_dir = _after_a_reindex(settings, tmp_path)
    told = _dry_run(data_dir, MATCHER_EMBEDDER="sface")
    assert told.returncode == 2, told.stderr
    assert "already runs dlib-resnet-v1" in told.stderr
    assert ("the store's record of the model the last reindex swapped in wins over the "
            "environment" in told.stderr)
    assert "MATCHER_EMBEDDER=sface is not used; to reindex to it, pass --embedder sface" \
        in told.stderr
    from_env = Settings(data_dir=data_dir, embedder="sface")
    assert overruled_by_serving(from_env) == {"embedder": "sface"}
    # What the option asks for wins over both.
    assert json.loads(_dry_run(data_dir, "--embedder", "sface", MATCHER_EMBEDDER="dlib")
                      .stdout)["to_model"] == SFACE_FLIP


def test_a_serving_json_of_an_older_version_moves_into_the_store(
    settings: Settings, pipeline: FacePipeline, tmp_path: Path
) -> None:
    """Before revision 0020 a reindex recorded its model in <data dir>/serving.json. The
    first start after the upgrade serves that model, keeps it in the store, and removes the
    file; later starts read the store."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    flipped = settings.model_copy(update={"data_dir": data_dir, "embed_flip": True})
    (data_dir / SERVING_FILE).write_text(json.dumps(model_settings(flipped)))
    plain = settings.model_copy(update={"data_dir": data_dir})
    matcher = open_runtime(plain, pipeline)
    try:
        assert matcher.settings.embed_flip is True and matcher.model_id.endswith("-flip")
    finally:
        matcher.close()
    assert not (data_dir / SERVING_FILE).exists()
    assert (recorded_model(plain) or {})["embed_flip"] is True
    again = open_runtime(plain, pipeline)
    try:
        assert again.model_id == matcher.model_id
    finally:
        again.close()
