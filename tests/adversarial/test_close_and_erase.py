"""A case closed and another erased while tip apps upload sightings of both, and while a
photo is being added to the one erased.

The closed case leaves matching at once and comes back whole when reopened (every sighting
sent meanwhile under its threshold becomes its candidate); the erased one is gone everywhere:
404, nobody's candidate, no row and no index entry (the checks after every attack)."""

from __future__ import annotations

import threading
import time

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
        deadline = time.monotonic() + 60
        while not sent:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        added: list[httpx.Response] = []
        adding = threading.Thread(target=lambda: added.append(
            _add_photo(target, erased, people[ERASED][1])))
        adding.start()
        found = desk.patch(f"/v1/cases/{closed}", json={"status": "found"})
        assert found.status_code == 200, found.text
        closed_at = time.monotonic()
        gone = desk.delete(f"/v1/cases/{erased}")
        assert gone.status_code == 204, gone.text
        target.ledger.erase(erased)
        sight(CLOSED, people[CLOSED][-1:])
        run.sent(3)
        for thread in (*uploads, adding):
            thread.join()
        assert [answer.status_code for _, _, answer in sent] == [201] * len(sent)
        assert added[0].status_code in (201, 404), added[0].text  # before or after the erasure

        # Sightings of the closed case's person sent once it was closed: none is its
        # candidate.
        later = [answer.json()["id"] for at, person, answer in sent
                 if person == CLOSED and at > closed_at]
        with target.client(target.investigator) as reader:
            assert not any(_candidate_of(target, reader, s, closed) for s in later)
        run.holds(f"{len(sent)} uploads beside a close and an erasure, a photo added during "
                  f"it answered {added[0].status_code}; none sent after the close matched it")
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


def _candidate_of(target: Target, reader: httpx.Client, sighting: int, case: int) -> bool:
    return any(row["case_id"] == case for row in target.candidates(reader, sighting))
