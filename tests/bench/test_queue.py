"""The review queue's benchmark on a small SQLite store: it runs on today's schema (revision
0008 broke the version that downgraded to 0004), and the indexes it compares are the ones the
queue reads."""

from __future__ import annotations

from matcher.bench import queue


def test_every_page_is_timed_without_and_with_the_queue_indexes() -> None:
    report = queue.run(queue.QueueBench(candidates=3_000, deep=100, repeats=1, calls=1))
    assert report["candidates"] == 3_000 and report["cases"] == 15
    assert [p["page"] for p in report["pages"]] == [
        "first page", "after 100 rows", "case 1", "case 1 matches"]
    for page in report["pages"]:
        assert page["ms_without"] > 0 and page["ms_with"] > 0
        assert not any(name in page["plan_without"] for name in queue.QUEUE_INDEXES)
        assert any(name in page["plan_with"] for name in queue.QUEUE_INDEXES), page
    assert "first page" in queue.table(report)
