"""Schemathesis hooks of scripts/fuzz.sh (SCHEMATHESIS_HOOKS=fuzz_hooks, scripts/ on PYTHONPATH).

Signs most generated provider callbacks with the throwaway secrets the fuzzed server was started with, so that
the fuzzer reaches what lies behind the signature checks (form and JSON parsing, status reports applied to the
store) instead of stopping at 403 every time; one in four is left as generated, to keep fuzzing the checks.

  FUZZ_PUBLIC_URL             the server's SWITCHBOARD_PUBLIC_URL (Twilio signs the full URL it requested)
  FUZZ_TWILIO_AUTH_TOKEN      its AUTHTOKEN
  FUZZ_WHATSAPP_APP_SECRET    its SWITCHBOARD_WHATSAPP_APP_SECRET
  FUZZ_WHATSAPP_VERIFY_TOKEN  its SWITCHBOARD_WHATSAPP_VERIFY_TOKEN (Meta's verification handshake, likewise)
  FUZZ_COMMUNICATION_ID       a message fuzz.sh stored before the run: one in three generated ids of
                              /api/v1/communication/{id}... is replaced by it, so that GET and HEAD of a message (and
                              its events) are answered past their 404 whatever links the stateful phase happens to take
"""
import base64
import hashlib
import hmac
import json
import os
import urllib.parse
import zlib

import schemathesis


def _text(value):
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def _leave_unsigned(raw: bytes) -> bool:
    # One in four, decided by the content (reproducible with the run's seed); an empty body is signed.
    return zlib.crc32(raw) % 4 == 3


def _set_header(case, name, value):
    headers = dict(case.headers or {})
    for key in list(headers):
        if key.lower() == name.lower():
            del headers[key]
    headers[name] = value
    case.headers = headers


@schemathesis.hook
def before_call(context, case, kwargs):
    path, method = case.operation.path, case.method.upper()
    known = os.environ.get("FUZZ_COMMUNICATION_ID")
    if known and path.startswith("/api/v1/communication/{id}") and isinstance(case.path_parameters, dict):
        generated = _text(case.path_parameters.get("id"))
        if zlib.crc32(generated.encode("utf-8", "replace")) % 3 == 0:
            case.path_parameters = {**case.path_parameters, "id": known}
    if method in ("GET", "HEAD") and path == "/webhooks/whatsapp":
        token = os.environ.get("FUZZ_WHATSAPP_VERIFY_TOKEN")
        query = dict(case.query or {})
        if token and not _leave_unsigned(repr(sorted(query.items(), key=str)).encode("utf-8", "replace")):
            query["hub.mode"] = "subscribe"
            query["hub.verify_token"] = token
            case.query = query
        return
    if method != "POST":
        return
    if path == "/webhooks/whatsapp":
        secret = os.environ.get("FUZZ_WHATSAPP_APP_SECRET")
        if not secret or isinstance(case.body, bytes):
            return
        try:
            raw = json.dumps(case.body, ensure_ascii=False).encode("utf-8")
        except (TypeError, ValueError, UnicodeEncodeError):
            return
        case.body = raw
        if _leave_unsigned(raw):
            return
        _set_header(case, "X-Hub-Signature-256", "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest())
    elif path == "/webhooks/twilio/status":
        token, base = os.environ.get("FUZZ_TWILIO_AUTH_TOKEN"), os.environ.get("FUZZ_PUBLIC_URL")
        if not token or not base or not isinstance(case.body, dict):
            return
        try:
            pairs = [(str(k), _text(v)) for k, v in case.body.items()]
            raw = urllib.parse.urlencode(pairs).encode("ascii")
            for k, v in pairs:
                (k + v).encode("utf-8")
        except (TypeError, ValueError, UnicodeEncodeError):
            return
        case.body = raw
        _set_header(case, "Content-Type", "application/x-www-form-urlencoded")
        if _leave_unsigned(raw):
            return
        # Twilio's scheme: the full URL, then every parameter sorted by name (then value), name and value appended.
        data = (base.rstrip("/") + path).encode("utf-8")
        for k, v in sorted(pairs, key=lambda p: (p[0].encode("utf-8"), p[1].encode("utf-8"))):
            data += k.encode("utf-8") + v.encode("utf-8")
        _set_header(case, "X-Twilio-Signature", base64.b64encode(hmac.new(token.encode(), data, hashlib.sha1).digest()).decode())
