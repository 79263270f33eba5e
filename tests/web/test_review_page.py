"""The investigator's desk in a real browser (headless Debian Chromium) against one live server
running the real pipeline (issue 21): a lineup decided by keyboard alone, the sighting photo
zoomed to full resolution and panned, a near miss opened from the lineup (and a changed
decision that must say why), the case view with two confirmed matches, a tablet held either
way, and the key kept to the tab.

The tests share one server, one browser and one world, and run in this order: the keyboard
test decides the queue the later ones look at (each still finds what it needs by the API).
`MATCHER_REVIEW_SCREENSHOTS=docs` writes the pictures of docs/review.md (faces blurred:
tests/web/screenshots.py).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from matcher.calibration import calibration_path, fit
from matcher.config import Settings
from matcher.embed import FacePipeline
from matcher.service import new_key
from matcher.store import Role
from tests.api.builders import case_body
from tests.api.review_helpers import BERLIN, MUNICH, POTSDAM, fgnet
from tests.data import require_test_data
from tests.web.conftest import PORTRAIT, VIEWPORT, LiveServer
from tests.web.screenshots import blurred, folder

INVESTIGATOR = "desk 4"
NOTE = "Two children at the kiosk by the station; the girl on the left looked scared."
PICTURES_SHOWN = """sel => [...document.querySelectorAll(sel)].every(
    img => img.src.startsWith('blob:') && img.complete && img.naturalWidth > 0)"""
OPEN_ID = "() => +(document.querySelector('#queue-list li.open') || {dataset: {id: 0}}).dataset.id"


@pytest.fixture(scope="module")
def server_settings(settings: Settings, pipeline: FacePipeline,
                    tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A calibration of the running model in the data dir, so each card says what its distance
    means; the operator's threshold (0.6) keeps the world's candidates where they are."""
    data_dir = tmp_path_factory.mktemp("desk") / "data"
    strangers = np.random.default_rng(1).normal(0.8, 0.1, 50_000)
    fit(pipeline.model_id, "child", strangers, searches=500, gallery_faces=100).save(
        calibration_path(data_dir / "calibration", "child"))
    return settings.model_copy(update={"data_dir": data_dir, "match_threshold": 0.6})


def _two_children() -> bytes:
    """One sighting photo, 1600 x 902, of child A at 10 (left) and child B at 16 (right): two
    faces, each under the threshold of its own case and a near miss of the other's."""
    left, right = (Image.open(fgnet(name).path).convert("RGB")
                   for name in ("001A10.JPG", "009A16a.JPG"))
    height = max(left.height, right.height)
    canvas = Image.new("RGB", (left.width + right.width + 40, height), (200, 200, 190))
    canvas.paste(left, (0, height - left.height))
    canvas.paste(right, (left.width + 40, height - right.height))
    canvas = canvas.resize((canvas.width * 2, canvas.height * 2), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    canvas.save(out, format="JPEG", quality=92)
    return out.getvalue()


def _post(api: httpx.Client, key: str, url: str, **kwargs: Any) -> Any:
    answer = api.post(url, headers={"Authorization": f"Bearer {key}"}, **kwargs)
    assert answer.status_code == 201, answer.text
    return answer.json()


def _get(api: httpx.Client, key: str, url: str, **params: Any) -> Any:
    answer = api.get(url, params=params, headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.fixture(scope="module")
def world(live_server: LiveServer) -> Iterator[dict[str, Any]]:
    """Two FG-NET children as cases; a photo of both (Berlin, with the reporter's note), one of
    A at 14 (Munich) and one of B at 11 (Potsdam) as sightings: four queue entries."""
    require_test_data()
    keys = {role: new_key(live_server.matcher.sessions, role, name)[1] for role, name in (
        (Role.INVESTIGATOR, INVESTIGATOR), (Role.CASE_MANAGER, "case desk"),
        (Role.TIP_APP, "tip app"), (Role.ADMIN, "admin"))}
    manager, tip = keys[Role.CASE_MANAGER], keys[Role.TIP_APP]
    with live_server.client() as api:
        cases = {}
        for name, photo, age, fields in (
                ("Child A", "001A08.JPG", "8", {"last_seen_lat": BERLIN[0],
                                                "last_seen_lon": BERLIN[1],
                                                "last_seen_place": "Alexanderplatz"}),
                ("Child B", "009A09.JPG", "9", {"missing_since": "2016-03-01",
                                                "age_when_missing": 9,
                                                "last_seen_place": "Potsdam"})):
            case = _post(api, manager, "/v1/cases", json=case_body(name, **fields))
            _post(api, manager, f"/v1/cases/{case['id']}/photos", data={"age_at_photo": age},
                  files={"photo": (photo, fgnet(photo).path.read_bytes(), "image/jpeg")})
            cases[name[-1]] = case["id"]
        sightings = {}
        for label, photo, where, taken, note in (
                ("both", _two_children(), BERLIN, "2021-01-01T10:00:00Z", NOTE),
                ("a14", fgnet("001A14.JPG").path.read_bytes(), MUNICH, "2023-01-01T10:00:00Z",
                 None),
                ("b11", fgnet("009A11.JPG").path.read_bytes(), POTSDAM, "2019-06-01T10:00:00Z",
                 None)):
            form = {"lat": str(where[0]), "lon": str(where[1]), "taken_at": taken,
                    **({"note": note} if note else {})}
            sightings[label] = _post(api, tip, "/v1/sightings", data=form,
                                     files={"photo": ("s.jpg", photo, "image/jpeg")})["id"]
        inv = keys[Role.INVESTIGATOR]
        queue = _get(api, inv, "/v1/review/queue")["items"]
        assert len(queue) == 4, [(i["sighting"]["id"], i["case"]["id"]) for i in queue]
        entries = {(item["sighting"]["id"], item["case"]["id"]): item for item in queue}
        yield {"keys": keys, "cases": cases, "sightings": sightings, "entries": entries,
               "queue": [item["id"] for item in queue], "api": api}


@dataclass
class Desk:
    page: Any  # a Playwright Page
    problems: list[str]  # script errors and CSP violations seen so far


@pytest.fixture
def desk(live_server: LiveServer, browser: Any, world: dict[str, Any]) -> Iterator[Desk]:
    """A fresh tab (its own sessionStorage) logged in as the investigator; it fails the test
    on any script error or CSP violation."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.goto(f"{live_server.url}/review")
    page.fill("#login-key", world["keys"][Role.INVESTIGATOR])
    page.keyboard.press("Enter")
    page.locator("#queue-status").filter(has_text="entr").or_(
        page.locator("#queue-status").filter(has_text="Nothing")).wait_for()
    yield Desk(page, problems)
    assert problems == []
    context.close()


def _entry(world: dict[str, Any], sighting: str, case: str) -> dict[str, Any]:
    entry: dict[str, Any] = world["entries"][(world["sightings"][sighting], world["cases"][case])]
    return entry


def _status_of(world: dict[str, Any], candidate: int) -> str:
    found = _get(world["api"], world["keys"][Role.INVESTIGATOR],
                 f"/v1/review/candidates/{candidate}")
    return str(found["status"])


def _settle(world: dict[str, Any], sighting: str, case: str, status: str) -> int:
    """The entry's candidate, given `status` through the API unless it has it already (the
    tests run in order, but each can run alone too)."""
    candidate = int(_entry(world, sighting, case)["id"])
    verdict = {"confirmed": "match", "needs_info": "needs_info", "rejected": "not_match"}
    if _status_of(world, candidate) != status:
        _post(world["api"], world["keys"][Role.INVESTIGATOR],
              f"/v1/review/candidates/{candidate}/decision",
              json={"verdict": verdict[status], "note": "set up for this test"})
    return candidate


def _open_parked(page: Any, world: dict[str, Any]) -> int:
    """Opens the entry of child B's face in the photo of both, parked as `needs_info`."""
    target = _settle(world, "both", "B", "needs_info")
    page.select_option("#f-status", "pending,needs_info")  # the queue reloads
    page.click(f'#queue-list li[data-id="{target}"] button')
    _wait_lineup(page, target)
    return target


def _wait_lineup(page: Any, candidate: int) -> None:
    page.locator(f'#l-cards li.card.selected[data-candidate="{candidate}"]').wait_for()
    page.wait_for_function(PICTURES_SHOWN, arg="#l-cards img, #l-probe, #s-photo")


def _recorded(page: Any, verdict: str) -> None:
    page.wait_for_function(
        "v => document.getElementById('d-status').textContent.startsWith('Recorded: ' + v)",
        arg=verdict)


def test_a_lineup_decided_by_keyboard_alone(desk: Desk, world: dict[str, Any]) -> None:
    page, queue = desk.page, world["queue"]
    assert page.inner_text("#who") == f"{INVESTIGATOR} · investigator"
    shortcuts = page.inner_text("#shortcuts")
    for words in ("M match", "N not the same", "I needs info", "U inconclusive", "next",
                  "previous", "Z zoom"):
        assert words in shortcuts
    shown = page.eval_on_selector_all("#queue-list li", "items => items.map(i => +i.dataset.id)")
    assert shown == queue  # most likely first, as the API ranks them

    page.keyboard.press("j")  # the first entry opens
    _wait_lineup(page, queue[0])
    page.keyboard.press("z")  # the zoom, and back
    page.locator("#zoom").wait_for()
    page.keyboard.press("Escape")
    page.locator("#zoom").wait_for(state="hidden")

    page.keyboard.press("m")  # match: recorded, and the next entry opens
    _recorded(page, "match")
    _wait_lineup(page, queue[1])
    assert page.evaluate(OPEN_ID) == queue[1]
    page.keyboard.press("k")  # the decided entry left the queue: nothing before this one
    page.keyboard.press("j")
    _wait_lineup(page, queue[2])
    page.keyboard.press("k")
    _wait_lineup(page, queue[1])

    page.keyboard.press("m")
    _recorded(page, "match")
    _wait_lineup(page, queue[2])
    page.keyboard.press("i")  # needs info: parked, out of the pending queue
    _recorded(page, "needs info")
    _wait_lineup(page, queue[3])

    page.keyboard.press("c")  # the case view, and back
    page.locator("#case-view").wait_for()
    page.keyboard.press("Escape")
    page.locator("#lineup-view").wait_for()
    page.keyboard.press("u")  # the last entry, inconclusive: the queue is done
    _recorded(page, "inconclusive")
    page.locator("#queue-status").filter(has_text="Nothing to review").wait_for()

    assert [_status_of(world, c) for c in queue] == [
        "confirmed", "confirmed", "needs_info", "inconclusive"]


def test_the_sighting_photo_zooms_to_full_resolution_and_pans(
    desk: Desk, world: dict[str, Any], tmp_path: Path
) -> None:
    page = desk.page
    _open_parked(page, world)
    # Every face of the photo is boxed, the searched one highlighted; the note is there.
    assert page.locator("#s-frame .box").count() == 2
    assert page.locator("#s-frame .box.searched").count() == 1
    assert page.inner_text("#s-note") == NOTE

    page.click("#s-photo")
    page.wait_for_function(PICTURES_SHOWN, arg="#z-photo")
    size = page.evaluate("""() => { const img = document.getElementById('z-photo');
        const stage = document.getElementById('z-stage');
        return [img.naturalWidth, img.naturalHeight, img.clientWidth, img.clientHeight,
                stage.scrollWidth > stage.clientWidth, stage.scrollHeight > stage.clientHeight]
    }""")
    assert size == [1600, 902, 1600, 902, True, True]  # every pixel of it, more than fits
    assert "full resolution" in page.inner_text("#z-scale")
    assert page.locator("#z-frame .box.searched").count() == 1
    folder_ = folder(tmp_path)
    regions = blurred(page, folder_ / "review-zoom.png")
    assert regions  # the faces on screen were found and blurred

    # It opened on the searched face (child B's, on the right); drag the picture right and
    # down with the mouse to pan towards the left and the top.
    scrolled = "() => { const s = document.getElementById('z-stage'); " \
        "return [s.scrollLeft, s.scrollTop]; }"
    before = page.evaluate(scrolled)
    assert before[0] > 200 and before[1] > 50
    box = page.locator("#z-stage").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + 400, box["y"] + 200)
    page.mouse.down()
    page.mouse.move(box["x"] + 600, box["y"] + 250, steps=5)
    page.mouse.up()
    after = page.evaluate(scrolled)
    assert after == [pytest.approx(before[0] - 200, abs=2), pytest.approx(before[1] - 50, abs=2)]
    page.keyboard.press("+")
    assert page.inner_text("#z-scale").startswith("150%")
    page.keyboard.press("0")  # fit: all of it in view
    page.wait_for_function("() => { const s = document.getElementById('z-stage');"
                           " return s.scrollWidth <= s.clientWidth; }")
    page.keyboard.press("Escape")
    page.locator("#zoom").wait_for(state="hidden")


def test_a_near_miss_opened_from_the_lineup(desk: Desk, world: dict[str, Any],
                                            tmp_path: Path) -> None:
    page = desk.page
    _open_parked(page, world)
    assert page.locator("#l-cards li.card").count() == 1
    near_button = page.locator("#l-near")
    assert near_button.inner_text() == "Show 1 near miss (above the threshold)"

    near_button.click()  # the other child's case: compared, above the threshold
    near = page.locator("#l-cards li.card.near")
    near.wait_for()
    assert "near miss: above the threshold" in near.inner_text() and "Child A" in near.inner_text()
    near.click()
    page.locator("#l-cards li.card.near.selected").wait_for()
    page.wait_for_function(PICTURES_SHOWN, arg="#l-cards img, #l-probe, #s-photo")
    blurred(page, folder(tmp_path) / "review-lineup.png")
    near_id = int(near.get_attribute("data-candidate") or 0)
    facts = near.inner_text()
    assert "Strangers as close" in facts and "on photo" in facts and "when seen" in facts

    # Decided: the lineup stays (a near miss is no queue entry), the card shows it.
    near.locator("button.verdict.needs_info").click()
    _recorded(page, "needs info")
    page.locator(f'#l-cards li.card.near[data-candidate="{near_id}"][data-status="needs_info"]'
                 ).wait_for()
    # Changing it asks for a note (here by its key, N); Enter in the note records it.
    page.keyboard.press("n")
    page.wait_for_function(
        "() => document.getElementById('d-status').textContent.startsWith('This changes')")
    assert page.evaluate("() => document.activeElement.id") == "d-note"
    assert _status_of(world, near_id) == "needs_info"
    page.keyboard.type("the other child in the photo")
    page.keyboard.press("Enter")
    _recorded(page, "not the same")
    assert _status_of(world, near_id) == "rejected"
    notes = [d["note"] for d in _get(world["api"], world["keys"][Role.INVESTIGATOR],
                                     f"/v1/review/candidates/{near_id}")["decisions"]
             if d["candidate_id"] == near_id]
    assert notes[-1] == "the other child in the photo"


def test_the_case_view_with_two_confirmed_matches(desk: Desk, world: dict[str, Any],
                                                  tmp_path: Path) -> None:
    page = desk.page
    berlin = _settle(world, "both", "A", "confirmed")
    _settle(world, "a14", "A", "confirmed")
    _open_parked(page, world)
    # The other face of the photo opens its own lineup; its case opens the case view.
    page.click("#s-frame .box.other")
    _wait_lineup(page, berlin)
    page.locator("#l-cards li.card.selected button.case-link").click()
    page.locator("#case-view").wait_for()
    page.wait_for_function(PICTURES_SHOWN, arg="#c-photos img, #c-seen img")
    assert page.inner_text("#c-title") == f"Case #{world['cases']['A']}: Child A"
    seen = page.locator("#c-seen li").all_inner_texts()
    assert len(seen) == 3 and seen[0].startswith("Last seen: Alexanderplatz")
    assert "2021-01-01 10:00 UTC" in seen[1] and "52.5200, 13.4050" in seen[1]
    assert "2023-01-01 10:00 UTC" in seen[2] and "48.1374, 11.5755" in seen[2]
    assert all(f"confirmed by {INVESTIGATOR}" in line for line in seen[1:])
    assert "age 8.0" in page.inner_text("#c-photos")
    confirmed = page.locator('#c-history tr[data-status="confirmed"]')
    assert confirmed.count() == 2
    blurred(page, folder(tmp_path) / "review-case.png")
    page.keyboard.press("Escape")
    page.locator("#lineup-view").wait_for()


@pytest.mark.parametrize("viewport", [VIEWPORT, PORTRAIT], ids=["landscape", "portrait"])
def test_a_tablet_held_either_way(live_server: LiveServer, browser: Any, world: dict[str, Any],
                                  viewport: dict[str, int], tmp_path: Path) -> None:
    """A 10-inch tablet (touch, 1280 x 800 either way): nothing wider than the screen, the
    queue and the lineup both on it, the decision buttons big enough for a finger."""
    context = browser.new_context(viewport=viewport, has_touch=True)
    page = context.new_page()
    page.goto(f"{live_server.url}/review")
    page.fill("#login-key", world["keys"][Role.INVESTIGATOR])
    page.keyboard.press("Enter")
    page.locator("#queue-status").filter(has_text="entr").or_(
        page.locator("#queue-status").filter(has_text="Nothing")).wait_for()
    _open_parked(page, world)
    width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1]
    for selector in ("#queue-list", "#l-cards li.card.selected", "#s-photo"):
        box = page.locator(selector).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"]
        assert box["y"] < viewport["height"]
    button = page.locator("#l-cards li.card.selected button.verdict").first.bounding_box()
    assert button is not None and button["height"] >= 40
    if viewport == PORTRAIT:
        blurred(page, folder(tmp_path) / "review-tablet.png")
    context.close()


def test_the_key_stays_in_the_tab(desk: Desk, world: dict[str, Any]) -> None:
    page, inv = desk.page, world["keys"][Role.INVESTIGATOR]
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    target = _entry(world, "both", "B")
    _open_parked(page, world)
    assert requested and all(inv not in url for url in requested) and inv not in page.url
    assert page.evaluate("() => sessionStorage.getItem('matcher.review.key')") == inv
    assert page.evaluate("() => localStorage.length") == 0
    assert page.evaluate("() => document.cookie") == "" and page.context.cookies() == []
    # A picture asked for without the key (what an <img src> to the API would do) is refused.
    # The alert filter goes to the API (no sighting here answered an alert).
    page.click(".filters-box summary")
    page.check("#f-reported")
    page.click("#filters button[type=submit]")
    page.locator("#queue-status").filter(has_text="Nothing to review").wait_for()
    assert any("reported_for_alert=true" in url for url in requested)
    assert desk.problems == []
    status = page.evaluate("url => fetch(url).then(r => r.status)", target["face_crop_url"])
    assert status == 401
    desk.problems.clear()  # the browser reports that 401 on the console, as asked
    page.click("#logout")
    page.locator("#login").wait_for()
    assert page.evaluate("() => sessionStorage.length") == 0
    assert page.locator("#queue-list li").count() == 0 and page.locator("#app").is_hidden()


def test_a_wrong_key_is_refused_and_forgotten(live_server: LiveServer, browser: Any,
                                              world: dict[str, Any]) -> None:
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(f"{live_server.url}/review")
    for key, says in (("mk_000000000000_wrong", "refused"),
                      (world["keys"][Role.TIP_APP], "investigator key")):
        page.fill("#login-key", key)
        page.click("#login-form button[type=submit]")
        page.wait_for_function(
            "() => document.getElementById('login-error').textContent !== ''")
        assert says in page.inner_text("#login-error")
        assert page.evaluate("() => sessionStorage.length") == 0
        assert page.locator("#app").is_hidden()
        page.evaluate("() => { document.getElementById('login-error').textContent = ''; }")
    page.close()
