"""test_events: GET /v1/events (SSE) against the real orderd: the retry
frame, stats ticks with the issue 10 fields, order events for submitted and
completed orders, auth, 503 past ORDERD_MAX_STREAMS, a reader that never
reads is dropped while the daemon stays healthy, and SIGTERM ends streams
and the daemon promptly."""

import json
import os
import signal
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import order  # noqa: E402
from test_api import uid  # noqa: E402

TOKEN = "ev-tok"


class Stream:
    """A raw HTTP/1.1 GET /v1/events with a minimal chunked decoder."""

    def __init__(self, port, token=TOKEN, rcvbuf=None, timeout=10):
        self.s = socket.socket()
        if rcvbuf:
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.s.settimeout(timeout)
        self.s.connect(("127.0.0.1", port))
        auth = "Authorization: Bearer %s\r\n" % token if token else ""
        self.s.sendall(("GET /v1/events HTTP/1.1\r\nHost: x\r\n%s\r\n"
                        % auth).encode())
        self.raw = b""
        self.body = b""
        self.eof = False
        self.status, self.headers = self._head()

    def _recv(self):
        d = self.s.recv(65536)
        if not d:
            self.eof = True
        self.raw += d

    def _head(self):
        while b"\r\n\r\n" not in self.raw and not self.eof:
            self._recv()
        head, _, self.raw = self.raw.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        hdr = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            hdr[k.strip().lower()] = v.strip()
        return int(lines[0].split()[1]), hdr

    def _decode(self):
        while True:
            i = self.raw.find(b"\r\n")
            if i < 0:
                return
            n = int(self.raw[:i].split(b";")[0], 16)
            if n == 0:
                self.eof = True
                return
            if len(self.raw) < i + 2 + n + 2:
                return
            self.body += self.raw[i + 2:i + 2 + n]
            self.raw = self.raw[i + 2 + n + 2:]

    def frame(self, deadline):
        """The next frame as (event, data), or None at EOF/deadline."""
        while True:
            self._decode()
            if b"\n\n" in self.body:
                f, _, self.body = self.body.partition(b"\n\n")
                ev, data = None, None
                for ln in f.decode().split("\n"):
                    if ln.startswith("event: "):
                        ev = ln[7:]
                    elif ln.startswith("data: "):
                        data = ln[6:]
                    elif ln.startswith("retry: "):
                        ev, data = "retry", ln[7:]
                    elif ln.startswith(":"):
                        ev = "comment"
                return ev, data
            if self.eof or time.time() > deadline:
                return None
            try:
                self._recv()
            except socket.timeout:
                return None
            except OSError:
                self.eof = True

    def events(self, name, pred, timeout=10):
        deadline = time.time() + timeout
        while True:
            f = self.frame(deadline)
            if f is None:
                return None
            if f[0] == name:
                data = json.loads(f[1])
                if pred(data):
                    return data

    def close(self):
        self.s.close()


def open_stream(port, **kw):
    """A closed stream's slot is freed at its next write (<= 1 s, the
    tick): retry a 503 for a moment."""
    deadline = time.time() + 4
    while True:
        s = Stream(port, **kw)
        if s.status != 503 or time.time() > deadline:
            return s
        s.close()
        time.sleep(0.2)


class EventsTest(unittest.TestCase):
    env = {"ORDERD_WORKERS": "1", "ORDERD_API_TOKENS": TOKEN,
           "ORDERD_MAX_STREAMS": "3"}

    @classmethod
    def setUpClass(cls):
        cls.db = H.Database(cls.__name__)
        cls.d = H.Daemon(cls.db.uri, env=cls.env, name=cls.__name__,
                         token=TOKEN)
        cls.d.start()
        cls.c = cls.d.client

    @classmethod
    def tearDownClass(cls):
        cls.d.stop(timeout=15)
        cls.db.drop()

    def test_stats_and_orders(self):
        s = open_stream(self.d.port)
        try:
            self.assertEqual(s.status, 200)
            self.assertTrue(s.headers["content-type"].startswith(
                "text/event-stream"), s.headers)
            self.assertEqual(s.frame(time.time() + 5), ("retry", "2000"))
            st = s.events("stats", lambda d: True, timeout=5)
            self.assertIsNotNone(st, "no stats tick")
            for k in ("completed_per_s", "rejected_per_s", "failed_per_s",
                      "processed_per_s", "submitted_per_s"):
                self.assertIn(k, st["throughput"], st)
            self.assertEqual(st["alert_threshold"], 0.05, st)
            self.assertIsInstance(st["leases"], list, st)
            self.assertIn("replicas_seen", st)
            sku = uid("sku")
            H.set_stock(self.c, sku, 5)
            oid = uid()
            code, _, body = self.c.api("POST", "/v1/orders", json=order(
                oid, items=[{"sku": sku, "qty": 1}]))
            self.assertEqual(code, 201, body)
            ev = s.events("order", lambda d: d["id"] == oid)
            self.assertIsNotNone(ev, "no submit event")
            self.assertEqual((ev["event"], ev["status"], ev["fence"]),
                             ("submit", "pending", None), ev)
            self.assertIsInstance(ev["replica"], str)
            self.assertIn("at", ev)
            self.assertIn("reason", ev)
            ev = s.events("order", lambda d: d["id"] == oid)
            self.assertIsNotNone(ev, "no complete event")
            self.assertEqual((ev["event"], ev["status"]),
                             ("complete", "completed"), ev)
            self.assertIsInstance(ev["fence"], int, ev)
        finally:
            s.close()

    def test_auth(self):
        for tok in (None, "nope"):
            s = Stream(self.d.port, token=tok)
            self.assertEqual(s.status, 401, tok)
            s.close()

    def test_max_streams(self):
        streams = [open_stream(self.d.port) for _ in range(3)]
        try:
            for s in streams:
                self.assertEqual(s.status, 200)
            extra = Stream(self.d.port)
            self.assertEqual(extra.status, 503)
            self.assertIn("retry-after", extra.headers)
            extra.close()
        finally:
            for s in streams:
                s.close()
        # The slots come back once the streams are gone.
        s = open_stream(self.d.port)
        self.assertEqual(s.status, 200, "stream slots not released")
        s.close()

    def test_slow_reader_dropped(self):
        slow = open_stream(self.d.port, rcvbuf=4096)
        self.assertEqual(slow.status, 200)
        try:
            deadline = time.time() + 20
            dropped = 0
            n = 0
            while time.time() < deadline and dropped < 1:
                batch = [order("slow-%s-%06d-%s" % (H.rand_suffix(8), n + i,
                                                    "x" * 30),
                               items=[{"sku": "no-such-sku", "qty": 1}])
                         for i in range(200)]
                n += len(batch)
                code, _, body = self.c.api("POST", "/v1/orders/batch",
                                           json={"orders": batch})
                self.assertEqual(code, 200, body)
                dropped = H.metric_sum(
                    self.d.metrics(),
                    "orderd_event_streams_dropped_total") or 0
            self.assertGreaterEqual(dropped, 1, "never dropped (%d orders)"
                                    % n)
            code, _, _ = self.c.api("GET", "/readyz")
            self.assertEqual(code, 200)
            self.assertTrue(self.d.alive())
        finally:
            slow.close()


class EventsShutdownTest(unittest.TestCase):
    def test_sigterm_ends_stream(self):
        with H.Database("EventsShutdown") as db:
            d = H.Daemon(db.uri, env={"ORDERD_WORKERS": "1"},
                         name="EventsShutdown").start()
            try:
                s = Stream(d.port, token=None)
                self.assertEqual(s.status, 200)
                self.assertEqual(s.frame(time.time() + 5)[0], "retry")
                t0 = time.time()
                d.send_signal(signal.SIGTERM)
                while s.frame(time.time() + 5) is not None:
                    pass
                self.assertTrue(s.eof, "stream did not end")
                self.assertLess(time.time() - t0, 4)
                d.proc.wait(5)
                self.assertEqual(d.proc.returncode, 0)
                self.assertLess(time.time() - t0, 5)
                s.close()
            finally:
                d.stop(timeout=10)


if __name__ == "__main__":
    unittest.main()
