// FlowLens dashboard: one REST load, then live pr_update messages from /ws.
// No build step, no network beyond this origin.

import { Api, AuthCancelled, getToken, socketProtocols, socketUrl } from "./modules/api.js";
import { h } from "./modules/dom.js";
import { insightIsFor, prKey, relativeTime } from "./modules/format.js";
import { LiveSocket } from "./modules/live.js";
import { calibrationChart, outcomeChart } from "./modules/chart.js";
import { applyPrUpdate, repoName } from "./modules/live-state.js";
import { calibrationRows, hasCalibration } from "./modules/risk-calibration.js";
import { doraBuckets, doraCards, wantsDoraRefetch } from "./modules/dora.js";
import {
  buildRows,
  cardId,
  chartBlock,
  createCard,
  createGroup,
  emptyState,
  fillCard,
  groupMeta,
  historyBody,
  metricCards,
  noRepositories,
} from "./modules/view.js";

const BUILDS_MIN_INTERVAL_MS = 2000;
const BUILDS_SETTLE_MS = 300;
// Connect first, then load (docs/API.md): the snapshot is taken when the socket
// opens, so no change can fall between the two. A socket slow to open does not
// keep the page empty: after this long a snapshot is taken anyway, and taken
// again when the socket opens.
const FIRST_LOAD_WAIT_MS = 1500;
const METRICS_DAYS = 7;
const RISK_DAYS = 30; // the risk calibration card's window
const DORA_DAYS = 30; // the DORA section's window

const $ = (sel) => document.querySelector(sel);

const els = {
  conn: $("#conn"),
  connText: $("[data-testid=conn-state]"),
  announcer: $("#announcer"),
  select: $("#repo-select"),
  banner: $("#banner"),
  prGroups: $("#pr-groups"),
  prSummary: $("#pr-summary"),
  buildsBody: $("#builds-body"),
  buildsEmpty: $("#builds-empty"),
  buildsTable: $("[data-testid=builds-table]"),
  metrics: $("#metric-cards"),
  chart: $("#chart-box"),
  riskChart: $("#risk-box"),
  doraCards: $("#dora-cards"),
  doraChart: $("#dora-box"),
  windowLabel: $("#window-label"),
  dialog: $("#token-dialog"),
  tokenForm: $("#token-form"),
  tokenInput: $("#token-input"),
  tokenError: $("#token-error"),
};

const state = {
  repos: [],
  repo: new URLSearchParams(window.location.search).get("repo") ?? "",
  prs: new Map(), // prKey → PR (REST shape)
  insights: new Map(), // prKey → latest insight | null (none); absent = not fetched
  histories: new Map(), // prKey → insight array
  historyErrors: new Map(),
  versions: new Map(), // prKey → highest pr_update version applied
  touched: new Map(), // prKey → socket sequence number of the last update applied
  socketSeq: 0,
  builds: [],
  metrics: null,
  risk: null, // GET /api/metrics/risk
  dora: null, // GET /api/metrics/dora
  firstLoadTimer: 0, // the snapshot's fallback while the socket is slow to open
  loadSeq: 0,
  loaded: false,
  lastLoadFailed: false,
  loadError: null,
  authBlocked: false,
  messagesApplied: 0,
  lastBuildsFetch: 0,
  buildsTimer: null,
  reloadedFor: new Set(), // repository names a pr_update brought that the list did not have
};

const cards = new Map(); // prKey → card element
const groups = new Map(); // repo → group element

// ---------------------------------------------------------------- token form

function askToken({ rejected }) {
  return new Promise((resolve) => {
    const dialog = els.dialog;
    els.tokenInput.value = "";
    els.tokenError.hidden = !rejected;
    els.tokenError.textContent = rejected ? "That token was not accepted. Check the value and try again." : "";
    const onClose = () => {
      dialog.removeEventListener("close", onClose);
      const token = dialog.returnValue === "ok" ? els.tokenInput.value.trim() : "";
      els.tokenInput.value = "";
      resolve(token || null);
    };
    dialog.addEventListener("close", onClose);
    dialog.returnValue = "";
    if (typeof dialog.showModal === "function") {
      if (!dialog.open) dialog.showModal();
    } else {
      dialog.setAttribute("open", "");
    }
    els.tokenInput.focus();
  });
}

els.tokenForm.addEventListener("submit", (event) => {
  // method=dialog closes the dialog itself; this only guards an empty value.
  if (event.submitter?.value === "ok" && !els.tokenInput.value.trim()) {
    event.preventDefault();
    els.tokenError.hidden = false;
    els.tokenError.textContent = "Enter the token to continue.";
    els.tokenInput.focus();
  }
});

const api = new Api({ askToken });

// ---------------------------------------------------------------- banner / announcements

function showRefusal(reason) {
  showBanner(`The FlowLens API refused live updates: ${reason}.`, { label: "Retry now", run: () => live.openNow() });
}

function showBanner(message, action) {
  // The same message again (a retry that failed the same way) is not announced again.
  if (!els.banner.hidden && els.banner.dataset.message === message) return;
  els.banner.dataset.message = message;
  const children = [h("p", { text: message })];
  if (action) children.push(h("button", { type: "button", class: "btn", on: { click: action.run }, text: action.label }));
  els.banner.replaceChildren(...children);
  els.banner.hidden = false;
}

function hideBanner() {
  els.banner.hidden = true;
  delete els.banner.dataset.message;
  els.banner.replaceChildren();
}

let pendingAnnouncements = [];
let announceTimer = null;

/** Polite announcements, coalesced so a burst of updates is one sentence. */
function announce(text) {
  pendingAnnouncements.push(text);
  if (announceTimer) return;
  announceTimer = setTimeout(() => {
    const items = pendingAnnouncements;
    pendingAnnouncements = [];
    announceTimer = null;
    els.announcer.textContent = items.length > 3 ? `${items.length} updates: ${items.slice(-3).join(". ")}` : items.join(". ");
  }, 700);
}

// ---------------------------------------------------------------- connection state

const CONN_TEXT = {
  idle: "Not connected",
  connecting: "Connecting…",
  connected: "Connected",
  auth: "Waiting for an access token",
  offline: "Offline",
};

let lastConnState = null;

function onConnState({ state: s, retryInMs }) {
  let text = CONN_TEXT[s] ?? s;
  if (s === "reconnecting") {
    const secs = Math.ceil((retryInMs ?? 0) / 1000);
    text = secs > 0 ? `Reconnecting in ${secs}s` : "Reconnecting…";
  }
  if (s === "offline") text = "Offline — waiting for the network";
  els.conn.dataset.state = s;
  els.connText.dataset.state = s;
  els.connText.textContent = text;
  document.documentElement.dataset.conn = s;
  if (s !== lastConnState) {
    if (s === "connected") announce(lastConnState === "reconnecting" ? "Live updates reconnected" : "Live updates connected");
    else if (s === "reconnecting" && lastConnState === "connected") announce("Live updates lost; reconnecting");
    else if (s === "offline") announce("Offline; live updates paused");
    lastConnState = s;
  }
}

const live = new LiveSocket({
  url: () => socketUrl(state.repo),
  protocols: socketProtocols,
  onMessage,
  onState: onConnState,
  onOpen() {
    // Every (re)opened socket is followed by a snapshot: what changed before it
    // opened comes over REST, everything after it on the socket.
    clearTimeout(state.firstLoadTimer);
    loadAll({ quiet: state.loaded });
  },
  onRefused(reason) {
    // A 1008 close for something other than the token (a malformed repo filter, an origin
    // not in CORS_ORIGINS): say why, until a socket is accepted again; retries go on with
    // backoff in case the API's settings change.
    if (reason) showRefusal(reason);
    else if (!state.lastLoadFailed) hideBanner();
  },
  async onAuthProblem() {
    // A 1008 close for the token: a REST call asks for a new one if it is wrong.
    try {
      await api.repositories();
    } catch (err) {
      if (err instanceof AuthCancelled) blockOnAuth();
    }
  },
});

function blockOnAuth() {
  state.authBlocked = true;
  live.stop();
  onConnState({ state: "idle" });
  renderPrs();
  showBanner("This FlowLens API needs an access token (API_TOKENS is set).", {
    label: "Enter token",
    run: () => {
      state.authBlocked = false;
      connectThenLoad();
    },
  });
}

// ---------------------------------------------------------------- loading

/** Opens the socket; the snapshot follows when it opens (or after FIRST_LOAD_WAIT_MS). */
function connectThenLoad() {
  clearTimeout(state.firstLoadTimer);
  live.start();
  state.firstLoadTimer = setTimeout(() => loadAll({}), FIRST_LOAD_WAIT_MS);
}

async function loadAll({ quiet = false } = {}) {
  const seq = ++state.loadSeq;
  const socketSeqAtStart = state.socketSeq;
  const repo = state.repo;
  if (!quiet && !state.loaded) setBusy(true);
  try {
    const repos = await api.repositories();
    if (seq !== state.loadSeq) return;
    state.repos = Array.isArray(repos) ? repos : [];
    canonicalRepo();
    renderRepoOptions();
    const [prs, builds, metrics, risk, dora] = await Promise.allSettled([
      api.prs(repo),
      api.builds(repo),
      api.metrics(repo, METRICS_DAYS),
      api.risk(repo, RISK_DAYS),
      api.dora(repo, DORA_DAYS),
    ]);
    if (seq !== state.loadSeq) return;
    const auth = [prs, builds, metrics].find((r) => r.status === "rejected" && r.reason instanceof AuthCancelled);
    if (auth) throw auth.reason;
    const errors = [];
    if (prs.status === "fulfilled") mergePrs(prs.value, socketSeqAtStart);
    else errors.push(`pull requests (${prs.reason.message})`);
    if (builds.status === "fulfilled") state.builds = Array.isArray(builds.value) ? builds.value : [];
    else errors.push(`builds (${builds.reason.message})`);
    if (metrics.status === "fulfilled") state.metrics = metrics.value;
    else errors.push(`metrics (${metrics.reason.message})`);
    state.risk = risk.status === "fulfilled" ? risk.value : null;
    state.dora = dora.status === "fulfilled" ? dora.value : null;
    state.lastBuildsFetch = Date.now();
    const first = !state.loaded;
    state.loaded = true;
    state.loadError = null;
    state.lastLoadFailed = errors.length > 0;
    renderAll();
    if (first) revealLinkedCard();
    // A refusal of the socket stays in view: it is the cause to fix (REST may fail for it too).
    if (live.refused) showRefusal(live.refused);
    else if (errors.length) showBanner(`Could not load ${errors.join(", ")}.`, { label: "Retry", run: () => loadAll({}) });
    else hideBanner();
    // A REST success proves the API is reachable: do not sit out a long backoff.
    if (!state.authBlocked && live.waiting) live.openNow();
  } catch (err) {
    if (seq !== state.loadSeq) return;
    state.lastLoadFailed = true;
    state.loadError = err.message;
    if (err instanceof AuthCancelled) {
      blockOnAuth();
    } else {
      showBanner(`Could not reach the FlowLens API: ${err.message}. Live updates will retry by themselves.`, {
        label: "Retry now",
        run: () => loadAll({}),
      });
      if (!state.loaded) renderAll();
    }
  } finally {
    if (seq === state.loadSeq) {
      setBusy(false);
      document.documentElement.dataset.loaded = state.loaded ? "true" : "false";
      resolveReady();
    }
  }
}

/** A link to one PR (the check on GitHub links to `?repo=…#pr-…`): its card, once rendered. */
function revealLinkedCard() {
  const id = decodeURIComponent(window.location.hash.slice(1));
  const card = id ? document.getElementById(id) : null;
  if (!card) return;
  card.scrollIntoView({ block: "start" });
  card.classList.add("linked");
}

function setBusy(busy) {
  for (const id of ["prs", "builds", "overview"]) document.getElementById(id)?.setAttribute("aria-busy", String(busy));
}

/** Takes the REST list, but keeps rows the socket updated after the request was sent. */
function mergePrs(list, socketSeqAtStart) {
  const next = new Map();
  for (const pr of Array.isArray(list) ? list : []) {
    const key = prKey(pr.repositoryName, pr.number);
    const existing = state.prs.get(key);
    if (existing && (state.touched.get(key) ?? 0) > socketSeqAtStart) {
      next.set(key, existing);
      continue;
    }
    const v = Number(pr.version);
    if (Number.isFinite(v) && v > (state.versions.get(key) ?? -Infinity)) state.versions.set(key, v);
    next.set(key, pr);
    // The risk level moved on since the insight was cached, or the cached one is for an
    // earlier commit of an open PR (its new head may have been analysed at the same risk
    // while the socket was down, which the row does not show): fetch it again when visible.
    // Only open PRs are analysed, so a closed one is not asked for again and again.
    const cached = state.insights.get(key);
    if (
      cached !== undefined &&
      ((cached?.riskLevel ?? null) !== (pr.riskLevel ?? null) ||
        (cached && pr.state === "open" && !insightIsFor(cached, pr.commitSha)))
    ) {
      state.insights.delete(key);
      state.histories.delete(key);
    }
  }
  for (const [key, pr] of state.prs) {
    if (!next.has(key) && (state.touched.get(key) ?? 0) > socketSeqAtStart) next.set(key, pr);
  }
  state.prs = next;
}

async function refreshBuilds() {
  const repo = state.repo;
  state.lastBuildsFetch = Date.now();
  const [builds, metrics, risk] = await Promise.allSettled([
    api.builds(repo),
    api.metrics(repo, METRICS_DAYS),
    api.risk(repo, RISK_DAYS),
  ]);
  if (repo !== state.repo) return;
  if (risk.status === "fulfilled") state.risk = risk.value;
  if (builds.status === "fulfilled") {
    state.builds = Array.isArray(builds.value) ? builds.value : [];
    renderBuilds();
  }
  if (metrics.status === "fulfilled") state.metrics = metrics.value;
  renderMetrics();
}

/** Pushed build changes refetch builds and metrics, at most once per 2 s. */
function scheduleBuildsRefresh() {
  if (state.buildsTimer) return;
  const wait = Math.max(BUILDS_SETTLE_MS, BUILDS_MIN_INTERVAL_MS - (Date.now() - state.lastBuildsFetch));
  state.buildsTimer = setTimeout(() => {
    state.buildsTimer = null;
    refreshBuilds().catch(() => undefined);
  }, wait);
}

let reloadTimer = null;
/** DORA's numbers changed (metrics_update): one refetch for a burst of them. */
let doraTimer = 0;
function scheduleDoraRefetch() {
  clearTimeout(doraTimer);
  doraTimer = setTimeout(async () => {
    const repo = state.repo;
    try {
      const fresh = await api.dora(repo, DORA_DAYS);
      if (repo !== state.repo) return;
      state.dora = fresh;
      renderDora();
    } catch {
      // The next message or reload tries again; the cards keep their last numbers.
    }
  }, 200);
}

function renderDora() {
  if (!state.loaded) return;
  els.doraCards.replaceChildren(...doraCards(state.dora).map(doraCard));
  const buckets = doraBuckets(state.dora);
  els.doraChart.replaceChildren(
    buckets.length
      ? outcomeChart(buckets, { title: "Production deployments per day", testid: "dora-chart", success: "succeeded", failed: "failed" })
      : h("p", { class: "empty", text: "No deployment data." }),
  );
}

function doraCard(c) {
  return h(
    "div",
    { class: `metric${c.band ? ` band-${c.band}` : ""}`, dataset: { testid: `dora-card-${c.key}`, band: c.band ?? "" } },
    h("h3", { class: "metric-title", text: c.title }),
    h("p", { class: "metric-value", dataset: { testid: `dora-${c.key}` }, text: c.value }),
    h("p", { class: "metric-sub" }, c.band ? h("span", { class: `pill band band-${c.band}`, text: c.band }) : "no band", ` · ${c.detail}`),
  );
}

/** One quiet reload after a burst of messages (a rename announces every PR at once). */
function scheduleReload() {
  clearTimeout(reloadTimer);
  reloadTimer = setTimeout(() => loadAll({ quiet: true }), 500);
}

// ---------------------------------------------------------------- live updates

function onMessage(msg) {
  if (wantsDoraRefetch(msg, state.repo)) {
    scheduleDoraRefetch();
    return;
  }
  const step = applyPrUpdate(state, msg);
  if (!step) return;
  Object.assign(state, step.state);
  for (const effect of step.effects) {
    switch (effect.kind) {
      case "repos":
        renderRepoOptions();
        if (effect.reload) scheduleReload();
        break;
      case "card":
        upsertCard(effect.key, { flash: true });
        break;
      case "summary":
        renderPrSummary();
        break;
      case "load":
        loadAll({ quiet: true });
        break;
      case "history": {
        const card = cards.get(effect.key);
        if (card?._parts.history.open && !state.histories.has(effect.key)) loadHistory(effect.key, card);
        break;
      }
      case "announce":
        announce(effect.text);
        break;
      case "builds":
        scheduleBuildsRefresh();
        break;
    }
  }
  document.documentElement.dataset.messages = String(state.messagesApplied);
}

// ---------------------------------------------------------------- insights

const insightQueue = [];
let insightsInFlight = 0;
const INSIGHT_CONCURRENCY = 3;

const observer =
  "IntersectionObserver" in window
    ? new IntersectionObserver(
        (entries) => {
          for (const entry of entries) {
            if (!entry.isIntersecting) continue;
            observer.unobserve(entry.target);
            queueInsight(entry.target.dataset.key);
          }
        },
        { rootMargin: "200px" },
      )
    : null;

/** Fetches the latest insight for cards as they scroll into view. */
function wantInsight(key, card) {
  const pr = state.prs.get(key);
  if (!pr || !pr.riskLevel || state.insights.has(key)) return;
  card.dataset.key = key;
  if (observer) observer.observe(card);
  else queueInsight(key);
}

function queueInsight(key) {
  if (!key || state.insights.has(key) || insightQueue.includes(key)) return;
  insightQueue.push(key);
  pumpInsights();
}

function pumpInsights() {
  while (insightsInFlight < INSIGHT_CONCURRENCY && insightQueue.length) {
    const key = insightQueue.shift();
    const pr = state.prs.get(key);
    if (!pr || state.insights.has(key)) continue;
    insightsInFlight += 1;
    fetchHistory(key)
      .catch(() => undefined)
      .finally(() => {
        insightsInFlight -= 1;
        pumpInsights();
      });
  }
}

async function fetchHistory(key) {
  const pr = state.prs.get(key);
  if (!pr) return;
  const socketSeqAtStart = state.socketSeq;
  try {
    const list = await api.insights(pr.number, pr.repositoryName);
    const entries = Array.isArray(list) ? list : [];
    state.histories.set(key, entries);
    state.historyErrors.delete(key);
    // The latest insight is the head commit's (a force-push back to an analysed commit makes
    // an older one latest again), else the newest; unless the socket brought one meanwhile.
    if ((state.touched.get(key) ?? 0) <= socketSeqAtStart || !state.insights.get(key)) {
      const head = state.prs.get(key)?.commitSha;
      state.insights.set(key, (head && entries.find((e) => e.commitSha && insightIsFor(e, head))) || entries[0] || null);
    }
  } catch (err) {
    if (err instanceof AuthCancelled) throw err;
    state.historyErrors.set(key, err.message);
    if (!state.insights.has(key)) state.insights.set(key, null);
  }
  upsertCard(key, {});
}

async function loadHistory(key, card) {
  const body = card._parts.history.querySelector(".history-body");
  body.replaceChildren(...historyBody(undefined));
  await fetchHistory(key).catch(() => undefined);
}

function onToggleHistory(card, open) {
  const key = prKey(card.dataset.repo, Number(card.dataset.prNumber));
  if (!open) return;
  if (state.histories.has(key)) renderHistory(key, card);
  else loadHistory(key, card);
}

function renderHistory(key, card) {
  const details = card._parts.history;
  const entries = state.histories.get(key);
  const summary = details.querySelector("summary span");
  summary.textContent = entries ? `Insight history (${entries.length})` : "Insight history";
  if (!details.open) return;
  details.querySelector(".history-body").replaceChildren(...historyBody(entries, state.historyErrors.get(key)));
}

// ---------------------------------------------------------------- rendering

function renderAll() {
  renderRepoOptions();
  renderPrs();
  renderBuilds();
  renderMetrics();
}

/** ?repo= in another letter case than GitHub's (the API matches either): use the stored
 * spelling, which PRs and socket messages carry. */
function canonicalRepo() {
  if (!state.repo) return;
  const wanted = state.repo.toLowerCase();
  const stored = state.repos.map(repoName).find((n) => n && n.toLowerCase() === wanted);
  if (!stored || stored === state.repo) return;
  state.repo = stored;
  const url = new URL(window.location.href);
  url.searchParams.set("repo", stored);
  history.replaceState(null, "", url);
}

function renderRepoOptions() {
  const select = els.select;
  const names = state.repos.map(repoName).filter(Boolean);
  if (state.repo && !names.includes(state.repo)) names.push(state.repo);
  const wanted = ["", ...names];
  const have = [...select.options].map((o) => o.value);
  if (JSON.stringify(wanted) !== JSON.stringify(have)) {
    select.replaceChildren(
      h("option", { value: "", text: "All repositories" }),
      ...names.map((n) => h("option", { value: n, text: n })),
    );
  }
  select.value = state.repo;
}

function sortPrs(list) {
  const done = (p) => (p.status === "merged" || p.status === "closed" ? 1 : 0);
  const time = (p) => Date.parse(p.updatedAt) || 0;
  return list.sort((a, b) => done(a) - done(b) || time(b) - time(a) || b.number - a.number);
}

function repoOrder() {
  if (state.repo) return [state.repo];
  const names = state.repos.map(repoName).filter(Boolean);
  for (const pr of state.prs.values()) if (!names.includes(pr.repositoryName)) names.push(pr.repositoryName);
  return names;
}

function renderPrs() {
  // A full re-render (reload, reconnect) keeps open histories and focus where they were.
  const openKeys = new Set([...cards].filter(([, c]) => c._parts.history.open).map(([k]) => k));
  const active = document.activeElement;
  const focusCard = active?.closest?.("[data-testid=pr-row]");
  const focus = focusCard
    ? { id: focusCard.id, key: active.dataset.focusKey ?? (active.tagName === "SUMMARY" ? "history" : null) }
    : null;
  cards.clear();
  groups.clear();
  const order = repoOrder();
  if (!state.loaded && state.prs.size === 0) {
    els.prGroups.replaceChildren(
      state.authBlocked
        ? emptyState("Access token needed", h("p", { text: "This FlowLens API has API_TOKENS set. Choose “Enter token” above to sign in." }))
        : state.loadError
        ? emptyState(
            "Waiting for the FlowLens API",
            h("p", { text: `${state.loadError}. The page keeps trying and fills in as soon as the API answers.` }),
          )
        : emptyState("Loading pull requests…"),
    );
    return;
  }
  if (order.length === 0) {
    els.prGroups.replaceChildren(noRepositories());
    renderPrSummary();
    return;
  }
  const byRepo = new Map(order.map((r) => [r, []]));
  for (const pr of state.prs.values()) byRepo.get(pr.repositoryName)?.push(pr);
  const nodes = [];
  for (const repo of order) {
    const group = createGroup(repo);
    groups.set(repo, group);
    const prs = sortPrs(byRepo.get(repo));
    group._meta.textContent = groupMeta(prs);
    if (prs.length === 0) {
      group._list.append(emptyState("No pull requests yet", h("p", { text: "Open a pull request in this repository and it appears here within seconds." })));
    }
    for (const pr of prs) group._list.append(buildCard(pr));
    nodes.push(group);
  }
  els.prGroups.replaceChildren(...nodes);
  for (const key of openKeys) {
    const details = cards.get(key)?._parts.history;
    if (details) details.open = true; // its toggle event loads the history
  }
  if (focus) {
    const card = document.getElementById(focus.id);
    const target = focus.key === "history" ? card?.querySelector("summary") : card?.querySelector(`[data-focus-key="${focus.key}"]`);
    (target ?? card)?.focus?.();
  }
  renderPrSummary();
}

function buildCard(pr) {
  const key = prKey(pr.repositoryName, pr.number);
  const card = createCard(pr.repositoryName, pr.number, { onToggleHistory });
  cards.set(key, card);
  fillCard(card, pr, state.insights.get(key));
  if (state.histories.has(key)) renderHistory(key, card);
  wantInsight(key, card);
  return card;
}

/** Updates one PR's card in place, creating it (and its group) if new. */
function upsertCard(key, { flash }) {
  const pr = state.prs.get(key);
  if (!pr || !state.loaded) return;
  let card = cards.get(key);
  if (card) {
    fillCard(card, pr, state.insights.get(key));
    renderHistory(key, card);
    wantInsight(key, card);
  } else {
    let group = groups.get(pr.repositoryName);
    if (!group) {
      // First PR of a repository the page has not shown yet.
      if (groups.size === 0) els.prGroups.replaceChildren();
      group = createGroup(pr.repositoryName);
      groups.set(pr.repositoryName, group);
      els.prGroups.prepend(group);
    }
    group._list.querySelector("[data-testid=empty-state]")?.remove();
    card = buildCard(pr);
    group._list.prepend(card);
  }
  const group = groups.get(pr.repositoryName);
  if (group) {
    group._meta.textContent = groupMeta([...state.prs.values()].filter((p) => p.repositoryName === pr.repositoryName));
  }
  if (flash) {
    card.classList.remove("flash");
    void card.offsetWidth; // restart the animation
    card.classList.add("flash");
  }
}

function renderPrSummary() {
  const prs = [...state.prs.values()];
  if (!prs.length) {
    els.prSummary.textContent = "";
    return;
  }
  const open = prs.filter((p) => p.status !== "merged" && p.status !== "closed");
  const failing = open.filter((p) => p.status === "buildFailed").length;
  const review = open.filter((p) => p.pipelineStatus?.statusApproval === "pending").length;
  const high = open.filter((p) => p.riskLevel === "high").length;
  const bits = [`${open.length} open`];
  if (failing) bits.push(`${failing} with a failing build`);
  if (review) bits.push(`${review} awaiting review`);
  if (high) bits.push(`${high} high risk`);
  els.prSummary.textContent = bits.join(" · ");
}

function prLink(repo, number) {
  const key = prKey(repo ?? state.repo, number);
  return cards.has(key) ? `#${cardId(repo ?? state.repo, number)}` : null;
}

function renderBuilds() {
  if (!state.loaded) return;
  const rows = buildRows(state.builds, { showRepo: !state.repo && state.repos.length > 1, prLink });
  els.buildsBody.replaceChildren(...rows);
  els.buildsTable.hidden = rows.length === 0;
  els.buildsEmpty.hidden = rows.length !== 0;
}

function renderMetrics() {
  if (!state.loaded) return;
  const days = Number(state.metrics?.windowDays) || METRICS_DAYS;
  els.windowLabel.textContent = `Last ${days} days${state.repo ? ` · ${state.repo}` : " · all repositories"}`;
  els.metrics.replaceChildren(...metricCards(state.metrics));
  els.chart.replaceChildren(...chartBlock(state.builds, days));
  renderDora();
  els.riskChart.replaceChildren(
    hasCalibration(state.risk)
      ? calibrationChart(calibrationRows(state.risk))
      : h("p", { class: "empty", text: "No analysed heads in the last 30 days yet." }),
  );
}

/** Relative times drift; refresh their text (no network). */
function refreshTimes() {
  for (const t of document.querySelectorAll("time[data-ts]")) {
    const text = relativeTime(t.dataset.ts);
    if (text && t.textContent !== text) t.textContent = text;
  }
}

// ---------------------------------------------------------------- wiring

els.select.addEventListener("change", () => {
  state.repo = els.select.value;
  const url = new URL(window.location.href);
  if (state.repo) url.searchParams.set("repo", state.repo);
  else url.searchParams.delete("repo");
  window.history.replaceState(null, "", url);
  state.prs = new Map();
  state.loaded = false;
  renderPrs();
  if (state.authBlocked) loadAll({});
  else connectThenLoad();
});

let resolveReady;
const ready = new Promise((resolve) => {
  resolveReady = resolve;
});

// Hooks for browser tests and for poking at the page from devtools.
window.flowlens = {
  state,
  ready,
  reload: () => loadAll({}),
  refreshBuilds,
  get connection() {
    return live.state;
  },
  get hasToken() {
    return Boolean(getToken());
  },
  socket: live,
};

setInterval(refreshTimes, 30000);
renderPrs();
connectThenLoad();
