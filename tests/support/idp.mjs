// A small but real OpenID Provider (oidc-provider 9.x) for authd's federation
// integration tests. See README.md in this folder for the control API.
//
//   IDP_CLIENT_ID=authd IDP_CLIENT_SECRET=s3cret \
//   IDP_REDIRECT_URIS=http://127.0.0.1:8080/v1/auth/federation/corp/callback \
//   node tests/support/idp.mjs
//
// stdout carries exactly one line, {"issuer":"http://127.0.0.1:<port>"}, once
// the provider accepts requests. Everything else goes to stderr, and only
// when IDP_DEBUG is set (server errors are always reported).

import { randomBytes } from 'node:crypto';
import { fstatSync } from 'node:fs';
import { createServer } from 'node:http';

import {
  CompactSign, exportJWK, generateKeyPair, importJWK,
} from 'jose';

const DEBUG = Boolean(process.env.IDP_DEBUG);

// stdout is a protocol channel for the Rust side, but oidc-provider prints
// its development notices with console.info (i.e. to stdout). Route all
// console output to stderr and drop oidc-provider's notices ("in-memory
// adapter", "unsupported runtime" on Node 20, ...) unless debugging. This
// must happen before oidc-provider is loaded, hence the dynamic import below.
for (const method of ['log', 'info', 'warn', 'debug']) {
  console[method] = (...args) => {
    if (!DEBUG && typeof args[0] === 'string' && args[0].startsWith('oidc-provider ')) return;
    console.error(...args);
  };
}

const { default: Provider, interactionPolicy } = await import('oidc-provider');

function requiredEnv(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`idp.mjs: environment variable ${name} is required`);
    process.exit(2);
  }
  return value;
}

const CLIENT_ID = requiredEnv('IDP_CLIENT_ID');
const CLIENT_SECRET = requiredEnv('IDP_CLIENT_SECRET');
const REDIRECT_URIS = requiredEnv('IDP_REDIRECT_URIS').split(',').map((s) => s.trim()).filter(Boolean);

const KID = 'idp-key-1';

// ---------------------------------------------------------------------------
// Keys. We generate the signing key ourselves (rather than letting
// oidc-provider use its dev keys) so that we keep the private JWK and can
// re-sign tampered ID tokens with the very same key.

async function newRsaKey(kid) {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const meta = { kid, alg: 'RS256', use: 'sig' };
  return {
    privateKey,
    privateJwk: { ...(await exportJWK(privateKey)), ...meta },
    publicJwk: { ...(await exportJWK(publicKey)), ...meta },
  };
}

const signingKey = await newRsaKey(KID);

// Keys published in the JWKS on top of the provider's own (see the
// `unknown_kid` tamper mode), keyed by kid so a repeated tamper replaces
// rather than duplicates an entry.
const extraPublishedKeys = new Map();
let rotatedKey = null; // see the `unknown_kid` tamper mode

// ---------------------------------------------------------------------------
// Test state, driven through the /_test control API.

const accounts = new Map(); // sub -> { email?, email_verified?, name?, groups?, hd?, amr? }
let nextLogin = null; // { sub } or { deny: true }
let tamperMode = null; // one-shot, see tamperIdToken()
let tokenError = null; // one-shot { error, error_description? }
let lastTokenRequest = null; // { authorization, body }

const TAMPER_MODES = new Set([
  'nonce', 'aud', 'aud_multi_no_azp', 'azp_wrong', 'expired', 'iat_future', 'iss',
  'other_key', 'unknown_kid', 'unknown_kid_unpublished', 'alg_none', 'hs256',
]);

// ---------------------------------------------------------------------------
// Provider configuration.

// Every authorization request must pass through /interaction, even when the
// cookie jar still holds a session: otherwise a test that switches account
// with /_test/next would silently get a code for the previous user.
const policy = interactionPolicy.base();
policy.get('login').checks.push(new interactionPolicy.Check(
  'test_always_login',
  'the test IdP authenticates on every authorization request',
  (ctx) => (ctx.oidc.result?.login
    ? interactionPolicy.Check.NO_NEED_TO_PROMPT
    : interactionPolicy.Check.REQUEST_PROMPT),
));

function configuration() {
  return {
    clients: [{
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      redirect_uris: REDIRECT_URIS,
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['authorization_code'],
      response_types: ['code'],
      id_token_signed_response_alg: 'RS256',
    }],
    responseTypes: ['code'],
    pkce: { required: () => true }, // S256 is the only method oidc-provider 9 enables
    jwks: { keys: [signingKey.privateJwk] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    // Scope-derived claims go into the ID token itself, not only /me.
    conformIdTokenClaims: false,
    claims: {
      // amr comes from the login result (via the session and the code), but
      // oidc-provider only copies it into the ID token when some granted
      // scope maps to it or the (disabled) claims parameter asks for it.
      // Tying it to `openid` makes it appear whenever the login had one.
      openid: ['sub', 'amr'],
      email: ['email', 'email_verified'],
      profile: ['name', 'groups', 'hd'],
    },
    scopes: ['openid'],
    features: {
      devInteractions: { enabled: false },
    },
    interactions: {
      policy,
      // Absolute (oidc-provider's default is relative), so every Location in
      // the flow can be followed without resolving it against the request.
      url: (ctx, interaction) => `${ctx.oidc.issuer}/interaction/${interaction.uid}`,
    },
    async findAccount(ctx, sub) {
      const account = accounts.get(sub);
      if (!account) return undefined;
      return {
        accountId: sub,
        async claims() {
          // Absent fields are left out entirely rather than sent as null, so
          // the relying party can be tested against missing claims.
          const out = { sub };
          for (const key of ['email', 'email_verified', 'name', 'groups', 'hd']) {
            if (account[key] !== undefined) out[key] = account[key];
          }
          return out;
        },
      };
    },
  };
}

// ---------------------------------------------------------------------------
// Helpers.

function json(ctx, status, body) {
  ctx.status = status;
  ctx.body = body;
  ctx.set('Cache-Control', 'no-store');
}

async function readRaw(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

async function readJson(ctx) {
  const raw = await readRaw(ctx.req);
  if (!raw) return {};
  try {
    return JSON.parse(raw);
  } catch {
    throw Object.assign(new Error('request body is not valid JSON'), { status: 400 });
  }
}

const b64 = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url');

function decodeJwt(jwt) {
  const [header, payload] = jwt.split('.');
  return {
    header: JSON.parse(Buffer.from(header, 'base64url').toString()),
    payload: JSON.parse(Buffer.from(payload, 'base64url').toString()),
  };
}

async function sign(payload, header, key) {
  return new CompactSign(new TextEncoder().encode(JSON.stringify(payload)))
    .setProtectedHeader(header)
    .sign(key);
}

// Returns a modified copy of the provider-issued ID token.
async function tamperIdToken(idToken, mode) {
  const { payload } = decodeJwt(idToken);
  const now = Math.floor(Date.now() / 1000);
  const header = { alg: 'RS256', kid: KID, typ: 'JWT' };
  let key = await importJWK(signingKey.privateJwk, 'RS256');

  switch (mode) {
    case 'nonce':
      payload.nonce = 'wrong-nonce';
      break;
    case 'aud':
      payload.aud = 'someone-else';
      break;
    case 'aud_multi_no_azp':
      payload.aud = [CLIENT_ID, 'other-client'];
      delete payload.azp;
      break;
    case 'azp_wrong':
      payload.aud = [CLIENT_ID, 'other-client'];
      payload.azp = 'other-client';
      break;
    case 'expired':
      payload.iat = now - 600;
      payload.exp = now - 120;
      break;
    case 'iat_future':
      payload.iat = now + 600;
      payload.exp = now + 1200;
      break;
    case 'iss':
      payload.iss = 'https://evil.example';
      break;
    case 'other_key':
      // Same kid as the real key: the relying party finds "its" key and must
      // notice the signature is wrong, not just that the kid is unknown.
      key = (await newRsaKey(KID)).privateKey;
      break;
    case 'unknown_kid': {
      // Models a provider key rotation the relying party has not seen yet:
      // it should refetch the JWKS and then succeed. The rotated key is made
      // once and kept, so repeating the mode stays consistent with what a
      // relying party may already have cached.
      rotatedKey ??= await newRsaKey('rotated-key-2');
      extraPublishedKeys.set(rotatedKey.publicJwk.kid, rotatedKey.publicJwk);
      header.kid = rotatedKey.publicJwk.kid;
      key = rotatedKey.privateKey;
      break;
    }
    case 'unknown_kid_unpublished':
      // A kid of its own (not rotated-key-2, which `unknown_kid` may have
      // published already) so the kid is genuinely unknown after a refetch.
      header.kid = 'unpublished-key-3';
      key = (await newRsaKey(header.kid)).privateKey;
      break;
    case 'alg_none':
      return `${b64({ alg: 'none' })}.${b64(payload)}.`;
    case 'hs256':
      // The classic algorithm-confusion attack: a relying party that accepts
      // HS256 keyed with the client secret would trust a forged token.
      return sign(payload, { alg: 'HS256', typ: 'JWT' }, new TextEncoder().encode(CLIENT_SECRET));
    default:
      throw new Error(`unknown tamper mode ${mode}`);
  }
  return sign(payload, header, key);
}

// ---------------------------------------------------------------------------
// Middleware (mounted by provider.use, i.e. before the provider's router).

async function controlApi(ctx) {
  const route = `${ctx.method} ${ctx.path}`;
  switch (route) {
    case 'POST /_test/accounts': {
      const body = await readJson(ctx);
      if (typeof body.sub !== 'string' || !body.sub) return json(ctx, 400, { error: 'sub (string) is required' });
      const { sub, ...rest } = body;
      accounts.set(sub, rest);
      ctx.status = 204;
      return undefined;
    }
    case 'POST /_test/next': {
      const body = await readJson(ctx);
      if (body.deny === true) {
        nextLogin = { deny: true };
      } else if (typeof body.sub === 'string' && body.sub) {
        nextLogin = { sub: body.sub };
      } else {
        return json(ctx, 400, { error: 'expected {"sub": "..."} or {"deny": true}' });
      }
      ctx.status = 204;
      return undefined;
    }
    case 'POST /_test/tamper': {
      const { mode } = await readJson(ctx);
      if (mode === undefined || mode === null || mode === 'none') {
        tamperMode = null;
      } else if (TAMPER_MODES.has(mode)) {
        tamperMode = mode;
      } else {
        return json(ctx, 400, { error: `unknown tamper mode ${JSON.stringify(mode)}`, modes: [...TAMPER_MODES] });
      }
      ctx.status = 204;
      return undefined;
    }
    case 'POST /_test/token_error': {
      const { error, error_description: description } = await readJson(ctx);
      if (typeof error !== 'string' || !error) return json(ctx, 400, { error: 'error (string) is required' });
      tokenError = { error, ...(description ? { error_description: description } : {}) };
      ctx.status = 204;
      return undefined;
    }
    case 'GET /_test/last_token_request':
      if (!lastTokenRequest) return json(ctx, 404, { error: 'no token request seen yet' });
      return json(ctx, 200, lastTokenRequest);
    default:
      return json(ctx, 404, { error: `no control route ${route}` });
  }
}

// The "UI": completes whatever prompt is pending for the account selected
// with /_test/next, then lets oidc-provider redirect back to its resume
// endpoint (303), which in turn redirects to the client.
async function interaction(ctx, provider) {
  if (!nextLogin) return json(ctx, 409, { error: 'no account selected: POST /_test/next first' });
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  const { prompt, params } = details;

  let result;
  if (nextLogin.deny) {
    result = { error: 'access_denied', error_description: 'denied by the test IdP (/_test/next deny)' };
  } else {
    const account = accounts.get(nextLogin.sub);
    if (!account) return json(ctx, 409, { error: `unknown account ${nextLogin.sub}: POST /_test/accounts first` });

    // A browser that still carries an earlier session would make
    // oidc-provider insist on logging that session out first when the
    // account changes (an auto-submitted form, which a test client does not
    // follow). Every login here is a fresh one anyway, so drop the old
    // session and detach it from this interaction.
    if (prompt.name === 'login' && details.session) {
      const stale = details.session.cookie && await provider.Session.find(details.session.cookie);
      if (stale) await stale.destroy();
      details.session = undefined;
      await details.persist();
    }

    // A brand-new Grant for the chosen account on login (a grant left in the
    // session may belong to a previous account, which oidc-provider rejects),
    // the pending one when only consent is asked for.
    const grant = (prompt.name !== 'login' && details.grantId && await provider.Grant.find(details.grantId))
      || new provider.Grant({ accountId: nextLogin.sub, clientId: params.client_id });

    // Consent to everything that was asked for: all scopes of the request,
    // claims from a `claims` request parameter, and whatever the consent
    // prompt still reports missing.
    grant.addOIDCScope(String(params.scope ?? 'openid'));
    if (params.claims) {
      const requested = JSON.parse(params.claims);
      grant.addOIDCClaims([...Object.keys(requested.id_token ?? {}), ...Object.keys(requested.userinfo ?? {})]);
    }
    const missing = prompt.details ?? {};
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const grantId = await grant.save();

    result = {
      // amr travels in the session and from there into the ID token.
      login: { accountId: nextLogin.sub, ...(account.amr ? { amr: account.amr } : {}) },
      consent: { grantId },
    };
  }

  const returnTo = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
  ctx.redirect(returnTo);
  ctx.status = 303;
  return undefined;
}

function testHooks(provider) {
  return async (ctx, next) => {
    // Failures in our own routes are answered as JSON so a failing Rust test
    // shows why, instead of oidc-provider's HTML error page.
    const ours = ctx.path.startsWith('/_test/') ? () => controlApi(ctx)
      : ctx.method === 'GET' && ctx.path.startsWith('/interaction/') ? () => interaction(ctx, provider)
        : null;
    if (ours) {
      try {
        return await ours();
      } catch (err) {
        return json(ctx, err.status ?? 400, { error: err.error ?? 'invalid_request', error_description: err.error_description ?? err.message });
      }
    }

    if (ctx.path === '/token' && ctx.method === 'POST') {
      // Read the raw body ourselves so it can be reported verbatim; handing
      // it on as req.body makes oidc-provider parse that instead of the
      // (now drained) stream.
      const raw = await readRaw(ctx.req);
      ctx.req.body = raw || {};
      lastTokenRequest = { authorization: ctx.get('authorization') || null, body: raw };

      if (tokenError) {
        const error = tokenError;
        tokenError = null;
        return json(ctx, 400, error);
      }

      await next();

      if (tamperMode && ctx.status === 200 && ctx.body?.id_token) {
        const mode = tamperMode;
        tamperMode = null;
        ctx.body = { ...ctx.body, id_token: await tamperIdToken(ctx.body.id_token, mode) };
      }
      return undefined;
    }

    await next();

    if (ctx.path === '/jwks' && ctx.status === 200 && extraPublishedKeys.size) {
      ctx.body = { keys: [...ctx.body.keys, ...extraPublishedKeys.values()] };
    }
    return undefined;
  };
}

// ---------------------------------------------------------------------------
// Start-up. Listen first: the issuer has to contain the port.

let handler = null;
const server = createServer((req, res) => handler(req, res));
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(0, '127.0.0.1', resolve);
});
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, configuration());
provider.use(testHooks(provider));
// Unexpected provider failures point at a harness bug: always report them.
provider.on('server_error', (ctx, err) => console.error('idp.mjs server_error:', err));
if (DEBUG) {
  for (const event of ['authorization.error', 'grant.error', 'jwks.error', 'userinfo.error', 'discovery.error']) {
    provider.on(event, (ctx, err) => console.error(`idp.mjs ${event}:`, err.message, err.error_description ?? ''));
  }
}
handler = provider.callback();

process.stdout.write(`${JSON.stringify({ issuer })}\n`);

// ---------------------------------------------------------------------------
// Shutdown: on SIGTERM/SIGINT, and when our stdin pipe closes (the parent
// test process died or dropped its handle). Only a pipe/socket counts: a
// stdin of /dev/null (CI has no standard input) would "close" immediately.

function shutdown() {
  server.close();
  process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
try {
  const stdin = fstatSync(0);
  if (stdin.isFIFO() || stdin.isSocket()) {
    process.stdin.on('end', shutdown);
    process.stdin.on('close', shutdown);
    process.stdin.resume();
  }
} catch {
  // no stdin at all: rely on signals
}
