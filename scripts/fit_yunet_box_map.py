"""Fits the YuNet -> dlib-mmod box map used by matcher.embed.yunet.dlib_box_from_yunet.

    .venv/bin/python scripts/fit_yunet_box_map.py --limit 300 --limit-fgnet 150

Runs YuNet and dlib's mmod on dev photos, pairs their faces, and prints, for a few size
measures, the fitted map and its residuals; the chosen line is hard-coded in yunet.py. The
fitting is matcher/eval/box_map.py. Needs the dev extras (dlib-bin) and the research photos
(MATCHER_TEST_DATA or ../shared/data).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from matcher.bench.progress import show_progress
from matcher.eval.box_map import collect, fits
from matcher.eval.manifest import research_data_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=research_data_dir())
    parser.add_argument("--limit", type=int, default=300, help="LFW-dev photos to use")
    parser.add_argument("--limit-fgnet", type=int, default=150, help="FG-NET-dev photos to use")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    show_progress("matcher.eval.box_map")
    yunet, mmod = collect(args.data, args.limit, args.limit_fgnet)
    aspect = (mmod[:, 2] - mmod[:, 0]) / (mmod[:, 3] - mmod[:, 1])
    print(f"{len(mmod)} matched faces; mmod width/height median {np.median(aspect):.3f}")
    print("\n".join(fits(yunet, mmod)))


if __name__ == "__main__":
    main()
