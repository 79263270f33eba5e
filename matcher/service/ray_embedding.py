"""The reindex's embedding on a Ray cluster: Ray tasks map over photo batches, each worker
process loads the pipeline once; the driver (ReindexJob) reads photos and writes the store.

Optional: `pip install ray` (or the `ray` extra). `matcher reindex --ray-address local` starts
a Ray on this machine; `--ray-address auto` or `ray://host:10001` joins a running cluster.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matcher.config import Settings
from matcher.embed import FacePipeline
from matcher.service.embedding import Job, Vector, embed_photos
from matcher.wiring import load_pipeline

_PIPELINES: dict[str, FacePipeline] = {}  # per Ray worker process, by settings


def _worker_settings(settings: Settings) -> Settings:
    # Workers may run on other machines: only the weight cache lives under this data dir,
    # one torch thread each (Ray runs one task per CPU).
    cache = Path(tempfile.gettempdir()) / "matcher-ray"
    return settings.model_copy(update={"data_dir": cache, "threads": 1, "workers": 1})


def _embed_on_worker(settings_json: str, jpegs: list[bytes], faces: list[Any]
                     ) -> list[list[Vector | None]]:
    import torch

    pipeline = _PIPELINES.get(settings_json)
    if pipeline is None:
        torch.set_num_threads(1)
        pipeline = _PIPELINES[settings_json] = load_pipeline(
            Settings.model_validate_json(settings_json))
    return embed_photos(pipeline, jpegs, faces)


@dataclass
class RayEmbedding:
    settings_json: str
    parallelism: int
    remote: Any  # the Ray remote function

    @classmethod
    def connect(cls, settings: Settings, address: str, num_cpus: int | None = None
                ) -> RayEmbedding:
        try:
            import ray
        except ImportError as error:
            raise RuntimeError("the Ray path needs Ray: pip install 'ray>=2.9'") from error
        if not ray.is_initialized():
            if address == "local":
                ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=address, log_to_driver=False)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        remote = ray.remote(num_cpus=1)(_embed_on_worker)
        settings_json = _worker_settings(settings).model_dump_json(
            exclude={"admin_key", "database_url"})  # workers need neither
        return cls(settings_json, max(1, 2 * cpus), remote)

    def map(self, jobs: Sequence[Job]) -> list[list[list[Vector | None]]]:
        import ray

        return list(ray.get([self.remote.remote(self.settings_json, *job) for job in jobs]))
