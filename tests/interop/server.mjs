// One real OAuth 2.0 authorization server (node oidc-provider) on loopback, for tokenbridge's
// interop tests: client_credentials, RFC 7662 introspection and RFC 7009 revocation, opaque
// access tokens, in-memory storage; the authorization code flow (with the development login
// and consent pages) for clients that have redirect URIs; JWT access tokens (RFC 9068) for a
// token request that names a resource (RFC 8707).
//
//   node server.mjs [--port N] [--clients FILE]
//
// --port (or $PORT): 0 or absent picks a free port. The first stdout line is JSON:
//   {"issuer":"http://127.0.0.1:PORT","token_endpoint":"…","introspection_endpoint":"…","revocation_endpoint":"…",
//    "jwks_uri":"…"}
// --clients (or $INTEROP_CLIENTS, a JSON text): the clients, a JSON array of
//   {"client_id","client_secret","grant_types":[…],"scope":"a b","introspect":true,"ttl":seconds,
//    "redirect_uris":[…],"token_endpoint_auth_method":"…","jwks":{"keys":[…]},
//    "tls_client_auth_subject_dn":"CN=…","certificate":"<PEM>"}
// A client authenticates with client_secret_basic unless `token_endpoint_auth_method` names
// another method (client_secret_post, private_key_jwt: then `jwks` holds its public keys and
// `client_secret` is left out), at every endpoint alike. With $INTEROP_TLS (below) there are
// the RFC 8705 methods too: tls_client_auth (a certificate from the CA, whose subject is
// `tls_client_auth_subject_dn`) and self_signed_tls_client_auth (the registered `certificate`). `introspect` lets a client introspect every
// client's tokens (a resource server); any other client may introspect only its own. `ttl` is
// the lifetime of its client_credentials tokens (default 600 s). Secrets must be visible ASCII
// (RFC 6749 Appendix A): the server refuses others.
//
// Access tokens are opaque unless the token request carries `resource`: any absolute URI there
// names a resource server whose access tokens are JWTs (`typ: at+jwt`, RS256, `aud` = that URI,
// the same scopes and lifetime as the opaque ones), signed with an RSA key generated at start
// and published at `jwks_uri` (also named by the discovery document). Each instance has a key
// of its own, so one instance's keys never verify another's tokens. The server refuses to
// introspect its JWTs (400 `unsupported_token_type`): a resource server verifies them itself.
//
// --exchange-from (or $INTEROP_EXCHANGE_FROM), a JSON text {"issuer","introspection_endpoint",
// "jwks_uri","client_id","client_secret"}: this instance is also an IdP B that issues tokens for
// the callers of another instance (IdP A), see registerCallerGrants below. A client may then
// also carry "subject_scope": it exchanges only caller tokens that hold that scope.
//
// $INTEROP_TLS, a JSON text {"cert","key","ca"} (PEM file paths): serve HTTPS with that
// certificate (the issuer is then https://127.0.0.1:PORT), asking every client for a certificate
// but requiring none (a client_secret_basic caller has none); one is "authorized" when `ca` signed
// it, which tls_client_auth requires.
//
// The process exits when its stdin closes, so a test process that dies takes it along.

import { X509Certificate, createPublicKey, generateKeyPairSync, randomUUID, verify as cryptoVerify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { parseArgs } from 'node:util';

import Provider, { errors } from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: process.env.PORT ?? '0' },
    clients: { type: 'string' },
    'exchange-from': { type: 'string', default: process.env.INTEROP_EXCHANGE_FROM },
  },
});

const DEFAULT_CLIENTS = [
  { client_id: 'resource-server', client_secret: 'dev-secret-rs', grant_types: [], introspect: true },
  { client_id: 'caller-app', client_secret: 'dev-secret-caller', grant_types: ['client_credentials'], scope: 'orders.read orders.write' },
];

function loadClients() {
  if (args.clients) return JSON.parse(readFileSync(args.clients, 'utf8'));
  if (process.env.INTEROP_CLIENTS) return JSON.parse(process.env.INTEROP_CLIENTS);
  return DEFAULT_CLIENTS;
}

const clients = loadClients();
const introspectors = new Set(clients.filter((c) => c.introspect).map((c) => c.client_id));
const ttls = new Map(clients.filter((c) => c.ttl).map((c) => [c.client_id, c.ttl]));
const scopes = new Set(clients.flatMap((c) => (c.scope ? c.scope.split(' ') : [])));
// IdP B's grants for callers of IdP A (--exchange-from), see registerCallerGrants.
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
const JWT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
const actors = new WeakMap();
const subjectScopes = new Map(clients.filter((c) => c.subject_scope).map((c) => [c.client_id, c.subject_scope]));

const tls = process.env.INTEROP_TLS ? JSON.parse(process.env.INTEROP_TLS) : undefined;
const server = tls
  ? createTlsServer({
    cert: readFileSync(tls.cert),
    key: readFileSync(tls.key),
    ca: readFileSync(tls.ca),
    requestCert: true,
    // oidc-provider decides per client method; a self-signed certificate must get that far.
    rejectUnauthorized: false,
  })
  : createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(Number(args.port), '127.0.0.1', resolve);
});
const issuer = `${tls ? 'https' : 'http'}://127.0.0.1:${server.address().port}`;

// The client's certificate on this request's TLS connection, as PEM; undefined without one.
function peerCertificate(ctx) {
  const peer = ctx.req.socket.getPeerCertificate?.();
  if (!peer?.raw) return undefined;
  return new X509Certificate(peer.raw).toString();
}

// A self-signed client's registered certificate as the JWKS oidc-provider matches it against
// (by the x5t#S256 of its x5c).
function certificateJwks(pem) {
  const cert = new X509Certificate(pem);
  return { keys: [{ ...cert.publicKey.export({ format: 'jwk' }), x5c: [cert.raw.toString('base64')] }] };
}

// A key of this instance's own instead of oidc-provider's fixed development keys, which every
// instance would share.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'RS256', use: 'sig' };

const provider = new Provider(issuer, {
  clients: clients.map((c) => ({
    client_id: c.client_id,
    ...(c.client_secret ? { client_secret: c.client_secret } : {}),
    grant_types: c.grant_types ?? [],
    response_types: c.redirect_uris ? ['code'] : [],
    redirect_uris: c.redirect_uris ?? [],
    token_endpoint_auth_method: c.token_endpoint_auth_method ?? 'client_secret_basic',
    ...(c.jwks ? { jwks: c.jwks } : {}),
    ...(c.certificate ? { jwks: certificateJwks(c.certificate) } : {}),
    ...(c.tls_client_auth_subject_dn ? { tls_client_auth_subject_dn: c.tls_client_auth_subject_dn } : {}),
    ...(c.scope ? { scope: c.scope } : {}),
  })),
  scopes: [...scopes],
  // oidc-provider's default list, and the RFC 8705 methods on HTTPS (enabling mTLS alone does
  // not add them).
  clientAuthMethods: ['none', 'client_secret_basic', 'client_secret_jwt', 'client_secret_post', 'private_key_jwt',
    ...(tls ? ['tls_client_auth', 'self_signed_tls_client_auth'] : [])],
  jwks: { keys: [signingKey] },
  features: {
    // The development login and consent pages, for clients that use the authorization code flow.
    devInteractions: { enabled: clients.some((c) => c.redirect_uris) },
    clientCredentials: { enabled: true },
    mTLS: {
      enabled: Boolean(tls),
      tlsClientAuth: Boolean(tls),
      selfSignedTlsClientAuth: Boolean(tls),
      getCertificate: peerCertificate,
      // Node verified the chain against `ca` during the handshake.
      certificateAuthorized: (ctx) => ctx.req.socket.authorized === true,
      certificateSubjectMatches: (ctx, property, expected) => property === 'tls_client_auth_subject_dn'
        && new X509Certificate(peerCertificate(ctx)).subject === expected,
    },
    introspection: {
      enabled: true,
      // A resource server (tokenbridge at IdP A) may introspect every client's tokens; other
      // clients only their own.
      allowedPolicy: async (ctx, client, token) => introspectors.has(client.clientId) || token.clientId === client.clientId,
    },
    revocation: {
      enabled: true,
      allowedPolicy: async (ctx, client, token) => token.clientId === client.clientId,
    },
    // Without `resource` a token stays opaque (the default resource is none).
    resourceIndicators: {
      enabled: true,
      getResourceServerInfo: async (ctx, resource) => ({
        scope: [...scopes].join(' '),
        audience: resource,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
  // The `act` of an exchanged token (registerCallerGrants); oidc-provider sets an opaque token's
  // extra claims from this hook alone.
  extraTokenClaims: async (ctx, token) => actors.get(token),
  ttl: {
    ClientCredentials: (ctx, token, client) => ttls.get(client.clientId) ?? 600,
  },
});
if (args['exchange-from']) registerCallerGrants(provider, JSON.parse(args['exchange-from']));
server.on('request', provider.callback());

const routes = {
  token_endpoint: `${issuer}/token`,
  introspection_endpoint: `${issuer}/token/introspection`,
  revocation_endpoint: `${issuer}/token/revocation`,
  jwks_uri: `${issuer}/jwks`,
};
process.stdout.write(`${JSON.stringify({ issuer, ...routes })}\n`);

// Never log a token or a secret: only the failures' names.
provider.on('server_error', (ctx, err) => console.error(`server_error: ${err.name}: ${err.message}`));
// Why a client was refused (the descriptions name the check that failed, never a credential).
for (const event of ['grant.error', 'introspection.error']) {
  provider.on(event, (ctx, err) => console.error(`${event}: ${err.name}: ${err.error_detail ?? err.error_description ?? err.message}${err.cause ? ` (${err.cause.message})` : ""}`));
}

// ---- IdP B's grants for a caller of IdP A: RFC 8693 token exchange and RFC 7523 jwt-bearer ----
// oidc-provider has neither; these handlers validate the caller's token at IdP A (introspection,
// or a JWT verified against A's JWKS) and issue an opaque access token of this server whose
// subject is the caller (`sub`, else the caller token's client_id), so that introspecting it
// here shows who the backend token is for. Only clients registered with the grant type may use
// it (oidc-provider checks that before a handler runs).

function registerCallerGrants(provider, idpA) {
  const shared = ['scope', 'audience', 'resource'];
  provider.registerGrantType(TOKEN_EXCHANGE, (ctx) => tokenExchange(ctx, idpA),
    ['subject_token', 'subject_token_type', 'requested_token_type', 'actor_token', 'actor_token_type', ...shared]);
  provider.registerGrantType(JWT_BEARER, (ctx) => onBehalfOf(ctx, idpA),
    ['assertion', 'requested_token_use', ...shared]);
}

// RFC 8693 §2.1: a problem with the request is `invalid_request` (§2.2.2); a subject token this
// server will not exchange is `invalid_grant`, as Okta and Entra answer it.
async function tokenExchange(ctx, idpA) {
  const { params } = ctx.oidc;
  for (const name of ['subject_token', 'subject_token_type']) {
    if (!params[name]) throw new errors.InvalidRequest(`missing required parameter '${name}'`);
  }
  if (![ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE].includes(params.subject_token_type)) {
    throw new errors.InvalidRequest('unsupported subject_token_type');
  }
  if (params.requested_token_type !== undefined && params.requested_token_type !== ACCESS_TOKEN_TYPE) {
    throw new errors.InvalidRequest('only access tokens are issued');
  }
  const onlyJwt = params.subject_token_type === JWT_TOKEN_TYPE;
  const act = await actor(ctx);
  const subject = await callerAtA(ctx, idpA, params.subject_token, onlyJwt, errors.InvalidGrant);
  ctx.body = { ...(await issueForCaller(ctx, subject, act)), issued_token_type: ACCESS_TOKEN_TYPE };
}

// RFC 8693 §2.1 delegation: the actor must be an active client_credentials token of this server
// held by the requesting client itself; the issued token names it in `act` (§4.1).
async function actor(ctx) {
  const { params, client, provider } = ctx.oidc;
  if (params.actor_token === undefined) {
    if (params.actor_token_type !== undefined) throw new errors.InvalidRequest('actor_token_type without actor_token');
    return undefined;
  }
  if (params.actor_token_type !== ACCESS_TOKEN_TYPE) throw new errors.InvalidRequest('unsupported actor_token_type');
  const token = await provider.ClientCredentials.find(params.actor_token);
  if (!token?.isValid || token.clientId !== client.clientId) {
    throw new errors.InvalidRequest('the actor token is not an active token of this client');
  }
  return { sub: token.clientId };
}

// RFC 7523 §2.1 as Entra's on-behalf-of uses it: the caller's token is the assertion, a bad one
// is `invalid_grant` (§3.1); the answer has no issued_token_type (Entra sends none).
async function onBehalfOf(ctx, idpA) {
  const { params } = ctx.oidc;
  if (!params.assertion) throw new errors.InvalidRequest("missing required parameter 'assertion'");
  if (params.requested_token_use !== 'on_behalf_of') {
    throw new errors.InvalidRequest("requested_token_use must be 'on_behalf_of'");
  }
  const subject = await callerAtA(ctx, idpA, params.assertion, false, errors.InvalidGrant);
  ctx.body = await issueForCaller(ctx, subject);
}

// The caller token's subject, scope and expiry as IdP A vouches for them, or `Refusal`. A
// failure to ask A is an error of this server (500), not a refusal of the caller.
async function callerAtA(ctx, idpA, token, onlyJwt, Refusal) {
  const isJwt = token.split('.').length === 3;
  if (onlyJwt && !isJwt) throw new Refusal('the subject token is not a JWT');
  const caller = isJwt ? await verifiedAtA(idpA, token) : await introspectedAtA(idpA, token);
  const now = Math.floor(Date.now() / 1000);
  if (!caller || typeof caller.exp !== 'number' || caller.exp <= now) {
    throw new Refusal('the caller token is not active at its issuer');
  }
  const sub = caller.sub ?? caller.client_id;
  if (typeof sub !== 'string' || !sub) throw new Refusal('the caller token names no subject');
  const needed = subjectScopes.get(ctx.oidc.client.clientId);
  if (needed && !String(caller.scope ?? '').split(' ').includes(needed)) {
    throw new Refusal('the caller token may not be exchanged by this client');
  }
  return { sub, exp: caller.exp, remaining: caller.exp - now };
}

async function introspectedAtA(idpA, token) {
  const encode = (s) => encodeURIComponent(s).replace(/%20/g, '+');
  const basic = Buffer.from(`${encode(idpA.client_id)}:${encode(idpA.client_secret)}`).toString('base64');
  const answer = await fetch(idpA.introspection_endpoint, {
    method: 'POST',
    headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token, token_type_hint: 'access_token' }),
  });
  if (answer.status !== 200) throw new Error(`IdP A answered introspection with ${answer.status}`);
  const body = await answer.json();
  return body.active === true ? body : undefined;
}

// An RS256 JWT of IdP A (its `iss`, a key of its JWKS by `kid`), claims unchecked beyond `exp`.
async function verifiedAtA(idpA, jwt) {
  const [head, payload, signature] = jwt.split('.');
  let header;
  let claims;
  try {
    header = JSON.parse(Buffer.from(head, 'base64url'));
    claims = JSON.parse(Buffer.from(payload, 'base64url'));
  } catch {
    return undefined;
  }
  if (header.alg !== 'RS256' || claims.iss !== idpA.issuer) return undefined;
  const jwks = await (await fetch(idpA.jwks_uri)).json();
  const jwk = jwks.keys.find((k) => k.kid === header.kid);
  if (!jwk) return undefined;
  const key = createPublicKey({ key: jwk, format: 'jwk' });
  const signed = Buffer.from(`${head}.${payload}`);
  return cryptoVerify('RSA-SHA256', signed, key, Buffer.from(signature, 'base64url')) ? claims : undefined;
}

// An opaque access token of this server for the caller, for the scope asked (within the
// client's), no longer-lived than the caller's token; `act` names the party acting for it.
async function issueForCaller(ctx, subject, act) {
  const { client, params, provider } = ctx.oidc;
  const allowed = new Set((client.scope ?? '').split(' '));
  const scope = params.scope ? params.scope.split(' ') : [];
  if (scope.some((s) => !allowed.has(s))) throw new errors.InvalidScope('requested scope is not allowed', params.scope);
  const expiresIn = Math.min(ttls.get(client.clientId) ?? 600, subject.remaining);
  const token = new provider.AccessToken({
    client,
    accountId: subject.sub,
    scope: scope.join(' ') || undefined,
    expiresIn,
    gty: params.grant_type,
  });
  if (act) actors.set(token, { act });
  const audience = params.audience ?? params.resource;
  if (audience !== undefined) token.aud = audience;
  ctx.oidc.entity('AccessToken', token);
  const value = await token.save();
  return { access_token: value, token_type: 'Bearer', expires_in: token.expiration, scope: token.scope };
}

process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
