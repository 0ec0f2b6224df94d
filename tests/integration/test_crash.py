"""test_crash: G1, G3, G6 under kill -9. A daemon with slow processing and a
short lease is SIGKILLed twice while clients submit and orders are in flight.
After a restart on the same database: every acknowledged order exists
unchanged (G1), every order is processed exactly once and stock is conserved
(G3-G5, checked here and by `orderctl verify`), and the orders that were
`processing` at the kill were taken over after their lease expired (G6)."""

import os
import random
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

LEASE_MS = 1000
ROUND_ORDERS = 1500
N_SKUS = 10


class CrashTest(unittest.TestCase):
    def setUp(self):
        self.db = H.Database("crash")
        self.daemons = []

    def tearDown(self):
        for d in self.daemons:
            d.kill()
        self.db.drop()

    def daemon(self, failpoints):
        # Small claim batches keep many batches in flight while the round's
        # orders arrive, so the kill finds some of them processing (with
        # the default of 256 the round is claimed in a few big gulps).
        env = {"ORDERD_WORKERS": "2", "ORDERD_LEASE_MS": str(LEASE_MS),
               "ORDERD_REAP_MS": "200", "ORDERD_CLAIM_BATCH": "32"}
        if failpoints:
            env["ORDERD_FAILPOINTS"] = failpoints
        d = H.Daemon(self.db.uri, name="crash", env=env)
        self.daemons.append(d)
        return d.start()

    def test_kill9_twice(self):
        run = H.rand_suffix(5)
        skus = ["CR-%s-%d" % (run, i) for i in range(N_SKUS)]
        d = self.daemon("slow_process_ms=100")
        initial = {s: 2500 for s in skus}
        for s in skus:
            H.set_stock(d.client, s, initial[s])

        acked = {}      # id -> order body as submitted
        unknown = {}    # id -> submitted, no answer (may or may not exist)
        lock = threading.Lock()
        seq = [0]
        processing_at_kill = set()
        snapshots = []  # (time of the kill, ids processing just before)

        def next_orders(rnd, n):
            with lock:
                base = seq[0]
                seq[0] += n
            out = []
            for k in range(n):
                items = [{"sku": s, "qty": rnd.randint(1, 4)}
                         for s in rnd.sample(skus, rnd.randint(1, 3))]
                out.append(H.order("k-%s-%06d" % (run, base + k),
                                   "cust-%d" % rnd.randrange(50), items))
            return out

        for round_ in range(2):
            stop = threading.Event()
            client = d.client
            errors = []

            def submitter(tid):
                rnd = random.Random(round_ * 100 + tid)
                mine = []
                while not stop.is_set():
                    batch = rnd.random() < 0.5
                    n = 20 if batch else 1
                    if seq[0] < ROUND_ORDERS * (round_ + 1) or not mine:
                        os_ = next_orders(rnd, n)
                        mine.extend(os_)
                    else:
                        # Enough new orders: keep the connection busy with
                        # replays (idempotent, 200) so the kill still lands
                        # on submissions in flight.
                        os_ = rnd.sample(mine, min(n, len(mine)))
                        time.sleep(0.005)
                    try:
                        if batch:
                            st, _, body = client.api("POST", "/v1/orders/batch",
                                                     json={"orders": os_},
                                                     timeout=30)
                            if st == 200:
                                for o, r in zip(os_, body["results"]):
                                    if r["status"] in (200, 201):
                                        with lock:
                                            acked[o["id"]] = o
                                    elif r["status"] not in (429, 503):
                                        errors.append((o["id"], r))
                                continue
                            res = [(o, st) for o in os_]
                        else:
                            st, _, body = client.api("POST", "/v1/orders",
                                                     json=os_[0], timeout=30)
                            res = [(os_[0], st)]
                        for o, s in res:
                            if s in (200, 201):
                                with lock:
                                    acked[o["id"]] = o
                            elif s not in (429, 503):
                                errors.append((o["id"], s, body))
                    except Exception:
                        with lock:
                            for o in os_:
                                unknown[o["id"]] = o
                        if not stop.is_set():
                            time.sleep(0.05)

            threads = [threading.Thread(target=submitter, args=(t,))
                       for t in range(6)]
            for t in threads:
                t.start()
            time.sleep(0.5)
            # Wait until orders are in flight, then kill mid-processing.
            deadline = time.time() + 10
            inflight = []
            claimed = {}
            while time.time() < deadline:
                st, _, body = client.api("GET", "/v1/orders?status=processing&limit=1000")
                if st == 200 and body["orders"]:
                    inflight = [o["id"] for o in body["orders"]]
                    claimed = {o["id"]: H.parse_time(o["updated_at"])
                               for o in body["orders"]}
                    break
                time.sleep(0.02)
            d.kill()
            kill_t = time.time()
            stop.set()
            for t in threads:
                t.join(60)
            self.assertFalse(any(t.is_alive() for t in threads))
            self.assertEqual(errors[:5], [], "submissions refused before the kill")
            self.assertTrue(inflight, "no order was processing before the kill")
            processing_at_kill.update(inflight)
            snapshots.append((kill_t, claimed))
            # Restart; the next round submits against the new process.
            d = self.daemon("slow_process_ms=100" if round_ == 0 else None)
            restart_t = time.time()

        n_acked = len(acked)
        self.assertGreater(n_acked, 500, "too little load to be meaningful")
        c = d.client
        # G1: every acknowledged order is there, with its content.
        for oid, o in acked.items():
            st, _, got = c.api("GET", "/v1/orders/" + oid)
            self.assertEqual(st, 200, "acknowledged order %s lost" % oid)
            self.assertEqual(sorted((i["sku"], i["qty"]) for i in got["items"]),
                             sorted((i["sku"], i["qty"]) for i in o["items"]))
        ids = set(acked)
        for oid in unknown:
            st, _, _ = c.api("GET", "/v1/orders/" + oid)
            if st == 200:
                ids.add(oid)
        final = H.wait_terminal(c, sorted(ids), timeout=180)
        for oid, f in final.items():
            self.assertIn(f["status"], ("completed", "rejected"), f)
        # G6: the ones in flight at a kill were recovered (after the lease).
        for oid in processing_at_kill:
            self.assertIn(final[oid]["status"], ("completed", "rejected"))
        # No order taken from the dead replica before its lease ran out:
        # each one in hand at a kill finished before that kill or at least
        # a lease after it was claimed (its updated_at when listed as
        # processing; the store's clock is this host's clock here).
        early = []
        for kt, claimed in snapshots:
            for oid, ct in claimed.items():
                fin = H.parse_time(final[oid]["finished_at"])
                if kt + 0.1 < fin < ct + LEASE_MS / 1000.0 - 0.1:
                    early.append((oid, fin - ct))
        self.assertEqual(early[:5], [], "orders rescued before the lease expired")
        m = d.metrics()
        exp = H.metric_sum(m, "orderd_lease_expirations_total") or 0
        # The last restart picked up the second kill's in-flight orders.
        self.assertGreater(exp, 0, "no lease expiry counted after a kill -9")
        self.assertGreater(time.time() - kill_t, LEASE_MS / 1000.0)
        # Conservation, from the API over every order in the store.
        every = H.list_all(c, limit=1000)
        self.assertEqual(len(every), len({o["id"] for o in every}))
        used = {s: 0 for s in skus}
        for o in every:
            if o["status"] not in ("completed", "rejected"):
                self.fail("order not terminal: %r" % o)
            if o["status"] == "completed":
                for it in o["items"]:
                    used[it["sku"]] += it["qty"]
        for s in skus:
            st, _, p = c.api("GET", "/v1/products/" + s)
            self.assertEqual(p["stock"], initial[s] - used[s], s)
        self.assertEqual(d.stop(timeout=30), 0, H.log_tail(d.log_path))
        rc, out = H.verify(self.db.uri)
        self.assertEqual(rc, 0, out)
        print("\nacked %d, unknown %d, in flight at kills %d, restart %.1fs ago"
              % (n_acked, len(unknown), len(processing_at_kill),
                 time.time() - restart_t), file=sys.stderr)


if __name__ == "__main__":
    H.main()
