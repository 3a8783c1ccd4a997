#!/usr/bin/env python3
"""
make_vectors.py -- byte-exact OCI HTTP request-signing test vectors.

Produced with the official `oci` Python SDK from PyPI (run with
/tmp/oci-vectors/venv/bin/python after `pip install oci`).

What it does:
  1. Loads the RSA-2048 key from key-pkcs8.pem / key-pkcs1.pem if they exist
     (so re-running reproduces identical vectors); otherwise generates a new
     key with `cryptography` and writes it as PKCS#8 and PKCS#1 PEM.
  2. Writes a fake JWT-shaped RPST to ./rpst.
  3. Signs three GET requests with oci.auth.signers.SecurityTokenSigner
     (keyId = "ST$" + token; this is the base class of
     EphemeralResourcePrincipalSigner, the RP v2.2 signer). The request is
     built with oci's vendored requests: Request(...).prepare(), a fixed
     `date` header is set before signing (the SDK only injects `date` via
     headers.setdefault, so an existing value is kept), then signer(prepared)
     is called exactly as requests' auth hook does in the SDK.
  4. Reconstructs the signing string independently (date, (request-target)
     with lowercased method + path incl. query, host = URL netloc) and verifies
     the signature with the public key (PKCS#1 v1.5, SHA-256). Also checks the
     reconstructed Authorization header equals the SDK output byte for byte.
  5. Writes vectors.json.
"""
import base64
import json
import os
import sys
from urllib.parse import urlsplit

import oci
from oci._vendor import requests  # the requests copy the SDK itself uses
from oci.auth.signers import SecurityTokenSigner
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

OUT = os.path.dirname(os.path.abspath(__file__))
P8 = os.path.join(OUT, "key-pkcs8.pem")
P1 = os.path.join(OUT, "key-pkcs1.pem")


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode("ascii")


def load_or_make_key():
    if os.path.exists(P8):
        with open(P8, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), None)
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pk8 = key.private_bytes(serialization.Encoding.PEM,
                            serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    pk1 = key.private_bytes(serialization.Encoding.PEM,
                            serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption())
    assert pk8.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert pk1.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    with open(P8, "wb") as f:
        f.write(pk8)
    with open(P1, "wb") as f:
        f.write(pk1)
    # Sanity: both PEMs load to the same key.
    k1 = serialization.load_pem_private_key(pk1, None)
    assert k1.private_numbers() == key.private_numbers()
    return key


def make_rpst():
    hdr = b64url(json.dumps({"alg": "RS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = b64url(json.dumps({"sub": "ocid1.resource.oc1..example", "exp": 1893456000,
                                 "res_type": "fnfunc"}, separators=(",", ":")).encode())
    token = "%s.%s.%s" % (hdr, payload, "c2ln")
    with open(os.path.join(OUT, "rpst"), "w") as f:
        f.write(token)
    return token


BASE = "https://secrets.vaults.us-ashburn-1.oci.oraclecloud.com/20190301/secretbundles/ocid1.vaultsecret.oc1.iad.amaaaaaaexample"
CASES = [
    ("a_secretbundle_get", "GET", BASE, "Thu, 01 Jan 2026 00:00:00 GMT"),
    ("b_secretbundle_get_query", "GET", BASE + "?stage=CURRENT", "Thu, 01 Jan 2026 00:00:00 GMT"),
    ("c_local_with_port", "GET", "http://127.0.0.1:8443/20190301/secretbundles/ocid1.vaultsecret.oc1.phx.other",
     "Fri, 02 Jan 2026 12:34:56 GMT"),
]


def main():
    key = load_or_make_key()
    pub = key.public_key()
    token = make_rpst()
    signer = SecurityTokenSigner(token, key)
    headers_signed = " ".join(signer._basic_signer.headers)

    vectors = []
    for name, method, url, date in CASES:
        prepared = requests.Request(method, url, headers={"date": date}).prepare()
        before = dict(prepared.headers)
        signed = signer(prepared)  # same call the SDK's auth hook makes
        after = dict(signed.headers)
        added = {k: v for k, v in after.items() if k not in before}
        assert after["date"] == date, "signer replaced the fixed date"

        # Independent reconstruction of the signing string.
        parts = urlsplit(url)
        target = parts.path + ("?" + parts.query if parts.query else "")
        host = parts.netloc
        signing_string = "date: %s\n(request-target): %s %s\nhost: %s" % (date, method.lower(), target, host)

        auth = after["authorization"]
        sig_b64 = auth.split('signature="', 1)[1].split('"', 1)[0]
        # Raises InvalidSignature on mismatch.
        pub.verify(base64.b64decode(sig_b64), signing_string.encode("ascii"),
                   padding.PKCS1v15(), hashes.SHA256())
        expected_auth = ('Signature algorithm="rsa-sha256",headers="%s",keyId="ST$%s",'
                         'signature="%s",version="1"' % (headers_signed, token, sig_b64))
        assert auth == expected_auth, (auth, expected_auth)

        vectors.append({
            "name": name,
            "method": method,
            "url": url,
            "host": host,
            "date": date,
            "signing_string": signing_string,
            "authorization": auth,
            "headers_signed": headers_signed,
            # extra, informational: headers the signer added to the request
            # (not signed for GET), and the final header set.
            "headers_added_by_signer": added,
            "all_headers_after_signing": after,
        })
        print("OK", name)

    meta = {"oci_version": oci.__version__, "python": sys.version.split()[0],
            "signer_class": "oci.auth.signers.SecurityTokenSigner"}
    with open(os.path.join(OUT, "vectors.json"), "w") as f:
        json.dump(vectors, f, indent=2)
        f.write("\n")
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
