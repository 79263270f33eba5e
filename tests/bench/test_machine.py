"""The machine line printed beside every published figure."""

from __future__ import annotations

import platform

from matcher.bench.machine import describe_machine, usable_cores


def test_the_machine_line_names_the_architecture_cores_load_and_python() -> None:
    line = describe_machine()
    assert line.startswith(platform.machine() + ", ")
    assert f"{usable_cores()} cores (load " in line
    assert line.endswith(f"Python {platform.python_version()}")
    assert usable_cores() >= 1
