"""What a candidate's distance means here and now, from the running model's calibrations
(matcher/calibration.py): the threshold in force and the expected false candidates.

The calibrations travel with the serving model (`Serving.calibrations`): a reindex swaps them
in the same step as the pipeline and indexes, so a distance is never read on another model's
scale."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.orm import Session

from matcher.calibration import ANY, Calibration, for_category
from matcher.service.runtime import Runtime
from matcher.store import active_case_faces_by_category
from matcher.store.cases import case_categories


def calibration_of(matcher: Runtime, category: str) -> Calibration | None:
    """The category's own calibration, else one made for any category, else None."""
    return for_category(matcher.calibrations, category)


def searched_faces(matcher: Runtime, session: Session) -> dict[str, int]:
    """Active case faces a search compares with, by case category, and under "any" all.

    A calibration's false match rate is per compared face of its own category (a `child`
    calibration measures searches against children's case faces), so expected false
    candidates scale with that category's faces, not with the whole gallery."""
    counts = active_case_faces_by_category(session, matcher.model_id)
    return {**counts, ANY: sum(counts.values())}


def searched_face_counts(matcher: Runtime) -> dict[str, int]:
    """`searched_faces` in a session of its own."""
    with matcher.sessions() as session:
        return searched_faces(matcher, session)


def threshold(matcher: Runtime, category: str, faces: dict[str, int]) -> float:
    """The distance an operator set (`match_threshold`); else `match_false_per_search`
    turned into a distance at the current number of faces it applies to (`searched_faces`)
    when a calibration exists; else the model's own same-person distance."""
    target = matcher.settings.match_false_per_search
    calibration = calibration_of(matcher, category)
    if target is None or calibration is None or matcher.settings.match_threshold is not None:
        return matcher.match_threshold
    return calibration.threshold_for(target, faces.get(calibration.category, 0))


def case_thresholds(matcher: Runtime, session: Session, case_ids: Iterable[int]
                    ) -> dict[int, float]:
    """The threshold in force for each case, by its category."""
    wanted = set(case_ids)
    if not wanted:
        return {}
    # The counts only matter where a target turns into a threshold.
    targeted = (matcher.calibrations and matcher.settings.match_false_per_search is not None
                and matcher.settings.match_threshold is None)
    faces = searched_faces(matcher, session) if targeted else {}
    by_category: dict[str, float] = {}
    out = {}
    for case_id, category in case_categories(session, wanted).items():
        if category.value not in by_category:
            by_category[category.value] = threshold(matcher, category.value, faces)
        out[case_id] = by_category[category.value]
    return out


def expected_false(matcher: Runtime, category: str, distance: float, faces: dict[str, int],
                   model_id: str | None = None) -> float | None:
    """Expected false candidates per search at least this close, among today's active case
    faces of the calibration's category.

    `model_id` is the model that measured `distance` (a stored candidate's; default the
    serving model). None without a calibration for the running model, and None for a distance
    of another model (a candidate found before a reindex): its distances are on another scale,
    and the faces counted are the running model's."""
    calibration = calibration_of(matcher, category)
    if calibration is None or calibration.model_id != (model_id or matcher.model_id):
        return None
    return float(calibration.expected_false(distance, faces.get(calibration.category, 0)))
