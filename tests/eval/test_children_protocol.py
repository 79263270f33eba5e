"""The variant "children as distractors" (../shared/data/README.md) beside the main protocol:
same cross-age cases and sightings, LAG children's young photos as the other cases and the
non-mated searches; `matcher eval --children-distractors` scores both from one embedding of
each photo. Small protocols (tests/eval/conftest.py) keep it fast."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from PIL import Image as PILImage

from matcher.config import Settings
from matcher.embed import FacePipeline
from matcher.embed.projection import PldaRecipe
from matcher.embed.types import Face, Image
from matcher.eval.crossage import evaluate, evaluate_protocols, protocol_photos
from matcher.eval.fitting import fit_on_photos
from matcher.eval.manifest import LabelledPhoto, read_manifest
from matcher.eval.protocol import (
    CASE_PHOTOS,
    CHILDREN,
    MAIN,
    CasePhotos,
    Protocol,
    build_protocols,
)
from matcher.wiring import load_pipeline
from tests.data import REPO_ROOT, require_test_data
from tests.eval.conftest import OTHER_PEOPLE, SmallManifests


class CountingPipeline(FacePipeline):
    """The same networks, counting the images they are given."""

    def __init__(self, base: FacePipeline) -> None:
        super().__init__(base.config, base.detector, base.embedder)
        self.images = 0

    def process(self, images: Sequence[Image]) -> list[list[Face]]:
        self.images += len(images)
        return super().process(images)


def _protocols(small: SmallManifests, case_photos: CasePhotos = "youngest"
               ) -> dict[str, Protocol]:
    return build_protocols(read_manifest(small.cross_age, require_age=True),
                           read_manifest(small.distractors), read_manifest(small.children),
                           case_photos)


def _paths(photos: Sequence[LabelledPhoto]) -> set[Path]:
    return {p.path for p in photos}


def test_the_children_protocol_has_only_children_as_cases_and_searches(
    small_manifests: SmallManifests,
) -> None:
    young = read_manifest(small_manifests.children)
    for case_photos in CASE_PHOTOS:  # --case-photos applies to both protocols
        protocols = _protocols(small_manifests, case_photos)
        main, children = protocols[MAIN], protocols[CHILDREN]
        assert list(protocols) == [MAIN, CHILDREN]
        assert children.cases == main.cases and children.sightings == main.sightings
        assert main.case_people == 4 and len(main.sightings) >= 10
        assert (len(main.cases) > 4) == (case_photos == "all")
        # The gallery: FG-NET case photos and LAG young photos, nothing else.
        assert _paths(children.gallery) == _paths(main.cases) | _paths(children.distractors)
        assert all(p.identity.startswith("fgnet-") for p in children.cases)
        assert _paths(children.distractors) <= _paths(young)
        assert all(p.identity.startswith("lag-") and "/y/" in str(p.path)
                   for p in children.distractors + children.probes)
        # Non-mated searches are LAG young photos too, of people not in the gallery, split as
        # the main protocol's: sorted people alternate, each with its first photo by path.
        assert _paths(children.probes) <= _paths(young)
        people = sorted({p.identity for p in young})
        assert [p.identity for p in children.distractors] == people[0::2]
        assert [p.identity for p in children.probes] == people[1::2]
        assert all(p.path == min(q.path for q in young if q.identity == p.identity)
                   for p in children.distractors + children.probes)
        assert len(children.probes) == OTHER_PEOPLE // 2
        # The main protocol keeps its adult distractors.
        assert all(p.identity.startswith("lfw-") for p in main.distractors + main.probes)


def test_both_protocols_are_scored_from_one_embedding_of_each_photo(
    settings: Settings, small_manifests: SmallManifests,
) -> None:
    protocols = _protocols(small_manifests)
    main, children = protocols[MAIN], protocols[CHILDREN]
    union = _paths(protocol_photos(main)) | _paths(protocol_photos(children))
    shared = _paths(protocol_photos(main)) & _paths(protocol_photos(children))
    assert len(shared) == len(main.cases) + len(main.sightings)  # the FG-NET photos

    pipeline = CountingPipeline(load_pipeline(settings))
    reports = evaluate_protocols(protocols, pipeline, settings, fit_only=True)
    assert pipeline.images == len(union)  # not len(main photos) + len(children photos)
    assert list(reports) == [MAIN, CHILDREN]
    assert all(r.fit_only and r.model_id == pipeline.model_id for r in reports.values())
    assert reports[CHILDREN].counts["non_mated"] == OTHER_PEOPLE // 2
    assert reports[CHILDREN].counts["sightings"] == reports[MAIN].counts["sightings"]

    # The same figures as the children protocol embedded and scored alone.
    pipeline.images = 0
    alone = evaluate(children, pipeline, settings, fit_only=True)
    assert pipeline.images == len(protocol_photos(children))
    assert alone == reports[CHILDREN]


def test_eval_prints_both_protocols_in_one_json_and_plots_them(
    small_manifests: SmallManifests, tmp_path: Path,
) -> None:
    plots = tmp_path / "plots"
    env = {**os.environ, "MATCHER_DATA_DIR": str(tmp_path / "data")}
    command = [sys.executable, "-m", "matcher", "eval",
               "--cross-age", str(small_manifests.cross_age),
               "--distractors", str(small_manifests.distractors),
               "--children-distractors", str(small_manifests.children)]
    result = subprocess.run([*command, "--json", "--plot", str(plots)], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert set(output) == {"model_id", "case_photos", "fit_only", "protocols"}
    assert output["case_photos"] == "youngest" and output["fit_only"] is False
    assert list(output["protocols"]) == ["main", "children"]
    main, children = output["protocols"]["main"], output["protocols"]["children"]
    for report in (main, children):
        assert report["model_id"] == output["model_id"]
        assert set(report["by_gap"]) == {"1-2", "3-5", "6-10"}
        assert len(report["cmc"]) == 20 and report["cmc"][0] == report["rank1"]
    assert children["counts"]["sightings"] == main["counts"]["sightings"]
    assert children["counts"]["cases"] == main["counts"]["cases"] == 4
    assert (children["counts"]["gallery"] + children["counts"]["faces_not_found_gallery"]
            == 4 + OTHER_PEOPLE // 2)
    assert children["counts"]["non_mated"] == OTHER_PEOPLE // 2
    # One embedding of the union: the FG-NET photos are in both protocols, embedded once.
    protocols = _protocols(small_manifests)
    union = len(_paths(protocol_photos(protocols[MAIN]))
                | _paths(protocol_photos(protocols[CHILDREN])))
    assert f"embedding photos: {union}/{union}" in result.stderr
    assert result.stderr.count(f"/{union}\n") == result.stderr.count("embedding photos")

    for name in ("cmc.png", "by_age_gap.png", "by_age_gap_children.png"):
        with PILImage.open(plots / name) as image:
            assert image.format == "PNG" and image.width > 300
        assert f"wrote {plots / name}" in result.stderr

    # As text: one block per protocol, headed by its name, with the JSON's figures.
    text = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0] == f"model {output['model_id']}, case photos: youngest"
    heads = [n for n, line in enumerate(lines) if line.endswith(")") and " protocol (" in line]
    assert [lines[n] for n in heads] == [
        f"main protocol (distractors: {small_manifests.distractors})",
        f"children protocol (distractors: {small_manifests.children})"]
    for start, report in zip(heads, (main, children), strict=True):
        block = "\n".join(lines[start : start + 7])
        assert (f"rank-1 {report['rank1']:.3f}  rank-10 {report['rank10']:.3f}  TPIR@FPIR1% "
                f"{report['tpir_at_fpir_1pct']:.3f} (threshold {report['threshold']:.3f}"
                in block)


def test_eval_refuses_a_projection_fitted_on_the_children_it_would_score(
    settings: Settings, small_manifests: SmallManifests, tmp_path: Path,
) -> None:
    """The children protocol's people count as measured too: a projection fitted on some of
    the LAG children (LAG is the set to fit on) cannot be scored on them."""
    lag = read_manifest(require_test_data() / "lag-dev" / "manifest.csv")
    fitted_people = sorted({p.identity for p in read_manifest(small_manifests.children)})[:6]
    projection, _ = fit_on_photos(load_pipeline(settings),
                                  [p for p in lag if p.identity in fitted_people], PldaRecipe())
    saved = tmp_path / "plda.npz"
    projection.save(saved)
    env = {**os.environ, "MATCHER_DATA_DIR": str(tmp_path / "data"),
           "MATCHER_PROJECTION_FILE": str(saved)}
    result = subprocess.run(
        [sys.executable, "-m", "matcher", "eval", "--cross-age", str(small_manifests.cross_age),
         "--distractors", str(small_manifests.distractors),
         "--children-distractors", str(small_manifests.children), "--json"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 2, result.stderr
    assert "fitted on by the projection" in result.stderr
    assert "embedding photos" not in result.stderr and not result.stdout
