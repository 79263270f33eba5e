"""Crash-safe file writes, shared by every package that persists files."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)


def private_folder(path: Path) -> None:
    """Creates the folder if needed and leaves it to its owner alone (0700): it holds children's
    photos, reporters' contacts and keys, which other accounts on the machine must not read,
    whatever the modes of the files inside (the umask's, often world-readable)."""
    path.mkdir(parents=True, exist_ok=True)
    mode = path.stat()
    if mode.st_mode & 0o077 and mode.st_uid == os.getuid():
        path.chmod(0o700)
    elif mode.st_mode & 0o077:  # someone else's: say so, do not fail the start
        log.warning("%s can be read by other accounts (mode %o) and is not ours to change",
                    path, mode.st_mode & 0o777)


def write_atomic(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Writes through `write(handle)` to a temp file beside `path`, fsyncs it, renames it over
    `path` and fsyncs the folder: after a crash `path` holds the old content or the new, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with tmp.open("wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
