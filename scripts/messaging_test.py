"""The messaging features (templates, scheduled sends, batches, the suppression list, richer email, metadata, their
OpenAPI paths and scopes), point by point, with the README's requests against a fresh `switchboard serve` (the
embedded default, a bootstrap admin key) on 127.0.0.1. Run by scripts/test.sh after the Swift tests:
  python3 scripts/messaging_test.py .build/debug/switchboard
"""
import base64, json, os, subprocess, sys, tempfile, time, urllib.request, urllib.error, datetime
BIN = sys.argv[1]
work = tempfile.mkdtemp()
db = os.path.join(work, "w.sqlite")
admin = subprocess.check_output([BIN, "keys", "generate"]).decode().strip()
import socket
with socket.socket() as _s:
    _s.bind(("127.0.0.1", 0)); port = _s.getsockname()[1]
env = {k: v for k, v in os.environ.items() if not k.startswith(("SWITCHBOARD_", "REDIS_", "MONGODB_", "ELASTICSEARCH_"))}
env.update({"SWITCHBOARD_ADMIN_KEY": admin, "SWITCHBOARD_DATABASE": db, "PORT": str(port), "SWITCHBOARD_HOST": "127.0.0.1", "SWITCHBOARD_LOG_LEVEL": "warning"})
p = subprocess.Popen([BIN, "serve"], env=env, stdout=open(os.path.join(work, "log"), "wb"), stderr=subprocess.STDOUT)
fails = []
def call(method, path, body=None, key=admin, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    r = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    r.add_header("Authorization", f"Bearer {key}")
    if data is not None: r.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items(): r.add_header(k, v)
    try:
        with urllib.request.urlopen(r, timeout=10) as resp:
            raw = resp.read(); return resp.status, (json.loads(raw) if raw else None), dict(resp.headers)
    except urllib.error.HTTPError as e:
        raw = e.read(); return e.code, (json.loads(raw) if raw else None), dict(e.headers)
def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what); 
    if not cond: fails.append(what)
for _ in range(100):
    try: urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=1); break
    except Exception: time.sleep(0.1)
try:
    # 1. Templates
    s, t, _ = call("POST", "/api/v1/templates", {"name": "welcome", "channel": "email", "subject": "Welcome, {{name}}", "body": "Hi {{name}}, your code is {{code}}.", "html": "<p>Hi {{name}}</p>"})
    check(s == 201 and t["version"] == 1 and t["locale"] == "en", f"1 template saved v1 en: {s}")
    s, t, _ = call("POST", "/api/v1/templates", {"name": "welcome", "channel": "email", "subject": "Welcome again, {{name}}", "body": "Hello {{name}}: {{code}}."})
    check(s == 201 and t["version"] == 2, "1 saving again makes version 2")
    call("POST", "/api/v1/templates", {"name": "welcome", "channel": "email", "locale": "fr", "subject": "Bienvenue, {{name}}", "body": "Bonjour {{name}}, votre code : {{code}}."})
    s, lst, _ = call("GET", "/api/v1/templates"); check(s == 200 and any(i["name"] == "welcome" for i in lst["items"]), "1 GET /templates lists it")
    s, one, _ = call("GET", "/api/v1/templates/welcome"); check(s == 200 and len(one["items"] if "items" in one else one.get("versions", [])) >= 3, f"1 GET /templates/welcome: versions {list(one.keys())}")
    s, m, _ = call("POST", "/api/v1/communication", {"type": "email", "data": {"from": "noreply@example.com", "to": "ada@example.com", "templateId": "welcome", "locale": "fr-CA", "variables": {"name": "Ada", "code": 1234}}})
    check(s == 200 and m["data"]["msg"] == "Bonjour Ada, votre code : 1234." and m["data"]["locale"] == "fr" and m["data"]["templateVersion"] == 1, f"1 rendered at accept, fr-CA falls back to fr: {m['data'].get('msg')}")
    tid = m["id"]
    s, m, _ = call("POST", "/api/v1/communication", {"type": "email", "data": {"from": "noreply@example.com", "to": "ada@example.com", "templateId": "welcome", "variables": {"name": "Ada"}}})
    check(s == 400 and m["error"]["code"] == "missing_variable" and "code" in m["error"]["field"], f"1 missing variable 400 naming it: {m}")
    s, m, _ = call("POST", "/api/v1/templates/welcome/preview", {"variables": {"name": "<Ada>", "code": 7}, "version": 1} if False else {"variables": {"name": "<Ada>", "code": 7}})
    check(s == 200 and "<Ada>" in m["body"], f"1 preview renders, body not escaped: {m}")
    s, m, _ = call("POST", "/api/v1/templates/welcome/preview", {"variables": {"name": "<Ada>", "code": 7}, "version": 1})
    check(s == 200, f"1 preview of v1: {s}")
    if s == 200: check(m.get("html") == "<p>Hi &lt;Ada&gt;</p>", f"1 html escaped: {m.get('html')}")
    s, _, _ = call("DELETE", "/api/v1/templates/welcome"); check(s == 204, "1 archive 204")
    s, m, _ = call("POST", "/api/v1/communication", {"type": "email", "data": {"from": "noreply@example.com", "to": "ada@example.com", "templateId": "welcome", "variables": {"name": "A", "code": 1}}})
    check(s == 422 and m["error"]["code"] == "template_archived", "1 archived: 422 template_archived")
    s, m, _ = call("GET", f"/api/v1/communication/{tid}"); check(s == 200 and m["data"]["templateId"] == "welcome" and m["data"]["variables"]["name"] == "Ada", "1 message keeps template name, version, variables")
    s, m, _ = call("GET", "/api/v1/templates/welcome"); check(s == 200, "1 archived template still readable")
    s, m, _ = call("POST", "/api/v1/communication", {"type": "whatsapp", "data": {"from": "+15550000000", "to": "+15550000001", "msg": "x", "template": {"name": "hello_world", "language": "en_US"}}})
    check(s == 200, f"1 Meta's data.template still accepted: {s}")
    # 2. Scheduled
    at = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=3)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    s, m, _ = call("POST", "/api/v1/communication", {"type": "sms", "data": {"from": "+15550000000", "to": "+15550000002", "msg": "later", "sendAt": at}})
    check(s == 200 and m["status"] == "scheduled", f"2 scheduled: {m.get('status')}")
    sid = m["id"]
    far = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    s, m2, _ = call("POST", "/api/v1/communication", {"type": "sms", "data": {"from": "+15550000000", "to": "+15550000003", "msg": "cancel me", "sendAt": far}})
    s, c, _ = call("POST", f"/api/v1/communication/{m2['id']}/cancel"); check(s == 200 and c["status"] == "cancelled", f"2 cancelled before its time: {s} {c}")
    tooFar = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=400)).strftime("%Y-%m-%dT%H:%M:%SZ")
    s, e, _ = call("POST", "/api/v1/communication", {"type": "sms", "data": {"from": "+15550000000", "to": "+15550000003", "msg": "x", "sendAt": tooFar}})
    check(s == 400 and e["error"]["code"] == "invalid_send_at", "2 more than a year ahead: 400 invalid_send_at")
    s, st, _ = call("GET", "/api/v1/communications?status=scheduled"); check(s == 200 and any(i["id"] == sid for i in st["items"]), "2 searchable by status=scheduled")
    deadline = time.time() + 15
    while time.time() < deadline:
        s, m, _ = call("GET", f"/api/v1/communication/{sid}")
        if m["status"] == "sent": break
        time.sleep(0.2)
    hist = {h["status"]: h["at"] for h in m.get("history", [])}
    check(m["status"] == "sent", f"2 sent after its time: {m['status']}")
    if "queued" in hist:
        q = datetime.datetime.fromisoformat(hist["queued"].replace("Z", "+00:00")); due = datetime.datetime.fromisoformat(at.replace("Z", "+00:00"))
        # Not before its time; how soon after is measured by scripts/bench-scheduled.sh, not asserted here.
        check(q >= due and (q - due).total_seconds() < 10.0, f"2 published after its time: {(q - due).total_seconds():.3f} s later")
    # 3. Batch
    items = [{"type": "sms", "data": {"from": "+15550000000", "to": "+1555000010%d" % i, "msg": "b%d" % i}} for i in range(3)] + [{"type": "sms", "data": {"from": "+15550000000", "to": "nope", "msg": "x"}}]
    s, b, h = call("POST", "/api/v1/communications/batch", {"items": items}, headers={"Idempotency-Key": "batch-1"})
    check(s == 200 and b["accepted"] == 3 and b["rejected"] == 1 and b["items"][3]["error"]["field"] == "items[3].data.to", f"3 batch mixed: {b['accepted']}/{b['rejected']}")
    s, b2, h2 = call("POST", "/api/v1/communications/batch", {"items": items}, headers={"Idempotency-Key": "batch-1"})
    check(s == 200 and [i.get("id") for i in b2["items"]] == [i.get("id") for i in b["items"]] and h2.get("Idempotent-Replayed") == "true", "3 replay answers the same ids, Idempotent-Replayed")
    s, b3, _ = call("POST", "/api/v1/communications/batch", {"items": items[:2]}, headers={"Idempotency-Key": "batch-1"})
    check(s == 409, f"3 the key with another batch: 409 ({s})")
    s, _, _ = call("POST", "/api/v1/communications/batch", {"items": items * 300})
    check(s == 400, f"3 over 1,000 items: 400 ({s})")
    # 4. Suppressions
    s, sp, _ = call("POST", "/api/v1/suppressions", {"channel": "email", "to": "gone@example.com", "reason": "unsubscribed"})
    check(s == 201, f"4 suppression added ({s})")
    s, e, _ = call("POST", "/api/v1/communication", {"type": "email", "data": {"from": "a@example.com", "to": "gone@example.com", "msg": "x"}})
    check(s == 422 and e["error"]["code"] == "recipient_suppressed" and "unsubscribed" in e["error"]["message"], "4 422 recipient_suppressed with reason")
    s, b, _ = call("POST", "/api/v1/communications/batch", {"items": [{"type": "email", "data": {"from": "a@example.com", "to": "gone@example.com", "msg": "x"}}, {"type": "email", "data": {"from": "a@example.com", "to": "ok@example.com", "msg": "x"}}]})
    check(b["items"][0].get("httpStatus") == 422 and "id" in b["items"][1], "4 in a batch, per item")
    s, l, _ = call("GET", "/api/v1/suppressions?channel=email&to=gone@example.com"); check(s == 200 and len(l["items"]) == 1, "4 GET filters")
    s, _, _ = call("DELETE", "/api/v1/suppressions?channel=email&to=gone@example.com"); check(s == 204, "4 DELETE 204")
    # 5. Richer email
    content = base64.b64encode(b"id,amount\n1,9.99\n").decode()
    s, m, _ = call("POST", "/api/v1/communication", {"type": "email", "data": {"from": "a@example.com", "to": "b@example.com", "cc": ["c@example.com"], "bcc": ["d@example.com"], "replyTo": "r@example.com", "subject": "Invoice", "html": "<b>hi</b>", "msg": "hi", "attachments": [{"filename": "invoice.csv", "contentType": "text/csv", "content": content}]}})
    check(s == 200 and "content" not in m["data"]["attachments"][0] and len(m["data"]["attachments"][0]["sha256"]) == 64, "5 attachment stored by sha256, no content in the record")
    s, e, _ = call("POST", "/api/v1/communication", {"type": "email", "data": {"from": "a@example.com", "to": "b@example.com", "cc": ["not an address"], "msg": "x"}})
    check(s == 400 and "cc" in e["error"]["field"], f"5 each address validated: {e['error'].get('field')}")
    big = base64.b64encode(os.urandom(2 << 20)).decode()
    s, m, _ = call("POST", "/api/v1/communication", {"type": "email", "data": {"from": "a@example.com", "to": "b@example.com", "msg": "big", "attachments": [{"filename": "a.bin", "contentType": "application/octet-stream", "content": big}]}})
    check(s == 200, f"5 a 2.7 MiB email body accepted ({s})")
    s, m, _ = call("POST", "/api/v1/communication", {"type": "sms", "data": {"from": "+15550000000", "to": "+15550000009", "msg": "x" * (2 << 20)}})
    check(s == 413, f"5 other types keep the 1 MiB limit ({s})")
    # 6. Metadata
    s, m, _ = call("POST", "/api/v1/communication", {"type": "sms", "data": {"from": "+15550000000", "to": "+15550000004", "msg": "m", "metadata": {"orderId": "123"}}})
    check(s == 200, "6 metadata accepted")
    mid = m["id"]
    s, r, _ = call("GET", "/api/v1/communications?metadata.orderId=123"); check(s == 200 and [i["id"] for i in r["items"]] == [mid], "6 searchable by metadata.orderId")
    s, r, _ = call("GET", f"/api/v1/communication/{mid}"); check(r["data"]["metadata"] == {"orderId": "123"}, "6 returned on reads")
    s, e, _ = call("POST", "/api/v1/communication", {"type": "sms", "data": {"from": "+15550000000", "to": "+15550000004", "msg": "m", "metadata": {"k%d" % i: "v" for i in range(51)}}})
    check(s == 400, f"6 51 keys refused ({s})")
    # 7. OpenAPI
    s, doc, _ = call("GET", "/openapi.json")
    for path in ["/api/v1/templates", "/api/v1/templates/{name}", "/api/v1/templates/{name}/preview", "/api/v1/communications/batch", "/api/v1/suppressions"]:
        check(path in doc["paths"], f"7 {path} in the OpenAPI document")
    rk = subprocess.check_output([BIN, "keys", "create", "--name", "reader", "--scope", "read", "--database", db], env=env).decode().strip()
    time.sleep(3)
    s, _, _ = call("POST", "/api/v1/templates", {"name": "x", "channel": "sms", "body": "x"}, key=rk); check(s == 403, f"7 a read key cannot save a template ({s})")
    s, _, _ = call("POST", "/api/v1/communications/batch", {"items": items[:1]}, key=rk); check(s == 403, f"7 a read key cannot send a batch ({s})")
    s, _, _ = call("GET", "/api/v1/suppressions", key=rk); check(s == 200, f"7 a read key lists suppressions ({s})")
finally:
    p.terminate(); p.wait(10)
    if not fails:
        import shutil; shutil.rmtree(work, ignore_errors=True)
print(f"messaging test: FAILED, {len(fails)} failures (logs in {work})" if fails else "messaging test: every point holds")
sys.exit(1 if fails else 0)
