"""The ablation behind docs/accuracy-2026-11.md, "Tried and not kept": variants of the default
model on the cross-age dev protocol, each scored by the same index and metrics as `matcher eval`
(scripts/ablate_crossage.py runs it).

Every photo's largest face is detected and aligned once, as the default pipeline does; its chips
are then embedded as they are and in a few variants (`views`), each flip-averaged like the
default; views are combined by averaging their unit-length descriptors. Rows:
* the default (must equal `matcher eval`'s figures: a check that the harness measures the same);
* chip variants, replacing the colour chip or averaged with it, for both networks or one;
* cases with every photo up to age 12 (`--case-photos all`): how a case's photos are fused
  (`case_fusion`);
* within-class whitening and LDA, fitted person-disjoint, and the learned projection by either
  recipe in 5 independent person-disjoint splits (`learned`); a second table tells children
  from children alone;
* whether choosing a chip variant generalises: chosen on one fold's people, scored on the other's.
Deterministic; about 20 minutes on 2 cores (x86_64), 5 with a descriptor cache after the first
run. Needs the research photos and the dev extras (OpenCV, for CLAHE).
"""

from matcher.eval.ablation.run import StaleCache, ablate, table

__all__ = ["StaleCache", "ablate", "table"]
