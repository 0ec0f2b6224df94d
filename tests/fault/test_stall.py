"""test_stall: G6/G7 with a stalled replica. Two daemons share one database
(on SQLite: one file, two processes). Replica A claims orders and is
SIGSTOPped past its lease while it holds them; replica B's reaper takes them
over and finishes them. Then A is SIGCONTed: every late write it attempts
under its old fences must be refused (orderd_fence_rejections_total grows on
A), nothing is processed twice (processed counters of A and B add up to the
number of orders, stock is conserved) and `orderctl verify` is clean."""

import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "integration"))
import harness as H  # noqa: E402
H.CHECK_CONTRACT = False  # harness.py: the contract is the integration tests'

LEASE_MS = 1000
N = 400


class StallTest(unittest.TestCase):
    def setUp(self):
        self.db = H.Database("stall")
        self.ds = []

    def tearDown(self):
        for d in self.ds:
            d.kill()
        self.db.drop()

    def daemon(self, name, env):
        e = {"ORDERD_WORKERS": "2", "ORDERD_LEASE_MS": str(LEASE_MS),
             "ORDERD_REAP_MS": "200", "ORDERD_REPLICA_ID": name}
        e.update(env)
        d = H.Daemon(self.db.uri, name="stall-" + name, env=e)
        self.ds.append(d)
        return d.start()

    def test_replicas_seen(self):
        """Each replica's heartbeat shows in /v1/stats and in the
        orderd_replicas / pending-per-replica gauges of the other."""
        a = self.daemon("A", {})
        b = self.daemon("B", {})
        deadline = time.time() + 10
        while time.time() < deadline:
            st, _, body = a.client.api("GET", "/v1/stats")
            if st == 200 and sorted(body["replicas"]) == ["A", "B"]:
                break
            time.sleep(0.1)
        self.assertEqual(sorted(body["replicas"]), ["A", "B"], body)
        self.assertEqual(body["replicas"][0], "A")  # the one answering
        self.assertEqual(body["replicas_seen"], 2)
        # B's gauge follows at its next reaper tick.
        deadline = time.time() + 5
        while time.time() < deadline:
            m = b.metrics()
            if H.metric_sum(m, "orderd_replicas") == 2:
                break
            time.sleep(0.1)
        self.assertEqual(H.metric_sum(m, "orderd_replicas"), 2)
        self.assertIn("orderd_pending_orders_per_replica",
                      H.metric_names(m))
        # A stopped replica drops out once its heartbeat is old.
        self.assertEqual(a.stop(), 0)
        deadline = time.time() + 15
        while time.time() < deadline:
            st, _, body = b.client.api("GET", "/v1/stats")
            if body["replicas"] == ["B"]:
                break
            time.sleep(0.2)
        self.assertEqual(body["replicas"], ["B"], body)

    def test_stalled_replica_is_fenced(self):
        a = self.daemon("A", {"ORDERD_FAILPOINTS": "slow_process_ms=3000"})
        run = H.rand_suffix(5)
        sku = "ST-" + run
        H.set_stock(a.client, sku, 100000)
        orders = [H.order("st-%s-%04d" % (run, i), items=[{"sku": sku, "qty": 2}])
                  for i in range(N)]
        st, _, body = a.client.api("POST", "/v1/orders/batch",
                                   json={"orders": orders})
        self.assertEqual(st, 200, body)
        self.assertEqual({r["status"] for r in body["results"]}, {201})
        ids = [o["id"] for o in orders]
        # Wait until A holds orders, then stall it.
        deadline = time.time() + 15
        held = []
        while time.time() < deadline:
            st, _, body = a.client.api("GET", "/v1/orders?status=processing&limit=1000")
            if body["orders"]:
                held = [o["id"] for o in body["orders"]]
                break
            time.sleep(0.02)
        self.assertTrue(held, "replica A never claimed anything")
        time.sleep(0.2)  # well inside A's 3 s processing sleep
        a.send_signal(signal.SIGSTOP)
        t_stop = time.time()
        try:
            # Replica B comes up on the same database and takes over.
            b = self.daemon("B", {})
            try:
                final = H.wait_terminal(b.client, ids, timeout=90)
            except AssertionError as e:
                self.fail("replica B could not finish while A is stalled "
                          "(store lock held by the stalled process?): %s\n%s"
                          % (e, H.log_tail(b.log_path)))
            took = time.time() - t_stop
            for oid in held:
                self.assertEqual(final[oid]["status"], "completed", final[oid])
            self.assertGreater(took, LEASE_MS / 1000.0 * 0.9,
                               "held orders finished before A's lease expired")
            mb = b.metrics()
            self.assertGreater(H.metric_sum(mb, "orderd_lease_expirations_total")
                               or 0, 0)
        finally:
            a.send_signal(signal.SIGCONT)
        # A wakes up with stale leases: its writes must bounce.
        deadline = time.time() + 20
        fenced = 0
        while time.time() < deadline:
            ma = a.metrics()
            fenced = H.metric_sum(ma, "orderd_fence_rejections_total") or 0
            if fenced > 0:
                break
            time.sleep(0.2)
        time.sleep(1.0)
        ma, mb = a.metrics(), b.metrics()
        processed = sum((H.metric_sum(m, "orderd_orders_processed_total") or 0)
                        for m in (ma, mb))
        st, _, p = b.client.api("GET", "/v1/products/" + sku)
        self.assertEqual(p["stock"], 100000 - 2 * N, "stock reserved twice?")
        for oid in held:
            st, _, o = b.client.api("GET", "/v1/orders/" + oid)
            self.assertEqual(o["status"], "completed")
        self.assertEqual(a.stop(timeout=20), 0, H.log_tail(a.log_path))
        self.assertEqual(b.stop(timeout=20), 0, H.log_tail(b.log_path))
        rc, out = H.verify(self.db.uri)
        self.assertEqual(rc, 0, out)
        self.assertGreater(fenced, 0, "stale replica's writes were not fenced "
                           "(orderd_fence_rejections_total stayed 0 on A)")
        self.assertEqual(processed, N, "orders processed %s times for %d orders"
                         % (processed, N))


if __name__ == "__main__":
    H.main()
