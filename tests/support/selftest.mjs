// Self-test for idp.mjs: starts it and plays a relying party with plain fetch
// and a hand-rolled cookie jar, the same way authd's Rust tests drive it.
//
//   npm ci --prefix tests/support && node tests/support/selftest.mjs

import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import { createLocalJWKSet, decodeJwt, jwtVerify } from 'jose';

const CLIENT_ID = 'authd';
const CLIENT_SECRET = 'selftest-secret';
// Nothing listens here: the flow stops as soon as a Location points at it.
const REDIRECT_URI = 'http://127.0.0.1:8080/v1/auth/federation/corp/callback';

// --- start the IdP -----------------------------------------------------------

const idp = spawn(process.execPath, [fileURLToPath(new URL('./idp.mjs', import.meta.url))], {
  env: {
    ...process.env,
    IDP_CLIENT_ID: CLIENT_ID,
    IDP_CLIENT_SECRET: CLIENT_SECRET,
    IDP_REDIRECT_URIS: `${REDIRECT_URI},http://127.0.0.1:8080/other`,
  },
  stdio: ['pipe', 'pipe', 'inherit'],
});
const stdoutLines = createInterface({ input: idp.stdout });
const [firstLine] = await Promise.race([
  once(stdoutLines, 'line'),
  once(idp, 'exit').then(([code]) => { throw new Error(`idp.mjs exited early (${code})`); }),
]);
const { issuer } = JSON.parse(firstLine);
// Anything further on stdout would break the Rust side's protocol.
stdoutLines.on('line', (line) => { failures.push(`unexpected stdout line: ${line}`); });

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

// --- HTTP helpers ---------------------------------------------------------------

// Minimal cookie jar for the single IdP host: name+path keyed, honours deletion.
class CookieJar {
  #cookies = new Map();

  store(res) {
    for (const header of res.headers.getSetCookie()) {
      const [pair, ...attrs] = header.split(';').map((s) => s.trim());
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      let path = '/';
      let expired = value === '';
      for (const attr of attrs) {
        const [k, v = ''] = attr.split('=');
        if (k.toLowerCase() === 'path') path = v;
        if (k.toLowerCase() === 'expires' && Date.parse(v) <= Date.now()) expired = true;
        if (k.toLowerCase() === 'max-age' && Number(v) <= 0) expired = true;
        if (k.toLowerCase() === 'secure') throw new Error(`cookie ${name} is Secure over http`);
      }
      const key = `${name}\0${path}`;
      if (expired) this.#cookies.delete(key);
      else this.#cookies.set(key, { name, value, path });
    }
  }

  header(url) {
    const { pathname } = new URL(url);
    return [...this.#cookies.values()]
      .filter((c) => pathname === c.path || pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`))
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
  }
}

async function control(path, body) {
  const res = await fetch(`${issuer}${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 204) return null;
  const json = await res.json();
  if (!res.ok) throw new Error(`${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

const discovery = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();

// Runs the browser part of the code flow; returns the redirect URI's query
// parameters plus the PKCE verifier and nonce that were used.
async function authorize(jar = new CookieJar()) {
  const state = randomBytes(8).toString('hex');
  const nonce = randomBytes(8).toString('hex');
  const verifier = randomBytes(32).toString('base64url');
  const url = new URL(discovery.authorization_endpoint);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: CLIENT_ID,
    redirect_uri: REDIRECT_URI,
    scope: 'openid email profile',
    state,
    nonce,
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
  });

  let next = url.href;
  for (let hop = 0; hop < 10; hop += 1) {
    if (next.startsWith(`${REDIRECT_URI}?`)) {
      const params = Object.fromEntries(new URL(next).searchParams);
      assert(params.state === state, 'state round-trips');
      return { ...params, verifier, nonce };
    }
    const res = await fetch(next, { redirect: 'manual', headers: { cookie: jar.header(next) } });
    jar.store(res);
    const location = res.headers.get('location');
    if (res.status < 300 || res.status > 399 || !location) {
      throw new Error(`stuck at ${next}: ${res.status} ${(await res.text()).slice(0, 300)}`);
    }
    next = new URL(location, next).href;
  }
  throw new Error('too many redirects');
}

async function exchange(code, verifier) {
  const basic = Buffer.from(`${encodeURIComponent(CLIENT_ID)}:${encodeURIComponent(CLIENT_SECRET)}`).toString('base64');
  const res = await fetch(discovery.token_endpoint, {
    method: 'POST',
    headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: verifier,
    }),
  });
  return { status: res.status, body: await res.json() };
}

// Fetch the JWKS fresh each time so a key published later is seen.
async function verify(idToken) {
  const jwks = createLocalJWKSet(await (await fetch(discovery.jwks_uri)).json());
  const { payload } = await jwtVerify(idToken, jwks, {
    issuer, audience: CLIENT_ID, algorithms: ['RS256'],
  });
  return payload;
}

async function loginAndGetIdToken() {
  const { code, verifier, nonce } = await authorize();
  const { status, body } = await exchange(code, verifier);
  assert(status === 200, `token endpoint answered 200 (got ${status} ${JSON.stringify(body)})`);
  return { idToken: body.id_token, nonce };
}

// --- the checks -----------------------------------------------------------------

await control('/_test/accounts', {
  sub: 'u1', email: 'a@corp.example', email_verified: true, groups: ['admins'], amr: ['pwd', 'mfa'],
});
await control('/_test/accounts', { sub: 'u2' });

await check('discovery advertises the provider routes and S256', () => {
  assert(discovery.issuer === issuer, 'issuer matches the announced one');
  assert(!issuer.endsWith('/'), 'no trailing slash');
  for (const key of ['authorization_endpoint', 'token_endpoint', 'jwks_uri', 'userinfo_endpoint']) {
    assert(discovery[key]?.startsWith(issuer), key);
  }
  assert(discovery.code_challenge_methods_supported.includes('S256'), 'S256');
});

await check('code flow: ID token carries nonce, email, email_verified, groups, amr', async () => {
  await control('/_test/next', { sub: 'u1' });
  const auth = await authorize();
  assert(auth.code, 'code present');
  assert(auth.iss === issuer, 'iss authorization response parameter');
  const { status, body } = await exchange(auth.code, auth.verifier);
  assert(status === 200, `token 200 (got ${status} ${JSON.stringify(body)})`);
  const claims = await verify(body.id_token);
  assert(claims.sub === 'u1', 'sub');
  assert(claims.nonce === auth.nonce, 'nonce');
  assert(claims.email === 'a@corp.example', 'email');
  assert(claims.email_verified === true, 'email_verified');
  assert(JSON.stringify(claims.groups) === '["admins"]', 'groups');
  assert(JSON.stringify(claims.amr) === '["pwd","mfa"]', 'amr');
  console.log(`    id_token claims: ${JSON.stringify(claims)}`);

  const last = await control('/_test/last_token_request');
  const basic = `Basic ${Buffer.from(`${CLIENT_ID}:${CLIENT_SECRET}`).toString('base64')}`;
  assert(last.authorization === basic, 'client_secret_basic recorded');
  assert(new URLSearchParams(last.body).get('code_verifier') === auth.verifier, 'code_verifier recorded');
});

await check('absent account fields are absent claims; same cookie jar switches account', async () => {
  const jar = new CookieJar();
  await control('/_test/next', { sub: 'u1' });
  const first = await authorize(jar);
  await exchange(first.code, first.verifier);
  await control('/_test/next', { sub: 'u2' });
  const second = await authorize(jar);
  const { body } = await exchange(second.code, second.verifier);
  const claims = await verify(body.id_token);
  assert(claims.sub === 'u2', `sub u2 (got ${claims.sub})`);
  for (const absent of ['email', 'email_verified', 'groups', 'amr']) {
    assert(!(absent in claims), `${absent} absent`);
  }
});

await check('PKCE is required', async () => {
  const res = await fetch(`${discovery.authorization_endpoint}?${new URLSearchParams({
    response_type: 'code', client_id: CLIENT_ID, redirect_uri: REDIRECT_URI, scope: 'openid', state: 's',
  })}`, { redirect: 'manual' });
  const location = new URL(res.headers.get('location'));
  assert(location.searchParams.get('error') === 'invalid_request', `invalid_request (got ${location})`);
});

await check('tamper nonce: still validly signed, nonce = wrong-nonce', async () => {
  await control('/_test/next', { sub: 'u1' });
  await control('/_test/tamper', { mode: 'nonce' });
  const { idToken } = await loginAndGetIdToken();
  const claims = await verify(idToken);
  assert(claims.nonce === 'wrong-nonce', 'nonce replaced');
  assert(claims.email === 'a@corp.example', 'other claims kept');
});

await check('tamper is one-shot', async () => {
  const { idToken, nonce } = await loginAndGetIdToken();
  assert((await verify(idToken)).nonce === nonce, 'real nonce again');
});

await check('tamper other_key: same kid, signature does not verify', async () => {
  await control('/_test/tamper', { mode: 'other_key' });
  const { idToken } = await loginAndGetIdToken();
  let error;
  try { await verify(idToken); } catch (err) { error = err; }
  assert(error?.code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED', `signature rejected (got ${error?.code})`);
});

await check('tamper unknown_kid: new kid is published in the JWKS and verifies', async () => {
  await control('/_test/tamper', { mode: 'unknown_kid' });
  const { idToken, nonce } = await loginAndGetIdToken();
  const claims = await verify(idToken);
  assert(claims.nonce === nonce, 'claims unchanged');
  const kids = (await (await fetch(discovery.jwks_uri)).json()).keys.map((k) => k.kid);
  assert(JSON.stringify(kids) === '["idp-key-1","rotated-key-2"]', `jwks kids ${kids}`);
});

// The remaining modes only need to produce the documented token; judging
// them is the relying party's job (authd's tests).
const now = () => Math.floor(Date.now() / 1000);
const header = (jwt) => JSON.parse(Buffer.from(jwt.split('.')[0], 'base64url'));
const modeExpectations = {
  aud: (h, p) => p.aud === 'someone-else',
  aud_multi_no_azp: (h, p) => JSON.stringify(p.aud) === `["${CLIENT_ID}","other-client"]` && !('azp' in p),
  azp_wrong: (h, p) => p.aud.length === 2 && p.azp === 'other-client',
  expired: (h, p) => p.exp < now() && p.iat < p.exp,
  iat_future: (h, p) => p.iat > now() + 500 && p.exp > p.iat,
  iss: (h, p) => p.iss === 'https://evil.example',
  unknown_kid_unpublished: (h) => h.kid === 'unpublished-key-3',
  hs256: (h) => h.alg === 'HS256',
};
for (const [mode, expectation] of Object.entries(modeExpectations)) {
  await check(`tamper ${mode}: token as documented`, async () => {
    await control('/_test/tamper', { mode });
    const { idToken } = await loginAndGetIdToken();
    const h = header(idToken);
    assert(expectation(h, decodeJwt(idToken)), `${JSON.stringify(h)} ${JSON.stringify(decodeJwt(idToken))}`);
    assert(mode === 'hs256' || (h.alg === 'RS256' && h.typ === 'JWT'), 'RS256/JWT header');
  });
}

await check('tamper alg_none: unsigned token', async () => {
  await control('/_test/tamper', { mode: 'alg_none' });
  const { idToken } = await loginAndGetIdToken();
  assert(idToken.endsWith('.') && decodeJwt(idToken).sub === 'u1', 'alg none token');
  let error;
  try { await verify(idToken); } catch (err) { error = err; }
  assert(error, 'rejected');
});

await check('token_error: next token request answers 400 once', async () => {
  await control('/_test/token_error', { error: 'invalid_grant' });
  const { code, verifier } = await authorize();
  const failed = await exchange(code, verifier);
  assert(failed.status === 400 && failed.body.error === 'invalid_grant', `400 invalid_grant (got ${failed.status})`);
  const { idToken } = await loginAndGetIdToken();
  assert(await verify(idToken), 'next exchange works');
});

await check('deny: redirect URI gets error=access_denied', async () => {
  await control('/_test/next', { deny: true });
  const auth = await authorize();
  assert(auth.error === 'access_denied', `access_denied (got ${JSON.stringify(auth)})`);
  assert(!auth.code, 'no code');
});

// --- done -----------------------------------------------------------------------

// Closing stdin must be enough to stop the IdP.
idp.stdin.end();
const [exitCode] = await Promise.race([
  once(idp, 'exit'),
  new Promise((resolve) => { setTimeout(() => resolve(['timeout']), 5000); }),
]);
if (exitCode === 0) {
  passed += 1;
  console.log('ok - idp exits when stdin closes');
} else {
  failures.push('idp exits when stdin closes');
  console.log(`not ok - idp exits when stdin closes (${exitCode})`);
  idp.kill();
}

console.log(`${passed} passed, ${failures.length} failed`);
process.exit(failures.length ? 1 : 0);
