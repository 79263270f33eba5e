"""The protocol's selection rules and the metrics' arithmetic, on hand-made data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from matcher.config import Settings
from matcher.eval.crossage import evaluate_vectors, protocol_photos
from matcher.eval.manifest import LabelledPhoto, ManifestError, read_manifest
from matcher.eval.metrics import cmc, fpir_threshold, mated_ranks, rates
from matcher.eval.protocol import build_protocol, gap_band


def photo(identity: str, age: int | None, name: str | None = None) -> LabelledPhoto:
    return LabelledPhoto(Path(name or f"{identity}_{age}.jpg"), identity, age)


def test_case_is_the_youngest_photo_up_to_12_and_sightings_are_1_to_10_years_later() -> None:
    cross_age = [
        photo("a", 14), photo("a", 3), photo("a", 5), photo("a", 3, "a_3b.jpg"),
        photo("a", 13), photo("a", 14, "a_14b.jpg"), photo("a", 30),
        photo("b", 13), photo("b", 20),  # never young enough to be a case
    ]
    protocol = build_protocol(cross_age, [])
    assert [p.path.name for p in protocol.cases] == ["a_3.jpg"]
    sightings = {(s.photo.path.name, s.gap) for s in protocol.sightings}
    # Same-age photos (gap 0) and gaps over 10 years are not sightings.
    assert sightings == {("a_5.jpg", 2), ("a_13.jpg", 10)}
    assert all(s.case == "a" for s in protocol.sightings)


def test_distractors_alternate_by_sorted_identity_with_their_first_photo() -> None:
    lfw = [photo(name, None, f"{name}_{n}.jpg") for name in ("d", "b", "a", "c") for n in (2, 1)]
    protocol = build_protocol([], lfw)
    assert [p.path.name for p in protocol.distractors] == ["a_1.jpg", "c_1.jpg"]
    assert [p.path.name for p in protocol.probes] == ["b_1.jpg", "d_1.jpg"]


@pytest.mark.parametrize("gap, band", [(1, "1-2"), (2, "1-2"), (3, "3-5"), (5, "3-5"),
                                       (6, "6-10"), (10, "6-10")])
def test_gap_bands(gap: int, band: str) -> None:
    assert gap_band(gap) == band


def test_manifest_paths_are_relative_to_the_manifest(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,identity,age\nimages/x.jpg,p1,4\nimages/y.jpg,p1,\n")
    rows = read_manifest(manifest)
    assert rows[0] == LabelledPhoto(tmp_path / "images/x.jpg", "p1", 4)
    assert rows[1].age is None
    with pytest.raises(ManifestError, match="age is required"):
        read_manifest(manifest, require_age=True)
    manifest.write_text("file,who\nx.jpg,p1\n")
    with pytest.raises(ManifestError, match="columns"):
        read_manifest(manifest)
    with pytest.raises(ManifestError, match="cannot read"):
        read_manifest(tmp_path / "missing.csv")


def test_ranks_rates_and_the_fpir_threshold() -> None:
    ranked = np.array([[7, 1, 2], [3, 4, 5], [9, 8, 7]])
    ranks = mated_ranks(ranked, np.array([7, 5, 1]))
    np.testing.assert_array_equal(ranks, [1, 3, 0])
    # 200 non-mated searches: 1% = 2 may return a candidate, so the threshold is the 3rd best.
    non_mated = np.concatenate([[0.1, 0.2, 0.3], np.full(196, 0.9), [np.inf]]).astype(np.float32)
    assert fpir_threshold(non_mated) == pytest.approx(0.3)
    result = rates(ranks, np.array([0.25, 0.1, 0.5], np.float32), threshold=0.3)
    assert result.rank1 == pytest.approx(1 / 3)
    assert result.rank10 == pytest.approx(2 / 3)
    assert result.tpir_at_fpir_1pct == pytest.approx(1 / 3)
    # The same rank-1 hit farther than the threshold is not a true positive at this FPIR.
    assert rates(ranks, np.array([0.35, 0.1, 0.5], np.float32), 0.3).tpir_at_fpir_1pct == 0
    np.testing.assert_allclose(cmc(ranks, 3), [1 / 3, 1 / 3, 2 / 3])


def test_multi_photo_cases_hold_every_photo_up_to_12_and_sightings_follow_the_newest() -> None:
    cross_age = [photo("a", 2), photo("a", 5), photo("a", 9), photo("a", 11), photo("a", 16),
                 photo("a", 22), photo("b", 12), photo("b", 12, "b_12b.jpg"), photo("b", 13)]
    every = build_protocol(cross_age, [], case_photos="all")
    assert [p.path.name for p in every.cases] == ["a_2.jpg", "a_5.jpg", "a_9.jpg", "a_11.jpg",
                                                  "b_12.jpg", "b_12b.jpg"]
    assert every.case_people == 2
    # Gaps count from the newest case photo (11 for a, 12 for b); nothing before it is sought.
    assert {(s.photo.path.name, s.gap) for s in every.sightings} == {
        ("a_16.jpg", 5), ("b_13.jpg", 1)}
    newest = build_protocol(cross_age, [], case_photos="newest")
    assert [p.path.name for p in newest.cases] == ["a_11.jpg", "b_12b.jpg"]
    assert newest.sightings == every.sightings
    youngest = build_protocol(cross_age, [])
    assert [p.path.name for p in youngest.cases] == ["a_2.jpg", "b_12.jpg"]
    assert ("a_9.jpg", 7) in {(s.photo.path.name, s.gap) for s in youngest.sightings}
    with pytest.raises(ValueError, match="case_photos"):
        build_protocol(cross_age, [], case_photos="oldest")  # type: ignore[arg-type]


def test_scoring_under_another_tools_threshold_reports_the_false_alarms_it_allows(
    tmp_path: Path,
) -> None:
    """Two cases on a line; one sighting 0.1 from its case, one 0.3; non-mated searches at
    0.05, 0.2 and 0.4 from the nearest case (1% of 3 searches: none may alarm)."""
    protocol = build_protocol([photo("a", 2), photo("a", 5), photo("b", 2), photo("b", 6)],
                              [photo(n, None) for n in ("c", "d", "e", "f", "g", "h")])
    on_line = {"a_2.jpg": 0.0, "b_2.jpg": 10.0, "a_5.jpg": 0.1, "b_6.jpg": 10.3,
               "c_None.jpg": 20.0, "e_None.jpg": 30.0, "g_None.jpg": 40.0,  # distractors
               "d_None.jpg": 20.05, "f_None.jpg": 30.2, "h_None.jpg": 40.4}  # probes
    vectors = [np.array([on_line[p.path.name], 0.0], np.float32)
               for p in protocol_photos(protocol)]
    settings = Settings(data_dir=tmp_path)
    strict = evaluate_vectors(protocol, vectors, settings, "line", 2)
    assert strict.threshold == pytest.approx(0.05, abs=1e-4) and strict.counts["false_alarms"] == 0
    assert strict.rank1 == 1.0 and strict.tpir_at_fpir_1pct == 0.0
    given = evaluate_vectors(protocol, vectors, settings, "line", 2, threshold=0.35)
    assert given.counts["false_alarms"] == 2 and given.tpir_at_fpir_1pct == 1.0
    looser = evaluate_vectors(protocol, vectors, settings, "line", 2, fpir=1.5 / 3)
    assert looser.threshold == pytest.approx(0.2, abs=1e-4) and looser.counts["false_alarms"] == 1
    assert looser.tpir_at_fpir_1pct == 0.5
