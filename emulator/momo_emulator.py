#!/usr/bin/env python3
"""MTN MoMo sandbox emulator for ngx_http_momo_module.

A local stand-in for https://sandbox.momodeveloper.mtn.com, faithful to
/work/shared/momo-api.md: sandbox provisioning, the token endpoint, RequestToPay,
status with the sandbox test numbers, callbacks, balance and account holder,
and the Disbursement product with its own subscription key and API users
(transfer, refund, balance, account holder; see "the Disbursement product"
below).  Account holder 46733123455, and any id starting with 0, is
inactive in both products.  Plus a control API under /_emu/ for tests
(request log, fault injection, token expiry, configuration, forced payment
states, an application sink).

Python 3 standard library only.  Run:

    python3 emulator/momo_emulator.py --listen 127.0.0.1:8099

See emulator/README.md for the control API.
"""

import argparse
import base64
import binascii
import datetime
import heapq
import http.client
import json
import math
import queue
import re
import secrets
import signal
import socket
import ssl
import struct
import sys
import threading
import time
import traceback
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from decimal import Decimal
from urllib.parse import parse_qs, unquote, urlsplit


DEFAULT_API_USER = "6f1c3a52-8d4e-4b7a-9c21-3e5f7a9b0d14"
DEFAULT_API_KEY = "2f9d8c7b6a5e4d3c2b1a0f9e8d7c6b5a"
DEFAULT_SUBSCRIPTION_KEY = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
DEFAULT_CALLBACK_HOST = "127.0.0.1"

MAX_BODY = 8 * 1024 * 1024

UUID4_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-4[0-9a-fA-F]{3}-"
                      r"[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}$")
AMOUNT_RE = re.compile(r"^[0-9]+(\.[0-9]+)?$")
DIGITS_RE = re.compile(r"^[0-9]{1,32}$")
FORBIDDEN_TEXT_CHARS = set("'&<>\"")

JSON_UTF8 = "application/json;charset=utf-8"
CALLBACK_CONTENT_TYPE = "application/json; charset=utf-8"
CALLBACK_USER_AGENT = "LWAC Http Client 1.0"

# Verbatim bodies from momo-api.md.
APIM_401_BODY = (b'{"statusCode": 401, "message": "Access denied due to invalid '
                 b'subscription key. Make sure to provide a valid key for an '
                 b'active subscription." }')
APIM_404_BODY = b'{"statusCode": 404, "message": "Resource not found" }'
LOGIN_FAILED_BODY = b'{"error":"login_failed"}'
UNAUTHORIZED_BODY = {"message": "Access token is invalid or expired",
                     "code": "UNAUTHORIZED"}
NOT_FOUND_BODY = {"message": "Requested resource was not found.",
                  "code": "RESOURCE_NOT_FOUND"}
DUPLICATE_BODY = {"message": "Duplicated reference id. Creation of resource "
                             "failed.",
                  "code": "RESOURCE_ALREADY_EXIST"}
INVALID_CURRENCY_BODY = {"message": "Currency not supported.",
                         "code": "INVALID_CURRENCY"}
INVALID_CALLBACK_BODY = {"message": "Callback URL does not match the "
                                    "configured value.",
                         "code": "INVALID_CALLBACK_URL_HOST"}
TARGET_ENV_BODY = {"message": "Target environment not allowed",
                   "code": "NOT_ALLOWED_TARGET_ENVIRONMENT"}
INTERNAL_ERROR_BODY = {"message": "Internal server error",
                       "code": "INTERNAL_PROCESSING_ERROR"}

# HTTP.sys "Length Required" page, as a front end of MTN's gateway sends it.
LENGTH_REQUIRED_HTML = (
    b'<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01//EN""http://www.w3.org/TR/'
    b'html4/strict.dtd">\r\n<HTML><HEAD><TITLE>Length Required</TITLE>\r\n'
    b'<META HTTP-EQUIV="Content-Type" Content="text/html; charset=us-ascii">'
    b'</HEAD>\r\n<BODY><h2>Length Required</h2>\r\n<hr><p>HTTP Error 411. The '
    b'request must be chunked or have a content length.</p>\r\n</BODY></HTML>'
    b'\r\n')

REASON_MESSAGES = {
    "INTERNAL_PROCESSING_ERROR": "An internal error occurred while processing.",
    "APPROVAL_REJECTED": "The payer rejected the approval.",
    "EXPIRED": "The request expired before the payer approved it.",
    "NOT_ENOUGH_FUNDS": "The payer does not have enough funds.",
    "PAYER_NOT_FOUND": "The payer was not found.",
}

# Sandbox test numbers (momo-api.md 6.2/6.3): number -> (rule, reason).
# LATER: PENDING for pending_seconds, then SUCCESSFUL; PENDING/CREATED:
# that status until forced; any other number: SUCCESSFUL.
COLLECTION_NUMBERS = {
    "46733123450": ("FAILED", "INTERNAL_PROCESSING_ERROR"),
    "46733123451": ("FAILED", "APPROVAL_REJECTED"),
    "46733123452": ("FAILED", "EXPIRED"),
    "46733123453": ("LATER", None),
    "46733123454": ("CREATED", None),
}
NON_FINAL = ("PENDING", "CREATED")

CONFIG_DEFAULTS = {
    "pending_seconds": 30,
    "token_ttl": 3600,
    "final_delay_ms": 0,
    "reason_format": "string",
    "callback_method": "POST",
    "callback_delay_ms": 100,
    "callback_duplicate": False,
    "callback_duplicate_delay_ms": 300,
    "callback_body": None,
    "callback_timeout_ms": 2000,
    "currency": "EUR",
    "target_environment": "sandbox",
    "drop_callbacks": False,
}

VERBOSE = False


def log(msg):
    if VERBOSE:
        sys.stderr.write("momo-emulator: %s\n" % msg)
        sys.stderr.flush()


def jdump(obj):
    return json.dumps(obj, separators=(",", ":")).encode("utf-8")


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) \
        and math.isfinite(v)


def callback_path(url):
    try:
        u = urlsplit(url)
        return (u.path or "/") + ("?" + u.query if u.query else "")
    except ValueError:
        return url


class BadInput(Exception):
    pass


def check_config(update):
    """Validate a /_emu/config merge; return the normalised dict."""
    if not isinstance(update, dict):
        raise BadInput("config must be a JSON object")
    out = {}
    for k, v in update.items():
        if k not in CONFIG_DEFAULTS:
            raise BadInput("unknown config key %r" % k)
        if k in DISB_CONFIG_DEFAULTS:
            v = check_disb_config(k, v)
        if k in ("pending_seconds", "final_delay_ms", "callback_delay_ms",
                 "callback_duplicate_delay_ms"):
            if not is_number(v) or v < 0:
                raise BadInput("%s must be a number >= 0" % k)
        elif k == "token_ttl":
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise BadInput("token_ttl must be an integer >= 0 (seconds)")
        elif k == "callback_timeout_ms":
            if not is_number(v) or v <= 0:
                raise BadInput("callback_timeout_ms must be a number > 0")
        elif k == "reason_format":
            if v not in ("string", "object"):
                raise BadInput('reason_format must be "string" or "object"')
        elif k == "callback_method":
            if not isinstance(v, str) or v.upper() not in ("POST", "PUT"):
                raise BadInput('callback_method must be "POST" or "PUT"')
            v = v.upper()
        elif k in ("callback_duplicate", "drop_callbacks"):
            if not isinstance(v, bool):
                raise BadInput("callback_duplicate must be true or false")
        elif k == "callback_body":
            if v is not None and not isinstance(v, (dict, list, str)):
                raise BadInput("callback_body must be an object, a string "
                               "or null")
        elif k in ("currency", "target_environment"):
            if not isinstance(v, str) or not v:
                raise BadInput("%s must be a non-empty string" % k)
        out[k] = v
    return out


# -- hostile MTN answers: oversized, slow-drip, forged tokens -------------

HOSTILE_KEYS = ("hostile", "drip_ms", "size", "chunked")
HOSTILE_MODES = ("big", "drip", "token_crlf", "token_huge_expiry",
                 "token_long")
HUGE_EXPIRES_IN = 2 ** 63 - 1       # overflows a time_t sum


def check_hostile(f, out):
    """The hostile part of a fault: {"hostile": MODE, "drip_ms", "size"}.

    big                 `size` bytes (default 10 MB) of JSON with `status`,
                        in 64 KB chunks when `chunked` is true
    drip                a valid answer, one byte every `drip_ms` (500)
    token_crlf          a token answer whose access_token has CR/LF and a
                        forged header after it
    token_huge_expiry   a real token with expires_in 2^63-1
    token_long          a token answer with a 5000-byte access_token
    """
    h = f.get("hostile")
    if h is None:
        return
    if h not in HOSTILE_MODES:
        raise BadInput("hostile must be one of " + ", ".join(HOSTILE_MODES))
    out["hostile"] = h
    out["drip_ms"] = 500
    out["size"] = 10 * 1024 * 1024
    out["chunked"] = f.get("chunked") is True
    for k in ("drip_ms", "size"):
        if f.get(k) is not None:
            if not isinstance(f[k], int) or isinstance(f[k], bool) or f[k] < 1:
                raise BadInput("%s must be an integer >= 1" % k)
            out[k] = f[k]


def hostile_token(handler):
    """A real token for the Basic credentials, as h_token would issue."""
    auth = (handler.headers.get("Authorization") or "").split(None, 1)
    try:
        uid = base64.b64decode(auth[1]).decode("utf-8").split(":", 1)[0]
    except (IndexError, ValueError, binascii.Error, UnicodeDecodeError):
        uid = DEFAULT_API_USER
    token, ttl = STATE.issue_token(uid, "collection")
    return token


def hostile_body(handler, fault):
    mode = fault["hostile"]
    if mode == "token_crlf":
        return jdump({"access_token": hostile_token(handler)
                      + "\r\nX-Injected: 1", "token_type": "access_token",
                      "expires_in": 3600})
    if mode == "token_huge_expiry":
        return jdump({"access_token": hostile_token(handler),
                      "token_type": "access_token",
                      "expires_in": HUGE_EXPIRES_IN})
    if mode == "token_long":
        return jdump({"access_token": "A" * 5000,
                      "token_type": "access_token", "expires_in": 3600})
    if mode == "big":
        pad = fault["size"]
        return b'{"status": "PENDING", "pad": "' + b"x" * pad + b'"}'
    # drip: an answer a patient reader could use
    if "/token/" in handler.route_path:
        return jdump({"access_token": hostile_token(handler),
                      "token_type": "access_token", "expires_in": 3600})
    return b'{"status": "PENDING", "pad": "' + b"x" * 4096 + b'"}'


def send_hostile(handler, fault):
    """Answers with the fault's hostile mode, then closes the connection."""
    status = fault["status"] or 200
    body = hostile_body(handler, fault)
    handler.close_connection = True
    length = ("Transfer-Encoding: chunked" if fault["chunked"]
              else "Content-Length: %d" % len(body))
    head = ("HTTP/1.1 %d %s\r\nContent-Type: %s\r\n%s\r\n"
            "Connection: close\r\n\r\n" % (
                status, HTTPStatus(status).phrase, JSON_UTF8, length))
    w = handler.wfile
    w.write(head.encode("latin-1"))
    if fault["chunked"]:
        for i in range(0, len(body), 65536):
            part = body[i:i + 65536]
            w.write(b"%x\r\n%s\r\n" % (len(part), part))
        w.write(b"0\r\n\r\n")
        return
    if fault["hostile"] != "drip":
        w.write(body)
        return
    for i in range(len(body)):
        w.write(body[i:i + 1])
        w.flush()
        time.sleep(fault["drip_ms"] / 1000.0)


FAULT_KEYS = ("method", "path", "delay_ms", "status", "body", "content_type",
              "headers", "drop", "reset", "times") + HOSTILE_KEYS


def check_fault(f):
    if not isinstance(f, dict):
        raise BadInput("fault must be a JSON object")
    for k in f:
        if k not in FAULT_KEYS:
            raise BadInput("unknown fault key %r" % k)
    out = {"method": None, "path": "", "delay_ms": 0, "status": None,
           "body": "", "content_type": "application/json", "headers": {},
           "drop": False, "reset": False, "times": None}
    if f.get("method") is not None:
        if not isinstance(f["method"], str) or not f["method"]:
            raise BadInput("method must be a string")
        out["method"] = f["method"].upper()
    if f.get("path") is not None:
        if not isinstance(f["path"], str):
            raise BadInput("path must be a string (a prefix)")
        out["path"] = f["path"]
    if f.get("delay_ms") is not None:
        if not is_number(f["delay_ms"]) or f["delay_ms"] < 0:
            raise BadInput("delay_ms must be a number >= 0")
        out["delay_ms"] = f["delay_ms"]
    if f.get("status") is not None:
        s = f["status"]
        if not isinstance(s, int) or isinstance(s, bool) or not 100 <= s <= 599:
            raise BadInput("status must be an integer 100..599")
        out["status"] = s
    if f.get("body") is not None:
        b = f["body"]
        out["body"] = b if isinstance(b, str) else json.dumps(b)
    if f.get("content_type") is not None:
        if not isinstance(f["content_type"], str):
            raise BadInput("content_type must be a string")
        out["content_type"] = f["content_type"]
    if f.get("headers") is not None:
        h = f["headers"]
        if not isinstance(h, dict) or not all(
                isinstance(k, str) and isinstance(v, (str, int)) and
                "\r" not in k + str(v) and "\n" not in k + str(v) and
                ":" not in k for k, v in h.items()):
            raise BadInput("headers must be an object of string values")
        out["headers"] = {k: str(v) for k, v in h.items()}
    for k in ("drop", "reset"):
        if f.get(k) is not None:
            if not isinstance(f[k], bool):
                raise BadInput("%s must be true or false" % k)
            out[k] = f[k]
    if f.get("times") is not None:
        t = f["times"]
        if not isinstance(t, int) or isinstance(t, bool) or t < 1:
            raise BadInput("times must be an integer >= 1 or null")
        out["times"] = t
    check_hostile(f, out)
    return out


# -- the Disbursement product, balances, account holders --------------------
#
# Disbursement has its own subscription key and API users (an API user
# belongs to the product whose key created it; another product's key or
# token gets the same 401s as a wrong key).  Transfers and refunds follow
# momo-api.md: 202 then status by GET or callback, 409 on a reused
# reference id.  Sandbox numbers for transfers and refunds are those of
# Collections except as [OBS-CATI] observed on /disbursement/v1_0/transfer:
# 46733123453 stays PENDING (until forced), 46733123454 is PENDING for
# pending_seconds, then SUCCESSFUL.
#
# Balances: the collection account starts at collection_balance and grows
# with every SUCCESSFUL payment; the disbursement account starts at
# disbursement_balance and shrinks with every SUCCESSFUL transfer or
# refund.  A transfer or refund larger than the disbursement account less
# what is not FAILED yet ends FAILED NOT_ENOUGH_FUNDS.
#
# A refund is refused (guessed: momo-api.md records nothing) when its
# referenceIdToRefund is no payment (TRANSACTION_NOT_FOUND), or a payment
# that is not SUCCESSFUL, in another currency, or whose refunds not FAILED
# would exceed its amount (NOT_ALLOWED): by default, like every doomed POST
# at MTN [OBS-CATI], 202 then FAILED with that reason; with config
# refund_refusal "sync", at once: 404 RESOURCE_NOT_FOUND or 500 NOT_ALLOWED.
#
# Account holders (both products): inactive ({"result": false}) for
# 46733123455 and for ids starting with 0; active for anything else.

DEFAULT_DISB_API_USER = "3d7b9e15-6a2c-4f48-8b90-c1e5a7d3f260"
DEFAULT_DISB_API_KEY = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b"
DEFAULT_DISB_SUBSCRIPTION_KEY = "f0e1d2c3b4a5968778695a4b3c2d1e0f"

DISBURSEMENT_NUMBERS = dict(COLLECTION_NUMBERS, **{
    "46733123453": ("PENDING", None),
    "46733123454": ("LATER", None),
})
INACTIVE_NUMBER = "46733123455"

NOT_ALLOWED_BODY = {"message": "Authorization failed. The refund is not "
                               "allowed for this transaction.",
                    "code": "NOT_ALLOWED"}

DISB_CONFIG_DEFAULTS = {
    "collection_balance": "1000",
    "disbursement_balance": "1000000",
    "refund_refusal": "failed",
}
CONFIG_DEFAULTS.update(DISB_CONFIG_DEFAULTS)


def check_disb_config(k, v):
    if k == "refund_refusal":
        if v not in ("failed", "sync"):
            raise BadInput('refund_refusal must be "failed" or "sync"')
        return v
    if not isinstance(v, str) or not AMOUNT_RE.match(v):
        raise BadInput("%s must be a string holding a number >= 0" % k)
    return v


def money_str(d):
    """A balance as MTN writes amounts: "1000", "999.5"."""
    s = format(d.quantize(Decimal("0.01")), "f")
    return s[:-3] if s.endswith(".00") else s.rstrip("0")


def holder_active(ident):
    return not ident.startswith("0") and ident != INACTIVE_NUMBER


class DisbursementState:
    """State's share of the Disbursement product; called with the lock."""

    def disb_init(self, opts):
        self.product_keys = {
            "collection": self.subscription_keys,
            "disbursement": set(opts.disbursement_subscription_key or
                                [DEFAULT_DISB_SUBSCRIPTION_KEY]),
            "remittance": set(),
        }

    def disb_reset(self):
        self.transfers = {}
        self.refunds = {}
        self.users[self.opts.disbursement_api_user.lower()] = {
            "id": self.opts.disbursement_api_user,
            "apiKey": self.opts.disbursement_api_key,
            "providerCallbackHost": self.opts.callback_host,
            "product": "disbursement",
        }

    def table(self, kind):
        return {"payment": self.payments, "transfer": self.transfers,
                "refund": self.refunds}[kind]

    def key_product(self, key):
        if key is not None:
            for product, keys in self.product_keys.items():
                if key.strip() in keys:
                    return product
        return None

    def product_user(self, uid, product):
        u = self.users.get(uid.lower())
        return u if u is not None and u.get("product") == product else None

    def request_product(self, path, headers):
        r = re.match(r"/(collection|disbursement|remittance)/", path)
        if r:
            return r.group(1)
        if path.startswith("/v1_0/apiuser"):
            for k, v in headers.items():
                if k.lower() == "ocp-apim-subscription-key":
                    return self.key_product(v)
        return None

    def control_row(self, p):
        row = dict(self.status_of(p), referenceId=p["ref"],
                   callbackUrl=p["callback_url"])
        if "referenceIdToRefund" in p:
            row["referenceIdToRefund"] = p["referenceIdToRefund"]
        return row

    def _amounts(self, table, keep):
        now = time.monotonic()
        return sum((Decimal(p["amount"]) for p in table.values()
                    if keep(self.status_of(p, now)["status"])), Decimal(0))

    def balance(self, product):
        if product == "collection":
            return money_str(Decimal(self.config["collection_balance"]) +
                             self._amounts(self.payments,
                                           lambda s: s == "SUCCESSFUL"))
        spent = sum((self._amounts(t, lambda s: s == "SUCCESSFUL")
                     for t in (self.transfers, self.refunds)), Decimal(0))
        return money_str(Decimal(self.config["disbursement_balance"]) - spent)

    def _funded(self, amount, outcome):
        """outcome, or FAILED NOT_ENOUGH_FUNDS when the account cannot
        pay amount besides everything not FAILED yet."""
        committed = sum((self._amounts(t, lambda s: s != "FAILED")
                         for t in (self.transfers, self.refunds)), Decimal(0))
        available = Decimal(self.config["disbursement_balance"]) - committed
        if outcome[1] != "SUCCESSFUL" or Decimal(amount) <= available:
            return outcome
        return self._failed("NOT_ENOUGH_FUNDS")

    def _failed(self, reason):
        return ("PENDING", "FAILED", reason,
                time.monotonic() + self.config["final_delay_ms"] / 1000.0)

    def create_transfer(self, ref, user, body, callback_url):
        """Returns False when ref is already taken."""
        with self.lock:
            if ref.lower() in self.transfers:
                return False
            outcome = self._funded(body["amount"], self.number_outcome(
                body["payee"], DISBURSEMENT_NUMBERS))
            self.add_record(self.transfers, "transfer", ref, user, body,
                            body["payee"], callback_url, outcome)
        return True

    def refund_refusal(self, body):
        """None when the payment may be refunded by this much, else the
        reason code."""
        pay = self.payments.get(body["referenceIdToRefund"].lower())
        if pay is None:
            return "TRANSACTION_NOT_FOUND"
        if self.status_of(pay)["status"] != "SUCCESSFUL" or \
                body["currency"] != pay["currency"]:
            return "NOT_ALLOWED"
        key = pay["ref"].lower()
        refunded = self._amounts(
            {k: r for k, r in self.refunds.items()
             if r["referenceIdToRefund"].lower() == key},
            lambda s: s != "FAILED")
        if refunded + Decimal(body["amount"]) > Decimal(pay["amount"]):
            return "NOT_ALLOWED"
        return None

    def create_refund(self, ref, user, body, callback_url):
        """None when accepted, "DUPLICATE" when ref is taken, or the
        reason code of a refusal to answer at once."""
        with self.lock:
            if ref.lower() in self.refunds:
                return "DUPLICATE"
            refusal = self.refund_refusal(body)
            if refusal is not None and \
                    self.config["refund_refusal"] == "sync":
                return refusal
            pay = self.payments.get(body["referenceIdToRefund"].lower())
            party = pay["payer"] if pay is not None else None
            if refusal is not None:
                outcome = self._failed(refusal)
            else:
                outcome = self._funded(body["amount"], self.number_outcome(
                    party, DISBURSEMENT_NUMBERS))
            p = self.add_record(self.refunds, "refund", ref, user, body,
                                party, callback_url, outcome)
            p["referenceIdToRefund"] = body["referenceIdToRefund"]
        return None


class DisbursementHandler:
    """Handler's share of the Disbursement product and its control calls."""

    def disb_route(self, path, m):
        """True when path is a Disbursement operation (then answered)."""
        r = re.fullmatch(r"/disbursement/(?:v1_0/(transfer)|v[12]_0/(refund))"
                         r"(?:/([^/]+))?", path)
        if r is None:
            return False
        kind, ref = r.group(1) or r.group(2), r.group(3)
        if ref is None and m == "POST":
            (self.h_transfer if kind == "transfer" else self.h_refund)()
            return True
        if ref is not None and m == "GET":
            self.h_disb_status(kind, unquote(ref))
            return True
        return False

    def h_transfer(self):
        return self.h_create("disbursement", "payee", STATE.create_transfer)

    def h_refund(self):
        got = self.money_request("disbursement", None)
        if got is None:
            return
        user, ref, doc, cb_url = got
        rid = doc.get("referenceIdToRefund")
        if not isinstance(rid, str) or not UUID4_RE.match(rid):
            return self.bad_request("referenceIdToRefund must be the "
                                    "X-Reference-Id (UUID version 4) of a "
                                    "request to pay")
        refused = STATE.create_refund(ref, user, doc, cb_url)
        if refused == "DUPLICATE":
            return self.send_json(409, DUPLICATE_BODY)
        if refused == "TRANSACTION_NOT_FOUND":
            return self.send_json(404, NOT_FOUND_BODY)
        if refused is not None:
            return self.send_json(500, NOT_ALLOWED_BODY)
        return self.send(202)

    def h_disb_status(self, kind, ref):
        if self.check_bearer("disbursement") is None:
            return
        with STATE.lock:
            p = STATE.table(kind).get(ref.lower())
            st = STATE.status_of(p) if p is not None else None
        if st is None:
            return self.send_json(404, NOT_FOUND_BODY)
        return self.send_json(200, st)

    def disb_control(self, path, m):
        if path == "/_emu/balances" and m == "GET":
            with STATE.lock:
                out = {"collection": STATE.balance("collection"),
                       "disbursement": STATE.balance("disbursement"),
                       "currency": STATE.config["currency"]}
            self.send_json(200, out, "application/json")
            return True
        return False



class Scheduler:
    """One timer thread and a few daemon workers for callback deliveries."""

    def __init__(self, workers=8):
        self.cv = threading.Condition()
        self.heap = []
        self.n = 0
        self.jobs = queue.Queue()
        threading.Thread(target=self._timer, name="emu-timer",
                         daemon=True).start()
        for i in range(workers):
            threading.Thread(target=self._worker, name="emu-cb-%d" % i,
                             daemon=True).start()

    def at(self, when, fn, *args):
        with self.cv:
            self.n += 1
            heapq.heappush(self.heap, (when, self.n, fn, args))
            self.cv.notify()

    def _timer(self):
        while True:
            with self.cv:
                while True:
                    now = time.monotonic()
                    if self.heap and self.heap[0][0] <= now:
                        _, _, fn, args = heapq.heappop(self.heap)
                        break
                    self.cv.wait(self.heap[0][0] - now if self.heap else None)
            self.jobs.put((fn, args))

    def _worker(self):
        while True:
            fn, args = self.jobs.get()
            try:
                fn(*args)
            except Exception:
                traceback.print_exc(file=sys.stderr)


class State(DisbursementState):
    """Everything the emulator remembers; every access under self.lock."""

    def __init__(self, opts):
        self.opts = opts
        self.lock = threading.RLock()
        self.sched = Scheduler()
        self.epoch = 0
        self.base_config = dict(CONFIG_DEFAULTS)
        if opts.pending_seconds is not None:
            self.base_config["pending_seconds"] = opts.pending_seconds
        if opts.token_ttl is not None:
            self.base_config["token_ttl"] = opts.token_ttl
        if opts.callback_timeout_ms is not None:
            self.base_config["callback_timeout_ms"] = opts.callback_timeout_ms
        self.subscription_keys = set(opts.subscription_key or
                                     [DEFAULT_SUBSCRIPTION_KEY])
        self.disb_init(opts)
        self.reset()

    def reset(self):
        with self.lock:
            self.epoch += 1
            self.config = dict(self.base_config)
            self.users = {self.opts.api_user.lower(): {
                "id": self.opts.api_user,
                "apiKey": self.opts.api_key,
                "providerCallbackHost": self.opts.callback_host,
                "product": "collection",
            }}
            self.tokens = {}
            self.payments = {}
            self.requests = []
            self.req_seq = 0
            self.callbacks = []
            self.cb_seq = 0
            self.faults = []
            self.fault_seq = 0
            self.disb_reset()
            self.dropped_callbacks = 0

    # -- request log and faults -------------------------------------------

    def log_request(self, method, path, headers, body):
        with self.lock:
            self.req_seq += 1
            self.requests.append({
                "seq": self.req_seq, "time": time.time(), "method": method,
                "path": path, "headers": headers,
                "body": body.decode("utf-8", "replace"),
                "product": self.request_product(path, headers)})
            limit = self.opts.log_limit
            if limit and len(self.requests) > limit:
                del self.requests[:len(self.requests) - limit]

    def match_fault(self, method, path):
        with self.lock:
            for f in self.faults:
                if f["times"] is not None and f["times"] <= 0:
                    continue
                if f["method"] and f["method"] != method.upper():
                    continue
                if not path.startswith(f["path"]):
                    continue
                f["hits"] += 1
                if f["times"] is not None:
                    f["times"] -= 1
                    if f["times"] <= 0:
                        self.faults.remove(f)   # used up: forget it
                return dict(f)
        return None

    # -- tokens -----------------------------------------------------------

    def issue_token(self, user_id, product):
        with self.lock:
            ttl = self.config["token_ttl"]
        expires = (datetime.datetime.now(datetime.timezone.utc)
                   .replace(tzinfo=None) + datetime.timedelta(seconds=ttl))
        header = b64url(jdump({"typ": "JWT", "alg": "R256"}))
        payload = b64url(jdump({
            "clientId": user_id,
            "expires": expires.isoformat(timespec="milliseconds"),
            "sessionId": str(uuid.uuid4())}))
        token = "%s.%s.%s" % (header, payload, b64url(secrets.token_bytes(256)))
        with self.lock:
            now = time.monotonic()
            for t in [t for t, v in self.tokens.items()
                      if v["expires_at"] <= now]:
                del self.tokens[t]
            self.tokens[token] = {"user": user_id.lower(), "product": product,
                                  "expires_at": now + ttl}
        return token, ttl

    def token_user(self, token, product):
        with self.lock:
            t = self.tokens.get(token)
            if t is None:
                return None
            if t["expires_at"] <= time.monotonic():
                del self.tokens[token]
                return None
            if t["product"] != product or t["user"] not in self.users:
                return None
            return t["user"]

    # -- payments ---------------------------------------------------------

    def status_of(self, p, now=None):
        """The status JSON MTN would answer for payment p, now."""
        if now is None:
            now = time.monotonic()
        if p["forced"] is not None:
            status, reason = p["forced"]["status"], p["forced"]["reason"]
            fin = p["forced"]["financialTransactionId"] or p["fin_id"]
        elif now >= p["final_at"]:
            status, reason, fin = p["final_status"], p["final_reason"], \
                p["fin_id"]
        else:
            status, reason, fin = p["pending_status"], None, None
        d = {}
        if status == "SUCCESSFUL" and fin:
            d["financialTransactionId"] = fin
        d["externalId"] = p["externalId"]
        d["amount"] = p["amount"]
        d["currency"] = p["currency"]
        if p["payer"] is not None:
            d[p.get("party_key", "payer")] = p["payer"]
        d["payerMessage"] = p["payerMessage"]
        d["payeeNote"] = p["payeeNote"]
        d["status"] = status
        if reason is not None:
            if self.config["reason_format"] == "object":
                d["reason"] = {"code": reason,
                               "message": REASON_MESSAGES.get(reason, reason)}
            else:
                d["reason"] = reason
        return d

    def create_payment(self, ref, user, body, callback_url):
        """Returns False when ref is already taken."""
        with self.lock:
            if ref.lower() in self.payments:
                return False
            party = body["payer"]
            outcome = self.number_outcome(party, COLLECTION_NUMBERS)
            self.add_record(self.payments, "payment", ref, user, body,
                            party, callback_url, outcome)
        return True

    def number_outcome(self, party, numbers):
        """(pending status, final status, reason, final_at) of a new
        operation with this party, by the sandbox test numbers."""
        now = time.monotonic()
        final_at = now + self.config["final_delay_ms"] / 1000.0
        pid = party["partyId"] if party["partyIdType"] == "MSISDN" else None
        rule = numbers.get(pid) or ("SUCCESSFUL", None)
        if rule[0] == "FAILED":
            return "PENDING", "FAILED", rule[1], final_at
        if rule[0] == "LATER":
            return "PENDING", "SUCCESSFUL", None, \
                now + self.config["pending_seconds"]
        if rule[0] in NON_FINAL:
            return rule[0], "SUCCESSFUL", None, math.inf
        return "PENDING", "SUCCESSFUL", None, final_at

    def add_record(self, table, kind, ref, user, body, party, callback_url,
                   outcome):
        """A payment, transfer or refund as status_of and callbacks see
        it; call with self.lock held."""
        pending_status, final_status, reason, final_at = outcome
        p = {
            "ref": ref, "kind": kind, "user": user,
            "created": time.monotonic(), "created_time": time.time(),
            "externalId": body["externalId"], "amount": body["amount"],
            "currency": body["currency"],
            "payer": (None if party is None else
                      {"partyIdType": party["partyIdType"],
                       "partyId": party["partyId"]}),
            "party_key": "payer" if kind == "payment" else "payee",
            "payerMessage": body["payerMessage"],
            "payeeNote": body["payeeNote"],
            "pending_status": pending_status,
            "final_status": final_status, "final_reason": reason,
            "final_at": final_at,
            "fin_id": (str(secrets.randbelow(9 * 10 ** 9) + 10 ** 9)
                       if final_status == "SUCCESSFUL" else None),
            "forced": None, "callback_url": callback_url,
            "cb_token": 0, "cb_done": False,
        }
        table[ref.lower()] = p
        if callback_url and final_at != math.inf:
            self._schedule_callback(p, final_at)
        return p

    def _schedule_callback(self, p, final_at):
        p["cb_token"] += 1
        when = final_at + self.config["callback_delay_ms"] / 1000.0
        self.sched.at(when, self._fire_callback, p, p["cb_token"],
                      self.epoch)

    def force_status(self, ref, status, reason, fin, callback,
                     kind="payment"):
        with self.lock:
            p = self.table(kind).get(ref.lower())
            if p is None:
                return None
            if status == "FAILED" and reason is None:
                reason = "INTERNAL_PROCESSING_ERROR"
            if status == "SUCCESSFUL" and fin is None and p["fin_id"] is None:
                p["fin_id"] = str(secrets.randbelow(9 * 10 ** 9) + 10 ** 9)
            p["forced"] = {"status": status, "reason": reason,
                           "financialTransactionId": fin}
            if status in NON_FINAL:
                p["cb_token"] += 1        # cancels a natural callback
            elif p["callback_url"] and (callback is True or
                                        (callback is None and
                                         not p["cb_done"])):
                self._schedule_callback(p, time.monotonic())
            elif callback is False:
                p["cb_token"] += 1
            return self.status_of(p)

    # -- callbacks --------------------------------------------------------

    def _fire_callback(self, p, cb_token, epoch):
        with self.lock:
            if epoch != self.epoch:
                return
            if p["cb_token"] != cb_token:
                return
            st = self.status_of(p)
            if st["status"] in NON_FINAL or self.callback_dropped(p):
                return
            p["cb_done"] = True
            cfg = dict(self.config)
            if cfg["callback_body"] is not None:
                cb = cfg["callback_body"]
                body = cb.encode("utf-8") if isinstance(cb, str) else jdump(cb)
            else:
                st.pop("payerMessage", None)
                body = jdump(st)
            url = p["callback_url"]
        self._deliver(p["ref"], url, cfg["callback_method"], body, 1, epoch,
                      cfg["callback_timeout_ms"])
        if cfg["callback_duplicate"]:
            self.sched.at(time.monotonic() +
                          cfg["callback_duplicate_delay_ms"] / 1000.0,
                          self._deliver, p["ref"], url, cfg["callback_method"],
                          body, 2, epoch, cfg["callback_timeout_ms"])

    # -- for the reconciler's tests: lost callbacks, waits, rates --------

    def callback_dropped(self, p):
        """MTN's callbacks lost (config drop_callbacks): counted, not sent."""
        if not self.config["drop_callbacks"]:
            return False
        p["cb_done"] = True
        self.dropped_callbacks += 1
        return True

    def matching(self, path, method):
        return [r for r in self.requests if r["path"].startswith(path) and
                (not method or r["method"].upper() == method)]

    def wait_for(self, path, method, count, timeout):
        """Blocks until count requests match (or timeout); their number."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                n = len(self.matching(path, method))
            if n >= count or time.monotonic() >= deadline:
                return n
            time.sleep(0.02)

    def peak_rate(self, path, method, window):
        """Most requests seen within any window of that many seconds."""
        with self.lock:
            times = sorted(r["time"] for r in self.matching(path, method))
        peak, first = 0, 0
        for i, t in enumerate(times):
            while t - times[first] >= window:
                first += 1
            peak = max(peak, i - first + 1)
        return peak

    def _deliver(self, ref, url, method, body, attempt, epoch, timeout_ms):
        with self.lock:
            if epoch != self.epoch:
                return
        rec = {"reference_id": ref, "attempt": attempt, "time": time.time(),
               "url": url, "method": method, "headers": {},
               "body": body.decode("utf-8", "replace"), "status": None,
               "response_body": None, "error": None}
        start = time.monotonic()
        conn = None
        try:
            u = urlsplit(url)
            if u.scheme not in ("http", "https") or not u.hostname:
                raise ValueError("unsupported callback URL")
            host = u.netloc.rsplit("@", 1)[-1]
            target = (u.path or "/") + ("?" + u.query if u.query else "")
            headers = {"Host": host, "User-Agent": CALLBACK_USER_AGENT,
                       "Content-Type": CALLBACK_CONTENT_TYPE,
                       "Content-Length": str(len(body)),
                       "Accept-Encoding": "gzip"}
            rec["headers"] = headers
            t = timeout_ms / 1000.0
            if u.scheme == "https":
                conn = http.client.HTTPSConnection(
                    u.hostname, u.port or 443, timeout=t,
                    context=ssl._create_unverified_context())
            else:
                conn = http.client.HTTPConnection(u.hostname, u.port or 80,
                                                  timeout=t)
            conn.request(method, target, body=body, headers=headers)
            resp = conn.getresponse()
            rec["status"] = resp.status
            rec["response_body"] = resp.read(65536).decode("utf-8", "replace")
        except Exception as e:
            rec["error"] = "%s: %s" % (type(e).__name__, e)
        finally:
            if conn is not None:
                try:
                    conn.close()
                except Exception:
                    pass
        rec["duration_ms"] = round((time.monotonic() - start) * 1000, 1)
        log("callback %s %s -> %s" % (method, url,
                                      rec["status"] or rec["error"]))
        with self.lock:
            if epoch != self.epoch:
                return
            self.cb_seq += 1
            rec["seq"] = self.cb_seq
            self.callbacks.append(rec)


STATE = None


class Handler(DisbursementHandler, BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    default_request_version = "HTTP/1.0"    # error pages get a status line
    server_version = "momo-emulator"
    sys_version = ""
    timeout = 300

    # Any method, sink included: do_GET, do_FOO ... all go to _dispatch.
    def __getattr__(self, name):
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    def setup(self):
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY,
                                       1)
        except OSError:
            pass

    def log_message(self, fmt, *args):
        if VERBOSE:
            sys.stderr.write("%s - - [%s] %s\n" % (
                self.address_string(), self.log_date_time_string(),
                fmt % args))

    # -- output -----------------------------------------------------------

    def send(self, status, body=b"", ctype=None, headers=None):
        if isinstance(body, str):
            body = body.encode("utf-8")
        elif isinstance(body, (dict, list)):
            body = jdump(body)
            if ctype is None:
                ctype = JSON_UTF8
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Unknown"
        lines = ["HTTP/1.1 %d %s" % (status, phrase),
                 "Date: " + self.date_time_string()]
        if ctype:
            lines.append("Content-Type: " + ctype)
        for k, v in (headers or {}).items():
            if k.lower() in ("content-length", "transfer-encoding"):
                continue
            if k.lower() == "connection":
                if v.lower() == "close":
                    self.close_connection = True
                continue
            lines.append("%s: %s" % (k, v))
        lines.append("Content-Length: %d" % len(body))
        if self.close_connection:
            lines.append("Connection: close")
        elif self.request_version == "HTTP/1.0":
            lines.append("Connection: keep-alive")
        out = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
        if self.command != "HEAD":
            out += body
        self.wfile.write(out)
        self.log_request(status, len(body))

    def send_json(self, status, obj, ctype=JSON_UTF8, headers=None):
        self.send(status, jdump(obj), ctype, headers)

    def bad_request(self, message):
        self.send_json(400, {"message": message, "code": "BAD_REQUEST"})

    # -- input ------------------------------------------------------------

    def read_body(self):
        """Returns (body, had_length, chunked) or None when answered."""
        te = self.headers.get("Transfer-Encoding")
        cl = self.headers.get("Content-Length")
        if te is not None:
            if te.strip().lower() != "chunked":
                self.close_connection = True
                self.send(501, b"unsupported transfer-encoding", "text/plain")
                return None
            data = self.read_chunked()
            if data is None:
                self.close_connection = True
                self.send(400, b"bad chunked body", "text/plain")
                return None
            return data, False, True
        if cl is None:
            return b"", False, False
        cl = cl.strip()
        if not cl.isdigit() or len(cl) > 12:
            self.close_connection = True
            self.send(400, b"bad content-length", "text/plain")
            return None
        n = int(cl)
        if n > MAX_BODY:
            self.close_connection = True
            self.send(413, b"body too large", "text/plain")
            return None
        data = self.rfile.read(n) if n else b""
        if len(data) != n:
            self.close_connection = True
            return None
        return data, True, False

    def read_chunked(self):
        out = []
        total = 0
        while True:
            line = self.rfile.readline(1026)
            if not line.endswith(b"\n"):
                return None
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                return None
            if size < 0:
                return None
            if size == 0:
                break
            total += size
            if total > MAX_BODY:
                return None
            chunk = self.rfile.read(size)
            if len(chunk) != size or self.rfile.readline(3) not in (b"\r\n",
                                                                    b"\n"):
                return None
            out.append(chunk)
        for _ in range(100):      # trailers
            line = self.rfile.readline(8192)
            if line in (b"\r\n", b"\n"):
                return b"".join(out)
            if not line:
                return None
        return None

    def header_dict(self):
        d = {}
        for k, v in self.headers.items():
            d[k] = d[k] + ", " + v if k in d else v
        return d

    # -- dispatch ---------------------------------------------------------

    def _dispatch(self):
        try:
            self._handle()
        except (ConnectionError, TimeoutError, OSError):
            self.close_connection = True
        except Exception:
            traceback.print_exc(file=sys.stderr)
            self.close_connection = True
            try:
                self.send_json(500, INTERNAL_ERROR_BODY)
            except Exception:
                pass

    def _handle(self):
        target = self.path
        if target.startswith(("http://", "https://")):
            u = urlsplit(target)
            target = (u.path or "/") + ("?" + u.query if u.query else "")
        self.target = target
        path, _, self.query = target.partition("?")
        self.route_path = path
        got = self.read_body()
        if got is None:
            return
        body, had_length, chunked = got
        self.body = body

        sink = path == "/_emu/sink" or path.startswith("/_emu/sink/")
        if (path == "/_emu" or path.startswith("/_emu/")) and not sink:
            return self.control(path)

        STATE.log_request(self.command, target, self.header_dict(), body)
        fault = STATE.match_fault(self.command, target)
        if fault is not None:
            if fault["delay_ms"]:
                time.sleep(fault["delay_ms"] / 1000.0)
            if fault["reset"]:
                self.close_connection = True
                try:
                    self.connection.setsockopt(socket.SOL_SOCKET,
                                               socket.SO_LINGER,
                                               struct.pack("ii", 1, 0))
                    self.connection.close()
                except OSError:
                    pass
                return
            if fault["drop"]:
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            if fault.get("hostile"):
                return send_hostile(self, fault)
            if fault["status"] is not None:
                return self.send(fault["status"], fault["body"],
                                 fault["content_type"], fault["headers"])
        if sink:
            return self.send_json(200, {"ok": True}, "application/json")
        if self.command == "POST" and (not had_length or chunked):
            return self.send(411, LENGTH_REQUIRED_HTML,
                             "text/html; charset=us-ascii")
        return self.mtn(path)

    # -- MTN side ---------------------------------------------------------

    def mtn(self, path):
        m = self.command
        if path == "/v1_0/apiuser" and m == "POST":
            return self.h_apiuser_create()
        r = re.fullmatch(r"/v1_0/apiuser/([^/]+)/apikey", path)
        if r and m == "POST":
            return self.h_apikey(unquote(r.group(1)))
        r = re.fullmatch(r"/v1_0/apiuser/([^/]+)", path)
        if r and m == "GET":
            return self.h_apiuser_get(unquote(r.group(1)))
        r = re.fullmatch(r"/(collection|disbursement|remittance)/token/", path)
        if r and m == "POST":
            return self.h_token(r.group(1))
        if path == "/collection/v1_0/requesttopay" and m == "POST":
            return self.h_requesttopay()
        r = re.fullmatch(r"/collection/v1_0/requesttopay/([^/]+)", path)
        if r and m == "GET":
            return self.h_status(unquote(r.group(1)))
        r = re.fullmatch(r"/(collection|disbursement)/v1_0/account/balance"
                         r"(?:/([^/]+))?", path)
        if r and m == "GET":
            return self.h_balance(r.group(1), r.group(2))
        r = re.fullmatch(r"/(collection|disbursement)/v1_0/accountholder/"
                         r"([^/]+)/([^/]+)/(active|basicuserinfo)", path)
        if r and m == "GET":
            return self.h_accountholder(r.group(1), unquote(r.group(2)),
                                        unquote(r.group(3)), r.group(4))
        if self.disb_route(path, m):
            return None
        return self.send(404, APIM_404_BODY, "application/json")

    def check_subscription(self, product=None):
        """The product whose subscription key the request carries (any
        product's when product is None), or None when answered 401."""
        key = self.headers.get("Ocp-Apim-Subscription-Key")
        owner = STATE.key_product(key)
        if owner is None or product not in (None, owner):
            self.send(401, APIM_401_BODY, "application/json")
            return None
        return owner

    def check_bearer(self, product):
        """Subscription key, Bearer token, X-Target-Environment."""
        if not self.check_subscription(product):
            return None
        auth = (self.headers.get("Authorization") or "").strip().split(None, 1)
        user = None
        if len(auth) == 2 and auth[0].lower() == "bearer":
            user = STATE.token_user(auth[1].strip(), product)
        if user is None:
            self.send_json(401, UNAUTHORIZED_BODY)
            return None
        env = self.headers.get("X-Target-Environment")
        if env is None:
            self.bad_request("X-Target-Environment header is missing")
            return None
        with STATE.lock:
            want = STATE.config["target_environment"]
        if env.strip() != want:
            self.send_json(500, TARGET_ENV_BODY)
            return None
        return user

    def h_apiuser_create(self):
        product = self.check_subscription()
        if not product:
            return
        ref = (self.headers.get("X-Reference-Id") or "").strip()
        if not UUID4_RE.match(ref):
            return self.bad_request("X-Reference-Id must be a UUID version 4")
        try:
            doc = json.loads(self.body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError):
            return self.bad_request("Body is not valid JSON")
        host = doc.get("providerCallbackHost") if isinstance(doc, dict) \
            else None
        if not isinstance(host, str) or not host.strip():
            return self.bad_request("providerCallbackHost is missing")
        with STATE.lock:
            if ref.lower() in STATE.users:
                return self.send_json(409, DUPLICATE_BODY)
            STATE.users[ref.lower()] = {"id": ref, "apiKey": None,
                                        "providerCallbackHost": host.strip(),
                                        "product": product}
        return self.send(201)

    def h_apikey(self, uid):
        product = self.check_subscription()
        if not product:
            return
        key = secrets.token_hex(16)
        with STATE.lock:
            u = STATE.product_user(uid, product)
            if u is None:
                return self.send_json(404, NOT_FOUND_BODY)
            u["apiKey"] = key
        return self.send_json(201, {"apiKey": key})

    def h_apiuser_get(self, uid):
        product = self.check_subscription()
        if not product:
            return
        with STATE.lock:
            u = STATE.product_user(uid, product)
            if u is None:
                return self.send_json(404, NOT_FOUND_BODY)
            out = {"providerCallbackHost": u["providerCallbackHost"],
                   "targetEnvironment": STATE.config["target_environment"]}
        return self.send_json(200, out)

    def login_failed(self):
        return self.send(500, LOGIN_FAILED_BODY, JSON_UTF8,
                         {"Cache-Control": "no-store", "Pragma": "no-cache"})

    def h_token(self, product):
        if not self.check_subscription(product):
            return
        if self.body:
            return self.bad_request("Body is not supported on this API")
        auth = (self.headers.get("Authorization") or "").strip().split(None, 1)
        if len(auth) != 2 or auth[0].lower() != "basic":
            return self.login_failed()
        try:
            cred = base64.b64decode(auth[1].strip(), validate=True)
            uid, key = cred.decode("utf-8").split(":", 1)
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return self.login_failed()
        with STATE.lock:
            u = STATE.product_user(uid, product)
            ok = u is not None and u["apiKey"] is not None and \
                secrets.compare_digest(u["apiKey"].encode("utf-8"),
                                       key.encode("utf-8"))
            env = STATE.config["target_environment"]
        if not ok:
            return self.login_failed()
        xenv = self.headers.get("X-Target-Environment")
        if xenv is not None and xenv.strip() != env:
            return self.login_failed()
        token, ttl = STATE.issue_token(uid, product)
        return self.send_json(200, {"access_token": token,
                                    "token_type": "access_token",
                                    "expires_in": ttl})

    def h_requesttopay(self):
        return self.h_create("collection", "payer", STATE.create_payment)

    def h_create(self, product, party_field, create):
        """A requesttopay or transfer: 202, or 409 for a reused id."""
        got = self.money_request(product, party_field)
        if got is None:
            return
        user, ref, doc, cb_url = got
        if not create(ref, user, doc, cb_url):
            return self.send_json(409, DUPLICATE_BODY)
        return self.send(202)

    def money_request(self, product, party_field):
        """Checks a requesttopay, transfer or refund POST as MTN does:
        returns (user, ref, body, callback URL), or None when answered.
        party_field: "payer", "payee", or None (a refund has none)."""
        user = self.check_bearer(product)
        if user is None:
            return None
        ref = (self.headers.get("X-Reference-Id") or "").strip()
        if not UUID4_RE.match(ref):
            return self.bad_request("X-Reference-Id must be a UUID version 4")
        ctype = (self.headers.get("Content-Type") or "").split(";")[0]
        if ctype.strip().lower() != "application/json":
            return self.bad_request("Content-Type must be application/json")
        cb_url = self.headers.get("X-Callback-Url")
        cb_host = None
        if cb_url is not None:
            cb_url = cb_url.strip()
            if not cb_url:
                return self.bad_request("X-Callback-Url must not be empty")
            try:
                u = urlsplit(cb_url)
                cb_host = u.hostname
                u.port
                scheme = u.scheme.lower()
            except ValueError:
                cb_host, scheme = None, ""
            if scheme not in ("http", "https") or not cb_host:
                return self.bad_request("X-Callback-Url is not a valid URL")
        try:
            doc = json.loads(self.body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError):
            return self.bad_request("Body is not valid JSON")
        if not isinstance(doc, dict):
            return self.bad_request("Body must be a JSON object")
        amount = doc.get("amount")
        if not isinstance(amount, str) or not AMOUNT_RE.match(amount) or \
                float(amount) <= 0:
            return self.bad_request("amount must be a string holding a "
                                    "positive number")
        for f in ("currency", "externalId"):
            if not isinstance(doc.get(f), str):
                return self.bad_request("%s must be a string" % f)
        if not doc["currency"]:
            return self.bad_request("currency must not be empty")
        if party_field is not None and not self.party_ok(doc, party_field):
            return None
        for f in ("payerMessage", "payeeNote"):
            if not isinstance(doc.get(f), str):
                return self.bad_request("%s must be a string" % f)
        for f in ("payerMessage", "payeeNote"):
            if doc[f] == "":
                return self.send_json(500, INTERNAL_ERROR_BODY)
        for f in ("payerMessage", "payeeNote"):
            if len(doc[f]) > 160:
                return self.bad_request("%s is longer than 160 characters" % f)
            if FORBIDDEN_TEXT_CHARS & set(doc[f]):
                return self.bad_request("%s contains unsupported special "
                                        "characters" % f)
        with STATE.lock:
            currency = STATE.config["currency"]
            u = STATE.users.get(user)
            allowed = (u or {}).get("providerCallbackHost", "")
        if doc["currency"] != currency:
            return self.send_json(500, INVALID_CURRENCY_BODY)
        if cb_url is not None and cb_host.lower() != allowed.lower():
            return self.send_json(500, INVALID_CALLBACK_BODY)
        return user, ref, doc, cb_url

    def party_ok(self, doc, field):
        party = doc.get(field)
        if not isinstance(party, dict):
            self.bad_request("%s must be an object" % field)
            return False
        pt, pid = party.get("partyIdType"), party.get("partyId")
        if pt not in ("MSISDN", "EMAIL", "PARTY_CODE"):
            self.bad_request("%s.partyIdType must be MSISDN, EMAIL or "
                             "PARTY_CODE" % field)
            return False
        if not isinstance(pid, str) or not pid or \
                (pt == "MSISDN" and not DIGITS_RE.match(pid)):
            self.bad_request("%s.partyId is not valid" % field)
            return False
        return True

    def h_status(self, ref):
        if self.check_bearer("collection") is None:
            return
        with STATE.lock:
            p = STATE.payments.get(ref.lower())
            st = STATE.status_of(p) if p is not None else None
        if st is None:
            return self.send_json(404, NOT_FOUND_BODY)
        return self.send_json(200, st)

    def h_balance(self, product, currency):
        if self.check_bearer(product) is None:
            return
        with STATE.lock:
            cur = STATE.config["currency"]
            balance = STATE.balance(product)
        if currency is not None and unquote(currency) != cur:
            return self.send_json(500, INVALID_CURRENCY_BODY)
        return self.send_json(200, {"availableBalance": balance,
                                    "currency": cur})

    def h_accountholder(self, product, idtype, ident, what):
        if self.check_bearer(product) is None:
            return
        if idtype not in ("msisdn", "email", "party_code"):
            return self.bad_request("accountHolderIdType must be msisdn, "
                                    "email or party_code (lowercase)")
        if what == "active":
            return self.send_json(200, {"result": holder_active(ident)})
        if idtype != "msisdn":
            return self.send(404, APIM_404_BODY, "application/json")
        if not DIGITS_RE.match(ident):
            return self.bad_request("accountHolderId is not an MSISDN")
        return self.send_json(200, {
            "sub": "0", "name": "Sand Box", "given_name": "Sand",
            "family_name": "Box", "birthdate": "1976-08-13",
            "locale": "sv_SE", "gender": "MALE", "updated_at": 1739433600})

    # -- control API ------------------------------------------------------

    def control_json(self):
        if not self.body.strip():
            return {}
        try:
            return json.loads(self.body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise BadInput("body is not valid JSON")

    def control(self, path):
        try:
            return self._control(path)
        except BadInput as e:
            return self.send_json(400, {"ok": False, "error": str(e)},
                                  "application/json")

    def _control(self, path):
        m = self.command
        q = parse_qs(self.query, keep_blank_values=True)
        qpath = q.get("path", [""])[0]
        qmethod = q.get("method", [""])[0].upper()
        qproduct = q.get("product", [""])[0]
        ok = {"ok": True}
        J = "application/json"

        if path in ("/_emu/wait", "/_emu/rate", "/_emu/dropped") \
                and m == "GET":
            return self.control_reconcile(path, q, qpath, qmethod)
        if path == "/_emu/reset" and m == "POST":
            STATE.reset()
            return self.send_json(200, ok, J)
        if path in ("/_emu/health", "/_emu") and m == "GET":
            return self.send_json(200, ok, J)
        if path in ("/_emu/requests", "/_emu/count") and m == "GET":
            with STATE.lock:
                rows = [r for r in STATE.requests
                        if r["path"].startswith(qpath) and
                        (not qmethod or r["method"].upper() == qmethod) and
                        (not qproduct or r["product"] == qproduct)]
            if path == "/_emu/count":
                return self.send(200, str(len(rows)), "text/plain")
            return self.send_json(200, rows, J)
        if path in ("/_emu/callbacks", "/_emu/callbacks/count") and m == "GET":
            with STATE.lock:
                rows = list(STATE.callbacks)
            rows = [c for c in rows if callback_path(c["url"]).startswith(qpath)
                    and (not qmethod or c["method"] == qmethod)]
            if path == "/_emu/callbacks/count":
                return self.send(200, str(len(rows)), "text/plain")
            return self.send_json(200, rows, J)
        if path == "/_emu/faults":
            if m == "GET":
                with STATE.lock:
                    rows = [dict(f) for f in STATE.faults]
                return self.send_json(200, rows, J)
            if m == "DELETE":
                with STATE.lock:
                    STATE.faults = []
                return self.send_json(200, ok, J)
            if m == "POST":
                doc = self.control_json()
                items = doc if isinstance(doc, list) else [doc]
                faults = [check_fault(f) for f in items]
                ids = []
                with STATE.lock:
                    for f in faults:
                        STATE.fault_seq += 1
                        f["id"] = STATE.fault_seq
                        f["hits"] = 0
                        STATE.faults.append(f)
                        ids.append(f["id"])
                return self.send_json(200, {"ok": True, "ids": ids,
                                            "id": ids[-1] if ids else None}, J)
        if path == "/_emu/expire-tokens" and m == "POST":
            with STATE.lock:
                keep = {t: v for t, v in STATE.tokens.items()
                        if qproduct and v["product"] != qproduct}
                n = len(STATE.tokens) - len(keep)
                STATE.tokens = keep
            return self.send_json(200, {"ok": True, "expired": n}, J)
        if path == "/_emu/config":
            if m == "POST":
                upd = check_config(self.control_json())
                with STATE.lock:
                    STATE.config.update(upd)
                    cfg = dict(STATE.config)
                return self.send_json(200, cfg, J)
            if m == "GET":
                with STATE.lock:
                    cfg = dict(STATE.config)
                return self.send_json(200, cfg, J)
        r = re.fullmatch(r"/_emu/(payment|transfer|refund)s", path)
        if r and m == "GET":
            with STATE.lock:
                rows = [STATE.control_row(p)
                        for p in STATE.table(r.group(1)).values()]
            return self.send_json(200, rows, J)
        r = re.fullmatch(r"/_emu/(payment|transfer|refund)s/([^/]+)"
                         r"(/status)?", path)
        if r:
            kind, ref = r.group(1), unquote(r.group(2))
            if r.group(3) and m == "POST":
                doc = self.control_json()
                if not isinstance(doc, dict) or \
                        not isinstance(doc.get("status"), str) or \
                        not doc["status"]:
                    raise BadInput('body must be {"status": "...", '
                                   '"reason"?: ..., "callback"?: bool}')
                reason = doc.get("reason")
                if reason is not None and not isinstance(reason, str):
                    raise BadInput("reason must be a string")
                fin = doc.get("financialTransactionId")
                if fin is not None and not isinstance(fin, str):
                    raise BadInput("financialTransactionId must be a string")
                cb = doc.get("callback")
                if cb is not None and not isinstance(cb, bool):
                    raise BadInput("callback must be true or false")
                st = STATE.force_status(ref, doc["status"], reason, fin, cb,
                                        kind)
            elif not r.group(3) and m == "GET":
                with STATE.lock:
                    p = STATE.table(kind).get(ref.lower())
                    st = STATE.status_of(p) if p is not None else None
            else:
                st = False
            if st is None:
                return self.send_json(404, {"ok": False,
                                            "error": "unknown " + kind}, J)
            if st is not False:
                return self.send_json(200, st, J)
        if self.disb_control(path, m):
            return None
        return self.send_json(404, {"ok": False,
                                    "error": "unknown control endpoint"}, J)


def _number(q, name, default):
    try:
        return float(q.get(name, [default])[0])
    except ValueError:
        raise BadInput("%s must be a number" % name)


def _control_reconcile(self, path, q, qpath, qmethod):
    """GET /_emu/wait?path=P&count=N&timeout_ms=T: answers once N requests
    matched (or after T ms) with their number; GET /_emu/rate?path=P: the
    most requests seen within any second (window_ms=...); GET
    /_emu/dropped: callbacks lost on purpose (drop_callbacks)."""
    if path == "/_emu/wait":
        n = STATE.wait_for(qpath, qmethod, _number(q, "count", 1),
                           _number(q, "timeout_ms", 10000) / 1000.0)
        return self.send(200, str(n), "text/plain")
    if path == "/_emu/rate":
        n = STATE.peak_rate(qpath, qmethod,
                            _number(q, "window_ms", 1000) / 1000.0)
        return self.send(200, str(n), "text/plain")
    with STATE.lock:
        n = STATE.dropped_callbacks
    return self.send(200, str(n), "text/plain")


Handler.control_reconcile = _control_reconcile


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        if VERBOSE or not isinstance(exc, OSError):
            super().handle_error(request, client_address)


class Server6(Server):
    address_family = socket.AF_INET6


def parse_listen(s):
    if ":" not in s or (s.startswith("[") and s.endswith("]")):
        return "127.0.0.1", int(s)
    host, _, port = s.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


def main(argv=None):
    global STATE, VERBOSE
    ap = argparse.ArgumentParser(description="MTN MoMo sandbox emulator")
    ap.add_argument("--listen", default="127.0.0.1:8099",
                    help="HOST:PORT (port 0 picks a free port)")
    ap.add_argument("--api-user", default=DEFAULT_API_USER)
    ap.add_argument("--api-key", default=DEFAULT_API_KEY)
    ap.add_argument("--subscription-key", action="append",
                    help="accepted Ocp-Apim-Subscription-Key (repeatable; "
                         "replaces the default)")
    ap.add_argument("--disbursement-api-user", default=DEFAULT_DISB_API_USER)
    ap.add_argument("--disbursement-api-key", default=DEFAULT_DISB_API_KEY)
    ap.add_argument("--disbursement-subscription-key", action="append",
                    help="accepted Disbursement Ocp-Apim-Subscription-Key "
                         "(repeatable; replaces the default)")
    ap.add_argument("--callback-host", default=DEFAULT_CALLBACK_HOST,
                    help="providerCallbackHost of the preseeded API user")
    ap.add_argument("--pending-seconds", type=float, default=None)
    ap.add_argument("--token-ttl", type=int, default=None)
    ap.add_argument("--callback-timeout-ms", type=float, default=None,
                    help="how long a callback waits for its answer "
                         "(config callback_timeout_ms; default 2000)")
    ap.add_argument("--log-limit", type=int, default=100000,
                    help="keep at most N logged requests (0: unlimited)")
    ap.add_argument("--verbose", action="store_true",
                    help="access and callback logs on stderr")
    ap.add_argument("--quiet", action="store_true",
                    help="no access logs (the default)")
    opts = ap.parse_args(argv)
    VERBOSE = opts.verbose and not opts.quiet
    try:
        host, port = parse_listen(opts.listen)
    except ValueError:
        ap.error("--listen must be HOST:PORT")
    STATE = State(opts)
    cls = Server6 if ":" in host else Server
    try:
        httpd = cls((host, port), Handler)
    except OSError as e:
        sys.stderr.write("momo emulator: cannot listen on %s: %s\n"
                         % (opts.listen, e))
        return 1

    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    addr = httpd.server_address
    shown = "[%s]" % addr[0] if ":" in addr[0] else addr[0]
    sys.stdout.write("momo emulator listening on %s:%d\n" % (shown, addr[1]))
    sys.stdout.flush()
    try:
        httpd.serve_forever(poll_interval=0.5)
    except SystemExit:
        pass
    finally:
        httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
