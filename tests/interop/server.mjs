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
// $INTEROP_TLS, a JSON text {"cert","key","ca"} (PEM file paths): serve HTTPS with that
// certificate (the issuer is then https://127.0.0.1:PORT), asking every client for a certificate
// but requiring none (a client_secret_basic caller has none); one is "authorized" when `ca` signed
// it, which tls_client_auth requires.
//
// The process exits when its stdin closes, so a test process that dies takes it along.

import { X509Certificate, generateKeyPairSync, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: process.env.PORT ?? '0' },
    clients: { type: 'string' },
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
  ttl: {
    ClientCredentials: (ctx, token, client) => ttls.get(client.clientId) ?? 600,
  },
});
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

process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
