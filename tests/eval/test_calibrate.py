"""Calibration on real faces: a threshold chosen for a false-candidate target on some people
keeps that target, within a stated tolerance, on people it never saw; and `matcher calibrate`
writes a file the service loads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from matcher.calibration import calibration_path, fit, load
from matcher.config import Settings
from matcher.eval.calibrate import non_mated_distances
from matcher.eval.crossage import embed_largest_faces
from matcher.eval.manifest import LabelledPhoto, read_manifest
from matcher.eval.protocol import CHILDREN, build_protocols
from matcher.wiring import load_pipeline
from tests.data import REPO_ROOT, require_test_data
from tests.eval.conftest import SmallManifests, children_manifest

TARGET = 0.2  # expected false candidates per search
TOLERANCE = 0.5  # relative: observed within [0.1, 0.3] false candidates per search


def _first_photo_per_person(manifest: Path) -> list[LabelledPhoto]:
    first: dict[str, LabelledPhoto] = {}
    for photo in sorted(read_manifest(manifest), key=lambda p: str(p.path)):
        first.setdefault(photo.identity, photo)
    return [first[who] for who in sorted(first)]


def test_the_calibrated_threshold_holds_on_held_apart_people(settings: Settings) -> None:
    data = require_test_data()
    people = _first_photo_per_person(data / "lfw-dev" / "manifest.csv")
    folds = people[0::2], people[1::2]  # person-disjoint: each person is in one fold only
    assert not {p.identity for p in folds[0]} & {p.identity for p in folds[1]}
    pipeline = load_pipeline(settings)
    embedded = []
    for fold in folds:
        vectors = embed_largest_faces(pipeline, fold)
        kept = [(v, p.identity) for v, p in zip(vectors, fold, strict=True) if v is not None]
        embedded.append((np.stack([v for v, _ in kept]), [who for _, who in kept]))

    # Fit on fold A: every face searched against every other person's face.
    (faces_a, who_a), (faces_b, who_b) = embedded
    calibration = fit(pipeline.model_id, "any", non_mated_distances(faces_a, who_a, faces_a,
                                                                       who_a),
                      searches=len(who_a), gallery_faces=len(who_a))
    threshold = calibration.threshold_for(TARGET, gallery_faces=len(who_b))

    # Observe on fold B at B's gallery size: false candidates per search under the threshold.
    distances_b = non_mated_distances(faces_b, who_b, faces_b, who_b)
    observed = float((distances_b <= threshold).sum()) / len(who_b)
    assert abs(observed - TARGET) <= TOLERANCE * TARGET, (threshold, observed)


def test_the_cli_writes_a_calibration_for_the_running_model(
    settings: Settings, tmp_path: Path
) -> None:
    data = require_test_data()
    # A small protocol: 20 FG-NET people and 120 LFW people (60 gallery, 60 probes).
    fgnet = read_manifest(data / "fgnet-dev" / "manifest.csv", require_age=True)
    chosen = sorted({p.identity for p in fgnet})[:20]
    lfw = _first_photo_per_person(data / "lfw-dev" / "manifest.csv")[:120]
    fg_manifest, lfw_manifest = tmp_path / "fgnet.csv", tmp_path / "lfw.csv"
    fg_manifest.write_text("path,identity,age\n" + "".join(
        f"{p.path},{p.identity},{p.age}\n" for p in fgnet if p.identity in chosen))
    lfw_manifest.write_text("path,identity\n" + "".join(f"{p.path},{p.identity}\n" for p in lfw))
    data_dir = tmp_path / "data"
    env = {**os.environ, "MATCHER_DATA_DIR": str(data_dir)}
    result = subprocess.run(
        [sys.executable, "-m", "matcher", "calibrate", "--cross-age", str(fg_manifest),
         "--distractors", str(lfw_manifest), "--category", "child"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    path = calibration_path(data_dir / "calibration", "child", load_pipeline(settings).model_id)
    written = load(path)
    assert result.stdout.strip().endswith(str(path))
    assert written.model_id == load_pipeline(settings).model_id and written.category == "child"
    # A child calibration compares every search with the children's case photos only.
    assert 0 < written.gallery_faces <= len(chosen) and written.pairs >= 1000
    # Different people are rarely within dlib's 0.6 and almost never within 0.4.
    assert float(written.false_match_rate(0.4)) < 0.01 < float(written.false_match_rate(0.7))
    # The printed distances are the file's, on the running model's own scale.
    assert f"FMR <= 1e-03 up to distance {written.threshold_for(1e-3, 1):.3f}" in result.stdout
    same = load_pipeline(settings).embedder.same_person_distance
    assert (f"same-person distance {same:.3f}: FMR "
            f"{float(written.false_match_rate(same)):.2e}") in result.stdout
    def calibrate(cross_age: Path, distractors: Path, category: str
                  ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "matcher", "calibrate", "--cross-age", str(cross_age),
             "--distractors", str(distractors), "--category", category],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)

    bad = calibrate(fg_manifest, lfw_manifest, "teen")
    assert bad.returncode == 2 and "--category" in bad.stderr
    # Too few pairs to measure anything: a clear error, not a traceback, and no file.
    few_fg, few_lfw = tmp_path / "few_fgnet.csv", tmp_path / "few_lfw.csv"
    few_fg.write_text("\n".join(fg_manifest.read_text().splitlines()[:4]) + "\n")
    few_lfw.write_text("path,identity\n" + "".join(f"{p.path},{p.identity}\n" for p in lfw[:2]))
    written_before = path.read_bytes()
    refused = calibrate(few_fg, few_lfw, "child")
    assert refused.returncode == 2 and "too few to calibrate" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert path.read_bytes() == written_before


def test_a_child_calibration_with_children_distractors_takes_the_whole_children_gallery(
    settings: Settings, small_manifests: SmallManifests, tmp_path: Path
) -> None:
    small = small_manifests
    # 60 children, so that the pairs are enough to calibrate (at least 1000): 30 cases beside
    # the four FG-NET ones, 30 non-mated searches beside the 17 sightings.
    children = children_manifest(tmp_path, 60)
    env = {**os.environ, "MATCHER_DATA_DIR": str(tmp_path / "data")}
    out = tmp_path / "child.json"

    def calibrate(category: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "matcher", "calibrate", "--cross-age", str(small.cross_age),
             "--distractors", str(small.distractors), "--children-distractors",
             str(children), "--category", category, "--out", str(out)],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)

    refused = calibrate("any")  # children as distractors measure a child calibration only
    assert refused.returncode == 2 and "--children-distractors" in refused.stderr
    assert not out.exists()
    result = calibrate("child")
    assert result.returncode == 0, result.stderr
    written = load(out)
    assert written.category == "child" and "children as distractors" in result.stdout
    assert written.source["children_distractors"] == str(children)
    assert written.source["protocol"] == CHILDREN
    assert written.source["distractors"] == str(small.distractors)

    # Every search of the children protocol (sightings, LAG non-mated probes) against every
    # gallery face of someone else: FG-NET case photos and the LAG children's cases alike.
    protocol = build_protocols(read_manifest(small.cross_age, require_age=True),
                               read_manifest(small.distractors),
                               read_manifest(children))[CHILDREN]
    pipeline = load_pipeline(settings)

    def people_with_a_face(photos: list[LabelledPhoto]) -> list[str]:
        vectors = embed_largest_faces(pipeline, photos)
        return [p.identity for p, v in zip(photos, vectors, strict=True) if v is not None]

    gallery = people_with_a_face(protocol.gallery)
    searches = people_with_a_face([s.photo for s in protocol.sightings] + protocol.probes)
    assert sum(who.startswith("lag-") for who in gallery) >= 25  # of 30 LAG cases
    assert written.gallery_faces == len(gallery) > protocol.case_people
    assert written.searches == len(searches)
    assert written.pairs == sum(s != g for s in searches for g in gallery)
