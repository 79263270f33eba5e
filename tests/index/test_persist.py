"""Saving and loading: round trip, refusals with clear errors, crash safety."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from matcher.bench.synthetic import Collection, FaceModel, planted
from matcher.index import (
    FaceIndex,
    IndexCorrupt,
    IndexModelMismatch,
    IndexNotFound,
    Kind,
    load,
    read_manifest,
    save,
)
from matcher.index.persist import discard
from tests.index.conftest import DIM, MODEL_ID, make_index, params

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivfpq"])
def test_round_trip(kind: str, faces: Collection, face_model: FaceModel, tmp_path: Path) -> None:
    index = make_index(faces, kind)
    index.remove_owner(int(faces.owners[0]))  # tombstones travel too (hnsw)
    manifest = save(index, tmp_path)
    assert manifest["kind"] == kind and manifest["count"] == len(index)
    assert manifest["model_id"] == MODEL_ID and manifest["dim"] == DIM
    assert manifest["metric"] == "l2" and len(manifest["sha256"]) == 64
    assert json.loads((tmp_path / "manifest.json").read_text()) == manifest
    loaded = load(tmp_path, MODEL_ID, DIM, params(kind))
    assert loaded.kind is Kind(kind) and len(loaded) == len(index)
    assert loaded.tombstone_count == index.tombstone_count
    queries, _ = planted(face_model, faces, 20)
    before, after = index.search(queries, 10), loaded.search(queries, 10)
    np.testing.assert_array_equal(before.owners, after.owners)
    np.testing.assert_allclose(before.distances, after.distances)
    loaded.add([10**9], [5], faces.vectors[:1])  # a loaded index keeps working
    assert loaded.search(faces.vectors[:1], 1).face_ids[0, 0] in (10**9, faces.ids[0])


def test_missing_truncated_altered_and_mismatched_are_refused(
    faces: Collection, tmp_path: Path
) -> None:
    with pytest.raises(IndexNotFound):
        load(tmp_path, MODEL_ID, DIM)
    manifest = save(make_index(faces), tmp_path)
    data = tmp_path / manifest["file"]
    with pytest.raises(IndexModelMismatch, match="other-model"):
        load(tmp_path, "other-model", DIM)
    with pytest.raises(IndexModelMismatch, match="dim 512"):
        load(tmp_path, MODEL_ID, 512)
    original = data.read_bytes()
    data.write_bytes(original[: len(original) // 2])
    with pytest.raises(IndexCorrupt, match="truncated"):
        load(tmp_path, MODEL_ID, DIM)
    altered = bytearray(original)
    altered[len(altered) // 2] ^= 0xFF
    data.write_bytes(bytes(altered))
    with pytest.raises(IndexCorrupt, match="checksum"):
        load(tmp_path, MODEL_ID, DIM)
    data.unlink()
    with pytest.raises(IndexCorrupt, match="missing"):
        load(tmp_path, MODEL_ID, DIM)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(IndexCorrupt, match="unreadable"):
        load(tmp_path, MODEL_ID, DIM)


def test_a_loaded_index_swaps_in_only_for_its_model(faces: Collection, tmp_path: Path) -> None:
    save(make_index(faces), tmp_path)
    serving = FaceIndex(MODEL_ID, DIM, params())
    serving.swap(load(tmp_path, MODEL_ID, DIM))
    assert len(serving) == len(faces.ids)
    with pytest.raises(IndexModelMismatch):
        FaceIndex("other-model", DIM, params()).swap(load(tmp_path, MODEL_ID, DIM))


def test_a_consistent_checksum_over_inconsistent_content_is_refused(
    faces: Collection, tmp_path: Path
) -> None:
    """A data file that matches its checksum but not the manifest's count."""
    manifest = save(make_index(faces), tmp_path)
    manifest["count"] += 1
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexCorrupt, match="inconsistent"):
        load(tmp_path, MODEL_ID, DIM)


def test_leftovers_of_an_interrupted_save_do_not_matter(
    faces: Collection, tmp_path: Path
) -> None:
    """A crash after the data file was written but before the manifest was replaced."""
    first = save(make_index(faces), tmp_path)
    (tmp_path / ".faces-20990101T000000-dead.npz.beef.tmp").write_bytes(b"half a file")
    (tmp_path / "faces-20990101T000000-dead.npz").write_bytes(b"a whole file nobody names")
    (tmp_path / ".manifest.json.cafe.tmp").write_text('{"half": ')
    assert len(load(tmp_path, MODEL_ID, DIM)) == first["count"]
    second = save(make_index(faces), tmp_path)  # the next save removes the strays
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["manifest.json", second["file"]])
    assert read_manifest(tmp_path)["file"] != first["file"]


_SAVER = """
import sys, numpy as np
from pathlib import Path
from matcher.index import FaceIndex, IndexParams, save
rng = np.random.default_rng(0)
n = 200_000
index = FaceIndex.from_rows("test-model", 128, [(np.arange(n), np.arange(n) // 3,
                            rng.standard_normal((n, 128), dtype=np.float32))],
                            IndexParams(kind="flat", threads=1))
print("ready", flush=True)
while True:
    save(index, Path(sys.argv[1]))
"""


def test_killed_mid_save_leaves_a_loadable_index(faces: Collection, tmp_path: Path) -> None:
    """SIGKILL a process that saves a ~100 MB index in a loop, at several moments."""
    base = make_index(faces)
    save(base, tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    interrupted = 0
    # Kill timing races the save loop on a busy machine: enough tries that some land mid-save.
    for delay in (0.05, 0.2, 0.3, 0.5, 0.7, 0.9, 1.1, 1.5):
        child = subprocess.Popen([sys.executable, "-c", _SAVER, str(tmp_path)],
                                 stdout=subprocess.PIPE, env=env)
        assert child.stdout is not None and child.stdout.readline().strip() == b"ready"
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait()
        interrupted += any(tmp_path.glob(".*.tmp"))
        loaded = load(tmp_path, MODEL_ID, DIM)  # the old index or a complete new one
        assert len(loaded) in (len(base), 200_000)
    assert interrupted, "no kill landed inside a save; the test proved nothing"


def test_a_discarded_index_is_gone_whole_and_cannot_be_loaded(
    faces: Collection, tmp_path: Path
) -> None:
    """What a start does with the copy it read: nothing is left to load after a crash, and no
    vector of it stays on disk."""
    index = make_index(faces, "hnsw")
    index.remove_owner(int(faces.owners[0]))  # its vectors stay in the file as tombstones
    save(index, tmp_path)
    (tmp_path / ".faces-20990101T000000-dead.npz.beef.tmp").write_bytes(b"half a file")
    assert len(load(tmp_path, MODEL_ID, DIM, params("hnsw"))) == len(index)
    assert discard(tmp_path)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(IndexNotFound):
        load(tmp_path, MODEL_ID, DIM)
    assert not discard(tmp_path) and not discard(tmp_path / "never saved")
