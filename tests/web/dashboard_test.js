// Browser test of the dashboard: a real jobqd, Debian's chromium driven by
// playwright-core, and the page doing what a user does: every page (jobs, a
// job, batches, schedules, external workers, nodes), the state kept in the
// URL, bulk actions behind their confirmation, the 390 px layout, and axe-core
// on every page, failing on any violation. Every wait is bounded; the whole
// run is killed after RUN_LIMIT_MS.
//
// Env: JOBQD (default build/jobqd-test), CHROMIUM (default /usr/bin/chromium),
// OUT_DIR (default build/test-output, where dashboard.png goes), ONLY (a
// regular expression: run the first step, which opens the page, and the
// steps whose names match; later steps may need what earlier ones made).
"use strict";

const assert = require("node:assert/strict");
const fs = require("node:fs");
const http = require("node:http");
const os = require("node:os");
const path = require("node:path");
const { spawn } = require("node:child_process");
const { chromium } = require("playwright-core");

const JOBQD = process.env.JOBQD || "build/jobqd-test";
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const OUT_DIR = process.env.OUT_DIR || "build/test-output";
const WAIT_MS = 15000;        // one step's bound
const RUN_LIMIT_MS = 300000;  // the whole run's bound
const AXE_SOURCE = fs.readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
const XSS = '<img src=x onerror="window.__xss = 1">';

let jobqd = null;
let browser = null;
let proxy = null;

/* ---- jobqd ---- */

function startJobqd(extraEnv = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "jobq-web-"));
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("JOBQ_")) env[k] = v;
  Object.assign(env, extraEnv);
  const child = spawn(JOBQD, ["--listen", "127.0.0.1:0", "--db", path.join(dir, "jobq.db"),
    "--workers", "4", "--shutdown-grace", "1", "--log-level", "warn", "--external-queue", "ext"],
  { env, stdio: ["ignore", "ignore", "pipe"] });
  const d = { child, dir, log: "", base: null, exited: null };
  child.on("exit", (code, signal) => { d.exited = { code, signal }; });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("jobqd did not print its address in 10 s:\n" + d.log)), 10000);
    child.stderr.on("data", (chunk) => {
      d.log += chunk.toString();
      const m = /jobqd: listening on (http:\/\/\S+)/.exec(d.log);
      if (m && !d.base) {
        d.base = m[1];
        clearTimeout(timer);
        resolve(d);
      }
    });
    child.on("error", (e) => { clearTimeout(timer); reject(e); });
    child.on("exit", () => { clearTimeout(timer); if (!d.base) reject(new Error("jobqd exited:\n" + d.log)); });
  });
}

async function stopJobqd(d) {
  if (!d || d.exited) return d && d.exited;
  const done = new Promise((resolve) => d.child.on("exit", (code, signal) => resolve({ code, signal })));
  d.child.kill("SIGTERM");
  const timer = setTimeout(() => d.child.kill("SIGKILL"), 15000);
  const st = await done;
  clearTimeout(timer);
  return st;
}

function sanitizerReport(log) {
  return /ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer|WARNING: ThreadSanitizer/.test(log);
}

async function api(method, p, body) {
  const resp = await fetch(jobqd.base + "/" + p, {
    method,
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await resp.text();
  return { status: resp.status, json: text ? JSON.parse(text) : null };
}

async function submit(job) {
  const r = await api("POST", "v1/jobs", job);
  assert.equal(r.status, 201, "submit " + JSON.stringify(job) + ": " + JSON.stringify(r.json));
  return r.json.id;
}

async function jobState(id) {
  const r = await api("GET", "v1/jobs/" + id);
  assert.equal(r.status, 200);
  return r.json.state;
}

/* A reverse proxy that serves jobqd under /jobq/, as nginx would. */
function startProxy(target) {
  const t = new URL(target);
  const server = http.createServer((req, res) => {
    if (!req.url.startsWith("/jobq/")) {
      res.writeHead(404).end("not under /jobq/");
      return;
    }
    const up = http.request({ host: t.hostname, port: t.port, method: req.method,
      path: req.url.slice("/jobq".length), headers: req.headers }, (r) => {
      res.writeHead(r.statusCode, r.headers);
      r.pipe(res);
    });
    up.on("error", () => res.writeHead(502).end());
    req.pipe(up);
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

/* ---- the page ---- */

/* A page with its problems recorded: script errors, console errors, native
 * dialogs, and API answers of 400 and up (checked against the expected
 * ones at the end; the browser logs each as a console error too). */
async function openPage(url, opts = {}) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  page.setDefaultTimeout(WAIT_MS);
  page.problems = [];
  page.requests = [];
  page.failed = [];
  page.on("pageerror", (e) => page.problems.push("page error: " + e.message));
  page.on("console", (m) => {
    if (m.type() === "error" && !/^Failed to load resource: the server responded with a status of 4\d\d/.test(m.text()))
      page.problems.push("console error: " + m.text());
  });
  page.on("dialog", (d) => { page.problems.push("dialog: " + d.message()); d.dismiss(); });
  page.on("request", (r) => page.requests.push(r.url()));
  page.on("response", (r) => { if (r.status() >= 400) page.failed.push(r.status() + " " + r.url()); });
  if (opts.clock) await page.clock.install();
  await page.goto(url);
  if (!opts.clock) await page.locator("#view-jobs").waitFor({ state: "visible" });
  return page;
}

/* axe-core on the page as it is now: any violation fails, listed. */
async function axeCheck(p, what) {
  if (!(await p.evaluate(() => typeof window.axe === "object"))) await p.evaluate(AXE_SOURCE);
  const violations = await p.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ["violations"] });
    return r.violations.map((v) => v.id + " (" + v.impact + "): " + v.help + "\n        " +
      v.nodes.slice(0, 5).map((n) => n.target.join(" ") + " " + (n.failureSummary || "").replace(/\n/g, " ")).join("\n        "));
  });
  assert.deepEqual(violations, [], "axe-core on " + what + ":\n" + violations.join("\n"));
}

async function narrowCheck(p, what) {
  const width = await p.evaluate(() => document.scrollingElement.scrollWidth);
  assert.ok(width <= 390, what + " at 390 px is " + width + " px wide");
}

async function go(p, hash, visible) {
  await p.evaluate((h) => { location.hash = h; }, hash);
  await p.locator(visible).waitFor({ state: "visible" });
}

async function waitFailedCount(queue, n) {
  const end = Date.now() + WAIT_MS;
  for (;;) {
    const r = await api("GET", "v1/queues/" + queue);
    if (r.status === 200 && r.json.counts.failed === n) return;
    assert.ok(Date.now() < end, queue + ": " + n + " failed jobs never reached: " + JSON.stringify(r.json));
    await new Promise((res) => setTimeout(res, 50));  // poll interval of a bounded wait
  }
}

function row(page, id) {
  return page.locator(`#jobs-body tr[data-job-id="${id}"]`);
}

async function waitRowState(page, id, state) {
  await page.locator(`#jobs-body tr[data-job-id="${id}"][data-state="${state}"]`).waitFor();
}

async function waitText(locator, text) {
  await locator.filter({ hasText: text }).first().waitFor();
}

/* ---- the steps ---- */

const steps = [];
function step(name, fn) { steps.push({ name, fn }); }

let page;
const ids = {};

step("the page loads from jobqd alone and shows live data", async () => {
  page = await openPage(jobqd.base + "/");
  ids.echo = await submit({ type: "echo", queue: "web", payload: { hello: "dashboard" } });
  await waitRowState(page, ids.echo, "succeeded");
  const q = page.locator('#queues-body tr[data-queue="web"]');
  await waitText(q.locator(".count-succeeded"), "1");
  assert.equal(await q.locator(".spark .bar").count(), 15, "15 throughput bars");
});

step("a running sleep job is canceled with the list's cancel button", async () => {
  ids.listCancel = await submit({ type: "sleep", queue: "web", payload: { seconds: 60 } });
  await waitRowState(page, ids.listCancel, "running");
  await row(page, ids.listCancel).locator("button.cancel").click();
  await waitRowState(page, ids.listCancel, "canceled");
  assert.equal(await jobState(ids.listCancel), "canceled");
});

step("the job page shows live progress and cancels with its button", async () => {
  ids.pageCancel = await submit({ type: "sleep", queue: "web", payload: { seconds: 60 } });
  await page.goto(jobqd.base + "/#/jobs/" + ids.pageCancel);
  await page.locator("#job-progress").waitFor({ state: "visible" });
  await page.waitForFunction(() => document.getElementById("job-progress-bar").value > 0, null, { timeout: WAIT_MS });
  await waitText(page.locator("#job-progress-text"), "%");
  assert.match(await page.locator("#job-payload").textContent(), /"seconds": 60/);
  await page.locator("#job-cancel").click();
  await waitText(page.locator("#job-state"), "canceled");
  await page.locator("#job-progress").waitFor({ state: "hidden" });
  assert.equal(await jobState(ids.pageCancel), "canceled");
});

step("retry on the job page runs a canceled job again", async () => {
  await page.locator("#job-retry").click();
  await page.waitForFunction(() => ["queued", "running"].includes(document.getElementById("job-state").textContent),
    null, { timeout: WAIT_MS });
  const st = await jobState(ids.pageCancel);
  assert.ok(st === "queued" || st === "running", "after retry: " + st);
  assert.equal((await api("POST", "v1/jobs/" + ids.pageCancel + "/cancel")).status, 200);
  await waitText(page.locator("#job-state"), "canceled");
  await waitText(page.locator("#job-attempts"), "canceled");
});

step("markup in a payload and an error message is shown as text", async () => {
  ids.xssEcho = await submit({ type: "echo", queue: "web", payload: { note: XSS } });
  ids.xssFail = await submit({ type: "fail", queue: "web", max_attempts: 1, payload: { message: XSS } });
  await page.goto(jobqd.base + "/#/jobs/" + ids.xssFail);
  await waitText(page.locator("#job-state"), "failed");
  assert.ok((await page.locator("#job-payload").textContent()).includes(XSS.replace(/"/g, '\\"')), "payload shown");
  assert.equal(await page.locator("#job-failure").textContent(), XSS);
  await waitText(page.locator("#job-attempts"), XSS);
  await page.goto(jobqd.base + "/#/jobs/" + ids.xssEcho);
  await waitText(page.locator("#job-state"), "succeeded");
  assert.ok((await page.locator("#job-result").textContent()).includes("onerror"), "result shown");
  assert.equal(await page.locator("img").count(), 0, "no img element was created");
  assert.equal(await page.evaluate(() => window.__xss), undefined, "no handler ran");
});

step("the Failed tab and the filters narrow the list", async () => {
  await page.goto(jobqd.base + "/#/");
  await page.locator("#tab-failed").click();
  await page.waitForFunction(() => location.hash.includes("state=failed"));
  await page.waitForFunction((id) => {
    const rows = [...document.querySelectorAll("#jobs-body tr")];
    return rows.some((r) => r.dataset.jobId === id) && rows.every((r) => r.dataset.state === "failed");
  }, ids.xssFail, { timeout: WAIT_MS });
  assert.equal(await page.locator("#f-state").inputValue(), "failed");
  await page.locator("#f-clear").click();
  await page.locator("#f-type").fill("echo");
  await page.locator("#f-queue").fill("web");
  await page.locator("#filters button[type=submit]").click();
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll("#jobs-body tr")];
    return rows.length === 2 && rows.every((r) => r.children[1].textContent === "echo" &&
      r.children[2].textContent === "web");
  }, null, { timeout: WAIT_MS });
  await waitRowState(page, ids.xssEcho, "succeeded");
  await waitRowState(page, ids.echo, "succeeded");
});

step("keyset pagination walks a queue page by page", async () => {
  const jobs = [];
  for (let i = 0; i < 30; i++) jobs.push({ type: "echo", queue: "bulk", payload: { i } });
  const r = await api("POST", "v1/batches", { jobs });
  assert.equal(r.status, 201, JSON.stringify(r.json));
  await page.locator("#f-clear").click();
  await page.locator("#f-queue").fill("bulk");
  await page.locator("#filters button[type=submit]").click();
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll("#jobs-body tr")];
    return rows.length === 25 && rows.every((r) => r.children[2].textContent === "bulk");
  }, null, { timeout: WAIT_MS });
  const first = await page.locator("#jobs-body tr").evaluateAll((rows) => rows.map((x) => x.dataset.jobId));
  await page.locator("#page-older").click();
  await page.waitForFunction(() => document.querySelectorAll("#jobs-body tr").length === 5, null, { timeout: WAIT_MS });
  const second = await page.locator("#jobs-body tr").evaluateAll((rows) => rows.map((x) => x.dataset.jobId));
  assert.ok(await page.locator("#page-older").isDisabled(), "no page after the last");
  assert.equal(new Set([...first, ...second]).size, 30, "30 different jobs over two pages");
  await page.locator("#page-newer").click();
  await page.waitForFunction(() => document.querySelectorAll("#jobs-body tr").length === 25, null, { timeout: WAIT_MS });
  await page.locator("#f-clear").click();
});

step("a queue is paused and resumed from the page", async () => {
  const q = page.locator('#queues-body tr[data-queue="web"]');
  await q.locator("button.pause").click();
  await waitText(q.locator(".paused"), "paused");
  assert.equal((await api("GET", "v1/queues/web")).json.paused, true);
  ids.held = await submit({ type: "echo", queue: "web", payload: { held: true } });
  await waitRowState(page, ids.held, "queued");
  assert.equal(await jobState(ids.held), "queued");
  await q.locator("button.resume").click();
  await waitText(q.locator(".active"), "active");
  assert.equal((await api("GET", "v1/queues/web")).json.paused, false);
  await waitRowState(page, ids.held, "succeeded");
});

step("the list shows each job's last error and a short payload summary", async () => {
  await go(page, "#/jobs?queue=web", "#view-jobs");
  const failed = row(page, ids.xssFail);
  await failed.waitFor();
  assert.equal(await failed.locator(".c-error").textContent(), XSS);
  assert.match(await failed.locator(".c-payload").textContent(), /^\{"message":"<img src=x/);
  const echo = row(page, ids.echo);
  assert.equal(await echo.locator(".c-payload").textContent(), '{"hello":"dashboard"}');
  assert.equal(await echo.locator(".c-error").textContent(), "");
  assert.equal(await page.locator("img").count(), 0, "no img element was created");
});

step("filters, the page size and the page live in the URL and survive a reload", async () => {
  await go(page, "#/jobs", "#view-jobs");
  await page.locator("#f-queue").fill("bulk");
  await page.locator("#f-limit").selectOption("10");   // submits the form
  await page.waitForFunction(() => location.hash === "#/jobs?queue=bulk&limit=10");
  await page.waitForFunction(() => document.querySelectorAll("#jobs-body tr").length === 10);
  await page.locator("#page-older").click();
  await page.waitForFunction(() => /cursor=/.test(location.hash));
  await waitText(page.locator("#page-label"), "page 2");
  const before = await page.locator("#jobs-body tr").evaluateAll((rows) => rows.map((x) => x.dataset.jobId));
  const url = page.url();
  await page.reload();
  await page.locator("#view-jobs").waitFor({ state: "visible" });
  assert.equal(page.url(), url);
  assert.equal(await page.locator("#f-queue").inputValue(), "bulk");
  assert.equal(await page.locator("#f-limit").inputValue(), "10");
  await page.waitForFunction((ids) => {
    const rows = [...document.querySelectorAll("#jobs-body tr")].map((x) => x.dataset.jobId);
    return rows.length === ids.length && rows.every((id, i) => id === ids[i]);
  }, before);
  await waitText(page.locator("#page-label"), "page 2");
  await page.locator("#page-newer").click();   // the page before survives the reload too
  await page.waitForFunction(() => location.hash === "#/jobs?queue=bulk&limit=10");
  await page.waitForFunction((ids) => {
    const rows = [...document.querySelectorAll("#jobs-body tr")].map((x) => x.dataset.jobId);
    return rows.length === 10 && !rows.some((id) => ids.includes(id));
  }, before);
  // a state filter in a shared link
  await page.goto(jobqd.base + "/#/jobs?state=failed&queue=web");
  await page.waitForFunction((id) => {
    const rows = [...document.querySelectorAll("#jobs-body tr")];
    return rows.some((r) => r.dataset.jobId === id) && rows.every((r) => r.dataset.state === "failed");
  }, ids.xssFail);
  assert.equal(await page.locator("#f-state").inputValue(), "failed");
  assert.equal(await page.locator("#f-queue").inputValue(), "web");
  assert.equal(await page.locator("#tab-failed").getAttribute("aria-pressed"), "true");
  await axeCheck(page, "the job list");
});

step("a search by id opens the job, and the open job is in the URL", async () => {
  await page.locator("#find-id").fill(ids.echo.toUpperCase());
  await page.locator("#find-job button[type=submit]").click();
  await page.waitForFunction((id) => location.hash === "#/jobs/" + id, ids.echo);
  await waitText(page.locator("#job-state"), "succeeded");
  assert.equal(await page.locator("#job-id").textContent(), ids.echo);
  await page.reload();
  await waitText(page.locator("#job-state"), "succeeded");
  assert.equal(await page.locator("#job-id").textContent(), ids.echo);
  await axeCheck(page, "a job");
});

step("a job page for an unknown id shows nothing of the job shown before", async () => {
  ids.sleeper = await submit({ type: "sleep", queue: "web", payload: { seconds: 60 } });
  await go(page, "#/jobs/" + ids.sleeper, "#view-job");
  await page.locator("#job-cancel").waitFor({ state: "visible" });
  await waitText(page.locator("#job-state"), "running");
  const unknown = "0190f0f0-0000-7000-8000-000000000000";
  await go(page, "#/jobs/" + unknown, "#view-job");
  await waitText(page.locator("#job-error-msg"), "No job with id " + unknown);
  assert.equal(await page.locator("#job-id").textContent(), unknown);
  assert.equal(await page.locator("#job-cancel").isVisible(), false, "Cancel button of the previous job");
  assert.equal(await page.locator("#job-retry").isVisible(), false);
  assert.equal(await page.locator("#job-state").isVisible(), false, "state of the previous job");
  assert.equal(await page.locator("#job-fields dt").count(), 0, "fields of the previous job");
  assert.equal(await page.locator("#job-more").isVisible(), false, "payload and attempts of the previous job");
  assert.equal(await page.locator("#job-payload").textContent(), "");
  await axeCheck(page, "an unknown job");
  assert.equal((await api("POST", "v1/jobs/" + ids.sleeper + "/cancel")).status, 200);
});

step("bulk retry, cancel and delete act on the filtered set after a confirmation with the count", async () => {
  const fails = [];
  for (let i = 0; i < 12; i++) fails.push({ type: "fail", queue: "bulkfail", max_attempts: 1, payload: { message: "no " + i } });
  assert.equal((await api("POST", "v1/batches", { jobs: fails })).status, 201);
  await waitFailedCount("bulkfail", 12);
  assert.equal((await api("POST", "v1/queues/bulkfail/pause")).status, 200);   // retried jobs stay queued
  const counts = async () => (await api("GET", "v1/queues/bulkfail")).json.counts;
  await go(page, "#/jobs?state=failed&queue=bulkfail", "#view-jobs");
  await page.waitForFunction(() => document.querySelectorAll('#jobs-body tr[data-state="failed"]').length === 12);
  assert.equal(await page.locator("#bulk-cancel").isVisible(), false, "no cancel for failed jobs");

  const dialog = page.locator("#confirm");
  await page.locator("#bulk-retry").click();
  await dialog.waitFor({ state: "visible" });
  assert.equal(await page.locator("#confirm-text").textContent(), "Retry 12 failed jobs (queue bulkfail)?");
  await axeCheck(page, "the confirmation");
  await page.locator("#confirm-no").click();
  await dialog.waitFor({ state: "hidden" });
  assert.equal((await counts()).failed, 12, "going back changed nothing");

  await page.locator("#bulk-retry").click();
  await dialog.waitFor({ state: "visible" });
  assert.equal(await page.locator("#confirm-yes").textContent(), "Retry 12 jobs");
  await page.locator("#confirm-yes").click();
  await waitText(page.locator("#status"), "Retried 12 jobs.");
  let c = await counts();
  assert.equal(c.failed, 0);
  assert.equal(c.queued, 12);

  await go(page, "#/jobs?state=queued&queue=bulkfail", "#view-jobs");
  await page.locator("#bulk-cancel").click();
  await waitText(page.locator("#confirm-text"), "Cancel 12 queued jobs (queue bulkfail)?");
  await page.locator("#confirm-yes").click();
  await waitText(page.locator("#status"), "Canceled 12 jobs.");
  assert.equal((await counts()).canceled, 12);

  await go(page, "#/jobs?state=canceled&queue=bulkfail", "#view-jobs");
  await page.locator("#bulk-delete").click();
  await waitText(page.locator("#confirm-text"), "Delete 12 canceled jobs (queue bulkfail)? Deleted jobs cannot be brought back.");
  await page.locator("#confirm-yes").click();
  await waitText(page.locator("#status"), "Deleted 12 jobs.");
  c = await counts();
  assert.equal(c.canceled + c.queued + c.failed, 0);
  await page.waitForFunction(() => document.querySelectorAll("#jobs-body tr").length === 0);
  await page.locator("#bulk-delete").click();   // nothing left: no confirmation
  await waitText(page.locator("#status"), "No job matches: nothing to delete.");
  assert.equal(await dialog.isVisible(), false);
});

step("a batch's page shows its counts and its jobs", async () => {
  const r = await api("POST", "v1/batches", { jobs: [
    { type: "echo", queue: "batchq", payload: { n: 1 } },
    { type: "echo", queue: "batchq", payload: { n: 2 } },
    { type: "fail", queue: "batchq", max_attempts: 1, payload: { message: "third fails" } }] });
  assert.equal(r.status, 201);
  ids.batch = r.json.id;
  await go(page, "#/batches", "#view-batch");
  await page.locator("#find-batch-id").fill(ids.batch);
  await page.locator("#find-batch button[type=submit]").click();
  await page.waitForFunction((id) => location.hash === "#/batches/" + id, ids.batch);
  await waitText(page.locator("#batch-done"), "finished");
  assert.equal(await page.locator("#batch-counts .count-total").textContent(), "3");
  await waitText(page.locator("#batch-counts .count-succeeded"), "2");
  assert.equal(await page.locator("#batch-counts .count-failed").textContent(), "1");
  await page.waitForFunction(() => document.querySelectorAll("#batch-jobs-body tr").length === 3);
  for (const id of r.json.job_ids) await page.locator(`#batch-jobs-body tr[data-job-id="${id}"]`).waitFor();
  await axeCheck(page, "a batch");
  await page.locator("#batch-jobs-link").click();
  await page.waitForFunction((id) => location.hash === "#/jobs?batch_id=" + id, ids.batch);
  await page.waitForFunction(() => document.querySelectorAll("#jobs-body tr").length === 3);
  await go(page, "#/batches/0190f0f0-0000-7000-8000-000000000001", "#view-batch");
  await waitText(page.locator("#batch-error"), "No batch with id");
  assert.equal(await page.locator("#batch-jobs-card").isVisible(), false);
});

step("the external workers page shows external queues and the jobs leased now", async () => {
  ids.ext = await submit({ type: "resize", queue: "ext", payload: { w: 100 } });
  await submit({ type: "resize", queue: "ext", payload: { w: 200 } });
  const l = await api("POST", "v1/leases", { queues: ["ext"], max: 1, lease_s: 600 });
  assert.equal(l.status, 200);
  const leased = l.json.jobs[0].id;
  await go(page, "#/workers", "#view-workers");
  const q = page.locator('#ext-body tr[data-queue="ext"]');
  await waitText(q.locator(".count-running"), "1");
  await waitText(q.locator(".count-queued"), "1");
  assert.equal(await page.locator("#ext-body tr").count(), 1, "only external queues");
  const lr = page.locator(`#leases-body tr[data-job-id="${leased}"]`);
  await lr.waitFor();
  assert.match(await lr.locator(".c-expires").textContent(), /^in (9|10) min$/);
  await axeCheck(page, "external workers");
});

step("the nodes page shows this jobqd alive and leading", async () => {
  await go(page, "#/nodes", "#view-nodes");
  await page.locator("#nodes-body tr").first().waitFor();
  assert.equal(await page.locator("#nodes-body tr").count(), 1);
  await waitText(page.locator("#nodes-body tr"), "alive · leader");
  await waitText(page.locator("#nodes-summary"), "Backend sqlite · 1 of 1 alive");
  await axeCheck(page, "nodes");
});

step("the schedules page lists schedules, or says this jobqd has none", async () => {
  const probe = await api("GET", "v1/schedules");
  await go(page, "#/schedules", "#view-schedules");
  if (probe.status === 404) {
    console.log("skip the schedules page's rows: GET /v1/schedules answers 404 (no schedules in this jobqd)");
    await page.locator("#schedules-unavailable").waitFor({ state: "visible" });
    assert.equal(await page.locator("#schedules-table").isVisible(), false);
    await axeCheck(page, "schedules (none)");
    return;
  }
  assert.equal(probe.status, 200);
  const made = await api("POST", "v1/schedules", { name: "web-nightly", cron: "30 2 * * *", tz: "Europe/Berlin",
    job: { type: "echo", queue: "schedq", payload: { from: "schedule" } } });
  assert.equal(made.status, 201, JSON.stringify(made.json));
  const r = page.locator('#schedules-body tr[data-schedule="web-nightly"]');
  await waitText(r, "30 2 * * *");
  await waitText(r, "Europe/Berlin");
  await r.locator("button.pause").click();
  await waitText(r.locator(".paused"), "paused");
  await r.locator("button.resume").click();
  await waitText(r.locator(".active"), "active");
  await r.locator("button", { hasText: "Run now" }).click();   // one job, now
  const end = Date.now() + WAIT_MS;
  while ((await api("GET", "v1/jobs?queue=schedq")).json.jobs.length !== 1) {
    assert.ok(Date.now() < end, "Run now made no job");
    await new Promise((res) => setTimeout(res, 50));   // poll interval of a bounded wait
  }
  await axeCheck(page, "schedules");
  assert.equal((await api("DELETE", "v1/schedules/web-nightly")).status, 204);
});

step("a queue's rate limit and its tokens show in the queue table", async () => {
  await go(page, "#/jobs", "#view-jobs");
  const q = page.locator('#queues-body tr[data-queue="web"]');
  await waitText(q.locator(".rate-none"), "none");
  const put = await api("PUT", "v1/queues/web/rate", { limit: 5, period_s: 60, burst: 3 });
  if (put.status === 404 || put.status === 405) {
    console.log("skip the rate limit cell: PUT /v1/queues/{name}/rate answers " + put.status + " (no rate limits in this jobqd)");
    return;
  }
  assert.equal(put.status, 200);
  await waitText(q.locator(".rate-limit"), "5 / 60 s");
  await waitText(q.locator(".rate-tokens"), "3 of 3 tokens");
  await axeCheck(page, "a queue with a rate limit");
  assert.equal((await api("DELETE", "v1/queues/web/rate")).status, 200);
  await waitText(q.locator(".rate-none"), "none");
});

step("a job waiting for its dependencies shows as blocked, with links to them", async () => {
  const parent = await submit({ type: "sleep", queue: "deps", payload: { seconds: 60 } });
  const r = await api("POST", "v1/jobs", { type: "echo", queue: "deps", depends_on: [parent] });
  if (r.status === 400 && r.json && r.json.field === "depends_on") {
    console.log("skip blocked jobs: POST /v1/jobs refuses depends_on (no dependencies in this jobqd)");
    assert.equal((await api("POST", "v1/jobs/" + parent + "/cancel")).status, 200);
    return;
  }
  assert.equal(r.status, 201, JSON.stringify(r.json));
  const child = r.json.id;
  await go(page, "#/jobs?state=blocked", "#view-jobs");
  await page.locator(`#jobs-body tr[data-job-id="${child}"][data-state="blocked"]`).waitFor();
  await row(page, child).locator("button.cancel").waitFor();
  await axeCheck(page, "blocked jobs");
  await go(page, "#/jobs/" + child, "#job-body");
  await waitText(page.locator("#job-state"), "blocked");
  await page.locator(`#job-fields a[href="#/jobs/${parent}"]`).waitFor();
  assert.equal((await api("POST", "v1/jobs/" + parent + "/cancel")).status, 200);
  await waitText(page.locator("#job-state"), "canceled");   // the default policy cascades
});

step("at 390 px wide nothing scrolls sideways", async () => {
  const jobs = [];
  for (let i = 0; i < 3; i++) jobs.push({ type: "fail", queue: "a-rather-long-queue-name-for-a-phone-" + i, max_attempts: 1,
    payload: { message: "an error message long enough to wrap several times on a narrow screen, " + "x".repeat(120) } });
  assert.equal((await api("POST", "v1/batches", { jobs })).status, 201);
  await page.setViewportSize({ width: 390, height: 844 });
  try {
    await go(page, "#/jobs", "#view-jobs");
    await page.waitForFunction(() => document.querySelector('#jobs-body tr[data-state="failed"] .c-error'));
    await narrowCheck(page, "the job list");
    await axeCheck(page, "the job list at 390 px");
    fs.mkdirSync(OUT_DIR, { recursive: true });
    await page.screenshot({ path: path.join(OUT_DIR, "dashboard-390.png"), fullPage: true });
    await go(page, "#/jobs/" + ids.xssFail, "#job-body");
    await narrowCheck(page, "a job");
    await go(page, "#/batches/" + ids.batch, "#batch-body");
    await narrowCheck(page, "a batch");
    await go(page, "#/workers", "#leases-body tr");
    await narrowCheck(page, "external workers");
    await go(page, "#/nodes", "#nodes-body tr");
    await narrowCheck(page, "nodes");
    await go(page, "#/schedules", "#view-schedules");
    await narrowCheck(page, "schedules");
  } finally {
    await page.setViewportSize({ width: 1280, height: 860 });
  }
});

step("relative times move on while the data stays the same, and a hidden tab does not poll", async () => {
  // The page's clock is Playwright's: time moves when the test says so. Its
  // waits below are the test's own loops, which need no timer in the page.
  const p = await openPage(jobqd.base + "/#/jobs/" + ids.echo, { clock: true });
  const until = async (fn, arg, what) => {
    const end = Date.now() + WAIT_MS;
    while (!(await p.evaluate(fn, arg))) {
      assert.ok(Date.now() < end, "timed out: " + what);
      await new Promise((res) => setTimeout(res, 20));   // poll interval of a bounded wait
    }
  };
  const finished = () => p.evaluate(() => document.querySelectorAll("#job-fields time")[3].textContent);
  try {
    await until(() => !document.getElementById("job-body").hidden && document.querySelectorAll("#job-fields time").length >= 4,
      null, "the job shown");
    assert.match(await finished(), / s ago$/);
    await p.clock.runFor(125000);   // the job is unchanged; two minutes pass
    await until(() => / min ago$/.test(document.querySelectorAll("#job-fields time")[3].textContent), null, "the time moved");
    assert.match(await finished(), /^[2-9] min ago$/);

    const polls = () => p.evaluate(() => Number(document.body.dataset.polls));
    const hide = (hidden) => p.evaluate((h) => {
      Object.defineProperty(document, "hidden", { configurable: true, get: () => h });
      Object.defineProperty(document, "visibilityState", { configurable: true, get: () => (h ? "hidden" : "visible") });
      document.dispatchEvent(new Event("visibilitychange"));
    }, hidden);
    await until(() => document.body.dataset.polling === "waiting", null, "a poll waiting");
    let n = await polls();
    await p.clock.runFor(1100);    // visible: the next poll is due
    await until((k) => Number(document.body.dataset.polls) > k, n, "the next poll");
    await hide(true);
    await until(() => document.body.dataset.polling === "paused", null, "polling paused");
    n = await polls();
    await p.clock.runFor(30000);   // thirty poll intervals pass hidden
    assert.equal(await polls(), n, "polled while hidden");
    assert.equal(await p.evaluate(() => document.body.dataset.polling), "paused");
    assert.equal(await p.evaluate(() => document.getElementById("live").textContent), "paused while the tab is hidden");
    await hide(false);             // shown again: it polls at once
    await until((k) => Number(document.body.dataset.polls) > k, n, "a poll once shown");
    assert.deepEqual(p.problems, []);
  } finally {
    await p.close();
  }
});

step("every request stayed on jobqd, and nothing went wrong in the page", async () => {
  const foreign = page.requests.filter((u) => !u.startsWith(jobqd.base + "/"));
  assert.deepEqual(foreign, [], "requests elsewhere");
  assert.ok(page.requests.some((u) => u.startsWith(jobqd.base + "/v1/queues")), "polled v1/queues");
  assert.deepEqual(page.problems, []);
  // The only failed answers: the unknown job and batch, and no schedules on a jobqd without them.
  const expected = [/^404 .*\/v1\/jobs\/0190f0f0-0000-7000-8000-000000000000$/,
    /^404 .*\/v1\/batches\/0190f0f0-0000-7000-8000-000000000001\?/, /^404 .*\/v1\/schedules\?/];
  assert.deepEqual(page.failed.filter((f) => !expected.some((re) => re.test(f))), [], "unexpected failed answers");
});

step("the page works under a proxy path prefix", async () => {
  proxy = await startProxy(jobqd.base);
  const base = "http://127.0.0.1:" + proxy.address().port + "/jobq/";
  const p = await openPage(base);
  await p.locator('#queues-body tr[data-queue="web"]').waitFor();
  await row(p, ids.held).waitFor();
  const outside = p.requests.filter((u) => !u.startsWith(base));
  assert.deepEqual(outside, [], "requests outside /jobq/");
  assert.deepEqual(p.problems, []);
  await p.close();
});

step("with API keys the page asks for one and keeps it in the tab's session only", async () => {
  const ADMIN = "admin-key-web-5b1f", READ = "read-key-web-9c2e";
  const keyed = await startJobqd({ JOBQ_API_KEYS: "admin:" + ADMIN + ",read:" + READ });
  const contexts = [];
  try {
    const as = (key) => ({ Authorization: "Bearer " + key });
    let r = await fetch(keyed.base + "/v1/jobs", { method: "POST",
      headers: { "Content-Type": "application/json", ...as(ADMIN) },
      body: JSON.stringify({ type: "echo", queue: "keyed", payload: {} }) });
    assert.equal(r.status, 201);
    const id = (await r.json()).id;
    const open = async () => {
      const ctx = await browser.newContext();
      contexts.push(ctx);
      const p = await ctx.newPage();
      p.setDefaultTimeout(WAIT_MS);
      await p.goto(keyed.base + "/");
      await p.locator("#auth").waitFor({ state: "visible" });
      assert.equal(await p.locator("#view-jobs").isVisible(), false, "data shown without a key");
      return p;
    };
    const p = await open();
    const useKey = async (key) => {
      await p.fill("#auth-key", key);
      await p.locator('#auth-form button[type="submit"]').click();
    };
    await axeCheck(p, "the API key form");
    await useKey("wrong-key");   // 401: the key is dropped and asked for again
    await p.waitForFunction(() => !sessionStorage.getItem("jobq.key") && !document.getElementById("auth").hidden);
    await useKey(READ);
    await row(p, id).waitFor();
    await p.locator('#queues-body tr[data-queue="keyed"] button.pause').click();
    await waitText(p.locator("#notice"), "this key cannot do that");
    r = await fetch(keyed.base + "/v1/queues/keyed", { headers: as(ADMIN) });
    assert.equal((await r.json()).paused, false, "a read key paused a queue");
    assert.equal(await p.evaluate(() => sessionStorage.getItem("jobq.key")), READ);
    assert.equal(await p.evaluate(() => localStorage.length), 0, "the key reached localStorage");
    await open();                // another browser session asks again
  } finally {
    for (const c of contexts) await c.close().catch(() => {});
    await stopJobqd(keyed);
    fs.rmSync(keyed.dir, { recursive: true, force: true });
  }
});

step("screenshot", async () => {
  await submit({ type: "sleep", queue: "reports", payload: { seconds: 30 } });
  await submit({ type: "fail", queue: "reports", max_attempts: 1, payload: { message: "upstream answered 503" } });
  await page.goto(jobqd.base + "/#/jobs?limit=10");
  await page.waitForFunction(() => {
    const r = document.querySelector('#jobs-body tr[data-state="running"] progress');
    return r && r.value > 0;
  }, null, { timeout: WAIT_MS });
  fs.mkdirSync(OUT_DIR, { recursive: true });
  await page.screenshot({ path: path.join(OUT_DIR, "dashboard.png"), fullPage: true });
});

step("the queue table pages by name when there are many queues", async () => {
  const jobs = [];
  for (let i = 0; i < 60; i++) jobs.push({ type: "echo", queue: "zz-page-" + String(i).padStart(2, "0"), delay_s: 600 });
  const r = await api("POST", "v1/batches", { jobs });
  assert.equal(r.status, 201, JSON.stringify(r.json));
  const names = () => page.locator("#queues-body tr").evaluateAll((rows) => rows.map((x) => x.dataset.queue));
  const seen = [];
  await page.waitForFunction(() => !document.getElementById("queues-next").disabled, null, { timeout: WAIT_MS });
  assert.ok(await page.locator("#queues-pager").isVisible(), "pager shown");
  assert.ok(await page.locator("#queues-prev").isDisabled(), "no page before the first");
  const first = await names();
  assert.equal(first.length, 25);
  assert.ok(first.includes("web"), "web on the first page: " + first);
  seen.push(...first);
  for (let n = 2; !(await page.locator("#queues-next").isDisabled()); n++) {
    const before = seen[seen.length - 1];
    await page.locator("#queues-next").click();
    await page.waitForFunction((b) => {
      const rows = document.querySelectorAll("#queues-body tr");
      return rows.length > 0 && rows[0].dataset.queue > b;
    }, before, { timeout: WAIT_MS });
    await waitText(page.locator("#queues-page"), "page " + n);
    seen.push(...await names());
  }
  assert.deepEqual(seen, [...seen].sort(), "queues in name order");
  assert.equal(new Set(seen).size, seen.length, "no queue twice");
  for (const j of jobs) assert.ok(seen.includes(j.queue), j.queue + " never shown");
  await page.locator("#queues-prev").click();
  await page.waitForFunction(() => !document.getElementById("queues-next").disabled, null, { timeout: WAIT_MS });
});

/* ---- run ---- */

async function main() {
  const limit = setTimeout(() => {
    console.error("web: the run took longer than " + RUN_LIMIT_MS / 1000 + " s");
    if (jobqd) jobqd.child.kill("SIGKILL");
    process.exit(1);
  }, RUN_LIMIT_MS);
  let failed = 0;
  let ran = 0;
  try {
    jobqd = await startJobqd();
    const args = ["--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--disable-extensions"];
    if (process.getuid && process.getuid() === 0) args.push("--no-sandbox");
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args });
    const only = process.env.ONLY ? new RegExp(process.env.ONLY) : null;
    for (const s of steps) {
      if (only && s !== steps[0] && !only.test(s.name)) continue;
      ran++;
      try {
        await s.fn();
        console.log("ok   " + s.name);
      } catch (e) {
        failed++;
        console.log("FAIL " + s.name + "\n     " + String(e.stack || e).split("\n").join("\n     "));
        if (page) {
          fs.mkdirSync(OUT_DIR, { recursive: true });
          await page.screenshot({ path: path.join(OUT_DIR, "dashboard-failure.png"), fullPage: true }).catch(() => {});
        }
        break; // later steps build on earlier ones
      }
    }
  } catch (e) {
    failed++;
    console.log("FAIL setup\n     " + String(e.stack || e));
  } finally {
    if (browser) await browser.close().catch(() => {});
    if (proxy) proxy.close();
    const st = await stopJobqd(jobqd);
    if (jobqd) {
      if (st && (st.code !== 0 || st.signal)) {
        failed++;
        console.log("FAIL jobqd exited with " + JSON.stringify(st) + "\n" + jobqd.log);
      } else if (sanitizerReport(jobqd.log)) {
        failed++;
        console.log("FAIL sanitizer report in jobqd's log:\n" + jobqd.log);
      }
      fs.rmSync(jobqd.dir, { recursive: true, force: true });
    }
    clearTimeout(limit);
  }
  console.log(failed ? "web: FAILED" : "web: all " + ran + " steps passed" + (ran < steps.length ? " (ONLY)" : ""));
  process.exit(failed ? 1 : 0);
}

main();
