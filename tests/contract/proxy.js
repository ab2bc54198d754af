'use strict';
/* A validating proxy: every request that passes through is checked against
 * openapi.yaml before it is forwarded to jobqd, and every answer before it
 * is sent back. The checking is openapi-backend's (requests: path, query,
 * headers and body; responses: body and headers per status), run on
 * JSON Schema 2020-12 (Ajv2020), the dialect of OpenAPI 3.1. This file adds
 * what that library leaves out: a status or media type the operation does
 * not document, the security each operation declares, and the shared
 * routing answers (404, 405) that belong to no operation.
 *
 * Alone: node proxy.js SPEC UPSTREAM_PORT [LISTEN_PORT] prints each
 * violation on stderr. contract.js uses it as a module. Loopback only. */

const http = require('http');
const path = require('path');
const { OpenAPIBackend } = require('openapi-backend');
const $RefParser = require('@apidevtools/json-schema-ref-parser');
const Ajv2020 = require('ajv/dist/2020').default;
const addFormats = require('ajv-formats').default;

function makeAjv(opts) {
  const ajv = new Ajv2020({ ...opts, strict: false, allErrors: true });
  addFormats(ajv);
  return ajv;
}

async function loadSpec(specPath) {
  /* openapi-backend's compiler turns every object met twice into a $ref
   * (its cycle breaker), which breaks shared arrays such as `examples`;
   * a dereferenced plain copy shares nothing. */
  const plain = JSON.parse(JSON.stringify(await $RefParser.dereference(specPath)));
  const api = new OpenAPIBackend({
    definition: plain,
    strict: true,
    customizeAjv: (_ajv, opts) => makeAjv(opts),
  });
  /* openapi-backend checks the document itself with a 3.0 meta-schema,
   * which refuses 3.1 documents; the document is linted as 3.1 by
   * make lint-openapi, so that check is skipped here. */
  api.validateDefinition = () => api.document;
  await api.init();
  return api;
}

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'options', 'head'];

/* The described paths and their methods, for 404/405 and the route check. */
function pathMethods(api) {
  const out = {};
  for (const [p, item] of Object.entries(api.definition.paths))
    out[p] = METHODS.filter((m) => item[m]);
  return out;
}

/* OpenAPI: a concrete path matches before a templated one
 * (/v1/jobs/cancel before /v1/jobs/{id}), so the fewest templates first. */
function matchPath(api, urlPath) {
  const templates = (p) => (p.match(/\{/g) || []).length;
  const paths = Object.keys(api.definition.paths).sort((a, b) => templates(a) - templates(b));
  for (const p of paths) {
    const re = new RegExp('^' + p.replace(/[.]/g, '\\.').replace(/\{[^}]+\}/g, '[^/]+') + '$');
    if (re.test(urlPath)) return p;
  }
  return null;
}

const compiled = new WeakMap();
function compileCached(ajv, schema) {
  if (!compiled.has(schema)) compiled.set(schema, ajv.compile(schema));
  return compiled.get(schema);
}

function mediaType(ct) {
  return (ct || '').split(';')[0].trim().toLowerCase();
}

function responseSpec(op, status) {
  const r = op.responses || {};
  return r[String(status)] || r[String(status)[0] + 'XX'] || r.default || null;
}

/* Checks one exchange; returns a list of violations (strings). req:
 * {method, path, query, headers, body (string)}; res: {status, headers,
 * body (string, possibly cut short for streams), streamed}. */
function checkExchange(api, ajvShared, req, res) {
  const v = [];
  const where = `${req.method} ${req.path}${req.query ? '?' + req.query : ''} -> ${res.status}`;
  const specPath = matchPath(api, req.path);
  const lower = req.method.toLowerCase();
  const item = specPath ? api.definition.paths[specPath] : null;
  const op = item ? item[lower] : null;
  if (!op) {
    /* Routing answers: 404 for an undescribed path, 405 + Allow for an
     * undescribed method; both bodies as the shared responses say. */
    const want = !specPath ? 404 : 405;
    const name = want === 404 ? 'NotFound' : 'MethodNotAllowed';
    if (res.status !== want) v.push(`${where}: no operation, so ${want} was due`);
    const shared = api.definition.components.responses[name];
    const content = shared.content || {};
    const mt = mediaType(res.headers['content-type']);
    if (req.method !== 'HEAD' && !content[mt]) v.push(`${where}: media type ${mt} not in components/responses/${name}`);
    else if (req.method !== 'HEAD') {
      const validate = compileCached(ajvShared, content[mt].schema);
      let body;
      try { body = JSON.parse(res.body); } catch (e) { v.push(`${where}: body is not JSON`); }
      if (body !== undefined && !validate(body)) v.push(`${where}: body: ${ajvShared.errorsText(validate.errors)}`);
    }
    if (want === 405) {
      const allow = (res.headers.allow || '').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean).sort();
      const described = METHODS.filter((m) => item[m]).sort();
      if (allow.join() !== described.join()) v.push(`${where}: Allow '${res.headers.allow}' but the spec has ${described.join(', ')}`);
    }
    return { violations: v, requestErrors: [] };
  }
  /* The request. */
  let body = req.body;
  const ct = mediaType(req.headers['content-type']);
  if (body && ct === 'application/json') { try { body = JSON.parse(body); } catch (e) { /* left as text */ } }
  const rv = api.validateRequest({ method: req.method, path: req.path, query: req.query || '', headers: req.headers, body });
  const requestErrors = rv.valid ? [] : (rv.errors || []).map((e) => `${e.instancePath || ''} ${e.message}`);
  if (req.body && op.requestBody && !(op.requestBody.content || {})[ct]) requestErrors.push(`request media type ${ct || '(none)'} not described`);
  /* Security: a request without a key that was served needs {} among the
   * operation's alternatives; a 401 needs a keyed alternative. */
  const security = op.security !== undefined ? op.security : (api.definition.security || []);
  const open = security.length === 0 || security.some((s) => Object.keys(s).length === 0);
  if (!req.headers.authorization && res.status !== 401 && !open)
    v.push(`${where}: served without a key, but the operation's security requires one`);
  if (res.status === 401 && security.length === 0)
    v.push(`${where}: 401 from an operation whose security is [] (public)`);
  /* The response: documented status, media type, body and headers. */
  const rs = responseSpec(op, res.status);
  if (!rs) {
    v.push(`${where}: status ${res.status} is not documented for ${op.operationId}`);
    return { violations: v, requestErrors };
  }
  const content = rs.content || {};
  const mt = mediaType(res.headers['content-type']);
  const hasBody = res.body && res.body.length > 0;
  if (Object.keys(content).length === 0) {
    if (hasBody) v.push(`${where}: a body, but ${op.operationId} ${res.status} documents none`);
  } else if (!content[mt]) {
    v.push(`${where}: media type '${mt}' not documented (${Object.keys(content).join(', ')})`);
  } else if (!res.streamed) {
    let data = res.body;
    if (mt.endsWith('json')) {
      try { data = JSON.parse(res.body); } catch (e) { v.push(`${where}: body is not JSON: ${res.body.slice(0, 80)}`); data = undefined; }
    }
    if (data !== undefined) {
      /* openapi-backend compiles response validators for
       * application/json only; every media type is checked here, with
       * the same Ajv2020. */
      const validate = compileCached(ajvShared, content[mt].schema || {});
      const errors = validate(data) ? null : validate.errors;
      if (errors) v.push(`${where}: body: ${errors.map((e) => `${e.instancePath} ${e.message}`).join('; ')} -- ${res.body.slice(0, 200)}`);
    }
  }
  /* Header values by the library; presence of the required ones here
   * (its 'superset' mode would require the optional ones too). */
  const hv = api.validateResponseHeaders(res.headers, op, { statusCode: res.status, setMatchType: 'any' });
  if (!hv.valid) v.push(`${where}: headers: ${hv.errors.map((e) => `${e.instancePath} ${e.message}`).join('; ')}`);
  for (const [name, h] of Object.entries(rs.headers || {}))
    if (h.required && res.headers[name.toLowerCase()] === undefined) v.push(`${where}: required header ${name} missing`);
  return { violations: v, requestErrors };
}

/* Starts the proxy on 127.0.0.1:listenPort (0: any); onExchange gets
 * (req, res, result) for each exchange. Streams (text/event-stream) are
 * checked on their head and first bytes, then passed through. */
function startProxy(api, upstreamPort, listenPort, onExchange) {
  const ajvShared = makeAjv({});
  const server = http.createServer((creq, cres) => {
    const chunks = [];
    creq.on('data', (c) => chunks.push(c));
    creq.on('end', () => {
      const raw = Buffer.concat(chunks);
      const url = new URL(creq.url, 'http://127.0.0.1');
      const reqInfo = {
        method: creq.method, path: url.pathname, query: url.search.replace(/^\?/, ''),
        headers: creq.headers, body: raw.length ? raw.toString('utf8') : '',
      };
      const headers = { ...creq.headers, host: `127.0.0.1:${upstreamPort}` };
      /* A body goes upstream only after 100 Continue: jobqd refuses an
       * oversized one (413) from its Content-Length and closes, and a body
       * written meanwhile would meet a reset instead of that answer. */
      if (raw.length) headers.expect = '100-continue';
      const ureq = http.request({ host: '127.0.0.1', port: upstreamPort, method: creq.method, path: creq.url, headers }, (ures) => {
        const resInfo = { status: ures.statusCode, headers: ures.headers, body: '', streamed: false };
        const mt = mediaType(ures.headers['content-type']);
        cres.writeHead(ures.statusCode, ures.headers);
        if (mt === 'text/event-stream') {
          resInfo.streamed = true;
          onExchange(reqInfo, resInfo, checkExchange(api, ajvShared, reqInfo, resInfo));
          ures.pipe(cres);
          cres.on('close', () => ures.destroy());
          return;
        }
        const out = [];
        ures.on('data', (c) => out.push(c));
        ures.on('end', () => {
          const buf = Buffer.concat(out);
          resInfo.body = buf.toString('utf8');
          onExchange(reqInfo, resInfo, checkExchange(api, ajvShared, reqInfo, resInfo));
          cres.end(buf);
          ureq.destroy(); /* answered before the body was asked for */
        });
      });
      ureq.on('error', (e) => { if (!cres.headersSent) { cres.writeHead(502); cres.end(String(e)); } });
      if (raw.length) ureq.on('continue', () => ureq.end(raw));
      else ureq.end();
    });
  });
  return new Promise((resolve) => server.listen(listenPort, '127.0.0.1', () => resolve(server)));
}

module.exports = { loadSpec, startProxy, checkExchange, pathMethods, matchPath };

if (require.main === module) {
  const [spec, upstream, listen] = process.argv.slice(2);
  if (!spec || !upstream) {
    console.error('usage: node proxy.js SPEC UPSTREAM_PORT [LISTEN_PORT]');
    process.exit(2);
  }
  loadSpec(path.resolve(spec)).then((api) => startProxy(api, Number(upstream), Number(listen || 0), (req, res, r) => {
    for (const x of r.violations) console.error('violation: ' + x);
    for (const x of r.requestErrors) console.error(`request outside the spec: ${req.method} ${req.path}: ${x}`);
  })).then((s) => console.error(`validating proxy on 127.0.0.1:${s.address().port}`));
}
