"""fake_receiver: a small notification receiver for the tests, run in the
test's own process. A threaded HTTP server on a loopback port that:

- verifies Orderd-Signature (any "sha256=<hex>" of the comma list must
  match the HMAC-SHA256 of the raw body under one of its secrets, compared
  with hmac.compare_digest), as a real receiver would;
- logs every delivery (headers, raw body, parsed body, what it answered);
- deduplicates by Idempotency-Key: `accepted` holds each key it took once;
- can be told to be down (the port refuses connections), slow, or to
  answer 500 or garbage (a response that is no HTTP at all).

Usage:
    r = FakeReceiver(secrets=["..."]).start()
    ... r.url ...
    r.set_mode("down") / "ok" / "500" / "garbage" / ("slow", seconds)
    r.stop()
"""

import hashlib
import hmac
import http.server
import json
import socket
import threading
import time


def signature_ok(header, body, secrets):
    """True when one sha256=<hex> entry of header matches body under one
    of secrets (the receiver-side check the docs describe)."""
    if not header:
        return False
    for part in header.split(","):
        part = part.strip()
        if not part.startswith("sha256="):
            continue
        got = part[len("sha256="):]
        for s in secrets:
            want = hmac.new(s.encode(), body, hashlib.sha256).hexdigest()
            if hmac.compare_digest(want, got):
                return True
    return False


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def do_POST(self):
        r = self.server.receiver
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n)
        mode = r.mode
        if isinstance(mode, tuple) and mode[0] == "slow":
            time.sleep(mode[1])
        key = self.headers.get("Idempotency-Key")
        sig_ok = signature_ok(self.headers.get("Orderd-Signature"), raw,
                              r.secrets)
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if mode == "garbage":
            answer = "garbage"
        elif mode == "500":
            answer = 500
        elif not sig_ok:
            answer = 401
        else:
            answer = 200
        with r.lock:
            r.log.append({"key": key, "headers": dict(self.headers),
                          "raw": raw, "body": body, "sig_ok": sig_ok,
                          "answer": answer, "at": time.time()})
            if answer == 200:
                if key in r.accepted:
                    r.duplicates += 1
                else:
                    r.accepted[key] = body
        if answer == "garbage":
            self.wfile.write(b"\x00\x01 not http at all\r\n\r\n")
            self.close_connection = True
            return
        out = b'{"ok":true}' if answer == 200 else b'{"error":"no"}'
        self.send_response(answer)
        if answer == 500 and r.retry_after is not None:
            self.send_header("Retry-After", str(r.retry_after))
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # orderd opens up to ORDERD_NOTIFY_CONCURRENCY connections at once; the
    # default backlog of 5 would drop their SYNs (1 s retransmits).
    request_queue_size = 256

    def handle_error(self, request, client_address):
        pass  # orderd hung up first (its timeout): not the test's concern


class FakeReceiver:
    def __init__(self, secrets, path="/hook", host="127.0.0.1"):
        self.host = host
        self.secrets = list(secrets)
        self.path = path
        self.lock = threading.Lock()
        self.log = []
        self.accepted = {}
        self.duplicates = 0
        self.mode = "ok"
        self.retry_after = None
        self.port = None
        self._srv = None
        self._thread = None

    @property
    def url(self):
        return self.url_for("127.0.0.1")

    def url_for(self, host):
        """The URL as seen from host (when bound to 0.0.0.0)."""
        return "http://%s:%d%s" % (host, self.port, self.path)

    def start(self):
        if self.port is None:
            s = socket.socket()
            s.bind((self.host, 0))
            self.port = s.getsockname()[1]
            s.close()
        self._srv = _Server((self.host, self.port), _Handler)
        self._srv.receiver = self
        self._thread = threading.Thread(target=self._srv.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def _close(self):
        if self._srv is not None:
            self._srv.shutdown()
            self._srv.server_close()
            self._srv = None

    def set_mode(self, mode):
        """"ok", "500", "garbage", ("slow", seconds), or "down" (the
        port refuses connections until the next other mode)."""
        if mode == "down":
            self._close()
        elif self._srv is None:
            self.start()
        self.mode = mode

    def stop(self):
        self._close()

    def snapshot(self):
        with self.lock:
            return list(self.log), dict(self.accepted), self.duplicates

    def wait_accepted(self, n, timeout=60.0):
        """Waits until n distinct keys were accepted; returns them."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                if len(self.accepted) >= n:
                    return dict(self.accepted)
            time.sleep(0.05)
        with self.lock:
            raise AssertionError("receiver accepted %d of %d keys"
                                 % (len(self.accepted), n))
