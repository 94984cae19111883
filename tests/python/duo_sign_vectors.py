"""Signs the cases read from standard input with Duo's official client (duo_client) and
prints, for each, what duo_client computes: the canonical parameter line, the version-2
signatures (HMAC-SHA1 and HMAC-SHA512), the version-5 JSON body of a POST and the version-5
signature. Twofold's Rust signing is compared with these in tests/it/third_party.rs."""

import base64
import hashlib
import json
import sys

import duo_client.client as dc


def signature(sigv, method, host, path, params, date, skey, digest, body=None):
    auth = dc.sign("ikey", skey, method, host, path, date, sigv, params, body=body, digestmod=digest)
    return base64.b64decode(auth[len("Basic "):]).decode().split(":", 1)[1]


def sign(case):
    params = {}
    for key, value in case["params"]:
        params.setdefault(key, []).append(value)
    method, host, path, date, skey = (case[k] for k in ("method", "host", "path", "date", "skey"))
    normalized = dc.normalize_params(params)
    out = {
        "canon_params": dc.canon_params(normalized),
        "v2_sha1": signature(2, method, host, path, normalized, date, skey, hashlib.sha1),
        "v2_sha512": signature(2, method, host, path, normalized, date, skey, hashlib.sha512),
    }
    if method == "POST":
        body = dc.Client.canon_json({key: values[0] for key, values in params.items()})
        out["json_body"] = body
        out["v5"] = signature(5, method, host, path, {}, date, skey, hashlib.sha512, body=body)
    else:
        out["v5"] = signature(5, method, host, path, normalized, date, skey, hashlib.sha512, body="")
    return out


print(json.dumps([sign(case) for case in json.load(sys.stdin)]))
