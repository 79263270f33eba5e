"""The person-disjoint comparison of learned-distance recipes behind docs/accuracy.md.

    .venv/bin/python scripts/compare_recipes.py [--splits 5] [--cache bench-out/dev-vectors.npz]
        [--only LABEL ...] [--json-out FILE] [--plot DIR]

Embeds the largest face of every dev photo (FG-NET, LFW, LAG; MATCHER_TEST_DATA or
../shared/data) once with the plain default model (about 5 minutes on 2 cores; seconds with
--cache after the first run), then fits each recipe on one fold's people and scores it on the
other fold's, in --splits independent splits, on the three regimes (matcher/eval/recipes.py).
Prints one markdown table per regime: rank-1, rank-10 and TPIR at 1% FPIR pooled over the
folds, and both by age gap. About 10 minutes for every recipe on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matcher  # noqa: F401  sets OMP_WAIT_POLICY before torch loads libgomp
from matcher.bench.machine import describe_machine
from matcher.config import Settings
from matcher.eval.manifest import research_data_dir
from matcher.eval.plots import write_plots
from matcher.eval.recipes import DEFAULT, candidates, compare, embed_dev, pooled, pooled_report
from matcher.wiring import load_pipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, default=5)
    parser.add_argument("--cache", type=Path)
    parser.add_argument("--only", nargs="*", help="labels containing any of these words")
    parser.add_argument("--json-out", type=Path, help="also write the figures as JSON here")
    parser.add_argument("--plot", type=Path, help="the default's CMC and age-gap plots here")
    args = parser.parse_args()
    settings = Settings(projection_file="none")
    dev = embed_dev(load_pipeline(settings), research_data_dir(), args.cache,
                    lambda done, total: print(f"embedded {done}/{total}", file=sys.stderr)
                    if done % 400 < settings.detect_batch_size or done == total else None)
    chosen = [c for c in candidates(dev) if c.fit is None or not args.only
              or any(word in c.label for word in args.only)]
    scores = compare(dev, chosen, settings, args.splits, lambda m: print(m, file=sys.stderr))
    table = {s.candidate.label: {regime: {**pooled(reports), "tpir_at_fpir_5pct": pooled(
        s.wider[regime])["tpir_at_fpir_1pct"]} for regime, reports in s.reports.items()}
             for s in scores}
    default = next((s for s in scores if s.candidate.label == DEFAULT), None)
    if args.plot is not None and default is not None:
        write_plots({regime: pooled_report(reports)
                     for regime, reports in default.reports.items()}, args.plot)
    if args.json_out is not None:
        args.json_out.write_text(json.dumps({"machine": describe_machine(),
                                             "splits": args.splits, "model_id": dev.model_id,
                                             "recipes": table}, indent=1))
    print(f"plain model {dev.model_id}; {args.splits} splits x 2 folds; {describe_machine()}")
    for regime in next(iter(table.values())):
        print(f"\n#### {regime}\n\n| recipe | rank-1 | rank-10 | TPIR @ FPIR 1% | rank-1 by gap "
              "1-2 / 3-5 / 6-10 | TPIR by gap | TPIR @ FPIR 5% |\n|---|---|---|---|---|---|---|")
        for label, rows in table.items():
            row = rows[regime]
            print(f"| {label} | {row['rank1']:.3f} | {row['rank10']:.3f} | "
                  f"{row['tpir_at_fpir_1pct']:.3f} | "
                  + " / ".join(f"{v:.3f}" for v in row["rank1_by_gap"]) + " | "
                  + " / ".join(f"{v:.2f}" for v in row["tpir_by_gap"])
                  + f" | {row['tpir_at_fpir_5pct']:.3f} |")


if __name__ == "__main__":
    main()
