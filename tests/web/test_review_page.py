"""The review page in a real browser (headless Debian Chromium) against a live server running
the real pipeline: an investigator logs in with a key, finds the candidate a sighting upload
put in the queue, sees both faces, decides `not_match`, and the entry leaves the queue (on the
page and in the API) and lands in the audit trail under that investigator's name.

Set MATCHER_REVIEW_SCREENSHOT=docs/review.png to write the screenshot in docs/api.md (the faces are
blurred first: the research photos may not be redistributed).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx

from matcher.service import new_key
from matcher.store import Role
from tests.api.review_helpers import BERLIN, MUNICH, POTSDAM, entry_of, get, new_case, queue
from tests.api.review_helpers import sighting as upload_sighting
from tests.data import require_test_data
from tests.web.conftest import VIEWPORT, LiveServer

INVESTIGATOR = "desk investigator"
PICTURES = ("d-sighting-crop", "d-case-crop", "d-case-photo")
PICTURES_SHOWN = """ids => ids.every(id => {
    const img = document.getElementById(id);
    return img.src.startsWith('blob:') && img.complete && img.naturalWidth > 0;
})"""
# Blurs every picture (set through the CSSOM: the page's CSP forbids injected style elements).
BLUR_FACES = "imgs => imgs.forEach(img => { img.style.filter = 'blur(14px)'; })"


def _world(server: LiveServer, api: httpx.Client) -> dict[str, Any]:
    """Two FG-NET children registered as cases, then sightings of them at later ages uploaded
    by a tip app (tests/api/review_helpers.py: each lands under the threshold of its case)."""
    require_test_data()
    keys = {role: new_key(server.matcher.sessions, role, name)[1] for role, name in (
        (Role.INVESTIGATOR, INVESTIGATOR), (Role.CASE_MANAGER, "case desk"),
        (Role.TIP_APP, "tip app"), (Role.ADMIN, "admin"))}
    manager, tip = keys[Role.CASE_MANAGER], keys[Role.TIP_APP]
    a, _ = new_case(api, manager, "Child A", "001A08.JPG", {"age_at_photo": "8"},
                    last_seen_lat=BERLIN[0], last_seen_lon=BERLIN[1])
    b, _ = new_case(api, manager, "Person B", "009A09.JPG", {"taken_on": "2015-06-01"},
                    category="elderly", age_when_missing=9)
    s1 = upload_sighting(api, tip, "001A10.JPG", BERLIN, "2021-01-01T10:00:00Z")
    upload_sighting(api, tip, "001A14.JPG", MUNICH, "2023-01-01T10:00:00Z")
    upload_sighting(api, tip, "009A16a.JPG", POTSDAM, "2022-06-01T10:00:00Z")
    return {"keys": keys, "a": a, "b": b, "s1": s1}


def test_an_investigator_reviews_a_sighting_in_the_browser(
    live_server: LiveServer, browser: Any, tmp_path: Path
) -> None:
    api = live_server.client()
    world = _world(live_server, api)
    inv, admin = world["keys"][Role.INVESTIGATOR], world["keys"][Role.ADMIN]
    before = queue(api, inv)
    target = entry_of(before, world["s1"], world["a"])
    others = {item["id"] for item in before} - {target["id"]}
    assert len(before) == 3

    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))

    page.goto(f"{live_server.url}/review")
    page.fill("#login-key", inv)
    page.click("#login-form button[type=submit]")
    row = page.locator(f'#queue-body tr[data-id="{target["id"]}"]')
    row.wait_for()
    # Closest first, as the API ranks them; the row shows who and where.
    shown = page.eval_on_selector_all("#queue-body tr", "rows => rows.map(r => +r.dataset.id)")
    assert shown == [item["id"] for item in before]
    assert "Child A" in row.inner_text() and "2021-01-01 10:00 UTC" in row.inner_text()
    assert "2×" in row.inner_text()  # she was seen again in Munich

    row.click()
    page.wait_for_function(PICTURES_SHOWN, arg=list(PICTURES))
    assert f"Candidate {target['id']}" in page.inner_text("#d-title")
    assert "Seen 2 times" in page.inner_text("#d-seen-title")
    assert "48.1374, 11.5755" in page.inner_text("#d-seen")
    page.wait_for_function("() => document.getElementById('d-case-title').textContent !== ''")
    assert page.inner_text("#d-case-title") == f"Case #{world['a']}: Child A"
    assert "no confirmed match yet" in page.inner_text("#d-matches")

    page.eval_on_selector_all("img", BLUR_FACES)
    page.wait_for_timeout(100)
    screenshot = Path(os.environ.get("MATCHER_REVIEW_SCREENSHOT") or tmp_path / "review.png")
    page.screenshot(path=str(screenshot))

    page.check("input[name=verdict][value=not_match]")
    page.fill("#d-note", "a different child")
    page.click("#decision button[type=submit]")
    row.wait_for(state="detached")
    page.wait_for_function(
        "() => document.getElementById('d-decision-status').textContent.startsWith('Recorded')")
    assert "now rejected" in page.inner_text("#d-decision-status")
    assert "a different child" in page.inner_text("#d-decisions")
    shown = page.eval_on_selector_all("#queue-body tr", "rows => rows.map(r => +r.dataset.id)")
    assert set(shown) == others

    # A filter goes to the API: elderly cases only leaves Person B's entry.
    page.select_option("#f-category", "elderly")
    page.click("#filters button[type=submit]")
    page.wait_for_function("() => document.querySelectorAll('#queue-body tr').length === 1")
    assert "Person B" in page.inner_text("#queue-body")

    # Gone from the queue for the API too, and in the audit trail under the investigator.
    assert {item["id"] for item in queue(api, inv)} == others
    trail = get(api, admin, "/v1/audit", object_type="candidate",
                object_id=str(target["id"]))["items"]
    decided = [e for e in trail if e["action"] == "decide"]
    assert len(decided) == 1 and decided[0]["actor"] == INVESTIGATOR
    assert decided[0]["role"] == "investigator"
    assert decided[0]["detail"]["verdict"] == "not_match"

    # The key stayed in this tab's sessionStorage: no URL, cookie or localStorage holds it.
    assert problems == []  # no CSP violation, no script error
    assert all(inv not in url for url in requested) and inv not in page.url
    assert page.evaluate("() => sessionStorage.getItem('matcher.review.key')") == inv
    assert page.evaluate("() => localStorage.length") == 0
    assert page.evaluate("() => document.cookie") == "" and context.cookies() == []
    # A picture asked for without the key (what an <img src> to the API would do) is refused.
    status = page.evaluate("url => fetch(url).then(r => r.status)", target["face_crop_url"])
    assert status == 401

    page.click("#logout")
    page.locator("#login").wait_for()
    assert page.evaluate("() => sessionStorage.length") == 0
    assert page.locator("#queue-body tr").count() == 0 and page.locator("#app").is_hidden()
    context.close()
    api.close()


def test_a_wrong_key_is_refused_and_forgotten(live_server: LiveServer, browser: Any) -> None:
    tip = new_key(live_server.matcher.sessions, Role.TIP_APP, "tip app")[1]
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(f"{live_server.url}/review")
    for key, says in (("mk_000000000000_wrong", "refused"), (tip, "investigator key")):
        page.fill("#login-key", key)
        page.click("#login-form button[type=submit]")
        page.wait_for_function(
            "() => document.getElementById('login-error').textContent !== ''")
        assert says in page.inner_text("#login-error")
        assert page.evaluate("() => sessionStorage.length") == 0
        assert page.locator("#app").is_hidden()
        page.evaluate("() => { document.getElementById('login-error').textContent = ''; }")
    page.close()

