// Browser test of the dashboard: a real jobqd, Debian's chromium driven by
// playwright-core, and the page doing what a user does. Every wait is
// bounded; the whole run is killed after RUN_LIMIT_MS.
//
// Env: JOBQD (default build/jobqd-test), CHROMIUM (default /usr/bin/chromium),
// OUT_DIR (default build/test-output, where dashboard.png goes).
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
const RUN_LIMIT_MS = 180000;  // the whole run's bound
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
    "--workers", "4", "--shutdown-grace", "1", "--log-level", "warn"], { env, stdio: ["ignore", "ignore", "pipe"] });
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

async function openPage(url) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  page.setDefaultTimeout(WAIT_MS);
  page.problems = [];
  page.requests = [];
  page.on("pageerror", (e) => page.problems.push("page error: " + e.message));
  page.on("console", (m) => { if (m.type() === "error") page.problems.push("console error: " + m.text()); });
  page.on("dialog", (d) => { page.problems.push("dialog: " + d.message()); d.dismiss(); });
  page.on("request", (r) => page.requests.push(r.url()));
  await page.goto(url);
  await page.locator("#overview").waitFor({ state: "visible" });
  return page;
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

step("a queue's rate limit and its tokens show in the queue table", async () => {
  const q = page.locator('#queues-body tr[data-queue="web"]');
  await waitText(q.locator(".rate-none"), "none");
  const put = await api("PUT", "v1/queues/web/rate", { limit: 5, period_s: 60, burst: 3 });
  assert.equal(put.status, 200);
  await waitText(q.locator(".rate-limit"), "5 / 60 s");
  await waitText(q.locator(".rate-tokens"), "3 of 3 tokens");
  assert.equal((await api("DELETE", "v1/queues/web/rate")).status, 200);
  await waitText(q.locator(".rate-none"), "none");
});

step("the Schedules page lists a schedule, pauses, resumes and runs it now", async () => {
  const r = await api("POST", "v1/schedules", { name: "web-hourly", every_s: 3600,
    job: { type: "echo", queue: "web-sched", payload: { from: "schedule" } } });
  assert.equal(r.status, 201, JSON.stringify(r.json));
  await page.locator("#nav-schedules").click();
  await page.locator("#schedules").waitFor({ state: "visible" });
  const sc = page.locator('#schedules-body tr[data-schedule="web-hourly"]');
  await waitText(sc, "every 3600 s");
  await waitText(sc.locator(".active"), "active");
  await sc.locator("button.pause").click();
  await waitText(sc.locator(".paused"), "paused");
  assert.equal((await api("GET", "v1/schedules/web-hourly")).json.paused, true);
  await sc.locator("button.resume").click();
  await waitText(sc.locator(".active"), "active");
  assert.equal((await api("GET", "v1/schedules/web-hourly")).json.paused, false);
  await sc.locator("button.run").click();
  for (let i = 0; ; i++) {
    const jobs = (await api("GET", "v1/jobs?queue=web-sched")).json.jobs;
    if (jobs.length === 1) {
      assert.equal(jobs[0].schedule.name, "web-hourly");
      break;
    }
    assert.ok(i < 150, "run now submitted no job");
    await new Promise((res) => setTimeout(res, 100));
  }
  await waitText(sc, "ago");
  await page.goto(jobqd.base + "/#/");
  await page.locator("#overview").waitFor({ state: "visible" });
});

step("every request stayed on jobqd, and nothing went wrong in the page", async () => {
  const foreign = page.requests.filter((u) => !u.startsWith(jobqd.base + "/"));
  assert.deepEqual(foreign, [], "requests elsewhere");
  assert.ok(page.requests.some((u) => u.startsWith(jobqd.base + "/v1/queues")), "polled v1/queues");
  assert.deepEqual(page.problems, []);
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
      assert.equal(await p.locator("#overview").isVisible(), false, "data shown without a key");
      return p;
    };
    const p = await open();
    const useKey = async (key) => {
      await p.fill("#auth-key", key);
      await p.locator('#auth-form button[type="submit"]').click();
    };
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
  await page.goto(jobqd.base + "/#/");
  await page.locator("#f-clear").click();
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
  try {
    jobqd = await startJobqd();
    const args = ["--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--disable-extensions"];
    if (process.getuid && process.getuid() === 0) args.push("--no-sandbox");
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args });
    for (const s of steps) {
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
  console.log(failed ? "web: FAILED" : "web: all " + steps.length + " steps passed");
  process.exit(failed ? 1 : 0);
}

main();
