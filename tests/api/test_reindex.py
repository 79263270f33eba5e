"""Reindexing a live service: clients keep working, the model changes, decisions survive."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

from fastapi.testclient import TestClient

from matcher.service.serving import recorded_model
from matcher.store import Role
from tests.api.builders import marked
from tests.api.conftest import auth, matcher_of
from tests.api.review_helpers import (
    add_photo,
    build_world,
    decide,
    entry_of,
    fgnet,
    get,
    pairs,
    queue,
)

FLIP = "dlib-resnet-v1-flip"


def _keep_busy(client: TestClient, keys: dict[Role, str], world: dict[str, Any],
               stop: threading.Event, failures: list[str], done: list[int]) -> None:
    """A tip app and an investigator at work: uploads and candidate reads, nonstop."""
    photo = fgnet("001A14.JPG").path.read_bytes()
    for n in itertools.count():  # other photos each time: the same one is one sighting
        if stop.is_set():
            break
        sent = client.post("/v1/sightings", files={"photo": ("s.jpg", marked(photo, n),
                                                             "image/jpeg")},
                           headers=auth(keys[Role.TIP_APP]))
        read = client.get(f"/v1/sightings/{world['s'][1]}/candidates",
                          headers=auth(keys[Role.INVESTIGATOR]))
        for response in (sent, read):
            if response.status_code >= 300:
                failures.append(f"{response.request.url}: {response.status_code} {response.text}")
        if sent.status_code == 201:
            done.append(int(sent.json()["id"]))


def test_a_live_reindex_swaps_the_model_and_keeps_every_decision(
    client: TestClient, keys: dict[Role, str]
) -> None:
    world = build_world(client, keys)
    investigator, admin = keys[Role.INVESTIGATOR], auth(keys[Role.ADMIN])
    before = matcher_of(client).model_id
    rejected = entry_of(queue(client, investigator), world["s"][1], world["a"])
    decide(client, investigator, rejected["id"], "not_match", "sibling")

    stop, failures, uploaded = threading.Event(), [], []
    busy = threading.Thread(target=_keep_busy,
                            args=(client, keys, world, stop, failures, uploaded))
    busy.start()
    try:
        started = client.post("/v1/admin/reindex", json={"embed_flip": True}, headers=admin)
        assert started.status_code == 202, started.text
        again = client.post("/v1/admin/reindex", json={"embed_flip": True}, headers=admin)
        assert again.status_code == 409 and again.json()["error"] == "reindex_refused"
        deadline = time.monotonic() + 300
        while (state := client.get("/v1/admin/reindex", headers=admin).json())["running"]:
            assert time.monotonic() < deadline, state
            time.sleep(0.2)
    finally:
        stop.set()
        busy.join()
    assert failures == [] and len(uploaded) >= 2
    assert state["error"] is None, state
    report = state["report"]
    assert report["swapped"] and report["from_model"] == before and report["to_model"] == FLIP
    assert report["shadow"]["sampled"] >= 1 and report["faces_not_found"] == 0
    assert client.get("/healthz").json()["model_id"] == FLIP

    # Every sighting, those uploaded during the job included, is searchable under the new
    # model: a new one finds child A first, with candidates of the new model.
    matcher = matcher_of(client)
    assert len(matcher.sighting_index) == 4 + len(uploaded)
    # A new photo of a picture the world holds already (that very photo is its sighting).
    new = client.post("/v1/sightings", files={"photo": ("s.jpg", marked(
        fgnet("001A10.JPG"), 1000), "image/jpeg")}, headers=auth(keys[Role.TIP_APP])).json()["id"]
    found = get(client, investigator, f"/v1/sightings/{new}/candidates")
    assert found[0]["case_id"] == world["a"] and found[0]["model_id"] == FLIP
    # The decision stands, and the rejected pair did not come back under the new model.
    entry = get(client, investigator, f"/v1/review/candidates/{rejected['id']}")
    assert entry["status"] == "rejected" and [d["verdict"] for d in entry["decisions"]] == [
        "not_match"]
    assert (world["s"][1], world["a"]) not in {
        (i["sighting"]["id"], i["case"]["id"]) for i in queue(client, investigator)}


def test_a_dry_run_counts_and_changes_nothing(client: TestClient, keys: dict[Role, str]) -> None:
    build_world(client, keys)
    admin = auth(keys[Role.ADMIN])
    started = client.post("/v1/admin/reindex", json={"embed_flip": True, "dry_run": True},
                          headers=admin)
    assert started.status_code == 202
    while (state := client.get("/v1/admin/reindex", headers=admin).json())["running"]:
        time.sleep(0.1)
    assert state["report"]["faces_to_embed"] == 6 and not state["report"]["swapped"]
    assert client.get("/healthz").json()["model_id"] != FLIP
    same = client.post("/v1/admin/reindex", json={}, headers=admin)
    assert same.status_code == 202  # accepted, then refused by the job: nothing to change
    while (state := client.get("/v1/admin/reindex", headers=admin).json())["running"]:
        time.sleep(0.1)
    assert "already runs" in state["error"]
    assert client.post("/v1/admin/reindex", json={"embedder": "nope"},
                       headers=admin).status_code == 422
    assert client.get("/v1/admin/reindex",
                      headers=auth(keys[Role.INVESTIGATOR])).status_code == 403


def test_a_target_the_settings_refuse_is_a_422_before_any_job(
    client: TestClient, keys: dict[Role, str]
) -> None:
    """Both were accepted with 202, swapped (or failed later with an ERROR traceback), and the
    weight was recorded as the model to serve: the next `matcher serve` exited 3 (issue 19,
    10)."""
    admin = auth(keys[Role.ADMIN])
    for body, field, told in (
            ({"embedder": "dlib+sface", "embed_flip": False, "ensemble_sface_weight": 0.333},
             ["body", "ensemble_sface_weight"], "two decimals"),
            ({"embedder": "sface", "detector": "mmod"}, ["body"], "needs detector 'yunet'")):
        refused = client.post("/v1/admin/reindex", json=body, headers=admin)
        assert refused.status_code == 422, refused.text
        [error] = refused.json()["detail"]
        assert error["loc"] == field and told in error["msg"], error
    state = client.get("/v1/admin/reindex", headers=admin).json()
    assert not state["running"] and state["report"] is None and state["error"] is None
    assert recorded_model(matcher_of(client).settings) is None
    # Two decimals are a weight the settings take.
    assert client.post("/v1/admin/reindex", json={
        "embedder": "dlib+sface", "ensemble_sface_weight": 0.35, "dry_run": True},
        headers=admin).status_code == 202
    while (state := client.get("/v1/admin/reindex", headers=admin).json())["running"]:
        time.sleep(0.1)
    assert state["error"] is None and "w0.35" in state["report"]["to_model"], state


def test_a_live_reindex_takes_the_shipped_distance_by_name_never_a_path(
    client: TestClient, keys: dict[Role, str]
) -> None:
    """A path on the server's machine is not something a request may point the model at."""
    admin = auth(keys[Role.ADMIN])
    for value in ("/etc/passwd", "../projection.npz", "data/projections/x.npz"):
        refused = client.post("/v1/admin/reindex", json={"projection_file": value},
                              headers=admin)
        assert refused.status_code == 422, refused.text
        assert "projection_file" in refused.text
    dry = client.post("/v1/admin/reindex", json={"projection_file": "none", "dry_run": True},
                      headers=admin)
    assert dry.status_code == 202, dry.text


def test_a_pair_found_by_two_models_is_one_queue_entry(
    client: TestClient, keys: dict[Role, str]
) -> None:
    """After a reindex, a reopened case was searched again by the new model, which proposed
    again the pairs the old model's rows held open: each appeared twice in the queue (issue
    19, item 15)."""
    world = build_world(client, keys)
    manager, investigator, admin = (keys[Role.CASE_MANAGER], keys[Role.INVESTIGATOR],
                                    auth(keys[Role.ADMIN]))
    held = entry_of(queue(client, investigator), world["s"][1], world["a"])
    decide(client, investigator, held["id"], "needs_info", "ask the caller")
    before = pairs(queue(client, investigator))
    assert (world["s"][2], world["a"]) in before  # a pending pair the new model will find
    assert client.post("/v1/admin/reindex", json={"embed_flip": True},
                       headers=admin).status_code == 202
    while (state := client.get("/v1/admin/reindex", headers=admin).json())["running"]:
        time.sleep(0.1)
    assert state["error"] is None and state["report"]["to_model"] == FLIP, state
    for status in ("closed", "active"):  # reopening searches every sighting again
        changed = client.patch(f"/v1/cases/{world['a']}", json={"status": status},
                               headers=auth(manager))
        assert changed.status_code == 200, changed.text
    add_photo(client, manager, world["a"], "001A14.JPG")  # and so does a new photo
    after = queue(client, investigator)
    assert len(pairs(after)) == len(set(pairs(after))), pairs(after)
    assert set(pairs(after)) == set(before)
    still = get(client, investigator, f"/v1/review/candidates/{held['id']}")
    assert still["status"] == "needs_info"
    held_back = pairs(queue(client, investigator, status="needs_info"))
    assert held_back == [(world["s"][1], world["a"])]
