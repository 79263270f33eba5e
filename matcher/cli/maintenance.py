"""`matcher reindex` and `matcher purge`: jobs on a stored service's data dir, run beside no
server (reindex) or beside one (purge): another model for every stored face, and sightings
past their retention."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer

from matcher.cli.common import settings_from

# The `matcher reindex` option of each model setting (matcher.service.serving.MODEL_SETTINGS):
# after the first reindex they are the only way to change the model (the store's record wins
# over the environment).
MODEL_OPTIONS = {"detector": "--detector", "embedder": "--embedder",
                 "embed_flip": "--flip/--no-flip",
                 "ensemble_sface_weight": "--ensemble-sface-weight",
                 "projection_file": "--projection"}


def _as_option(name: str, value: Any) -> str:
    if name == "embed_flip":
        return "" if value is None else ("--flip" if value else "--no-flip")
    return f"{MODEL_OPTIONS[name]} {value}"


def reindex(
    embedder: Annotated[str | None, typer.Option(
        help="dlib, sface or dlib+sface. A new embedder takes its own defaults for --flip and "
             "--ensemble-sface-weight unless they are given too.")] = None,
    detector: Annotated[str | None, typer.Option(help="yunet or mmod.")] = None,
    flip: Annotated[bool | None, typer.Option(
        "--flip/--no-flip", help="Average with the mirrored face.")] = None,
    ensemble_sface_weight: Annotated[float | None, typer.Option(
        help="dlib+sface: SFace's share of the squared distance, above 0 and below 1, at most "
             "two decimals.")] = None,
    projection: Annotated[str | None, typer.Option(
        help="A projection file (matcher fit-projection) for the new model, 'shipped' (the "
             "default model's learned distance, shipped in the package) or 'none'.")] = None,
    dry_run: Annotated[bool, typer.Option(help="Count what would be embedded; write nothing.")]
    = False,
    shadow_sample: Annotated[int, typer.Option(
        help="Sighting faces compared under both models before the swap.")] = 200,
    ray_address: Annotated[str | None, typer.Option(
        help="Embed on this Ray cluster ('local' starts one here); the driver writes.")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Store, photos, indexes.")] = None,
) -> None:
    """Re-embed every stored face with another model, build its indexes beside the current
    ones, compare, and make it the serving model. Resumable: run it again after a crash or
    Ctrl-C. Runs beside the servers of the store: at the swap every one moves to the new
    model. Refused (exit 2) while another reindex runs. The target is the serving model (the
    store's record, after a first reindex: it wins over MATCHER_* model settings) with the
    options given here."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from matcher.service import open_runtime
    from matcher.service.holders import StoreBusy, check_reindex_allowed
    from matcher.service.reindex import ReindexError, ReindexJob
    from matcher.service.serving import overruled_by_serving, reindex_target, serving_settings

    settings = settings_from(data_dir)
    changes: dict[str, Any] = {k: v for k, v in {
        "embedder": embedder, "detector": detector, "embed_flip": flip,
        "ensemble_sface_weight": ensemble_sface_weight}.items() if v is not None}
    if projection is not None:
        changes["projection_file"] = (projection if projection in ("none", "shipped")
                                      else Path(projection).resolve())
    unused = {k: v for k, v in overruled_by_serving(settings).items() if k not in changes}
    if unused:
        typer.echo("note: the store's record of the model the last reindex swapped in wins "
                   "over the environment for the model settings: "
                   + ", ".join(f"MATCHER_{k.upper()}={v}" for k, v in unused.items())
                   + " is not used; to reindex to it, pass "
                   + " ".join(_as_option(k, v) for k, v in unused.items()), err=True)
    try:
        # Checked before the store is opened: opening loads every model and uses up the saved
        # index copies (a clean stop's), which a refused name would have cost for nothing.
        reindex_target(serving_settings(settings), changes)
        if not dry_run:  # the job claims the store; this look refuses before the models load
            check_reindex_allowed(settings)
        matcher = open_runtime(settings)
    except (ValueError, StoreBusy) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    try:
        target = reindex_target(matcher.settings, changes)
    except ValueError as exc:
        matcher.close()
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    embedding = None
    if ray_address is not None:
        from matcher.service.ray_embedding import RayEmbedding

        embedding = RayEmbedding.connect(target, ray_address)
    columns = (BarColumn(), MofNCompleteColumn(), "faces", TimeRemainingColumn())
    try:
        with Progress(*columns, transient=True) as bar:
            task = bar.add_task("embedding", total=None)
            job = ReindexJob(matcher, target, dry_run=dry_run, shadow_sample=shadow_sample,
                             embedding=embedding,
                             progress=lambda done, total: bar.update(task, completed=done,
                                                                     total=total))
            report = job.run()
    except ReindexError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    except KeyboardInterrupt:
        typer.echo("stopped: the vectors written so far are kept; run again to resume", err=True)
        raise typer.Exit(code=130) from None
    finally:
        matcher.close()
    typer.echo(json.dumps(report.as_dict(), indent=2))


def purge(
    older_than_days: Annotated[float | None, typer.Option(
        help="Default: MATCHER_SIGHTING_RETENTION_DAYS. 0: every sighting that matched "
             "nobody, however recent.")] = None,
    dry_run: Annotated[bool, typer.Option(help="Count only.")] = False,
    data_dir: Annotated[Path | None, typer.Option(help="Store, photos, indexes.")] = None,
) -> None:
    """Delete sightings older than the retention period that matched nobody (no candidate
    pending, asked about or confirmed), with their photos, faces and vectors; then the photo
    files no row references (older than an hour)."""
    from matcher.service import open_runtime, purge_sightings
    from matcher.service.retention import sweep_orphans

    settings = settings_from(data_dir)
    days = older_than_days if older_than_days is not None else settings.sighting_retention_days
    if days is None:
        typer.echo("error: no retention period (--older-than-days or "
                   "MATCHER_SIGHTING_RETENTION_DAYS)", err=True)
        raise typer.Exit(code=2)
    if not (math.isfinite(days) and days >= 0):  # 0: every sighting that matched nobody
        typer.echo(f"error: --older-than-days takes a number of days, 0 or more, not {days}",
                   err=True)
        raise typer.Exit(code=2)
    matcher = open_runtime(settings)
    try:
        report = purge_sightings(matcher, days, dry_run=dry_run)
        orphans = sweep_orphans(matcher, dry_run=dry_run)
    finally:
        matcher.close()
    verb = "would purge" if dry_run else "purged"
    typer.echo(f"{verb} {report.sightings} sightings uploaded before "
               f"{report.uploaded_before:%Y-%m-%d} ({report.faces} faces, {report.files} files)")
    typer.echo(f"{'would remove' if dry_run else 'removed'} {orphans} orphan photo files")
