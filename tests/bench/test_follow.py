"""The several-processes benchmark on a small run: two real servers on one SQLite store (the
polling path), every case photo measured on the other process."""

from __future__ import annotations

from matcher.bench import follow
from tests.data import require_test_data


def test_each_case_photo_is_timed_until_the_other_process_holds_it() -> None:
    data = require_test_data()
    report = follow.run(follow.FollowBench(processes=2, samples=3, data=data))
    assert report["store"] == "sqlite" and report["missed"] == 0
    assert report["lags"] == 3  # each photo, on the one other process
    assert 0 < report["p50_ms"] <= report["p99_ms"] <= report["max_ms"] < 10_000
    assert "| 3 |" in follow.table(report)
