#!/usr/bin/env python3
"""Authorization matrix of a running Switchboard, driven by its OpenAPI document (issue 16, point 9).

Every operation of the document x {no key, unknown key, revoked key, key without the scope, key with it}, each
keyed case by `Authorization: Bearer` and by `X-API-Key`, must give the documented status:

  - an operation whose `security` names a scope: 401 `unauthorized` with `WWW-Authenticate: Bearer` for no,
    unknown and revoked keys; 403 `forbidden` for a valid key without the scope; with the scope, a status the
    operation documents other than 401 and 403 (and never a 5xx);
  - an open operation (`security: []`: health, webhooks, the document): the same documented status whatever key
    is sent as without one, and never 401 `unauthorized` or 403 `forbidden`.

The operations come from the document (served at /openapi.json unless --document is given), so a new endpoint
joins the matrix as soon as it is documented. One the server does not route (405, or its unknown-route 404) is
left out with a warning, or fails with --strict-routes. The keys are made through the API with the admin key given
(POST /api/v1/keys, DELETE /api/v1/keys/{id}). A 429 `rate_limited` where another status is expected (the
failed-authentication limit) is waited out (Retry-After) and the request sent again.

    scripts/auth_matrix.py --url http://127.0.0.1:3001 --admin-key sb_live_...

Prints one line per failure and ends with 'N passed, N failed'; exits 1 on any failure. Standard library only.
"""
import argparse
import http.client
import json
import secrets
import sys
import time
import urllib.parse

METHODS = ["get", "put", "post", "delete", "patch", "head", "options", "trace"]
# A valid key without the scope: what every other scope grants, short of it.
WITHOUT = {"send": ["read"], "read": ["send"], "admin": ["send", "read"]}
PLACEHOLDER_ID = "000000000000000000000000"


class Client:
    def __init__(self, base):
        u = urllib.parse.urlsplit(base)
        if u.scheme != "http" or u.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise SystemExit(f"--url must be a loopback http URL, not {base}")
        self.host, self.port = u.hostname, u.port or 80

    def request(self, method, target, headers=None, body=None):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            conn.request(method, target, body=body, headers=headers or {})
            r = conn.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            conn.close()

    def json(self, method, target, headers=None, body=None):
        h = dict(headers or {})
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        status, hdrs, data = self.request(method, target, h, payload)
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            parsed = None
        return status, hdrs, parsed


class Schemas:
    """Minimal valid instances of the document's schemas (for path, query and body values)."""

    def __init__(self, doc):
        self.doc = doc

    def resolve(self, node):
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            assert ref.startswith("#/"), ref
            target = self.doc
            for part in ref[2:].split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            node = target
        return node

    def example(self, schema):
        s = self.resolve(schema)
        if not isinstance(s, dict):
            return "x"
        if "examples" in s and s["examples"]:
            return s["examples"][0]
        if "const" in s:
            return s["const"]
        if "enum" in s:
            return s["enum"][0]
        if "default" in s:
            return s["default"]
        for key in ("oneOf", "anyOf"):
            if key in s:
                return self.example(s[key][0])
        if "allOf" in s:
            merged = {}
            for part in s["allOf"]:
                value = self.example(part)
                if isinstance(value, dict):
                    merged.update(value)
                else:
                    return value
            return merged
        t = s.get("type")
        if isinstance(t, list):
            t = next((x for x in t if x != "null"), "null")
        if t == "object" or "properties" in s:
            return {name: self.example(s["properties"][name]) for name in s.get("required", [])}
        if t == "array":
            return []
        if t == "integer":
            return int(s.get("minimum", 1))
        if t == "number":
            return s.get("minimum", 1)
        if t == "boolean":
            return False
        if t == "null":
            return None
        return "matrix"


def operations(doc):
    default = doc.get("security", [])
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                op = item[method]
                yield method.upper(), path, op, op.get("security", default)


def scope_of(requirements):
    scopes = {s for r in requirements for v in r.values() for s in v}
    if not requirements:
        return None
    if len(scopes) != 1:
        raise SystemExit(f"an operation needs one scope, not {sorted(scopes)}")
    return scopes.pop()


class Matrix:
    def __init__(self, client, doc, admin_key, rate, burst):
        self.client, self.doc, self.schemas = client, doc, Schemas(doc)
        self.admin = {"Authorization": f"Bearer {admin_key}"}
        self.rate, self.burst = rate, burst
        self.passed, self.failures, self.unserved = 0, [], []

    def create_key(self, name, scopes):
        status, _, body = self.client.json("POST", "/api/v1/keys", self.admin, {"name": name, "scopes": scopes, "rate": self.rate, "burst": self.burst})
        if status not in (200, 201) or not isinstance(body, dict) or "key" not in body or "id" not in body:
            raise SystemExit(f"POST /api/v1/keys answered {status} {body}: cannot build the matrix's keys")
        return body

    def revoke(self, key_id):
        status, _, body = self.client.json("DELETE", f"/api/v1/keys/{urllib.parse.quote(key_id, safe='')}", self.admin)
        if status not in (200, 204):
            raise SystemExit(f"DELETE /api/v1/keys/{key_id} answered {status} {body}")

    def prepare(self):
        self.with_scope = {s: self.create_key(f"matrix-{s}", [s])["key"] for s in WITHOUT}
        self.without_scope = {s: self.create_key(f"matrix-no-{s}", WITHOUT[s])["key"] for s in WITHOUT}
        revoked = self.create_key("matrix-revoked", ["admin"])
        self.revoke(revoked["id"])
        # The revocation reaches every process within 5 seconds; this server is the one that revoked it.
        self.revoked = revoked["key"]
        self.unknown = "sb_live_" + secrets.token_urlsafe(32)

    def request_for(self, method, path, op):
        """The target and body of a request the operation should accept."""
        target = path
        for p in op.get("parameters", []):
            p = self.schemas.resolve(p)
            if p["in"] == "path":
                value = PLACEHOLDER_ID
                if method == "DELETE" and path.startswith("/api/v1/keys/"):
                    value = self.create_key("matrix-victim", ["read"])["id"]  # a real key for the scoped revocation
                target = target.replace("{" + p["name"] + "}", urllib.parse.quote(str(value), safe=""))
        query = {}
        for p in op.get("parameters", []):
            p = self.schemas.resolve(p)
            if p["in"] == "query" and p.get("required"):
                query[p["name"]] = self.schemas.example(p["schema"])
        if query:
            target += "?" + urllib.parse.urlencode(query)
        headers, body = {}, None
        rb = self.schemas.resolve(op.get("requestBody", {}))
        content = rb.get("content", {})
        if "application/json" in content:
            headers["Content-Type"] = "application/json"
            body = json.dumps(self.schemas.example(content["application/json"]["schema"])).encode()
        elif "application/x-www-form-urlencoded" in content:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            body = b""
        return target, headers, body

    def send(self, method, target, headers, body, expect_limited=False):
        for _ in range(6):
            status, hdrs, data = self.client.request(method, target, headers, body)
            if status == 429 and not expect_limited:
                time.sleep(min(int(hdrs.get("retry-after", "1") or 1), 60))
                continue
            return status, hdrs, data
        return status, hdrs, data

    def check(self, label, ok, detail):
        if ok:
            self.passed += 1
        else:
            self.failures.append(f"{label}: {detail}")
            print(f"FAIL {label}: {detail}", flush=True)

    def served(self, method, path, op, scope):
        """Whether the server has a route for the operation: probed with a key that may call it. Only the
        router's own answers say no: 405, or 404 `not_found` without a field (an operation's 404 names one);
        a HEAD answer has no body, so a HEAD is served when it is not a 405 and its GET is."""
        key = self.with_scope[scope or "admin"]
        target, headers, body = self.request_for(method, path, op)
        status, _, data = self.send(method, target, dict(headers, Authorization=f"Bearer {key}"), body)
        if status == 405:
            return False
        if method == "HEAD":
            get = self.doc["paths"][path].get("get")
            return get is None or self.served("GET", path, get, scope)
        if status != 404:
            return True
        try:
            error = json.loads(data)["error"]
        except (ValueError, KeyError, TypeError):
            return False
        return not (error.get("code") == "not_found" and "field" not in error)

    def run(self, strict):
        for method, path, op, requirements in operations(self.doc):
            scope = scope_of(requirements)
            if not self.served(method, path, op, scope):
                if strict:
                    self.check(f"{method} {path}", False, "documented, but the server has no such route")
                else:
                    self.unserved.append(f"{method} {path}")
                continue
            documented = set(op.get("responses", {}))
            cases = [("no key", {})]
            for scheme, header in (("bearer", lambda k: {"Authorization": f"Bearer {k}"}), ("x-api-key", lambda k: {"X-API-Key": k})):
                cases += [
                    (f"unknown key ({scheme})", header(self.unknown)),
                    (f"revoked key ({scheme})", header(self.revoked)),
                ]
                if scope:
                    cases += [
                        (f"key without {scope} ({scheme})", header(self.without_scope[scope])),
                        (f"key with {scope} ({scheme})", header(self.with_scope[scope])),
                    ]
                else:
                    cases += [(f"admin key ({scheme})", header(self.with_scope["admin"]))]
            for name, auth in cases:
                target, headers, body = self.request_for(method, path, op)
                status, hdrs, data = self.send(method, target, dict(headers, **auth), body)
                label = f"{method} {path} [{name}]"
                code = None
                if data and method != "HEAD":
                    try:
                        code = json.loads(data).get("error", {}).get("code")
                    except (ValueError, AttributeError):
                        code = None
                if status >= 500:
                    self.check(label, False, f"{status} {data[:200]!r}")
                    continue
                if scope is None:
                    # Whatever key is sent, an open operation answers as without one, and never for want of a key
                    # (a webhook's own 403 for a bad signature is its documented answer, not access control).
                    if name == "no key":
                        baseline = status
                    ok = status == baseline and status != 401 and code not in ("unauthorized", "forbidden") and str(status) in documented
                    self.check(label, ok, f"an open operation answered {status} {code} (without a key: {baseline})")
                elif name == "no key" or name.startswith("unknown") or name.startswith("revoked"):
                    ok = status == 401 and hdrs.get("www-authenticate", "").startswith("Bearer") and (method == "HEAD" or code == "unauthorized")
                    self.check(label, ok, f"expected 401 unauthorized with WWW-Authenticate: Bearer, got {status} {code} {hdrs.get('www-authenticate')}")
                elif name.startswith("key without"):
                    ok = status == 403 and (method == "HEAD" or code == "forbidden")
                    self.check(label, ok, f"expected 403 forbidden, got {status} {code}")
                else:
                    ok = status not in (401, 403) and str(status) in documented
                    self.check(label, ok, f"expected a documented status other than 401/403 ({sorted(documented)}), got {status} {code}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True, help="base URL of a running server (loopback only)")
    ap.add_argument("--admin-key", required=True, help="a key with the admin scope")
    ap.add_argument("--document", help="OpenAPI file to read instead of the served /openapi.json")
    ap.add_argument("--rate", type=float, default=1000.0, help="rate of the keys it creates (requests per second)")
    ap.add_argument("--burst", type=int, default=1000, help="burst of the keys it creates")
    ap.add_argument("--strict-routes", action="store_true", help="a documented operation the server does not serve fails (else: left out, with a warning)")
    args = ap.parse_args()
    client = Client(args.url)
    if args.document:
        with open(args.document, encoding="utf-8") as f:
            doc = json.load(f)
    else:
        status, _, doc = client.json("GET", "/openapi.json")
        if status != 200:
            raise SystemExit(f"GET /openapi.json answered {status}")
    m = Matrix(client, doc, args.admin_key, args.rate, args.burst)
    m.prepare()
    m.run(args.strict_routes)
    if m.unserved:
        print(f"auth-matrix: WARNING: documented but not served, left out: {', '.join(m.unserved)}")
    print(f"auth-matrix: {m.passed} passed, {len(m.failures)} failed")
    return 1 if m.failures else 0


if __name__ == "__main__":
    sys.exit(main())
