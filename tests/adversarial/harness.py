"""The adversarial suite's harness: one real `matcher serve` that every attack hits over real
sockets, the ledger of what it acknowledged, and the invariants checked after each attack.

After every attack (`Target.attack`):
1. `/healthz` answers within a second, on a fresh connection;
2. no acknowledged write was lost: every sighting answered 201 reads back with its faces as
   answered, its photo, and every candidate an earlier check saw; every case photo is in its
   case; every candidate's status is that of its latest acknowledged decision; an erased case
   answers 404, is nobody's candidate, and has no row left in the store;
3. each index holds what the store has for it: `matcher_index_case_faces` against the
   store's active case faces and `matcher_index_sighting_faces` against its fit sighting
   faces, both of the serving model, the store read from its own file;
4. no request was answered 5xx during the attack, and the log has no ERROR line and no index
   repaired by the housekeeping round (REPAIRED), but those of a fault the attack injected
   itself. A kill -9 leaves its requests unanswered rather than failed, and the restarted
   process counts from zero: `kill` carries the count over.

The ledger only grows (less what an erasure or a purge removed on purpose), so each check
covers the writes of every earlier attack too. Each attack adds a row to the summary printed
at the end of the run (conftest.py): what it sent, the limit that held, the writes checked.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from matcher.config import Settings
from matcher.store import (
    Candidate,
    Case,
    CasePhoto,
    Face,
    Role,
    active_case_face_summary,
    session_factory,
)
from matcher.store.face_rows import sighting_face_summary
from matcher.wiring import make_engine
from tests.adversarial.ledger import STATUS_OF, Ledger
from tests.api.builders import case_body, photo_file
from tests.data import Photo, lfw_photos
from tests.live import LiveServer

# The server's limits, set low so that attacks reach them within the suite's budget.
HEAD_TIMEOUT_S = 2.0
BODY_WINDOW_S = 2.0
CONNECTION_CAP = 200
HOUSEKEEPING_S = 2.0  # how soon the server drops faces another process purged
SERVER_SETTINGS = {
    "header_timeout_s": str(HEAD_TIMEOUT_S), "body_timeout_s": str(BODY_WINDOW_S),
    "max_connections": str(CONNECTION_CAP), "keep_alive_s": "5",
    "maintenance_interval_s": str(HOUSEKEEPING_S),
    # A reindex reports progress (and can be killed half-way) every two photos.
    "detect_batch_size": "2",
    # Tip apps here upload faster than any phone; tests/api/test_limits.py tests the limiter.
    "tip_rate_per_minute": "1000000", "tip_burst": "1000000",
}
HEALTHZ_S = 1.0
# Logged when the housekeeping round (or a retro-match) drops from an index faces the store no
# longer has: right after another process's purge, else the sign of an index that kept an
# erased or removed face, which the round would otherwise hide within HOUSEKEEPING_S.
REPAIRED = "were gone from the store"
REQUESTS = "matcher_http_request_duration_seconds"
CHECKERS = 4  # client threads reading the ledger back


def cast(count: int) -> list[list[Photo]]:
    """`count` people of LFW-dev with at least four photos each, always the same ones: one
    photo to register a case with, the others to be sighted."""
    by_person: dict[str, list[Photo]] = defaultdict(list)
    for photo in lfw_photos():
        by_person[photo.identity].append(photo)
    return [photos for _, photos in sorted(by_person.items()) if len(photos) >= 4][:count]


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """The (labels, value) samples called `name` in a Prometheus text page."""
    return [(sample.labels, sample.value) for family in text_string_to_metric_families(text)
            for sample in family.samples if sample.name == name]


@dataclass
class Attack:
    """One attack's row of the summary."""

    name: str
    requests: int = 0  # requests and connections the attack made (its checks not counted)
    held: list[str] = field(default_factory=list)  # what held, in figures
    faults: tuple[str, ...] = ()  # in the log lines the attack's own fault may cause
    checked: int = 0  # acknowledged writes the check after it read back
    server_errors: float = 0.0  # 5xx answers during it
    seconds: float = 0.0  # the attack and the check after it
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def sent(self, count: int = 1) -> None:
        with self.lock:
            self.requests += count

    def holds(self, text: str) -> None:
        self.held.append(text)


class Target:
    """The shared server, one key per role, the ledger, and the attacks run so far."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.ledger = Ledger()
        self.attacks: list[Attack] = []
        self.current: Attack | None = None
        self.manager = self.tip = self.investigator = ""
        self._errors_base = 0.0  # the 5xx count of this process when the attack began
        self._errors_carried = 0.0  # 5xx of processes killed during the attack

    def start(self) -> None:
        self.server.start()
        self.manager, self.tip, self.investigator = (
            self.server.new_key(role, role.value) for role in (
                Role.CASE_MANAGER, Role.TIP_APP, Role.INVESTIGATOR))

    def client(self, key: str, timeout: float = 120) -> httpx.Client:
        return self.server.client(key, timeout=timeout)

    def _sent(self) -> None:
        if self.current is not None:
            self.current.sent()

    # Writes: each acknowledged one goes into the ledger.
    def upload(self, client: httpx.Client, photo: Photo) -> httpx.Response:
        """A tip app's sighting (201 recorded)."""
        self._sent()
        answer = client.post("/v1/sightings", files=photo_file(photo))
        if answer.status_code == 201:
            self.ledger.sighting(answer)
        return answer

    def add_photo(self, client: httpx.Client, case_id: int, photo: Photo) -> httpx.Response:
        """A case manager's case photo (201 recorded)."""
        self._sent()
        answer = client.post(f"/v1/cases/{case_id}/photos", files=photo_file(photo))
        if answer.status_code == 201:
            self.ledger.case_photo(answer)
        return answer

    def new_case(self, client: httpx.Client, name: str, photo: Photo) -> int:
        """A case registered with one photo; both must be acknowledged."""
        self._sent()
        made = client.post("/v1/cases", json=case_body(name))
        assert made.status_code == 201, made.text
        added = self.add_photo(client, made.json()["id"], photo)
        assert added.status_code == 201, added.text
        return int(made.json()["id"])

    def decide(self, client: httpx.Client, candidate_id: int, verdict: str) -> httpx.Response:
        """An investigator's decision (201 recorded)."""
        self._sent()
        answer = client.post(f"/v1/review/candidates/{candidate_id}/decision",
                             json={"verdict": verdict, "note": "adversarial"})
        if answer.status_code == 201:
            self.ledger.decision(candidate_id, answer)
        return answer

    def candidates(self, client: httpx.Client, sighting_id: int) -> list[dict[str, Any]]:
        """The sighting's candidates (seen by the ledger from now on)."""
        self._sent()
        answer = client.get(f"/v1/sightings/{sighting_id}/candidates")
        assert answer.status_code == 200, answer.text
        rows: list[dict[str, Any]] = answer.json()
        self.ledger.saw(sighting_id, rows)
        return rows

    # The process.
    def server_errors(self) -> float:
        """5xx answers this process has counted."""
        text = httpx.get(f"{self.server.base}/metrics", timeout=30).text
        return sum(value for labels, value in samples(text, REQUESTS + "_count")
                   if labels.get("status", "").startswith("5"))

    def errors_in_attack(self) -> float:
        """5xx answers since the attack began, those of processes killed meanwhile too."""
        return self._errors_carried + self.server_errors() - self._errors_base

    def kill(self) -> None:
        """kill -9; the 5xx this process counted so far are carried into the attack's."""
        try:
            self._errors_carried += self.server_errors() - self._errors_base
        except httpx.TransportError:
            pass  # too busy to answer at that moment: its last few are not counted
        self.server.kill()

    def restart(self) -> None:
        """A start on the same data dir; its counters begin at zero."""
        self.server.start()
        self._errors_base = 0.0

    def log_size(self) -> int:
        return self.server.log_path.stat().st_size

    def log_lines(self, offset: int) -> list[dict[str, Any]]:
        """The server's JSON log lines from `offset` on (a traceback outside JSON included,
        as an ERROR)."""
        with self.server.log_path.open("rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
        lines = []
        for line in text.splitlines():
            if line.startswith("{"):
                lines.append(json.loads(line))
            elif line.strip():
                lines.append({"level": "ERROR" if "Traceback" in line else "INFO", "msg": line,
                              "logger": "stderr"})
        return lines

    @contextmanager
    def attack(self, name: str, faults: tuple[str, ...] = ()) -> Iterator[Attack]:
        """Runs the body as the attack `name`, then checks every invariant."""
        run = Attack(name, faults=faults)
        self.current, log_from, started = run, self.log_size(), time.monotonic()
        self._errors_base, self._errors_carried = self.server_errors(), 0.0
        try:
            yield run
        finally:
            self.current = None
        check(self, run, log_from)
        run.seconds = time.monotonic() - started
        self.attacks.append(run)


def check(target: Target, run: Attack, log_from: int) -> None:
    """Every invariant of the module docstring, after `run`."""
    healthz_within_a_second(target)
    run.checked = writes_kept(target)
    indexes_equal_store(target)
    run.server_errors = target.errors_in_attack()
    assert run.server_errors == 0, f"{run.server_errors} answers were 5xx during {run.name}"
    alarms = [line["msg"] for line in target.log_lines(log_from)
              if (line["level"] in ("ERROR", "CRITICAL") or REPAIRED in line["msg"])
              and not any(fault in line["msg"] + line.get("exc", "") for fault in run.faults)]
    assert alarms == [], alarms


def healthz_within_a_second(target: Target) -> float:
    started = time.monotonic()
    answer = httpx.get(f"{target.server.base}/healthz", timeout=5)
    took = time.monotonic() - started
    assert answer.status_code == 200, answer.text
    assert took < HEALTHZ_S, f"/healthz took {took:.2f} s"
    return took


def writes_kept(target: Target) -> int:
    """Reads every acknowledged write back (in CHECKERS threads); returns how many."""
    ledger = target.ledger
    with ledger.lock:
        sightings = dict(ledger.sightings)
        decisions = dict(ledger.decisions)
        photos = dict(ledger.case_photos)
        erased = set(ledger.erased)
    with target.client(target.investigator) as desk, ThreadPoolExecutor(CHECKERS) as pool:
        listed = dict(zip(sightings, pool.map(
            partial(_sighting_kept, target, desk, erased), sightings, sightings.values()),
            strict=True))
    status = {row["id"]: row["status"] for rows in listed.values() for row in rows}
    wrong = {candidate: (decided.verdict, status.get(candidate))
             for candidate, decided in decisions.items()
             if status.get(candidate) != STATUS_OF[decided.verdict]}
    assert wrong == {}, "candidate: (latest acknowledged verdict, status now)"
    by_case: dict[int, set[int]] = defaultdict(set)
    for photo, case in photos.items():
        by_case[case].add(photo)
    with target.client(target.manager) as desk:
        for case, wanted in by_case.items():
            got = desk.get(f"/v1/cases/{case}")
            assert got.status_code == 200, got.text
            assert wanted <= {photo["id"] for photo in got.json()["photos"]}, (case, wanted)
        for case in erased:
            assert desk.get(f"/v1/cases/{case}").status_code == 404, case
    if erased:
        assert erased_rows(target, erased) == 0
    return len(sightings) + len(photos) + len(decisions) + len(erased)


def _sighting_kept(target: Target, desk: httpx.Client, erased: set[int], sighting_id: int,
                   fits: tuple[bool, ...]) -> list[dict[str, Any]]:
    """The sighting, its faces as answered, its photo, and its candidates: every one an
    earlier check saw (less an erased case's), none of an erased case."""
    stored = desk.get(f"/v1/sightings/{sighting_id}")
    assert stored.status_code == 200, (sighting_id, stored.text)
    assert tuple(face["fit"] for face in stored.json()["faces"]) == fits, sighting_id
    photo = desk.get(f"/v1/sightings/{sighting_id}/photo")
    assert photo.status_code == 200 and photo.content[:2] == b"\xff\xd8", sighting_id
    with target.ledger.lock:
        seen = dict(target.ledger.candidates.get(sighting_id, {}))
    rows = desk.get(f"/v1/sightings/{sighting_id}/candidates").json()
    lost = set(seen) - {row["id"] for row in rows}
    assert not lost, f"sighting {sighting_id} lost candidates {lost}"
    assert not {row["case_id"] for row in rows} & erased, (sighting_id, erased)
    target.ledger.saw(sighting_id, rows)
    return list(rows)


@contextmanager
def store_session(target: Target) -> Iterator[Session]:
    """A session on the server's store, opened from this process (SQLite reads beside it)."""
    engine = make_engine(Settings(data_dir=target.server.data_dir))
    try:
        with session_factory(engine)() as session:
            yield session
    finally:
        engine.dispose()


def erased_rows(target: Target, erased: set[int]) -> int:
    """Rows the store still has of erased cases: the case, its photos, candidates for it, and
    faces left with neither photo nor sighting."""
    with store_session(target) as session:
        return sum(session.scalar(query) or 0 for query in (
            select(func.count()).select_from(Case).where(Case.id.in_(erased)),
            select(func.count()).select_from(CasePhoto).where(CasePhoto.case_id.in_(erased)),
            select(func.count()).select_from(Candidate).where(Candidate.case_id.in_(erased)),
            select(func.count()).select_from(Face).where(
                Face.case_photo_id.is_(None), Face.sighting_id.is_(None)),
        ))


def model_id(target: Target) -> str:
    served: str = httpx.get(f"{target.server.base}/healthz", timeout=5).json()["model_id"]
    return served


def store_faces(target: Target) -> tuple[int, int]:
    """(active case faces, fit sighting faces) of the serving model, as the store has them."""
    served = model_id(target)
    with store_session(target) as session:
        return (active_case_face_summary(session, served).count,
                sighting_face_summary(session, served).count)


def indexed_faces(target: Target) -> tuple[int, int]:
    return (int(target.server.metric("matcher_index_case_faces")),
            int(target.server.metric("matcher_index_sighting_faces")))


def indexes_equal_store(target: Target, settle_s: float = 0.0) -> None:
    """The two gauges equal the store's counts (at once, or within `settle_s`: another
    process's purge reaches the server's indexes at its next housekeeping round)."""
    deadline = time.monotonic() + settle_s
    while (held := indexed_faces(target)) != (stored := store_faces(target)):
        assert time.monotonic() < deadline, f"indexes hold {held}, the store has {stored}"
        time.sleep(0.2)


def summary(attacks: list[Attack]) -> list[str]:
    """The table docs/reliability.md cites: one line per attack."""
    lines = ["attack | requests | what held | acknowledged writes checked | 5xx | s"]
    lines += [f"{run.name} | {run.requests} | {'; '.join(run.held)} | {run.checked} | "
              f"{run.server_errors:g} | {run.seconds:.1f}" for run in attacks]
    return lines
