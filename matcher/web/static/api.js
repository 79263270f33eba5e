// The keyed JSON API, and pictures fetched through it.
//
// - The key lives in this tab's sessionStorage only: never in a URL, a cookie or localStorage.
//   It travels as `Authorization: Bearer` on same-origin fetches (credentials: "omit"), and
//   only to the API's own relative paths.
// - Pictures are fetched with the key and shown through blob: URLs (an <img src> pointing at
//   the API would go without the key and get a 401). Each view keeps its own `Pictures` and
//   releases them when it shows something else.

const STORAGE_KEY = "matcher.review.key";
const MESSAGE_KEY = "matcher.review.message";
const API_PREFIX = "/v1/";

export class AuthError extends Error {}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function key() {
  return sessionStorage.getItem(STORAGE_KEY);
}

export function setKey(value) {
  sessionStorage.setItem(STORAGE_KEY, value);
}

export function forgetKey() {
  sessionStorage.removeItem(STORAGE_KEY);
}

// A fresh document: no entry, picture or blob: URL of this session survives in memory.
export function logout(message) {
  sessionStorage.clear();
  if (message) {
    sessionStorage.setItem(MESSAGE_KEY, message);
  }
  window.location.replace("/review");
}

export function takeMessage() {
  const message = sessionStorage.getItem(MESSAGE_KEY);
  sessionStorage.removeItem(MESSAGE_KEY);
  return message;
}

export async function api(path, options = {}) {
  if (typeof path !== "string" || !path.startsWith(API_PREFIX)) {
    throw new ApiError(0, "refused", "refused to send the key to " + String(path));
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
    let code = "";
    try {
      const body = await response.json();
      code = typeof body.error === "string" ? body.error : "";
      detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    } catch (_) {
      // not JSON: keep the status text
    }
    throw new ApiError(response.status, code, `${response.status}: ${detail}`);
  }
  return response;
}

export async function getJson(path, params) {
  const query = params && params.toString() ? "?" + params.toString() : "";
  return (await api(path + query)).json();
}

export async function postJson(path, body) {
  const response = await api(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  return response.json();
}

// Every failure goes through here: a refused key logs out, anything else is shown in `where`.
export function failed(error, where) {
  if (error instanceof AuthError) {
    logout(error.message);
    return;
  }
  if (where) {
    where.textContent = error instanceof Error ? error.message : String(error);
    where.classList.add("error");
  }
}

// The pictures one view shows: fetched with the key, revoked together when the view moves on.
export class Pictures {
  constructor() {
    this.urls = [];
    this.generation = 0;
  }

  // Forget the pictures shown (their blob: URLs go) and drop answers still on their way.
  release() {
    this.generation += 1;
    for (const url of this.urls) {
      URL.revokeObjectURL(url);
    }
    this.urls = [];
  }

  // Sets img.src to the picture at `path`; false when it is gone, refused, or stale.
  async show(img, path) {
    const generation = this.generation;
    img.removeAttribute("src");
    img.classList.remove("missing");
    if (!path) {
      img.classList.add("missing");
      return false;
    }
    try {
      const blob = await (await api(path)).blob();
      if (generation !== this.generation) {
        return false; // the view moved on meanwhile
      }
      const url = URL.createObjectURL(blob);
      this.urls.push(url);
      img.src = url;
      return true;
    } catch (error) {
      if (error instanceof AuthError) {
        failed(error);
        return false;
      }
      img.classList.add("missing");
      img.title = "picture not available";
      return false;
    }
  }
}
