"""The `matcher` command line."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from matcher.config import Settings

if TYPE_CHECKING:
    from matcher.embed import FacePipeline
    from matcher.embed.types import Face, Image
    from matcher.eval.crossage import CrossAgeReport
    from matcher.eval.protocol import Protocol

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING)


def face_json(face: Face) -> dict[str, Any]:
    quality = face.quality
    return {
        "box": [round(float(v), 2) for v in face.box],
        "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in face.landmarks],
        "score": round(float(face.score), 5),
        "quality": {
            "fit": quality.fit,
            "reasons": list(quality.reasons),
            "size_px": round(float(quality.size_px), 1),
            "sharpness": round(float(quality.sharpness), 2),
        },
        "vector": [float(v) for v in face.vector],
    }


def _settings(data_dir: Path | None, **overrides: Any) -> Settings:
    """Settings from the environment, with what the command line says on top."""
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    return Settings().model_copy(update=overrides)


def _chunks(paths: list[Path], size: int) -> Iterator[list[Path]]:
    for start in range(0, len(paths), size):
        yield paths[start : start + size]


@app.command()
def embed(
    paths: Annotated[list[Path], typer.Argument(help="Photos to read.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    data_dir: Annotated[Path | None, typer.Option(help="Where the weight cache lives.")] = None,
    small_faces: Annotated[
        bool | None, typer.Option(help="Find smaller faces (slower); default MATCHER_SMALL_FACES.")
    ] = None,
) -> None:
    """Detect and embed the faces of each photo."""
    from matcher.embed.errors import ImageError
    settings = _settings(data_dir, **({} if small_faces is None else {"small_faces": small_faces}))
    pipeline = _load_pipeline(settings)
    failures = 0
    for chunk in _chunks(paths, settings.detect_batch_size):
        # Records keep the input order: a failed read holds its place as an error record.
        records: list[dict[str, Any]] = []
        images = []
        for path in chunk:
            try:
                images.append(_read_image(path, settings))
                records.append({"path": str(path)})
            except (OSError, ImageError) as exc:
                failures += 1
                records.append({"path": str(path), "error": _describe(exc)})
        found = iter(pipeline.process(images))
        for record in records:
            if "error" not in record:
                record["faces"] = [face_json(f) for f in next(found)]
            _report(as_json, record)
    if paths and failures == len(paths):
        raise typer.Exit(code=1)


def _read_image(path: Path, settings: Settings) -> Image:
    from matcher.embed.image import load_image

    return load_image(
        path.read_bytes(), max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels
    )


def _describe(exc: Exception) -> str:
    reason = getattr(exc, "reason", None)
    return f"{reason}: {exc}" if reason else f"unreadable: {exc}"


def _report(as_json: bool, record: dict[str, Any]) -> None:
    if as_json:
        typer.echo(json.dumps(record))
    elif "error" in record:
        typer.echo(f"{record['path']}: error: {record['error']}", err=True)
    else:
        fit = sum(1 for f in record["faces"] if f["quality"]["fit"])
        typer.echo(f"{record['path']}: {len(record['faces'])} face(s), {fit} fit for matching")


@app.command("eval")
def eval_command(
    cross_age: Annotated[Path, typer.Option(help="Manifest of the cross-age set (FG-NET).")],
    distractors: Annotated[Path, typer.Option(help="Manifest of distractor people (LFW).")],
    children_distractors: Annotated[Path | None, typer.Option(
        help="Manifest of children who are not the missing child (LAG young photos): also "
             "score the protocol 'children', with them as the other cases and the non-mated "
             "searches.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    plot: Annotated[Path | None, typer.Option(
        help="Write cmc.png and by_age_gap.png (by_age_gap_children.png) here.")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Where the weight cache lives.")] = None,
    case_photos: Annotated[str, typer.Option(
        help="youngest: one photo per case (the protocol); all: every photo up to age 12, "
             "sightings after the newest; newest: only that newest photo, same sightings.")]
    = "youngest",
    embedder: Annotated[str | None, typer.Option(
        help="dlib, sface or dlib+sface; default MATCHER_EMBEDDER.")] = None,
    flip: Annotated[bool | None, typer.Option(
        "--flip/--no-flip", help="Average with the mirrored face; default MATCHER_EMBED_FLIP.")]
    = None,
    fit_only: Annotated[bool, typer.Option(
        help="Search a sighting or non-mated probe only when its largest face is fit for "
             "matching, as the service does (the protocol searches every largest face).")]
    = False,
    projection: Annotated[str | None, typer.Option(
        help="The learned distance: 'shipped' (the default model's, fitted on every dev "
             "person: it cannot be scored on them), 'none' (plain vectors) or a fit file; "
             "default MATCHER_PROJECTION_FILE.")] = None,
) -> None:
    """Cross-age identification accuracy (protocol of ../shared/data/README.md), and with
    --children-distractors its variant "children as distractors" beside it, each photo
    embedded once."""
    from matcher.eval.crossage import evaluate_protocols, reports_as_dict
    from matcher.eval.manifest import ManifestError, read_manifest
    from matcher.eval.plots import write_plots
    from matcher.eval.protocol import CASE_PHOTOS, CHILDREN, MAIN, build_protocols

    changes: dict[str, Any] = {k: v for k, v in {
        "embedder": embedder, "embed_flip": flip, "data_dir": data_dir,
        "projection_file": projection}.items() if v is not None}
    try:  # the command line over the environment, validated together
        settings = Settings(**changes)
    except ValueError as exc:  # an unknown embedder, or one the detector cannot serve
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    if case_photos not in CASE_PHOTOS:
        typer.echo(f"error: --case-photos must be one of {', '.join(CASE_PHOTOS)}", err=True)
        raise typer.Exit(code=2)
    try:
        protocols = build_protocols(
            read_manifest(cross_age, require_age=True), read_manifest(distractors),
            None if children_distractors is None else read_manifest(children_distractors),
            case_photos,  # checked against CASE_PHOTOS above
        )
    except ManifestError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    pipeline = _load_pipeline_for(settings, list(protocols.values()))
    reports = evaluate_protocols(protocols, pipeline, settings, _progress(settings),
                                 case_photos, fit_only)
    if plot is not None:
        for path in write_plots(reports, plot):
            typer.echo(f"wrote {path}", err=True)
    if as_json:
        typer.echo(json.dumps(reports_as_dict(reports)))
        return
    typer.echo(f"model {pipeline.model_id}, case photos: {case_photos}"
               + (", searched by fit faces only" if fit_only else ""))
    manifests = {MAIN: distractors, CHILDREN: children_distractors}
    for name, report in reports.items():
        typer.echo(f"{name} protocol (distractors: {manifests[name]})")
        _echo_report(report, fit_only)


def _echo_report(report: CrossAgeReport, fit_only: bool) -> None:
    counts = report.counts
    typer.echo(f"  {counts['sightings']} sightings of {counts['sighting_people']} people; "
               f"{counts['cases']} cases ({counts['case_photos']} photos) among "
               f"{counts['gallery']} gallery faces; "
               f"{counts['non_mated']} non-mated searches")
    unsearched = "faces not found (sightings and non-mated: or unfit)" if fit_only else \
        "faces not found"
    typer.echo(f"  {unsearched}: gallery {counts['faces_not_found_gallery']}, sightings "
               f"{counts['faces_not_found_sightings']}, non-mated "
               f"{counts['faces_not_found_non_mated']}")
    typer.echo(f"  rank-1 {report.rank1:.3f}  rank-10 {report.rank10:.3f}  TPIR@FPIR1% "
               f"{report.tpir_at_fpir_1pct:.3f} (threshold {report.threshold:.3f}; "
               f"{counts['false_alarms']} non-mated searches under it)")
    for band, row in report.by_gap.items():
        typer.echo(f"    gap {band:>5} yrs ({row['searches']:3d}): rank-1 {row['rank1']:.3f}  "
                   f"rank-10 {row['rank10']:.3f}  TPIR {row['tpir_at_fpir_1pct']:.3f}")


def _load_pipeline_for(settings: Settings, measured: list[Protocol]) -> FacePipeline:
    """`_load_pipeline`, refused (exit 2) when a projection was fitted on people of any of the
    `measured` protocols."""
    from matcher.eval.fitting import FittedPeopleScored, check_not_fitted_on

    pipeline = _load_pipeline(settings, measured[0])
    try:
        for protocol in measured[1:]:
            check_not_fitted_on(pipeline, protocol)
    except FittedPeopleScored as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    return pipeline


def _load_pipeline(settings: Settings, measured: Protocol | None = None) -> FacePipeline:
    """The configured pipeline, or exit 2 saying why it cannot be used: a projection file that
    is unreadable or fitted for another model, or fitted on people of the `measured` protocol
    (their figures would not measure anything)."""
    from matcher.embed import load_pipeline
    from matcher.embed.projection import ProjectionError
    from matcher.eval.fitting import FittedPeopleScored, check_not_fitted_on

    try:
        pipeline = load_pipeline(settings)
        if measured is not None:
            check_not_fitted_on(pipeline, measured)
    except (ProjectionError, FittedPeopleScored) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    return pipeline


def _progress(settings: Settings) -> Callable[[int, int], None]:
    """Prints 'embedding photos: done/total' about ten times."""
    def progress(done: int, total: int) -> None:
        step = max(1, total // 10)
        if done == total or done // step != (done - settings.detect_batch_size) // step:
            typer.echo(f"embedding photos: {done}/{total}", err=True)

    return progress


class ProjectionMethod(StrEnum):
    PROJ_PLDA = "proj+plda"
    PLDA = "plda"
    PROJ = "proj"


@app.command("fit-projection")
def fit_projection_command(
    manifests: Annotated[list[Path] | None, typer.Argument(
        help="CSV manifests (path, identity) of labelled photos: several people, several "
             "photos each, ideally across years. Or none, with --from-store.")] = None,
    out: Annotated[Path | None, typer.Option(
        help="The projection file to write; default <data dir>/projections/<model id>.npz.")
    ] = None,
    method: Annotated[ProjectionMethod, typer.Option(
        help="proj+plda: both, chained (the shipped default's recipe); plda: the distance of "
             "a PLDA model, fitted in closed form; proj: a map fitted by a cosine softmax "
             "over the people (docs/accuracy.md).")
    ] = ProjectionMethod.PROJ_PLDA,
    from_store: Annotated[bool, typer.Option(
        "--from-store", help="Fit on the store's own cases (case photos, and sightings "
        "confirmed as match) from the base of the serving model; written only when it beats "
        "the serving model on the store's confirmed matches, person-disjoint.")] = False,
    min_people: Annotated[int | None, typer.Option(
        min=2, help="--from-store: the fewest people with two faces or more it fits on "
        "(default 50).")] = None,
    data_dir: Annotated[Path | None, typer.Option(
        help="Where the weight cache lives; with --from-store, the store too.")] = None,
) -> None:
    """Fit a learned projection of the configured model's vectors on labelled photos, or with
    --from-store on the store's own cases; move the service to it with `matcher reindex
    --projection FILE`, evaluate it with MATCHER_PROJECTION_FILE=FILE."""
    from matcher.embed.projection import METHODS
    from matcher.eval.fitting import fit_on_photos
    from matcher.eval.manifest import ManifestError, read_manifest

    recipe = METHODS[method.value]()
    if from_store == bool(manifests) or (min_people is not None and not from_store):
        typer.echo("error: give manifests, or --from-store (with --min-people if need be)",
                   err=True)
        raise typer.Exit(code=2)
    if from_store:
        _fit_from_store(method, recipe, out, min_people, data_dir)
        return

    settings = _settings(data_dir, projection_file="none")
    try:
        photos = [photo for manifest in manifests or [] for photo in read_manifest(manifest)]
    except ManifestError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    try:
        projection, faces = fit_on_photos(_load_pipeline(settings), photos, recipe,
                                          progress=_progress(settings))
    except ValueError as exc:  # too few people or photos
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    out = out or settings.data_dir / "projections" / f"{projection.model_id}.npz"
    projection.save(out)
    typer.echo(f"fitted on {faces} faces of {len(projection.people)} people "
               f"({len(photos)} photos); model {projection.model_id}, same-person distance "
               f"{projection.same_person_distance:.3f}")
    typer.echo(str(out))


def _fit_from_store(method: ProjectionMethod, recipe: Any, out: Path | None,
                    min_people: int | None, data_dir: Path | None) -> None:
    """fit-projection --from-store: fit, print both models' scores, write only a better fit."""
    from matcher.service import open_matcher
    from matcher.service.store_fit import (
        FALSE_MATCH_RATE,
        MIN_PEOPLE,
        StoreFitRefused,
        fit_from_store,
        projections_dir,
        save_store_fit,
    )

    settings = _settings(data_dir)
    matcher = open_matcher(settings)  # the serving model, as `matcher serve` starts it
    serving_file = matcher.settings.projection_file
    if not isinstance(serving_file, Path):  # never write over the shipped file either
        from matcher.fitted import PROJECTION

        serving_file = PROJECTION
    try:
        fit = fit_from_store(matcher, recipe, MIN_PEOPLE if min_people is None else min_people,
                             progress=_progress(settings))
    except StoreFitRefused as exc:
        typer.echo(f"error: {exc}; nothing written", err=True)
        raise typer.Exit(code=2) from exc
    finally:
        matcher.close()
    serving, fitted = fit.serving, fit.fitted
    typer.echo(f"store: {fit.people} people with two faces or more, {fit.faces} faces "
               f"({fit.confirmed} sighting faces confirmed as match); {fit.embedded} embedded "
               f"from stored photos by {fit.base_model}")
    typer.echo(f"scored person-disjoint in {len(fit.folds)} folds: {fitted.searches} confirmed "
               "matches, each searched against the cases of its fold; accepted: closer than "
               f"all but {FALSE_MATCH_RATE:.0%} of the fold's pairs of a sighting face and "
               "another case")
    for name, score in ((f"serving {fit.serving_model}", serving),
                        (f"new fit ({method.value})", fitted)):
        typer.echo(f"  {name}: rank-1 {score.rank1}/{score.searches}, accepted "
                   f"{score.accepted}/{score.searches}")
    if fit.left_out:
        typer.echo(f"  {fit.left_out} people the serving projection was fitted on are not "
                   "scored: its figures on them would flatter it")
    if fit.refusal is not None or fit.projection is None:
        typer.echo(f"error: {fit.refusal}; nothing written", err=True)
        raise typer.Exit(code=2)
    target = out or projections_dir(settings.data_dir) / f"{fit.projection.model_id}.npz"
    if target.resolve() == serving_file.resolve():
        typer.echo(f"error: {target} is the serving model's projection file: choose another "
                   "--out", err=True)
        raise typer.Exit(code=2)
    save_store_fit(fit, target)
    typer.echo(f"fitted on {fit.faces} faces of {fit.people} people; model "
               f"{fit.projection.model_id}, same-person distance "
               f"{fit.projection.same_person_distance:.3f}")
    typer.echo(str(target))
    typer.echo(f"move the service to it: matcher reindex --data-dir {settings.data_dir} "
               f"--projection {target}")


@app.command()
def calibrate(
    cross_age: Annotated[Path, typer.Option(help="Manifest of the cross-age set (FG-NET).")],
    distractors: Annotated[Path, typer.Option(help="Manifest of distractor people (LFW).")],
    category: Annotated[str, typer.Option(help="child, elderly or any: who it is for.")] = "child",
    children_distractors: Annotated[Path | None, typer.Option(
        help="Manifest of children who are not the missing child (LAG young photos): with "
             "--category child, measure on the protocol with them as distractors, against its "
             "whole gallery (every face a child's).")] = None,
    cross_fit: Annotated[list[Path] | None, typer.Option(
        help="Manifests the served model's learned distance was fitted on (repeat the option "
             "for each; the shipped one: FG-NET, LFW and LAG dev): measure it on those people "
             "all the same, each fold's pairs under its recipe refitted without them.")] = None,
    out: Annotated[Path | None, typer.Option(
        help="Where to write it; default <data dir>/calibration/<category>.<model id>.json, "
             "which the service loads at start.")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Data dir (weight cache, output).")] = None,
) -> None:
    """Measure false matches per distance on people known to be different (the cross-age
    protocol's gallery against its sightings and non-mated probes) and write a calibration
    for the model the data dir serves (its serving.json after a reindex, as `matcher serve`
    starts it; else the environment's). With --children-distractors, a child calibration is
    measured on the variant "children as distractors": its whole gallery (cross-age cases and
    the other children's cases) against its sightings and non-mated probes."""
    from matcher.calibration import CalibrationError, calibration_path, stated_model
    from matcher.eval.calibrate import protocol_calibration
    from matcher.eval.crossfit import CrossFitError, crossfit_calibration
    from matcher.eval.manifest import ManifestError, read_manifest
    from matcher.eval.protocol import CHILDREN, MAIN, build_protocols
    from matcher.service.serving import serving_settings

    if category not in ("child", "elderly", "any"):
        typer.echo("error: --category must be child, elderly or any", err=True)
        raise typer.Exit(code=2)
    if children_distractors is not None and category != "child":
        typer.echo("error: --children-distractors measures a child calibration: use it with "
                   "--category child", err=True)
        raise typer.Exit(code=2)
    settings = serving_settings(_settings(data_dir))
    try:
        protocols = build_protocols(
            read_manifest(cross_age, require_age=True), read_manifest(distractors),
            None if children_distractors is None else read_manifest(children_distractors))
        fitted_photos = [p for manifest in cross_fit or [] for p in read_manifest(manifest)]
    except ManifestError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    source: dict[str, object] = {"cross_age": str(cross_age), "distractors": str(distractors)}
    if children_distractors is not None:
        source |= {"children_distractors": str(children_distractors), "protocol": CHILDREN}
    protocol = protocols.get(CHILDREN, protocols[MAIN])  # the one measured
    # Cross-fitting measures the people fitted on, each by a fit without them.
    pipeline = _load_pipeline(settings, None if cross_fit else protocol)
    target = out or calibration_path(settings.calibration_dir, category, pipeline.model_id)
    held = stated_model(target)
    if held is not None and held != pipeline.model_id:  # checked before the long measurement
        typer.echo(f"error: {target} holds the calibration of {held}, not of the served model "
                   f"{pipeline.model_id}: choose another --out", err=True)
        raise typer.Exit(code=2)
    try:
        if cross_fit:
            source["cross_fit"] = [str(manifest) for manifest in cross_fit]
            result = crossfit_calibration(pipeline, protocol, category, fitted_photos, source,
                                          _progress(settings),
                                          distractors_of_category=CHILDREN in protocols)
        else:
            result = protocol_calibration(pipeline, protocol, category, source,
                                          distractors_of_category=CHILDREN in protocols)
    except (CalibrationError, CrossFitError) as exc:  # too few pairs, or nothing to refit
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    result.save(target)
    typer.echo(f"{result.pairs} non-mated pairs ({result.searches} searches x "
               f"{result.gallery_faces} gallery faces) for {result.model_id}, {category}"
               + (", children as distractors" if CHILDREN in protocols else ""))
    # Each model has its own distance scale: report the distances where the false match rate
    # (FMR) reaches fixed levels, and the FMR at the model's own same-person distance.
    for level in (1e-4, 1e-3, 1e-2):
        if level < result.resolution:  # threshold_for would answer for one pair's worth
            typer.echo(f"  FMR <= {level:.0e}: beyond what {result.pairs} pairs measure (one "
                       f"pair is {result.resolution:.1e})")
            continue
        distance = result.threshold_for(level, 1)
        typer.echo(f"  FMR <= {level:.0e} up to distance {distance:.3f}: expected false "
                   f"candidates per search {level * 1_000:g} with 1k case faces, "
                   f"{level * 100_000:g} with 100k")
    same = pipeline.embedder.same_person_distance
    typer.echo(f"  at the model's same-person distance {same:.3f}: FMR "
               f"{float(result.false_match_rate(same)):.2e}")
    typer.echo(str(target))


# The `matcher reindex` option of each model setting (matcher.service.serving.MODEL_SETTINGS):
# after the first reindex they are the only way to change the model (serving.json wins over
# the environment).
MODEL_OPTIONS = {"detector": "--detector", "embedder": "--embedder",
                 "embed_flip": "--flip/--no-flip",
                 "ensemble_sface_weight": "--ensemble-sface-weight",
                 "projection_file": "--projection"}


def _as_option(name: str, value: Any) -> str:
    if name == "embed_flip":
        return "" if value is None else ("--flip" if value else "--no-flip")
    return f"{MODEL_OPTIONS[name]} {value}"


@app.command()
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
    Ctrl-C. Refused (exit 2) while a server serves the store or another reindex runs: for a
    running server, use POST /v1/admin/reindex instead (it swaps live). The target is the
    serving model (serving.json, after a first reindex: it wins over MATCHER_* model
    settings) with the options given here."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from matcher.service import open_matcher
    from matcher.service.holders import StoreBusy, check_reindex_allowed
    from matcher.service.reindex import ReindexError, ReindexJob
    from matcher.service.serving import overruled_by_serving, reindex_target, serving_settings

    settings = _settings(data_dir)
    changes: dict[str, Any] = {k: v for k, v in {
        "embedder": embedder, "detector": detector, "embed_flip": flip,
        "ensemble_sface_weight": ensemble_sface_weight}.items() if v is not None}
    if projection is not None:
        changes["projection_file"] = (projection if projection in ("none", "shipped")
                                      else Path(projection).resolve())
    unused = {k: v for k, v in overruled_by_serving(settings).items() if k not in changes}
    if unused:
        typer.echo("note: serving.json (the model the last reindex swapped in) wins over the "
                   "environment for the model settings: "
                   + ", ".join(f"MATCHER_{k.upper()}={v}" for k, v in unused.items())
                   + " is not used; to reindex to it, pass "
                   + " ".join(_as_option(k, v) for k, v in unused.items()), err=True)
    try:
        # Checked before the store is opened: opening loads every model and uses up the saved
        # index copies (a clean stop's), which a refused name would have cost for nothing.
        reindex_target(serving_settings(settings), changes)
        if not dry_run:  # the job claims the store; this look refuses before the models load
            check_reindex_allowed(settings)
        matcher = open_matcher(settings)
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


@app.command()
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
    from matcher.service import open_matcher, purge_sightings
    from matcher.service.retention import sweep_orphans

    settings = _settings(data_dir)
    days = older_than_days if older_than_days is not None else settings.sighting_retention_days
    if days is None:
        typer.echo("error: no retention period (--older-than-days or "
                   "MATCHER_SIGHTING_RETENTION_DAYS)", err=True)
        raise typer.Exit(code=2)
    if not (math.isfinite(days) and days >= 0):  # 0: every sighting that matched nobody
        typer.echo(f"error: --older-than-days takes a number of days, 0 or more, not {days}",
                   err=True)
        raise typer.Exit(code=2)
    matcher = open_matcher(settings)
    try:
        report = purge_sightings(matcher, days, dry_run=dry_run)
        orphans = sweep_orphans(matcher, dry_run=dry_run)
    finally:
        matcher.close()
    verb = "would purge" if dry_run else "purged"
    typer.echo(f"{verb} {report.sightings} sightings uploaded before "
               f"{report.uploaded_before:%Y-%m-%d} ({report.faces} faces, {report.files} files)")
    typer.echo(f"{'would remove' if dry_run else 'removed'} {orphans} orphan photo files")


class LogFormat(StrEnum):
    JSON = "json"
    TEXT = "text"


@app.command()
def serve(
    data_dir: Annotated[Path | None, typer.Option(help="Store, photos, caches.")] = None,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
    log_format: Annotated[LogFormat, typer.Option(
        help="Logs on stderr: one JSON object per line, or text.")] = LogFormat.JSON,
) -> None:
    """Serve the HTTP API (a first start creates the store and prints an admin key once)."""
    from matcher.api import create_app
    from matcher.api.server import build_server
    from matcher.logs import configure_logging

    configure_logging(logging.INFO, json=log_format == LogFormat.JSON)
    settings = _settings(data_dir)
    _bootstrap(settings)
    build_server(create_app(settings), settings, host, port).run()


def _bootstrap(settings: Settings) -> None:
    from matcher.service import InvalidAdminKey, bootstrap_admin
    from matcher.store import make_engine, migrate, session_factory

    engine = make_engine(settings)
    try:
        migrate(engine)
        given = settings.admin_key.get_secret_value() if settings.admin_key else None
        plaintext = bootstrap_admin(session_factory(engine), given)
    except InvalidAdminKey as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    finally:
        engine.dispose()
    if plaintext is not None:
        typer.echo("First start: an admin API key was created. It is shown only this once:",
                   err=True)
        typer.echo(plaintext)


keys_app = typer.Typer(no_args_is_help=True, help="API keys.")
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="tip_app, investigator, case_manager or admin.")],
    name: Annotated[str, typer.Option(help="Who holds the key (an app, a desk).")],
    data_dir: Annotated[Path | None, typer.Option(help="Store, photos, caches.")] = None,
) -> None:
    """Create an API key; the key alone is printed on the last line (shown only once)."""
    from matcher.service import new_key
    from matcher.store import Role, make_engine, migrate, session_factory

    try:
        chosen = Role(role)
    except ValueError as exc:
        typer.echo(f"error: unknown role {role!r}; one of {[r.value for r in Role]}", err=True)
        raise typer.Exit(code=2) from exc
    settings = _settings(data_dir)
    engine = make_engine(settings)
    try:
        migrate(engine)
        row, plaintext = new_key(session_factory(engine), chosen, name)
    finally:
        engine.dispose()
    typer.echo(f"created {chosen.value} key {row.id} for {name}", err=True)
    typer.echo(plaintext)
