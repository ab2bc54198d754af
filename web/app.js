/* jobq dashboard: polls the API about once a second and redraws.
 *
 * Everything the API returns is untrusted (payloads, queue names, error
 * messages): the DOM is built with createElement and textContent only.
 * Every URL is relative ("v1/jobs"), so the page works under a proxy path
 * prefix such as /jobq/. The API key, when jobqd asks for one, lives in
 * sessionStorage and goes out as "Authorization: Bearer KEY". */
"use strict";

(function () {
  const POLL_MS = 1000;
  const PAGE_SIZE = 25;
  const KEY_NAME = "jobq.key";
  const STATES = ["blocked", "scheduled", "queued", "running", "succeeded", "failed", "canceled"];

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
      if (c === null || c === undefined) continue;
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

  function time(iso) {
    return iso ? el("time", { datetime: iso, title: iso, text: ago(iso) }) : el("span", { class: "muted", text: "–" });
  }

  function stateBadge(state) {
    return el("span", { class: "state state-" + (STATES.includes(state) ? state : "other"), text: state });
  }

  function progressCell(job) {
    if (job.state !== "running" || !job.progress) return "";
    const pct = Number(job.progress.percent) || 0;
    return el("span", { class: "progress-cell", title: job.progress.message || "" },
      el("progress", { max: 100, value: pct }), " " + Math.round(pct) + "%");
  }

  function pretty(value) {
    return value === undefined ? "" : JSON.stringify(value, null, 2);
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

  function askForKey() {
    sessionStorage.removeItem(KEY_NAME);
    show($("auth"), true);
    show($("forget-key"), false);
    show($("overview"), false);
    show($("job"), false);
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
    route();
  });

  $("forget-key").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_NAME);
    show($("forget-key"), false);
    route();
  });

  /* Runs an action from a button; the next poll shows its effect. */
  async function act(button, method, path) {
    button.disabled = true;
    try {
      await api(method, path);
    } catch (e) {
      if (e instanceof ApiError && e.status !== 401 && e.status !== 403) notify(e.message);
    } finally {
      button.disabled = false;
    }
    refresh(true);
  }

  function jobPath(id, action) {
    return "v1/jobs/" + encodeURIComponent(id) + (action ? "/" + action : "");
  }

  function jobActions(job) {
    const out = [];
    if (job.state === "queued" || job.state === "scheduled" || job.state === "blocked" || job.state === "running")
      out.push(el("button", { type: "button", class: "small cancel", text: "Cancel",
        on: { click: (ev) => act(ev.currentTarget, "POST", jobPath(job.id, "cancel")) } }));
    if (job.state === "failed" || job.state === "canceled")
      out.push(el("button", { type: "button", class: "small retry", text: "Retry",
        on: { click: (ev) => act(ev.currentTarget, "POST", jobPath(job.id, "retry")) } }));
    return out;
  }

  /* ---- overview: queues ---- */

  function sparkline(points) {
    const max = Math.max(1, ...points.map((p) => Number(p.finished) || 0));
    const box = el("span", { class: "spark" });
    for (const p of points) {
      const n = Number(p.finished) || 0;
      const bar = el("span", { class: "bar", title: p.minute + ": " + n + " finished" });
      bar.style.height = Math.max(n ? 8 : 2, Math.round((n / max) * 100)) + "%";
      box.append(bar);
    }
    const last = points.length ? Number(points[points.length - 1].finished) || 0 : 0;
    return el("span", { class: "spark-cell" }, box, el("span", { class: "muted", text: " " + last + " this min" }));
  }

  function queueRow(q) {
    const counts = q.counts || {};
    const button = q.paused
      ? el("button", { type: "button", class: "small resume", text: "Resume",
          on: { click: (ev) => act(ev.currentTarget, "POST", "v1/queues/" + encodeURIComponent(q.name) + "/resume") } })
      : el("button", { type: "button", class: "small pause", text: "Pause",
          on: { click: (ev) => act(ev.currentTarget, "POST", "v1/queues/" + encodeURIComponent(q.name) + "/pause") } });
    const filter = el("a", { href: "#/", class: "qname", text: q.name, title: "show this queue's jobs",
      on: { click: (ev) => { ev.preventDefault(); setFilters({ queue: q.name }); } } });
    return el("tr", { dataset: { queue: q.name } },
      el("td", {}, filter),
      el("td", {}, el("span", { class: q.paused ? "paused" : "active", text: q.paused ? "paused" : "active" })),
      ...STATES.map((s) => el("td", { class: "num count-" + s, text: counts[s] ?? 0 })),
      el("td", {}, sparkline(Array.isArray(q.throughput) ? q.throughput : [])),
      el("td", {}, rateCell(q.rate)),
      el("td", {}, button));
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

  /* Queues come a page at a time, by name, like jobs: a jobqd with
   * thousands of queues costs the page no more than one with a few. */
  let queueCursors = [null];  // queueCursors[i] is the cursor of page i; the last is shown
  let queueNext = null;
  let lastQueues = "";
  async function refreshQueues(force) {
    const p = new URLSearchParams();
    p.set("limit", String(PAGE_SIZE));
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

  /* ---- overview: jobs ---- */

  const filters = { state: "", queue: "", type: "" };
  let cursors = [null];  // cursors[i] is the cursor of page i; the last is shown
  let nextCursor = null;

  function setFilters(f) {
    filters.state = f.state || "";
    filters.queue = f.queue || "";
    filters.type = f.type || "";
    $("f-state").value = filters.state;
    $("f-queue").value = filters.queue;
    $("f-type").value = filters.type;
    cursors = [null];
    if (location.hash !== "#/" && location.hash !== "") location.hash = "#/";
    refresh(true);
  }

  function jobsQuery() {
    const p = new URLSearchParams();
    p.set("limit", String(PAGE_SIZE));
    for (const k of ["state", "queue", "type"]) if (filters[k]) p.set(k, filters[k]);
    const c = cursors[cursors.length - 1];
    if (c) p.set("cursor", c);
    return "v1/jobs?" + p.toString();
  }

  function jobRow(job) {
    return el("tr", { dataset: { jobId: job.id, state: job.state } },
      el("td", {}, el("a", { href: "#/jobs/" + encodeURIComponent(job.id), class: "mono", text: job.id })),
      el("td", { text: job.type }),
      el("td", { text: job.queue }),
      el("td", {}, stateBadge(job.state)),
      el("td", {}, progressCell(job)),
      el("td", { class: "num", text: job.attempts + "/" + job.max_attempts }),
      el("td", {}, time(job.created_at)),
      el("td", { class: "actions" }, ...jobActions(job)));
  }

  let lastJobs = "";
  async function refreshJobs(force) {
    let result;
    try {
      result = await api("GET", jobsQuery());
    } catch (e) {
      if (e instanceof ApiError && e.status !== 401 && e.status !== 403) {
        const field = e.problem && e.problem.field ? e.problem.field + ": " : "";
        $("jobs-error").textContent = field + e.message;
        show($("jobs-error"), true);
        $("jobs-body").replaceChildren();
        lastJobs = "";
        return;
      }
      throw e;
    }
    show($("jobs-error"), false);
    const { data, text } = result;
    nextCursor = (data && data.next_cursor) || null;
    $("page-older").disabled = !nextCursor;
    $("page-newer").disabled = cursors.length <= 1;
    $("page-label").textContent = "page " + cursors.length;
    if (text === lastJobs && !force) return;
    lastJobs = text;
    const jobs = (data && data.jobs) || [];
    $("jobs-body").replaceChildren(...jobs.map(jobRow));
    show($("jobs-empty"), jobs.length === 0);
  }

  $("filters").addEventListener("submit", (ev) => {
    ev.preventDefault();
    setFilters({ state: $("f-state").value, queue: $("f-queue").value.trim(), type: $("f-type").value.trim() });
  });
  $("f-state").addEventListener("change", () => $("filters").requestSubmit());
  $("f-clear").addEventListener("click", () => setFilters({}));
  $("tab-recent").addEventListener("click", () => setFilters({ queue: filters.queue, type: filters.type }));
  $("tab-failed").addEventListener("click", () => setFilters({ state: "failed", queue: filters.queue, type: filters.type }));
  $("page-older").addEventListener("click", () => {
    if (!nextCursor) return;
    cursors.push(nextCursor);
    refresh(true);
  });
  $("page-newer").addEventListener("click", () => {
    if (cursors.length > 1) cursors.pop();
    refresh(true);
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

  /* ---- job page ---- */

  let lastJob = "";
  async function refreshJob(id, force) {
    let result;
    try {
      result = await api("GET", jobPath(id));
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) {
        $("job-id").textContent = id;
        $("job-error-msg").textContent = "No such job (it may have been deleted or expired).";
        show($("job-error-msg"), true);
        return;
      }
      throw e;
    }
    show($("job-error-msg"), false);
    const { data: job, text } = result;
    if (text === lastJob && !force) return;
    lastJob = text;
    renderJob(job);
  }

  function field(name, value) {
    return [el("dt", { text: name }), el("dd", {}, value === null || value === undefined || value === "" ? el("span", { class: "muted", text: "–" }) : value)];
  }

  /* The parents as links, the policy, and while blocked how many wait. */
  function dependsOn(job) {
    const ids = job.depends_on || [];
    if (!ids.length) return "";
    const span = el("span", {});
    ids.forEach((id, i) => {
      if (i) span.append(", ");
      span.append(el("a", { href: "#/jobs/" + encodeURIComponent(id), text: id.slice(0, 8) + "…", title: id }));
    });
    let note = " (if one fails: " + (job.on_dependency_failure || "cancel");
    if (job.state === "blocked") note += "; " + job.dependencies_pending + " pending";
    span.append(note + ")");
    return span;
  }

  function renderJob(job) {
    $("job-id").textContent = job.id;
    $("job-state").replaceWith(Object.assign(stateBadge(job.state), { id: "job-state" }));
    document.title = "jobq · " + job.type + " " + job.state;
    const running = job.state === "running";
    show($("job-cancel"), running || job.state === "queued" || job.state === "scheduled" || job.state === "blocked");
    show($("job-retry"), job.state === "failed" || job.state === "canceled");

    show($("job-progress"), running);
    if (running) {
      const pct = job.progress ? Number(job.progress.percent) || 0 : 0;
      $("job-progress-bar").value = pct;
      $("job-progress-text").textContent = Math.round(pct) + "%" +
        (job.progress && job.progress.message ? " · " + job.progress.message : "");
    }

    const cb = job.callback;
    $("job-fields").replaceChildren(
      ...field("type", job.type),
      ...field("queue", job.queue),
      ...field("priority", String(job.priority)),
      ...field("attempts", job.attempts + " of " + job.max_attempts),
      ...field("created", time(job.created_at)),
      ...field("run at", time(job.run_at)),
      ...field("started", time(job.started_at)),
      ...field("finished", time(job.finished_at)),
      ...field("timeout", job.timeout_s + " s"),
      ...field("batch", job.batch_id),
      ...field("depends on", dependsOn(job)),
      ...field("callback", cb ? cb.state + " → " + cb.url + (cb.last_error ? " (" + cb.last_error + ")" : "") : ""));

    $("job-payload").textContent = pretty(job.payload);
    show($("job-result-box"), job.result !== null && job.result !== undefined);
    $("job-result").textContent = pretty(job.result);
    show($("job-failure-box"), !!job.error);
    $("job-failure").textContent = job.error || "";

    const history = Array.isArray(job.attempt_history) ? job.attempt_history : [];
    $("job-attempts").replaceChildren(...history.map((a) => el("tr", {},
      el("td", { class: "num", text: a.attempt }),
      el("td", {}, time(a.started_at)),
      el("td", {}, time(a.finished_at)),
      el("td", { text: a.outcome || "" }),
      el("td", { class: "error", text: a.error || "" }))));
    show($("job-attempts-empty"), history.length === 0);
  }

  $("job-cancel").addEventListener("click", (ev) => act(ev.currentTarget, "POST", jobPath(currentJob, "cancel")));
  $("job-retry").addEventListener("click", (ev) => act(ev.currentTarget, "POST", jobPath(currentJob, "retry")));

  /* ---- routing and polling ---- */

  /* ---- schedules ---- */

  function schedulePath(name, action) {
    return "v1/schedules/" + encodeURIComponent(name) + (action ? "/" + action : "");
  }

  function scheduleRow(sc) {
    const button = (label, cls, action) => el("button", { type: "button", class: "small " + cls, text: label,
      on: { click: (ev) => act(ev.currentTarget, "POST", schedulePath(sc.name, action)) } });
    const when = sc.cron !== null && sc.cron !== undefined ? sc.cron : "every " + sc.every_s + " s";
    return el("tr", { dataset: { schedule: sc.name } },
      el("td", { class: "sname", text: sc.name }),
      el("td", {}, el("code", { text: when })),
      el("td", { text: sc.tz }),
      el("td", {}, sc.next_fire_at ? time(sc.next_fire_at) : el("span", { class: "muted", text: "—" })),
      el("td", {}, sc.last_fire_at ? time(sc.last_fire_at) : el("span", { class: "muted", text: "never" })),
      el("td", {}, el("span", { class: sc.paused ? "paused" : "active", text: sc.paused ? "paused" : "active" })),
      el("td", {}, sc.paused ? button("Resume", "resume", "resume") : button("Pause", "pause", "pause"),
        button("Run now", "run", "run")));
  }

  let scheduleCursors = [null];
  let scheduleNext = null;
  let lastSchedules = "";
  async function refreshSchedules(force) {
    const p = new URLSearchParams();
    p.set("limit", String(PAGE_SIZE));
    const c = scheduleCursors[scheduleCursors.length - 1];
    if (c) p.set("cursor", c);
    const { data, text } = await api("GET", "v1/schedules?" + p.toString());
    const list = (data && data.schedules) || [];
    if (list.length === 0 && scheduleCursors.length > 1) {
      scheduleCursors.pop();
      return refreshSchedules(true);
    }
    scheduleNext = (data && data.next_cursor) || null;
    $("schedules-next").disabled = !scheduleNext;
    $("schedules-prev").disabled = scheduleCursors.length <= 1;
    $("schedules-page").textContent = "page " + scheduleCursors.length;
    show($("schedules-pager"), scheduleNext !== null || scheduleCursors.length > 1);
    if (text === lastSchedules && !force) return;
    lastSchedules = text;
    $("schedules-body").replaceChildren(...list.map(scheduleRow));
    show($("schedules-empty"), list.length === 0);
  }

  $("schedules-next").addEventListener("click", () => {
    if (scheduleNext) scheduleCursors.push(scheduleNext);
    refresh(true);
  });
  $("schedules-prev").addEventListener("click", () => {
    if (scheduleCursors.length > 1) scheduleCursors.pop();
    refresh(true);
  });

  let currentJob = null;
  let onSchedules = false;
  let timer = 0;
  let busy = false;
  let again = false;

  function route() {
    const m = /^#\/jobs\/([^/]+)$/.exec(location.hash);
    currentJob = m ? decodeURIComponent(m[1]) : null;
    onSchedules = !currentJob && location.hash === "#/schedules";
    lastJob = "";
    lastSchedules = "";
    show($("overview"), !currentJob && !onSchedules);
    show($("schedules"), onSchedules);
    show($("job"), !!currentJob);
    if (!currentJob) document.title = "jobq";
    refresh(true);
  }

  /* One refresh at a time; a forced one asked for during another runs next. */
  async function refresh(force) {
    if (busy) {
      again = again || force;
      return;
    }
    busy = true;
    clearTimeout(timer);
    try {
      if (!$("auth").hidden && !sessionStorage.getItem(KEY_NAME)) return;
      if (currentJob) {
        await refreshJob(currentJob, force);
      } else if (onSchedules) {
        await refreshSchedules(force);
      } else {
        await refreshQueues(force);
        await refreshJobs(force);
      }
      show($("auth"), false);
      show(currentJob ? $("job") : onSchedules ? $("schedules") : $("overview"), true);
      if (sessionStorage.getItem(KEY_NAME)) show($("forget-key"), true);
    } catch (e) {
      if (!(e instanceof ApiError)) setLive(false, "jobqd is not answering");
    } finally {
      busy = false;
      if (again) {
        again = false;
        refresh(true);
      } else {
        timer = setTimeout(() => refresh(false), POLL_MS);
      }
    }
  }

  window.addEventListener("hashchange", route);
  route();
})();
