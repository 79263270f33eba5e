"""`matcher keys`: API keys made from the command line, without a running server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from matcher.cli.common import settings_from

keys_app = typer.Typer(no_args_is_help=True, help="API keys.")


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="tip_app, investigator, case_manager or admin.")],
    name: Annotated[str, typer.Option(help="Who holds the key (an app, a desk).")],
    data_dir: Annotated[Path | None, typer.Option(help="Store, photos, caches.")] = None,
) -> None:
    """Create an API key; the key alone is printed on the last line (shown only once)."""
    from matcher.service import new_key
    from matcher.store import Role, migrate, session_factory
    from matcher.wiring import make_engine

    try:
        chosen = Role(role)
    except ValueError as exc:
        typer.echo(f"error: unknown role {role!r}; one of {[r.value for r in Role]}", err=True)
        raise typer.Exit(code=2) from exc
    settings = settings_from(data_dir)
    engine = make_engine(settings)
    try:
        migrate(engine)
        row, plaintext = new_key(session_factory(engine), chosen, name)
    finally:
        engine.dispose()
    typer.echo(f"created {chosen.value} key {row.id} for {name}", err=True)
    typer.echo(plaintext)
