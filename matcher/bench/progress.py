"""Where benchmark progress goes: timestamped lines on stderr, so that stdout holds only the
figures (a table, or JSON to pipe on)."""

from __future__ import annotations

import logging
import sys


def show_progress(*loggers: str) -> None:
    """Progress of the named loggers (default: every benchmark's) on stderr, one `HH:MM:SS
    message` line each. Other libraries stay at warnings: httpx, for one, logs every request."""
    logging.basicConfig(format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr)
    for name in loggers or ("matcher.bench",):
        logging.getLogger(name).setLevel(logging.INFO)
