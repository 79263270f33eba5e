"""Pixels -> faces (torch): load, detect, landmarks, chip, descriptor.

The one entry point other parts use is `build_pipeline(config)` (the top makes the config from
the settings: `matcher.wiring.load_pipeline`). It is imported lazily so that
light modules of this package (the image loader, the dlib reader) do not pull in torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matcher.embed.pipeline import FacePipeline, PipelineConfig, build_pipeline

__all__ = ["FacePipeline", "PipelineConfig", "build_pipeline"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from matcher.embed import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'matcher.embed' has no attribute {name!r}")
