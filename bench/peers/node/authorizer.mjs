// The Node.js peer of scripts/bench: what a user would write instead of tokenbridge on Node 20,
// with aws-jwt-verify's generic OIDC verifier. It reads the lines `tokenbridge stdio` reads
// ({"type":"TOKEN","token":"Bearer …"}), answers each with one line in tokenbridge's format,
// verifies against the same JWKS (signature, iss, aud, exp) and attaches the same backend token
// (client_credentials at IdP B, fetched once and reused for half its life, as tokenbridge does).
// Settings come from tokenbridge's own variables, so both are started with one environment.
// A benchmark peer, not a product: it answers in order, one line at a time.

import { createInterface } from "node:readline";
import { JwtVerifier } from "aws-jwt-verify";
import { SimpleJwksCache } from "aws-jwt-verify/jwk";

const env = (name) => {
  const value = process.env[name];
  if (!value) {
    process.stderr.write(`peer: ${name} is not set\n`);
    process.exit(2);
  }
  return value;
};

const issuer = env("TOKENBRIDGE_ISSUER");
const audience = env("TOKENBRIDGE_AUDIENCE");
const jwksUri = env("TOKENBRIDGE_JWKS_URL");
const tokenUrl = env("TOKENBRIDGE_BACKEND_TOKEN_URL");
const basic =
  "Basic " +
  Buffer.from(
    `${encodeURIComponent(env("TOKENBRIDGE_BACKEND_CLIENT_ID"))}:${encodeURIComponent(
      env("TOKENBRIDGE_BACKEND_CLIENT_SECRET"),
    )}`,
  ).toString("base64");

// aws-jwt-verify's own fetcher speaks HTTPS only; the bench's issuer is plain HTTP on loopback,
// so the JWKS comes through Node's fetch instead (the verifier and its cache are unchanged).
const fetcher = {
  async fetch(uri) {
    const answer = await fetch(uri);
    if (answer.status !== 200) throw new Error(`JWKS answered ${answer.status}`);
    return answer.arrayBuffer();
  },
};
const verifier = JwtVerifier.create(
  { issuer, audience, jwksUri },
  { jwksCache: new SimpleJwksCache({ fetcher }) },
);

let backend = null; // { token, freshUntil, expiresAt } in ms since the epoch
let pending = null;
async function backendToken() {
  if (backend && Date.now() < backend.freshUntil) return backend;
  if (!pending) {
    pending = (async () => {
      const answer = await fetch(tokenUrl, {
        method: "POST",
        headers: { authorization: basic, "content-type": "application/x-www-form-urlencoded" },
        body: "grant_type=client_credentials",
      });
      if (answer.status !== 200) throw new Error(`token endpoint answered ${answer.status}`);
      const body = await answer.json();
      const now = Date.now();
      const life = (body.expires_in ?? 3600) * 1000;
      backend = { token: body.access_token, freshUntil: now + life / 2, expiresAt: now + life };
      return backend;
    })().finally(() => {
      pending = null;
    });
  }
  return pending;
}

const deny = '{"active":false,"wwwAuthenticate":"Bearer error=\\"invalid_token\\""}';

async function decide(line) {
  let token;
  try {
    const payload = JSON.parse(line);
    token = typeof payload.token === "string" && payload.token.startsWith("Bearer ") ? payload.token.slice(7) : null;
  } catch {
    return '{"error":"invalid_payload"}';
  }
  if (!token) return '{"active":false,"wwwAuthenticate":"Bearer"}';
  let claims;
  try {
    claims = await verifier.verify(token);
  } catch {
    return deny;
  }
  let b;
  try {
    b = await backendToken();
  } catch {
    return '{"error":"unavailable","cause":"backend_token"}';
  }
  return JSON.stringify({
    active: true,
    principal: claims.sub,
    scope: typeof claims.scope === "string" ? claims.scope.split(" ") : [],
    clientId: claims.client_id,
    expiresAt: new Date(Math.min(claims.exp * 1000, b.expiresAt)).toISOString().replace(/\.\d{3}Z$/, "Z"),
    context: { back_end_token: `Bearer ${b.token}` },
  });
}

// One answer per line, in input order: each decision waits for the one before it.
let queue = Promise.resolve();
const input = createInterface({ input: process.stdin, crlfDelay: Infinity });
input.on("line", (line) => {
  if (line.trim() === "") return;
  queue = queue
    .then(() => decide(line))
    .catch(() => '{"error":"unavailable"}')
    .then((answer) => process.stdout.write(answer + "\n"));
});
