#!/usr/bin/env python3
"""Self-test of emulator/momo_emulator.py; prints TAP.

Starts the emulator on a free loopback port, drives every MTN-side rule and
the /_emu/ control API with http.client, and receives callbacks on a small
http.server of its own.  Exit status 0 only when every test passes.
"""

import base64
import http.client
import http.server
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
EMU = os.path.join(HERE, "..", "emulator", "momo_emulator.py")

API_USER = "6f1c3a52-8d4e-4b7a-9c21-3e5f7a9b0d14"
API_KEY = "2f9d8c7b6a5e4d3c2b1a0f9e8d7c6b5a"
SUB_KEY = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
D_USER = "3d7b9e15-6a2c-4f48-8b90-c1e5a7d3f260"
D_KEY = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b"
D_SUB = "f0e1d2c3b4a5968778695a4b3c2d1e0f"
HOST = "127.0.0.1"
PORT = None

NUM = 0
FAILED = 0


def ok(cond, name, diag=None):
    global NUM, FAILED
    NUM += 1
    if cond:
        print("ok %d - %s" % (NUM, name))
    else:
        FAILED += 1
        print("not ok %d - %s" % (NUM, name))
        if diag is not None:
            for line in str(diag).splitlines() or [""]:
                print("#   %s" % line)
    sys.stdout.flush()
    return cond


def is_(got, want, name):
    return ok(got == want, name, "got:  %r\nwant: %r" % (got, want))


# -- HTTP helpers ----------------------------------------------------------

def req(method, path, headers=None, body=None, conn=None, timeout=10):
    c = conn or http.client.HTTPConnection(HOST, PORT, timeout=timeout)
    hdrs = dict(headers or {})
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
        hdrs.setdefault("Content-Type", "application/json")
    try:
        c.request(method, path, body=body, headers=hdrs)
        r = c.getresponse()
        data = r.read()
    finally:
        if conn is None:
            c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, data


def jbody(data):
    try:
        return json.loads(data.decode("utf-8"))
    except Exception:
        return None


def raw(data, timeout=5):
    """Send raw bytes, read until the server closes; returns bytes."""
    s = socket.create_connection((HOST, PORT), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


def emu(method, path, body=None):
    st, h, data = req(method, path, body=body)
    return st, (jbody(data) if "json" in h.get("content-type", "")
                else data.decode())


def count(path, method=None):
    q = "/_emu/count?path=" + path + ("&method=" + method if method else "")
    return int(emu("GET", q)[1])


def basic(user=API_USER, key=API_KEY):
    return "Basic " + base64.b64encode(("%s:%s" % (user, key)).encode()).decode()


def token_call(headers=None, product="collection", body=None):
    h = {"Authorization": basic(), "Ocp-Apim-Subscription-Key": SUB_KEY}
    h.update(headers or {})
    h = {k: v for k, v in h.items() if v is not None}
    return req("POST", "/%s/token/" % product, h, body)


def apim_401(answer, name):
    st, h, data = answer
    b = jbody(data) or {}
    ok(st == 401 and b.get("statusCode") == 401 and
       b.get("message", "").startswith("Access denied due to invalid "
                                       "subscription key"), name, (st, data))


def token():
    st, h, data = token_call()
    return jbody(data)["access_token"]


def mtn_headers(tok, extra=None):
    h = {"Authorization": "Bearer " + tok, "X-Target-Environment": "sandbox",
         "Ocp-Apim-Subscription-Key": SUB_KEY}
    h.update(extra or {})
    return {k: v for k, v in h.items() if v is not None}


def rtp_body(payer="56733123453", **kw):
    b = {"amount": "100", "currency": "EUR", "externalId": "ext-1",
         "payer": {"partyIdType": "MSISDN", "partyId": payer},
         "payerMessage": "Booking 42", "payeeNote": "Thank you"}
    b.update(kw)
    return b


def rtp(tok, ref=None, payer="56733123453", headers=None, body=None):
    ref = ref or str(uuid.uuid4())
    h = mtn_headers(tok, {"X-Reference-Id": ref,
                          "Content-Type": "application/json"})
    h.update(headers or {})
    h = {k: v for k, v in h.items() if v is not None}
    b = body if body is not None else rtp_body(payer)
    if not isinstance(b, (bytes, str)):
        b = json.dumps(b)
    st, hd, data = req("POST", "/collection/v1_0/requesttopay", h, b)
    return ref, st, hd, data


def status(tok, ref):
    st, h, data = req("GET", "/collection/v1_0/requesttopay/" + ref,
                      mtn_headers(tok))
    return st, jbody(data)


def wait_until(fn, timeout=5.0, step=0.02):
    end = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() > end:
            return v
        time.sleep(step)


# -- callback receiver ------------------------------------------------------

RECEIVED = []
RLOCK = threading.Lock()


class CallbackHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        with RLOCK:
            RECEIVED.append({"method": self.command, "path": self.path,
                             "headers": dict(self.headers.items()),
                             "body": body.decode("utf-8", "replace"),
                             "time": time.monotonic()})
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    do_POST = do_PUT = do_GET = _any

    def log_message(self, *a):
        pass


def received(prefix):
    with RLOCK:
        return [r for r in RECEIVED if r["path"].startswith(prefix)]


# -- the tests -------------------------------------------------------------

def main():
    global PORT
    proc = subprocess.Popen([sys.executable, EMU, "--listen", "127.0.0.1:0"],
                            stdout=subprocess.PIPE, text=True)
    lines = queue.Queue()
    threading.Thread(target=lambda: lines.put(proc.stdout.readline()),
                     daemon=True).start()
    try:
        first = lines.get(timeout=10)
    except queue.Empty:
        first = ""
    m = re.fullmatch(r"momo emulator listening on 127\.0\.0\.1:(\d+)\n", first)
    if not ok(m is not None, "start-up line names the listening address",
              repr(first)):
        proc.kill()
        print("1..%d" % NUM)
        return 1
    PORT = int(m.group(1))

    cbsrv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), CallbackHandler)
    cbsrv.daemon_threads = True
    threading.Thread(target=cbsrv.serve_forever, daemon=True).start()
    CB = "http://127.0.0.1:%d" % cbsrv.server_address[1]

    try:
        run(CB)
        run_provisioning()
        run_disbursement(CB)
        run_robustness()
        run_cli_options()
    except Exception:
        import traceback
        ok(False, "test script ran to the end", traceback.format_exc())
    finally:
        cbsrv.shutdown()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = None
            is_(rc, 0, "SIGTERM stops the emulator cleanly (exit 0)")
    print("1..%d" % NUM)
    return 1 if FAILED else 0


def run(CB):
    is_(emu("POST", "/_emu/reset"), (200, {"ok": True}), "reset answers ok")

    # ---- token -----------------------------------------------------------
    st, h, data = token_call()
    t = jbody(data) or {}
    is_(st, 200, "token: 200 with good credentials")
    is_((t.get("token_type"), t.get("expires_in")), ("access_token", 3600),
        "token: token_type access_token, expires_in 3600")
    at = t.get("access_token", "")
    ok(re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", at)
       and len(at) > 300, "token: JWT-like, several hundred chars", at)
    payload = at.split(".")[1]
    payload += "=" * (-len(payload) % 4)
    ok(json.loads(base64.urlsafe_b64decode(payload)).get("clientId")
       == API_USER, "token: payload carries clientId")
    ok(token() != at, "token: unique per call")
    st, h, data = token_call({"X-Target-Environment": "sandbox"})
    is_(st, 200, "token: X-Target-Environment sandbox accepted")

    st, h, data = token_call({"Authorization": basic(key="0" * 32)})
    is_((st, data), (500, b'{"error":"login_failed"}'),
        "token: wrong API key -> 500 login_failed")
    is_((h.get("content-type"), h.get("cache-control")),
        ("application/json;charset=utf-8", "no-store"),
        "token: login_failed content type and Cache-Control")
    st, h, data = token_call({"Authorization": basic(user=str(uuid.uuid4()))})
    is_((st, data), (500, b'{"error":"login_failed"}'),
        "token: unknown API user -> 500 login_failed")
    st, h, data = token_call({"Authorization": None})
    is_((st, data), (500, b'{"error":"login_failed"}'),
        "token: no Authorization -> 500 login_failed")
    st, h, data = token_call({"X-Target-Environment": "mtncameroon"})
    is_((st, data), (500, b'{"error":"login_failed"}'),
        "token: other X-Target-Environment -> 500 login_failed")
    apim_401(token_call({"Ocp-Apim-Subscription-Key": "nope"}),
             "token: bad subscription key -> 401 APIM body with statusCode")
    st, h, data = token_call({"Ocp-Apim-Subscription-Key": None})
    is_((st, (jbody(data) or {}).get("statusCode")), (401, 401),
        "token: missing subscription key -> 401 APIM")
    st, h, data = token_call(body='{"grant_type":"client_credentials"}')
    is_(st, 400, "token: a body is refused with 400")

    auth = basic()
    out = raw(("POST /collection/token/ HTTP/1.1\r\nHost: x\r\n"
               "Authorization: %s\r\nOcp-Apim-Subscription-Key: %s\r\n"
               "Connection: close\r\n\r\n" % (auth, SUB_KEY)).encode())
    ok(out.startswith(b"HTTP/1.1 411 ") and b"text/html" in out and
       b"Length Required" in out, "token: no Content-Length -> 411 HTML",
       out[:300])
    out = raw(("POST /collection/token/ HTTP/1.1\r\nHost: x\r\n"
               "Authorization: %s\r\nOcp-Apim-Subscription-Key: %s\r\n"
               "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
               "0\r\n\r\n" % (auth, SUB_KEY)).encode())
    ok(out.startswith(b"HTTP/1.1 411 ") and b"<HTML>" in out,
       "token: chunked -> 411 HTML", out[:300])
    apim_401(token_call(product="disbursement"),
             "token: Collections key on /disbursement/token/ -> 401 APIM")
    st, h, data = token_call({"Authorization": basic(D_USER, D_KEY),
                              "Ocp-Apim-Subscription-Key": D_SUB},
                             product="disbursement")
    is_(st, 200, "token: /disbursement/token/ with Disbursement credentials")
    dtok = jbody(data)["access_token"]
    st, h, data = req("POST", "/collection/token", {
        "Authorization": basic(), "Ocp-Apim-Subscription-Key": SUB_KEY})
    is_(st, 404, "token: path without trailing slash -> 404")

    # ---- requesttopay ----------------------------------------------------
    tok = token()
    ref, st, h, data = rtp(tok)
    is_((st, data, h.get("content-length")), (202, b"", "0"),
        "requesttopay: 202, empty body, Content-Length 0")
    _, st, h, data = rtp(tok, ref=ref)
    is_((st, jbody(data)), (409, {
        "message": "Duplicated reference id. Creation of resource failed.",
        "code": "RESOURCE_ALREADY_EXIST"}), "requesttopay: reused id -> 409")
    _, st, h, data = rtp(tok, ref=ref.upper())
    is_(st, 409, "requesttopay: reused id in upper case -> 409")
    _, st, h, data = rtp(tok, ref=str(uuid.uuid4()).upper())
    is_(st, 202, "requesttopay: upper-case UUID v4 accepted")
    _, st, h, data = rtp(tok, body=rtp_body(currency="XAF"))
    is_((st, jbody(data)), (500, {"message": "Currency not supported.",
                                  "code": "INVALID_CURRENCY"}),
        "requesttopay: non-EUR -> 500 INVALID_CURRENCY")
    _, st, h, data = rtp(tok, headers={
        "X-Callback-Url": "https://evil.example.com/cb"})
    is_((st, jbody(data)), (500, {
        "message": "Callback URL does not match the configured value.",
        "code": "INVALID_CALLBACK_URL_HOST"}),
        "requesttopay: foreign callback host -> 500 INVALID_CALLBACK_URL_HOST")
    _, st, h, data = rtp(tok, headers={"X-Callback-Url": ""})
    is_(st, 400, "requesttopay: empty X-Callback-Url -> 400")
    _, st, h, data = rtp(tok, ref=str(uuid.uuid1()))
    ok(st == 400 and (jbody(data) or {}).get("code") == "BAD_REQUEST",
       "requesttopay: UUID v1 reference -> 400", (st, data))
    _, st, h, data = rtp(tok, ref="8d1fc753-e70d-4d2e-1866-000000000001")
    is_(st, 400, "requesttopay: bad variant nibble -> 400")
    _, st, h, data = rtp(tok, ref="8d1fc753-e70d-4d2e-9866-000000000001")
    is_(st, 202, "requesttopay: deterministic v4-shaped id accepted")
    _, st, h, data = rtp(tok, headers={"X-Reference-Id": None})
    is_(st, 400, "requesttopay: missing X-Reference-Id -> 400")
    _, st, h, data = rtp(tok, headers={"X-Target-Environment": None})
    is_(st, 400, "requesttopay: missing X-Target-Environment -> 400")
    _, st, h, data = rtp(tok, headers={"X-Target-Environment": "mtncameroon"})
    is_((st, jbody(data)), (500, {"message": "Target environment not allowed",
                                  "code": "NOT_ALLOWED_TARGET_ENVIRONMENT"}),
        "requesttopay: wrong X-Target-Environment -> 500")
    _, st, h, data = rtp(tok, headers={"Content-Type": None})
    is_(st, 400, "requesttopay: missing Content-Type -> 400")
    _, st, h, data = rtp(tok, body="{not json")
    is_(st, 400, "requesttopay: malformed JSON -> 400")
    _, st, h, data = rtp(tok, body=rtp_body(amount=100))
    is_(st, 400, "requesttopay: numeric amount -> 400")
    _, st, h, data = rtp(tok, body=rtp_body(amount="-5"))
    is_(st, 400, "requesttopay: negative amount -> 400")
    b = rtp_body()
    del b["payer"]
    _, st, h, data = rtp(tok, body=b)
    is_(st, 400, "requesttopay: missing payer -> 400")
    _, st, h, data = rtp(tok, body=rtp_body(payer="+46733123450"))
    is_(st, 400, "requesttopay: MSISDN with + -> 400")
    _, st, h, data = rtp(tok, body=rtp_body(payerMessage="Tom & Jerry"))
    is_(st, 400, "requesttopay: & in payerMessage -> 400")
    _, st, h, data = rtp(tok, body=rtp_body(payeeNote="it's"))
    is_(st, 400, "requesttopay: apostrophe in payeeNote -> 400")
    _, st, h, data = rtp(tok, body=rtp_body(payeeNote="x" * 161))
    is_(st, 400, "requesttopay: 161-char payeeNote -> 400")
    _, st, h, data = rtp(tok, body=rtp_body(payeeNote="x" * 160))
    is_(st, 202, "requesttopay: 160-char payeeNote accepted")
    _, st, h, data = rtp(tok, body=rtp_body(payerMessage=""))
    is_((st, (jbody(data) or {}).get("code")),
        (500, "INTERNAL_PROCESSING_ERROR"),
        "requesttopay: empty payerMessage -> 500")
    _, st, h, data = rtp("bogus")
    b = jbody(data) or {}
    is_((st, b), (401, {"message": "Access token is invalid or expired",
                        "code": "UNAUTHORIZED"}),
        "requesttopay: unknown token -> 401 without statusCode")
    _, st, h, data = rtp(tok, headers={"Authorization": None})
    is_(st, 401, "requesttopay: no Authorization -> 401")
    _, st, h, data = rtp(dtok)
    is_(st, 401, "requesttopay: disbursement token -> 401")
    _, st, h, data = rtp(tok, headers={"Ocp-Apim-Subscription-Key": "bad"})
    is_((st, (jbody(data) or {}).get("statusCode")), (401, 401),
        "requesttopay: bad subscription key -> 401 with statusCode")

    # ---- status and scenario numbers ------------------------------------
    st, b = status(tok, str(uuid.uuid4()))
    is_((st, b), (404, {"message": "Requested resource was not found.",
                        "code": "RESOURCE_NOT_FOUND"}),
        "status: unknown reference -> 404 RESOURCE_NOT_FOUND")
    st, b = status(tok, ref)
    ok(st == 200 and b["status"] == "SUCCESSFUL" and "reason" not in b and
       re.fullmatch(r"\d{10}", b.get("financialTransactionId", "")) and
       b["payer"] == {"partyIdType": "MSISDN", "partyId": "56733123453"} and
       b["amount"] == "100" and b["payerMessage"] == "Booking 42",
       "status: 56733123453 SUCCESSFUL with financialTransactionId", b)
    is_(list(b.keys()), ["financialTransactionId", "externalId", "amount",
                         "currency", "payer", "payerMessage", "payeeNote",
                         "status"], "status: field order as MTN")
    st2, b2 = status(tok, ref.upper())
    is_(b2, b, "status: reference is case-insensitive and stable")
    for num, reason in (("46733123450", "INTERNAL_PROCESSING_ERROR"),
                        ("46733123451", "APPROVAL_REJECTED"),
                        ("46733123452", "EXPIRED")):
        r, _, _, _ = rtp(tok, payer=num)
        st, b = status(tok, r)
        ok(st == 200 and b["status"] == "FAILED" and b.get("reason") == reason
           and "financialTransactionId" not in b,
           "status: %s FAILED %s (string), no financialTransactionId"
           % (num, reason), b)
    r454, _, _, _ = rtp(tok, payer="46733123454")
    st, b = status(tok, r454)
    ok(b["status"] == "CREATED" and "reason" not in b and
       "financialTransactionId" not in b, "status: 46733123454 CREATED", b)
    r2, _, _, _ = rtp(tok, payer="22997123456")
    is_(status(tok, r2)[1]["status"], "SUCCESSFUL",
        "status: any other number SUCCESSFUL")

    emu("POST", "/_emu/config", {"pending_seconds": 1})
    t0 = time.monotonic()
    r453, _, _, _ = rtp(tok, payer="46733123453")
    st, b = status(tok, r453)
    ok(b["status"] == "PENDING" and "reason" not in b and
       "financialTransactionId" not in b, "status: 46733123453 PENDING first",
       b)
    b = wait_until(lambda: (status(tok, r453)[1]["status"] == "SUCCESSFUL")
                   and status(tok, r453)[1], timeout=4)
    ok(b and time.monotonic() - t0 >= 0.95 and "financialTransactionId" in b,
       "status: 46733123453 SUCCESSFUL after pending_seconds", b)

    emu("POST", "/_emu/config", {"reason_format": "object"})
    r, _, _, _ = rtp(tok, payer="46733123451")
    b = status(tok, r)[1]
    ok(isinstance(b.get("reason"), dict) and
       b["reason"].get("code") == "APPROVAL_REJECTED" and
       isinstance(b["reason"].get("message"), str),
       "status: reason_format object gives {code, message}", b)

    emu("POST", "/_emu/config", {"reason_format": "string",
                                 "final_delay_ms": 400})
    r, _, _, _ = rtp(tok, payer="46733123450")
    first = status(tok, r)[1]["status"]
    time.sleep(0.45)
    is_((first, status(tok, r)[1]["status"]), ("PENDING", "FAILED"),
        "status: final_delay_ms keeps immediate numbers PENDING first")
    emu("POST", "/_emu/config", {"final_delay_ms": 0})

    st, b = emu("POST", "/_emu/payments/%s/status" % r454,
                {"status": "FAILED", "reason": "NOT_ENOUGH_FUNDS"})
    is_((st, status(tok, r454)[1].get("reason")), (200, "NOT_ENOUGH_FUNDS"),
        "control: forcing a payment status")
    is_(emu("POST", "/_emu/payments/%s/status" % uuid.uuid4(),
            {"status": "FAILED"})[0], 404,
        "control: forcing an unknown payment -> 404")

    # ---- other endpoints -------------------------------------------------
    st, h, data = req("GET", "/collection/v1_0/account/balance",
                      mtn_headers(tok))
    paid = sum(int(p["amount"]) for p in emu("GET", "/_emu/payments")[1]
               if p["status"] == "SUCCESSFUL")
    ok(paid > 0 and (st, jbody(data)) == (200, {
        "availableBalance": str(1000 + paid), "currency": "EUR"}),
       "balance: 1000 plus the successful payments", (paid, st, data))
    st, h, data = req("GET", "/collection/v1_0/account/balance/EUR",
                      mtn_headers(tok))
    is_(st, 200, "balance in currency")
    st, h, data = req("GET", "/collection/v1_0/account/balance",
                      mtn_headers("expired-or-bogus"))
    is_((st, "statusCode" in (jbody(data) or {})), (401, False),
        "balance: bad token -> 401 without statusCode")
    st, h, data = req("GET", "/collection/v1_0/accountholder/msisdn/"
                      "46733123450/active", mtn_headers(tok))
    is_((st, jbody(data)), (200, {"result": True}), "accountholder active")
    st, h, data = req("GET", "/collection/v1_0/accountholder/msisdn/"
                      "0123/active", mtn_headers(tok))
    is_((st, jbody(data)), (200, {"result": False}),
        "accountholder inactive for ids starting with 0")
    st, h, data = req("GET", "/collection/v1_0/accountholder/MSISDN/"
                      "46733123450/active", mtn_headers(tok))
    is_(st, 400, "accountholder: upper-case id type -> 400")
    st, h, data = req("GET", "/collection/v1_0/accountholder/msisdn/"
                      "46733123450/basicuserinfo", mtn_headers(tok))
    ok(st == 200 and (jbody(data) or {}).get("family_name") == "Box",
       "basicuserinfo", data)

    # ---- tokens: expiry --------------------------------------------------
    is_(emu("POST", "/_emu/expire-tokens")[0], 200, "control: expire-tokens")
    st, b = status(tok, ref)
    is_((st, b), (401, {"message": "Access token is invalid or expired",
                        "code": "UNAUTHORIZED"}),
        "expired token -> 401 without statusCode")
    tok = token()
    is_(status(tok, ref)[0], 200, "a fresh token works after expire-tokens")
    emu("POST", "/_emu/config", {"token_ttl": 1})
    st, h, data = token_call()
    t1 = jbody(data)
    is_(t1["expires_in"], 1, "token_ttl sets expires_in")
    is_(status(t1["access_token"], ref)[0], 200, "short token valid at first")
    time.sleep(1.1)
    is_(status(t1["access_token"], ref)[0], 401,
        "short token invalid after its ttl")
    emu("POST", "/_emu/config", {"token_ttl": 3600})

    # ---- callbacks -------------------------------------------------------
    emu("POST", "/_emu/config", {"callback_delay_ms": 50})
    cb_before = int(emu("GET", "/_emu/callbacks/count")[1])
    r, st, _, _ = rtp(tok, payer="46733123451",
                      headers={"X-Callback-Url": CB + "/cb/post?x=1"})
    got = wait_until(lambda: received("/cb/post"), timeout=3)
    c = got[0] if got else {}
    cbody = jbody(c.get("body", "").encode()) or {}
    ok(st == 202 and c.get("method") == "POST" and c.get("path") ==
       "/cb/post?x=1", "callback: POST to the exact X-Callback-Url", c)
    is_((c.get("headers", {}).get("User-Agent"),
         c.get("headers", {}).get("Content-Type")),
        ("LWAC Http Client 1.0", "application/json; charset=utf-8"),
        "callback: User-Agent and Content-Type")
    is_(cbody, {"externalId": "ext-1", "amount": "100", "currency": "EUR",
                "payer": {"partyIdType": "MSISDN", "partyId": "46733123451"},
                "payeeNote": "Thank you", "status": "FAILED",
                "reason": "APPROVAL_REJECTED"},
        "callback: body is the status without payerMessage, no reference")
    wait_until(lambda: int(emu("GET", "/_emu/callbacks/count")[1]) >
               cb_before, timeout=2)
    cbs = emu("GET", "/_emu/callbacks?path=/cb/post")[1]
    ok(len(cbs) == 1 and cbs[0]["status"] == 200 and
       cbs[0]["reference_id"] == r and cbs[0]["method"] == "POST" and
       cbs[0]["headers"].get("User-Agent") == "LWAC Http Client 1.0" and
       cbs[0]["error"] is None, "control: callbacks log records the attempt",
       cbs)
    is_(int(emu("GET", "/_emu/callbacks/count")[1]), cb_before + 1,
        "control: callbacks/count")

    emu("POST", "/_emu/config", {"callback_method": "PUT"})
    rtp(tok, payer="56733123453", headers={"X-Callback-Url": CB + "/cb/put"})
    got = wait_until(lambda: received("/cb/put"), timeout=3)
    c = got[0] if got else {}
    b = jbody(c.get("body", "").encode()) or {}
    ok(c.get("method") == "PUT" and b.get("status") == "SUCCESSFUL" and
       "financialTransactionId" in b and "payerMessage" not in b,
       "callback: PUT when configured; SUCCESSFUL carries "
       "financialTransactionId", c)
    emu("POST", "/_emu/config", {"callback_method": "POST",
                                 "callback_duplicate": True,
                                 "callback_duplicate_delay_ms": 200})
    rtp(tok, payer="46733123450", headers={"X-Callback-Url": CB + "/cb/dup"})
    got = wait_until(lambda: len(received("/cb/dup")) >= 2, timeout=3) and \
        received("/cb/dup")
    ok(got and len(got) == 2 and got[0]["body"] == got[1]["body"] and
       got[1]["time"] - got[0]["time"] >= 0.15,
       "callback: duplicate delivered a second time, same body",
       got)
    emu("POST", "/_emu/config", {"callback_duplicate": False,
                                 "callback_body": {"status": "SUCCESSFUL",
                                                   "lie": True}})
    r, _, _, _ = rtp(tok, payer="46733123450",
                     headers={"X-Callback-Url": CB + "/cb/lie"})
    got = wait_until(lambda: received("/cb/lie"), timeout=3)
    ok(got and jbody(got[0]["body"].encode()) == {"status": "SUCCESSFUL",
                                                  "lie": True} and
       status(tok, r)[1]["status"] == "FAILED",
       "callback: callback_body replaces the body; status still FAILED", got)
    emu("POST", "/_emu/config", {"callback_body": None})

    rp, _, _, _ = rtp(tok, payer="46733123453",
                      headers={"X-Callback-Url": CB + "/cb/pending"})
    r4, _, _, _ = rtp(tok, payer="46733123454",
                      headers={"X-Callback-Url": CB + "/cb/created"})
    rn, _, _, _ = rtp(tok, payer="56733123453")
    time.sleep(0.5)
    is_(len(received("/cb/pending")), 0, "callback: none while PENDING")
    got = wait_until(lambda: received("/cb/pending"), timeout=3)
    ok(got and jbody(got[0]["body"].encode())["status"] == "SUCCESSFUL",
       "callback: 46733123453 calls back after pending_seconds", got)
    is_(len(received("/cb/created")), 0, "callback: never for 46733123454")
    emu("POST", "/_emu/payments/%s/status" % r4, {"status": "SUCCESSFUL"})
    got = wait_until(lambda: received("/cb/created"), timeout=3)
    ok(got and jbody(got[0]["body"].encode())["status"] == "SUCCESSFUL",
       "callback: forcing a final status calls back", got)
    n_all = len(RECEIVED)
    time.sleep(0.2)
    is_(len(RECEIVED), n_all, "callback: none without X-Callback-Url")
    rtp(tok, payer="46733123450", headers={
        "X-Callback-Url": "http://127.0.0.1:1/cb/dead"})
    dead = wait_until(lambda: emu("GET", "/_emu/callbacks?path=/cb/dead")[1],
                      timeout=4)
    ok(dead and dead[0]["status"] is None and dead[0]["error"],
       "callback: a failed delivery is recorded with its error", dead)

    # ---- request log -----------------------------------------------------
    emu("POST", "/_emu/reset")
    RECEIVED.clear()
    is_(count("/"), 0, "control: reset empties the request log")
    tok = token()
    ref, _, _, _ = rtp(tok)
    status(tok, ref)
    req("GET", "/collection/v1_0/requesttopay/%s?q=1" % ref, mtn_headers(tok))
    is_(count("/collection/v1_0/requesttopay"), 3,
        "control: count by path prefix")
    is_(count("/collection/v1_0/requesttopay", "POST"), 1,
        "control: count by path and method")
    st, h, data = req("GET", "/_emu/count?path=/collection/token/")
    is_((st, data, h.get("content-type", "").split(";")[0]),
        (200, b"1", "text/plain"), "control: count is a plain number")
    rows = emu("GET", "/_emu/requests?path=/collection/v1_0/requesttopay"
               "&method=POST")[1]
    ok(len(rows) == 1 and rows[0]["method"] == "POST" and
       rows[0]["headers"].get("X-Reference-Id") == ref and
       rows[0]["headers"].get("Ocp-Apim-Subscription-Key") == SUB_KEY and
       json.loads(rows[0]["body"])["externalId"] == "ext-1" and
       isinstance(rows[0]["seq"], int),
       "control: requests gives method, original-case headers, body", rows)
    rows = emu("GET", "/_emu/requests")[1]
    ok([r["seq"] for r in rows] == sorted(r["seq"] for r in rows) and
       rows[-1]["path"].endswith("?q=1") and
       not any(r["path"].startswith("/_emu/") for r in rows),
       "control: requests in order, with query, without control calls", rows)

    # ---- sink ------------------------------------------------------------
    st, h, data = req("POST", "/_emu/sink/notify", {"X-Test": "1"},
                      {"status": "successful"})
    is_((st, jbody(data)), (200, {"ok": True}), "sink: POST answered 200")
    st, h, data = req("PATCH", "/_emu/sink/notify")
    is_(st, 200, "sink: any method")
    is_(count("/_emu/sink/notify"), 2, "sink: deliveries are counted")

    # ---- faults ----------------------------------------------------------
    emu("POST", "/_emu/faults", {"method": "POST",
                                 "path": "/collection/v1_0/requesttopay",
                                 "status": 503, "body": {"x": 1},
                                 "headers": {"Retry-After": "1"},
                                 "times": 1})
    r, st, h, data = rtp(tok)
    is_((st, jbody(data), h.get("retry-after")), (503, {"x": 1}, "1"),
        "fault: forced status, body, headers")
    is_(status(tok, r)[0], 404, "fault: forced status creates no payment")
    _, st, _, _ = rtp(tok)
    is_(st, 202, "fault: times 1 applies once only")
    is_(count("/collection/v1_0/requesttopay", "POST"), 3,
        "fault: faulted requests are logged too")
    emu("POST", "/_emu/faults", {"path": "/collection/v1_0/requesttopay",
                                 "method": "POST", "delay_ms": 700,
                                 "times": 1})
    t0 = time.monotonic()
    r, st, _, _ = rtp(tok)
    el = time.monotonic() - t0
    ok(st == 202 and el >= 0.65, "fault: delay then normal processing",
       (st, el))
    is_(status(tok, r)[0], 200, "fault: slow MTN still created the payment")
    emu("POST", "/_emu/faults", {"path": "/collection/v1_0/requesttopay",
                                 "method": "POST", "delay_ms": 1500,
                                 "times": 1})
    r = str(uuid.uuid4())
    c = http.client.HTTPConnection(HOST, PORT, timeout=0.4)
    try:
        req("POST", "/collection/v1_0/requesttopay", mtn_headers(tok, {
            "X-Reference-Id": r}), rtp_body(), conn=c)
        timed_out = False
    except (socket.timeout, TimeoutError):
        timed_out = True
    finally:
        c.close()
    st_early = status(tok, r)[0]
    st_late = wait_until(lambda: status(tok, r)[0] == 200, timeout=3)
    ok(timed_out and st_early == 404 and st_late,
       "fault: a client that timed out finds the payment later",
       (timed_out, st_early, st_late))
    emu("POST", "/_emu/faults", {"path": "/collection/v1_0/account/balance",
                                 "drop": True, "times": 2})
    for i in range(2):
        try:
            req("GET", "/collection/v1_0/account/balance", mtn_headers(tok))
            dropped = False
        except (http.client.RemoteDisconnected, ConnectionError):
            dropped = True
        ok(dropped, "fault: drop closes without an answer (%d)" % (i + 1))
    is_(req("GET", "/collection/v1_0/account/balance", mtn_headers(tok))[0],
        200, "fault: after times runs out, normal answers")
    emu("POST", "/_emu/faults", {"path": "/collection/v1_0/account",
                                 "reset": True, "times": 1})
    try:
        req("GET", "/collection/v1_0/account/balance", mtn_headers(tok))
        reset = False
    except (http.client.RemoteDisconnected, ConnectionError):
        reset = True
    ok(reset, "fault: reset aborts the connection")
    emu("POST", "/_emu/faults", {"path": "/_emu/sink/", "status": 500})
    is_(req("POST", "/_emu/sink/notify", body={})[0], 500,
        "fault: applies to the sink")
    is_(req("POST", "/_emu/sink/notify", body={})[0], 500,
        "fault: without times applies forever")
    is_(len(emu("GET", "/_emu/faults")[1]), 1, "control: faults listed")
    emu("DELETE", "/_emu/faults")
    is_(req("POST", "/_emu/sink/notify", body={})[0], 200,
        "control: DELETE /_emu/faults clears them")
    is_(emu("POST", "/_emu/faults", {"stauts": 500})[0], 400,
        "control: unknown fault key -> 400")

    # ---- config ----------------------------------------------------------
    st, cfg = emu("POST", "/_emu/config", {"pending_seconds": 5,
                                           "callback_method": "put"})
    is_((st, cfg["pending_seconds"], cfg["callback_method"]), (200, 5, "PUT"),
        "control: config merge")
    is_(emu("POST", "/_emu/config", {"pending_secs": 5})[0], 400,
        "control: unknown config key -> 400")
    is_(emu("POST", "/_emu/config", {"reason_format": "xml"})[0], 400,
        "control: bad config value -> 400")
    emu("POST", "/_emu/reset")
    cfg = emu("GET", "/_emu/config")[1]
    is_((cfg["pending_seconds"], cfg["callback_method"], cfg["token_ttl"],
         cfg["callback_delay_ms"], cfg["reason_format"]),
        (30, "POST", 3600, 100, "string"), "control: reset restores defaults")
    is_(status(tok, ref)[0], 401, "control: reset forgets tokens")
    tok = token()
    is_(status(tok, ref)[0], 404, "control: reset forgets payments")


def run_provisioning():
    uid = str(uuid.uuid4())
    h = {"Ocp-Apim-Subscription-Key": SUB_KEY, "X-Reference-Id": uid}
    st, hd, data = req("POST", "/v1_0/apiuser", h,
                       {"providerCallbackHost": "shop.example.com"})
    is_((st, data), (201, b""), "provisioning: apiuser 201 empty")
    st, hd, data = req("POST", "/v1_0/apiuser", h,
                       {"providerCallbackHost": "shop.example.com"})
    is_((st, jbody(data)), (409, {
        "message": "Duplicated reference id. Creation of resource failed.",
        "code": "RESOURCE_ALREADY_EXIST"}), "provisioning: duplicate -> 409")
    st, hd, data = req("POST", "/v1_0/apiuser", dict(
        h, **{"X-Reference-Id": "not-a-uuid"}), {"providerCallbackHost": "a"})
    is_(st, 400, "provisioning: non-v4 reference -> 400")
    st, hd, data = req("POST", "/v1_0/apiuser", dict(
        h, **{"Ocp-Apim-Subscription-Key": "x", "X-Reference-Id":
              str(uuid.uuid4())}), {"providerCallbackHost": "a"})
    is_((st, (jbody(data) or {}).get("statusCode")), (401, 401),
        "provisioning: bad subscription key -> 401 APIM")
    st, hd, data = req("GET", "/v1_0/apiuser/" + uid,
                       {"Ocp-Apim-Subscription-Key": SUB_KEY})
    is_((st, jbody(data)), (200, {"providerCallbackHost": "shop.example.com",
                                  "targetEnvironment": "sandbox"}),
        "provisioning: GET apiuser")
    out = raw(("POST /v1_0/apiuser/%s/apikey HTTP/1.1\r\nHost: x\r\n"
               "Ocp-Apim-Subscription-Key: %s\r\nConnection: close\r\n\r\n"
               % (uid, SUB_KEY)).encode())
    ok(out.startswith(b"HTTP/1.1 411 ") and b"<HTML>" in out,
       "provisioning: apikey without Content-Length -> 411 HTML", out[:200])
    st, hd, data = req("POST", "/v1_0/apiuser/%s/apikey" % uuid.uuid4(),
                       {"Ocp-Apim-Subscription-Key": SUB_KEY})
    is_((st, jbody(data)), (404, {"message": "Requested resource was not "
                                             "found.",
                                  "code": "RESOURCE_NOT_FOUND"}),
        "provisioning: apikey for unknown user -> 404")
    st, hd, data = req("POST", "/v1_0/apiuser/%s/apikey" % uid,
                       {"Ocp-Apim-Subscription-Key": SUB_KEY})
    key1 = (jbody(data) or {}).get("apiKey", "")
    ok(st == 201 and re.fullmatch(r"[0-9a-f]{32}", key1) and
       hd.get("content-type") == "application/json;charset=utf-8" and
       len(data) == 45, "provisioning: apikey 201 {apiKey: 32 hex}",
       (st, hd, data))
    st, hd, data = token_call({"Authorization": basic(uid, key1)})
    is_(st, 200, "provisioning: token with the new credentials")
    ptok = jbody(data)["access_token"]
    _, st, _, _ = rtp(ptok, headers={
        "X-Callback-Url": "https://shop.example.com/cb"})
    is_(st, 202, "provisioning: new user's callback host accepted")
    _, st, _, _ = rtp(ptok, headers={"X-Callback-Url": "http://127.0.0.1/cb"})
    is_(st, 500, "provisioning: another host refused for the new user")
    _, st, _, _ = rtp(ptok, headers={
        "X-Callback-Url": "https://SHOP.example.COM:8443/x"})
    is_(st, 202, "callback host compared by hostname, case-insensitively")
    st, hd, data = req("POST", "/v1_0/apiuser/%s/apikey" % uid,
                       {"Ocp-Apim-Subscription-Key": SUB_KEY})
    key2 = jbody(data)["apiKey"]
    is_(token_call({"Authorization": basic(uid, key1)})[0], 500,
        "provisioning: a new key replaces the old one")
    is_(token_call({"Authorization": basic(uid, key2)})[0], 200,
        "provisioning: the new key works")
    emu("POST", "/_emu/reset")
    is_(req("GET", "/v1_0/apiuser/" + uid,
            {"Ocp-Apim-Subscription-Key": SUB_KEY})[0], 404,
        "control: reset forgets provisioned users")
    is_(token_call()[0], 200, "control: reset keeps the preseeded account")



# -- Disbursement ------------------------------------------------------------

def dheaders(tok, extra=None):
    h = mtn_headers(tok, {"Ocp-Apim-Subscription-Key": D_SUB})
    h.update(extra or {})
    return {k: v for k, v in h.items() if v is not None}


def dtoken(user=D_USER, key=D_KEY):
    st, h, data = token_call({"Authorization": basic(user, key),
                              "Ocp-Apim-Subscription-Key": D_SUB},
                             product="disbursement")
    return (jbody(data) or {}).get("access_token")


def dpost(tok, what, body, ref=None, headers=None, version="v1_0"):
    ref = ref or str(uuid.uuid4())
    h = dheaders(tok, {"X-Reference-Id": ref,
                       "Content-Type": "application/json"})
    h.update(headers or {})
    h = {k: v for k, v in h.items() if v is not None}
    st, hd, data = req("POST", "/disbursement/%s/%s" % (version, what), h,
                       json.dumps(body))
    return ref, st, jbody(data)


def transfer_body(payee="56733123453", amount="100"):
    return {"amount": amount, "currency": "EUR", "externalId": "payout-1",
            "payee": {"partyIdType": "MSISDN", "partyId": payee},
            "payerMessage": "Payout 42", "payeeNote": "Host payout"}


def refund_body(ref, amount="30"):
    return {"amount": amount, "currency": "EUR", "externalId": "refund-1",
            "payerMessage": "Refund 42", "payeeNote": "Booking cancelled",
            "referenceIdToRefund": ref}


def dstatus(tok, what, ref):
    st, h, data = req("GET", "/disbursement/v1_0/%s/%s" % (what, ref),
                      dheaders(tok))
    return st, jbody(data)


def balance(tok, product):
    h = mtn_headers(tok) if product == "collection" else dheaders(tok)
    st, hd, data = req("GET", "/%s/v1_0/account/balance" % product, h)
    return st, jbody(data)


def run_disbursement(CB):
    emu("POST", "/_emu/reset")
    RECEIVED.clear()

    # ---- own subscription key and API users -----------------------------
    dtok = dtoken()
    ok(dtok, "disbursement: preseeded Disbursement user gets a token")
    st, h, data = token_call({"Authorization": basic(D_USER, D_KEY),
                              "Ocp-Apim-Subscription-Key": D_SUB})
    is_((st, (jbody(data) or {}).get("statusCode")), (401, 401),
        "disbursement: its key on /collection/token/ -> 401 APIM")
    st, h, data = token_call({"Authorization": basic(D_USER, D_KEY)})
    is_((st, data), (500, b'{"error":"login_failed"}'),
        "disbursement: its user on /collection/token/ -> login_failed")
    st, h, data = token_call({"Ocp-Apim-Subscription-Key": D_SUB},
                             product="disbursement")
    is_((st, data), (500, b'{"error":"login_failed"}'),
        "disbursement: a Collections user -> login_failed")
    uid = str(uuid.uuid4())
    st, _, _ = req("POST", "/v1_0/apiuser", {
        "Ocp-Apim-Subscription-Key": D_SUB, "X-Reference-Id": uid},
        {"providerCallbackHost": "127.0.0.1"})
    st2, _, data = req("POST", "/v1_0/apiuser/%s/apikey" % uid,
                       {"Ocp-Apim-Subscription-Key": D_SUB})
    key = (jbody(data) or {}).get("apiKey")
    is_((st, st2, bool(key)), (201, 201, True),
        "disbursement: provisioning with the Disbursement key")
    ok(dtoken(uid, key), "disbursement: the new user gets a token")
    is_(req("GET", "/v1_0/apiuser/" + uid,
            {"Ocp-Apim-Subscription-Key": SUB_KEY})[0], 404,
        "disbursement: its user is unknown to the Collections key")
    is_(token_call({"Authorization": basic(uid, key)})[0], 500,
        "disbursement: its user has no Collections token")
    tok = token()

    # ---- transfers -------------------------------------------------------
    emu("POST", "/_emu/config", {"pending_seconds": 1})
    ref, st, b = dpost(dtok, "transfer", transfer_body())
    is_((st, b), (202, None), "transfer: 202, empty body")
    _, st, b = dpost(dtok, "transfer", transfer_body(), ref=ref)
    is_((st, b), (409, {
        "message": "Duplicated reference id. Creation of resource failed.",
        "code": "RESOURCE_ALREADY_EXIST"}), "transfer: reused id -> 409")
    _, st, b = dpost(tok, "transfer", transfer_body())
    is_(st, 401, "transfer: Collections token -> 401")
    _, st, b = dpost(dtok, "transfer", transfer_body(),
                     headers={"Ocp-Apim-Subscription-Key": SUB_KEY})
    is_((st, (b or {}).get("statusCode")), (401, 401),
        "transfer: Collections key -> 401 APIM")
    b = transfer_body()
    del b["payee"]
    is_(dpost(dtok, "transfer", b)[1], 400, "transfer: no payee -> 400")
    is_(dpost(dtok, "transfer", dict(transfer_body(), currency="XAF"))[1],
        500, "transfer: non-EUR -> 500 INVALID_CURRENCY")
    st, b = dstatus(dtok, "transfer", ref)
    ok(st == 200 and b["status"] == "SUCCESSFUL" and
       b["payee"] == {"partyIdType": "MSISDN", "partyId": "56733123453"} and
       re.fullmatch(r"\d{10}", b.get("financialTransactionId", "")) and
       "payer" not in b, "transfer: status SUCCESSFUL with payee", b)
    is_(dstatus(dtok, "transfer", str(uuid.uuid4()))[0], 404,
        "transfer: unknown reference -> 404")
    is_(req("GET", "/collection/v1_0/requesttopay/" + ref,
            mtn_headers(tok))[0], 404,
        "transfer: not a request to pay")
    for num, reason in (("46733123450", "INTERNAL_PROCESSING_ERROR"),
                        ("46733123451", "APPROVAL_REJECTED"),
                        ("46733123452", "EXPIRED")):
        r, _, _ = dpost(dtok, "transfer", transfer_body(num))
        b = dstatus(dtok, "transfer", r)[1]
        is_((b["status"], b.get("reason")), ("FAILED", reason),
            "transfer: %s FAILED %s" % (num, reason))
    r453, _, _ = dpost(dtok, "transfer", transfer_body("46733123453"))
    r454, _, _ = dpost(dtok, "transfer", transfer_body("46733123454"))
    is_((dstatus(dtok, "transfer", r453)[1]["status"],
         dstatus(dtok, "transfer", r454)[1]["status"]),
        ("PENDING", "PENDING"), "transfer: 453 and 454 PENDING first")
    ok(wait_until(lambda: dstatus(dtok, "transfer", r454)[1]["status"] ==
                  "SUCCESSFUL", timeout=5),
       "transfer: 454 SUCCESSFUL after pending_seconds")
    is_(dstatus(dtok, "transfer", r453)[1]["status"], "PENDING",
        "transfer: 453 stays PENDING")
    st, b = emu("POST", "/_emu/transfers/%s/status" % r453,
                {"status": "FAILED", "reason": "PAYEE_NOT_FOUND"})
    is_((st, dstatus(dtok, "transfer", r453)[1].get("reason")),
        (200, "PAYEE_NOT_FOUND"), "control: forcing a transfer status")
    ok(len(emu("GET", "/_emu/transfers")[1]) == 6,
       "control: /_emu/transfers lists them")

    # ---- transfer callback -----------------------------------------------
    r, st, _ = dpost(dtok, "transfer", transfer_body("46733123451"),
                     headers={"X-Callback-Url": CB + "/cb/payout?x=1"})
    got = wait_until(lambda: received("/cb/payout"), timeout=5)
    cb = jbody(got[0]["body"].encode()) if got else {}
    ok(got and got[0]["method"] == "POST" and cb["status"] == "FAILED" and
       cb["reason"] == "APPROVAL_REJECTED" and "payerMessage" not in cb and
       r not in got[0]["body"] and cb["payee"]["partyId"] == "46733123451",
       "transfer: callback POST without reference id or payerMessage", got)
    _, st, _ = dpost(dtok, "transfer", transfer_body(),
                     headers={"X-Callback-Url": "https://evil.example/cb"})
    is_(st, 500, "transfer: foreign callback host -> 500")

    # ---- refunds -----------------------------------------------------------
    pay, _, _, _ = rtp(tok, body=rtp_body(amount="100"))
    r1, st, _ = dpost(dtok, "refund", refund_body(pay, "30"))
    is_(st, 202, "refund: v1_0 202")
    st, b = dstatus(dtok, "refund", r1)
    ok(st == 200 and b["status"] == "SUCCESSFUL" and b["amount"] == "30" and
       b["payee"] == {"partyIdType": "MSISDN", "partyId": "56733123453"} and
       "financialTransactionId" in b,
       "refund: SUCCESSFUL, payee is the payer", b)
    r2, st, _ = dpost(dtok, "refund", refund_body(pay, "70"),
                      version="v2_0")
    is_((st, dstatus(dtok, "refund", r2)[1]["status"]), (202, "SUCCESSFUL"),
        "refund: v2_0, the rest of the payment")
    r3, st, _ = dpost(dtok, "refund", refund_body(pay, "1"))
    b = dstatus(dtok, "refund", r3)[1]
    is_((st, b["status"], b.get("reason")), (202, "FAILED", "NOT_ALLOWED"),
        "refund: more than the payment -> FAILED NOT_ALLOWED")
    _, st, _ = dpost(dtok, "refund", refund_body(pay, "1"), ref=r1)
    is_(st, 409, "refund: reused id -> 409")
    r4, st, _ = dpost(dtok, "refund", refund_body(str(uuid.uuid4())))
    b = dstatus(dtok, "refund", r4)[1]
    is_((st, b["status"], b.get("reason"), "payee" in b),
        (202, "FAILED", "TRANSACTION_NOT_FOUND", False),
        "refund: unknown payment -> FAILED TRANSACTION_NOT_FOUND")
    failed, _, _, _ = rtp(tok, payer="46733123450")
    r5, _, _ = dpost(dtok, "refund", refund_body(failed))
    is_(dstatus(dtok, "refund", r5)[1].get("reason"), "NOT_ALLOWED",
        "refund: failed payment -> FAILED NOT_ALLOWED")
    b = refund_body(pay)
    del b["referenceIdToRefund"]
    is_(dpost(dtok, "refund", b)[1], 400,
        "refund: no referenceIdToRefund -> 400")
    emu("POST", "/_emu/config", {"refund_refusal": "sync"})
    _, st, b = dpost(dtok, "refund", refund_body(str(uuid.uuid4())))
    is_((st, (b or {}).get("code")), (404, "RESOURCE_NOT_FOUND"),
        "refund: sync refusal of an unknown payment -> 404")
    _, st, b = dpost(dtok, "refund", refund_body(failed))
    is_((st, (b or {}).get("code")), (500, "NOT_ALLOWED"),
        "refund: sync refusal of a failed payment -> 500 NOT_ALLOWED")
    emu("POST", "/_emu/config", {"refund_refusal": "failed"})
    rows = emu("GET", "/_emu/refunds")[1]
    ok(len(rows) == 5 and rows[0]["referenceIdToRefund"] == pay,
       "control: /_emu/refunds lists them with referenceIdToRefund", rows)

    # ---- balances --------------------------------------------------------
    is_(balance(tok, "collection"), (200, {"availableBalance": "1100",
                                           "currency": "EUR"}),
        "balance: collection grew by the successful payment")
    # transfers 100 + 100 (454), refunds 30 + 70
    is_(balance(dtok, "disbursement"), (200, {"availableBalance": "999700",
                                              "currency": "EUR"}),
        "balance: disbursement shrank by transfers and refunds")
    is_(balance(tok, "disbursement")[0], 401,
        "balance: disbursement needs a Disbursement token")
    is_(emu("GET", "/_emu/balances")[1], {"collection": "1100",
                                          "disbursement": "999700",
                                          "currency": "EUR"},
        "control: /_emu/balances")
    r, _, _ = dpost(dtok, "transfer", transfer_body(amount="999700.01"))
    is_(dstatus(dtok, "transfer", r)[1].get("reason"), "NOT_ENOUGH_FUNDS",
        "transfer: more than the balance -> FAILED NOT_ENOUGH_FUNDS")
    emu("POST", "/_emu/config", {"disbursement_balance": "50.5"})
    is_(balance(dtok, "disbursement")[1]["availableBalance"], "-249.5",
        "control: disbursement_balance sets the start")

    # ---- account holders ---------------------------------------------------
    for product, t, hd in (("collection", tok, mtn_headers),
                           ("disbursement", dtok, dheaders)):
        got = []
        for n in ("46733123450", "46733123455"):
            st, _, data = req("GET", "/%s/v1_0/accountholder/msisdn/%s/active"
                              % (product, n), hd(t))
            got.append((st, jbody(data)))
        is_(got, [(200, {"result": True}), (200, {"result": False})],
            "accountholder (%s): 46733123455 inactive" % product)

    # ---- control: per product ----------------------------------------------
    ok(count("/disbursement/v1_0/transfer", "POST") > 0 and
       all(r["product"] == "disbursement" for r in
           emu("GET", "/_emu/requests?product=disbursement")[1]) and
       int(emu("GET", "/_emu/count?path=/&product=disbursement")[1]) ==
       count("/disbursement/") + 2,
       "control: requests filtered by product")
    rows = emu("GET", "/_emu/requests?path=/v1_0/apiuser&product="
               "disbursement")[1]
    is_(len(rows), 2, "control: provisioning counted under its key's product")
    emu("POST", "/_emu/faults", {"path": "/disbursement/v1_0/transfer",
                                 "method": "POST", "status": 503,
                                 "times": 1})
    r, st, _ = dpost(dtok, "transfer", transfer_body())
    is_((st, dstatus(dtok, "transfer", r)[0]), (503, 404),
        "fault: on a transfer, nothing created")
    emu("POST", "/_emu/expire-tokens?product=disbursement")
    is_((dstatus(dtok, "transfer", r)[0], balance(tok, "collection")[0]),
        (401, 200), "control: expire-tokens?product= expires only those")


def run_cli_options():
    global PORT
    saved = PORT
    uid, key = str(uuid.uuid4()), "k" * 32
    p = subprocess.Popen([sys.executable, EMU, "--listen", "127.0.0.1:0",
                          "--api-user", uid, "--api-key", key,
                          "--subscription-key", "sk-one",
                          "--subscription-key", "sk-two",
                          "--callback-host", "cb.example.org",
                          "--token-ttl", "77", "--pending-seconds", "0.5",
                          "--verbose"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True)
    try:
        line = p.stdout.readline()
        PORT = int(line.rsplit(":", 1)[1])
        h = {"Authorization": basic(uid, key),
             "Ocp-Apim-Subscription-Key": "sk-two"}
        st, hd, data = req("POST", "/collection/token/", h)
        is_((st, (jbody(data) or {}).get("expires_in")), (200, 77),
            "cli: --api-user/--api-key/--subscription-key/--token-ttl")
        tok = jbody(data)["access_token"]
        h["Ocp-Apim-Subscription-Key"] = SUB_KEY
        is_(req("POST", "/collection/token/", h)[0], 401,
            "cli: --subscription-key replaces the default key")
        hh = {"Authorization": "Bearer " + tok, "X-Target-Environment":
              "sandbox", "Ocp-Apim-Subscription-Key": "sk-one",
              "X-Reference-Id": str(uuid.uuid4()),
              "X-Callback-Url": "https://cb.example.org/x"}
        st, _, _ = req("POST", "/collection/v1_0/requesttopay", hh,
                       rtp_body("46733123453"))
        is_(st, 202, "cli: --callback-host sets providerCallbackHost")
        cfg = emu("GET", "/_emu/config")[1]
        is_(cfg["pending_seconds"], 0.5, "cli: --pending-seconds")
    finally:
        PORT = saved
        p.terminate()
        is_(p.wait(timeout=5), 0, "cli: second emulator exits 0 on SIGTERM")


def run_robustness():
    c = http.client.HTTPConnection(HOST, PORT, timeout=5)
    results = [req("GET", "/_emu/count?path=/", conn=c)[0] for _ in range(3)]
    tok = token()
    results.append(rtp(tok)[1])
    st, h, data = req("POST", "/collection/token/", {
        "Authorization": basic(), "Ocp-Apim-Subscription-Key": SUB_KEY},
        conn=c)
    results.append(st)
    c.close()
    is_(results, [200, 200, 200, 202, 200],
        "keep-alive: several requests on one connection")
    out = raw(b"GARBAGE\r\n\r\n")
    ok(out.startswith(b"HTTP/1.") and b" 400 " in out.split(b"\r\n")[0],
       "garbage request line -> 400", out[:100])
    out = raw(b"POST /collection/v1_0/requesttopay HTTP/1.1\r\nHost: x\r\n"
              b"Content-Length: abc\r\n\r\n")
    ok(b" 400 " in out.split(b"\r\n")[0], "bad Content-Length -> 400",
       out[:100])
    out = raw(b"POST /_emu/sink/x HTTP/1.1\r\nHost: x\r\n"
              b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
              b"3\r\nabc\r\n0\r\n\r\n")
    ok(out.startswith(b"HTTP/1.1 200"), "chunked body decoded (sink)",
       out[:100])
    s = socket.create_connection((HOST, PORT))
    s.sendall(b"POST /_emu/sink/x HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n"
              b"\r\nabc")
    s.close()
    st, h, data = req("POST", "/_emu/sink/x", body=b"\xff\xfe\x00")
    is_(st, 200, "survives a truncated body and binary input")
    st, h, data = req("POST", "/_emu/config", body="[1,2")
    is_(st, 400, "control: bad JSON -> 400")
    rows = emu("GET", "/_emu/requests?path=/_emu/sink/x")[1]
    ok(any(r["body"] == "abc" for r in rows), "chunked body logged", rows)


if __name__ == "__main__":
    sys.exit(main())
