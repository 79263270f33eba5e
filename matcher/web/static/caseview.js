// The case view: the case whole, in place of the lineup until "Back" (or Esc). Every photo with
// the age on it (click to zoom), where and when the person was seen (the confirmed sightings,
// oldest first: a list, no map), and the candidates over time, each opening its lineup.

import { failed, getJson, Pictures } from "./api.js";
import {
  $, button, el, facts, place, position, row, seenAt, STATUSES, strangers, when, years,
} from "./format.js";
import { drawBoxes } from "./zoom.js";

export function createCaseView({ onOpenLineup, onZoom, onClose }) {
  const pictures = new Pictures();
  let caseId = null;

  function photoNode(photo) {
    const li = el("li");
    const frame = el("div", null, "frame");
    const img = el("img");
    img.alt = `case photo ${photo.id}`;
    img.title = "Click to zoom";
    frame.append(img);
    drawBoxes(frame, photo.width, photo.height,
      photo.faces.map((face) => ({ box: face.box, kind: "case" })));
    pictures.show(img, photo.url);
    frame.addEventListener("click", () => {
      if (img.src && img.naturalWidth) {
        onZoom({
          src: img.src, width: photo.width, height: photo.height,
          title: `Case photo ${photo.id}, age ${years(photo.age)}`,
          boxes: photo.faces.map((face) => ({ box: face.box, kind: "case" })),
        });
      }
    });
    const dated = photo.taken_on ? ` · taken ${photo.taken_on}` : "";
    li.append(frame, el("span", `age ${years(photo.age)}${dated}`));
    return li;
  }

  function seenNode(event, person) {
    const li = el("li");
    const crop = el("img", null, "mini");
    crop.alt = "the sighting face";
    pictures.show(crop, event.face_crop_url);
    li.append(crop, el("span", `${seenAt(event.sighting)} · ${place(event.sighting, person)} · `
      + `age ${years(event.age_at_sighting)} · sighting #${event.sighting.id} · confirmed by `
      + `${event.reviewed_by || "?"}`));
    return li;
  }

  function render(view) {
    const person = view.case;
    $("c-title").textContent = `Case #${person.id}: ${person.name}`;
    facts($("c-facts"), [
      ["Category", person.category],
      ["Status", person.status],
      ["Sex", person.sex],
      ["Date of birth", person.date_of_birth],
      ["Age when missing", years(person.age_when_missing)],
      ["Age now", years(view.age_now)],
      ["Missing since", person.missing_since],
      ["Last seen", `${person.last_seen_place || "place unknown"}, `
        + `${position(person.last_seen_lat, person.last_seen_lon)}`
        + (person.last_seen_at ? `, ${when(person.last_seen_at)}` : "")],
      ["Description", view.description || "—"],
    ]);
    $("c-photos").replaceChildren(...view.photos.map(photoNode));
    const seen = $("c-seen");
    seen.replaceChildren(el("li", `Last seen: ${person.last_seen_place || "place unknown"}, `
      + `${position(person.last_seen_lat, person.last_seen_lon)}, `
      + (person.last_seen_at ? when(person.last_seen_at) : `missing since ${person.missing_since}`),
    "last-seen"));
    seen.append(...view.seen.map((event) => seenNode(event, person)));
    if (!view.seen.length) {
      seen.append(el("li", "No confirmed sighting yet.", "muted"));
    }
    const history = $("c-history");
    history.replaceChildren(...view.history.map((event) => {
      const tr = row([
        seenAt(event.sighting), place(event.sighting, person), years(event.age_at_sighting),
        `${event.distance.toFixed(3)}${event.under_threshold ? "" : " (near miss)"}`,
        strangers(event.false_match_rate),
        `${STATUSES[event.status] || event.status}${event.reviewed_by
          ? ` (${event.reviewed_by})` : ""}`,
        button("Lineup", "link", () => onOpenLineup(event.sighting_face_id, event.candidate_id)),
      ]);
      tr.dataset.status = event.status;
      return tr;
    }));
    if (!view.history.length) {
      history.append(row(["no candidate yet", "", "", "", "", "", ""]));
    }
    $("c-status").textContent = view.more ? "Only the newest 200 candidates are listed." : "";
  }

  async function open(id) {
    caseId = id;
    const status = $("c-status");
    status.classList.remove("error");
    try {
      const view = await getJson(`/v1/review/cases/${encodeURIComponent(id)}`);
      if (caseId !== id) {
        return;
      }
      pictures.release();
      render(view);
      $("lineup-view").hidden = true;
      $("desk-empty").hidden = true;
      $("case-view").hidden = false;
      $("c-back").focus();
    } catch (error) {
      failed(error, status);
    }
  }

  function close() {
    caseId = null;
    pictures.release();
    $("case-view").hidden = true;
    onClose();
  }

  $("c-back").addEventListener("click", close);

  return { open, close, isOpen: () => !$("case-view").hidden };
}
