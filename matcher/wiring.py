"""The settings turned into the plain parameters of the layers below.

Embed, index and store never read `Settings`: they take what they need as values
(`PipelineConfig`, `IndexParams`, a database URL). The top (the CLI, the API app, the service's
start-up) and the benchmarks make those values here, so that one reading of the settings
builds the same pipeline, index and store everywhere. tests/test_layers.py holds the line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.engine import URL

from matcher.config import Settings
from matcher.store.db import open_engine, store_url

if TYPE_CHECKING:  # torch and faiss load with what needs them, not with this module
    from matcher.embed.pipeline import FacePipeline, PipelineConfig
    from matcher.index.kinds import IndexParams


def pipeline_config(settings: Settings) -> PipelineConfig:
    from matcher.embed.pipeline import PipelineConfig

    return PipelineConfig(
        detector=settings.detector, embedder=settings.embedder, embed_flip=settings.embed_flip,
        ensemble_sface_weight=settings.ensemble_sface_weight,
        projection_file=settings.projection_file, cache_dir=settings.cache_dir,
        device=settings.device, threads=settings.threads,
        detect_threshold=settings.detect_threshold, embed_batch_size=settings.embed_batch_size,
        detect_batch_size=settings.detect_batch_size, detect_max_side=settings.detect_max_side,
        small_faces=settings.small_faces, min_face_px=settings.min_face_px,
        min_sharpness=settings.min_sharpness, max_image_bytes=settings.max_image_bytes,
        max_image_pixels=settings.max_image_pixels)


def load_pipeline(settings: Settings) -> FacePipeline:
    """The configured detector and embedder, loaded once; reuse it for every request."""
    from matcher.embed.pipeline import build_pipeline

    return build_pipeline(pipeline_config(settings))


def index_params(settings: Settings) -> IndexParams:
    from matcher.index.kinds import IndexParams

    return IndexParams(
        kind=settings.index_kind, hnsw_min_faces=settings.index_hnsw_min_faces,
        ivfpq_min_faces=settings.index_ivfpq_min_faces, hnsw_m=settings.index_hnsw_m,
        hnsw_ef_construction=settings.index_hnsw_ef_construction,
        hnsw_ef_search=settings.index_hnsw_ef_search, ivf_nlist=settings.index_ivf_nlist,
        ivf_nprobe=settings.index_ivf_nprobe, pq_m=settings.index_pq_m,
        rerank_factor=settings.index_rerank_factor,
        owner_fetch_factor=settings.index_owner_fetch_factor,
        filter_exact_max=settings.index_filter_exact_max, threads=settings.index_threads,
        recall_target=settings.index_recall_target)


def database_url(settings: Settings) -> URL:
    """The configured store: MATCHER_DATABASE_URL, or SQLite under the data dir."""
    return store_url(settings.database_url, settings.data_dir)


def make_engine(settings: Settings) -> Engine:
    return open_engine(database_url(settings), settings.sqlite_busy_timeout_ms)
