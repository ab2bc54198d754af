/* jobq dashboard: a page per resource (jobs, a job, batches, schedules,
 * external workers, nodes), routed by the URL's hash so that what is shown
 * (filters, page, the open job) survives a reload and can be shared. It
 * polls the API about once a second while the tab is visible and redraws
 * what changed; relative times move on their own.
 *
 * Everything the API returns is untrusted (payloads, queue names, error
 * messages): the DOM is built with createElement and textContent only.
 * Every URL is relative ("v1/jobs"), so the page works under a proxy path
 * prefix such as /jobq/. The API key, when jobqd asks for one, lives in
 * sessionStorage and goes out as "Authorization: Bearer KEY". */
"use strict";

(function () {
  const POLL_MS = 1000;
  const PAGE_SIZES = [10, 25, 50, 100];
  const DEFAULT_PAGE = 25;
  const QUEUE_PAGE = 25;
  const KEY_NAME = "jobq.key";
  const STATES = ["blocked", "scheduled", "queued", "running", "succeeded", "failed", "canceled"];
  const TERMINAL = ["succeeded", "failed", "canceled"];
  const BULK_PAGE = 1000;        // jobs per bulk call, the API's most
  const BULK_COUNT_PAGES = 100;  // a confirmation counts up to 100,000 jobs

  const $ = (id) => document.getElementById(id);

  /* ---- DOM helpers: text only, never markup ---- */

  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = String(v);
      else if (k === "on") for (const [ev, fn] of Object.entries(v)) e.addEventListener(ev, fn);
      else if (k === "dataset") Object.assign(e.dataset, v);
      else e.setAttribute(k, String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined || c === "") continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function show(node, on) {
    node.hidden = !on;
  }

  function ago(iso) {
    if (!iso) return "";
    const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
    if (!isFinite(s)) return String(iso);
    if (s < 0) return "in " + span(-s);
    return span(s) + " ago";
  }

  function span(s) {
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min";
    if (s < 86400) return Math.floor(s / 3600) + " h";
    return Math.floor(s / 86400) + " d";
  }

  /* A relative time; tickTimes() keeps its text current between polls,
   * so "3 s ago" moves on even when the data has not changed. */
  function time(iso) {
    return iso ? el("time", { datetime: iso, title: iso, text: ago(iso), dataset: { rel: "" } })
      : el("span", { class: "muted", text: "–" });
  }

  function tickTimes() {
    for (const t of document.querySelectorAll("time[data-rel]")) {
      const text = ago(t.getAttribute("datetime"));
      if (t.textContent !== text) t.textContent = text;
    }
  }

  function stateBadge(state) {
    return el("span", { class: "state state-" + (STATES.includes(state) ? state : "other"), text: state });
  }

  function progressOf(job) {
    if (job.state !== "running" || !job.progress) return null;
    const pct = Number(job.progress.percent) || 0;
    return el("span", { class: "progress-cell", title: job.progress.message || "" },
      el("progress", { max: 100, value: pct, "aria-label": "progress of job " + job.id }), " " + Math.round(pct) + "%");
  }

  function pretty(value) {
    return value === undefined ? "" : JSON.stringify(value, null, 2);
  }

  /* A value cut to n characters for a table cell; the whole in its title. */
  function cut(text, n) {
    if (text === null || text === undefined) return "";
    const s = String(text);
    return s.length > n ? s.slice(0, n - 1) + "…" : s;
  }

  function summary(payload) {
    if (payload === null || payload === undefined) return "";
    const s = JSON.stringify(payload);
    return s === "{}" ? "" : s;
  }

  function shortId(id) {
    return String(id).slice(0, 8) + "…";
  }

  /* ---- API ---- */

  class ApiError extends Error {
    constructor(status, problem) {
      super((problem && (problem.detail || problem.title)) || "HTTP " + status);
      this.status = status;
      this.problem = problem;
    }
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    const key = sessionStorage.getItem(KEY_NAME);
    if (key) headers.Authorization = "Bearer " + key;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let resp;
    try {
      resp = await fetch(path, {
        method, headers, cache: "no-cache",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      setLive(false, "jobqd is not answering");
      throw e;
    }
    const text = await resp.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
    if (resp.status === 401) {
      askForKey();
      throw new ApiError(401, data);
    }
    if (resp.status === 403) {
      notify("this key cannot do that");
      throw new ApiError(403, data);
    }
    if (!resp.ok) throw new ApiError(resp.status, data);
    setLive(true);
    return { data, text };
  }

  /* An error the page shows itself (not 401/403, which are handled). */
  function shown(e) {
    return e instanceof ApiError && e.status !== 401 && e.status !== 403;
  }

  /* ---- status line, notices, key form ---- */

  function setLive(ok, why) {
    const live = $("live");
    live.textContent = ok ? "live · " + new Date().toLocaleTimeString() : why;
    live.classList.toggle("down", !ok);
  }

  let noticeTimer = 0;
  function notify(msg) {
    const n = $("notice");
    n.textContent = msg;
    show(n, true);
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => show(n, false), 6000);
  }

  let statusTimer = 0;
  function say(msg) {
    const n = $("status");
    n.textContent = msg;
    show(n, true);
    clearTimeout(statusTimer);
    statusTimer = setTimeout(() => show(n, false), 8000);
  }

  function askForKey() {
    sessionStorage.removeItem(KEY_NAME);
    show($("auth"), true);
    show($("forget-key"), false);
    for (const v of document.querySelectorAll(".view")) show(v, false);
    setLive(false, "needs an API key");
  }

  $("auth-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const key = $("auth-key").value.trim();
    if (!key) return;
    sessionStorage.setItem(KEY_NAME, key);
    $("auth-key").value = "";
    show($("auth"), false);
    show($("forget-key"), true);
    route(true);
  });

  $("forget-key").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_NAME);
    show($("forget-key"), false);
    route(true);
  });

  /* Runs an action from a button; the next poll shows its effect. */
  async function act(button, method, path) {
    button.disabled = true;
    try {
      await api(method, path);
    } catch (e) {
      if (shown(e)) notify(e.message);
    } finally {
      button.disabled = false;
    }
    refresh(true);
  }

  function jobPath(id, action) {
    return "v1/jobs/" + encodeURIComponent(id) + (action ? "/" + action : "");
  }

  function cancelable(state) {
    return STATES.includes(state) && !TERMINAL.includes(state);
  }

  function retryable(state) {
    return state === "failed" || state === "canceled";
  }

  function jobActions(job) {
    const out = [];
    if (cancelable(job.state))
      out.push(el("button", { type: "button", class: "small cancel", text: "Cancel", "aria-label": "Cancel job " + job.id,
        on: { click: (ev) => act(ev.currentTarget, "POST", jobPath(job.id, "cancel")) } }));
    if (retryable(job.state))
      out.push(el("button", { type: "button", class: "small retry", text: "Retry", "aria-label": "Retry job " + job.id,
        on: { click: (ev) => act(ev.currentTarget, "POST", jobPath(job.id, "retry")) } }));
    return out;
  }

  /* A table cell with a label for the narrow layout, where rows stack. */
  function td(label, props, ...children) {
    return el("td", Object.assign({ "data-label": label }, props || {}), ...children);
  }

  function jobRow(job) {
    const error = job.error ? String(job.error) : "";
    const payload = summary(job.payload);
    return el("tr", { dataset: { jobId: job.id, state: job.state } },
      td("job", {}, el("a", { href: "#/jobs/" + encodeURIComponent(job.id), class: "mono", title: job.id,
        text: shortId(job.id), "aria-label": "job " + job.id })),
      td("type", { class: "c-type", text: job.type }),
      td("queue", { class: "c-queue", text: job.queue }),
      td("state", { class: "c-state" }, stateBadge(job.state), progressOf(job)),
      td("attempts", { class: "num", text: job.attempts + "/" + job.max_attempts }),
      td("last error", { class: "c-error error", title: error || null, text: cut(error, 80) }),
      td("payload", { class: "c-payload mono", title: payload || null, text: cut(payload, 60) }),
      td("created", {}, time(job.created_at)),
      td("actions", { class: "actions" }, ...jobActions(job)));
  }

  /* ---- routing: #/jobs?state=..&queue=..&type=..&batch_id=..&limit=..&cursor=..,
   *      #/jobs/ID, #/batches, #/batches/ID, #/schedules, #/workers, #/nodes ---- */

  function parseHash() {
    let h = location.hash.replace(/^#/, "");
    if (h === "" || h === "/") h = "/jobs";
    const q = h.indexOf("?");
    const path = q < 0 ? h : h.slice(0, q);
    const params = new URLSearchParams(q < 0 ? "" : h.slice(q + 1));
    const parts = path.split("/").filter(Boolean).map((p) => {
      try { return decodeURIComponent(p); } catch (e) { return p; }
    });
    return { parts, params };
  }

  /* Goes to hash with state (history.state: the cursors of the pages
   * before this one, so Newer works after a reload too). */
  function navigate(hash, state) {
    history.pushState(state || null, "", hash);
    route(true);
  }

  function jobsHash(f) {
    const p = new URLSearchParams();
    for (const k of ["state", "queue", "type", "batch_id"]) if (f[k]) p.set(k, f[k]);
    if (f.limit && f.limit !== DEFAULT_PAGE) p.set("limit", String(f.limit));
    if (f.cursor) p.set("cursor", f.cursor);
    const s = p.toString();
    return "#/jobs" + (s ? "?" + s : "");
  }

  /* ---- jobs: the queues and the job list ---- */

  const jobs = { state: "", queue: "", type: "", batch_id: "", limit: DEFAULT_PAGE, cursor: "", next: null,
    text: "" };

  function readJobsRoute(params) {
    jobs.state = params.get("state") || "";
    jobs.queue = params.get("queue") || "";
    jobs.type = params.get("type") || "";
    jobs.batch_id = params.get("batch_id") || "";
    const limit = Number(params.get("limit"));
    jobs.limit = PAGE_SIZES.includes(limit) ? limit : DEFAULT_PAGE;
    jobs.cursor = params.get("cursor") || "";
    jobs.text = "";
    $("f-state").value = STATES.includes(jobs.state) ? jobs.state : "";
    $("f-queue").value = jobs.queue;
    $("f-type").value = jobs.type;
    $("f-batch").value = jobs.batch_id;
    $("f-limit").value = String(jobs.limit);
    for (const [id, on] of [["tab-recent", !jobs.state], ["tab-failed", jobs.state === "failed"]])
      $(id).setAttribute("aria-pressed", String(on));
    updateBulk();
  }

  function cursorsBefore() {
    const st = history.state;
    return st && Array.isArray(st.cursors) ? st.cursors : [];
  }

  function setFilters(f) {
    navigate(jobsHash({ state: f.state, queue: f.queue, type: f.type, batch_id: f.batch_id, limit: jobs.limit }),
      { cursors: [] });
  }

  function jobsQuery() {
    const p = new URLSearchParams();
    p.set("limit", String(jobs.limit));
    for (const k of ["state", "queue", "type", "batch_id"]) if (jobs[k]) p.set(k, jobs[k]);
    if (jobs.cursor) p.set("cursor", jobs.cursor);
    return "v1/jobs?" + p.toString();
  }

  function sparkline(points) {
    const max = Math.max(1, ...points.map((p) => Number(p.finished) || 0));
    const box = el("span", { class: "spark", role: "img",
      "aria-label": "finished per minute: " + points.map((p) => Number(p.finished) || 0).join(", ") });
    for (const p of points) {
      const n = Number(p.finished) || 0;
      const bar = el("span", { class: "bar", title: p.minute + ": " + n + " finished" });
      bar.style.height = Math.max(n ? 8 : 2, Math.round((n / max) * 100)) + "%";
      box.append(bar);
    }
    const last = points.length ? Number(points[points.length - 1].finished) || 0 : 0;
    return el("span", { class: "spark-cell" }, box, el("span", { class: "muted", text: " " + last + " this min" }));
  }

  /* The queue's rate limit: "R / P s", its tokens now, and a 429's pause. */
  function rateCell(rate) {
    if (!rate) return el("span", { class: "muted rate-none", text: "none" });
    const tokens = Math.floor(Number(rate.tokens) || 0);
    const parts = [el("span", { class: "rate-limit", text: rate.limit + " / " + rate.period_s + " s" }),
      el("span", { class: "muted rate-tokens", text: " " + tokens + " of " + rate.burst + " tokens" })];
    if (rate.paused_until)
      parts.push(el("span", { class: "paused rate-paused", title: "paused by a 429 until " + rate.paused_until,
        text: " 429 pause" }));
    return el("span", { class: "rate" }, ...parts);
  }

  function queuePath(name, action) {
    return "v1/queues/" + encodeURIComponent(name) + (action ? "/" + action : "");
  }

  function queueRow(q) {
    const counts = q.counts || {};
    const button = q.paused
      ? el("button", { type: "button", class: "small resume", text: "Resume", "aria-label": "Resume queue " + q.name,
          on: { click: (ev) => act(ev.currentTarget, "POST", queuePath(q.name, "resume")) } })
      : el("button", { type: "button", class: "small pause", text: "Pause", "aria-label": "Pause queue " + q.name,
          on: { click: (ev) => act(ev.currentTarget, "POST", queuePath(q.name, "pause")) } });
    const link = el("a", { href: jobsHash({ queue: q.name, limit: jobs.limit }), class: "qname", text: q.name,
      title: "show this queue's jobs" });
    return el("tr", { dataset: { queue: q.name } },
      td("queue", {}, link, q.external ? el("span", { class: "muted", text: " (external)" }) : null),
      td("state", {}, el("span", { class: q.paused ? "paused" : "active", text: q.paused ? "paused" : "active" })),
      ...STATES.map((s) => td(s, { class: "num count-" + s, text: counts[s] ?? 0 })),
      td("last 15 min", {}, sparkline(Array.isArray(q.throughput) ? q.throughput : [])),
      td("rate limit", {}, rateCell(q.rate)),
      td("actions", { class: "actions" }, button));
  }

  /* Queues come a page at a time, by name, like jobs: a jobqd with
   * thousands of queues costs the page no more than one with a few. */
  let queueCursors = [null];  // queueCursors[i] is the cursor of page i; the last is shown
  let queueNext = null;
  let lastQueues = "";
  async function refreshQueues(force) {
    const p = new URLSearchParams();
    p.set("limit", String(QUEUE_PAGE));
    const c = queueCursors[queueCursors.length - 1];
    if (c) p.set("cursor", c);
    const { data, text } = await api("GET", "v1/queues?" + p.toString());
    const queues = (data && data.queues) || [];
    if (queues.length === 0 && queueCursors.length > 1) {
      queueCursors.pop();  // the queues of this page went away: show the one before
      return refreshQueues(true);
    }
    queueNext = (data && data.next_cursor) || null;
    $("queues-next").disabled = !queueNext;
    $("queues-prev").disabled = queueCursors.length <= 1;
    $("queues-page").textContent = "page " + queueCursors.length;
    show($("queues-pager"), queueNext !== null || queueCursors.length > 1);
    if (text === lastQueues && !force) return;
    lastQueues = text;
    $("queues-body").replaceChildren(...queues.map(queueRow));
    show($("queues-empty"), queues.length === 0);
    $("queue-names").replaceChildren(...queues.map((q) => el("option", { value: q.name })));
  }

  async function refreshJobs(force, gen) {
    let result;
    try {
      result = await api("GET", jobsQuery());
    } catch (e) {
      if (shown(e) && gen === routeGen) {
        const field = e.problem && e.problem.field ? e.problem.field + ": " : "";
        $("jobs-error").textContent = field + e.message;
        show($("jobs-error"), true);
        $("jobs-body").replaceChildren();
        show($("jobs-empty"), false);
        jobs.text = "";
        return;
      }
      throw e;
    }
    if (gen !== routeGen) return;
    show($("jobs-error"), false);
    const { data, text } = result;
    jobs.next = (data && data.next_cursor) || null;
    $("page-older").disabled = !jobs.next;
    $("page-newer").disabled = !jobs.cursor;
    /* history.state holds the cursors of the pages between the first and
     * this one; a link opened without it does not know its page number. */
    $("page-label").textContent = !jobs.cursor ? "page 1"
      : history.state && Array.isArray(history.state.cursors) ? "page " + (cursorsBefore().length + 2) : "a later page";
    if (text === jobs.text && !force) return;
    jobs.text = text;
    const list = (data && data.jobs) || [];
    $("jobs-body").replaceChildren(...list.map(jobRow));
    show($("jobs-empty"), list.length === 0);
  }

  $("filters").addEventListener("submit", (ev) => {
    ev.preventDefault();
    jobs.limit = Number($("f-limit").value) || DEFAULT_PAGE;
    setFilters({ state: $("f-state").value, queue: $("f-queue").value.trim(), type: $("f-type").value.trim(),
      batch_id: $("f-batch").value.trim().toLowerCase() });
  });
  $("f-state").addEventListener("change", () => $("filters").requestSubmit());
  $("f-limit").addEventListener("change", () => $("filters").requestSubmit());
  $("f-clear").addEventListener("click", () => setFilters({}));
  $("tab-recent").addEventListener("click", () => setFilters({ queue: jobs.queue, type: jobs.type, batch_id: jobs.batch_id }));
  $("tab-failed").addEventListener("click", () => setFilters({ state: "failed", queue: jobs.queue, type: jobs.type,
    batch_id: jobs.batch_id }));
  $("page-older").addEventListener("click", () => {
    if (!jobs.next) return;
    const before = jobs.cursor ? [...cursorsBefore(), jobs.cursor] : [];
    navigate(jobsHash(Object.assign({}, jobs, { cursor: jobs.next })), { cursors: before });
  });
  $("page-newer").addEventListener("click", () => {
    const before = cursorsBefore().slice();
    const cursor = before.pop() || "";  // after a reload without history: the first page
    navigate(jobsHash(Object.assign({}, jobs, { cursor })), { cursors: before });
  });
  $("queues-next").addEventListener("click", () => {
    if (!queueNext) return;
    queueCursors.push(queueNext);
    refresh(true);
  });
  $("queues-prev").addEventListener("click", () => {
    if (queueCursors.length > 1) queueCursors.pop();
    refresh(true);
  });

  $("find-job").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const id = $("find-id").value.trim().toLowerCase();
    if (!id) return;
    $("find-id").value = "";
    navigate("#/jobs/" + encodeURIComponent(id));
  });

  /* ---- bulk actions on the filter's jobs ---- */

  const BULK = {
    retry: { verb: "Retry", done: "Retried", button: "bulk-retry", applies: (s) => !s || retryable(s),
      what: (s) => s ? "all " + s : "all failed or canceled" },
    cancel: { verb: "Cancel", done: "Canceled", button: "bulk-cancel", applies: (s) => !s || cancelable(s),
      what: (s) => s ? "all " + s : "all unfinished" },
    delete: { verb: "Delete", done: "Deleted", button: "bulk-delete", applies: (s) => !s || TERMINAL.includes(s),
      what: (s) => s ? "all " + s : "all finished" },
  };

  function bulkFilter() {
    const f = {};
    for (const k of ["state", "queue", "type", "batch_id"]) if (jobs[k]) f[k] = jobs[k];
    return f;
  }

  function describeFilter(f) {
    const parts = [];
    if (f.queue) parts.push("queue " + f.queue);
    if (f.type) parts.push("type " + f.type);
    if (f.batch_id) parts.push("batch " + f.batch_id);
    return parts.length ? " (" + parts.join(", ") + ")" : " (every queue)";
  }

  function updateBulk() {
    for (const [action, b] of Object.entries(BULK)) {
      const button = $(b.button);
      show(button, b.applies(jobs.state));
      button.textContent = b.verb + " " + b.what(jobs.state) + "…";
    }
  }

  /* Calls the action's endpoint page by page to the end; returns the sums. */
  async function bulkLoop(action, filter, dryRun, maxPages) {
    const sum = { matched: 0, done: 0, skipped: 0, more: false };
    let cursor = null;
    for (let i = 0; i < maxPages; i++) {
      const body = { filter, limit: BULK_PAGE, dry_run: dryRun };
      if (cursor) body.cursor = cursor;
      const { data } = await api("POST", "v1/jobs/" + action, body);
      sum.matched += data.matched;
      sum.done += data.done;
      sum.skipped += data.skipped;
      cursor = data.next_cursor;
      if (!cursor) return sum;
    }
    sum.more = true;
    return sum;
  }

  /* Shows the confirmation; resolves true when the action is confirmed. */
  function confirmAction(title, text, yes) {
    const dialog = $("confirm");
    $("confirm-title").textContent = title;
    $("confirm-text").textContent = text;
    $("confirm-yes").textContent = yes;
    return new Promise((resolve) => {
      const done = (answer) => {
        $("confirm-yes").removeEventListener("click", onYes);
        $("confirm-no").removeEventListener("click", onNo);
        dialog.removeEventListener("close", onClose);
        if (dialog.open) dialog.close();
        resolve(answer);
      };
      const onYes = () => done(true);
      const onNo = () => done(false);
      const onClose = () => done(false);  // Escape
      $("confirm-yes").addEventListener("click", onYes);
      $("confirm-no").addEventListener("click", onNo);
      dialog.addEventListener("close", onClose);
      dialog.showModal();
      $("confirm-no").focus();
    });
  }

  async function bulk(action) {
    const b = BULK[action];
    const button = $(b.button);
    const filter = bulkFilter();
    button.disabled = true;
    try {
      const count = await bulkLoop(action, filter, true, BULK_COUNT_PAGES);
      if (count.matched === 0) {
        say("No job matches: nothing to " + action + ".");
        return;
      }
      const n = (count.more ? "more than " : "") + count.matched.toLocaleString("en");
      const jobsWord = count.matched === 1 && !count.more ? "job" : "jobs";
      const text = b.verb + " " + n + " " + (filter.state ? filter.state + " " : "") + jobsWord +
        describeFilter(filter) + "?" + (action === "delete" ? " Deleted jobs cannot be brought back." : "");
      if (!(await confirmAction(b.verb + " " + n + " " + jobsWord, text, b.verb + " " + n + " " + jobsWord)))
        return;
      const sum = await bulkLoop(action, filter, false, Infinity);
      say(b.done + " " + sum.done + " " + (sum.done === 1 ? "job" : "jobs") +
        (sum.skipped ? "; " + sum.skipped + " had changed meanwhile and were left alone" : "") + ".");
    } catch (e) {
      if (shown(e)) notify(e.message);
    } finally {
      button.disabled = false;
      refresh(true);
    }
  }

  for (const action of Object.keys(BULK)) $(BULK[action].button).addEventListener("click", () => bulk(action));

  /* ---- a job ---- */

  let jobText = "";

  /* Empties the job page: nothing of the job shown before may remain. */
  function resetJob(id) {
    jobText = "";
    $("job-id").textContent = id;
    $("job-state").textContent = "";
    show($("job-state"), false);
    show($("job-cancel"), false);
    show($("job-retry"), false);
    show($("job-error-msg"), false);
    show($("job-progress"), false);
    $("job-fields").replaceChildren();
    $("job-payload").textContent = "";
    $("job-result").textContent = "";
    $("job-failure").textContent = "";
    show($("job-result-box"), false);
    show($("job-failure-box"), false);
    $("job-attempts").replaceChildren();
    show($("job-body"), false);
    show($("job-more"), false);
    document.title = "jobq · job " + id;
  }

  async function refreshJob(id, force, gen) {
    let result;
    try {
      result = await api("GET", jobPath(id));
    } catch (e) {
      if (e instanceof ApiError && e.status === 404 && gen === routeGen) {
        resetJob(id);
        $("job-error-msg").textContent = "No job with id " + id + " (it may have been deleted or expired).";
        show($("job-error-msg"), true);
        return;
      }
      throw e;
    }
    if (gen !== routeGen) return;
    const { data: job, text } = result;
    if (text === jobText && !force) return;
    jobText = text;
    show($("job-error-msg"), false);
    renderJob(job);
  }

  function field(name, value) {
    const empty = value === null || value === undefined || value === "";
    return [el("dt", { text: name }), el("dd", {}, empty ? el("span", { class: "muted", text: "–" }) : value)];
  }

  /* The parents as links, the policy, and while blocked how many wait. */
  function dependsOn(job) {
    const ids = Array.isArray(job.depends_on) ? job.depends_on : [];
    if (!ids.length) return "";
    const s = el("span", {});
    ids.forEach((id, i) => {
      if (i) s.append(", ");
      s.append(el("a", { href: "#/jobs/" + encodeURIComponent(id), text: shortId(id), title: id,
        "aria-label": "job " + id }));
    });
    let note = " (if one fails: " + (job.on_dependency_failure || "cancel");
    if (job.state === "blocked" && job.dependencies_pending !== undefined) note += "; " + job.dependencies_pending + " pending";
    s.append(note + ")");
    return s;
  }

  function renderJob(job) {
    $("job-id").textContent = job.id;
    const badge = stateBadge(job.state);
    badge.id = "job-state";
    $("job-state").replaceWith(badge);
    document.title = "jobq · " + job.type + " " + job.state;
    show($("job-cancel"), cancelable(job.state));
    show($("job-retry"), retryable(job.state));
    $("job-cancel").setAttribute("aria-label", "Cancel job " + job.id);
    $("job-retry").setAttribute("aria-label", "Retry job " + job.id);

    const running = job.state === "running";
    show($("job-progress"), running);
    if (running) {
      const pct = job.progress ? Number(job.progress.percent) || 0 : 0;
      $("job-progress-bar").value = pct;
      $("job-progress-text").textContent = Math.round(pct) + "%" +
        (job.progress && job.progress.message ? " · " + job.progress.message : "");
    }

    const cb = job.callback;
    const sched = job.schedule;
    $("job-fields").replaceChildren(
      ...field("type", job.type),
      ...field("queue", el("a", { href: jobsHash({ queue: job.queue, limit: jobs.limit }), text: job.queue })),
      ...field("priority", String(job.priority)),
      ...field("attempts", job.attempts + " of " + job.max_attempts),
      ...field("created", time(job.created_at)),
      ...field("run at", time(job.run_at)),
      ...field("started", time(job.started_at)),
      ...field("finished", time(job.finished_at)),
      ...field("timeout", job.timeout_s + " s"),
      ...field("node", job.node || ""),
      ...field("batch", job.batch_id ? el("a", { href: "#/batches/" + encodeURIComponent(job.batch_id),
        class: "mono", text: job.batch_id }) : ""),
      ...field("schedule", sched && sched.name ? el("span", {}, el("a", { href: "#/schedules", text: sched.name }),
        sched.fire_at ? " · fire at " + sched.fire_at : "") : ""),
      ...field("depends on", dependsOn(job)),
      ...field("callback", cb ? cb.state + " → " + cb.url + (cb.last_error ? " (" + cb.last_error + ")" : "") : ""));

    $("job-payload").textContent = pretty(job.payload);
    show($("job-result-box"), job.result !== null && job.result !== undefined);
    $("job-result").textContent = pretty(job.result);
    show($("job-failure-box"), !!job.error);
    $("job-failure").textContent = job.error || "";

    const history = Array.isArray(job.attempt_history) ? job.attempt_history : [];
    $("job-attempts").replaceChildren(...history.map((a) => el("tr", {},
      td("#", { class: "num", text: a.attempt }),
      td("started", {}, time(a.started_at)),
      td("finished", {}, time(a.finished_at)),
      td("outcome", { text: a.outcome || "" }),
      td("error", { class: "error", text: a.error || "" }))));
    show($("job-attempts-empty"), history.length === 0);
    show($("job-body"), true);
    show($("job-more"), true);
  }

  $("job-cancel").addEventListener("click", (ev) => act(ev.currentTarget, "POST", jobPath(current.id, "cancel")));
  $("job-retry").addEventListener("click", (ev) => act(ev.currentTarget, "POST", jobPath(current.id, "retry")));

  /* ---- a batch ---- */

  const batch = { text: "", cursors: [null], next: null };

  function resetBatch(id) {
    batch.text = "";
    batch.cursors = [null];
    batch.next = null;
    show($("batch-box"), !!id);
    $("batch-id").textContent = id || "";
    $("batch-done").textContent = "";
    show($("batch-error"), false);
    show($("batch-body"), false);
    show($("batch-jobs-card"), false);
    $("batch-counts-head").replaceChildren();
    $("batch-counts").replaceChildren();
    $("batch-fields").replaceChildren();
    $("batch-jobs-body").replaceChildren();
    $("batch-jobs-link").href = jobsHash({ batch_id: id || "" });
    $("find-batch-id").value = "";
  }

  async function refreshBatch(id, force, gen) {
    const p = new URLSearchParams({ include: "jobs", limit: "25" });
    const c = batch.cursors[batch.cursors.length - 1];
    if (c) p.set("cursor", c);
    let result;
    try {
      result = await api("GET", "v1/batches/" + encodeURIComponent(id) + "?" + p.toString());
    } catch (e) {
      if (e instanceof ApiError && e.status === 404 && gen === routeGen) {
        resetBatch(id);
        $("batch-error").textContent = "No batch with id " + id + ".";
        show($("batch-error"), true);
        return;
      }
      throw e;
    }
    if (gen !== routeGen) return;
    const { data: b, text } = result;
    batch.next = b.next_cursor || null;
    $("batch-older").disabled = !batch.next;
    $("batch-newer").disabled = batch.cursors.length <= 1;
    $("batch-page").textContent = "page " + batch.cursors.length;
    if (text === batch.text && !force) return;
    batch.text = text;
    const counts = b.counts || {};
    const states = STATES.filter((s) => s in counts || s !== "blocked");
    $("batch-counts-head").replaceChildren(el("th", { scope: "col", class: "num", text: "total" }),
      ...states.map((s) => el("th", { scope: "col", class: "num", text: s })));
    $("batch-counts").replaceChildren(el("td", { class: "num count-total", text: b.total }),
      ...states.map((s) => el("td", { class: "num count-" + s, text: counts[s] ?? 0 })));
    const finished = !!b.finished_at;
    const badge = el("span", { id: "batch-done", class: "state " + (finished ? "state-succeeded" : "state-running"),
      text: finished ? "finished" : "in progress" });
    $("batch-done").replaceWith(badge);
    const cb = b.callback;
    $("batch-fields").replaceChildren(
      ...field("created", time(b.created_at)),
      ...field("finished", time(b.finished_at)),
      ...field("callback", cb ? cb.state + " → " + cb.url + (cb.last_error ? " (" + cb.last_error + ")" : "") : ""));
    const list = Array.isArray(b.jobs) ? b.jobs : [];
    $("batch-jobs-body").replaceChildren(...list.map(jobRow));
    show($("batch-body"), true);
    show($("batch-jobs-card"), true);
  }

  $("find-batch").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const id = $("find-batch-id").value.trim().toLowerCase();
    if (id) navigate("#/batches/" + encodeURIComponent(id));
  });
  $("batch-older").addEventListener("click", () => {
    if (!batch.next) return;
    batch.cursors.push(batch.next);
    refresh(true);
  });
  $("batch-newer").addEventListener("click", () => {
    if (batch.cursors.length > 1) batch.cursors.pop();
    refresh(true);
  });

  /* ---- schedules ---- */

  const schedules = { text: "", cursors: [null], next: null };

  function schedulePath(name, action) {
    return "v1/schedules/" + encodeURIComponent(name) + (action ? "/" + action : "");
  }

  function scheduleRow(s) {
    const when = s.cron ? s.cron : s.every_s !== undefined && s.every_s !== null ? "every " + s.every_s + " s" : "";
    const job = s.job || {};
    const buttons = [
      s.paused
        ? el("button", { type: "button", class: "small resume", text: "Resume", "aria-label": "Resume schedule " + s.name,
            on: { click: (ev) => act(ev.currentTarget, "POST", schedulePath(s.name, "resume")) } })
        : el("button", { type: "button", class: "small pause", text: "Pause", "aria-label": "Pause schedule " + s.name,
            on: { click: (ev) => act(ev.currentTarget, "POST", schedulePath(s.name, "pause")) } }),
      el("button", { type: "button", class: "small", text: "Run now", "aria-label": "Run now, schedule " + s.name,
        on: { click: (ev) => act(ev.currentTarget, "POST", schedulePath(s.name, "run")) } }),
    ];
    return el("tr", { dataset: { schedule: s.name } },
      td("name", { class: "c-name", text: s.name }),
      td("when", { class: "mono", text: when }),
      td("time zone", { text: s.tz || "UTC" }),
      td("next fire", {}, time(s.next_fire_at)),
      td("last fire", {}, time(s.last_fire_at)),
      td("state", {}, el("span", { class: s.paused ? "paused" : "active", text: s.paused ? "paused" : "active" })),
      td("job", { class: "mono", text: (job.type || "") + (job.queue ? " → " + job.queue : "") }),
      td("actions", { class: "actions" }, ...buttons));
  }

  async function refreshSchedules(force, gen) {
    const p = new URLSearchParams({ limit: "50" });
    const c = schedules.cursors[schedules.cursors.length - 1];
    if (c) p.set("cursor", c);
    let result;
    try {
      result = await api("GET", "v1/schedules?" + p.toString());
    } catch (e) {
      if (e instanceof ApiError && (e.status === 404 || e.status === 405) && gen === routeGen) {
        show($("schedules-unavailable"), true);
        show($("schedules-table"), false);
        show($("schedules-empty"), false);
        show($("schedules-pager"), false);
        return;
      }
      throw e;
    }
    if (gen !== routeGen) return;
    const { data, text } = result;
    show($("schedules-unavailable"), false);
    show($("schedules-table"), true);
    schedules.next = (data && data.next_cursor) || null;
    $("schedules-next").disabled = !schedules.next;
    $("schedules-prev").disabled = schedules.cursors.length <= 1;
    show($("schedules-pager"), !!schedules.next || schedules.cursors.length > 1);
    if (text === schedules.text && !force) return;
    schedules.text = text;
    const list = Array.isArray(data) ? data : (data && data.schedules) || [];
    $("schedules-body").replaceChildren(...list.map(scheduleRow));
    show($("schedules-empty"), list.length === 0);
  }

  $("schedules-next").addEventListener("click", () => {
    if (!schedules.next) return;
    schedules.cursors.push(schedules.next);
    refresh(true);
  });
  $("schedules-prev").addEventListener("click", () => {
    if (schedules.cursors.length > 1) schedules.cursors.pop();
    refresh(true);
  });

  /* ---- external workers ---- */

  let workersText = "";

  async function refreshWorkers(force, gen) {
    /* One page of queues (the API's most); external ones are few. */
    const [qs, ls] = await Promise.all([api("GET", "v1/queues?limit=1000"), api("GET", "v1/leases?limit=100")]);
    if (gen !== routeGen) return;
    const text = qs.text + ls.text;
    if (text === workersText && !force) return;
    workersText = text;
    const leases = (ls.data && ls.data.leases) || [];
    const external = ((qs.data && qs.data.queues) || []).filter((q) => q.external);
    $("ext-body").replaceChildren(...external.map((q) => {
      const counts = q.counts || {};
      return el("tr", { dataset: { queue: q.name } },
        td("queue", {}, el("a", { href: jobsHash({ queue: q.name, limit: jobs.limit }), class: "qname", text: q.name })),
        td("state", {}, el("span", { class: q.paused ? "paused" : "active", text: q.paused ? "paused" : "active" })),
        td("queued", { class: "num count-queued", text: counts.queued ?? 0 }),
        td("leased now", { class: "num count-running", text: counts.running ?? 0 }),
        td("limit", { class: "num", text: q.concurrency ?? "–" }),
        td("oldest queued", { class: "num", text: q.oldest_queued_age_s === null || q.oldest_queued_age_s === undefined
          ? "–" : span(Math.round(q.oldest_queued_age_s)) }));
    }));
    show($("ext-empty"), external.length === 0);
    $("leases-body").replaceChildren(...leases.map((l) => el("tr", { dataset: { jobId: l.job_id } },
      td("job", {}, el("a", { href: "#/jobs/" + encodeURIComponent(l.job_id), class: "mono", title: l.job_id,
        text: shortId(l.job_id), "aria-label": "job " + l.job_id })),
      td("queue", { text: l.queue }),
      td("type", { text: l.type }),
      td("attempt", { class: "num", text: l.attempt }),
      td("started", {}, time(l.started_at)),
      td("lease expires", { class: "c-expires" }, time(l.lease_expires_at)),
      td("node", { class: "mono", title: l.node || null, text: l.node ? shortId(l.node) : "–" }))));
    show($("leases-empty"), leases.length === 0);
  }

  /* ---- nodes ---- */

  let nodesText = "";

  async function refreshNodes(force, gen) {
    const { data, text } = await api("GET", "v1/cluster");
    if (gen !== routeGen || (text === nodesText && !force)) return;
    nodesText = text;
    const nodes = (data && data.nodes) || [];
    const alive = nodes.filter((n) => n.alive).length;
    $("nodes-summary").textContent = "Backend " + data.backend + " · " + alive + " of " + nodes.length +
      " alive · this page is served by " + shortId(data.node) + (data.leader ? "" : " · no leader now");
    $("nodes-body").replaceChildren(...nodes.map((n) => el("tr", { dataset: { node: n.id } },
      td("node", { class: "mono", title: n.id, text: shortId(n.id) + (n.id === data.node ? " (this one)" : "") }),
      td("host", { text: n.host }),
      td("pid", { class: "num", text: n.pid }),
      td("started", {}, time(n.started_at)),
      td("heartbeat", {}, time(n.heartbeat_at)),
      td("state", {}, el("span", { class: n.alive ? "active" : "paused", text: n.alive ? "alive" : "dead" }),
        n.leader ? el("span", { class: "leader", text: " · leader" }) : null),
      td("running", { class: "num", text: n.running ?? "–" }))));
  }

  /* ---- views, routing and polling ---- */

  const current = { view: "jobs", id: null };
  let routeGen = 0;   // bumped at each route: a late answer for an old page is dropped

  const VIEWS = {
    jobs: { el: "view-jobs", load: async (force, gen) => { await refreshQueues(force); await refreshJobs(force, gen); } },
    job: { el: "view-job", load: (force, gen) => refreshJob(current.id, force, gen) },
    batch: { el: "view-batch", load: (force, gen) => current.id ? refreshBatch(current.id, force, gen) : null },
    schedules: { el: "view-schedules", load: refreshSchedules },
    workers: { el: "view-workers", load: refreshWorkers },
    nodes: { el: "view-nodes", load: refreshNodes },
  };

  let routed = null;
  function route(force) {
    const key = location.hash + "|" + JSON.stringify(history.state);
    if (key === routed && !force) return;
    routed = key;
    routeGen++;
    const { parts, params } = parseHash();
    let view = "jobs", id = null;
    if (parts[0] === "jobs" && parts[1]) { view = "job"; id = parts[1]; }
    else if (parts[0] === "batches") { view = "batch"; id = parts[1] || null; }
    else if (parts[0] === "schedules" || parts[0] === "workers" || parts[0] === "nodes") view = parts[0];
    current.view = view;
    current.id = id;
    if (view === "jobs") {
      readJobsRoute(params);
      $("job-back").href = location.hash || "#/jobs";   // back to this list, filters and all
    }
    if (view === "job") resetJob(id);
    if (view === "batch") resetBatch(id);
    if (view === "schedules") { schedules.text = ""; schedules.cursors = [null]; }
    workersText = nodesText = "";
    for (const [name, v] of Object.entries(VIEWS)) show($(v.el), name === view && $("auth").hidden);
    for (const a of document.querySelectorAll("[data-nav]")) {
      const here = a.dataset.nav === (view === "job" ? "jobs" : view === "batch" ? "batches" : view);
      if (here) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
    if (view !== "job") document.title = "jobq · " + (view === "batch" ? "batches" : view);
    refresh(true);
  }

  let timer = 0;
  let busy = false;
  let again = false;
  let polls = 0;

  /* One refresh at a time; a forced one asked for during another runs next.
   * A hidden tab does not poll: the next refresh comes when it is shown. */
  async function refresh(force) {
    if (busy) {
      again = again || force;
      return;
    }
    clearTimeout(timer);
    timer = 0;
    if (document.hidden) {
      pollState("paused");
      return;
    }
    busy = true;
    pollState("busy");
    document.body.dataset.polls = String(++polls);
    const gen = routeGen;
    try {
      if (!$("auth").hidden && !sessionStorage.getItem(KEY_NAME)) return;
      await VIEWS[current.view].load(force, gen);
      show($("auth"), false);
      if (gen === routeGen) show($(VIEWS[current.view].el), true);
      if (sessionStorage.getItem(KEY_NAME)) show($("forget-key"), true);
    } catch (e) {
      if (!(e instanceof ApiError)) setLive(false, "jobqd is not answering");
      else if (shown(e)) notify(e.message);
    } finally {
      busy = false;
      tickTimes();
      if (again) {
        again = false;
        refresh(true);
      } else if (!document.hidden) {
        timer = setTimeout(() => refresh(false), POLL_MS);
        pollState("waiting");
      } else {
        pollState("paused");
      }
    }
  }

  /* What the poller does now, on <body data-polling>: busy (a refresh is
   * out), waiting (for the next one), paused (the tab is hidden). */
  function pollState(s) {
    document.body.dataset.polling = s;
    if (s === "paused") {
      $("live").textContent = "paused while the tab is hidden";
      $("live").classList.remove("down");
    }
  }

  let ticker = 0;
  function startTicker() {
    clearInterval(ticker);
    ticker = setInterval(tickTimes, 1000);
  }

  document.addEventListener("visibilitychange", () => {
    if (document.hidden) {
      clearTimeout(timer);
      timer = 0;
      if (!busy) pollState("paused");  // else the refresh out says so when it ends
      clearInterval(ticker);
    } else {
      startTicker();
      refresh(true);
    }
  });

  window.addEventListener("hashchange", () => route(false));
  window.addEventListener("popstate", () => route(false));
  startTicker();
  route(true);
})();
