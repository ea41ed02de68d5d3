// Self-test for authorizers.mjs (the AWS authorizer test oracle). Serves a
// discovery document and a JWKS from a local server, mints tokens with jose,
// and runs authorizers.mjs as a child process, as authd's Rust tests do.
//
//   npm ci --prefix tests/support && node tests/support/authorizers-selftest.mjs
//
// The configured issuer (http://issuer.test:8080) is deliberately not the
// server's address, so every case also exercises the base_url rewriting.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';

import { exportJWK, generateKeyPair, SignJWT } from 'jose';

const ORACLE = fileURLToPath(new URL('./authorizers.mjs', import.meta.url));
const ISSUER = 'http://issuer.test:8080';
const NOW = 1790000000;

// --- tiny test framework ------------------------------------------------------

const failures = [];
let passed = 0;
async function check(name, fn) {
  try {
    await fn();
    passed += 1;
    console.log(`ok - ${name}`);
  } catch (err) {
    failures.push(name);
    console.log(`not ok - ${name}\n    ${err.stack ?? err}`);
  }
}
function assert(cond, message) {
  if (!cond) throw new Error(`assertion failed: ${message}`);
}

// --- keys -----------------------------------------------------------------------

async function newKey(alg, kid) {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { alg, kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}
const rsa = await newKey('RS256', 'rsa-1');
const ec = await newKey('ES256', 'ec-1');
const ps = await newKey('PS256', 'ps-1');
const forger = await newKey('RS256', 'rsa-1'); // same kid, never published
const unpublished = await newKey('RS256', 'rsa-unpublished');
// An RS384 key published as alg RS256: a token using it must be refused.
const mislabeled = await newKey('RS384', 'mislabeled');
mislabeled.jwk.alg = 'RS256';

// --- discovery server ---------------------------------------------------------

// path -> { status, body }; each case may install its own documents.
const routes = new Map();
const requests = [];
const server = createServer((req, res) => {
  requests.push(req.url);
  const route = routes.get(req.url);
  if (!route) {
    res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
    return;
  }
  res.writeHead(route.status ?? 200, { 'content-type': 'application/json' })
    .end(typeof route.body === 'string' ? route.body : JSON.stringify(route.body));
});
server.listen(0, '127.0.0.1');
await once(server, 'listening');
const BASE_URL = `http://127.0.0.1:${server.address().port}`;

function serve({ issuer = ISSUER, prefix = '', docIssuer = issuer, keys = [rsa.jwk, ec.jwk, ps.jwk, mislabeled.jwk] } = {}) {
  routes.clear();
  const jwksUri = `${issuer.replace(/\/$/, '')}/jwks`;
  routes.set(`${prefix}/.well-known/openid-configuration`, {
    body: {
      issuer: docIssuer,
      jwks_uri: jwksUri,
      response_types_supported: ['code'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: ['RS256'],
    },
  });
  routes.set(`${prefix}/jwks`, { body: { keys } });
}

// --- tokens ---------------------------------------------------------------------

function goodClaims(overrides = {}) {
  const claims = {
    iss: ISSUER,
    sub: 'user-1',
    aud: 'orders-api',
    client_id: 'web-app',
    scope: 'openid orders.read',
    iat: NOW - 60,
    auth_time: NOW - 120,
    exp: NOW + 840,
    jti: 'jti-1',
    ...overrides,
  };
  for (const [k, v] of Object.entries(claims)) if (v === undefined) delete claims[k];
  return claims;
}

async function mint(claims = goodClaims(), { key = rsa, header = {} } = {}) {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'at+jwt', ...header })
    .sign(key.privateKey);
}

const b64 = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url');

// --- running the oracle ---------------------------------------------------------

const APPSYNC = { client_id: 'orders-api|web-api', iat_ttl_ms: 900000, auth_ttl_ms: 3600000 };
const APIGW = [
  { name: 'by_audience', audience: ['orders-api'], scopes: [] },
  { name: 'scoped_route', audience: ['orders-api'], scopes: ['orders.read'] },
];

async function runRaw(stdinText) {
  const child = spawn(process.execPath, [ORACLE], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => { stdout += d; });
  child.stderr.on('data', (d) => { stderr += d; });
  child.stdin.end(stdinText);
  const [code] = await once(child, 'close');
  return { code, stdout, stderr };
}

// `now: null` leaves "now" out of the input (the oracle then uses the clock).
async function run(tokens, { appsync = APPSYNC, apigw = APIGW, now = NOW, issuer = ISSUER, baseUrl = BASE_URL } = {}) {
  const input = {
    issuer,
    base_url: baseUrl,
    tokens: Object.entries(tokens).map(([name, token]) => ({ name, token })),
    appsync,
    apigw,
  };
  if (now !== null) input.now = now;
  const { code, stdout, stderr } = await runRaw(JSON.stringify(input));
  assert(code === 0, `exit code ${code}, stderr: ${stderr}`);
  const out = JSON.parse(stdout);
  for (const r of out.results) assert(r.ok === (r.reasons.length === 0), `ok/reasons consistent for ${JSON.stringify(r)}`);
  return out;
}

function result(out, token, authorizer) {
  const r = out.results.find((x) => x.token === token && x.authorizer === authorizer);
  assert(r, `result for ${token} / ${authorizer} in ${JSON.stringify(out.results)}`);
  return r;
}
function expectOk(out, token, ...authorizers) {
  for (const a of authorizers) {
    const r = result(out, token, a);
    assert(r.ok, `${token} / ${a} should pass, got ${JSON.stringify(r.reasons)}`);
  }
}
// Each listed authorizer must refuse, with a reason matching `mention`.
function expectRefused(out, token, mention, ...authorizers) {
  for (const a of authorizers) {
    const r = result(out, token, a);
    assert(!r.ok, `${token} / ${a} should be refused`);
    assert(r.reasons.some((s) => mention.test(s)), `${token} / ${a}: a reason should match ${mention}, got ${JSON.stringify(r.reasons)}`);
  }
}
const ALL = ['appsync', 'apigw:by_audience', 'apigw:scoped_route'];
const APIGW_ALL = ['apigw:by_audience', 'apigw:scoped_route'];

// --- cases ------------------------------------------------------------------------

serve();

await check('good token passes every authorizer; output shape', async () => {
  requests.length = 0;
  const out = await run({ login: await mint() });
  assert(out.discovery.ok === true && out.discovery.reasons.length === 0, `discovery ok: ${JSON.stringify(out.discovery)}`);
  assert(out.results.length === 3, 'one result per (token, authorizer)');
  assert(out.results.map((r) => r.authorizer).join(',') === ALL.join(','), 'appsync first, then apigw in order');
  expectOk(out, 'login', ...ALL);
  assert(requests.includes('/.well-known/openid-configuration') && requests.includes('/jwks'),
    `discovery and jwks_uri fetched via base_url: ${requests}`);
});

await check('wrong iss is refused by all', async () => {
  const out = await run({ t: await mint(goodClaims({ iss: 'http://issuer.test:8080/' })) });
  expectRefused(out, 't', /^iss /, ...ALL);
});

await check('iss missing is refused by all', async () => {
  const out = await run({ t: await mint(goodClaims({ iss: undefined })) });
  expectRefused(out, 't', /iss missing/, ...ALL);
});

await check('aud not matching is refused by all', async () => {
  const out = await run({ t: await mint(goodClaims({ aud: 'billing-api' })) });
  expectRefused(out, 't', /aud .*billing-api/, ...ALL);
});

await check('AppSync client_id regex must match the whole aud', async () => {
  const tokens = {
    prefix: await mint(goodClaims({ aud: 'orders-api' })),
    exact: await mint(goodClaims({ aud: 'orders' })),
    suffix: await mint(goodClaims({ aud: 'my-orders' })),
  };
  const out = await run(tokens, { appsync: { client_id: 'orders' }, apigw: [] });
  expectRefused(out, 'prefix', /fully match/, 'appsync');
  expectRefused(out, 'suffix', /fully match/, 'appsync');
  expectOk(out, 'exact', 'appsync');
  // An alternation is anchored as a whole: ^(?:orders-api|web-api)$.
  const out2 = await run({
    web: await mint(goodClaims({ aud: 'web-api' })),
    tail: await mint(goodClaims({ aud: 'orders-api-x' })),
    head: await mint(goodClaims({ aud: 'x-web-api' })),
  }, { apigw: [] });
  expectOk(out2, 'web', 'appsync');
  expectRefused(out2, 'tail', /fully match/, 'appsync');
  expectRefused(out2, 'head', /fully match/, 'appsync');
});

await check('AppSync without client_id accepts any aud (and no aud)', async () => {
  const out = await run({
    any: await mint(goodClaims({ aud: 'whatever' })),
    none: await mint(goodClaims({ aud: undefined })),
  }, { appsync: {}, apigw: [] });
  expectOk(out, 'any', 'appsync');
  expectOk(out, 'none', 'appsync');
  assert(out.results.length === 2, 'only appsync results');
});

await check('array aud: any element may match', async () => {
  const out = await run({
    hit: await mint(goodClaims({ aud: ['billing-api', 'orders-api'] })),
    miss: await mint(goodClaims({ aud: ['billing-api', 'orders-api-v2'] })),
  });
  expectOk(out, 'hit', ...ALL);
  expectRefused(out, 'miss', /aud /, ...ALL);
});

await check('no aud: API Gateway falls back to client_id, AppSync (client_id set) refuses', async () => {
  const out = await run({
    cid: await mint(goodClaims({ aud: undefined, client_id: 'orders-api' })),
    cid_miss: await mint(goodClaims({ aud: undefined, client_id: 'web-app' })),
    neither: await mint(goodClaims({ aud: undefined, client_id: undefined })),
  });
  expectOk(out, 'cid', ...APIGW_ALL);
  expectRefused(out, 'cid', /aud missing/, 'appsync');
  expectRefused(out, 'cid_miss', /client_id .*not in audience/, ...APIGW_ALL);
  expectRefused(out, 'neither', /neither aud nor client_id/, ...APIGW_ALL);
});

await check('aud present and wrong: API Gateway ignores a matching client_id', async () => {
  const out = await run({ t: await mint(goodClaims({ aud: 'billing-api', client_id: 'orders-api' })) });
  expectRefused(out, 't', /aud .*not in audience/, ...APIGW_ALL);
});

await check('expired, exp == now, exp missing are refused by all', async () => {
  const out = await run({
    expired: await mint(goodClaims({ exp: NOW - 1 })),
    edge: await mint(goodClaims({ exp: NOW })),
    noexp: await mint(goodClaims({ exp: undefined })),
    strexp: await mint(goodClaims({ exp: String(NOW + 600) })),
  });
  expectRefused(out, 'expired', /^exp .*expired/, ...ALL);
  expectRefused(out, 'edge', /^exp .*expired/, ...ALL);
  expectRefused(out, 'noexp', /exp missing/, ...ALL);
  expectRefused(out, 'strexp', /exp is not a NumericDate/, ...ALL);
});

await check('iat in the future: API Gateway refuses, AppSync (TTL only) accepts', async () => {
  const out = await run({ t: await mint(goodClaims({ iat: NOW + 600, exp: NOW + 1200 })) });
  expectRefused(out, 't', /^iat .*future/, ...APIGW_ALL);
  expectOk(out, 't', 'appsync');
});

await check('nbf in the future: API Gateway refuses, AppSync does not check nbf', async () => {
  const out = await run({
    future: await mint(goodClaims({ nbf: NOW + 60 })),
    now: await mint(goodClaims({ nbf: NOW })),
  });
  expectRefused(out, 'future', /^nbf .*not yet valid/, ...APIGW_ALL);
  expectOk(out, 'future', 'appsync');
  expectOk(out, 'now', ...ALL);
});

await check('iat_ttl: exceeded refused by AppSync, boundary accepted, missing iat refused', async () => {
  const out = await run({
    old: await mint(goodClaims({ iat: NOW - 901 })),
    edge: await mint(goodClaims({ iat: NOW - 900 })),
    noiat: await mint(goodClaims({ iat: undefined })),
  });
  expectRefused(out, 'old', /^iat .*iat_ttl/, 'appsync');
  expectOk(out, 'old', ...APIGW_ALL);
  expectOk(out, 'edge', ...ALL);
  expectRefused(out, 'noiat', /iat missing/, 'appsync');
  expectOk(out, 'noiat', ...APIGW_ALL);
  // Without iat_ttl_ms, AppSync neither needs iat nor limits its age.
  const out2 = await run({ old: await mint(goodClaims({ iat: NOW - 100000, auth_time: undefined })) },
    { appsync: { client_id: 'orders-api' }, apigw: [] });
  expectOk(out2, 'old', 'appsync');
});

await check('auth_ttl: exceeded or missing auth_time refused by AppSync only', async () => {
  const out = await run({
    old: await mint(goodClaims({ auth_time: NOW - 3601 })),
    edge: await mint(goodClaims({ auth_time: NOW - 3600 })),
    missing: await mint(goodClaims({ auth_time: undefined })),
  });
  expectRefused(out, 'old', /^auth_time .*auth_ttl/, 'appsync');
  expectRefused(out, 'missing', /auth_time missing/, 'appsync');
  expectOk(out, 'old', ...APIGW_ALL);
  expectOk(out, 'missing', ...APIGW_ALL);
  expectOk(out, 'edge', ...ALL);
});

await check('unknown kid and missing kid are refused by all', async () => {
  const out = await run({
    unknown: await mint(goodClaims(), { key: unpublished }),
    nokid: await mint(goodClaims(), { header: { kid: undefined } }),
  });
  expectRefused(out, 'unknown', /kid "rsa-unpublished" not found/, ...ALL);
  expectRefused(out, 'nokid', /no kid/, ...ALL);
});

await check('signature by another key with the same kid is refused by all', async () => {
  const out = await run({ t: await mint(goodClaims(), { key: forger }) });
  expectRefused(out, 't', /signature does not verify/, ...ALL);
});

await check('tampered payload (re-encoded, original signature) is refused by all', async () => {
  const [h, , s] = (await mint()).split('.');
  const out = await run({ t: `${h}.${b64(goodClaims({ sub: 'admin' }))}.${s}` });
  expectRefused(out, 't', /signature does not verify/, ...ALL);
});

await check('alg none is refused by all', async () => {
  const token = `${b64({ alg: 'none', kid: 'rsa-1', typ: 'at+jwt' })}.${b64(goodClaims())}.`;
  const out = await run({ t: token });
  expectRefused(out, 't', /alg none refused/, ...ALL);
});

await check('HS256 (keyed with a secret, kid of the RSA key) is refused by all', async () => {
  const token = await new SignJWT(goodClaims())
    .setProtectedHeader({ alg: 'HS256', kid: 'rsa-1', typ: 'at+jwt' })
    .sign(new TextEncoder().encode('a-shared-secret-of-32-bytes-ok!!'));
  const out = await run({ t: token });
  expectRefused(out, 't', /alg HS256 refused/, ...ALL);
});

await check('ES256 and PS256: AppSync accepts, API Gateway refuses (RSA PKCS#1 v1.5 only)', async () => {
  const out = await run({
    es: await mint(goodClaims(), { key: ec }),
    ps: await mint(goodClaims(), { key: ps }),
  });
  expectOk(out, 'es', 'appsync');
  expectOk(out, 'ps', 'appsync');
  expectRefused(out, 'es', /alg ES256 not supported .*RSA/, ...APIGW_ALL);
  expectRefused(out, 'ps', /alg PS256 not supported/, ...APIGW_ALL);
});

await check('header alg must fit the key (RS256 header on the EC key, RS384 on a key published as RS256)', async () => {
  const out = await run({
    kty: await mint(goodClaims(), { header: { kid: 'ec-1' } }),
    alg: await mint(goodClaims(), { key: mislabeled }),
  });
  expectRefused(out, 'kty', /kty EC/, ...ALL);
  expectRefused(out, 'alg', /does not match the key's alg RS256/, ...ALL);
});

await check('malformed tokens are refused by all', async () => {
  const out = await run({ two: 'abc.def', junk: 'a.b.c', empty: '' });
  expectRefused(out, 'two', /not a compact JWS/, ...ALL);
  expectRefused(out, 'junk', /not base64url-encoded JSON/, ...ALL);
  expectRefused(out, 'empty', /not a compact JWS/, ...ALL);
});

await check('scoped route: scope string, scp array, scp string; no/other scope refused', async () => {
  const apigw = [
    ...APIGW,
    { name: 'write_or_admin', audience: ['orders-api'], scopes: ['orders.write', 'orders.admin'] },
  ];
  const out = await run({
    scope: await mint(goodClaims({ scope: 'openid orders.read' })),
    other: await mint(goodClaims({ scope: 'orders.write' })),
    scp_arr: await mint(goodClaims({ scope: undefined, scp: ['profile', 'orders.read'] })),
    scp_str: await mint(goodClaims({ scope: undefined, scp: 'orders.read orders.admin' })),
    none: await mint(goodClaims({ scope: undefined })),
    scope_arr: await mint(goodClaims({ scope: ['orders.read'] })),
    substr: await mint(goodClaims({ scope: 'orders.reader' })),
  }, { apigw });
  expectOk(out, 'scope', 'apigw:scoped_route', 'apigw:by_audience');
  expectRefused(out, 'scope', /none of the route's scopes/, 'apigw:write_or_admin');
  expectOk(out, 'other', 'apigw:by_audience', 'apigw:write_or_admin');
  expectRefused(out, 'other', /scope\/scp \(orders\.write\) has none/, 'apigw:scoped_route');
  expectOk(out, 'scp_arr', 'apigw:scoped_route');
  expectOk(out, 'scp_str', 'apigw:scoped_route', 'apigw:write_or_admin');
  expectRefused(out, 'none', /scope\/scp \(none\)/, 'apigw:scoped_route');
  expectOk(out, 'none', 'apigw:by_audience', 'appsync');
  expectRefused(out, 'scope_arr', /scope is not a space-separated string/, 'apigw:scoped_route');
  expectRefused(out, 'substr', /has none/, 'apigw:scoped_route');
});

await check('several tokens and no appsync: results per (token, apigw authorizer) in order', async () => {
  const out = await run({ a: await mint(), b: await mint(goodClaims({ aud: 'x' })) }, { appsync: null });
  assert(out.results.map((r) => `${r.token}/${r.authorizer}`).join(',')
    === 'a/apigw:by_audience,a/apigw:scoped_route,b/apigw:by_audience,b/apigw:scoped_route', JSON.stringify(out.results));
});

await check('default now is the current time', async () => {
  const t = Math.floor(Date.now() / 1000);
  const out = await run({
    fresh: await mint(goodClaims({ iat: t - 5, auth_time: t - 5, exp: t + 300 })),
    stale: await mint(), // minted for NOW, which is not the current time
  }, { now: null });
  expectOk(out, 'fresh', ...ALL);
  assert(!result(out, 'stale', 'appsync').ok || !result(out, 'stale', 'apigw:by_audience').ok,
    'a token minted for another time should fail somewhere');
});

// --- discovery failures -----------------------------------------------------------

await check('discovery issuer mismatch: discovery not ok, every result not ok', async () => {
  serve({ docIssuer: `${ISSUER}/` });
  const out = await run({ login: await mint() });
  assert(!out.discovery.ok, 'discovery not ok');
  assert(out.discovery.reasons.some((r) => /issuer "http:\/\/issuer\.test:8080\/" does not exactly equal/.test(r)), JSON.stringify(out.discovery));
  expectRefused(out, 'login', /^discovery failed$/, ...ALL);
});

await check('JWKS key without alg: discovery reason, every result not ok', async () => {
  const { alg, ...noAlg } = rsa.jwk;
  serve({ keys: [noAlg, ec.jwk] });
  const out = await run({ login: await mint() });
  assert(out.discovery.reasons.some((r) => /key "rsa-1" has no "alg"/.test(r)), JSON.stringify(out.discovery));
  expectRefused(out, 'login', /^discovery failed$/, ...ALL);
});

await check('JWKS duplicate kid and private key material are discovery reasons', async () => {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const leaked = { ...(await exportJWK(privateKey)), kid: 'leaked', alg: 'RS256' };
  serve({ keys: [rsa.jwk, { ...ec.jwk, kid: 'rsa-1' }, leaked] });
  const out = await run({ login: await mint() });
  assert(out.discovery.reasons.some((r) => /kid "rsa-1" is used by 2 keys/.test(r)), JSON.stringify(out.discovery));
  assert(out.discovery.reasons.some((r) => /key "leaked" publishes private/.test(r)), JSON.stringify(out.discovery));
  expectRefused(out, 'login', /^discovery failed$/, ...ALL);
});

await check('discovery HTTP errors: 404 document, 500 jwks, non-JSON, missing jwks_uri', async () => {
  routes.clear();
  let out = await run({ login: await mint() });
  assert(out.discovery.reasons.some((r) => /HTTP 404/.test(r)), JSON.stringify(out.discovery));
  expectRefused(out, 'login', /^discovery failed$/, ...ALL);

  serve();
  routes.set('/jwks', { status: 500, body: {} });
  out = await run({ login: await mint() });
  assert(out.discovery.reasons.some((r) => /jwks: .*HTTP 500/.test(r)), JSON.stringify(out.discovery));
  expectRefused(out, 'login', /^discovery failed$/, ...ALL);

  routes.set('/jwks', { body: 'not json' });
  out = await run({ login: await mint() });
  assert(out.discovery.reasons.some((r) => /not JSON/.test(r)), JSON.stringify(out.discovery));

  routes.set('/.well-known/openid-configuration', { body: { issuer: ISSUER } });
  out = await run({ login: await mint() });
  assert(out.discovery.reasons.some((r) => /jwks_uri missing/.test(r)), JSON.stringify(out.discovery));
  expectRefused(out, 'login', /^discovery failed$/, ...ALL);
  serve();
});

await check('issuer with a trailing slash and a path: no doubled slash, exact iss', async () => {
  const issuer = 'http://issuer.test:8080/tenant/';
  serve({ issuer, prefix: '/tenant' });
  requests.length = 0;
  const out = await run({
    good: await mint(goodClaims({ iss: issuer })),
    noslash: await mint(goodClaims({ iss: 'http://issuer.test:8080/tenant' })),
  }, { issuer, baseUrl: `${BASE_URL}/tenant/` });
  assert(out.discovery.ok, JSON.stringify(out.discovery));
  assert(requests.includes('/tenant/.well-known/openid-configuration') && requests.includes('/tenant/jwks'), `requests: ${requests}`);
  expectOk(out, 'good', ...ALL);
  expectRefused(out, 'noslash', /^iss /, ...ALL);
  serve();
});

await check('unusable input exits 2', async () => {
  for (const [what, text] of [
    ['not JSON', '{'],
    ['no issuer', JSON.stringify({ base_url: BASE_URL, tokens: [] })],
    ['no base_url', JSON.stringify({ issuer: ISSUER, tokens: [] })],
    ['tokens not array', JSON.stringify({ issuer: ISSUER, base_url: BASE_URL, tokens: {} })],
    ['bad regex', JSON.stringify({ issuer: ISSUER, base_url: BASE_URL, tokens: [], appsync: { client_id: '(' } })],
    ['bad scopes', JSON.stringify({ issuer: ISSUER, base_url: BASE_URL, tokens: [], apigw: [{ name: 'x', audience: ['a'], scopes: 'a' }] })],
  ]) {
    const { code, stdout } = await runRaw(text);
    assert(code === 2 && stdout === '', `${what}: exit ${code}, stdout ${JSON.stringify(stdout)}`);
  }
});

server.close();
console.log(`${passed} passed, ${failures.length} failed`);
process.exit(failures.length ? 1 : 0);
