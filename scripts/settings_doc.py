"""Writes the settings table of docs/operations.md from matcher/config.py.

    .venv/bin/python scripts/settings_doc.py            # rewrite the table in the page
    .venv/bin/python scripts/settings_doc.py --check    # exit 1 when the page is stale
    .venv/bin/python scripts/settings_doc.py --print    # the table alone, on stdout
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from matcher.settings_doc import page_block, settings_block, settings_table, update_page

PAGE = Path(__file__).resolve().parent.parent / "docs" / "operations.md"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--page", type=Path, default=PAGE, help="the page holding the table")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="only say whether it is stale")
    mode.add_argument("--print", action="store_true", help="print the table, change nothing")
    args = parser.parse_args()
    if args.print:
        print(settings_table())
        return 0
    if args.check:
        stale = page_block(args.page.read_text()) != settings_block()
        if stale:
            print(f"{args.page}: the settings table is stale; run scripts/settings_doc.py",
                  file=sys.stderr)
        return 1 if stale else 0
    print(f"{args.page}: {'updated' if update_page(args.page) else 'already current'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
