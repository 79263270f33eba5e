"""FAISS collections of face vectors: search by owner, filters, persistence.

Only this package imports faiss; it never imports matcher.embed, store or api.

```python
index = FaceIndex("dlib-resnet-v1", 128, IndexParams())  # or wiring.index_params(settings)
index.add(face_ids, case_ids, vectors)            # int64, int64, (n, 128) float32
hits = index.search(queries, k=10)                # hits.owners / .distances / .face_ids (q, k)
hits = index.search(queries, k=10, owners=girls)  # only those owners (FAISS IDSelector)
girls = OwnerFilter(girl_case_ids)                # prepared once, reused while nothing changes
index.remove_owner(case_id)                       # gone from the very next search
save(index, folder); index = load(folder, model_id, dim=128)
```
"""

from matcher.index.collection import FaceIndex
from matcher.index.errors import (
    DimensionMismatch,
    DuplicateFaceId,
    FaceIndexError,
    FaceNotFound,
    IndexCorrupt,
    IndexFileError,
    IndexModelMismatch,
    IndexNotFound,
    InvalidVectors,
    TooFewFaces,
)
from matcher.index.filters import OwnerFilter
from matcher.index.fusion import FUSIONS, Fusion, OwnerHits, best, mean_top2
from matcher.index.kinds import IndexParams, Kind, choose_kind
from matcher.index.persist import load, read_manifest, save
from matcher.index.state import FaceRows

__all__ = [
    "FUSIONS",
    "DimensionMismatch",
    "DuplicateFaceId",
    "FaceIndex",
    "FaceIndexError",
    "FaceNotFound",
    "FaceRows",
    "Fusion",
    "IndexCorrupt",
    "IndexFileError",
    "IndexModelMismatch",
    "IndexNotFound",
    "IndexParams",
    "InvalidVectors",
    "Kind",
    "OwnerFilter",
    "OwnerHits",
    "TooFewFaces",
    "best",
    "choose_kind",
    "load",
    "mean_top2",
    "read_manifest",
    "save",
]
