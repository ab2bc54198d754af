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
const { loadSpec, startProxy, pathMethods } = require('./proxy');

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

/* Starts jobqd on a free loopback port; resolves {proc, port, dir}. */
function startJobqd(bin, args, env) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jobq-contract-'));
  /* On PostgreSQL (JOBQ_TEST_DB_URL, as the C suites): a fresh schema. */
  const db = DB_URL ? [DB_URL, '--db-schema', newSchema()] : [path.join(dir, 'jobq.db')];
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
        resolve({ proc, port: Number(m[1]), dir, log: () => log });
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

function stopJobqd(j) {
  return new Promise((resolve) => {
    if (j.proc.exitCode !== null) return resolve(j.proc.exitCode);
    j.proc.removeAllListeners('exit');
    j.proc.on('exit', (code) => { fs.rmSync(j.dir, { recursive: true, force: true }); resolve(code); });
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

function record(reqInfo, resInfo, result) {
  findings.set(`${reqInfo.method} ${reqInfo.path}${reqInfo.query ? '?' + reqInfo.query : ''}`, result);
  const specPath = Object.keys(api.definition.paths).find((sp) =>
    new RegExp('^' + sp.replace(/[.]/g, '\\.').replace(/\{[^}]+\}/g, '[^/]+') + '$').test(reqInfo.path));
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
  // routing: 404 and 405 (no operation: shared responses)
  await ex('GET', '/nope', 404, { req: 'any' });
  await ex('PUT', `/v1/jobs/${echo}`, 405, { req: 'any' });
  await ex('POST', '/healthz', 405, { req: 'any' });
  void J;
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
  ];
  for (const [label, args, env, traffic] of phases) {
    const j = await startJobqd(bin, args, env);
    const proxy = await startProxy(api, j.port, 0, record);
    const ex = makeCtx(proxy.address().port, label);
    ex.port = proxy.address().port;
    try {
      await traffic(ex, j);
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
