"""The PyJWT peer of scripts/bench: what a user would write instead of tokenbridge in Python,
with PyJWT's PyJWKClient and jwt.decode. It reads the lines `tokenbridge stdio` reads
({"type":"TOKEN","token":"Bearer ..."}), answers each with one line in tokenbridge's format,
verifies against the same JWKS (signature, iss, aud, exp) and attaches the same backend token
(client_credentials at IdP B, fetched once and reused for half its life, as tokenbridge does).
Settings come from tokenbridge's own variables, so both are started with one environment.
A benchmark peer, not a product: standard library HTTP, one line at a time."""

import base64
import json
import os
import sys
import time
import urllib.parse
import urllib.request
from datetime import datetime, timezone

import jwt
from jwt import PyJWKClient


def setting(name):
    value = os.environ.get(name)
    if not value:
        sys.stderr.write(f"peer: {name} is not set\n")
        sys.exit(2)
    return value


ISSUER = setting("TOKENBRIDGE_ISSUER")
AUDIENCE = setting("TOKENBRIDGE_AUDIENCE")
TOKEN_URL = setting("TOKENBRIDGE_BACKEND_TOKEN_URL")
BASIC = "Basic " + base64.b64encode(
    (
        urllib.parse.quote(setting("TOKENBRIDGE_BACKEND_CLIENT_ID"), safe="")
        + ":"
        + urllib.parse.quote(setting("TOKENBRIDGE_BACKEND_CLIENT_SECRET"), safe="")
    ).encode()
).decode()
JWKS = PyJWKClient(setting("TOKENBRIDGE_JWKS_URL"), cache_keys=True)
ALGORITHMS = ["RS256", "ES256"]

DENY = '{"active":false,"wwwAuthenticate":"Bearer error=\\"invalid_token\\""}'
backend = None  # (token, fresh_until, expires_at), seconds since the epoch


def backend_token():
    global backend
    now = time.time()
    if backend is None or now >= backend[1]:
        request = urllib.request.Request(
            TOKEN_URL,
            data=b"grant_type=client_credentials",
            headers={"Authorization": BASIC, "Content-Type": "application/x-www-form-urlencoded"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as answer:
            body = json.loads(answer.read())
        life = body.get("expires_in", 3600)
        backend = (body["access_token"], now + life / 2, now + life)
    return backend


def decide(line):
    try:
        payload = json.loads(line)
    except ValueError:
        return '{"error":"invalid_payload"}'
    token = payload.get("token") if isinstance(payload, dict) else None
    if not isinstance(token, str) or not token.startswith("Bearer "):
        return '{"active":false,"wwwAuthenticate":"Bearer"}'
    token = token[len("Bearer "):]
    try:
        key = JWKS.get_signing_key_from_jwt(token)
        claims = jwt.decode(
            token,
            key.key,
            algorithms=ALGORITHMS,
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp", "iss", "aud"]},
        )
    except jwt.PyJWKClientConnectionError:
        return '{"error":"unavailable","cause":"jwks"}'
    except jwt.PyJWTError:
        return DENY
    try:
        bearer, _, expires_at = backend_token()
    except Exception:
        return '{"error":"unavailable","cause":"backend_token"}'
    expires = datetime.fromtimestamp(min(claims["exp"], expires_at), timezone.utc)
    scope = claims.get("scope")
    return json.dumps(
        {
            "active": True,
            "principal": claims.get("sub"),
            "scope": scope.split(" ") if isinstance(scope, str) else [],
            "clientId": claims.get("client_id"),
            "expiresAt": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "context": {"back_end_token": "Bearer " + bearer},
        },
        separators=(",", ":"),
    )


def main():
    out = sys.stdout
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            answer = decide(line)
        except Exception:
            answer = '{"error":"unavailable"}'
        out.write(answer + "\n")
        out.flush()


if __name__ == "__main__":
    main()
