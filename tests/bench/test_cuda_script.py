"""scripts/bench_cuda.py is safe to run anywhere: without a GPU it refuses in one line, before
it loads a model or reads a photo. The benchmark itself needs a GPU and is never run here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from matcher.bench.cuda import NO_CUDA
from tests.data import REPO_ROOT


@pytest.mark.skipif(torch.cuda.is_available(),
                    reason="a CUDA device is present: the script would run the benchmark")
def test_without_a_gpu_the_script_refuses_in_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "bench_cuda.py"), "--photos", "4",
         "--data", str(tmp_path / "no-photos-here")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2
    assert done.stderr.strip() == NO_CUDA
    assert done.stdout == ""
