"""test_concurrency: 16 client threads submit 10,000 orders over 20 hot SKUs
(singles and batches, 10% submitted twice, half of those concurrently).
Checks G1-G5 from the outside: every acknowledged order is processed to
completed or rejected, exactly one submission of each id is a 201 and the
replays return the same order, stock is conserved per SKU, and
`orderctl verify` passes on the store."""

import concurrent.futures
import os
import queue
import random
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

N_ORDERS = int(os.environ.get("ITEST_N_ORDERS", "10000"))
N_THREADS = 16
N_SKUS = 20


class ConcurrencyTest(unittest.TestCase):
    def setUp(self):
        self.db = H.Database("conc")
        self.d = H.Daemon(self.db.uri, name="conc", env={"ORDERD_WORKERS": "2"})
        try:
            self.d.start()
        except Exception:
            self.db.drop()
            raise
        self.c = self.d.client

    def tearDown(self):
        self.d.stop(timeout=30)
        self.db.drop()

    def send(self, method, path, body):
        """One request, retried on 429/503 (Retry-After) and on connection
        errors of a request that was never answered."""
        last = None
        for attempt in range(60):
            try:
                st, hdr, resp = self.c.api(method, path, json=body, timeout=120)
            except Exception as e:  # connection trouble: retry, it's idempotent
                last = e
                time.sleep(0.2)
                continue
            if st in (429, 503):
                self.assertIn("Retry-After", hdr)
                time.sleep(min(float(hdr.get("Retry-After", 1)), 1.0))
                continue
            return st, resp
        raise AssertionError("request never answered: %r" % (last,))

    def test_load(self):
        rnd = random.Random(42)
        run = H.rand_suffix(5)
        skus = ["HOT-%s-%02d" % (run, i) for i in range(N_SKUS)]
        orders = []
        demand = {s: 0 for s in skus}
        for i in range(N_ORDERS):
            items = [{"sku": s, "qty": rnd.randint(1, 5)}
                     for s in rnd.sample(skus, rnd.randint(1, 3))]
            md = {"n": i} if i % 3 == 0 else None
            o = H.order("c-%s-%05d" % (run, i), "cust-%d" % (i % 97), items, md)
            orders.append(o)
            for it in items:
                demand[it["sku"]] += it["qty"]
        initial = {s: int(demand[s] * 0.85) for s in skus}
        for s in skus:
            H.set_stock(self.c, s, initial[s])

        idx = list(range(N_ORDERS))
        rnd.shuffle(idx)
        n_dup = N_ORDERS // 10
        conc = idx[:n_dup // 2]
        seq = idx[n_dup // 2:n_dup]
        rest = idx[n_dup // 2:]
        units = [("pair", i) for i in conc]
        pos = 0
        while pos < len(rest):
            if rnd.random() < 0.5:
                units.append(("single", rest[pos]))
                pos += 1
            else:
                k = rnd.randint(10, 60)
                units.append(("batch", rest[pos:pos + k]))
                pos += k
        rnd.shuffle(units)

        results = {}
        lock = threading.Lock()
        errors = []

        def record(oid, st, body):
            with lock:
                results.setdefault(oid, []).append((st, body))

        def single(i):
            st, body = self.send("POST", "/v1/orders", orders[i])
            record(orders[i]["id"], st, body)

        def batch(ids):
            st, body = self.send("POST", "/v1/orders/batch",
                                 {"orders": [orders[i] for i in ids]})
            if st != 200:
                for i in ids:
                    record(orders[i]["id"], st, body)
                return
            for i, r in zip(ids, body["results"]):
                record(orders[i]["id"], r["status"], r.get("order", r))

        def pair(i):
            bar = threading.Barrier(2)

            def go():
                bar.wait(5)
                single(i)
            ts = [threading.Thread(target=go) for _ in range(2)]
            for t in ts:
                t.start()
            for t in ts:
                t.join(180)

        q = queue.Queue()
        for u in units:
            q.put(u)

        def worker():
            while True:
                try:
                    kind, arg = q.get_nowait()
                except queue.Empty:
                    return
                try:
                    {"single": single, "batch": batch, "pair": pair}[kind](arg)
                except Exception as e:
                    errors.append(repr(e))

        t0 = time.time()
        threads = [threading.Thread(target=worker) for _ in range(N_THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(240)
        self.assertFalse(any(t.is_alive() for t in threads),
                         "submission phase did not finish in time")
        self.assertEqual(errors, [])
        # Sequential replays of already acknowledged orders, singles + batches.
        seq_ids = list(seq)
        for k in range(0, len(seq_ids) // 2, 50):
            batch(seq_ids[k:k + 50])
        with concurrent.futures.ThreadPoolExecutor(N_THREADS) as ex:
            list(ex.map(single, seq_ids[len(seq_ids) // 2:]))
        submit_s = time.time() - t0

        # Acknowledgements: every id exactly one 201, the rest 200 with the
        # same order.
        bad = []
        for o in orders:
            rs = results.get(o["id"], [])
            sts = [st for st, _ in rs]
            if sts.count(201) != 1 or any(st not in (200, 201) for st in sts):
                bad.append((o["id"], sts, [b for s, b in rs if s not in (200, 201)][:1]))
                continue
            first = [b for st, b in rs if st == 201][0]
            for st, b in rs:
                if (b["id"], b["customer"], b["metadata"], b["created_at"]) != \
                        (first["id"], first["customer"], first["metadata"],
                         first["created_at"]) or \
                        sorted((x["sku"], x["qty"]) for x in b["items"]) != \
                        sorted((x["sku"], x["qty"]) for x in o["items"]):
                    bad.append((o["id"], "replay differs", b, first))
        self.assertEqual(bad[:5], [], "%d bad acknowledgements" % len(bad))
        for i in conc + seq:
            self.assertEqual(len(results[orders[i]["id"]]), 2)

        # Everything is processed.
        final = H.wait_terminal(self.c, [o["id"] for o in orders],
                                timeout=max(120, 300 - submit_s), threads=8)
        counts = {}
        for o in orders:
            f = final[o["id"]]
            counts[f["status"]] = counts.get(f["status"], 0) + 1
            self.assertIn(f["status"], ("completed", "rejected"), f)
            if f["status"] == "rejected":
                self.assertEqual(f["reason"], "insufficient_stock", f)
        self.assertGreater(counts.get("completed", 0), N_ORDERS // 2, counts)
        self.assertGreater(counts.get("rejected", 0), 0, counts)

        # Conservation, from the API.
        used = {s: 0 for s in skus}
        for o in orders:
            if final[o["id"]]["status"] == "completed":
                for it in o["items"]:
                    used[it["sku"]] += it["qty"]
        for s in skus:
            st, _, p = self.c.api("GET", "/v1/products/" + s)
            self.assertEqual(st, 200)
            self.assertGreaterEqual(p["stock"], 0)
            self.assertEqual(p["stock"], initial[s] - used[s],
                             "conservation broken for %s" % s)
        # The list agrees on the status counts of our orders.
        listed = H.list_all(self.c, limit=1000)
        ids = [o["id"] for o in listed]
        self.assertEqual(len(ids), len(set(ids)))
        self.assertEqual(len(ids), N_ORDERS)

        self.assertEqual(self.d.stop(timeout=30), 0, H.log_tail(self.d.log_path))
        rc, out = H.verify(self.db.uri)
        self.assertEqual(rc, 0, out)
        print("\n%d orders, submit %.1fs, counts %r" % (N_ORDERS, submit_s, counts),
              file=sys.stderr)


if __name__ == "__main__":
    H.main()
