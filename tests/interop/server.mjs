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
//    "redirect_uris":[…],"token_endpoint_auth_method":"…","jwks":{"keys":[…]}}
// A client authenticates with client_secret_basic unless `token_endpoint_auth_method` names
// another method (client_secret_post, private_key_jwt: then `jwks` holds its public keys and
// `client_secret` is left out), at every endpoint alike. `introspect` lets a client introspect every
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
// The process exits when its stdin closes, so a test process that dies takes it along.

import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
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

const server = createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(Number(args.port), '127.0.0.1', resolve);
});
const issuer = `http://127.0.0.1:${server.address().port}`;

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
    ...(c.scope ? { scope: c.scope } : {}),
  })),
  scopes: [...scopes],
  jwks: { keys: [signingKey] },
  features: {
    // The development login and consent pages, for clients that use the authorization code flow.
    devInteractions: { enabled: clients.some((c) => c.redirect_uris) },
    clientCredentials: { enabled: true },
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
