"""`matcher fit-projection`: a learned distance fitted on labelled photos, or on the store's
own cases, for `matcher reindex --projection` to move the service to."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from matcher.cli.common import pipeline_or_exit, progress, settings_from


class ProjectionMethod(StrEnum):
    PROJ_PLDA = "proj+plda"
    PLDA = "plda"
    PROJ = "proj"


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

    settings = settings_from(data_dir, projection_file="none")
    try:
        photos = [photo for manifest in manifests or [] for photo in read_manifest(manifest)]
    except ManifestError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    try:
        projection, faces = fit_on_photos(pipeline_or_exit(settings), photos, recipe,
                                          progress=progress(settings))
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
    from matcher.service import open_runtime
    from matcher.service.store_fit import (
        FALSE_MATCH_RATE,
        MIN_PEOPLE,
        StoreFitRefused,
        fit_from_store,
        projections_dir,
        save_store_fit,
    )

    settings = settings_from(data_dir)
    matcher = open_runtime(settings)  # the serving model, as `matcher serve` starts it
    serving_file = matcher.settings.projection_file
    if not isinstance(serving_file, Path):  # never write over the shipped file either
        from matcher.fitted import PROJECTION

        serving_file = PROJECTION
    try:
        fit = fit_from_store(matcher, recipe, MIN_PEOPLE if min_people is None else min_people,
                             progress=progress(settings))
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
