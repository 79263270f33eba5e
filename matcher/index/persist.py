"""Saving and loading a FaceIndex: a data file plus a JSON manifest, crash-safe.

Layout of a collection's folder:

    manifest.json                  what the data file is (model, dim, metric, kind, count,
                                   created, sha256, bytes) - the commit point
    faces-<stamp>-<token>.npz      FAISS structures (serialized) + ids, owners, tombstones

A save writes a new data file under a fresh name (temp file, fsync, os.replace), then the
manifest the same way. A crash before the manifest's replace leaves the old manifest pointing
at the old data file, which is still there; files no manifest names are removed by the next
save. `discard` deletes a saved index (manifest first: from then on there is nothing to load),
for a copy that must not be loaded twice. No pickle: numpy arrays only, loaded with
allow_pickle=False.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from matcher.files import write_atomic
from matcher.index import selfcheck
from matcher.index.collection import FaceIndex
from matcher.index.errors import (
    IndexCorrupt,
    IndexModelMismatch,
    IndexNotFound,
)
from matcher.index.fusion import Fusion, best
from matcher.index.kinds import IndexParams, Kind
from matcher.index.owners import OwnerMap
from matcher.index.state import State

log = logging.getLogger(__name__)

FORMAT = "matcher-face-index/1"
MANIFEST = "manifest.json"
METRIC = "l2"
_CHUNK = 1 << 20


def save(
    index: FaceIndex, directory: Path, source: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Write the index to `directory` atomically; returns the manifest written.

    `source` describes what the index was built from (e.g. a fingerprint of the store's rows),
    so a later start can tell whether it is still current.
    """
    directory.mkdir(parents=True, exist_ok=True)
    with index.read_state() as state:  # a consistent snapshot; writing happens off the lock
        arrays = _arrays(state)
        kind, factory = state.kind, state.factory
        count, owners = len(state.owners), state.owners.owner_count
    created = datetime.now(UTC)
    name = f"faces-{created:%Y%m%dT%H%M%S}-{secrets.token_hex(4)}.npz"
    size, digest = _write_atomic(directory / name, lambda handle: _savez(handle, arrays))
    manifest = {
        "format": FORMAT,
        "model_id": index.model_id,
        "dim": index.dim,
        "metric": METRIC,
        "kind": str(kind),
        "factory": factory,
        "count": count,
        "owners": owners,
        "tombstones": int(arrays["tombstones"].size),
        "created": created.isoformat(),
        "file": name,
        "bytes": size,
        "sha256": digest,
        "source": source or {},
    }
    text = json.dumps(manifest, indent=2).encode()
    _write_atomic(directory / MANIFEST, lambda handle: handle.write(text))
    _remove_strays(directory, keep=name)
    log.info("saved %s index of %d faces to %s", kind, count, directory)
    return manifest


def read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    if not path.is_file():
        raise IndexNotFound(f"no index manifest at {path}")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise IndexCorrupt(f"index manifest {path} is unreadable: {err}") from err
    required = {"format", "model_id", "dim", "metric", "kind", "count", "file", "bytes", "sha256"}
    if not isinstance(manifest, dict) or not required <= manifest.keys():
        raise IndexCorrupt(f"index manifest {path} lacks {sorted(required - set(manifest))}")
    if manifest["format"] != FORMAT:
        raise IndexCorrupt(f"index manifest {path} has format {manifest['format']!r}, "
                           f"expected {FORMAT!r}")
    return manifest


def load(
    directory: Path, model_id: str, dim: int,
    params: IndexParams | None = None, fusion: Fusion = best,
) -> FaceIndex:
    """Load and verify a saved index for the running model; refuses anything else."""
    manifest = read_manifest(directory)
    if (manifest["model_id"], manifest["dim"], manifest["metric"]) != (model_id, dim, METRIC):
        raise IndexModelMismatch(
            f"index at {directory} was built for model {manifest['model_id']!r} "
            f"(dim {manifest['dim']}, {manifest['metric']}); the running model is {model_id!r} "
            f"(dim {dim}, {METRIC}): rebuild it from the store"
        )
    path = directory / Path(manifest["file"]).name
    _verify(path, manifest)
    state = _state(path, manifest, dim)
    index = FaceIndex(model_id, dim, params, fusion)
    index.swap_state(selfcheck.check(state, index.params))  # knobs measured for this state
    log.info("loaded %s index of %d faces from %s", state.kind, len(state.owners), directory)
    return index


def discard(directory: Path) -> bool:
    """Deletes the index saved in `directory`, if any: the manifest first (the folder fsynced,
    so no crash brings it back), then every data and temp file. Returns whether one was there.
    """
    manifest = directory / MANIFEST
    if not directory.is_dir():
        return False
    found = manifest.is_file()
    manifest.unlink(missing_ok=True)
    _fsync_folder(directory)
    for path in [*directory.glob("faces-*.npz"), *directory.glob(".*.tmp")]:
        path.unlink(missing_ok=True)
    _fsync_folder(directory)
    if found:
        log.info("discarded the index saved in %s", directory)
    return found


def _fsync_folder(directory: Path) -> None:
    folder = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def _arrays(state: State) -> dict[str, np.ndarray]:
    empty = np.empty(0, dtype=np.uint8)
    return {
        "index": faiss.serialize_index(state.index),
        "exact": empty if state.exact is None else faiss.serialize_index(state.exact),
        "ids": state.owners.ids,
        "owners": state.owners.owner_of,
        "tombstones": state.tombstones,
    }


def _savez(handle: Any, arrays: dict[str, np.ndarray]) -> None:
    np.savez(handle, index=arrays["index"], exact=arrays["exact"], ids=arrays["ids"],
             owners=arrays["owners"], tombstones=arrays["tombstones"])


def _verify(path: Path, manifest: dict[str, Any]) -> None:
    if not path.is_file():
        raise IndexCorrupt(f"index data file {path} named by the manifest is missing")
    size = path.stat().st_size
    if size != manifest["bytes"]:
        raise IndexCorrupt(f"index data file {path} has {size} bytes, the manifest says "
                           f"{manifest['bytes']}: truncated or replaced")
    if _sha256(path) != manifest["sha256"]:
        raise IndexCorrupt(f"index data file {path} does not match its manifest checksum")


def _state(path: Path, manifest: dict[str, Any], dim: int) -> State:
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in ("index", "exact", "ids", "owners", "tombstones")}
        index = faiss.deserialize_index(arrays["index"])
        exact = faiss.deserialize_index(arrays["exact"]) if arrays["exact"].size else None
        kind = Kind(manifest["kind"])
    except (OSError, KeyError, ValueError, RuntimeError, zipfile.BadZipFile) as err:
        raise IndexCorrupt(f"index data file {path} cannot be read: {err}") from err
    owners = OwnerMap.build(arrays["ids"], arrays["owners"])
    tombstones = arrays["tombstones"].astype(np.int64)
    expected = len(owners) + (0 if kind.removes_in_place else tombstones.size)
    if (index.d != dim or index.ntotal != expected or len(owners) != manifest["count"]
            or (exact is not None and exact.ntotal != len(owners))):
        raise IndexCorrupt(f"index data file {path} is inconsistent: {index.ntotal} vectors of "
                           f"dim {index.d} for {len(owners)} faces (manifest: {manifest['count']})")
    state = State(kind, str(manifest.get("factory", "")), index, exact, owners)
    state.set_tombstones(tombstones)
    return state


def _write_atomic(path: Path, write: Any) -> tuple[int, str]:
    """`write_atomic`, returning the size and sha256 of what was written."""
    write_atomic(path, write)
    return path.stat().st_size, _sha256(path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _remove_strays(directory: Path, keep: str) -> None:
    """Data files of older saves and temp files of interrupted ones."""
    for path in [*directory.glob("faces-*.npz"), *directory.glob(".*.tmp")]:
        if path.name != keep:
            path.unlink(missing_ok=True)
