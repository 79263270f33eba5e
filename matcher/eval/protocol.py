"""Who is a case, a sighting, a distractor or a non-mated probe (../shared/data/README.md).

For each cross-age person: the case photo is the youngest photo taken at age <= 12; each photo
taken 1-10 years after it is a sighting. Distractor people, sorted by identity, alternate:
even positions are gallery cases, odd positions non-mated probes; each gives its first photo in
path order. Pure functions: no pixels here.

Variants for cases with several photos (families often give a few, at different ages):
`all` gives a case every photo of the person taken at age <= 12, and its sightings are the
photos taken 1-10 years after the newest of them (the child went missing after the last photo
the family has; the gap is counted from that photo). `newest` keeps the same sightings but only
that newest photo, so `all` against `newest` measures what the extra photos bring.

The variant "children as distractors" (`build_protocols`) keeps the cross-age set and takes
children who are not the missing child (LAG young photos) as the other cases and the
non-mated searches, by the same split.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Literal

from matcher.eval.manifest import LabelledPhoto

MAX_CASE_AGE = 12
MIN_GAP, MAX_GAP = 1, 10
GAP_BANDS = {"1-2": (1, 2), "3-5": (3, 5), "6-10": (6, 10)}
CasePhotos = Literal["youngest", "newest", "all"]
CASE_PHOTOS: tuple[CasePhotos, ...] = ("youngest", "newest", "all")
MAIN, CHILDREN = "main", "children"  # the protocols' names in reports, plots and JSON


@dataclass(frozen=True)
class Sighting:
    photo: LabelledPhoto
    case: str  # the identity it should be matched to
    gap: int  # years between the case photo and this one


@dataclass(frozen=True)
class Protocol:
    cases: list[LabelledPhoto]  # the case photos of cross-age people with a young enough photo
    distractors: list[LabelledPhoto]  # gallery entries of people never searched for
    sightings: list[Sighting]
    probes: list[LabelledPhoto]  # non-mated searches: people absent from the gallery

    @property
    def gallery(self) -> list[LabelledPhoto]:
        return self.cases + self.distractors

    @property
    def case_people(self) -> int:
        return len({p.identity for p in self.cases})


def gap_band(gap: int) -> str:
    return next(name for name, (low, high) in GAP_BANDS.items() if low <= gap <= high)


def build_protocol(
    cross_age: list[LabelledPhoto], distractors: list[LabelledPhoto],
    case_photos: CasePhotos = "youngest",
) -> Protocol:
    if case_photos not in CASE_PHOTOS:
        raise ValueError(f"case_photos must be one of {CASE_PHOTOS}, got {case_photos!r}")
    by_person: dict[str, list[LabelledPhoto]] = defaultdict(list)
    for photo in cross_age:
        by_person[photo.identity].append(photo)
    cases, sightings = [], []
    for identity in sorted(by_person):
        photos = sorted(by_person[identity], key=lambda p: (p.age if p.age is not None else 999,
                                                            str(p.path)))
        young = [p for p in photos if p.age is not None and p.age <= MAX_CASE_AGE]
        if not young:
            continue
        # The photo the gap is counted from: the youngest, or the newest the family has.
        anchor = young[0] if case_photos == "youngest" else young[-1]
        cases.extend(young if case_photos == "all" else [anchor])
        for photo in photos:
            gap = (photo.age or 0) - (anchor.age or 0)
            # For `newest` and `all`, gap >= 1 leaves out every case photo (all are younger).
            if photo is not anchor and MIN_GAP <= gap <= MAX_GAP:
                sightings.append(Sighting(photo, identity, gap))
    first_photo: dict[str, LabelledPhoto] = {}
    for photo in sorted(distractors, key=lambda p: str(p.path)):
        first_photo.setdefault(photo.identity, photo)
    people = sorted(first_photo)
    return Protocol(
        cases=cases,
        distractors=[first_photo[p] for p in people[0::2]],
        sightings=sightings,
        probes=[first_photo[p] for p in people[1::2]],
    )


def build_protocols(
    cross_age: list[LabelledPhoto], distractors: list[LabelledPhoto],
    children: list[LabelledPhoto] | None = None, case_photos: CasePhotos = "youngest",
) -> dict[str, Protocol]:
    """The main protocol and, given `children` who are not the missing child (one young
    photo or more per person), the variant with them as distractors: same cross-age cases
    and sightings, children as the other cases and the non-mated searches."""
    protocols = {MAIN: build_protocol(cross_age, distractors, case_photos)}
    if children is not None:
        protocols[CHILDREN] = build_protocol(cross_age, children, case_photos)
    return protocols
