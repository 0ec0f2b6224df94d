"""Black-box test of GET /v1/orders/{id}/history against the real orderd:
the trail starts with the submission, shows each claim with its fence,
attempt and the replica that claimed, the retries, the outcome with its
reason, an operator's requeue, and the order's notifications with their
delivery state; orders processed by one replica, then another, on the
same database, name the one that processed them. Unknown ids are 404, malformed
ones 400, the route needs the token. (Every answer is also checked
against docs/openapi.yaml by the harness.)
"""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_receiver import FakeReceiver  # noqa: E402
from harness import (Daemon, Database, order, rand_suffix,  # noqa: E402
                     set_stock, wait_terminal)

TOKEN = "history-token-" + rand_suffix(12)
SKU = "HIST-SKU"


def names(hist):
    return [e["event"] for e in hist["events"]]


class HistoryTest(unittest.TestCase):

    def test_completed_order(self):
        with Database("history") as db, Daemon(
                db.uri, token=TOKEN, name="history",
                env={"ORDERD_API_TOKENS": TOKEN,
                     "ORDERD_REPLICA_ID": "hist-r1"}) as d:
            c = d.client
            set_stock(c, SKU, 10)
            oid = "h-" + rand_suffix(6)
            st, _, _ = c.api("POST", "/v1/orders",
                             json=order(oid, items=[{"sku": SKU, "qty": 1}]))
            self.assertEqual(st, 201)
            done = wait_terminal(c, [oid])[oid]
            self.assertEqual(done["status"], "completed")
            st, _, h = c.api("GET", "/v1/orders/%s/history" % oid)
            self.assertEqual(st, 200, h)
            self.assertEqual(h["id"], oid)
            self.assertFalse(h["truncated"])
            ev = h["events"]
            self.assertEqual(ev[0]["event"], "submit")
            self.assertEqual(ev[0]["at"], done["created_at"])
            self.assertIsNone(ev[0]["fence"])
            self.assertEqual(ev[-1]["event"], "complete")
            self.assertGreater(ev[-1]["fence"], 0)
            self.assertEqual(ev[-1]["at"], done["finished_at"])
            self.assertEqual([e["at"] for e in ev], sorted(e["at"] for e in ev))
            # The submission is the order row's; every transition after it
            # names the replica that recorded it.
            self.assertIsNone(ev[0]["replica"])
            self.assertEqual({e["replica"] for e in ev[1:]}, {"hist-r1"})
            # No notifications are configured: the outbox holds none.
            self.assertEqual(h["notifications"], [])

            st, _, body = c.api("GET", "/v1/orders/nope-%s/history"
                                % rand_suffix(4))
            self.assertEqual((st, body["error"]["code"]), (404, "not_found"))
            st, _, body = c.api("GET", "/v1/orders/bad%20id/history")
            self.assertEqual((st, body["error"]["code"]),
                             (400, "invalid_request"))
            st, _, body = c.api("GET", "/v1/orders/%s/history" % oid,
                                token="wrong")
            self.assertEqual((st, body["error"]["code"]),
                             (401, "unauthorized"))

    def test_retried_failed_and_requeued(self):
        with Database("history_fail") as db, Daemon(
                db.uri, token=TOKEN, name="history-fail",
                env={"ORDERD_API_TOKENS": TOKEN,
                     "ORDERD_FAILPOINTS": "fail_process=1",
                     "ORDERD_MAX_ATTEMPTS": "2",
                     "ORDERD_RETRY_BASE_MS": "1",
                     "ORDERD_RETRY_MAX_MS": "5"}) as d:
            c = d.client
            set_stock(c, SKU, 10)
            oid = "hf-" + rand_suffix(6)
            st, _, _ = c.api("POST", "/v1/orders",
                             json=order(oid, items=[{"sku": SKU, "qty": 1}]))
            self.assertEqual(st, 201)
            done = wait_terminal(c, [oid])[oid]
            self.assertEqual(done["status"], "failed")
            st, _, h = c.api("GET", "/v1/orders/%s/history" % oid)
            self.assertEqual(st, 200, h)
            self.assertEqual(names(h), ["submit", "claim", "retry", "claim",
                                        "fail"])
            claims = [e for e in h["events"] if e["event"] == "claim"]
            self.assertEqual([e["attempt"] for e in claims], [1, 2])
            self.assertLess(claims[0]["fence"], claims[1]["fence"])
            fail = h["events"][-1]
            self.assertEqual(fail["fence"], claims[1]["fence"])
            self.assertEqual(fail["reason"], done["reason"])
            self.assertIsNotNone(fail["reason"])

            st, _, _ = c.api("POST", "/v1/orders/%s/requeue" % oid)
            self.assertEqual(st, 200)
            wait_terminal(c, [oid])
            st, _, h = c.api("GET", "/v1/orders/%s/history" % oid)
            self.assertEqual(names(h)[:6], ["submit", "claim", "retry",
                                            "claim", "fail", "requeue"])
            self.assertEqual(names(h)[-1], "fail")
            # Only the final outcome carries the order's reason.
            self.assertIsNone(h["events"][4]["reason"])

    def test_notifications(self):
        secret = "history-notify-secret-0001"
        r = FakeReceiver([secret]).start()
        try:
            with Database("history_notify") as db, Daemon(
                    db.uri, token=TOKEN, name="history-notify",
                    env={"ORDERD_API_TOKENS": TOKEN,
                         "ORDERD_NOTIFY_URL": r.url,
                         "ORDERD_NOTIFY_SECRET": secret,
                         "ORDERD_POLL_MS": "50"}) as d:
                c = d.client
                set_stock(c, SKU, 10)
                ok, no = "hn-" + rand_suffix(6), "hn-" + rand_suffix(6)
                for oid, sku in ((ok, SKU), (no, "HIST-NONE")):
                    st, _, _ = c.api("POST", "/v1/orders", json=order(
                        oid, items=[{"sku": sku, "qty": 1}]))
                    self.assertEqual(st, 201)
                wait_terminal(c, [ok, no])
                r.wait_accepted(2, 30)
                # Delivery is recorded after the receiver answers.
                deadline = time.time() + 30
                while True:
                    st, _, h = c.api("GET", "/v1/orders/%s/history" % ok)
                    self.assertEqual(st, 200, h)
                    notes = h["notifications"]
                    if (notes and notes[0]["status"] == "delivered") or \
                            time.time() > deadline:
                        break
                    time.sleep(0.05)
                self.assertEqual(len(notes), 1, notes)
                n = notes[0]
                self.assertEqual((n["order_id"], n["type"], n["status"]),
                                 (ok, "order.completed", "delivered"))
                self.assertEqual(n["attempts"], 1)
                self.assertIsNotNone(n["delivered_at"])
                self.assertIsNone(n["last_error"])
                _, accepted, _ = r.snapshot()
                self.assertIn(n["id"], accepted)
                st, _, h = c.api("GET", "/v1/orders/%s/history" % no)
                self.assertEqual([n["type"] for n in h["notifications"]],
                                 ["order.rejected"])
        finally:
            r.stop()

    def test_replica_named(self):
        """Replica hist-a takes the first orders, then hist-b, on the same
        database, the last ones: each order's trail names the replica that
        processed it, and only that one (checked by each replica for every
        batch so far: the second sees the first's too)."""
        env = {"ORDERD_API_TOKENS": TOKEN, "ORDERD_POLL_MS": "20"}
        batches = {}
        with Database("history_two") as db:
            for rep in ("hist-a", "hist-b"):
                with Daemon(db.uri, token=TOKEN, name=rep,
                            env=dict(env, ORDERD_REPLICA_ID=rep)) as d:
                    batches[rep] = self.submit_batch(d.client, rep)
                    for want, ids in batches.items():
                        self.assert_replica(d.client, ids, want)

    def submit_batch(self, c, rep):
        set_stock(c, SKU, 1000)
        ids = ["%s-%s-%d" % (rep, rand_suffix(4), i) for i in range(20)]
        for oid in ids:
            st, _, _ = c.api("POST", "/v1/orders",
                             json=order(oid, items=[{"sku": SKU, "qty": 1}]))
            self.assertEqual(st, 201)
        wait_terminal(c, ids)
        return ids

    def assert_replica(self, c, ids, want):
        for oid in ids:
            st, _, h = c.api("GET", "/v1/orders/%s/history" % oid)
            self.assertEqual(st, 200, h)
            self.assertEqual({e["replica"] for e in h["events"][1:]},
                             {want}, h)


if __name__ == "__main__":
    unittest.main()
