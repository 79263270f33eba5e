"""`matcher eval` and `matcher calibrate`: measured on the cross-age protocol of the research
photos (../shared/data/README.md), accuracy for the one, false matches per distance for the
other."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from matcher.cli.common import pipeline_or_exit, progress, settings_from
from matcher.config import Settings

if TYPE_CHECKING:
    from matcher.embed import FacePipeline
    from matcher.eval.crossage import CrossAgeReport
    from matcher.eval.protocol import Protocol


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
    pipeline = _pipeline_for(settings, list(protocols.values()))
    reports = evaluate_protocols(protocols, pipeline, settings, progress(settings),
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


def _pipeline_for(settings: Settings, measured: list[Protocol]) -> FacePipeline:
    """`pipeline_or_exit`, refused (exit 2) when a projection was fitted on people of any of the
    `measured` protocols."""
    from matcher.eval.fitting import FittedPeopleScored, check_not_fitted_on

    pipeline = pipeline_or_exit(settings, measured[0])
    try:
        for protocol in measured[1:]:
            check_not_fitted_on(pipeline, protocol)
    except FittedPeopleScored as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    return pipeline


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
    for the model the data dir serves (its store's record after a reindex, as `matcher serve`
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
    settings = serving_settings(settings_from(data_dir))
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
    pipeline = pipeline_or_exit(settings, None if cross_fit else protocol)
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
                                          progress(settings),
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

