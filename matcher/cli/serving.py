"""`matcher serve`: the HTTP API on a data dir, created (with an admin key, printed once) on
the first start."""

from __future__ import annotations

import logging
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from matcher.cli.common import settings_from
from matcher.config import Settings


class LogFormat(StrEnum):
    JSON = "json"
    TEXT = "text"


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
    settings = settings_from(data_dir)
    _bootstrap(settings)
    build_server(create_app(settings), settings, host, port).run()


def _bootstrap(settings: Settings) -> None:
    from matcher.service import InvalidAdminKey, bootstrap_admin
    from matcher.store import migrate, session_factory
    from matcher.wiring import make_engine

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
