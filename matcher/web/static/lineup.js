// The lineup of one sighting face: the whole sighting (photo with every face boxed, the
// reporter's note) above the sighting face and, side by side, every case it was compared with,
// each with its closest face and photo, the ages, the distance and what it means, and a
// decision. Near misses above the threshold come on request, marked as such.

import { ApiError, failed, getJson, Pictures, postJson } from "./api.js";
import {
  $, button, el, facts, gap, perSearch, position, seenAt, STATUSES, strangers,
  VERDICTS, when, years,
} from "./format.js";
import { drawBoxes } from "./zoom.js";

function plural(count, one, many) {
  return `${count} ${count === 1 ? one : many}`;
}

export function createLineup({ onDecided, onOpenCase, onZoom, onOpenFace }) {
  const pictures = new Pictures();
  const state = {
    data: null, // the LineupPublic shown
    faceId: null,
    entryId: null, // the queue entry's candidate, when the lineup was opened from the queue
    selected: 0, // index into data.cards
    nearMisses: false, // listed?
    pending: null, // {verdict, candidateId}: a decision waiting for its note
    photoUrl: null, // the sighting photo's blob: URL, for the zoom
  };

  function status(text, isError) {
    const node = $("d-status");
    node.textContent = text;
    node.classList.toggle("error", Boolean(isError));
  }

  function selectedCard() {
    return state.data && state.data.cards[state.selected];
  }

  // --- the sighting ---------------------------------------------------------------------------

  function renderSighting(data) {
    const sighting = data.sighting;
    const faces = sighting.faces;
    $("s-title").textContent = `Sighting #${sighting.id}`;
    facts($("s-facts"), [
      ["Seen", seenAt(sighting)],
      ["Uploaded", when(sighting.uploaded_at)],
      ["Place", position(sighting.lat, sighting.lon)],
      ["Faces", faces.length > 1 ? `${faces.length} found; the one searched is boxed in yellow`
        : "1 found"],
      ["Photo", `${sighting.width} × ${sighting.height} px`],
    ]);
    $("s-note").textContent = sighting.note || "No note.";
    $("s-note").classList.toggle("muted", !sighting.note);
    const boxes = drawBoxes($("s-frame"), sighting.width, sighting.height, faces.map((face) => ({
      box: face.box,
      kind: face.id === data.face_id ? "searched" : (face.fit ? "other" : "other unfit"),
      title: face.id === data.face_id ? "the face searched"
        : (face.fit ? "another face: click for its lineup"
          : `not searched: ${face.unfit_reasons.join(", ")}`),
    })));
    faces.forEach((face, i) => {
      if (face.id !== data.face_id && face.fit) {
        boxes[i].addEventListener("click", (event) => {
          event.stopPropagation();
          onOpenFace(face.id);
        });
      }
    });
  }

  function zoomPhoto() {
    if (!state.data || !state.photoUrl) {
      return;
    }
    const sighting = state.data.sighting;
    onZoom({
      src: state.photoUrl,
      width: sighting.width,
      height: sighting.height,
      title: `Sighting #${sighting.id}, ${sighting.width} × ${sighting.height} px`,
      boxes: sighting.faces.map((face) => ({
        box: face.box, kind: face.id === state.data.face_id ? "searched" : "other",
      })),
      focus: (sighting.faces.find((face) => face.id === state.data.face_id) || {}).box,
    });
  }

  // --- the cards ------------------------------------------------------------------------------

  // The case photo the face comes from, with that face boxed once the picture's size is known.
  function caseFigure(card) {
    const figure = el("figure", null, "case-photo");
    const frame = el("div", null, "frame");
    const img = el("img");
    img.alt = `a photo of ${card.case.name}`;
    img.title = "Click to zoom";
    img.addEventListener("load", () => drawBoxes(frame, img.naturalWidth, img.naturalHeight,
      [{ box: card.case_face_box, kind: "searched" }]));
    pictures.show(img, card.case_photo_url);
    frame.append(img);
    frame.addEventListener("click", (event) => {
      event.stopPropagation();
      if (img.src && img.naturalWidth) {
        onZoom({
          src: img.src, width: img.naturalWidth, height: img.naturalHeight,
          title: `${card.case.name}: case photo, age ${years(card.ages.at_photo)}`,
          boxes: [{ box: card.case_face_box, kind: "searched" }], focus: card.case_face_box,
        });
      }
    });
    figure.append(frame, el("figcaption", `photo, age ${years(card.ages.at_photo)}`));
    return figure;
  }

  function verdictButtons(card) {
    const box = el("div", null, "verdicts");
    for (const [verdict, label, keyName] of [["match", "Match", "M"],
      ["not_match", "Not the same", "N"], ["needs_info", "Needs info", "I"],
      ["inconclusive", "Inconclusive", "U"]]) {
      const node = button(`${label} (${keyName})`, `verdict ${verdict}`, (event) => {
        event.stopPropagation();
        select(state.data.cards.indexOf(card));
        decide(verdict);
      });
      node.dataset.verdict = verdict;
      box.append(node);
    }
    return box;
  }

  // The ages side by side: on the case photo, on the sighting, now, and the years between the
  // two photos (what the face aged).
  function agesNode(ages) {
    const box = el("div", null, "ages");
    box.title = "years: from the date of birth, else the age when missing plus the time since";
    for (const [value, label] of [[years(ages.at_photo), "on photo"],
      [years(ages.at_sighting), "when seen"], [years(ages.now), "now"],
      [gap(ages.gap).replace(" yrs", ""), "photo gap"]]) {
      const cell = el("span");
      cell.append(el("b", value), el("small", label));
      box.append(cell);
    }
    return box;
  }

  function cardNode(card, index) {
    const li = el("li", null, "card");
    li.dataset.candidate = String(card.candidate_id);
    li.dataset.status = card.status;
    li.setAttribute("role", "option");
    li.classList.toggle("near", !card.under_threshold);
    const head = el("header");
    head.append(el("b", card.case.name),
      el("span", ` #${card.case.id} · ${card.case.category}`, "muted"),
      button("Case view (C)", "link case-link", (event) => {
        event.stopPropagation();
        onOpenCase(card.case.id);
      }));
    if (!card.under_threshold) {
      head.append(el("span", "near miss: above the threshold", "badge near-badge"));
    }
    const faces = el("div", null, "faces");
    const crop = el("img", null, "crop");
    crop.alt = `the face of ${card.case.name}`;
    pictures.show(crop, card.case_face_crop_url);
    faces.append(crop, caseFigure(card));
    const latest = card.decisions[card.decisions.length - 1];
    const list = el("dl", null, "facts card-facts");
    facts(list, [
      ["Distance", `${card.distance.toFixed(3)} (threshold ${card.threshold.toFixed(3)})`],
      ["Strangers as close", `${strangers(card.false_match_rate)} (`
        + `${perSearch(card.expected_false_per_search)} false per search)`],
      ["Missing since", `${card.case.missing_since} · last seen `
        + (card.case.last_seen_place || position(card.case.last_seen_lat,
          card.case.last_seen_lon))],
      ["Status", latest ? `${STATUSES[card.status] || card.status} (${latest.reviewer}, `
        + `${when(latest.created_at)}${latest.note ? `: “${latest.note}”` : ""})`
        : STATUSES[card.status] || card.status],
    ]);
    li.append(head, faces, agesNode(card.ages), list, verdictButtons(card));
    li.addEventListener("click", () => select(index));
    return li;
  }

  function renderCards() {
    const data = state.data;
    const cards = $("l-cards");
    cards.replaceChildren(...data.cards.map(cardNode));
    const under = data.cards.filter((card) => card.under_threshold).length;
    $("l-title").textContent = `Cases compared with this face: ${under} under the threshold`
      + (state.nearMisses ? `, ${plural(data.cards.length - under, "near miss", "near misses")}`
        : "");
    const near = $("l-near");
    near.hidden = !state.nearMisses && data.near_misses === 0;
    near.textContent = state.nearMisses ? "Hide near misses"
      : `Show ${plural(data.near_misses, "near miss", "near misses")} (above the threshold)`;
    if (!data.cards.length) {
      cards.append(el("li", "No case under the threshold for this face.", "muted empty"));
    }
    select(Math.min(state.selected, Math.max(0, data.cards.length - 1)), false);
  }

  function select(index, scroll = true) {
    if (!state.data || !state.data.cards.length) {
      return;
    }
    state.selected = Math.max(0, Math.min(index, state.data.cards.length - 1));
    const nodes = $("l-cards").querySelectorAll(".card");
    nodes.forEach((node, i) => {
      node.classList.toggle("selected", i === state.selected);
      node.setAttribute("aria-selected", i === state.selected ? "true" : "false");
    });
    if (scroll && nodes[state.selected]) {
      nodes[state.selected].scrollIntoView({ block: "nearest", inline: "nearest" });
    }
  }

  // --- opening --------------------------------------------------------------------------------

  // Shows the lineup of `faceId`; `entryId` selects that candidate's card (the queue entry).
  async function open(faceId, entryId, options = {}) {
    const sameFace = faceId === state.faceId;
    if (!sameFace) {
      state.nearMisses = false;
    }
    state.faceId = faceId;
    state.entryId = entryId;
    state.pending = null;
    if (!options.keepStatus) {
      status("");
    }
    const query = new URLSearchParams(state.nearMisses ? { near_misses: "true" } : {});
    let data;
    try {
      data = await getJson(`/v1/review/lineup/${encodeURIComponent(faceId)}`, query);
    } catch (error) {
      failed(error, $("d-status"));
      return;
    }
    if (faceId !== state.faceId) {
      return; // another lineup was opened meanwhile
    }
    pictures.release();
    state.data = data;
    const wanted = options.select ?? entryId;
    const at = data.cards.findIndex((card) => card.candidate_id === wanted);
    state.selected = at >= 0 ? at : 0;
    $("desk-empty").hidden = true;
    $("lineup-view").hidden = false;
    renderSighting(data);
    renderCards();
    pictures.show($("l-probe"), data.face_crop_url);
    $("l-probe-when").textContent = seenAt(data.sighting);
    state.photoUrl = null;
    if (await pictures.show($("s-photo"), data.sighting.photo_url)) {
      state.photoUrl = $("s-photo").src;
    }
  }

  function refresh(select) {
    return state.faceId === null ? Promise.resolve()
      : open(state.faceId, state.entryId, { keepStatus: true, select });
  }

  function toggleNearMisses() {
    state.nearMisses = !state.nearMisses;
    const card = selectedCard();
    return refresh(card ? card.candidate_id : undefined);
  }

  // --- deciding -------------------------------------------------------------------------------

  function askForNote(card, verdict, latest) {
    state.pending = { verdict, candidateId: card.candidate_id };
    const before = latest ? `${latest.reviewer}'s decision (${VERDICTS[latest.verdict]})`
      : "the decision";
    status(`This changes ${before} on ${card.case.name} to ${VERDICTS[verdict]}: write why `
      + "in the note, then press Enter.", true);
    $("d-note").focus();
  }

  async function decide(verdict) {
    const card = selectedCard();
    if (!card) {
      return;
    }
    const note = $("d-note").value;
    const latest = card.decisions[card.decisions.length - 1];
    if (latest && latest.verdict !== verdict && !note.trim()) {
      askForNote(card, verdict, latest);
      return;
    }
    state.pending = null;
    status(`Recording ${VERDICTS[verdict]} for ${card.case.name}…`);
    let receipt;
    try {
      receipt = await postJson(
        `/v1/review/candidates/${encodeURIComponent(card.candidate_id)}/decision`,
        { verdict, note });
    } catch (error) {
      if (error instanceof ApiError && error.code === "note_required") {
        askForNote(card, verdict, latest);
        return;
      }
      failed(error, $("d-status"));
      return;
    }
    $("d-note").value = "";
    if (document.activeElement === $("d-note")) {
      $("d-note").blur(); // back to the shortcuts
    }
    const told = `Recorded: ${VERDICTS[receipt.decision.verdict]} for ${card.case.name} `
      + `(candidate ${card.candidate_id}, now ${STATUSES[receipt.candidate_status]}).`;
    await onDecided(card.candidate_id, receipt, state.entryId);
    status(told);
  }

  $("l-near").addEventListener("click", toggleNearMisses);
  $("s-frame").addEventListener("click", zoomPhoto);
  $("decision").addEventListener("submit", (event) => event.preventDefault());
  $("d-note").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && state.pending) {
      event.preventDefault();
      const at = state.data.cards.findIndex((c) => c.candidate_id === state.pending.candidateId);
      if (at >= 0) {
        select(at);
        decide(state.pending.verdict);
      }
    } else if (event.key === "Escape") {
      state.pending = null;
      $("d-note").blur();
    }
  });

  return {
    open,
    refresh,
    decide,
    zoom: zoomPhoto,
    next: () => select(state.selected + 1),
    previous: () => select(state.selected - 1),
    selectedCaseId: () => (selectedCard() ? selectedCard().case.id : null),
    faceId: () => state.faceId,
    hide: () => {
      $("lineup-view").hidden = true;
    },
    show: () => {
      $("lineup-view").hidden = state.data === null;
    },
    clear: () => {
      pictures.release();
      state.data = null;
      state.faceId = null;
      $("lineup-view").hidden = true;
      $("desk-empty").hidden = false;
    },
  };
}
