"""The typer app: every command of `matcher`, registered in the order `matcher --help` lists
them. The commands live in one module per subject beside this one."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from matcher.cli import embed, evaluate, fit, keys, maintenance, serving

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="The `matcher` command line.")


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING)


app.command()(embed.embed)
app.command("eval")(evaluate.eval_command)
app.command("fit-projection")(fit.fit_projection_command)
app.command()(evaluate.calibrate)
app.command()(maintenance.reindex)
app.command()(maintenance.purge)
app.command()(serving.serve)
app.add_typer(keys.keys_app, name="keys")
