"""The one settings object. Every knob reads from `MATCHER_*` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DetectorName = Literal["yunet", "mmod"]
EmbedderName = Literal["dlib", "sface", "dlib+sface"]
# An alert's area by the hours since it was issued: [[from hour, radius km], ...], the first
# from hour 0; a radius of null is the whole territory.
AlertSchedule = list[tuple[float, float | None]]
CHILD_ALERT_SCHEDULE: AlertSchedule = [(0.0, 100.0), (1.0, 500.0), (3.0, None)]
ELDERLY_ALERT_SCHEDULE: AlertSchedule = [(0.0, 5.0), (1.0, 15.0), (3.0, 50.0), (12.0, 100.0)]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MATCHER_", extra="ignore")

    data_dir: Path = Field(default=Path("./data"), description="Store, photos, indexes, caches.")
    device: str = Field(default="cpu", description="torch device: 'cpu', 'cuda', 'cuda:1'...")
    # Oversubscribed torch/OpenMP threads ran 5-200x slower here when another process was busy,
    # so the count is explicit rather than "all cores".
    threads: int = Field(default=2, ge=1, le=256)

    detector: DetectorName = Field(default="yunet", description=(
        "Face detector: yunet (default) or mmod (dlib's CNN detector, `dlib` embedder only)."))
    # The descriptor network with its own alignment; its model_id tags every stored vector, so
    # changing any of these three makes stored vectors of the old model need reindexing.
    # dlib: dlib's ResNet; sface: OpenCV-zoo SFace (needs the yunet detector's keypoints);
    # dlib+sface: both, concatenated. The default: on the cross-age protocol it finds the child
    # first 57% of the time against dlib's 48% (docs/accuracy-2026-11.md).
    embedder: EmbedderName = "dlib+sface"
    # Average each descriptor with the one of the mirrored chip (twice the network time).
    # None: on for sface and dlib+sface, off for dlib (so `dlib` alone is dlib's own vectors).
    embed_flip: bool | None = None
    # dlib+sface: SFace's share w of the squared distance, (1 - w) d_dlib^2 + w d_sface^2.
    ensemble_sface_weight: float = Field(default=0.5, gt=0.0, lt=1.0)
    # The learned distance of the model's vectors (`matcher fit-projection`), part of the model
    # id. "shipped": the fit shipped in the package for the configured base model, when there
    # is one (the default model's: docs/accuracy.md, models/default-projection.md); "none":
    # the plain vectors; else the path of a fit file.
    projection_file: Literal["shipped", "none"] | Path = "shipped"
    detect_batch_size: int = Field(default=8, ge=1, le=256,
                                   description="Photos per detector batch (torch).")
    embed_batch_size: int = Field(default=32, ge=1, le=1024,
                                  description="Face chips per descriptor batch (torch).")
    # Photos are detected at this longest side (px); boxes/landmarks are mapped back and chips are
    # cut from the full-resolution image. Chosen from scripts/bench_embed.py.
    detect_max_side: int = Field(default=1280, ge=160, le=8192)
    # Small-faces mode: detect on an upsampled copy / at full size for crowd photos (slower).
    small_faces: bool = False
    detect_threshold: float = Field(default=0.6, ge=0.0, le=1.0,
                                    description="Lowest detector score kept as a face.")

    max_image_bytes: int = Field(default=30 * 1024 * 1024, ge=1024,
                                 description="Larger photo files are refused before decoding.")
    max_image_pixels: int = Field(default=60_000_000, ge=10_000, description=(
        "Photos with more pixels are refused before decoding (decompression bombs)."))

    # A face is unfit for matching below these (reasons are reported, the face is still returned).
    # Chosen by scripts/calibrate_quality.py: below them the median descriptor drift from the
    # undegraded photo exceeds 0.2 (a third of dlib's 0.6 same-person threshold).
    min_face_px: int = Field(default=40, ge=1)
    min_sharpness: float = Field(default=10.0, ge=0.0, description=(
        "Below this chip sharpness a face is unfit for matching (too_blurry)."))

    # Face index (matcher/index). The kind follows the collection's size; thresholds were chosen
    # from scripts/bench_index.py (docs/index.md). "auto" picks by size, a name forces a kind.
    index_kind: Literal["auto", "flat", "hnsw", "ivfpq"] = "auto"
    index_hnsw_min_faces: int = Field(default=100_000, ge=1, description=(
        "auto: an HNSW graph from this many faces (exact search below)."))
    index_ivfpq_min_faces: int = Field(default=20_000_000, ge=1, description=(
        "auto: IVF-PQ from this many faces."))
    index_hnsw_m: int = Field(default=32, ge=4, le=256, description="HNSW links per node.")
    index_hnsw_ef_construction: int = Field(default=128, ge=8, le=4096, description=(
        "HNSW candidate list while building."))
    # Where the self-check's ladder starts (it raises it until the promise holds: below).
    index_hnsw_ef_search: int = Field(default=384, ge=8, le=32768)
    index_recall_target: float = Field(default=0.95, ge=0.0, le=1.0, description=(
        "An approximate index (HNSW, IVF-PQ) checks itself at every build and load against "
        "exact search on 200 of its own faces held out: it raises its search knob until it "
        "keeps this share of exact search's 10 best owners, with the right owner first "
        "within one point of exact; when no setting can (faster than exact, for a kind the "
        "size chose), it stays exact and logs why (docs/index.md). 0: no check."))
    index_ivf_nlist: int = Field(default=0, ge=0, description="0: about sqrt(faces).")
    index_ivf_nprobe: int = Field(default=64, ge=1, description="IVF lists searched.")
    index_pq_m: int = Field(default=32, ge=1, le=128, description="PQ sub-quantisers.")
    # Approximate kinds fetch this many times more faces, then re-rank them exactly.
    index_rerank_factor: int = Field(default=8, ge=1, le=1000)
    # Owners are ranked from k * this many nearest faces, more when too few owners turn up.
    index_owner_fetch_factor: int = Field(default=4, ge=1, le=1000)
    # A filter that leaves at most this many faces is searched exactly over those faces: graph
    # and IVF searches lose recall when a filter keeps only a sliver of the collection.
    index_filter_exact_max: int = Field(default=20_000, ge=0)
    # FAISS OpenMP threads (oversubscription is many times slower; see `threads`).
    index_threads: int = Field(default=2, ge=1, le=256)

    # The store (matcher/store). None: SQLite at <data_dir>/matcher.db (WAL). Otherwise an
    # SQLAlchemy URL, e.g. postgresql+psycopg://user:password@host/dbname.
    database_url: str | None = None
    # How long an SQLite writer waits for another one before giving up ("database is locked").
    sqlite_busy_timeout_ms: int = Field(default=10_000, ge=0)

    # The service (matcher/service, matcher/api). Every sighting face is searched for its
    # `match_top_k` closest active cases and all of them are stored as candidates, each with the
    # threshold in force; a candidate is "under threshold" (a likely match) when its distance is
    # at most the threshold in force. A `match_threshold` set here is that threshold for every
    # case; None (the default): the one `match_false_per_search` gives with a calibration of
    # the serving model (shipped for the default model), else the model's own same-person
    # distance (`Embedder.same_person_distance`: 0.6 for dlib, dlib's rule; for the other
    # models the distance with the same false-match rate on the fitting or calibration pairs),
    # far too loose for children (docs/accuracy.md). No upper bound: a learned distance's
    # scale is not that of unit vectors (the default model's is about 12).
    match_threshold: float | None = Field(default=None, gt=0.0)
    match_top_k: int = Field(default=10, ge=1, le=1000, description=(
        "Closest active cases stored as candidates for each sighting face."))
    # With a calibration for the running model (shipped for the default model, or made by
    # `matcher calibrate`), the threshold is this target instead: expected false candidates per
    # search at the current number of the case's category's faces. 0.05: one search in twenty
    # brings a child who is not the missing child into the queue; among children it keeps
    # about 0.47 of true sightings where 0.01 keeps 0.38 (docs/accuracy.md, "The threshold").
    # A `match_threshold` set by the operator wins over it.
    match_false_per_search: float | None = Field(default=0.05, gt=0.0, le=100.0)
    # Decoding, detection, embedding and index searches run in this many worker threads; more
    # uploads at once wait in line for a worker (queued, never dropped).
    workers: int = Field(default=2, ge=1, le=256)
    # Everything else a request does (key checks, reads, decisions, audit) runs in its own
    # threads, so investigators are not queued behind uploads.
    store_workers: int = Field(default=8, ge=1, le=256)
    # Retention: sightings uploaded longer ago than this with no candidate pending, asked about
    # or confirmed are purged with their files and vectors (`matcher purge`, and by the server
    # every `maintenance_interval_s`). A year: long enough for a case registered late to be
    # retro-matched against them. None keeps them forever.
    sighting_retention_days: float | None = Field(default=365.0, gt=0)
    # How often the server compacts its indexes when removals piled up, and purges.
    maintenance_interval_s: float = Field(default=3600.0, gt=0)
    # Several servers on one store: how often each reads the store's index change log for what
    # the others changed (PostgreSQL also wakes it at once with LISTEN/NOTIFY; on SQLite this is
    # how long another process's new case photo may take to be searchable here).
    index_follow_s: float = Field(default=0.5, gt=0, le=60)
    # A first start with no admin key stores this one (format `mk_<12 hex>_<secret>`) instead of
    # printing a random one. Never logged.
    admin_key: SecretStr | None = None
    # `GET /metrics` without a key for a request from loopback that no proxy forwarded (no
    # X-Forwarded-For, Forwarded or X-Real-IP): a Prometheus on the same machine. Turn it off
    # behind a local reverse proxy that does not add X-Forwarded-For.
    metrics_open_on_loopback: bool = True

    # Alerts (matcher/service/alerts.py): the area an alert covers widens with the hours since
    # it was issued, by its case's category; a changed schedule applies to alerts issued after
    # the change (each keeps the one it was issued with). A child is moved fast and far: 100 km
    # in the first hour, 500 km until the third, then the whole territory (issue 22).
    alert_schedule_child: AlertSchedule = Field(
        default_factory=lambda: list(CHILD_ALERT_SCHEDULE))
    # Elderly people who go missing (most with dementia) leave on foot and are mostly found
    # within a few kilometres of where they were last seen (search-and-rescue case studies, e.g.
    # Koester's Lost Person Behavior): a walking pace, then room for a bus or a car ride, never
    # the whole territory, where an alert would be noise.
    alert_schedule_elderly: AlertSchedule = Field(
        default_factory=lambda: list(ELDERLY_ALERT_SCHEDULE))
    # A resolved alert (found, or cancelled) stays in the feed this long, marked so, for apps to
    # take it down and say the person was found; an `updated_since` cursor lives as long.
    alert_resolved_hours: float = Field(default=24.0, gt=0, le=24 * 365)
    # Partners' webhooks (matcher/service/webhooks.py): each alert event waits in the store's
    # outbox until its partner answers 2xx, sent in order, one at a time per partner, so one
    # slow or down partner delays only itself. A failed attempt is tried again after
    # `partner_retry_first_s`, doubling up to `partner_retry_max_s`, until the event is
    # `partner_give_up_hours` old: at least a day, a partner's outage over a weekend night.
    partner_poll_s: float = Field(default=1.0, gt=0, le=60, description=(
        "How often the outbox and the alerts' widening are looked at."))
    partner_timeout_s: float = Field(default=10.0, gt=0, le=120, description=(
        "A partner's webhook that has not answered in this long failed this attempt."))
    partner_retry_first_s: float = Field(default=10.0, gt=0, le=3600, description=(
        "Wait before the second attempt at an event; it doubles at each failure."))
    partner_retry_max_s: float = Field(default=1800.0, gt=0, le=86_400, description=(
        "The longest wait between two attempts at an event."))
    partner_give_up_hours: float = Field(default=48.0, ge=24, le=24 * 30, description=(
        "An event not acknowledged this long after it happened is given up (`failed`)."))
    partner_workers: int = Field(default=8, ge=1, le=256, description=(
        "Deliveries in flight at once (to as many partners; one at a time per partner)."))

    # Hostile traffic (matcher/api/limits.py). A request body larger than `max_request_bytes` is
    # refused with 413 before it is read: by its Content-Length, or as soon as a chunked body
    # passes it. None: `max_image_bytes` + 1 MiB, room for the form fields around the largest
    # photo.
    max_request_bytes: int | None = Field(default=None, ge=1024)
    # Every other body (JSON: cases, edits, decisions, keys) is small; it is parsed before the
    # key is checked, so a keyless client must not make us parse megabytes. A case's longest
    # fields, all escaped as \uXXXX, take about 140 KB.
    max_json_request_bytes: int = Field(default=256 * 1024, ge=1024)
    # Sightings per tip-app key: a token bucket refilled at `tip_rate_per_minute` that holds at
    # most `tip_burst` uploads; beyond it POST /v1/sightings answers 429 with Retry-After.
    tip_rate_per_minute: float = Field(default=30.0, gt=0.0)
    tip_burst: int = Field(default=10, ge=1, description=(
        "Uploads a tip-app key may send at once before the rate applies."))
    # Decoding is the largest allocation a request makes: 6.6 bytes a pixel for the decode
    # alone (PIL's 4-byte RGBX buffer plus the RGB array: 395 MB for a 60 MP PNG of 189 KB),
    # about 10 for the whole upload (580 MB: the stored JPEG's encoding too), so the pixels in
    # the embedding workers at once are counted against this budget, per process.
    decode_budget_pixels: int | None = Field(default=None, ge=10_000, description=(
        "Pixels of photos in the embedding workers at once (by their headers), per process; "
        "uploads over it wait. Unset: `max_image_pixels`, so at most one largest photo (about "
        "600 MB at 60 MP) or several phone photos (12 MP) are decoded at a time."))
    decode_wait_s: float = Field(default=30.0, gt=0, le=3600, description=(
        "How long an upload waits for room in the decode budget before it gets 503 `busy` with "
        "Retry-After."))
    # Connections (`matcher serve`, matcher/api/server.py); they hold with or without a proxy.
    header_timeout_s: float = Field(default=10.0, gt=0, le=600, description=(
        "A connection whose request head is not complete this long after it opened (or after "
        "the next request's first byte) is closed. 10 s: a phone on a poor link sends a head "
        "of a few hundred bytes in well under a second."))
    body_timeout_s: float = Field(default=20.0, gt=0, le=600, description=(
        "Window in which a request body must bring `body_min_rate` bytes a second (at least "
        "one byte), else the connection is closed."))
    body_min_rate: int = Field(default=1024, ge=0, description=(
        "Slowest body accepted, in bytes a second averaged over `body_timeout_s`: 1 KiB/s is "
        "far below a 2G link (about 20 KiB/s) and cuts uploads trickled to hold connections."))
    keep_alive_s: int = Field(default=5, ge=1, le=3600, description=(
        "An idle kept-alive connection is closed after this long (uvicorn's "
        "timeout_keep_alive). Behind a proxy that pools connections, set it above the proxy's "
        "upstream idle timeout (e.g. 75 for nginx's 60)."))
    max_connections: int = Field(default=1000, ge=1, le=100_000, description=(
        "Open connections per process. Over it, a new connection closes the oldest one still "
        "waiting for a request head; when none is, it gets 503. The soft file-descriptor limit "
        "is raised to fit it (plus 256), up to the hard limit."))
    accept_error_log_interval_s: float = Field(default=60.0, gt=0, description=(
        "Accept errors (out of file descriptors) are logged at most once per interval, with "
        "the count of the others."))
    # Browser origins (`https://host[:port]`) allowed to call the API from a web page. Empty:
    # no Access-Control-Allow-Origin for anyone (API keys are for servers and apps, not pages).
    # From the environment as JSON: MATCHER_CORS_ORIGINS='["https://review.example.org"]'.
    cors_origins: list[str] = Field(default_factory=list)

    @field_validator("alert_schedule_child", "alert_schedule_elderly")
    @classmethod
    def _widening_schedule(cls, steps: AlertSchedule) -> AlertSchedule:
        # The feed tells an app which alerts widened into its point: an area that shrank would
        # leave alerts shown where they no longer apply, with nothing to say so.
        if not steps or steps[0][0] != 0:
            raise ValueError("a schedule starts with the radius from hour 0: [[0, km], ...]")
        for (hour, radius), (next_hour, next_radius) in zip(steps, steps[1:], strict=False):
            if next_hour <= hour:
                raise ValueError(f"the hours of a schedule must grow, got {hour} then {next_hour}")
            if radius is None or (next_radius is not None and next_radius < radius):
                raise ValueError("an area only widens: each radius at least the one before, "
                                 "the whole territory (null) last")
        if any(radius is not None and not radius > 0 for _, radius in steps):
            raise ValueError("a radius is a positive number of km, or null for everywhere")
        return steps

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if not (value == "cpu" or value == "cuda" or value.startswith("cuda:") or value == "mps"):
            raise ValueError(f"device must be 'cpu', 'cuda', 'cuda:N' or 'mps', got {value!r}")
        return value

    @model_validator(mode="after")
    def _embedder_has_keypoints(self) -> Settings:
        if self.embedder != "dlib" and self.detector != "yunet":
            raise ValueError(f"embedder {self.embedder!r} aligns on YuNet's keypoints: it needs "
                             f"detector 'yunet', not {self.detector!r}")
        return self

    @field_validator("projection_file")
    @classmethod
    def _absolute_projection(cls, value: Literal["shipped", "none"] | Path
                             ) -> Literal["shipped", "none"] | Path:
        # Recorded in the store by a reindex and read by later starts, which may run in
        # another folder: a relative path would name another file there, or none.
        return value.resolve() if isinstance(value, Path) else value

    @field_validator("ensemble_sface_weight")
    @classmethod
    def _weight_fits_the_model_id(cls, value: float) -> float:
        # The model id carries the weight to two decimals: two weights that differ further
        # down would give different vectors under one id, mixed in one index.
        if round(value, 2) != value:
            raise ValueError(f"the ensemble weight takes at most two decimals, got {value}")
        return value

    @model_validator(mode="after")
    def _budget_fits_a_photo(self) -> Settings:
        if self.decode_budget_pixels is not None and (
                self.decode_budget_pixels < self.max_image_pixels):
            raise ValueError(f"decode_budget_pixels ({self.decode_budget_pixels}) must hold one "
                             f"photo of max_image_pixels ({self.max_image_pixels})")
        return self

    @field_validator("cors_origins")
    @classmethod
    def _explicit_origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            parts = urlsplit(origin)
            if (parts.scheme not in ("http", "https") or not parts.hostname or "*" in origin
                    or parts.path or parts.query or parts.fragment):
                raise ValueError(f"a CORS origin is scheme://host[:port] without wildcards, "
                                 f"got {origin!r}")
        return value

    @property
    def request_bytes_limit(self) -> int:
        """The largest request body accepted (`max_request_bytes` or its default)."""
        if self.max_request_bytes is not None:
            return self.max_request_bytes
        return self.max_image_bytes + 1024 * 1024

    @property
    def decode_pixel_budget(self) -> int:
        """Pixels decoded at once per process (`decode_budget_pixels` or its default)."""
        if self.decode_budget_pixels is not None:
            return self.decode_budget_pixels
        return self.max_image_pixels

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"

    @property
    def photos_dir(self) -> Path:
        return self.data_dir / "photos"

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"

    @property
    def calibration_dir(self) -> Path:
        return self.data_dir / "calibration"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
