"""The made-up face model of the index tests (tests/index/conftest.py), shared here rather than
defined twice: the benchmarks run on the same kind of synthetic faces."""

from tests.index.conftest import face_model

__all__ = ["face_model"]
