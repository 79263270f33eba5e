"""`matcher keys`: list, create and revoke API keys from the console, without a running server.

Each creation and revocation is audited like an admin's over HTTP; the actor is the operator at
the console (name "cli", role "operator", the console's user@host as the client), since no key
was used.
"""

from __future__ import annotations

import getpass
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from matcher.cli.common import settings_from
from matcher.vocabulary import Actor

if TYPE_CHECKING:
    import datetime as dt

    from sqlalchemy.orm import Session, sessionmaker

keys_app = typer.Typer(no_args_is_help=True, help="API keys: list, create, revoke.")

DataDir = Annotated[Path | None, typer.Option(help="Store, photos, caches.")]


def console_actor() -> Actor:
    """Who acts from the console: no key, so the audit names the console's user and host."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name (a container with an unnamed uid)
        user = "unknown"
    return Actor(key_id=None, name="cli", role="operator",
                 client=f"{user}@{socket.gethostname()}"[:64])


@contextmanager
def _sessions(data_dir: Path | None) -> Iterator[sessionmaker[Session]]:
    from matcher.store import migrate, session_factory
    from matcher.wiring import make_engine

    engine = make_engine(settings_from(data_dir))
    try:
        migrate(engine)
        yield session_factory(engine)
    finally:
        engine.dispose()


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="tip_app, investigator, case_manager or admin.")],
    name: Annotated[str, typer.Option(help="Who holds the key (an app, a desk).")],
    data_dir: DataDir = None,
) -> None:
    """Create an API key: a line with its id, then the key alone on the last line (shown only
    once)."""
    from matcher.service.key_admin import create_key_as
    from matcher.vocabulary import Role

    try:
        chosen = Role(role)
    except ValueError as exc:
        typer.echo(f"error: unknown role {role!r}; one of {[r.value for r in Role]}", err=True)
        raise typer.Exit(code=2) from exc
    with _sessions(data_dir) as sessions:
        made, plaintext = create_key_as(sessions, console_actor(), chosen, name)
    typer.echo(f"created {chosen.value} key {made.id} for {name}")
    typer.echo(plaintext)


def _when(at: dt.datetime | None) -> str:
    return "-" if at is None else f"{at:%Y-%m-%d %H:%M}"


@keys_app.command("list")
def keys_list(data_dir: DataDir = None) -> None:
    """Every key, revoked ones too (id, role, created, last used, revoked, name); never the
    secret nor its hash. Times are UTC, to the minute."""
    from matcher.service.key_admin import key_list

    with _sessions(data_dir) as sessions:
        keys = key_list(sessions)
    typer.echo(f"{'id':>5}  {'role':<12}  {'created':<16}  {'last used':<16}  "
               f"{'revoked':<16}  name")
    for key in keys:
        typer.echo(f"{key.id:>5}  {key.role.value:<12}  {_when(key.created_at):<16}  "
                   f"{_when(key.last_used_at):<16}  {_when(key.revoked_at):<16}  {key.name}")


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[int, typer.Argument(help="The key's id (`keys list`).")],
                data_dir: DataDir = None) -> None:
    """Revoke a key: it opens nothing from the next request on. The last live admin key is
    refused (exit 1): make another admin key first."""
    from matcher.service import ApiKeyNotFound, LastAdminKey
    from matcher.service.key_admin import revoke_key_as

    with _sessions(data_dir) as sessions:
        try:
            key = revoke_key_as(sessions, console_actor(), key_id)
        except (ApiKeyNotFound, LastAdminKey) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(code=1) from exc
    typer.echo(f"revoked {key.role.value} key {key.id} ({key.name})")
