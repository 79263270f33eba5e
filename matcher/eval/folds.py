"""Person-disjoint folds: whatever is fitted on some people is scored on other people only.

A learned part scored on the people it was fitted to shows a gain that held-back people will
not see (issue 8). People go to folds by a hash of their identity, so the split is the same on
every machine and does not depend on the order of a manifest.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable

from matcher.eval.manifest import LabelledPhoto
from matcher.eval.protocol import Protocol


class FoldLeak(ValueError):
    """A person whose photos were fitted on is also among the people scored."""


def person_fold(identity: str, folds: int, split: int = 0) -> int:
    """The fold of a person in one of several independent splits. Split 0 hashes with CRC-32,
    as the first measurements did; other splits salt a cryptographic hash, since salted CRC
    values are linear in the salt and would give correlated splits."""
    if folds < 2:
        raise ValueError(f"person-disjoint evaluation needs at least 2 folds, got {folds}")
    if split == 0:
        return zlib.crc32(identity.encode("utf-8")) % folds
    digest = hashlib.blake2b(f"{split}:{identity}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % folds


def protocol_people(protocol: Protocol) -> set[str]:
    """Everyone the protocol scores: cases, distractors, sightings and non-mated probes."""
    sightings = protocol.sightings
    return ({p.identity for p in protocol.gallery} | {p.identity for p in protocol.probes}
            | {s.case for s in sightings} | {s.photo.identity for s in sightings})


def fold_protocol(protocol: Protocol, fold: int, folds: int, split: int = 0) -> Protocol:
    """The protocol restricted to the people of one fold (a smaller gallery and fewer searches)."""
    def keep(identity: str) -> bool:
        return person_fold(identity, folds, split) == fold

    return Protocol(
        cases=[p for p in protocol.cases if keep(p.identity)],
        distractors=[p for p in protocol.distractors if keep(p.identity)],
        sightings=[s for s in protocol.sightings if keep(s.case)],
        probes=[p for p in protocol.probes if keep(p.identity)],
    )


def fitting_photos(photos: Iterable[LabelledPhoto], fold: int, folds: int, split: int = 0
                   ) -> list[LabelledPhoto]:
    """Every photo of the people outside `fold`: what may be fitted on to score that fold."""
    return [p for p in photos if person_fold(p.identity, folds, split) != fold]


def check_disjoint(fitted: Iterable[LabelledPhoto], scored: Protocol) -> None:
    """Raise FoldLeak if anyone fitted on is also scored."""
    shared = {p.identity for p in fitted} & protocol_people(scored)
    if shared:
        raise FoldLeak(f"{len(shared)} people are both fitted on and scored, e.g. "
                       f"{sorted(shared)[:3]}")
