#!/usr/bin/python3
"""A small HTTP/2 client (prior knowledge, cleartext) for the momo tests.

    h2client.py --port P [--window N] [--hold S] [--cancel-when URL=VALUE]
                [--header NAME:VALUE]... [--timeout S] REQUEST...

REQUEST is "METHOD PATH" or "METHOD PATH BODY" (a JSON body is sent with
Content-Type: application/json).  All requests go out at once, on one
connection, as streams 1, 3, 5...

--window N      the streams' initial flow-control window (SETTINGS); 0
                holds every response body back
--hold S        once every stream has its response headers (or S seconds
                have passed), wait S more seconds, then open the windows
                (streams and connection) wide; without it, windows are
                opened as data arrives
--busy          the first request's body is not acknowledged until the
                hold ends: it fills the connection's window, so the other
                streams' bodies wait for it (a busy connection)
--cancel-when URL=VALUE
                poll URL until its body is VALUE, then cancel the last
                stream with RST_STREAM (CANCEL) and keep the connection
                open until the other streams end (or --linger seconds)
--header NAME:VALUE
                sent with every request (an Idempotency-Key)

Prints one JSON line per stream: {"stream", "status", "body", "ended"}.

With TEST_NGINX_USE_VALGRIND set, --timeout is 10 times longer (as
t::MomoHttp's waits), and nginx may not listen yet when the client
starts: it connects again until --timeout.  --linger is not: a test
times it against limits valgrind does not stretch (the lease of a status
query, how long a sandbox payment stays pending).
"""

import argparse
import json
import os
import socket
import sys
import time
import urllib.request

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings


WIDE = 1 << 24


SLOW = 1 if os.environ.get("TEST_NGINX_USE_VALGRIND", "") in ("", "0") else 10


def connect(port, timeout):
    end = time.time() + timeout
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port),
                                            timeout=timeout)
        except ConnectionRefusedError:
            if time.time() > end:
                raise
            time.sleep(0.05)


def poll(url, value, timeout):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.read().decode().strip() == value:
                    return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def receive(sock, conn):
    """The events of what arrived: [] after a quiet 0.1 s, None at EOF."""
    try:
        data = sock.recv(65536)
    except socket.timeout:
        return []
    if not data:
        return None
    return conn.receive_data(data)


def flush(sock, conn):
    out = conn.data_to_send()
    if out:
        sock.sendall(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--window", type=int, default=None)
    ap.add_argument("--hold", type=float, default=None)
    ap.add_argument("--busy", action="store_true")
    ap.add_argument("--cancel-when", default=None)
    ap.add_argument("--linger", type=float, default=3)
    ap.add_argument("--timeout", type=float, default=10)
    ap.add_argument("--header", action="append", default=[])
    ap.add_argument("requests", nargs="+")
    a = ap.parse_args()
    a.timeout *= SLOW

    sock = connect(a.port, a.timeout)
    conn = h2.connection.H2Connection(
        config=h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    if a.window is not None:
        conn.update_settings(
            {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: a.window})

    streams = {}
    order = []
    for req in a.requests:
        parts = req.split(" ", 2)
        method, path = parts[0], parts[1]
        body = parts[2].encode() if len(parts) > 2 else b""
        sid = conn.get_next_available_stream_id()
        headers = [(":method", method), (":path", path),
                   (":scheme", "http"), (":authority", "localhost")]
        if body:
            headers += [("content-type", "application/json"),
                        ("content-length", str(len(body)))]
        headers += [(n.strip().lower(), v.strip())
                    for n, v in (h.split(":", 1) for h in a.header)]
        conn.send_headers(sid, headers, end_stream=not body)
        if body:
            conn.send_data(sid, body, end_stream=True)
        streams[sid] = {"stream": sid, "status": None, "body": b"",
                        "ended": False, "headers": False}
        order.append(sid)
    sock.sendall(conn.data_to_send())

    held = a.hold is not None
    all_headers_at = None
    start = time.time()
    cancelled = None
    unacked = {}

    if a.cancel_when:
        url, value = a.cancel_when.rsplit("=", 1)
        if poll(url, value, a.timeout):
            cancelled = order[-1]
            conn.reset_stream(cancelled, h2.errors.ErrorCodes.CANCEL)
            streams[cancelled]["ended"] = "cancelled"
            sock.sendall(conn.data_to_send())

    deadline = start + a.timeout
    sock.settimeout(0.1)

    while time.time() < deadline:
        live = [s for s in streams.values() if not s["ended"]]
        if not live:
            break
        if cancelled and time.time() > start + a.timeout - 0.1:
            break

        if held:
            if all_headers_at is None and (
                    all(s["headers"] or s["ended"] for s in streams.values())
                    or time.time() - start > a.hold):
                all_headers_at = time.time()
            if all_headers_at and time.time() - all_headers_at >= a.hold:
                held = False
                conn.increment_flow_control_window(WIDE)
                for sid, s in streams.items():
                    if not s["ended"]:
                        conn.increment_flow_control_window(WIDE, sid)
                for sid, n in unacked.items():
                    conn.acknowledge_received_data(n, sid)
                unacked.clear()
                sock.sendall(conn.data_to_send())

        events = receive(sock, conn)
        if events is None:
            break

        for ev in events:
            if isinstance(ev, h2.events.ResponseReceived):
                s = streams.get(ev.stream_id)
                if s:
                    s["headers"] = True
                    s["status"] = int(dict(ev.headers)[b":status"])
            elif isinstance(ev, h2.events.DataReceived):
                s = streams.get(ev.stream_id)
                if s:
                    s["body"] += ev.data
                n = ev.flow_controlled_length
                if held and a.busy and ev.stream_id == order[0]:
                    unacked[ev.stream_id] = unacked.get(ev.stream_id, 0) + n
                elif n and not (ev.stream_id == cancelled):
                    conn.acknowledge_received_data(n, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                s = streams.get(ev.stream_id)
                if s and s["ended"] is False:
                    s["ended"] = True
            elif isinstance(ev, h2.events.StreamReset):
                s = streams.get(ev.stream_id)
                if s and s["ended"] is False:
                    s["ended"] = "reset"
        flush(sock, conn)

    if cancelled:
        linger = time.time() + a.linger
        while time.time() < linger:
            if receive(sock, conn) is None:
                break
            flush(sock, conn)

    try:
        conn.close_connection()
        sock.sendall(conn.data_to_send())
    except OSError:
        pass
    sock.close()

    for sid in order:
        s = streams[sid]
        print(json.dumps({"stream": sid, "status": s["status"],
                          "body": s["body"].decode("utf-8", "replace"),
                          "ended": s["ended"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
