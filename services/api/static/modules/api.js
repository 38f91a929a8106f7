// REST client: same origin, JSON, bearer token when API_TOKENS is on.

const TOKEN_KEY = "flowlens.apiToken";
export const PRS_LIMIT = 1000;


export class ApiError extends Error {
  constructor(status, message, path) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.path = path;
  }
}

/** Raised when a token is needed and the person chose not to give one. */
export class AuthCancelled extends Error {
  constructor() {
    super("An API token is needed to load the dashboard.");
    this.name = "AuthCancelled";
  }
}

function storage() {
  try {
    return window.sessionStorage;
  } catch {
    return null; // storage disabled: the token then lives only in memory
  }
}

let memoryToken = null;

export function getToken() {
  const store = storage();
  try {
    return (store ? store.getItem(TOKEN_KEY) : memoryToken) || null;
  } catch {
    return memoryToken;
  }
}

export function setToken(token) {
  memoryToken = token || null;
  const store = storage();
  try {
    if (!store) return;
    if (token) store.setItem(TOKEN_KEY, token);
    else store.removeItem(TOKEN_KEY);
  } catch {
    // quota or privacy mode: memoryToken still works for this page
  }
}

export class Api {
  /**
   * @param {object} opts
   * @param {(reason: {rejected: boolean}) => Promise<string|null>} opts.askToken
   *   shows the token form; resolves to the token, or null when cancelled.
   */
  constructor({ askToken }) {
    this.askToken = askToken;
    this.pendingPrompt = null;
  }

  /** GET a JSON document; `params` values that are null/""/undefined are left out. */
  async get(path, params = {}, { signal } = {}) {
    const url = new URL(path, window.location.origin);
    for (const [k, v] of Object.entries(params)) {
      if (v !== null && v !== undefined && v !== "") url.searchParams.set(k, String(v));
    }
    for (let attempt = 0; attempt < 4; attempt++) {
      const token = getToken();
      const headers = { Accept: "application/json" };
      if (token) headers.Authorization = `Bearer ${token}`;
      const res = await fetch(url, { headers, signal, cache: "no-store", credentials: "same-origin" });
      if (res.status === 401) {
        await this.obtainToken(token);
        continue;
      }
      if (!res.ok) {
        let message = `${res.status} ${res.statusText || "error"}`;
        try {
          const body = await res.json();
          if (body && typeof body.error === "string") message = body.error;
        } catch {
          // not JSON: keep the status line
        }
        throw new ApiError(res.status, message, url.pathname);
      }
      return res.json();
    }
    throw new ApiError(401, "The API kept refusing the token.", url.pathname);
  }

  /**
   * Asks for a token once, however many requests were refused at the same
   * time. `usedToken` is what the refused request sent: if another request
   * already replaced it, just retry with the new one.
   */
  async obtainToken(usedToken) {
    const current = getToken();
    if (current && current !== usedToken) return;
    if (!this.pendingPrompt) {
      const rejected = Boolean(usedToken);
      if (rejected) setToken(null);
      this.pendingPrompt = Promise.resolve(this.askToken({ rejected }))
        .then((token) => {
          if (!token) throw new AuthCancelled();
          setToken(token);
        })
        .finally(() => {
          this.pendingPrompt = null;
        });
    }
    await this.pendingPrompt;
  }

  repositories(opts) {
    return this.get("/api/repositories", {}, opts);
  }

  prs(repo, opts) {
    // The most the API gives in one page (the default, 100, left open PRs out of busy lists).
    // The board shows no description: it asks for none.
    return this.get("/api/prs", { repo, state: "all", limit: PRS_LIMIT, description: "none" }, opts);
  }

  builds(repo, opts) {
    return this.get("/api/builds", { repo, limit: 50 }, opts);
  }

  metrics(repo, days = 7, opts) {
    return this.get("/api/metrics/summary", { repo, days }, opts);
  }

  risk(repo, days = 30, opts) {
    return this.get("/api/metrics/risk", { repo, days }, opts);
  }

  dora(repo, days = 30, opts) {
    return this.get("/api/metrics/dora", { repo, days }, opts);
  }

  insights(number, repo, opts) {
    return this.get(`/api/insights/${encodeURIComponent(number)}`, { repo }, opts);
  }
}

/** The WebSocket URL for the given repository filter (null/"" = every repository). */
export function socketUrl(repo) {
  const url = new URL("/ws", window.location.href);
  url.protocol = window.location.protocol === "https:" ? "wss:" : "ws:";
  url.search = "";
  url.hash = "";
  if (repo) url.searchParams.append("repo", repo);
  return url.href;
}

/**
 * The socket's subprotocols: the token travels in one (`bearer.<base64url token>`), never in
 * the URL, which servers and proxies log.
 * @returns {string[]}
 */
export function socketProtocols() {
  const token = getToken();
  if (!token) return [];
  const bytes = new TextEncoder().encode(token);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  const encoded = btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  return ["flowlens", `bearer.${encoded}`];
}
