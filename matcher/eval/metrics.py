"""Identification metrics from ranked search results: rank-k, CMC, TPIR at a fixed FPIR."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FPIR = 0.01


@dataclass(frozen=True)
class Rates:
    searches: int
    rank1: float
    rank10: float
    tpir_at_fpir_1pct: float

    def as_dict(self) -> dict[str, float | int]:
        return {"searches": self.searches, "rank1": self.rank1, "rank10": self.rank10,
                "tpir_at_fpir_1pct": self.tpir_at_fpir_1pct}


def mated_ranks(ranked: NDArray[np.int64], truth: NDArray[np.int64]) -> NDArray[np.int64]:
    """1-based rank of the true owner in each row of `ranked` (q, k); 0 where it is absent."""
    hits = ranked == truth[:, None]
    return np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, 0)


def fpir_threshold(non_mated_best: NDArray[np.float32], fpir: float = FPIR) -> float:
    """The distance below which at most `fpir` of non-mated searches return any candidate.

    A search that found no face has distance inf and never counts as a false alarm.
    """
    ordered = np.sort(np.asarray(non_mated_best, dtype=np.float64))
    allowed = int(np.floor(fpir * len(ordered)))
    if allowed >= len(ordered):
        return float("inf")
    return float(ordered[allowed])  # strictly below this: exactly `allowed` false alarms or fewer


def rates(ranks: NDArray[np.int64], rank1_distance: NDArray[np.float32], threshold: float) -> Rates:
    """`ranks` from mated_ranks; TPIR counts rank-1 hits closer than the FPIR threshold."""
    count = len(ranks)
    if count == 0:
        return Rates(0, float("nan"), float("nan"), float("nan"))
    first = ranks == 1
    return Rates(
        searches=count,
        rank1=float(first.mean()),
        rank10=float(((ranks >= 1) & (ranks <= 10)).mean()),
        tpir_at_fpir_1pct=float((first & (rank1_distance < threshold)).mean()),
    )


def cmc(ranks: NDArray[np.int64], max_rank: int) -> NDArray[np.float64]:
    """Identification rate at ranks 1..max_rank."""
    found = ranks[ranks > 0]
    return np.array([(found <= r).sum() / max(1, len(ranks)) for r in range(1, max_rank + 1)])
