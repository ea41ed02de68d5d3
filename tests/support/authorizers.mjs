// authorizers.mjs: a TEST ORACLE, not an AWS component. It re-implements, from
// AWS's public documentation only, the token checks that two AWS authorizers
// apply to bearer JWTs, so that authd's tests can show that authd's access
// tokens would be accepted by them (and that bad tokens are refused). It shares
// no code with authd on purpose: it is the verifier's view.
//
// Sources:
//  - AWS AppSync, OPENID_CONNECT authorization (issuer, clientId regex, iatTTL,
//    authTTL): https://docs.aws.amazon.com/appsync/latest/devguide/security-authz.html#openid-connect-authorization
//    and https://docs.aws.amazon.com/appsync/latest/APIReference/API_OpenIDConnectConfig.html
//    ("The issuer returned by discovery must exactly match the value of iss").
//  - Amazon API Gateway HTTP API JWT authorizers:
//    https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-jwt-authorizer.html
//    (kid, RSA-only algorithms, iss, aud-else-client_id, exp, nbf, iat, scope/scp).
//
// Where the documentation is silent this oracle chooses the strict reading;
// the choices are listed in README.md ("authorizers.mjs").
//
// Usage: node tests/support/authorizers.mjs < input.json > output.json
// Input/output format: see README.md. Exit 0 with a JSON result document, or
// exit 2 (message on stderr) when the input is unusable.

import { compactVerify, importJWK } from 'jose';

const FETCH_TIMEOUT_MS = 10_000;
const DISCOVERY_PATH = '.well-known/openid-configuration';
const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

// AppSync: any asymmetric JWS algorithm. API Gateway: "only RSA-based
// algorithms are supported", read as RSASSA-PKCS1-v1_5 (RS*) only.
const APPSYNC_ALGS = new Set(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384']);
const APIGW_ALGS = new Set(['RS256', 'RS384', 'RS512']);
const EC_CURVE_FOR_ALG = { ES256: 'P-256', ES384: 'P-384' };

// --- input ---------------------------------------------------------------------

function fail(message) {
  process.stderr.write(`authorizers.mjs: ${message}\n`);
  process.exit(2);
}

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const isNumber = (v) => typeof v === 'number' && Number.isFinite(v);
const isOptionalNumber = (v) => v === undefined || v === null || (isNumber(v) && v >= 0);

function parseInput(text) {
  let input;
  try {
    input = JSON.parse(text);
  } catch (err) {
    fail(`stdin is not JSON: ${err.message}`);
  }
  if (!isObject(input)) fail('input must be a JSON object');
  const { issuer, base_url: baseUrl, now, tokens, appsync, apigw } = input;
  if (typeof issuer !== 'string' || issuer === '') fail('"issuer" must be a non-empty string');
  if (typeof baseUrl !== 'string' || !/^https?:\/\/[^/]/.test(baseUrl)) fail('"base_url" must be an http(s) URL');
  if (now !== undefined && now !== null && !isNumber(now)) fail('"now" must be a number of seconds');
  if (!Array.isArray(tokens)) fail('"tokens" must be an array');
  for (const t of tokens) {
    if (!isObject(t) || typeof t.name !== 'string' || typeof t.token !== 'string') {
      fail('each token must be {"name": string, "token": string}');
    }
  }
  let appsyncConfig = null;
  if (appsync !== undefined && appsync !== null) {
    if (!isObject(appsync)) fail('"appsync" must be an object or null');
    const { client_id: clientId, iat_ttl_ms: iatTtl, auth_ttl_ms: authTtl } = appsync;
    if (clientId !== undefined && clientId !== null && typeof clientId !== 'string') fail('"appsync.client_id" must be a string');
    if (!isOptionalNumber(iatTtl)) fail('"appsync.iat_ttl_ms" must be a non-negative number');
    if (!isOptionalNumber(authTtl)) fail('"appsync.auth_ttl_ms" must be a non-negative number');
    let clientIdRegex = null;
    if (typeof clientId === 'string') {
      try {
        clientIdRegex = new RegExp(`^(?:${clientId})$`);
      } catch (err) {
        fail(`"appsync.client_id" is not a valid regular expression: ${err.message}`);
      }
    }
    appsyncConfig = { clientIdRegex, clientId, iatTtlMs: iatTtl ?? null, authTtlMs: authTtl ?? null };
  }
  const apigwConfigs = [];
  if (apigw !== undefined && apigw !== null) {
    if (!Array.isArray(apigw)) fail('"apigw" must be an array');
    for (const a of apigw) {
      if (!isObject(a) || typeof a.name !== 'string') fail('each apigw entry needs a string "name"');
      const audience = a.audience ?? [];
      const scopes = a.scopes ?? [];
      if (!Array.isArray(audience) || !audience.every((s) => typeof s === 'string')) fail(`apigw ${a.name}: "audience" must be an array of strings`);
      if (!Array.isArray(scopes) || !scopes.every((s) => typeof s === 'string')) fail(`apigw ${a.name}: "scopes" must be an array of strings`);
      apigwConfigs.push({ name: a.name, audience, scopes });
    }
  }
  return {
    issuer,
    baseUrl,
    now: isNumber(now) ? now : Math.floor(Date.now() / 1000),
    tokens,
    appsync: appsyncConfig,
    apigw: apigwConfigs,
  };
}

// --- discovery -------------------------------------------------------------------

// URLs under the configured issuer are fetched from base_url instead.
function rewrite(url, issuer, baseUrl) {
  if (!url.startsWith(issuer)) return url;
  let rest = url.slice(issuer.length);
  // "http://a:1" must not capture "http://a:12/x".
  if (!issuer.endsWith('/') && rest !== '' && !/^[/?#]/.test(rest)) return url;
  if (issuer.endsWith('/')) rest = `/${rest}`;
  return baseUrl.replace(/\/+$/, '') + rest;
}

async function getJson(url, what, reasons) {
  let res;
  try {
    // Redirects are not followed: the documents must be served where they are named.
    res = await fetch(url, {
      redirect: 'manual',
      headers: { accept: 'application/json' },
      signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
    });
  } catch (err) {
    reasons.push(`${what}: GET ${url} failed: ${err.cause?.code ?? err.message}`);
    return undefined;
  }
  const body = await res.text().catch(() => '');
  if (res.status !== 200) {
    reasons.push(`${what}: GET ${url} answered HTTP ${res.status}, expected 200`);
    return undefined;
  }
  try {
    return JSON.parse(body);
  } catch {
    reasons.push(`${what}: body of ${url} is not JSON`);
    return undefined;
  }
}

async function discover(issuer, baseUrl) {
  const reasons = [];
  const keys = []; // usable keys: { jwk }
  const discoveryUrl = issuer.endsWith('/') ? `${issuer}${DISCOVERY_PATH}` : `${issuer}/${DISCOVERY_PATH}`;
  const doc = await getJson(rewrite(discoveryUrl, issuer, baseUrl), 'discovery', reasons);
  if (doc === undefined) return { reasons, keys };
  if (!isObject(doc)) {
    reasons.push('discovery: document is not a JSON object');
    return { reasons, keys };
  }
  if (doc.issuer !== issuer) {
    reasons.push(`discovery: issuer ${JSON.stringify(doc.issuer)} does not exactly equal the configured issuer ${JSON.stringify(issuer)}`);
  }
  if (typeof doc.jwks_uri !== 'string' || doc.jwks_uri === '') {
    reasons.push('discovery: jwks_uri missing');
    return { reasons, keys };
  }
  try {
    new URL(doc.jwks_uri); // eslint-disable-line no-new
  } catch {
    reasons.push(`discovery: jwks_uri ${JSON.stringify(doc.jwks_uri)} is not an absolute URL`);
    return { reasons, keys };
  }
  const jwks = await getJson(rewrite(doc.jwks_uri, issuer, baseUrl), 'jwks', reasons);
  if (jwks === undefined) return { reasons, keys };
  if (!isObject(jwks) || !Array.isArray(jwks.keys)) {
    reasons.push('jwks: no "keys" array');
    return { reasons, keys };
  }
  if (jwks.keys.length === 0) reasons.push('jwks: "keys" is empty');
  const seen = new Map();
  jwks.keys.forEach((jwk, i) => {
    if (!isObject(jwk)) {
      reasons.push(`jwks: keys[${i}] is not an object`);
      return;
    }
    const label = typeof jwk.kid === 'string' ? `key ${JSON.stringify(jwk.kid)}` : `keys[${i}]`;
    for (const member of ['kid', 'kty', 'alg']) {
      if (typeof jwk[member] !== 'string' || jwk[member] === '') reasons.push(`jwks: ${label} has no "${member}"`);
    }
    const priv = PRIVATE_JWK_MEMBERS.filter((m) => m in jwk);
    if (priv.length) reasons.push(`jwks: ${label} publishes private/secret key material (${priv.join(', ')})`);
    if (typeof jwk.kid === 'string') seen.set(jwk.kid, (seen.get(jwk.kid) ?? 0) + 1);
    keys.push(jwk);
  });
  for (const [kid, count] of seen) {
    if (count > 1) reasons.push(`jwks: kid ${JSON.stringify(kid)} is used by ${count} keys (kids must be unique)`);
  }
  return { reasons, keys };
}

// --- token checks ---------------------------------------------------------------

function b64urlJson(part) {
  if (!/^[A-Za-z0-9_-]+$/.test(part)) return undefined;
  try {
    const value = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    return isObject(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

// Structure: compact JWS (three base64url parts), JSON object header and payload.
function decode(token) {
  const parts = token.split('.');
  if (parts.length !== 3) return { error: `not a compact JWS (${parts.length} parts, expected 3)` };
  const header = b64urlJson(parts[0]);
  if (!header) return { error: 'header is not base64url-encoded JSON object' };
  const payload = b64urlJson(parts[1]);
  if (!payload) return { error: 'payload is not a base64url-encoded JSON object' };
  if (!/^[A-Za-z0-9_-]*$/.test(parts[2])) return { error: 'signature is not base64url' };
  return { header, payload };
}

// Header alg, kid lookup, key type, and the signature itself.
async function checkSignature(token, header, keys, allowedAlgs, service, reasons) {
  const { alg, kid } = header;
  if (typeof alg !== 'string') {
    reasons.push('header has no alg');
    return;
  }
  if (!allowedAlgs.has(alg)) {
    reasons.push(alg === 'none' || alg.startsWith('HS')
      ? `alg ${alg} refused (${service} needs an asymmetric signature)`
      : `alg ${alg} not supported by ${service}${service === 'API Gateway' ? ' (only RSA-based algorithms)' : ''}`);
    return;
  }
  if (typeof kid !== 'string') {
    reasons.push('header has no kid');
    return;
  }
  const matching = keys.filter((k) => k.kid === kid);
  if (matching.length === 0) {
    reasons.push(`kid ${JSON.stringify(kid)} not found in the JWKS`);
    return;
  }
  if (matching.length > 1) {
    reasons.push(`kid ${JSON.stringify(kid)} is ambiguous in the JWKS`);
    return;
  }
  const jwk = matching[0];
  const wantKty = alg.startsWith('ES') ? 'EC' : 'RSA';
  if (jwk.kty !== wantKty) {
    reasons.push(`key ${JSON.stringify(kid)} has kty ${jwk.kty}, alg ${alg} needs kty ${wantKty}${service === 'API Gateway' ? ' (only RSA keys)' : ''}`);
    return;
  }
  if (wantKty === 'EC' && jwk.crv !== EC_CURVE_FOR_ALG[alg]) {
    reasons.push(`key ${JSON.stringify(kid)} has crv ${jwk.crv}, alg ${alg} needs ${EC_CURVE_FOR_ALG[alg]}`);
    return;
  }
  if (typeof jwk.alg === 'string' && jwk.alg !== alg) {
    reasons.push(`header alg ${alg} does not match the key's alg ${jwk.alg}`);
    return;
  }
  if (jwk.use !== undefined && jwk.use !== 'sig') {
    reasons.push(`key ${JSON.stringify(kid)} has use ${JSON.stringify(jwk.use)}, not "sig"`);
    return;
  }
  let key;
  try {
    const { d, p, q, dp, dq, qi, oth, k, ...pub } = jwk; // never verify with private parts
    key = await importJWK(pub, alg);
  } catch (err) {
    reasons.push(`key ${JSON.stringify(kid)} cannot be imported: ${err.message}`);
    return;
  }
  try {
    await compactVerify(token, key, { algorithms: [alg] });
  } catch (err) {
    reasons.push(`signature does not verify with key ${JSON.stringify(kid)} (${err.code ?? err.message})`);
  }
}

function checkIssuer(payload, issuer, reasons) {
  if (payload.iss === undefined) reasons.push('iss missing');
  else if (payload.iss !== issuer) reasons.push(`iss ${JSON.stringify(payload.iss)} is not the configured issuer ${JSON.stringify(issuer)}`);
}

// Returns the numeric claim, or undefined after recording why it is unusable.
function numericClaim(payload, name, required, reasons) {
  const value = payload[name];
  if (value === undefined) {
    if (required) reasons.push(`${name} missing`);
    return undefined;
  }
  if (!isNumber(value)) {
    reasons.push(`${name} is not a NumericDate (${JSON.stringify(value)})`);
    return undefined;
  }
  return value;
}

function audValues(aud, reasons) {
  if (typeof aud === 'string') return [aud];
  if (Array.isArray(aud) && aud.length > 0 && aud.every((a) => typeof a === 'string')) return aud;
  reasons.push(`aud ${JSON.stringify(aud)} is neither a string nor a non-empty array of strings`);
  return null;
}

async function appsyncCheck(token, ctx) {
  const { issuer, now, keys, appsync } = ctx;
  const reasons = [];
  const decoded = decode(token);
  if (decoded.error) return [decoded.error];
  const { header, payload } = decoded;
  await checkSignature(token, header, keys, APPSYNC_ALGS, 'AppSync', reasons);
  checkIssuer(payload, issuer, reasons);
  if (appsync.clientIdRegex) {
    if (payload.aud === undefined) {
      reasons.push(`aud missing (client_id /${appsync.clientId}/ is configured)`);
    } else {
      const auds = audValues(payload.aud, reasons);
      if (auds && !auds.some((a) => appsync.clientIdRegex.test(a))) {
        reasons.push(`aud ${JSON.stringify(payload.aud)} does not fully match client_id /^(?:${appsync.clientId})$/`);
      }
    }
  }
  const exp = numericClaim(payload, 'exp', true, reasons);
  if (exp !== undefined && !(exp > now)) reasons.push(`exp ${exp} is not after now ${now} (expired)`);
  if (appsync.iatTtlMs !== null) {
    const iat = numericClaim(payload, 'iat', true, reasons);
    if (iat !== undefined && now - iat > appsync.iatTtlMs / 1000) {
      reasons.push(`iat ${iat} is ${now - iat}s old, more than iat_ttl ${appsync.iatTtlMs / 1000}s`);
    }
  }
  if (appsync.authTtlMs !== null) {
    const authTime = numericClaim(payload, 'auth_time', true, reasons);
    if (authTime !== undefined && now - authTime > appsync.authTtlMs / 1000) {
      reasons.push(`auth_time ${authTime} is ${now - authTime}s old, more than auth_ttl ${appsync.authTtlMs / 1000}s`);
    }
  }
  return reasons;
}

function tokenScopes(payload) {
  const scopes = new Set();
  const notes = [];
  if (payload.scope !== undefined) {
    if (typeof payload.scope === 'string') payload.scope.split(/\s+/).filter(Boolean).forEach((s) => scopes.add(s));
    else notes.push('scope is not a space-separated string');
  }
  if (payload.scp !== undefined) {
    if (typeof payload.scp === 'string') payload.scp.split(/\s+/).filter(Boolean).forEach((s) => scopes.add(s));
    else if (Array.isArray(payload.scp) && payload.scp.every((s) => typeof s === 'string')) payload.scp.forEach((s) => scopes.add(s));
    else notes.push('scp is neither a string nor an array of strings');
  }
  return { scopes, notes };
}

async function apigwCheck(token, ctx, config) {
  const { issuer, now, keys } = ctx;
  const reasons = [];
  const decoded = decode(token);
  if (decoded.error) return [decoded.error];
  const { header, payload } = decoded;
  await checkSignature(token, header, keys, APIGW_ALGS, 'API Gateway', reasons);
  checkIssuer(payload, issuer, reasons);
  // aud if present (client_id then ignored), else client_id.
  if (payload.aud !== undefined) {
    const auds = audValues(payload.aud, reasons);
    if (auds && !auds.some((a) => config.audience.includes(a))) {
      reasons.push(`aud ${JSON.stringify(payload.aud)} not in audience ${JSON.stringify(config.audience)}`);
    }
  } else if (payload.client_id !== undefined) {
    if (typeof payload.client_id !== 'string') reasons.push(`client_id ${JSON.stringify(payload.client_id)} is not a string`);
    else if (!config.audience.includes(payload.client_id)) {
      reasons.push(`client_id ${JSON.stringify(payload.client_id)} (no aud) not in audience ${JSON.stringify(config.audience)}`);
    }
  } else {
    reasons.push('neither aud nor client_id present');
  }
  const exp = numericClaim(payload, 'exp', true, reasons);
  if (exp !== undefined && !(exp > now)) reasons.push(`exp ${exp} is not after now ${now} (expired)`);
  const nbf = numericClaim(payload, 'nbf', false, reasons);
  if (nbf !== undefined && nbf > now) reasons.push(`nbf ${nbf} is after now ${now} (not yet valid)`);
  const iat = numericClaim(payload, 'iat', false, reasons);
  if (iat !== undefined && iat > now) reasons.push(`iat ${iat} is after now ${now} (issued in the future)`);
  if (config.scopes.length > 0) {
    const { scopes, notes } = tokenScopes(payload);
    if (!config.scopes.some((s) => scopes.has(s))) {
      const have = scopes.size ? [...scopes].join(' ') : 'none';
      reasons.push(`scope/scp (${have}${notes.length ? `; ${notes.join('; ')}` : ''}) has none of the route's scopes ${JSON.stringify(config.scopes)}`);
    }
  }
  return reasons;
}

// --- main ------------------------------------------------------------------------

const input = parseInput(await readStdin());
const discovery = await discover(input.issuer, input.baseUrl);
const ctx = { ...input, keys: discovery.keys };
const prefix = discovery.reasons.length ? ['discovery failed'] : [];

const results = [];
for (const { name, token } of input.tokens) {
  if (input.appsync) {
    const reasons = [...prefix, ...(await appsyncCheck(token, ctx))];
    results.push({ token: name, authorizer: 'appsync', ok: reasons.length === 0, reasons });
  }
  for (const config of input.apigw) {
    const reasons = [...prefix, ...(await apigwCheck(token, ctx, config))];
    results.push({ token: name, authorizer: `apigw:${config.name}`, ok: reasons.length === 0, reasons });
  }
}

process.stdout.write(`${JSON.stringify({
  discovery: { ok: discovery.reasons.length === 0, reasons: discovery.reasons },
  results,
}, null, 2)}\n`);
