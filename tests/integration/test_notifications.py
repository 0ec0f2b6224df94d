"""test_notifications: signed, at-least-once notifications through the
outbox (G9), end to end: the real daemon, real HTTP, a fake receiver
(fake_receiver.py) in this process. Every terminal event arrives with a
valid signature and, deduplicated by Idempotency-Key, exactly once per
(order, transition); a receiver that is down for a while gets everything
once it is back, and its circuit opened and closed (metric); two
endpoints both receive; events that exhaust their attempts are dead,
listed and redelivered; during a key rotation both signatures verify;
delivered events are pruned after the retention; a URL without a secret
does not start."""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from fake_receiver import FakeReceiver, signature_ok  # noqa: E402

SECRET = "s3cret-for-the-tests-0001"
OLD_SECRET = "old-secret-for-the-tests-02"


def poll(fn, timeout=60.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


class NotificationsTest(unittest.TestCase):
    def setUp(self):
        self.db = H.Database("notify")
        self.ds = []
        self.rs = []

    def tearDown(self):
        for d in self.ds:
            d.kill()
        for r in self.rs:
            r.stop()
        self.db.drop()

    def receiver(self, secrets=(SECRET,)):
        r = FakeReceiver(list(secrets)).start()
        self.rs.append(r)
        return r

    def daemon(self, urls, env=None, name="notify"):
        e = {
            "ORDERD_WORKERS": "2",
            "ORDERD_NOTIFY_URL": ",".join(urls),
            "ORDERD_NOTIFY_SECRET": SECRET,
            "ORDERD_RETRY_BASE_MS": "20",
            "ORDERD_RETRY_MAX_MS": "200",
            "ORDERD_NOTIFY_TIMEOUT_MS": "2000",
            "ORDERD_POLL_MS": "50",
        }
        e.update(env or {})
        d = H.Daemon(self.db.uri, name=name, env=e)
        self.ds.append(d)
        return d.start()

    def submit(self, c, ids, items):
        for oid in ids:
            st, _, body = c.api("POST", "/v1/orders",
                                json=H.order(oid, items=items))
            self.assertIn(st, (200, 201), body)

    def test_every_event_signed_and_once_after_dedup(self):
        r = self.receiver()
        d = self.daemon([r.url])
        c = d.client
        H.set_stock(c, "BOOK", 1000)
        ok = ["ok-%d" % i for i in range(20)]
        bad = ["bad-%d" % i for i in range(10)]
        self.submit(c, ok, [{"sku": "BOOK", "qty": 1}])
        self.submit(c, bad, [{"sku": "NOPE", "qty": 1}])
        H.wait_terminal(c, ok + bad)
        got = r.wait_accepted(30)
        log, accepted, _ = r.snapshot()
        self.assertTrue(all(e["sig_ok"] for e in log), "a bad signature")
        per_order = {}
        for key, body in accepted.items():
            self.assertEqual(body["id"], key)
            self.assertEqual(sorted(body), ["created_at", "id", "order",
                                            "type"])
            o = body["order"]
            per_order.setdefault(o["id"], []).append(body["type"])
            self.assertEqual(body["type"], "order." + o["status"])
            self.assertIsNotNone(o["finished_at"])
            H.parse_time(body["created_at"])
        self.assertEqual(len(got), 30)
        for oid in ok:
            self.assertEqual(per_order[oid], ["order.completed"])
        for oid in bad:
            self.assertEqual(per_order[oid], ["order.rejected"])
            body = next(b for b in accepted.values()
                        if b["order"]["id"] == oid)
            self.assertEqual(body["order"]["reason"], "unknown_sku")
        # Every request of the log carries the headers the docs promise,
        # and the body is canonical (the signature covers these bytes).
        e = log[0]
        self.assertTrue(e["headers"]["Orderd-Signature"].startswith(
            "sha256="))
        self.assertNotIn(b" ", e["raw"][:2])
        poll(lambda: H.metric_sum(d.metrics(),
                                  "orderd_notifications",
                                  status="delivered") == 30,
             what="orderd_notifications{status=delivered} == 30")
        m = d.metrics()
        self.assertEqual(H.metric_sum(m, "orderd_notifications",
                                      status="pending"), 0)
        self.assertGreaterEqual(
            H.metric_sum(m, "orderd_notification_deliveries_total",
                         outcome="delivered"), 30)
        st, _, body = c.api("GET", "/v1/notifications?status=delivered"
                            "&limit=7")
        self.assertEqual(st, 200)
        self.assertEqual(len(body["notifications"]), 7)
        self.assertIsNotNone(body["next_cursor"])
        n0 = body["notifications"][0]
        self.assertEqual(sorted(n0), sorted([
            "id", "type", "order_id", "status", "attempts", "created_at",
            "next_attempt_at", "delivered_at", "last_error"]))
        self.assertEqual(n0["status"], "delivered")
        allv = H.list_all(c, "/v1/notifications", "notifications", 7)
        self.assertEqual(len(allv), 30)
        st, _, _ = c.api("GET", "/v1/notifications?status=nope")
        self.assertEqual(st, 400)
        st, _, _ = c.api("GET", "/v1/notifications?cursor=zz")
        self.assertEqual(st, 400)

    def test_receiver_down_then_back(self):
        r = self.receiver()
        r.set_mode("down")
        d = self.daemon([r.url], {
            "ORDERD_NOTIFY_BREAKER_FAILURES": "3",
            "ORDERD_NOTIFY_BREAKER_COOLDOWN_MS": "300",
            "ORDERD_NOTIFY_MAX_ATTEMPTS": "5",
        })
        c = d.client
        H.set_stock(c, "BOOK", 1000)
        ids = ["o-%d" % i for i in range(25)]
        self.submit(c, ids, [{"sku": "BOOK", "qty": 1}])
        H.wait_terminal(c, ids)
        label = "127.0.0.1:%d" % r.port
        poll(lambda: H.metric_sum(d.metrics(),
                                  "orderd_notification_circuit_open",
                                  endpoint=label) == 1,
             what="the circuit to open")
        # Down for several cool-downs: far more rounds than attempts,
        # yet nothing dies (an open circuit counts no attempt).
        time.sleep(2.0)
        st, _, body = c.api("GET", "/v1/notifications?status=dead")
        self.assertEqual(body["notifications"], [])
        r.set_mode("ok")
        got = r.wait_accepted(25)
        self.assertEqual(sorted(b["order"]["id"] for b in got.values()),
                         sorted(ids))
        poll(lambda: H.metric_sum(d.metrics(),
                                  "orderd_notification_circuit_open",
                                  endpoint=label) == 0,
             what="the circuit to close")
        poll(lambda: H.metric_sum(d.metrics(),
                                  "orderd_notifications",
                                  status="pending") == 0,
             what="no pending notification")

    def test_two_endpoints(self):
        r1, r2 = self.receiver(), self.receiver()
        d = self.daemon([r1.url, r2.url])
        c = d.client
        H.set_stock(c, "BOOK", 1000)
        ids = ["t-%d" % i for i in range(10)]
        self.submit(c, ids, [{"sku": "BOOK", "qty": 1}])
        a = r1.wait_accepted(10)
        b = r2.wait_accepted(10)
        self.assertEqual(set(a), set(b))
        # One endpoint failing is retried alone: the other one, which
        # took it already, is not sent it again.
        r2.set_mode("500")
        more = ["u-%d" % i for i in range(5)]
        self.submit(c, more, [{"sku": "BOOK", "qty": 1}])
        r1.wait_accepted(15)
        poll(lambda: len([e for e in r2.snapshot()[0]
                          if e["answer"] == 500]) >= 10,
             what="retries to the failing endpoint")
        r2.set_mode("ok")
        r2.wait_accepted(15)
        poll(lambda: H.metric_sum(d.metrics(),
                                  "orderd_notifications",
                                  status="delivered") == 15,
             what="15 delivered")
        log1, _, dup1 = r1.snapshot()
        self.assertEqual(dup1, 0, "the healthy endpoint got a resend")
        self.assertEqual(len(log1), 15)

    def test_dead_listed_and_redelivered(self):
        r = self.receiver()
        r.set_mode("500")
        d = self.daemon([r.url], {
            "ORDERD_NOTIFY_MAX_ATTEMPTS": "2",
            "ORDERD_NOTIFY_BREAKER_FAILURES": "1000",
            "ORDERD_FAILPOINTS": "fail_process=1",
            "ORDERD_MAX_ATTEMPTS": "1",
        })
        c = d.client
        ids = ["f-%d" % i for i in range(4)]
        self.submit(c, ids, [{"sku": "BOOK", "qty": 1}])
        H.wait_terminal(c, ids)
        dead = poll(lambda: (lambda b: len(b) == 4 and b)(
            H.list_all(c, "/v1/notifications", "notifications",
                       query="status=dead")), what="4 dead")
        for n in dead:
            self.assertEqual(n["type"], "order.failed")
            self.assertEqual(n["attempts"], 2)
            self.assertIn("http 500", n["last_error"])
            self.assertIsNone(n["delivered_at"])
        r.set_mode("ok")
        for n in dead:
            st, _, body = c.api("POST", "/v1/notifications/%s/redeliver"
                                % n["id"])
            self.assertEqual(st, 200, body)
            self.assertIn(body["status"], ("pending", "delivered"))
        got = r.wait_accepted(4)
        self.assertEqual(set(got), {n["id"] for n in dead})
        st, _, body = c.api("POST", "/v1/notifications/ev_999999/redeliver")
        self.assertEqual(st, 404)
        st, _, body = c.api("POST", "/v1/notifications/nope/redeliver")
        self.assertEqual(st, 404)
        # A pending one cannot be redelivered: it will be anyway. A slow
        # receiver keeps it pending (in flight, then retried) for seconds,
        # so the poll below sees it whatever the machine's speed.
        r.set_mode(("slow", 10))
        more = ["g-0"]
        self.submit(c, more, [{"sku": "BOOK", "qty": 1}])
        pend = poll(lambda: H.list_all(c, "/v1/notifications",
                                       "notifications",
                                       query="status=pending"),
                    what="a pending one")
        st, _, body = c.api("POST", "/v1/notifications/%s/redeliver"
                            % pend[0]["id"])
        self.assertEqual(st, 409)
        self.assertEqual(body["error"]["code"], "conflict")

    def test_rotation_both_signatures_verify(self):
        old_only = self.receiver([OLD_SECRET])
        new_only = self.receiver([SECRET])
        d = self.daemon([old_only.url, new_only.url],
                        {"ORDERD_NOTIFY_SECRET_PREVIOUS": OLD_SECRET})
        c = d.client
        H.set_stock(c, "BOOK", 10)
        self.submit(c, ["rot-1"], [{"sku": "BOOK", "qty": 1}])
        a = old_only.wait_accepted(1)
        new_only.wait_accepted(1)
        e = old_only.snapshot()[0][0]
        sig = e["headers"]["Orderd-Signature"]
        self.assertEqual(len(sig.split(",")), 2)
        self.assertTrue(signature_ok(sig, e["raw"], [SECRET]))
        self.assertTrue(signature_ok(sig, e["raw"], [OLD_SECRET]))
        self.assertFalse(signature_ok(sig, e["raw"], ["another-secret-x"]))
        self.assertFalse(signature_ok(sig, e["raw"] + b" ", [SECRET]))
        self.assertEqual(len(a), 1)

    def test_pruned_after_retention(self):
        r = self.receiver()
        d = self.daemon([r.url], {"ORDERD_NOTIFY_RETENTION_S": "1"})
        c = d.client
        H.set_stock(c, "BOOK", 10)
        self.submit(c, ["p-1", "p-2"], [{"sku": "BOOK", "qty": 1}])
        r.wait_accepted(2)
        poll(lambda: H.list_all(c, "/v1/notifications", "notifications",
                                query="status=delivered") == [],
             timeout=30, what="delivered notifications pruned")
        self.assertEqual(H.list_all(c, "/v1/notifications",
                                    "notifications"), [])

    def test_url_without_secret_refuses_to_start(self):
        rc, _, err = H.run_orderd([], env={
            "ORDERD_DATABASE": self.db.uri,
            "ORDERD_NOTIFY_URL": "http://127.0.0.1:9/x"})
        self.assertEqual(rc, 78)
        self.assertIn("ORDERD_NOTIFY_SECRET", err)
        rc, _, err = H.run_orderd([], env={
            "ORDERD_DATABASE": self.db.uri,
            "ORDERD_NOTIFY_URL": "ftp://x/", "ORDERD_NOTIFY_SECRET": SECRET})
        self.assertEqual(rc, 78)
        rc, _, err = H.run_orderd([], env={
            "ORDERD_DATABASE": self.db.uri,
            "ORDERD_NOTIFY_URL": "http://127.0.0.1:9/x",
            "ORDERD_NOTIFY_SECRET": "short"})
        self.assertEqual(rc, 78)
        self.assertNotIn("short", err)


if __name__ == "__main__":
    H.main()
