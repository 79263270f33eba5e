// The review queue: its sort and filters, the entries loaded so far, and which one is open.
// Opening an entry, or stepping to the next or previous one, hands it to `onOpen`.

import { failed, getJson } from "./api.js";
import { $, el, gap, place, seenAt, STATUSES, strangers } from "./format.js";

const PAGE_SIZE = 50;
const YEAR_MS = 365.2425 * 24 * 3600 * 1000;

function params(sort) {
  const query = new URLSearchParams();
  for (const status of $("f-status").value.split(",")) {
    query.append("status", status);
  }
  const caseId = $("f-case").value.trim();
  if (caseId) {
    query.set("case_id", caseId);
  }
  if ($("f-category").value) {
    query.set("category", $("f-category").value);
  }
  const since = $("f-since").value;
  const until = $("f-until").value;
  if (since || until) {
    query.set("time_field", $("f-time-field").value);
  }
  if (since) {
    query.set("since", `${since}T00:00:00Z`);
  }
  if (until) {
    // "to" is inclusive on the page; the API's `until` is exclusive.
    const next = new Date(`${until}T00:00:00Z`);
    next.setUTCDate(next.getUTCDate() + 1);
    query.set("until", next.toISOString());
  }
  if ($("f-reported").checked) {
    // The sightings whose sender answered the case's alert, under the threshold or not.
    query.set("reported_for_alert", "true");
  }
  query.set("sort", sort);
  query.set("limit", String(PAGE_SIZE));
  return query;
}

function missingFor(person) {
  const since = new Date(`${person.missing_since}T00:00:00Z`);
  return `missing ${((Date.now() - since.getTime()) / YEAR_MS).toFixed(1)} yrs`;
}

export function createQueue({ onOpen, onEmpty }) {
  const state = { items: [], cursor: null, openId: null };

  function shownStatuses() {
    return $("f-status").value.split(",");
  }

  function entryNode(item) {
    const li = el("li");
    li.dataset.id = String(item.id);
    const open = el("button", null, "entry");
    open.type = "button";
    const figure = item.false_match_rate === null
      ? `distance ${item.distance.toFixed(3)}` : strangers(item.false_match_rate);
    const head = el("span", null, "entry-head");
    head.append(el("b", item.case.name), el("span", ` #${item.case.id} · ${item.case.category}`,
      "muted"), el("span", figure, "figure"));
    const seen = (item.seen_count ? ` · seen ${item.seen_count + 1}×` : "")
      + (item.reported_for_alert ? " · answered the alert" : "");
    open.append(
      head,
      el("span", `${seenAt(item.sighting)} · ${place(item.sighting, item.case)}`, "entry-line"),
      el("span", `${missingFor(item.case)} · age gap ${gap(item.age_gap_years)}${seen}`
        + (item.status === "pending" ? "" : ` · ${STATUSES[item.status] || item.status}`),
      "entry-line muted"),
    );
    open.addEventListener("click", () => openEntry(item.id));
    li.append(open);
    if (item.id === state.openId) {
      li.classList.add("open");
      li.setAttribute("aria-current", "true");
    }
    return li;
  }

  function render() {
    $("queue-list").replaceChildren(...state.items.map(entryNode));
    const count = state.items.length;
    $("queue-status").textContent = count
      ? `${count} entr${count === 1 ? "y" : "ies"}${state.cursor ? ", more below" : ""}`
      : "Nothing to review with these filters.";
    $("queue-more").hidden = !state.cursor;
    const current = document.querySelector("#queue-list li.open");
    if (current) {
      current.scrollIntoView({ block: "nearest" });
    }
  }

  async function load(more) {
    const status = $("queue-status");
    status.classList.remove("error");
    status.textContent = "Loading…";
    const query = params($("q-sort").value);
    if (more && state.cursor) {
      query.set("cursor", state.cursor);
    }
    try {
      const page = await getJson("/v1/review/queue", query);
      state.items = more ? state.items.concat(page.items) : page.items;
      state.cursor = page.next_cursor;
      render();
    } catch (error) {
      failed(error, status);
    }
  }

  function openEntry(id) {
    const item = state.items.find((entry) => entry.id === id);
    if (!item) {
      return;
    }
    state.openId = id;
    render();
    onOpen(item);
  }

  function indexOfOpen() {
    return state.items.findIndex((item) => item.id === state.openId);
  }

  async function step(delta) {
    let at = indexOfOpen() + delta;
    if (indexOfOpen() < 0) {
      at = 0;
    }
    if (at >= state.items.length && state.cursor) {
      await load(true);
    }
    if (at >= 0 && at < state.items.length) {
      openEntry(state.items[at].id);
    }
  }

  // After a decision on the open entry: it leaves the list unless the status filter still
  // shows it, and the entry that followed it opens.
  async function decided(candidateId, status) {
    const at = state.items.findIndex((item) => item.id === candidateId);
    if (at < 0) {
      return;
    }
    if (shownStatuses().includes(status)) {
      state.items[at].status = status;
      state.openId = candidateId;
      await step(1);
      return;
    }
    state.items.splice(at, 1);
    if (at >= state.items.length && state.cursor) {
      await load(true);
    }
    if (at < state.items.length) {
      openEntry(state.items[at].id);
    } else {
      state.openId = null;
      render();
      onEmpty();
    }
  }

  return {
    load,
    openEntry,
    next: () => step(1),
    previous: () => step(-1),
    decided,
    openId: () => state.openId,
    clearOpen: () => {
      state.openId = null;
      render();
    },
  };
}
