"""What several commands share: their Settings (the environment, with the command line on
top), the configured pipeline or exit 2 saying why it cannot be used, and progress on stderr.

The command line is the top layer: it alone, with the api's app factory and the service's
start-up, builds a `Settings`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from matcher.config import Settings

if TYPE_CHECKING:
    from matcher.embed import FacePipeline
    from matcher.eval.protocol import Protocol


def settings_from(data_dir: Path | None, **overrides: Any) -> Settings:
    """Settings from the environment, with what the command line says on top."""
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    return Settings().model_copy(update=overrides)


def pipeline_or_exit(settings: Settings, measured: Protocol | None = None) -> FacePipeline:
    """The configured pipeline, or exit 2 saying why it cannot be used: a projection file that
    is unreadable or fitted for another model, or fitted on people of the `measured` protocol
    (their figures would not measure anything)."""
    from matcher.embed.projection import ProjectionError
    from matcher.eval.fitting import FittedPeopleScored, check_not_fitted_on
    from matcher.wiring import load_pipeline

    try:
        pipeline = load_pipeline(settings)
        if measured is not None:
            check_not_fitted_on(pipeline, measured)
    except (ProjectionError, FittedPeopleScored) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    return pipeline


def progress(settings: Settings) -> Callable[[int, int], None]:
    """Prints 'embedding photos: done/total' about ten times."""
    def report(done: int, total: int) -> None:
        step = max(1, total // 10)
        if done == total or done // step != (done - settings.detect_batch_size) // step:
            typer.echo(f"embedding photos: {done}/{total}", err=True)

    return report
