// The zoomed photo: the whole picture at full resolution over the page, with its faces boxed,
// panned by dragging (a mouse), by scrolling (a wheel, a finger) or with the arrow keys.
//
// It shows a picture another view already fetched (its blob: URL): zooming costs no request.
// Sizes and box positions are set through the CSSOM (element.style), which the page's CSP
// allows; no style attribute is ever written.

import { $, el } from "./format.js";

const STEPS = [0.1, 0.15, 0.25, 0.33, 0.5, 0.67, 0.8, 1, 1.5, 2, 3, 4, 6, 8];

// Boxes over a picture: [{box: [left, top, right, bottom] in px, kind, title}], placed in
// percent of the picture so that they follow it at any size.
export function drawBoxes(frame, width, height, boxes) {
  for (const old of frame.querySelectorAll(".box")) {
    old.remove();
  }
  const drawn = [];
  for (const { box, kind, title } of boxes) {
    const [left, top, right, bottom] = box;
    const node = el("span", null, `box ${kind}`);
    node.style.left = `${(100 * left) / width}%`;
    node.style.top = `${(100 * top) / height}%`;
    node.style.width = `${(100 * (right - left)) / width}%`;
    node.style.height = `${(100 * (bottom - top)) / height}%`;
    if (title) {
      node.title = title;
    }
    frame.append(node);
    drawn.push(node);
  }
  return drawn;
}

export function createZoom() {
  const overlay = $("zoom");
  const stage = $("z-stage");
  const frame = $("z-frame");
  const img = $("z-photo");
  let scale = 1;
  let size = { width: 1, height: 1 };
  let drag = null;
  let returnFocus = null;

  function fitScale() {
    return Math.min(1, (stage.clientWidth - 16) / size.width,
      (stage.clientHeight - 16) / size.height);
  }

  // A new scale, keeping the picture's point at the middle of the stage where it was.
  function setScale(next) {
    const middleX = (stage.scrollLeft + stage.clientWidth / 2) / (size.width * scale);
    const middleY = (stage.scrollTop + stage.clientHeight / 2) / (size.height * scale);
    scale = Math.min(8, Math.max(0.05, next));
    img.style.width = `${Math.round(size.width * scale)}px`;
    img.style.height = `${Math.round(size.height * scale)}px`;
    stage.scrollLeft = middleX * size.width * scale - stage.clientWidth / 2;
    stage.scrollTop = middleY * size.height * scale - stage.clientHeight / 2;
    $("z-scale").textContent = `${Math.round(scale * 100)}%`
      + (Math.abs(scale - 1) < 1e-6 ? " (full resolution)" : "");
    overlay.dataset.scale = String(scale);
  }

  function step(direction) {
    const next = direction > 0 ? STEPS.find((s) => s > scale + 1e-6)
      : [...STEPS].reverse().find((s) => s < scale - 1e-6);
    if (next !== undefined) {
      setScale(next);
    }
  }

  // `picture`: {src (a blob: URL), width, height, title, boxes}; opens at full resolution,
  // centred on `focus` (a box) when given.
  function open(picture) {
    returnFocus = document.activeElement;
    size = { width: picture.width, height: picture.height };
    $("z-title").textContent = picture.title || "";
    img.src = picture.src;
    drawBoxes(frame, picture.width, picture.height, picture.boxes || []);
    overlay.hidden = false;
    scale = 1;
    setScale(1);
    if (picture.focus) {
      const [left, top, right, bottom] = picture.focus;
      stage.scrollLeft = (left + right) / 2 - stage.clientWidth / 2;
      stage.scrollTop = (top + bottom) / 2 - stage.clientHeight / 2;
    }
    stage.focus();
  }

  function close() {
    overlay.hidden = true;
    img.removeAttribute("src"); // the blob: URL belongs to the view that fetched it
    drag = null;
    if (returnFocus && typeof returnFocus.focus === "function") {
      returnFocus.focus();
    }
  }

  stage.addEventListener("pointerdown", (event) => {
    if (event.pointerType !== "mouse" || event.button !== 0) {
      return; // fingers and pens scroll the stage natively
    }
    drag = { x: event.clientX, y: event.clientY, left: stage.scrollLeft, top: stage.scrollTop };
    stage.setPointerCapture(event.pointerId);
    stage.classList.add("dragging");
    event.preventDefault();
  });
  stage.addEventListener("pointermove", (event) => {
    if (drag) {
      stage.scrollLeft = drag.left - (event.clientX - drag.x);
      stage.scrollTop = drag.top - (event.clientY - drag.y);
    }
  });
  for (const done of ["pointerup", "pointercancel"]) {
    stage.addEventListener(done, () => {
      drag = null;
      stage.classList.remove("dragging");
    });
  }
  stage.addEventListener("wheel", (event) => {
    if (event.ctrlKey) { // a pinch on a touchpad, or Ctrl + wheel
      event.preventDefault();
      step(event.deltaY < 0 ? 1 : -1);
    }
  }, { passive: false });
  $("z-fit").addEventListener("click", () => setScale(fitScale()));
  $("z-full").addEventListener("click", () => setScale(1));
  $("z-in").addEventListener("click", () => step(1));
  $("z-out").addEventListener("click", () => step(-1));
  $("z-close").addEventListener("click", close);

  return {
    open,
    close,
    isOpen: () => !overlay.hidden,
    zoomIn: () => step(1),
    zoomOut: () => step(-1),
    fit: () => setScale(fitScale()),
    full: () => setScale(1),
  };
}
