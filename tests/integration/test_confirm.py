"""test_confirm: the confirm step against a real fake service over real
HTTP (tests/integration/fake_confirm.py), on each backend.

- 503 three times, then 200: completed after 4 attempts, the same
  Idempotency-Key (the order id) on every call, attempts numbered 1..4,
  gaps within the backoff ceilings and growing on average (full jitter);
- always 500: failed after ORDERD_MAX_ATTEMPTS, reason kept, stock released;
- 402: rejected, reason declined, stock released, one call;
- slower than ORDERD_CONFIRM_TIMEOUT_MS: abandoned and retried;
- Retry-After honoured;
- 200 orders against a service that takes 200 ms per call finish in far
  less than 200 x 0.2 s;
- SIGTERM while a call is in flight: exit within the drain time, the
  order handed back holding its stock, confirmed once after a restart;
- (PostgreSQL, where replicas run) a replica SIGSTOPped during the
  confirm call past its lease: another replica completes the order, the
  stalled one, resumed, changes nothing and counts a fence rejection;
  `orderctl verify` clean after each test.
"""

import os
import signal
import statistics
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from fake_confirm import FakeConfirm  # noqa: E402


class ConfirmTest(unittest.TestCase):
    def setUp(self):
        self.db = H.Database("confirm")
        self.fc = FakeConfirm()
        self.ds = []

    def tearDown(self):
        for d in self.ds:
            try:
                os.kill(d.pid, signal.SIGCONT)
            except (OSError, AttributeError, TypeError):
                pass
            d.kill()
        self.fc.close()
        self.db.drop()

    def daemon(self, env=None, name="confirm"):
        e = {"ORDERD_CONFIRM_URL": self.fc.url, "ORDERD_WORKERS": "2",
             "ORDERD_POLL_MS": "20", "ORDERD_REAP_MS": "100"}
        e.update(env or {})
        d = H.Daemon(self.db.uri, name=name, env=e)
        self.ds.append(d)
        return d.start()

    def submit(self, c, ids, sku="SKU-1", qty=1):
        for i in range(0, len(ids), 100):
            chunk = ids[i:i + 100]
            st, _, body = c.api("POST", "/v1/orders/batch", json={
                "orders": [H.order(o, items=[{"sku": sku, "qty": qty}])
                           for o in chunk]})
            self.assertIn(st, (200, 201), body)

    def assert_verified(self):
        rc, out = H.verify(self.db.uri)
        self.assertEqual(rc, 0, out)

    def test_transient_then_ok(self):
        self.fc.script = lambda oid, a: (503, 0, {}) if a <= 3 else \
            (200, 0, {})
        d = self.daemon({"ORDERD_RETRY_BASE_MS": "200",
                         "ORDERD_MAX_ATTEMPTS": "8"})
        H.set_stock(d.client, "SKU-1", 1000)
        ids = ["t%02d" % i for i in range(20)]
        self.submit(d.client, ids)
        done = H.wait_terminal(d.client, ids, timeout=60)
        gaps = {1: [], 2: [], 3: []}
        for oid in ids:
            self.assertEqual(done[oid]["status"], "completed", done[oid])
            self.assertEqual(done[oid]["attempts"], 4)
            calls = self.fc.calls_for(oid)
            self.assertEqual([c.attempt for c in calls], [1, 2, 3, 4])
            self.assertEqual({c.key for c in calls}, {oid})
            for k in (1, 2, 3):
                gap = calls[k].at - calls[k - 1].at
                # Full jitter: uniform in [0, 200 * 2^(k-1)] ms, plus
                # the poll and scheduling.
                self.assertLess(gap, 0.2 * 2 ** (k - 1) + 1.0, (oid, k))
                gaps[k].append(gap)
        means = [statistics.mean(gaps[k]) for k in (1, 2, 3)]
        self.assertLess(means[0], means[2], means)
        self.assertEqual(H.get_order(d.client, ids[0])[2]["status"],
                         "completed")
        st, _, p = d.client.api("GET", "/v1/products/SKU-1")
        self.assertEqual(p["stock"], 1000 - len(ids))
        m = d.metrics()
        self.assertEqual(H.metric_sum(m, "orderd_confirm_requests_total",
                                      outcome="error"), 60)
        self.assertEqual(H.metric_sum(m, "orderd_confirm_requests_total",
                                      outcome="confirmed"), 20)
        self.assert_verified()

    def test_always_500_fails_and_releases(self):
        held = {}

        def script(oid, a):
            # While a confirm is in flight the stock is held.
            st, _, p = client.api("GET", "/v1/products/SKU-1")
            held.setdefault(a, p["stock"])
            return 500, 0, {}
        self.fc.script = script
        d = self.daemon({"ORDERD_MAX_ATTEMPTS": "3",
                         "ORDERD_RETRY_BASE_MS": "20"})
        client = d.client
        H.set_stock(d.client, "SKU-1", 10)
        self.submit(d.client, ["f1"], qty=4)
        o = H.wait_terminal(d.client, ["f1"])["f1"]
        self.assertEqual(o["status"], "failed")
        self.assertEqual(o["reason"], "confirm: HTTP 500")
        self.assertEqual(len(self.fc.calls_for("f1")), 3)
        self.assertEqual(held, {1: 6, 2: 6, 3: 6})
        st, _, p = d.client.api("GET", "/v1/products/SKU-1")
        self.assertEqual(p["stock"], 10)
        self.assert_verified()

    def test_declined(self):
        self.fc.script = lambda oid, a: (402, 0, {})
        d = self.daemon()
        H.set_stock(d.client, "SKU-1", 10)
        self.submit(d.client, ["d1"], qty=3)
        o = H.wait_terminal(d.client, ["d1"])["d1"]
        self.assertEqual(o["status"], "rejected")
        self.assertEqual(o["reason"], "declined")
        self.assertEqual(len(self.fc.calls_for("d1")), 1)
        st, _, p = d.client.api("GET", "/v1/products/SKU-1")
        self.assertEqual(p["stock"], 10)
        self.assert_verified()

    def test_408_and_429_are_transient(self):
        self.fc.script = lambda oid, a: ((408 if oid == "a" else 429), 0,
                                         {}) if a == 1 else (200, 0, {})
        d = self.daemon({"ORDERD_RETRY_BASE_MS": "20"})
        H.set_stock(d.client, "SKU-1", 10)
        self.submit(d.client, ["a", "b"])
        done = H.wait_terminal(d.client, ["a", "b"])
        for oid in ("a", "b"):
            self.assertEqual(done[oid]["status"], "completed")
            self.assertEqual(len(self.fc.calls_for(oid)), 2)

    def test_slow_call_times_out_and_retries(self):
        self.fc.script = lambda oid, a: (200, 2.0, {}) if a == 1 else \
            (200, 0, {})
        d = self.daemon({"ORDERD_CONFIRM_TIMEOUT_MS": "400",
                         "ORDERD_RETRY_BASE_MS": "20"})
        H.set_stock(d.client, "SKU-1", 10)
        self.submit(d.client, ["s1"])
        o = H.wait_terminal(d.client, ["s1"])["s1"]
        self.assertEqual(o["status"], "completed")
        self.assertEqual(o["attempts"], 2)
        calls = self.fc.calls_for("s1")
        self.assertEqual(len(calls), 2)
        self.assertLess(calls[1].at - calls[0].at, 1.9)

    def test_retry_after_honoured(self):
        self.fc.script = lambda oid, a: (503, 0, {"Retry-After": "2"}) \
            if a == 1 else (200, 0, {})
        d = self.daemon({"ORDERD_RETRY_BASE_MS": "10"})
        H.set_stock(d.client, "SKU-1", 10)
        self.submit(d.client, ["r1"])
        # Between the attempts it is pending and holds its stock: a cancel
        # is refused, its confirmation may have gone through.
        deadline = time.monotonic() + 5
        while not self.fc.calls_for("r1"):
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.01)
        while H.get_order(d.client, "r1")[2]["status"] != "pending":
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.02)
        st, _, body = d.client.api("POST", "/v1/orders/r1/cancel")
        self.assertEqual(st, 409, body)
        self.assertEqual(body["error"]["code"], "conflict")
        self.assertIn("awaiting a confirm retry", body["error"]["message"])
        st, _, p = d.client.api("GET", "/v1/products/SKU-1")
        self.assertEqual(p["stock"], 9)
        H.wait_terminal(d.client, ["r1"])
        calls = self.fc.calls_for("r1")
        self.assertEqual(len(calls), 2)
        self.assertGreaterEqual(calls[1].at - calls[0].at, 1.9)

    def test_many_in_flight(self):
        self.fc.script = lambda oid, a: (200, 0.2, {})
        d = self.daemon({"ORDERD_CONFIRM_CONCURRENCY": "64"})
        H.set_stock(d.client, "SKU-1", 1000)
        ids = ["m%03d" % i for i in range(200)]
        t0 = time.monotonic()
        self.submit(d.client, ids)
        done = H.wait_terminal(d.client, ids, timeout=60)
        took = time.monotonic() - t0
        self.assertTrue(all(o["status"] == "completed"
                            for o in done.values()))
        # One at a time would take 40 s; 64 at once about 1 s here
        # (release build; sanitizers are slower).
        self.assertLess(took, 5.0, took)
        self.assert_verified()

    def test_drain_hands_back_calls_in_flight(self):
        slow = {"on": True}
        self.fc.script = lambda oid, a: (200, 5.0 if slow["on"] else 0, {})
        d = self.daemon({"ORDERD_DRAIN_MS": "1500"})
        H.set_stock(d.client, "SKU-1", 10)
        self.submit(d.client, ["h1"], qty=3)
        deadline = time.monotonic() + 10
        while not self.fc.calls_for("h1"):
            self.assertLess(time.monotonic(), deadline, "no confirm call")
            time.sleep(0.02)
        t0 = time.monotonic()
        self.assertEqual(d.stop(), 0)
        self.assertLess(time.monotonic() - t0, 3.0)
        # Handed back holding its stock, the attempt not counted (left to
        # its 10 s lease instead, the next claim would be attempt 2); the
        # next start confirms it again with the same key.
        slow["on"] = False
        d2 = self.daemon()
        o = H.wait_terminal(d2.client, ["h1"])["h1"]
        self.assertEqual(o["status"], "completed")
        self.assertEqual(o["attempts"], 1)
        self.assertEqual({c.key for c in self.fc.calls_for("h1")}, {"h1"})
        st, _, p = d2.client.api("GET", "/v1/products/SKU-1")
        self.assertEqual(p["stock"], 7)
        self.assert_verified()

    # Replicas share PostgreSQL; on SQLite orderd is one process, and a
    # second process cannot even open the file while the stopped one
    # holds its write lock (seen in CI: exit 69 "store is unavailable").
    # The stale holder on SQLite is test_store_confirm.c's
    # test_stale_holder_fenced.
    @unittest.skipUnless(H.BACKEND == "postgres",
                         "replicas share a PostgreSQL database")
    def test_stalled_holder_is_fenced(self):
        lease_ms = 1500
        self.fc.script = lambda oid, a: (200, 4.0, {}) if a == 1 else \
            (200, 0, {})
        env = {"ORDERD_LEASE_MS": str(lease_ms),
               "ORDERD_CONFIRM_TIMEOUT_MS": "8000"}
        a = self.daemon(env, name="confirm-a")
        H.set_stock(a.client, "SKU-1", 10)
        self.submit(a.client, ["x1"], qty=2)
        deadline = time.monotonic() + 10
        while not self.fc.calls_for("x1"):
            self.assertLess(time.monotonic(), deadline, "no confirm call")
            time.sleep(0.02)
        os.kill(a.pid, signal.SIGSTOP)
        try:
            # B reaps the expired lease and completes the order with the
            # same Idempotency-Key.
            b = self.daemon(env, name="confirm-b")
            o = H.wait_terminal(b.client, ["x1"], timeout=30)["x1"]
            self.assertEqual(o["status"], "completed")
            time.sleep(2 * lease_ms / 1000.0 + 1)
        finally:
            os.kill(a.pid, signal.SIGCONT)
        deadline = time.monotonic() + 15
        while True:
            m = a.metrics()
            if H.metric_sum(m, "orderd_fence_rejections_total") >= 1:
                break
            self.assertLess(time.monotonic(), deadline,
                            "the stalled replica counted no fence rejection")
            time.sleep(0.1)
        calls = self.fc.calls_for("x1")
        self.assertEqual({c.key for c in calls}, {"x1"})
        self.assertGreaterEqual(len(calls), 2)
        st, _, o = b.client.api("GET", "/v1/orders/x1")
        self.assertEqual(o["status"], "completed")
        st, _, p = b.client.api("GET", "/v1/products/SKU-1")
        self.assertEqual(p["stock"], 8)
        self.assertEqual(H.metric_sum(a.metrics(),
                                      "orderd_orders_processed_total",
                                      outcome="completed"), 0)
        self.assert_verified()


if __name__ == "__main__":
    H.main()
