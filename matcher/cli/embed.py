"""`matcher embed`: the faces of photos, without a server or a store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from matcher.cli.common import pipeline_or_exit, settings_from
from matcher.config import Settings

if TYPE_CHECKING:
    from matcher.embed.types import Face, Image


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


def _chunks(paths: list[Path], size: int) -> Iterator[list[Path]]:
    for start in range(0, len(paths), size):
        yield paths[start : start + size]


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
    settings = settings_from(data_dir,
                             **({} if small_faces is None else {"small_faces": small_faces}))
    pipeline = pipeline_or_exit(settings)
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
