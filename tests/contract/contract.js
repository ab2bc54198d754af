'use strict';
/* The contract test: a traffic set that covers every path and method of
 * openapi.yaml, with their success answers and the errors each documents
 * where jobqd can be brought to give them, sent through the validating
 * proxy (proxy.js) to a real jobqd: first a default one, with no key, then
 * one with API keys. It fails on any request or response the proxy finds
 * outside the spec, on an unexpected status, and on a route of jobqd's
 * route table that the spec does not describe.
 *
 * Each exchange says whether its request is meant to be inside the spec:
 * a 400 for a bad shape must be a request the spec itself refuses, and a
 * 422 one that it accepts (docs/decisions.md, "400 or 422").
 *
 * node contract.js JOBQD_BINARY (run by make check-contract). Talks only to
 * 127.0.0.1. */

const { spawn, spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const http = require('http');
const { loadSpec, startProxy, pathMethods, matchPath } = require('./proxy');

const root = path.resolve(__dirname, '../..');
const SPEC = process.env.CONTRACT_SPEC ? path.resolve(process.env.CONTRACT_SPEC) : path.join(root, 'openapi.yaml');
const KEYS = { admin: 'ct-admin-key', submit: 'ct-submit-key', read: 'ct-read-key', worker: 'ct-worker-key' };
const UNKNOWN_ID = '01890000-0000-7000-8000-000000000000';
/* Over --max-body (1 MiB by default). */
const BIG = 'x'.repeat(2 * 1024 * 1024);

const failures = [];
const SHUTDOWN_503 = ['POST /v1/jobs', 'POST /v1/batches', 'GET /readyz'];
const seen = {}; // "METHOD /spec/path" -> Set of statuses
let api;

function fail(msg) {
  failures.push(msg);
  console.error('FAIL ' + msg);
}

/* Starts jobqd on a free loopback port; resolves {proc, port, dir,
 * schema}. With prev (a stopped jobqd's), on prev's database again. */
function startJobqd(bin, args, env, prev) {
  const dir = prev ? prev.dir : fs.mkdtempSync(path.join(os.tmpdir(), 'jobq-contract-'));
  /* On PostgreSQL (JOBQ_TEST_DB_URL, as the C suites): a fresh schema. */
  const schema = prev ? prev.schema : (DB_URL ? newSchema() : null);
  const db = DB_URL ? [DB_URL, '--db-schema', schema] : [path.join(dir, 'jobq.db')];
  const proc = spawn(bin, ['--listen', '127.0.0.1:0', '--db', ...db, ...args], {
    cwd: dir, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('jobqd did not start:\n' + log)), 15000);
    const onData = (d) => {
      if (log.length < (1 << 20)) log += d;
      const m = /jobqd: listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve({ proc, port: Number(m[1]), dir, schema, log: () => log });
      }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    proc.on('exit', (code) => reject(new Error(`jobqd exited ${code}:\n${log}`)));
  });
}

const DB_URL = process.env.JOBQ_TEST_DB_URL || '';
const schemas = [];
function newSchema() {
  schemas.push(`ct_${process.pid}_${schemas.length}`);
  return schemas[schemas.length - 1];
}

/* Drops this run's schemas, when psql is there to do it. */
function dropSchemas() {
  if (!DB_URL || !schemas.length) return;
  const sql = schemas.map((x) => `DROP SCHEMA IF EXISTS ${x} CASCADE;`).join(' ');
  const r = spawnSync('psql', ['-q', '-X', DB_URL, '-c', sql], { stdio: 'ignore' });
  if (r.status !== 0) console.error(`check-contract: could not drop the schemas ${schemas.join(', ')}`);
}

/* Stops jobqd; its directory goes too unless keep (to start it again). */
function stopJobqd(j, keep) {
  return new Promise((resolve) => {
    if (j.proc.exitCode !== null) return resolve(j.proc.exitCode);
    j.proc.removeAllListeners('exit');
    j.proc.on('exit', (code) => { if (!keep) fs.rmSync(j.dir, { recursive: true, force: true }); resolve(code); });
    j.proc.kill('SIGTERM');
  });
}

/* One request to the proxy; resolves {status, headers, body, json}. For
 * event streams, resolves on the head and aborts. */
function send(port, method, p, { body, headers = {}, type = 'application/json' } = {}) {
  return new Promise((resolve, reject) => {
    const h = { ...headers };
    let data;
    if (body !== undefined) {
      data = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
      if (type) h['content-type'] = type;
      h['content-length'] = data.length;
    }
    const req = http.request({ host: '127.0.0.1', port, method, path: p, headers: h, agent: false }, (res) => {
      if ((res.headers['content-type'] || '').startsWith('text/event-stream')) {
        resolve({ status: res.statusCode, headers: res.headers, body: '', json: null });
        req.destroy();
        return;
      }
      const out = [];
      res.on('data', (c) => out.push(c));
      res.on('end', () => {
        const text = Buffer.concat(out).toString('utf8');
        let json = null;
        try { json = JSON.parse(text); } catch (e) { /* not JSON */ }
        resolve({ status: res.statusCode, headers: res.headers, body: text, json });
      });
    });
    req.on('error', (e) => (e.code === 'ECONNRESET' ? resolve({ status: 0 }) : reject(e)));
    req.end(data);
  });
}

/* The proxy's findings for the last exchange, by request line. */
const findings = new Map();

function makeCtx(proxyPort, label) {
  /* ex(method, path, want, opts): one exchange through the proxy. opts.req:
   * 'valid' (default) the request must be inside the spec, 'invalid' it
   * must be outside, 'any' either. opts.field: the problem's field. */
  async function ex(method, p, want, opts = {}) {
    const key = `${method} ${p}`;
    findings.delete(key);
    const r = await send(proxyPort, method, p, opts);
    const f = findings.get(key);
    const what = `[${label}] ${method} ${p}`;
    if (r.status !== want) fail(`${what}: status ${r.status}, want ${want}: ${(r.body || '').slice(0, 300)}`);
    if (!f) { fail(`${what}: the proxy saw no exchange`); return r; }
    for (const v of f.violations) fail(`${what}: ${v}`);
    const reqWant = opts.req || 'valid';
    if (reqWant === 'valid' && f.requestErrors.length) fail(`${what}: request outside the spec: ${f.requestErrors.join('; ')}`);
    if (reqWant === 'invalid' && !f.requestErrors.length) fail(`${what}: answered ${r.status} as a bad request, but the spec accepts the request`);
    if (opts.field !== undefined && r.json && r.json.field !== opts.field) fail(`${what}: field ${r.json.field}, want ${opts.field}`);
    if (opts.code && r.json && r.json.code !== opts.code) fail(`${what}: code ${r.json.code}, want ${opts.code}`);
    return r;
  }
  return ex;
}

/* While a burst of identical requests is out: every one's findings. */
let burstLog = null;

function record(reqInfo, resInfo, result) {
  if (burstLog) burstLog.push({ status: resInfo.status, result });
  findings.set(`${reqInfo.method} ${reqInfo.path}${reqInfo.query ? '?' + reqInfo.query : ''}`, result);
  const specPath = matchPath(api, reqInfo.path);
  if (specPath) {
    const k = `${reqInfo.method} ${specPath}`;
    (seen[k] = seen[k] || new Set()).add(resInfo.status);
  }
}

async function poll(ex, p, pred, label) {
  for (let i = 0; i < 400; i++) {
    const r = await send(ex.port, 'GET', p);
    if (r.json && pred(r.json)) return r.json;
    await new Promise((res) => setTimeout(res, 25));
  }
  throw new Error(`gave up waiting: ${label}`);
}

/* The bulk actions on a filter: a dry run, each action, and each refusal. */
async function bulkTraffic(ex) {
  const ids = [];
  for (let i = 0; i < 2; i++) {
    const r = await ex('POST', '/v1/jobs', 201, { body: { type: 'fail', queue: 'ct-bulk', payload: { retryable: false } } });
    ids.push(r.json.id);
  }
  for (const id of ids) await poll(ex, `/v1/jobs/${id}`, (j) => j.state === 'failed', 'bulk job failed');
  const failed = { filter: { state: 'failed', queue: 'ct-bulk' } };
  await ex('POST', '/v1/jobs/retry', 200, { body: { ...failed, dry_run: true } });
  await ex('POST', '/v1/jobs/retry', 200, { body: { ...failed, limit: 1 } });
  await ex('POST', '/v1/jobs/cancel', 200, { body: { filter: { queue: 'ct-bulk' } } });
  await ex('POST', '/v1/jobs/delete', 200, { body: { filter: { queue: 'ct-bulk', type: 'fail' } } });
  for (const action of ['retry', 'cancel', 'delete']) {
    const p = `/v1/jobs/${action}`;
    await ex('POST', p, 400, { body: {}, req: 'invalid', field: 'filter' });
    await ex('POST', p, 400, { body: { filter: { state: 'bogus' } }, req: 'invalid', field: 'filter.state' });
    await ex('POST', p, 400, { body: { filter: {}, limit: 0 }, req: 'invalid', field: 'limit' });
    await ex('POST', p, 400, { body: { filter: {}, cursor: 'not-a-cursor' }, req: 'any', field: 'cursor' });
    await ex('POST', p, 400, { body: '[1]', req: 'invalid', code: 'malformed_json' });
    await ex('POST', `${p}?x=1`, 400, { body: { filter: {} }, req: 'any', field: 'x' });
    await ex('POST', p, 415, { body: '{"filter":{}}', type: 'text/plain', req: 'any' });
    await ex('POST', p, 413, { body: JSON.stringify({ filter: {}, pad: BIG }), req: 'any' });
  }
  /* A state the action does not apply to: the shape is right, the value not. */
  await ex('POST', '/v1/jobs/retry', 400, { body: { filter: { state: 'succeeded' } }, req: 'any', field: 'filter.state' });
}

/* The traffic of a default jobqd: no key. */
async function defaultTraffic(ex) {
  const J = 'application/json';
  // submit, read, list
  let r = await ex('POST', '/v1/jobs', 201, { body: { type: 'echo', payload: { hello: 'world' }, queue: 'ct' } });
  const echo = r.json.id;
  await ex('POST', '/v1/jobs', 201, { body: { type: 'echo' }, headers: { 'idempotency-key': 'ct-1' } });
  await ex('POST', '/v1/jobs', 200, { body: { type: 'echo' }, headers: { 'idempotency-key': 'ct-1' } });
  await ex('POST', '/v1/jobs', 409, { body: { type: 'echo', priority: 1 }, headers: { 'idempotency-key': 'ct-1' }, code: 'idempotency_conflict' });
  await ex('GET', `/v1/jobs/${echo}?wait=5`, 200);
  r = await ex('GET', `/v1/jobs/${echo}`, 200);
  await ex('GET', `/v1/jobs/${echo}`, 304, { headers: { 'if-none-match': r.headers.etag } });
  await ex('GET', `/v1/jobs/${echo}`, 200, { headers: { prefer: 'wait=0' } });
  r = await ex('GET', '/v1/jobs?limit=2', 200);
  await ex('GET', '/v1/jobs?limit=2', 304, { headers: { 'if-none-match': r.headers.etag } });
  await ex('GET', `/v1/jobs?state=succeeded&queue=ct&type=echo&ids=${echo}`, 200);
  if (r.json.next_cursor) await ex('GET', `/v1/jobs?limit=2&cursor=${r.json.next_cursor}`, 200);
  await ex('GET', `/v1/jobs/${UNKNOWN_ID}`, 404, { code: 'job_not_found' });
  // 400: shape; 422: values this jobqd refuses
  await ex('POST', '/v1/jobs', 400, { body: '{"type":', req: 'invalid', code: 'malformed_json' });
  await ex('POST', '/v1/jobs', 400, { body: {}, req: 'invalid', code: 'invalid_field', field: 'type' });
  await ex('POST', '/v1/jobs', 400, { body: { type: 'echo', prority: 1 }, req: 'invalid', field: 'prority' });
  await ex('POST', '/v1/jobs', 400, { body: { type: 'echo', priority: 1000001 }, req: 'invalid', field: 'priority' });
  await ex('POST', '/v1/jobs', 400, { body: { type: 'echo', max_attempts: 'x' }, req: 'invalid', field: 'max_attempts' });
  await ex('POST', '/v1/jobs', 400, { body: { type: 'echo', queue: 'a b' }, req: 'invalid', field: 'queue' });
  await ex('POST', '/v1/jobs', 400, { body: { type: 'echo', delay_s: 1, run_at: '2030-01-01T00:00:00Z' }, req: 'any', field: 'delay_s' });
  await ex('POST', '/v1/jobs?wait=1', 400, { body: { type: 'echo' }, req: 'any', code: 'invalid_query', field: 'wait' });
  await ex('POST', '/v1/jobs', 422, { body: { type: 'nope' }, code: 'unknown_job_type', field: 'type' });
  await ex('POST', '/v1/jobs', 422, { body: { type: 'sleep', payload: { seconds: -1 } }, code: 'invalid_payload', field: 'payload.seconds' });
  await ex('POST', '/v1/jobs', 415, { body: '{"type":"echo"}', type: 'text/plain', req: 'any', code: 'unsupported_media_type' });
  await ex('POST', '/v1/jobs', 413, { body: JSON.stringify({ type: 'echo', payload: BIG }), req: 'any', code: 'body_too_large' });
  await ex('GET', '/v1/jobs?state=bogus', 400, { req: 'invalid', code: 'invalid_query', field: 'state' });
  await ex('GET', '/v1/jobs?limit=0', 400, { req: 'invalid', field: 'limit' });
  await ex('GET', '/v1/jobs?status=failed', 400, { req: 'any', field: 'status' });
  await ex('GET', `/v1/jobs/${echo}?wait=-1`, 400, { req: 'invalid', field: 'wait' });
  // cancel, retry, delete: success and conflicts
  r = await ex('POST', '/v1/jobs', 201, { body: { type: 'sleep', payload: { seconds: 30 } } });
  const sleeper = r.json.id;
  await poll(ex, `/v1/jobs/${sleeper}`, (j) => j.state === 'running', 'sleep running');
  await ex('DELETE', `/v1/jobs/${sleeper}`, 409, { code: 'job_not_finished' });
  await ex('POST', `/v1/jobs/${sleeper}/cancel`, 200);
  await poll(ex, `/v1/jobs/${sleeper}`, (j) => j.state === 'canceled', 'sleep canceled');
  await ex('POST', `/v1/jobs/${sleeper}/cancel`, 409, { code: 'job_finished' });
  await ex('POST', `/v1/jobs/${echo}/retry`, 409, { code: 'job_not_retryable' });
  await ex('POST', `/v1/jobs/${sleeper}/retry`, 200);
  await ex('POST', `/v1/jobs/${sleeper}/cancel`, 200);
  await poll(ex, `/v1/jobs/${sleeper}`, (j) => j.state === 'canceled', 'retried sleep canceled');
  await ex('POST', `/v1/jobs/${sleeper}/cancel?x=1`, 400, { req: 'any', field: 'x' });
  await ex('POST', `/v1/jobs/${sleeper}/retry?x=1`, 400, { req: 'any', field: 'x' });
  await ex('POST', `/v1/jobs/${sleeper}/retry`, 413, { body: JSON.stringify({ pad: BIG }), req: 'any' });
  await ex('POST', `/v1/jobs/${UNKNOWN_ID}/cancel`, 404);
  await ex('POST', `/v1/jobs/${UNKNOWN_ID}/retry`, 404);
  await ex('POST', `/v1/jobs/${echo}/cancel`, 413, { body: JSON.stringify({ pad: BIG }), req: 'any' });
  await ex('DELETE', `/v1/jobs/${sleeper}`, 204);
  await ex('DELETE', `/v1/jobs/${sleeper}`, 404);
  await ex('DELETE', `/v1/jobs/${echo}?force=1`, 400, { req: 'any', code: 'invalid_query', field: 'force' });
  // batches
  r = await ex('POST', '/v1/batches', 201, { body: { jobs: [{ type: 'echo' }, { type: 'echo', payload: 2 }] } });
  const batch = r.json.id;
  await ex('POST', '/v1/batches', 201, { body: { jobs: [{ type: 'echo' }] }, headers: { 'idempotency-key': 'ct-b' } });
  await ex('POST', '/v1/batches', 200, { body: { jobs: [{ type: 'echo' }] }, headers: { 'idempotency-key': 'ct-b' } });
  await ex('POST', '/v1/batches', 409, { body: { jobs: [{ type: 'echo', priority: 2 }] }, headers: { 'idempotency-key': 'ct-b' } });
  await ex('POST', '/v1/batches', 400, { body: { jobs: [] }, req: 'invalid', field: 'jobs' });
  await ex('POST', '/v1/batches', 400, { body: { jobs: [{ type: 'echo' }, {}] }, req: 'invalid', field: 'jobs[1].type' });
  await ex('POST', '/v1/batches', 422, { body: { jobs: [{ type: 'echo' }, { type: 'sleep', payload: { seconds: 'x' } }] }, field: 'jobs[1].payload.seconds' });
  await ex('POST', '/v1/batches', 422, { body: { jobs: [{ type: 'nope' }] }, code: 'unknown_job_type', field: 'jobs[0].type' });
  await ex('POST', '/v1/batches', 415, { body: '{}', type: 'text/plain', req: 'any' });
  await ex('POST', '/v1/batches', 413, { body: JSON.stringify({ jobs: [{ type: 'echo', payload: BIG }] }), req: 'any' });
  await ex('GET', `/v1/batches/${batch}?wait=5`, 200);
  await ex('GET', `/v1/batches/${batch}?include=jobs&limit=1`, 200);
  await ex('GET', `/v1/batches/${batch}?include=all`, 400, { req: 'invalid', field: 'include' });
  await ex('GET', `/v1/batches/${UNKNOWN_ID}`, 404, { code: 'batch_not_found' });
  // events
  await ex('GET', '/v1/events', 200);
  await ex('GET', `/v1/events?queue=ct&type=echo&ids=${echo}`, 200);
  await ex('GET', `/v1/events?batch_id=${batch}`, 200, { headers: { 'last-event-id': '1' } });
  await ex('GET', `/v1/events?batch_id=${UNKNOWN_ID}`, 404);
  await ex('GET', '/v1/events?ids=nope', 400, { req: 'any', field: 'ids' });
  await ex('GET', `/v1/jobs/${echo}/events`, 200);
  await ex('GET', `/v1/jobs/${UNKNOWN_ID}/events`, 404);
  await ex('GET', `/v1/jobs/${echo}/events?x=1`, 400, { req: 'any', field: 'x' });
  // queues
  r = await ex('GET', '/v1/queues', 200);
  await ex('GET', '/v1/queues', 304, { headers: { 'if-none-match': r.headers.etag } });
  await ex('GET', '/v1/queues?limit=1', 200);
  await ex('GET', '/v1/queues?limit=x', 400, { req: 'invalid', field: 'limit' });
  r = await ex('GET', '/v1/queues/ct', 200);
  await ex('GET', '/v1/queues/ct', 304, { headers: { 'if-none-match': r.headers.etag } });
  await ex('GET', '/v1/queues/ct?limit=1', 400, { req: 'any', field: 'limit' });
  await ex('POST', '/v1/queues/ct/pause?x=1', 400, { req: 'any', field: 'x' });
  await ex('POST', '/v1/queues/ct/resume?x=1', 400, { req: 'any', field: 'x' });
  await ex('POST', '/v1/queues/ct/resume', 413, { body: JSON.stringify({ pad: BIG }), req: 'any' });
  await ex('GET', '/v1/queues/bad!name', 404, { code: 'queue_not_found' });
  await ex('POST', '/v1/queues/ct/pause', 200);
  await ex('POST', '/v1/queues/ct/resume', 200);
  await ex('POST', '/v1/queues/bad!name/pause', 404);
  await ex('POST', '/v1/queues/bad!name/resume', 404);
  await ex('POST', '/v1/queues/ct/pause', 413, { body: JSON.stringify({ pad: BIG }), req: 'any' });
  // leases (external queue "ext")
  r = await ex('POST', '/v1/jobs', 201, { body: { type: 'fn', queue: 'ext', payload: { n: 1 } } });
  const ext = r.json.id;
  await ex('POST', '/v1/leases', 200, { body: { queues: ['ext'], max: 1, lease_s: 60 } });
  r = await send(ex.port, 'GET', `/v1/jobs/${ext}`);
  await ex('POST', '/v1/leases', 200, { body: { queues: ['ext'], wait_s: 0 } });
  await ex('POST', '/v1/leases', 400, { body: { queues: [] }, req: 'invalid', field: 'queues' });
  await ex('POST', '/v1/leases', 400, { body: '[1]', req: 'invalid', code: 'malformed_json' });
  await ex('POST', '/v1/leases', 422, { body: { queues: ['ct'] }, code: 'queue_not_external', field: 'queues[0]' });
  await ex('POST', '/v1/leases', 415, { body: '{}', type: 'text/plain', req: 'any' });
  await ex('POST', '/v1/leases', 413, { body: JSON.stringify({ queues: ['ext'], pad: BIG }), req: 'any' });
  const leaseOf = async (payload) => {
    const sub = await send(ex.port, 'POST', '/v1/jobs', { body: { type: 'fn', queue: 'ext', payload } });
    const l = await send(ex.port, 'POST', '/v1/leases', { body: { queues: ['ext'], max: 100 } });
    const j = (l.json.jobs || []).find((x) => x.id === sub.json.id);
    if (!j) throw new Error('lease did not take the job: ' + l.body);
    return { id: j.id, lease_id: j.lease_id };
  };
  let L = await leaseOf(1);
  // the jobs external workers hold now
  await ex('GET', '/v1/leases', 200);
  await ex('GET', '/v1/leases?queue=ext&limit=5', 200);
  await ex('GET', '/v1/leases?limit=0', 400, { req: 'invalid', field: 'limit' });
  await ex('GET', '/v1/leases?x=1', 400, { req: 'any', field: 'x' });
  await ex('POST', `/v1/jobs/${L.id}/heartbeat`, 200, { body: { lease_id: L.lease_id, progress: { percent: 50, message: 'half' } } });
  await ex('POST', `/v1/jobs/${L.id}/heartbeat`, 409, { body: { lease_id: '0123456789abcdef0123456789abcdef' }, code: 'lease_lost' });
  await ex('POST', `/v1/jobs/${L.id}/heartbeat`, 400, { body: {}, req: 'invalid', field: 'lease_id' });
  await ex('POST', `/v1/jobs/${UNKNOWN_ID}/heartbeat`, 404, { body: { lease_id: L.lease_id } });
  await ex('POST', `/v1/jobs/${L.id}/heartbeat`, 415, { body: '{}', type: 'text/plain', req: 'any' });
  await ex('POST', `/v1/jobs/${L.id}/heartbeat`, 413, { body: JSON.stringify({ lease_id: L.lease_id, pad: BIG }), req: 'any' });
  for (const what of ['complete', 'fail', 'release']) {
    await ex('POST', `/v1/jobs/${L.id}/${what}`, 400, { body: { lease_id: 5 }, req: 'invalid', field: 'lease_id' });
    await ex('POST', `/v1/jobs/${L.id}/${what}`, 415, { body: '{}', type: 'text/plain', req: 'any' });
    await ex('POST', `/v1/jobs/${L.id}/${what}`, 413, { body: JSON.stringify({ lease_id: L.lease_id, pad: BIG }), req: 'any' });
  }
  await ex('POST', `/v1/jobs/${L.id}/complete`, 200, { body: { lease_id: L.lease_id, result: { ok: true } } });
  await ex('POST', `/v1/jobs/${L.id}/complete`, 409, { body: { lease_id: L.lease_id } });
  L = await leaseOf(2);
  await ex('POST', `/v1/jobs/${L.id}/complete`, 204, { body: { lease_id: L.lease_id }, headers: { prefer: 'return=minimal' } });
  L = await leaseOf(3);
  await ex('POST', `/v1/jobs/${L.id}/fail`, 200, { body: { lease_id: L.lease_id, error: 'boom', retryable: false } });
  L = await leaseOf(4);
  await ex('POST', `/v1/jobs/${L.id}/fail`, 400, { body: { lease_id: L.lease_id, retryable: 'no' }, req: 'invalid', field: 'retryable' });
  await ex('POST', `/v1/jobs/${L.id}/fail`, 204, { body: { lease_id: L.lease_id, error: 'boom', retryable: false }, headers: { prefer: 'return=minimal' } });
  await ex('POST', `/v1/jobs/${L.id}/fail`, 409, { body: { lease_id: L.lease_id, error: 'again' }, code: 'lease_lost' });
  L = await leaseOf(5);
  await ex('POST', `/v1/jobs/${L.id}/release`, 200, { body: { lease_id: L.lease_id } });
  L = await leaseOf(6);
  await ex('POST', `/v1/jobs/${L.id}/release`, 204, { body: { lease_id: L.lease_id }, headers: { prefer: 'return=minimal' } });
  await ex('POST', `/v1/jobs/${L.id}/release`, 409, { body: { lease_id: L.lease_id } });
  await ex('POST', `/v1/jobs/${UNKNOWN_ID}/complete`, 404, { body: { lease_id: L.lease_id } });
  await ex('POST', `/v1/jobs/${UNKNOWN_ID}/fail`, 404, { body: { lease_id: L.lease_id } });
  await ex('POST', `/v1/jobs/${UNKNOWN_ID}/release`, 404, { body: { lease_id: L.lease_id } });
  // system, metrics, files
  await ex('GET', '/v1/info', 200);
  await ex('GET', '/v1/cluster', 200);
  await ex('GET', '/v1/info?x=1', 400, { req: 'any', field: 'x' });
  await ex('GET', '/v1/cluster?x=1', 400, { req: 'any', field: 'x' });
  await ex('GET', '/healthz', 200);
  await ex('GET', '/readyz', 200);
  await ex('GET', '/openapi.yaml', 200);
  await ex('GET', '/metrics', 200);
  await ex('GET', '/metrics?x=1', 400, { req: 'any', field: 'x' });
  for (const f of ['/', '/app.js', '/style.css']) {
    r = await ex('GET', f, 200);
    await ex('GET', f, 304, { headers: { 'if-none-match': r.headers.etag } });
    await ex('GET', f + '?v=3', 200, { req: 'any' });
  }
  await rateTraffic(ex);
  await scheduleTraffic(ex);
  await depsTraffic(ex);
  await bulkTraffic(ex);
  // routing: 404 and 405 (no operation: shared responses)
  await ex('GET', '/nope', 404, { req: 'any' });
  await ex('PUT', `/v1/jobs/${echo}`, 405, { req: 'any' });
  await ex('POST', '/healthz', 405, { req: 'any' });
  void J;
}

/* A queue's rate limit: set, replace, read, remove, and each refusal. */
async function rateTraffic(ex) {
  const rate = { limit: 100, period_s: 1, burst: 10, retry_after: true };
  let r = await ex('PUT', '/v1/queues/ct/rate', 200, { body: rate });
  if (!r.json || !r.json.rate || r.json.rate.limit !== 100) fail(`PUT rate: no rate in ${r.body}`);
  await ex('PUT', '/v1/queues/ct-rated/rate', 200, { body: { limit: 5, period_s: 0.5 } });
  await ex('GET', '/v1/queues/ct-rated', 200);
  await ex('GET', '/v1/queues', 200);
  await ex('PUT', '/v1/queues/ct/rate', 400, { body: { limit: 0, period_s: 1 }, req: 'invalid', code: 'invalid_field', field: 'limit' });
  await ex('PUT', '/v1/queues/ct/rate', 400, { body: { limit: 1.5, period_s: 1 }, req: 'invalid', field: 'limit' });
  await ex('PUT', '/v1/queues/ct/rate', 400, { body: { limit: 1 }, req: 'invalid', field: 'period_s' });
  await ex('PUT', '/v1/queues/ct/rate', 400, { body: { limit: 1, period_s: 0.0001 }, req: 'invalid', field: 'period_s' });
  await ex('PUT', '/v1/queues/ct/rate', 400, { body: { limit: 1, period_s: 1, burst: 0 }, req: 'invalid', field: 'burst' });
  await ex('PUT', '/v1/queues/ct/rate', 400, { body: { limit: 1, period_s: 1, retry_after: 1 }, req: 'invalid', field: 'retry_after' });
  await ex('PUT', '/v1/queues/ct/rate', 400, { body: { limit: 1, period_s: 1, per: 1 }, req: 'invalid', field: 'per' });
  await ex('PUT', '/v1/queues/ct/rate', 400, { body: '[1]', req: 'invalid', code: 'malformed_json' });
  await ex('PUT', '/v1/queues/ct/rate', 400, { body: '{"limit":', req: 'invalid', code: 'malformed_json' });
  await ex('PUT', '/v1/queues/ct/rate?x=1', 400, { body: rate, req: 'any', code: 'invalid_query', field: 'x' });
  await ex('PUT', '/v1/queues/bad!name/rate', 404, { body: rate, code: 'queue_not_found' });
  await ex('PUT', '/v1/queues/ct/rate', 415, { body: JSON.stringify(rate), type: 'text/plain', req: 'any' });
  await ex('PUT', '/v1/queues/ct/rate', 413, { body: JSON.stringify({ ...rate, pad: BIG }), req: 'any' });
  r = await ex('DELETE', '/v1/queues/ct/rate', 200);
  if (!r.json || r.json.rate !== null) fail(`DELETE rate: rate not null in ${r.body}`);
  await ex('DELETE', '/v1/queues/ct/rate', 200);
  await ex('DELETE', '/v1/queues/ct-rated/rate', 200);
  await ex('DELETE', '/v1/queues/ct/rate?x=1', 400, { req: 'any', field: 'x' });
  await ex('DELETE', '/v1/queues/bad!name/rate', 404);
  await ex('DELETE', '/v1/queues/ct/rate', 413, { body: JSON.stringify({ pad: BIG }), req: 'any' });
}

/* Sends n copies of one request at once; resolves their {status, json}
 * after checking every exchange the proxy saw. */
async function burst(ex, method, p, n, allowed) {
  burstLog = [];
  const rs = await Promise.all(Array.from({ length: n }, () => send(ex.port, method, p)));
  const log = burstLog;
  burstLog = null;
  if (log.length !== n) fail(`${method} ${p}: the proxy saw ${log.length} of ${n} exchanges`);
  for (const { status, result } of log) {
    for (const v of result.violations) fail(`[burst] ${method} ${p}: ${v}`);
    if (result.requestErrors.length) fail(`[burst] ${method} ${p}: request outside the spec: ${result.requestErrors.join('; ')}`);
    if (!allowed.includes(status)) fail(`[burst] ${method} ${p}: status ${status}, want one of ${allowed.join(' ')}`);
  }
  return rs;
}

/* Schedules: every operation, its successes and refusals. */
async function scheduleTraffic(ex) {
  const echo = { type: 'echo', payload: { n: 1 } };
  const post = (status, body, opts = {}) => ex('POST', '/v1/schedules', status, { body, ...opts });
  let r = await post(201, { name: 'ct-every', every_s: 3600, job: echo });
  if (r.headers.location !== '/v1/schedules/ct-every') fail(`POST schedule: Location ${r.headers.location}`);
  await post(201, { name: 'ct-cron', cron: '30 2 * * *', tz: 'Europe/Berlin', catch_up: 'all', catch_up_max: 5,
    misfire_grace_s: 10, job: { type: 'echo', queue: 'ct', delay_s: 1, priority: 3 } });
  await post(201, { name: 'ct-macro', cron: '@hourly', every_s: null, catch_up: 'latest', job: echo });
  await post(409, { name: 'ct-every', every_s: 60, job: echo }, { code: 'schedule_exists', field: 'name' });
  // 400: the shape (the spec refuses each), then rules the schema cannot say
  await post(400, '{"name":', { req: 'invalid', code: 'malformed_json' });
  await post(400, '[1]', { req: 'invalid', code: 'malformed_json' });
  await post(400, { every_s: 5, job: echo }, { req: 'invalid', code: 'invalid_field', field: 'name' });
  await post(400, { name: 'a b', every_s: 5, job: echo }, { req: 'invalid', field: 'name' });
  await post(400, { name: 's', every_s: 5, job: echo, every: 5 }, { req: 'invalid', field: 'every' });
  await post(400, { name: 's', every_s: 5 }, { req: 'invalid', field: 'job' });
  await post(400, { name: 's', every_s: 5, job: [] }, { req: 'invalid', field: 'job' });
  await post(400, { name: 's', every_s: 5, job: {} }, { req: 'invalid', field: 'job.type' });
  await post(400, { name: 's', every_s: 5, job: { type: 'echo', priority: 'x' } }, { req: 'invalid', field: 'job.priority' });
  await post(400, { name: 's', every_s: 5, job: { type: 'echo', run_at: '2030-01-01T00:00:00Z' } }, { req: 'invalid', field: 'job.run_at' });
  await post(400, { name: 's', every_s: 5, job: { type: 'echo', depends_on: [UNKNOWN_ID] } }, { req: 'invalid', field: 'job.depends_on' });
  await post(400, { name: 's', job: echo }, { req: 'invalid', field: 'cron' });
  await post(400, { name: 's', cron: '* * * * *', every_s: 5, job: echo }, { req: 'invalid', field: 'cron' });
  await post(400, { name: 's', cron: 5, job: echo }, { req: 'invalid', field: 'cron' });
  await post(400, { name: 's', every_s: 0, job: echo }, { req: 'invalid', field: 'every_s' });
  await post(400, { name: 's', every_s: 1.5, job: echo }, { req: 'invalid', field: 'every_s' });
  await post(400, { name: 's', every_s: 5, tz: 1, job: echo }, { req: 'invalid', field: 'tz' });
  await post(400, { name: 's', every_s: 5, tz: '', job: echo }, { req: 'invalid', field: 'tz' });
  await post(400, { name: 's', every_s: 5, tz: '../etc/passwd', job: echo }, { req: 'invalid', field: 'tz' });
  await post(400, { name: 's', every_s: 5, catch_up: 'some', job: echo }, { req: 'invalid', field: 'catch_up' });
  await post(400, { name: 's', every_s: 5, catch_up_max: 1001, job: echo }, { req: 'invalid', field: 'catch_up_max' });
  await post(400, { name: 's', every_s: 5, misfire_grace_s: -1, job: echo }, { req: 'invalid', field: 'misfire_grace_s' });
  /* The cron grammar and the calendar are the same for every jobqd (400)
   * but no JSON Schema holds them. */
  await post(400, { name: 's', cron: '61 * * * *', job: echo }, { req: 'any', field: 'cron' });
  await post(400, { name: 's', cron: '0 0 30 2 *', job: echo }, { req: 'any', field: 'cron' });
  await ex('POST', '/v1/schedules?x=1', 400, { body: { name: 's', every_s: 5, job: echo }, req: 'any', code: 'invalid_query', field: 'x' });
  // 422: well-formed, refused by what this jobqd has
  await post(422, { name: 's', every_s: 5, tz: 'Mars/Olympus', job: echo }, { code: 'unknown_time_zone', field: 'tz' });
  await post(422, { name: 's', every_s: 5, job: { type: 'nope' } }, { code: 'unknown_job_type', field: 'job.type' });
  await post(422, { name: 's', every_s: 5, job: { type: 'sleep', payload: { seconds: -1 } } },
    { code: 'invalid_payload', field: 'job.payload.seconds' });
  await ex('POST', '/v1/schedules', 415, { body: '{}', type: 'text/plain', req: 'any', code: 'unsupported_media_type' });
  await ex('POST', '/v1/schedules', 413, { body: JSON.stringify({ name: 's', every_s: 5, job: { type: 'echo', payload: BIG } }), req: 'any' });
  // read and list
  r = await ex('GET', '/v1/schedules/ct-every', 200);
  const got = r.json;
  await ex('GET', '/v1/schedules/ct-cron', 200);
  await ex('GET', '/v1/schedules/nope', 404, { code: 'schedule_not_found' });
  await ex('GET', '/v1/schedules/bad!name', 404, { code: 'schedule_not_found' });
  await ex('GET', '/v1/schedules/ct-every?x=1', 400, { req: 'any', field: 'x' });
  r = await ex('GET', '/v1/schedules', 200);
  if (!r.json || r.json.schedules.length !== 3) fail(`GET /v1/schedules: ${r.body.slice(0, 200)}`);
  r = await ex('GET', '/v1/schedules?limit=1', 200);
  await ex('GET', `/v1/schedules?limit=2&cursor=${r.json.next_cursor}`, 200);
  await ex('GET', '/v1/schedules?limit=0', 400, { req: 'invalid', code: 'invalid_query', field: 'limit' });
  await ex('GET', '/v1/schedules?limit=x', 400, { req: 'invalid', field: 'limit' });
  await ex('GET', '/v1/schedules?cursor=a%20b', 400, { req: 'any', field: 'cursor' });
  await ex('GET', '/v1/schedules?page=2', 400, { req: 'any', field: 'page' });
  // replace: a GET's body goes back as it is; the refusals
  await ex('PUT', '/v1/schedules/ct-every', 200, { body: got });
  await ex('PUT', '/v1/schedules/ct-every', 200, { body: { cron: '*/5 * * * *', tz: 'UTC', job: echo } });
  await ex('PUT', '/v1/schedules/ct-every', 400, { body: { name: 'other', every_s: 5, job: echo }, req: 'any', field: 'name' });
  await ex('PUT', '/v1/schedules/ct-every', 400, { body: { every_s: 5, job: echo, jobs: 1 }, req: 'invalid', field: 'jobs' });
  await ex('PUT', '/v1/schedules/ct-every', 400, { body: { cron: '* 24 * * *', job: echo }, req: 'any', field: 'cron' });
  await ex('PUT', '/v1/schedules/ct-every', 422, { body: { every_s: 5, tz: 'Nowhere/Land', job: echo }, code: 'unknown_time_zone', field: 'tz' });
  await ex('PUT', '/v1/schedules/ct-every', 422, { body: { every_s: 5, job: { type: 'nope' } }, code: 'unknown_job_type', field: 'job.type' });
  await ex('PUT', '/v1/schedules/nope', 404, { body: { every_s: 5, job: echo }, code: 'schedule_not_found' });
  await ex('PUT', '/v1/schedules/bad!name', 404, { body: { every_s: 5, job: echo } });
  await ex('PUT', '/v1/schedules/ct-every', 415, { body: '{}', type: 'text/plain', req: 'any' });
  await ex('PUT', '/v1/schedules/ct-every', 413, { body: JSON.stringify({ every_s: 5, job: { type: 'echo', payload: BIG } }), req: 'any' });
  await ex('PUT', '/v1/schedules/ct-every?x=1', 400, { body: { every_s: 5, job: echo }, req: 'any', field: 'x' });
  // pause, resume
  r = await ex('POST', '/v1/schedules/ct-every/pause', 200);
  if (!r.json || r.json.paused !== true || r.json.next_fire_at !== null) fail(`pause: ${r.body}`);
  await ex('POST', '/v1/schedules/ct-every/pause', 200);
  r = await ex('POST', '/v1/schedules/ct-every/resume', 200);
  if (!r.json || r.json.paused !== false || !r.json.next_fire_at) fail(`resume: ${r.body}`);
  await ex('POST', '/v1/schedules/ct-every/resume', 200);
  for (const what of ['pause', 'resume', 'run']) {
    await ex('POST', `/v1/schedules/nope/${what}`, 404, { code: 'schedule_not_found' });
    await ex('POST', `/v1/schedules/ct-every/${what}`, 413, { body: JSON.stringify({ pad: BIG }), req: 'any' });
    await ex('POST', `/v1/schedules/ct-every/${what}?x=1`, 400, { req: 'any', field: 'x' });
  }
  // run now: the job, and 409 when two runs fall on one millisecond
  r = await ex('POST', '/v1/schedules/ct-cron/run', 201);
  if (!r.json || !r.json.schedule || r.json.schedule.name !== 'ct-cron') fail(`run: no schedule in ${r.body}`);
  await ex('GET', `/v1/jobs/${r.json.id}`, 200);
  await ex('GET', '/v1/jobs?queue=ct&limit=5', 200);
  let clash = false, round = 0;
  for (; round < 100 && !clash; round++) {
    const rs = await burst(ex, 'POST', '/v1/schedules/ct-every/run', 8, [201, 409]);
    for (const x of rs) {
      if (x.status !== 409) continue;
      clash = true;
      if (!x.json || x.json.code !== 'schedule_exists') fail(`run 409: ${x.body}`);
    }
  }
  if (!clash) fail('POST /v1/schedules/{name}/run: no two of 800 runs fell on one millisecond (409)');
  else console.log(`run now: two runs fell on one millisecond (409) in round ${round} of bursts of 8`);
  // delete
  await ex('DELETE', '/v1/schedules/ct-every', 413, { body: JSON.stringify({ pad: BIG }), req: 'any' });
  await ex('DELETE', '/v1/schedules/ct-every?x=1', 400, { req: 'any', field: 'x' });
  for (const n of ['ct-every', 'ct-cron', 'ct-macro']) await ex('DELETE', `/v1/schedules/${n}`, 204);
  await ex('DELETE', '/v1/schedules/ct-every', 404, { code: 'schedule_not_found' });
  await ex('DELETE', '/v1/schedules/bad!name', 404);
}

/* Dependencies: a blocked job, its read and cancel, a batch with links,
 * and the refusals (400 for the shape, 422 for the data). */
async function depsTraffic(ex) {
  let r = await ex('POST', '/v1/jobs', 201, { body: { type: 'fn', queue: 'ext', payload: { parent: true } } });
  const parent = r.json.id;
  r = await ex('POST', '/v1/jobs', 201, { body: { type: 'echo', depends_on: [parent], on_dependency_failure: 'wait' } });
  const child = r.json.id;
  if (r.json.state !== 'blocked' || r.json.dependencies_pending !== 1) fail(`depends_on: not blocked: ${r.body}`);
  r = await ex('GET', `/v1/jobs/${child}`, 200);
  if (r.json.state !== 'blocked') fail(`blocked job read: ${r.body}`);
  await ex('GET', '/v1/jobs?state=blocked', 200);
  r = await ex('POST', '/v1/jobs', 201, { body: { type: 'echo' } });
  const done = r.json.id;
  await poll(ex, `/v1/jobs/${done}`, (j) => j.state === 'succeeded', 'parent succeeded');
  r = await ex('POST', '/v1/jobs', 201, { body: { type: 'echo', depends_on: [done] } });
  await ex('GET', `/v1/jobs/${r.json.id}?wait=5`, 200);
  r = await ex('POST', '/v1/batches', 201, { body: { jobs: [{ type: 'echo' }, { type: 'echo', depends_on: [0, parent], on_dependency_failure: 'run' }] } });
  await ex('GET', `/v1/batches/${r.json.id}?include=jobs`, 200);
  await ex('POST', `/v1/jobs/${child}/cancel`, 200);
  await ex('POST', `/v1/jobs/${parent}/cancel`, 200);
  // 400: the shape
  await ex('POST', '/v1/jobs', 400, { body: { type: 'echo', depends_on: 'x' }, req: 'invalid', code: 'invalid_field', field: 'depends_on' });
  await ex('POST', '/v1/jobs', 400, { body: { type: 'echo', depends_on: [true] }, req: 'invalid', field: 'depends_on[0]' });
  await ex('POST', '/v1/jobs', 400, { body: { type: 'echo', depends_on: ['nope'] }, req: 'invalid', field: 'depends_on[0]' });
  await ex('POST', '/v1/jobs', 400, { body: { type: 'echo', depends_on: [done, done] }, req: 'invalid', field: 'depends_on[1]' });
  await ex('POST', '/v1/jobs', 400, { body: { type: 'echo', depends_on: Array.from({ length: 65 }, (_, i) => `01890000-0000-7000-8000-${String(i).padStart(12, '0')}`) },
    req: 'invalid', field: 'depends_on' });
  await ex('POST', '/v1/jobs', 400, { body: { type: 'echo', on_dependency_failure: 'later' }, req: 'invalid', field: 'on_dependency_failure' });
  /* An index is a batch's: in a single submission the shape is wrong, but
   * the one schema serves both. */
  await ex('POST', '/v1/jobs', 400, { body: { type: 'echo', depends_on: [0] }, req: 'any', field: 'depends_on[0]' });
  await ex('POST', '/v1/batches', 400, { body: { jobs: [{ type: 'echo', depends_on: [true] }] }, req: 'invalid', field: 'jobs[0].depends_on[0]' });
  // 422: the data
  await ex('POST', '/v1/jobs', 422, { body: { type: 'echo', depends_on: [UNKNOWN_ID] }, code: 'invalid_dependency', field: 'depends_on[0]' });
  await ex('POST', '/v1/jobs', 422, { body: { type: 'echo', depends_on: [done, UNKNOWN_ID] }, code: 'invalid_dependency', field: 'depends_on[1]' });
  await ex('POST', '/v1/batches', 422, { body: { jobs: [{ type: 'echo', depends_on: [1] }, { type: 'echo', depends_on: [0] }] }, code: 'invalid_dependency' });
  await ex('POST', '/v1/batches', 422, { body: { jobs: [{ type: 'echo', depends_on: [0] }] }, code: 'invalid_dependency', field: 'jobs[0].depends_on[0]' });
  await ex('POST', '/v1/batches', 422, { body: { jobs: [{ type: 'echo' }, { type: 'echo', depends_on: [5] }] }, code: 'invalid_dependency', field: 'jobs[1].depends_on[0]' });
  await ex('POST', '/v1/batches', 422, { body: { jobs: [{ type: 'echo', depends_on: [UNKNOWN_ID] }] }, code: 'invalid_dependency', field: 'jobs[0].depends_on[0]' });
}

/* A schedule whose job type is gone by the next start: run now is 422. */
async function restartTraffic(ex, j, bin) {
  await ex('POST', '/v1/schedules', 201, { body: { name: 'ct-gone', every_s: 3600, job: { type: 'ctcmd' } } });
  await ex('POST', '/v1/schedules/ct-gone/pause', 200);
  let code = await stopJobqd(j, true);
  if (code !== 0) fail(`[restart] jobqd exited ${code}`);
  const j2 = await startJobqd(bin, [], {}, j);
  const proxy = await startProxy(api, j2.port, 0, record);
  const ex2 = makeCtx(proxy.address().port, 'restart 2');
  try {
    await ex2('GET', '/v1/schedules/ct-gone', 200);
    await ex2('POST', '/v1/schedules/ct-gone/run', 422, { code: 'unknown_job_type', field: 'type' });
    await ex2('DELETE', '/v1/schedules/ct-gone', 204);
  } finally {
    proxy.close();
    code = await stopJobqd(j2);
    if (code !== 0) fail(`[restart 2] jobqd exited ${code}:\n${j2.log().slice(-2000)}`);
  }
}

/* With keys: 401 without or with an unknown key, 403 for a weak role,
 * the public routes still open, and the keyed success answers. */
async function keyedTraffic(ex) {
  const auth = (k) => ({ authorization: `Bearer ${k}` });
  await ex('GET', '/v1/jobs', 401, { code: 'unauthorized' });
  await ex('GET', '/v1/jobs', 401, { headers: auth('wrong') });
  await ex('GET', '/v1/jobs', 200, { headers: auth(KEYS.read) });
  await ex('POST', '/v1/jobs', 401, { body: { type: 'echo' } });
  await ex('POST', '/v1/jobs', 403, { body: { type: 'echo' }, headers: auth(KEYS.read), code: 'forbidden' });
  const r = await ex('POST', '/v1/jobs', 201, { body: { type: 'echo' }, headers: auth(KEYS.submit) });
  const id = r.json.id;
  await ex('GET', `/v1/jobs/${id}`, 401);
  await ex('GET', `/v1/jobs/${id}?wait=5`, 200, { headers: auth(KEYS.read) });
  await ex('DELETE', `/v1/jobs/${id}`, 401);
  await ex('DELETE', `/v1/jobs/${id}`, 403, { headers: auth(KEYS.submit) });
  await ex('DELETE', `/v1/jobs/${id}`, 204, { headers: auth(KEYS.admin) });
  for (const [m, p] of [['POST', `/v1/jobs/${id}/cancel`], ['POST', `/v1/jobs/${id}/retry`], ['POST', '/v1/batches'],
    ['GET', `/v1/batches/${UNKNOWN_ID}`], ['GET', '/v1/events'], ['GET', `/v1/jobs/${id}/events`], ['POST', '/v1/leases'],
    ['POST', `/v1/jobs/${id}/heartbeat`], ['POST', `/v1/jobs/${id}/complete`], ['POST', `/v1/jobs/${id}/fail`],
    ['POST', `/v1/jobs/${id}/release`], ['GET', '/v1/queues'], ['GET', '/v1/queues/default'],
    ['POST', '/v1/queues/default/pause'], ['POST', '/v1/queues/default/resume'], ['GET', '/v1/info'],
    ['GET', '/v1/cluster'], ['GET', '/metrics']])
    await ex(m, p, 401, { req: 'any' });
  for (const [m, p] of [['POST', `/v1/jobs/${id}/cancel`], ['POST', `/v1/jobs/${id}/retry`], ['POST', '/v1/queues/default/pause'],
    ['POST', '/v1/queues/default/resume'], ['POST', '/v1/leases'], ['POST', '/v1/batches']])
    await ex(m, p, 403, { headers: auth(KEYS.read), body: m === 'POST' ? {} : undefined, req: 'any' });
  for (const what of ['heartbeat', 'complete', 'fail', 'release'])
    await ex('POST', `/v1/jobs/${id}/${what}`, 403, { headers: auth(KEYS.read), body: { lease_id: 'x' }, code: 'forbidden' });
  /* Every role may read: no key gets 403 on a read. */
  for (const k of Object.values(KEYS))
    for (const p of ['/v1/info', '/v1/cluster', '/v1/queues', '/v1/jobs', '/metrics']) await ex('GET', p, 200, { headers: auth(k) });
  await ex('POST', '/v1/queues/default/pause', 200, { headers: auth(KEYS.admin) });
  await ex('GET', '/v1/queues/default', 200, { headers: auth(KEYS.read) });
  await ex('GET', '/v1/info', 200, { headers: auth(KEYS.read) });
  await ex('GET', '/metrics', 200, { headers: auth(KEYS.read) });
  for (const p of ['/healthz', '/readyz', '/openapi.yaml', '/', '/app.js', '/style.css']) await ex('GET', p, 200);
  await keyedNewTraffic(ex, auth);
}

/* The rate and schedule routes with keys: admin writes, submit runs,
 * every role reads. */
async function keyedNewTraffic(ex, auth) {
  const sched = { name: 'ct-keyed', every_s: 3600, job: { type: 'echo' } };
  const rate = { limit: 10, period_s: 1 };
  const writes = [['PUT', '/v1/queues/default/rate', rate], ['DELETE', '/v1/queues/default/rate'],
    ['POST', '/v1/schedules', sched], ['PUT', '/v1/schedules/ct-keyed', sched], ['DELETE', '/v1/schedules/ct-keyed'],
    ['POST', '/v1/schedules/ct-keyed/pause'], ['POST', '/v1/schedules/ct-keyed/resume']];
  for (const [m, p, body] of [...writes, ['POST', '/v1/schedules/ct-keyed/run'], ['GET', '/v1/schedules'],
    ['GET', '/v1/schedules/ct-keyed']])
    await ex(m, p, 401, { body, code: 'unauthorized' });
  for (const [m, p, body] of writes) {
    await ex(m, p, 403, { body, headers: auth(KEYS.submit), code: 'forbidden' });
    await ex(m, p, 403, { body, headers: auth(KEYS.worker), code: 'forbidden' });
  }
  await ex('POST', '/v1/schedules/ct-keyed/run', 403, { headers: auth(KEYS.read), code: 'forbidden' });
  const all = { filter: { queue: 'ct-keyed-bulk' } };
  for (const a of ['retry', 'cancel', 'delete']) await ex('POST', `/v1/jobs/${a}`, 401, { body: all, code: 'unauthorized' });
  await ex('GET', '/v1/leases', 401, { code: 'unauthorized' });
  await ex('POST', '/v1/jobs/retry', 403, { body: all, headers: auth(KEYS.read), code: 'forbidden' });
  await ex('POST', '/v1/jobs/cancel', 403, { body: all, headers: auth(KEYS.worker), code: 'forbidden' });
  await ex('POST', '/v1/jobs/delete', 403, { body: all, headers: auth(KEYS.submit), code: 'forbidden' });
  await ex('POST', '/v1/jobs/delete', 200, { body: all, headers: auth(KEYS.admin) });
  for (const k of Object.values(KEYS)) await ex('GET', '/v1/leases', 200, { headers: auth(k) });
  await ex('PUT', '/v1/queues/default/rate', 200, { body: rate, headers: auth(KEYS.admin) });
  await ex('DELETE', '/v1/queues/default/rate', 200, { headers: auth(KEYS.admin) });
  await ex('POST', '/v1/schedules', 201, { body: sched, headers: auth(KEYS.admin) });
  await ex('PUT', '/v1/schedules/ct-keyed', 200, { body: sched, headers: auth(KEYS.admin) });
  for (const k of Object.values(KEYS)) {
    await ex('GET', '/v1/schedules', 200, { headers: auth(k) });
    await ex('GET', '/v1/schedules/ct-keyed', 200, { headers: auth(k) });
  }
  await ex('POST', '/v1/schedules/ct-keyed/pause', 200, { headers: auth(KEYS.admin) });
  await ex('POST', '/v1/schedules/ct-keyed/resume', 200, { headers: auth(KEYS.admin) });
  await ex('POST', '/v1/schedules/ct-keyed/run', 201, { headers: auth(KEYS.submit) });
  await ex('DELETE', '/v1/schedules/ct-keyed', 204, { headers: auth(KEYS.admin) });
}

/* While jobqd stops with a job still running: 503 for submissions and
 * readiness, reads still served. */
async function shutdownTraffic(ex, j) {
  const r = await ex('POST', '/v1/jobs', 201, { body: { type: 'sleep', payload: { seconds: 60 } } });
  await poll(ex, `/v1/jobs/${r.json.id}`, (x) => x.state === 'running', 'sleep running before shutdown');
  j.proc.kill('SIGTERM');
  for (let i = 0; i < 400; i++) {
    const s = await send(ex.port, 'GET', '/readyz');
    if (s.status === 503) break;
    await new Promise((res) => setTimeout(res, 25));
  }
  await ex('GET', '/readyz', 503, { code: 'shutting_down' });
  await ex('POST', '/v1/jobs', 503, { body: { type: 'echo' }, code: 'shutting_down' });
  await ex('POST', '/v1/batches', 503, { body: { jobs: [{ type: 'echo' }] }, code: 'shutting_down' });
  await ex('GET', `/v1/jobs/${r.json.id}`, 200);
}

/* Every route of jobqd's route table is described by the spec. */
function checkRouteTable() {
  const src = fs.readFileSync(path.join(root, 'handlers/routes.c'), 'utf8');
  const table = src.slice(src.indexOf('routes[] = {'), src.indexOf('};', src.indexOf('routes[] = {')));
  const pm = pathMethods(api);
  let n = 0;
  for (const m of table.matchAll(/\{"([A-Z]+)", "([^"]+)"/g)) {
    n++;
    if (!pm[m[2]] || !pm[m[2]].includes(m[1].toLowerCase())) fail(`route ${m[1]} ${m[2]} of handlers/routes.c is not in openapi.yaml`);
  }
  if (n < 20) fail(`read only ${n} routes from handlers/routes.c`);
}

/* Every operation was exercised, with a 2xx answer. */
function checkCoverage() {
  const lines = [];
  for (const [p, item] of Object.entries(api.definition.paths)) {
    for (const m of ['get', 'post', 'put', 'delete', 'patch']) {
      if (!item[m]) continue;
      const k = `${m.toUpperCase()} ${p}`;
      const got = seen[k] || new Set();
      const documented = Object.keys(item[m].responses);
      const missing = documented.filter((s) => !got.has(Number(s)));
      lines.push(`  ${k}: answered ${[...got].sort().join(' ') || '-'}; documented, not reached: ${missing.join(' ') || '-'}`);
      if (![...got].some((s) => s >= 200 && s < 300)) fail(`${k}: no success answer in the traffic set`);
      /* Every documented client error is reached; of the 5xx, 503 where
       * shutting down gives it. 500 and storage_unavailable need a broken
       * disk (api_disk_test covers those). */
      for (const s of missing)
        if (s[0] === '4' || (s === '503' && SHUTDOWN_503.includes(k))) fail(`${k}: documented ${s} not reached by the traffic set`);
    }
  }
  console.log('coverage (status codes per operation):\n' + lines.join('\n'));
}

async function main() {
  const bin = path.resolve(process.argv[2] || path.join(root, 'build/jobqd'));
  api = await loadSpec(SPEC);
  checkRouteTable();
  const phases = [
    ['default', ['--external-queue', 'ext'], {}, defaultTraffic],
    ['keys', [], { JOBQ_API_KEYS: Object.entries(KEYS).map(([r, k]) => `${r}:${k}`).join(',') }, keyedTraffic],
    ['shutdown', ['--shutdown-grace', '3'], {}, shutdownTraffic],
    ['restart', ['--command', `ctcmd=${process.execPath}`], {}, restartTraffic],
  ];
  for (const [label, args, env, traffic] of phases) {
    const j = await startJobqd(bin, args, env);
    const proxy = await startProxy(api, j.port, 0, record);
    const ex = makeCtx(proxy.address().port, label);
    ex.port = proxy.address().port;
    try {
      await traffic(ex, j, bin);
    } catch (e) {
      fail(`[${label}] ${e.stack || e}`);
    }
    proxy.close();
    const code = await stopJobqd(j);
    if (code !== 0) fail(`[${label}] jobqd exited ${code}:\n${j.log().slice(-2000)}`);
    const report = /(ERROR: \w+Sanitizer|runtime error:|WARNING: ThreadSanitizer)[^]*/.exec(j.log());
    if (report) fail(`[${label}] sanitizer report in jobqd's log:\n${report[0].slice(0, 3000)}`);
  }
  checkCoverage();
  dropSchemas();
  if (failures.length) {
    console.error(`check-contract: ${failures.length} failure(s)`);
    process.exit(1);
  }
  console.log('check-contract: every exchange matched openapi.yaml');
  process.exit(0);
}

main().catch((e) => { console.error(e); process.exit(1); });
