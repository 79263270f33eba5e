// Keyboard shortcuts: one table, shown in the page's header and read by the handler, so the
// page never says a key does something it does not.

import { el } from "./format.js";

// [keys as shown, what they do, the KeyboardEvent.key values, the action's name]
export const SHORTCUTS = [
  ["M", "match", ["m", "M"], "match"],
  ["N", "not the same", ["n", "N"], "not_match"],
  ["I", "needs info", ["i", "I"], "needs_info"],
  ["U", "inconclusive", ["u", "U"], "inconclusive"],
  ["J / ↓", "next", ["j", "J", "ArrowDown"], "next"],
  ["K / ↑", "previous", ["k", "K", "ArrowUp"], "previous"],
  ["← / →", "other case", ["ArrowLeft", "ArrowRight"], "card"],
  ["Z", "zoom", ["z", "Z"], "zoom"],
  ["C", "case view", ["c", "C"], "case"],
  ["Esc", "back", ["Escape"], "back"],
];

// While the zoom is open: [keys as shown, what they do, KeyboardEvent.key values, action].
export const ZOOM_SHORTCUTS = [
  ["+ / −", "zoom in / out", ["+", "=", "-", "_"], "scale"],
  ["0", "fit", ["0"], "fit"],
  ["1", "full resolution", ["1"], "full"],
  ["Z / Esc", "close", ["z", "Z", "Escape"], "back"],
];

export function showShortcuts(node) {
  node.replaceChildren(el("span", "Keys:", "muted"));
  for (const [keys, what] of SHORTCUTS) {
    const item = el("span", null, "shortcut");
    item.append(el("kbd", keys), ` ${what}`);
    node.append(item);
  }
  node.hidden = false;
}

function typing(target) {
  return target instanceof HTMLElement
    && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
}

// `handle(action, event)` runs the action of a shortcut (the table it came from depends on
// `zoomed()`); keys typed into a field, or with Ctrl, Alt or Meta, are left alone.
export function installShortcuts(zoomed, handle) {
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.altKey || event.metaKey || typing(event.target)) {
      return;
    }
    const table = zoomed() ? ZOOM_SHORTCUTS : SHORTCUTS;
    const found = table.find(([, , keys]) => keys.includes(event.key));
    if (found && handle(found[3], event) !== false) {
      event.preventDefault();
    }
  });
}
