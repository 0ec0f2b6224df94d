"""fake_confirm: a small confirm service for the tests. It answers POSTs
by a script the test sets, per order id or for all, and logs every call:
the order id, the attempt, the Idempotency-Key header and the monotonic
time it arrived.

    fc = FakeConfirm()             # listens on 127.0.0.1, a free port
    fc.script = lambda oid, attempt: (503, 0.0, {"Retry-After": "1"})
    ... ORDERD_CONFIRM_URL=fc.url ...
    fc.calls_for("o1")             # [Call(...), ...] in arrival order
    fc.close()

A script returns (status, delay_s, headers): the answer is sent after
delay_s seconds (slower than orderd's timeout: orderd gives up first).
status "drop" closes the connection unanswered, "garbage" answers bytes
that are no HTTP at all.
"""

import http.server
import json
import threading
import time
from collections import namedtuple

Call = namedtuple("Call", "order_id attempt key at")


class FakeConfirm:
    def __init__(self, script=None, host="127.0.0.1"):
        self.host = host
        self.script = script or (lambda oid, attempt: (200, 0.0, {}))
        self.calls = []
        self.lock = threading.Lock()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                at = time.monotonic()
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n) or b"{}")
                oid = body.get("order", {}).get("id")
                attempt = body.get("attempt")
                with fake.lock:
                    fake.calls.append(Call(oid, attempt,
                                           self.headers.get("Idempotency-Key"),
                                           at))
                status, delay, headers = fake.script(oid, attempt)
                if delay:
                    time.sleep(delay)
                if status == "drop":        # no answer at all
                    self.close_connection = True
                    return
                if status == "garbage":     # an answer that is no HTTP
                    self.wfile.write(b"\x00\x01 not http at all\r\n\r\n")
                    self.close_connection = True
                    return
                out = b'{"ok": true}'
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                except OSError:
                    pass  # orderd gave up on the call first

        class Server(http.server.ThreadingHTTPServer):
            # orderd opens up to ORDERD_CONFIRM_CONCURRENCY connections at
            # once; the default backlog of 5 would drop their SYNs.
            request_queue_size = 256

        self.server = Server((host, 0), Handler)
        self.server.daemon_threads = True
        # orderd closes connections it gave up on: not the test's concern.
        self.server.handle_error = lambda request, address: None
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()

    @property
    def url(self):
        return self.url_for("127.0.0.1")

    def url_for(self, host):
        """The URL as seen from host (when bound to 0.0.0.0)."""
        return "http://%s:%d/confirm" % (host, self.server.server_address[1])

    def calls_for(self, oid):
        with self.lock:
            return [c for c in self.calls if c.order_id == oid]

    def count(self):
        with self.lock:
            return len(self.calls)

    def close(self):
        self.server.shutdown()
        self.server.server_close()
