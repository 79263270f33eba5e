// Building DOM without HTML, and the words and numbers the page shows.
// Text from the API is only ever set with textContent, never parsed as HTML.

export const $ = (id) => document.getElementById(id);

export function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) {
    node.textContent = String(text);
  }
  if (className) {
    node.className = className;
  }
  return node;
}

export function button(text, className, onClick) {
  const node = el("button", text, className);
  node.type = "button";
  node.addEventListener("click", onClick);
  return node;
}

export function row(cells) {
  const tr = document.createElement("tr");
  for (const cell of cells) {
    if (cell instanceof Node) {
      const td = document.createElement("td");
      td.append(cell);
      tr.append(td);
    } else {
      tr.append(el("td", cell));
    }
  }
  return tr;
}

export function facts(dl, pairs) {
  dl.replaceChildren();
  for (const [name, value] of pairs) {
    dl.append(el("dt", name), el("dd", value === null || value === undefined ? "—" : value));
  }
}

export function when(iso) {
  if (!iso) {
    return "—";
  }
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) {
    return String(iso);
  }
  return date.toISOString().slice(0, 16).replace("T", " ") + " UTC";
}

export function seenAt(sighting) {
  return sighting.taken_at ? when(sighting.taken_at) : `uploaded ${when(sighting.uploaded_at)}`;
}

export function position(lat, lon) {
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

// The sighting's position, and how far it is from where the person was last seen.
export function place(sighting, person) {
  const where = position(sighting.lat, sighting.lon);
  if (where === "no position" || !person || person.last_seen_lat === null
      || person.last_seen_lat === undefined || person.last_seen_lon === null) {
    return where;
  }
  const km = kmBetween(person.last_seen_lat, person.last_seen_lon, sighting.lat, sighting.lon);
  return `${where} (${km < 10 ? km.toFixed(1) : Math.round(km)} km from last seen)`;
}

export function years(value) {
  return value === null || value === undefined ? "?" : Number(value).toFixed(1);
}

export function gap(value) {
  if (value === null || value === undefined) {
    return "unknown";
  }
  const sign = value > 0 ? "+" : "";
  return `${sign}${Number(value).toFixed(1)} yrs`;
}

// The calibrated false match rate in words: how many strangers' faces per one this close.
export function strangers(rate) {
  if (rate === null || rate === undefined) {
    return "no calibration";
  }
  if (rate <= 0) {
    return "none measured";
  }
  const one = Math.round(1 / rate);
  return one <= 1 ? "every stranger" : `1 in ${one.toLocaleString("en")}`;
}

export function perSearch(value) {
  if (value === null || value === undefined) {
    return "?";
  }
  return value < 0.001 ? value.toExponential(1) : value.toFixed(3);
}

export const VERDICTS = {
  match: "match",
  not_match: "not the same",
  needs_info: "needs info",
  inconclusive: "inconclusive",
};

export const STATUSES = {
  pending: "pending",
  confirmed: "confirmed match",
  rejected: "not the same",
  needs_info: "needs info",
  inconclusive: "inconclusive",
};
