// The review page: everything it shows comes from the keyed JSON API.
//
// - The key lives in this tab's sessionStorage only: never in a URL, a cookie or localStorage.
//   It travels as `Authorization: Bearer` on same-origin fetches (credentials: "omit").
// - Pictures are fetched with the key and shown through blob: URLs (an <img src> pointing at
//   the API would go without the key and get a 401).
// - Text from the API is only ever set with textContent, never parsed as HTML.
"use strict";

(() => {
  const STORAGE_KEY = "matcher.review.key";
  const PAGE_SIZE = 50;
  const API_PREFIX = "/v1/";

  const $ = (id) => document.getElementById(id);

  const state = {
    items: [], // the queue entries shown, closest first
    cursor: null, // next_cursor of the last page loaded
    openId: null, // the candidate open in the detail pane
    openCaseId: null,
    generation: 0, // bumped on every open: late answers for an older entry are dropped
    objectUrls: [], // blob: URLs of the pictures shown, revoked when they go
  };

  class AuthError extends Error {}
  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  // --- the key -------------------------------------------------------------------------------

  function key() {
    return sessionStorage.getItem(STORAGE_KEY);
  }

  function logout(message) {
    sessionStorage.clear();
    releasePictures();
    // A fresh document: no entry, picture or blob: URL of this session survives in memory.
    if (message) {
      sessionStorage.setItem("matcher.review.message", message);
    }
    window.location.replace("/review");
  }

  // --- the API -------------------------------------------------------------------------------

  async function api(path, options = {}) {
    // Only the API's own relative paths ever get the key.
    if (typeof path !== "string" || !path.startsWith(API_PREFIX)) {
      throw new ApiError(0, "refused to send the key to " + String(path));
    }
    const current = key();
    if (!current) {
      throw new AuthError("not logged in");
    }
    const headers = new Headers(options.headers || {});
    headers.set("Authorization", "Bearer " + current);
    const response = await fetch(path, {
      ...options,
      headers,
      credentials: "omit",
      cache: "no-store",
      referrerPolicy: "no-referrer",
    });
    if (response.status === 401) {
      throw new AuthError("the key was refused (wrong or revoked)");
    }
    if (!response.ok) {
      let detail = response.statusText;
      try {
        const body = await response.json();
        detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
      } catch (_) {
        // not JSON: keep the status text
      }
      throw new ApiError(response.status, `${response.status}: ${detail}`);
    }
    return response;
  }

  async function getJson(path, params) {
    const query = params ? "?" + params.toString() : "";
    return (await api(path + query)).json();
  }

  // Every failure goes through here: a refused key logs out, anything else is shown.
  function failed(error, where) {
    if (error instanceof AuthError) {
      logout(error.message);
      return;
    }
    where.textContent = error instanceof Error ? error.message : String(error);
    where.classList.add("error");
  }

  // --- building DOM without HTML ---------------------------------------------------------------

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) {
      node.textContent = String(text);
    }
    if (className) {
      node.className = className;
    }
    return node;
  }

  function row(cells) {
    const tr = document.createElement("tr");
    for (const cell of cells) {
      tr.append(cell instanceof Node ? wrapCell(cell) : el("td", cell));
    }
    return tr;
  }

  function wrapCell(node) {
    const td = document.createElement("td");
    td.append(node);
    return td;
  }

  function facts(dl, pairs) {
    dl.replaceChildren();
    for (const [name, value] of pairs) {
      dl.append(el("dt", name), el("dd", value === null || value === undefined ? "—" : value));
    }
  }

  // --- formatting ------------------------------------------------------------------------------

  function when(iso) {
    if (!iso) {
      return "—";
    }
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) {
      return String(iso);
    }
    return date.toISOString().slice(0, 16).replace("T", " ") + " UTC";
  }

  function seenAt(sighting) {
    return sighting.taken_at ? when(sighting.taken_at) : `uploaded ${when(sighting.uploaded_at)}`;
  }

  function position(lat, lon) {
    if (lat === null || lat === undefined || lon === null || lon === undefined) {
      return "no position";
    }
    return `${Number(lat).toFixed(4)}, ${Number(lon).toFixed(4)}`;
  }

  function kmBetween(lat1, lon1, lat2, lon2) {
    const rad = Math.PI / 180;
    const a = Math.sin(((lat2 - lat1) * rad) / 2) ** 2
      + Math.cos(lat1 * rad) * Math.cos(lat2 * rad) * Math.sin(((lon2 - lon1) * rad) / 2) ** 2;
    return 2 * 6371.0088 * Math.asin(Math.sqrt(a));
  }

  function place(sighting, caseInfo) {
    const where = position(sighting.lat, sighting.lon);
    if (where === "no position" || !caseInfo || caseInfo.last_seen_lat === null
        || caseInfo.last_seen_lon === null) {
      return where;
    }
    const km = kmBetween(caseInfo.last_seen_lat, caseInfo.last_seen_lon, sighting.lat, sighting.lon);
    return `${where} (${km < 10 ? km.toFixed(1) : Math.round(km)} km from last seen)`;
  }

  function years(value) {
    return value === null || value === undefined ? "unknown" : `${Number(value).toFixed(1)} yrs`;
  }

  const VERDICTS = { match: "match", not_match: "not a match", needs_info: "needs info" };

  // --- pictures --------------------------------------------------------------------------------

  function releasePictures() {
    for (const url of state.objectUrls) {
      URL.revokeObjectURL(url);
    }
    state.objectUrls = [];
  }

  async function showPicture(img, path, generation) {
    img.removeAttribute("src");
    img.classList.remove("missing");
    if (!path) {
      img.alt = "no picture";
      img.classList.add("missing");
      return;
    }
    try {
      const blob = await (await api(path)).blob();
      if (generation !== state.generation) {
        return; // another entry was opened meanwhile
      }
      const url = URL.createObjectURL(blob);
      state.objectUrls.push(url);
      img.src = url;
    } catch (error) {
      if (error instanceof AuthError) {
        failed(error, $("d-decision-status"));
        return;
      }
      img.alt = "picture not available";
      img.classList.add("missing");
    }
  }

  // --- the queue -------------------------------------------------------------------------------

  function queueParams() {
    const params = new URLSearchParams();
    for (const status of $("f-status").value.split(",")) {
      params.append("status", status);
    }
    const caseId = $("f-case").value.trim();
    if (caseId) {
      params.set("case_id", caseId);
    }
    if ($("f-category").value) {
      params.set("category", $("f-category").value);
    }
    const since = $("f-since").value;
    const until = $("f-until").value;
    if (since || until) {
      params.set("time_field", $("f-time-field").value);
    }
    if (since) {
      params.set("since", `${since}T00:00:00Z`);
    }
    if (until) {
      // "to" is inclusive on the page; the API's `until` is exclusive.
      const next = new Date(`${until}T00:00:00Z`);
      next.setUTCDate(next.getUTCDate() + 1);
      params.set("until", next.toISOString());
    }
    params.set("limit", String(PAGE_SIZE));
    return params;
  }

  async function loadQueue(more) {
    const status = $("queue-status");
    status.classList.remove("error");
    status.textContent = "Loading…";
    const params = queueParams();
    if (more && state.cursor) {
      params.set("cursor", state.cursor);
    }
    try {
      const page = await getJson("/v1/review/queue", params);
      state.items = more ? state.items.concat(page.items) : page.items;
      state.cursor = page.next_cursor;
      renderQueue();
    } catch (error) {
      failed(error, status);
      throw error;
    }
  }

  function renderQueue() {
    const body = $("queue-body");
    body.replaceChildren();
    for (const item of state.items) {
      const open = el("button", item.distance.toFixed(3), "link");
      open.type = "button";
      open.title = "Open this entry";
      const tr = row([
        open,
        String(item.rank),
        seenAt(item.sighting),
        place(item.sighting, item.case),
        `${item.case.name} (#${item.case.id}, ${item.case.category})`,
        years(item.age_gap_years),
        item.seen_count ? `${item.seen_count + 1}×` : "once",
      ]);
      tr.dataset.id = String(item.id);
      if (item.id === state.openId) {
        tr.classList.add("open");
      }
      if (item.status !== "pending") {
        tr.classList.add("parked");
      }
      tr.addEventListener("click", () => openEntry(item.id));
      body.append(tr);
    }
    const count = state.items.length;
    $("queue-status").textContent = count
      ? `${count} entr${count === 1 ? "y" : "ies"}${state.cursor ? ", more below" : ""}`
      : "Nothing to review with these filters.";
    $("queue-more").hidden = !state.cursor;
  }

  // --- one entry -------------------------------------------------------------------------------

  async function openEntry(candidateId) {
    state.generation += 1;
    const generation = state.generation;
    state.openId = candidateId;
    releasePictures();
    renderQueue();
    const status = $("d-decision-status");
    status.textContent = "";
    status.classList.remove("error");
    try {
      const entry = await getJson(`/v1/review/candidates/${encodeURIComponent(candidateId)}`);
      if (generation !== state.generation) {
        return;
      }
      renderEntry(entry, generation);
      await loadCase(entry.case.id, generation);
    } catch (error) {
      failed(error, status);
    }
  }

  function renderEntry(entry, generation) {
    $("detail-empty").hidden = true;
    $("detail-body").hidden = false;
    $("d-title").textContent = `Candidate ${entry.id} · ${entry.case.name} · ${entry.status}`;
    showPicture($("d-sighting-crop"), entry.face_crop_url, generation);
    showPicture($("d-case-crop"), entry.case_face_crop_url, generation);
    showPicture($("d-case-photo"), entry.case_photo_url, generation);
    facts($("d-facts"), [
      ["Distance", `${entry.distance.toFixed(3)} (threshold ${entry.threshold.toFixed(3)})`],
      ["Rank", entry.rank],
      ["Sighting", `#${entry.sighting.id}, seen ${seenAt(entry.sighting)}`],
      ["Sighting place", place(entry.sighting, entry.case)],
      ["Uploaded", when(entry.sighting.uploaded_at)],
      ["Case", `${entry.case.name} (#${entry.case.id}, ${entry.case.category}, ${entry.case.status})`],
      ["Last seen", `${entry.case.last_seen_place || "place unknown"}, `
        + `${position(entry.case.last_seen_lat, entry.case.last_seen_lon)}, `
        + `missing since ${entry.case.missing_since}`],
      ["Age gap", years(entry.age_gap_years)],
      ["Status", entry.reviewed_by
        ? `${entry.status} (by ${entry.reviewed_by}, ${when(entry.reviewed_at)})` : entry.status],
      ["Model", entry.model_id],
    ]);

    const decisions = $("d-decisions");
    decisions.replaceChildren();
    for (const d of entry.decisions) {
      decisions.append(row([when(d.created_at), d.reviewer, VERDICTS[d.verdict] || d.verdict,
        d.candidate_id === null ? "—" : `#${d.candidate_id}`, d.note]));
    }
    if (!entry.decisions.length) {
      decisions.append(row(["none yet", "", "", "", ""]));
    }

    const others = entry.seen.length;
    $("d-seen-title").textContent = others
      ? `Seen ${others + 1} times: this sighting and ${others} other${others === 1 ? "" : "s"}`
      : "Seen once: no other sighting of this face";
    const seen = $("d-seen");
    seen.replaceChildren();
    for (const link of entry.seen) {
      seen.append(el("li", `${seenAt(link.sighting)} · ${place(link.sighting, entry.case)} · `
        + `sighting #${link.sighting.id} · distance ${link.distance.toFixed(3)}`));
    }

    for (const radio of document.querySelectorAll("input[name=verdict]")) {
      radio.checked = false;
    }
    $("d-note").value = "";
  }

  async function loadCase(caseId, generation) {
    state.openCaseId = caseId;
    const [info, matches] = await Promise.all([
      getJson(`/v1/cases/${encodeURIComponent(caseId)}`),
      getJson(`/v1/cases/${encodeURIComponent(caseId)}/matches`),
    ]);
    if (generation !== state.generation) {
      return;
    }
    $("d-case-title").textContent = `Case #${info.id}: ${info.name}`;
    facts($("d-case"), [
      ["Category", info.category],
      ["Status", info.status],
      ["Sex", info.sex],
      ["Age when missing", info.age_when_missing],
      ["Date of birth", info.date_of_birth],
      ["Missing since", info.missing_since],
      ["Last seen", `${info.last_seen_place || "place unknown"}, `
        + position(info.last_seen_lat, info.last_seen_lon)],
      ["Description", info.description || "—"],
      ["Photos", info.photos.length],
    ]);
    const body = $("d-matches");
    body.replaceChildren();
    for (const m of matches.items) {
      body.append(row([seenAt(m.sighting), place(m.sighting, m.case), m.distance.toFixed(3),
        m.reviewed_by || "—", when(m.reviewed_at)]));
    }
    if (!matches.items.length) {
      body.append(row(["no confirmed match yet", "", "", "", ""]));
    }
  }

  async function decide(event) {
    event.preventDefault();
    const status = $("d-decision-status");
    status.classList.remove("error");
    const chosen = document.querySelector("input[name=verdict]:checked");
    if (!chosen || state.openId === null) {
      status.textContent = "Choose a decision first.";
      status.classList.add("error");
      return;
    }
    const candidateId = state.openId;
    try {
      const response = await api(
        `/v1/review/candidates/${encodeURIComponent(candidateId)}/decision`, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ verdict: chosen.value, note: $("d-note").value }),
        });
      const receipt = await response.json();
      // Out of the queue unless it still matches the status filter (needs_info, say).
      const shown = $("f-status").value.split(",");
      state.items = state.items.filter(
        (item) => item.id !== candidateId || shown.includes(receipt.candidate_status));
      for (const item of state.items) {
        if (item.id === candidateId) {
          item.status = receipt.candidate_status;
        }
      }
      renderQueue();
      await openEntry(candidateId);
      $("d-decision-status").textContent = `Recorded: ${VERDICTS[receipt.decision.verdict]} `
        + `(now ${receipt.candidate_status}).`;
    } catch (error) {
      failed(error, status);
    }
  }

  // --- start -----------------------------------------------------------------------------------

  async function login(event) {
    event.preventDefault();
    const input = $("login-key");
    const typed = input.value.trim();
    input.value = "";
    const error = $("login-error");
    error.textContent = "";
    if (!typed) {
      return;
    }
    sessionStorage.setItem(STORAGE_KEY, typed);
    try {
      await api("/v1/review/queue?limit=1");
    } catch (failure) {
      sessionStorage.removeItem(STORAGE_KEY);
      error.textContent = failure instanceof ApiError && failure.status === 403
        ? "This key may not review candidates (an investigator key is needed)."
        : failure.message;
      return;
    }
    showApp();
  }

  function showApp() {
    $("login").hidden = true;
    $("app").hidden = false;
    $("logout").hidden = false;
    $("who").textContent = "logged in";
    loadQueue(false).catch(() => {});
  }

  function start() {
    $("login-form").addEventListener("submit", login);
    $("logout").addEventListener("click", () => logout(""));
    $("filters").addEventListener("submit", (event) => {
      event.preventDefault();
      loadQueue(false).catch(() => {});
    });
    $("f-clear").addEventListener("click", () => {
      $("filters").reset();
      loadQueue(false).catch(() => {});
    });
    $("queue-more").addEventListener("click", () => loadQueue(true).catch(() => {}));
    $("decision").addEventListener("submit", decide);
    $("d-case-queue").addEventListener("click", () => {
      if (state.openCaseId !== null) {
        $("f-case").value = String(state.openCaseId);
        loadQueue(false).catch(() => {});
      }
    });
    const message = sessionStorage.getItem("matcher.review.message");
    sessionStorage.removeItem("matcher.review.message");
    if (message) {
      $("login-error").textContent = message;
    }
    if (key()) {
      showApp();
    } else {
      $("login").hidden = false;
      $("login-key").focus();
    }
  }

  document.addEventListener("DOMContentLoaded", start);
})();
