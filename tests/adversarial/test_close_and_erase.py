"""A case closed and another erased while tip apps upload sightings of both, while a photo is
being added to each and an investigator decides on the erased one's candidate.

The closed case leaves matching at once and comes back whole when reopened (every sighting
sent meanwhile under its threshold becomes its candidate); the erased one is gone everywhere:
404, nobody's candidate, no row and no index entry (the checks after every attack)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.adversarial.harness import Target, cast
from tests.data import Photo

CLOSED, ERASED = 3, 4  # people of the cast


def test_close_and_erase_during_uploads(target: Target) -> None:
    people = cast(ERASED + 1)
    sent: list[tuple[float, int, httpx.Response]] = []  # (when sent, person, answer)

    def sight(person: int, photos: list[Photo]) -> None:
        with target.client(target.tip) as app:
            for photo in photos:
                sent.append((time.monotonic(), person, target.upload(app, photo)))

    with target.attack("close and erase during uploads") as run, \
            target.client(target.manager) as desk:
        closed = target.new_case(desk, "closed during uploads", people[CLOSED][0])
        erased = target.new_case(desk, "erased during uploads", people[ERASED][0])
        # The closed case's person's last photo is sent once it is closed (below).
        uploads = [threading.Thread(target=sight, args=(CLOSED, people[CLOSED][1:-1])),
                   threading.Thread(target=sight, args=(ERASED, people[ERASED][1:]))]
        for thread in uploads:
            thread.start()
        # A sighting of the person about to be erased: its candidate for the case is decided
        # on while the case is erased.
        deadline = time.monotonic() + 60
        while not (theirs := [answer for _, person, answer in sent if person == ERASED]):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        with target.client(target.investigator) as reader:
            candidate = next(row["id"] for row in target.candidates(
                reader, theirs[0].json()["id"]) if row["case_id"] == erased)
        with ThreadPoolExecutor(3) as pool:
            beside = {
                "photo to the erased case": pool.submit(
                    _add_photo, target, erased, people[ERASED][1]),
                "photo to the closed case": pool.submit(
                    _add_photo, target, closed, people[CLOSED][1]),
                "decision on the erased case": pool.submit(_decide, target, candidate)}
            found = desk.patch(f"/v1/cases/{closed}", json={"status": "found"})
            assert found.status_code == 200, found.text
            closed_at = time.monotonic()
            gone = desk.delete(f"/v1/cases/{erased}")
            assert gone.status_code == 204, gone.text
            target.ledger.erase(erased)
            answered = {what: done.result().status_code for what, done in beside.items()}
        sight(CLOSED, people[CLOSED][-1:])
        run.sent(2)
        for thread in uploads:
            thread.join()
        assert [answer.status_code for _, _, answer in sent] == [201] * len(sent)
        # Each before the close or erasure, or after it: never a failure.
        assert answered["photo to the closed case"] == 201, answered
        assert answered["photo to the erased case"] in (201, 404), answered
        assert answered["decision on the erased case"] in (201, 404), answered

        # Sightings of the closed case's person sent once it was closed: none is its
        # candidate.
        later = [answer.json()["id"] for at, person, answer in sent
                 if person == CLOSED and at > closed_at]
        with target.client(target.investigator) as reader:
            assert not any(_candidate_of(target, reader, s, closed) for s in later)
        run.holds(f"{len(sent)} uploads beside a close and an erasure; during them "
                  + ", ".join(f"{what} {status}" for what, status in answered.items())
                  + "; none sent after the close matched it")
    # Checked apart: reopening rebuilds the case index from the store, which would hide an
    # erased case's faces the index kept.
    with target.attack("reopen after uploads") as run, target.client(target.manager) as desk, \
            target.client(target.investigator) as reader:
        reopened = desk.patch(f"/v1/cases/{closed}", json={"status": "active"})
        run.sent()
        assert reopened.status_code == 200, reopened.text
        retro = sum(_candidate_of(target, reader, s, closed) for s in later)
        assert retro >= 1, later
        run.holds(f"{retro} of {len(later)} sightings sent while closed became its candidates")


def _add_photo(target: Target, case: int, photo: Photo) -> httpx.Response:
    with target.client(target.manager) as desk:
        return target.add_photo(desk, case, photo)


def _decide(target: Target, candidate: int) -> httpx.Response:
    with target.client(target.investigator) as desk:
        return target.decide(desk, candidate, "match")


def _candidate_of(target: Target, reader: httpx.Client, sighting: int, case: int) -> bool:
    return any(row["case_id"] == case for row in target.candidates(reader, sighting))
