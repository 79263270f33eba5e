"""The evaluation's figures as PNG files: CMC curves and per-age-gap bars, per protocol."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from matcher.eval.crossage import CrossAgeReport
from matcher.eval.protocol import MAIN

METRICS = ("rank1", "rank10", "tpir_at_fpir_1pct")


def gap_plot_name(protocol: str) -> str:
    """by_age_gap.png for the main protocol (the name it always had), else by_age_gap_<name>."""
    return "by_age_gap.png" if protocol == MAIN else f"by_age_gap_{protocol}.png"


def write_plots(reports: Mapping[str, CrossAgeReport], folder: Path) -> list[Path]:
    """cmc.png with one labelled curve per protocol, and one by-age-gap bar chart per
    protocol, in `folder`."""
    import matplotlib

    matplotlib.use("Agg")  # files only; no display
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    cmc_path = folder / "cmc.png"
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, report in reports.items():
        ax.plot(range(1, len(report.cmc) + 1), report.cmc, marker="o", label=name)
    ax.set(xlabel="rank", ylabel="identification rate", ylim=(0, 1),
           title="Cross-age CMC (mated searches)")
    ax.grid(True, alpha=0.3)
    ax.legend(title="protocol", loc="lower right", fontsize=8)
    fig.savefig(cmc_path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    written = [cmc_path]
    for name, report in reports.items():
        gap_path = folder / gap_plot_name(name)
        fig, ax = plt.subplots(figsize=(6, 4))
        bands = list(report.by_gap)
        width = 0.27
        for offset, metric in enumerate(METRICS):
            values = [float(report.by_gap[b][metric]) for b in bands]
            ax.bar(np.arange(len(bands)) + (offset - 1) * width, values, width, label=metric)
        ax.set_xticks(np.arange(len(bands)), [f"{b} yrs" for b in bands])
        ax.set(ylim=(0, 1.15), ylabel="rate",
               title=f"By age gap between case photo and sighting ({name} protocol)")
        ax.legend(loc="upper center", ncol=3, fontsize=8)
        fig.savefig(gap_path, dpi=100, bbox_inches="tight")
        plt.close(fig)
        written.append(gap_path)
    return written
