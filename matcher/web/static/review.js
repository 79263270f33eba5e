// The review page: the investigator's desk. Everything it shows comes from the keyed JSON API
// (api.js); this module logs in, shows whose key it is, and wires the queue (queue.js), the
// lineup (lineup.js), the case view (caseview.js), the zoom (zoom.js) and the keyboard
// (keys.js) together.

import { ApiError, AuthError, failed, forgetKey, getJson, key, logout, setKey, takeMessage }
  from "./api.js";
import { createCaseView } from "./caseview.js";
import { $ } from "./format.js";
import { installShortcuts, showShortcuts } from "./keys.js";
import { createLineup } from "./lineup.js";
import { createQueue } from "./queue.js";
import { createZoom } from "./zoom.js";

const zoom = createZoom();

const queue = createQueue({
  onOpen: (item) => {
    caseView.isOpen() && caseView.close();
    return lineup.open(item.sighting_face_id, item.id);
  },
  onEmpty: () => lineup.clear(),
});

const lineup = createLineup({
  // After a decision on the queue's open entry the next entry opens; on another card (a near
  // miss, a case the queue does not list) the lineup stays, refreshed.
  onDecided: async (candidateId, receipt, entryId) => {
    if (candidateId === entryId && queue.openId() === entryId) {
      await queue.decided(candidateId, receipt.candidate_status);
    } else {
      await lineup.refresh(candidateId);
    }
  },
  onOpenCase: (caseId) => caseView.open(caseId),
  onZoom: (picture) => zoom.open(picture),
  onOpenFace: (faceId) => {
    queue.clearOpen();
    return lineup.open(faceId, null);
  },
});

const caseView = createCaseView({
  onOpenLineup: (faceId, candidateId) => {
    queue.clearOpen();
    caseView.close();
    return lineup.open(faceId, null, { select: candidateId });
  },
  onZoom: (picture) => zoom.open(picture),
  onClose: () => lineup.show(),
});

function onShortcut(action, event) {
  if (zoom.isOpen()) {
    if (action === "scale") {
      (event.key === "-" || event.key === "_") ? zoom.zoomOut() : zoom.zoomIn();
    } else if (action === "fit") {
      zoom.fit();
    } else if (action === "full") {
      zoom.full();
    } else if (action === "back") {
      zoom.close();
    }
    return true;
  }
  if (caseView.isOpen()) {
    if (action === "back" || action === "case") {
      caseView.close();
      return true;
    }
    if (action === "next" || action === "previous") {
      caseView.close();
    } else {
      return false;
    }
  }
  switch (action) {
    case "match":
    case "not_match":
    case "needs_info":
    case "inconclusive":
      lineup.decide(action);
      return true;
    case "next":
      queue.next();
      return true;
    case "previous":
      queue.previous();
      return true;
    case "card":
      event.key === "ArrowLeft" ? lineup.previous() : lineup.next();
      return true;
    case "zoom":
      lineup.zoom();
      return true;
    case "case": {
      const caseId = lineup.selectedCaseId();
      if (caseId !== null) {
        caseView.open(caseId);
      }
      return true;
    }
    default:
      return false;
  }
}

// --- logging in --------------------------------------------------------------------------------

async function whoAmI() {
  return getJson("/v1/me");
}

async function showApp(me) {
  $("login").hidden = true;
  $("app").hidden = false;
  $("logout").hidden = false;
  $("who").textContent = `${me.name} · ${me.role}`;
  $("who").title = `key ${me.id}`;
  showShortcuts($("shortcuts"));
  await queue.load(false);
}

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
  setKey(typed);
  let me;
  try {
    me = await whoAmI();
  } catch (failure) {
    forgetKey();
    error.textContent = failure instanceof AuthError || failure instanceof ApiError
      ? failure.message : String(failure);
    return;
  }
  if (me.role !== "investigator") {
    forgetKey();
    error.textContent = `This is a ${me.role} key: reviewing candidates needs an investigator `
      + "key.";
    return;
  }
  await showApp(me);
}

function start() {
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", () => logout(""));
  $("filters").addEventListener("submit", (event) => {
    event.preventDefault();
    queue.load(false);
  });
  $("f-clear").addEventListener("click", () => {
    $("filters").reset(); // status and sort too: back to the queue as it opens
    queue.load(false);
  });
  for (const id of ["q-sort", "f-status"]) {
    $(id).addEventListener("change", () => {
      $(id).blur(); // back to the shortcuts
      queue.load(false);
    });
  }
  $("queue-more").addEventListener("click", () => queue.load(true));
  installShortcuts(() => zoom.isOpen(), onShortcut);
  const message = takeMessage();
  if (message) {
    $("login-error").textContent = message;
  }
  if (key()) {
    whoAmI().then(showApp, (error) => failed(error, $("login-error")));
  } else {
    $("login").hidden = false;
    $("login-key").focus();
  }
}

start();
