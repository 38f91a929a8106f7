// The live connection: one WebSocket, reconnected with exponential backoff
// and jitter, reporting its state so the page can show it in words.

import { backoffDelay } from "./format.js";

// A socket that stayed open this long counts as healthy: the next drop starts
// the backoff again from the shortest delay. A server that accepts and then
// immediately closes keeps backing off instead.
const STABLE_MS = 5000;
// The API closes with 1008 when the token is missing or wrong (its reason then names the
// token), the repo filter is malformed or the origin is not allowed (docs/API.md).
const POLICY_VIOLATION = 1008;
const TOKEN_REASON = /^missing or invalid token/;

export class LiveSocket {
  /**
   * @param {object} opts
   * @param {() => string} opts.url             URL to connect to (read at each attempt)
   * @param {() => string[]} [opts.protocols]   subprotocols to offer (read at each attempt)
   * @param {(msg: object) => void} opts.onMessage
   * @param {(state: object) => void} opts.onState  {state, retryInMs?, attempt}
   * @param {(reconnect: boolean) => void} opts.onOpen  called each time a socket opens
   * @param {() => Promise<void>} [opts.onAuthProblem]  called before retrying after a 1008 close for the token
   * @param {(reason: string|null) => void} [opts.onRefused]  called on a 1008 close for anything
   *   else (backoff continues), and with null at the first close after that which is not one
   */
  constructor({ url, protocols, onMessage, onState, onOpen, onAuthProblem, onRefused }) {
    this.url = url;
    this.protocols = protocols ?? (() => []);
    this.onMessage = onMessage;
    this.onState = onState;
    this.onOpen = onOpen;
    this.onAuthProblem = onAuthProblem;
    this.onRefused = onRefused;
    this.ws = null;
    this.attempt = 0;
    this.generation = 0;
    this.everOpened = false;
    this.timer = null;
    this.ticker = null;
    this.retryAt = 0;
    this.state = "idle";
    this.stopped = true;
    this.refused = null; // the reason of a 1008 close that was not about the token
    window.addEventListener("online", () => {
      if (!this.stopped && this.state !== "connected" && this.state !== "connecting") this.openNow();
    });
    window.addEventListener("offline", () => {
      if (!this.stopped && this.state !== "connected") {
        this.clearTimers();
        this.setState("offline");
      }
    });
  }

  /** True while sitting out a backoff delay (or offline) before the next attempt; not after
   * a refusal, which a reachable API does not cure. */
  get waiting() {
    return !this.stopped && this.ws === null && !this.refused;
  }

  /** (Re)subscribes from scratch: a new filter is a new subscription, not a reconnect. */
  start() {
    this.stop();
    this.stopped = false;
    this.everOpened = false;
    this.attempt = 0;
    this.refused = null;
    this.openNow();
  }

  stop() {
    this.stopped = true;
    this.generation += 1;
    this.clearTimers();
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      try {
        ws.close(1000, "resubscribe");
      } catch {
        // already closing
      }
    }
  }

  clearTimers() {
    clearTimeout(this.timer);
    clearInterval(this.ticker);
    this.timer = null;
    this.ticker = null;
  }

  openNow() {
    this.clearTimers();
    if (this.ws) {
      const old = this.ws;
      this.ws = null;
      try {
        old.close(1000, "reconnect");
      } catch {
        // ignore
      }
    }
    if (typeof navigator !== "undefined" && navigator.onLine === false) {
      this.setState("offline");
      return;
    }
    const generation = ++this.generation;
    this.setState(this.everOpened ? "reconnecting" : "connecting", { retryInMs: 0 });
    let ws;
    try {
      ws = new WebSocket(this.url(), this.protocols());
    } catch {
      this.scheduleRetry();
      return;
    }
    this.ws = ws;
    let openedAt = 0;
    ws.addEventListener("open", () => {
      if (generation !== this.generation) return;
      openedAt = Date.now();
      const wasReconnect = this.everOpened;
      this.everOpened = true;
      this.setState("connected");
      this.onOpen?.(wasReconnect);
      // A refused socket closes at once; one still open after STABLE_MS was accepted.
      setTimeout(() => {
        if (generation === this.generation && this.ws === ws && this.refused) {
          this.refused = null;
          this.onRefused?.(null);
        }
      }, STABLE_MS);
    });
    ws.addEventListener("message", (event) => {
      if (generation !== this.generation) return;
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch {
        return; // not ours to interpret
      }
      this.onMessage(msg);
    });
    ws.addEventListener("close", (event) => {
      if (generation !== this.generation || this.stopped) return;
      this.ws = null;
      if (openedAt && Date.now() - openedAt >= STABLE_MS) this.attempt = 0;
      // A proxy may drop the reason: without one, the token is the likeliest cause.
      const forToken = !event.reason || TOKEN_REASON.test(event.reason);
      const wasRefused = this.refused;
      this.refused = event.code === POLICY_VIOLATION && !forToken ? event.reason : null;
      if (this.refused || wasRefused) this.onRefused?.(this.refused);
      if (event.code === POLICY_VIOLATION && forToken && this.onAuthProblem) {
        this.setState("auth");
        Promise.resolve(this.onAuthProblem())
          .catch(() => undefined)
          .then(() => {
            if (generation === this.generation && !this.stopped) this.scheduleRetry();
          });
        return;
      }
      this.scheduleRetry();
    });
    // "error" is always followed by "close", which does the work.
  }

  scheduleRetry() {
    this.clearTimers();
    if (typeof navigator !== "undefined" && navigator.onLine === false) {
      this.setState("offline");
      return;
    }
    const delay = backoffDelay(this.attempt);
    this.attempt += 1;
    this.retryAt = Date.now() + delay;
    const tick = () => {
      this.setState("reconnecting", { retryInMs: Math.max(0, this.retryAt - Date.now()) });
    };
    tick();
    this.ticker = setInterval(tick, 1000);
    this.timer = setTimeout(() => this.openNow(), delay);
  }

  setState(state, extra = {}) {
    this.state = state;
    this.onState({ state, attempt: this.attempt, ...extra });
  }
}
