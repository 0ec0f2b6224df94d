"""test_overload: G10 under load the store cannot absorb. While the store's
write path is held by someone else (SQLite: another connection holds the
write lock; PostgreSQL: a transaction holds the orders table), group commit
cannot finish, the bounded submission queue fills, and further submissions
are refused at once with 429 rate_limited and Retry-After — never queued
without bound, never hung. Once the store is free again every submission
that was accepted is answered 201 and stored, and nothing refused is."""

import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

QUEUE = 4          # ORDERD_SUBMIT_QUEUE: orders that may wait for a commit
HOLD_S = 1.5       # how long the store's write path stays blocked
SUBMITTERS = 12


class OverloadTest(unittest.TestCase):
    def test_full_queue_answers_429_and_loses_nothing(self):
        db = H.Database("overload")
        # busy_timeout well above the hold, so the blocked commit waits
        # instead of failing.
        d = H.Daemon(db.uri, name="overload",
                     env={"ORDERD_SUBMIT_QUEUE": str(QUEUE),
                          "ORDERD_BUSY_TIMEOUT_MS": "10000"})
        try:
            d.start()
            run = H.rand_suffix(5)
            sku = "OV-" + run
            H.set_stock(d.client, sku, 1000)
            results = {}
            lock = threading.Lock()

            def submit(i):
                o = H.order("ov-%s-%02d" % (run, i),
                            items=[{"sku": sku, "qty": 1}])
                t0 = time.time()
                st, hdr, body = H.Client(d.url).api("POST", "/v1/orders",
                                                    json=o, timeout=30)
                with lock:
                    results[o["id"]] = (st, hdr, body, time.time() - t0)

            with H.StoreBlocker(db):
                threads = [threading.Thread(target=submit, args=(i,))
                           for i in range(SUBMITTERS)]
                for t in threads:
                    t.start()
                    time.sleep(0.02)
                time.sleep(HOLD_S)
                # While blocked: orderd still answers everything else.
                st, _, _ = d.client.api("GET", "/livez", timeout=5)
                self.assertEqual(st, 200)
            for t in threads:
                t.join(30)

            refused = {k: v for k, v in results.items() if v[0] == 429}
            accepted = {k: v for k, v in results.items() if v[0] == 201}
            self.assertEqual(len(results), SUBMITTERS)
            self.assertEqual(set(v[0] for v in results.values()) - {201, 429},
                             set(), results)
            self.assertTrue(refused, "queue of %d never filled" % QUEUE)
            self.assertTrue(accepted, "nothing was accepted")
            self.assertLessEqual(len(accepted), QUEUE + 1)
            for st, hdr, body, took in refused.values():
                self.assertEqual(body["error"]["code"], "rate_limited")
                self.assertRegex(hdr.get("Retry-After", ""), r"^\d+$")
                self.assertLess(took, 1.0, "a 429 must not wait")
            # Accepted ones are stored; refused ones are not.
            for oid in accepted:
                self.assertEqual(d.client.api("GET", "/v1/orders/" + oid)[0],
                                 200)
            for oid in refused:
                self.assertEqual(d.client.api("GET", "/v1/orders/" + oid)[0],
                                 404)
            H.wait_terminal(d.client, list(accepted), timeout=30)
            self.assertEqual(d.stop(), 0)
            rc, out = H.verify(db.uri)
            self.assertEqual(rc, 0, out)
        finally:
            d.kill()
            db.drop()

    def test_livez_not_stalled_by_a_blocked_store(self):
        """Requests stuck on the store never hold the server threads:
        /livez answers at once while every store call waits."""
        db = H.Database("livez")
        d = H.Daemon(db.uri, name="livez",
                     env={"ORDERD_BUSY_TIMEOUT_MS": "4000",
                          "ORDERD_STATEMENT_TIMEOUT_MS": "4000"})
        try:
            d.start()
            done = []

            def put(i):
                st, _, _ = H.Client(d.url).api(
                    "PUT", "/v1/products/LZ-%d" % i, json={"stock": 1},
                    timeout=30)
                done.append(st)

            with H.StoreBlocker(db):
                threads = [threading.Thread(target=put, args=(i,))
                           for i in range(16)]
                for t in threads:
                    t.start()
                time.sleep(0.5)  # every handler thread is in the store
                t0 = time.time()
                st, _, body = H.Client(d.url).api("GET", "/livez", timeout=10)
                took = time.time() - t0
                self.assertEqual(st, 200, body)
                self.assertLess(took, 0.5, "/livez waited %.1f s behind "
                                "the store" % took)
                st, _, _ = H.Client(d.url).api("GET", "/v1/alerts",
                                               timeout=10)
                self.assertEqual(st, 200)
            for t in threads:
                t.join(30)
            self.assertEqual(len(done), 16)
            self.assertTrue(set(done) <= {200, 503}, done)
            self.assertEqual(d.stop(), 0)
        finally:
            d.kill()
            db.drop()

    def test_handler_queue_wait_is_bounded(self):
        """During a store brownout a request waits for a handler thread at
        most ORDERD_HANDLER_QUEUE_MS: then it is answered 503 unavailable
        with Retry-After, without the store, and counted."""
        db = H.Database("hqueue")
        bound_ms = 300
        d = H.Daemon(db.uri, name="hqueue",
                     env={"ORDERD_HTTP_THREADS": "1",
                          "ORDERD_HANDLER_QUEUE_MS": str(bound_ms),
                          "ORDERD_BUSY_TIMEOUT_MS": "3000",
                          "ORDERD_STATEMENT_TIMEOUT_MS": "3000"})
        try:
            d.start()
            res = []
            lock = threading.Lock()

            def put(i):
                t0 = time.time()
                st, hdr, body = H.Client(d.url).api(
                    "PUT", "/v1/products/HQ-%d" % i, json={"stock": 1},
                    timeout=30)
                with lock:
                    res.append((st, hdr, body, time.time() - t0))

            with H.StoreBlocker(db, tables="products"):
                first = threading.Thread(target=put, args=(0,))
                first.start()
                time.sleep(0.3)  # the one handler thread is in the store
                threads = [threading.Thread(target=put, args=(i,))
                           for i in range(1, 6)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(30)
                late = list(res)
            first.join(30)
            self.assertEqual(len(late), 5, late)
            for st, hdr, body, took in late:
                self.assertEqual(st, 503, body)
                self.assertEqual(body["error"]["code"], "unavailable")
                self.assertRegex(hdr.get("Retry-After", ""), r"^\d+$")
                # Answered at the bound, not when the store came back.
                self.assertLess(took, bound_ms / 1000.0 + 1.5, took)
            n = H.metric_sum(d.metrics(),
                             "orderd_http_handler_queue_expired_total")
            self.assertEqual(n, 5)
            # Nothing refused was stored.
            for i in range(1, 6):
                st, _, _ = d.client.api("GET", "/v1/products/HQ-%d" % i)
                self.assertEqual(st, 404)
            self.assertEqual(d.stop(), 0)
        finally:
            d.kill()
            db.drop()

    def test_many_waiters_all_answered_on_completion(self):
        """Hundreds of ?wait_ms requests share one store check per tick;
        each is answered once its order is terminal, not at its deadline."""
        db = H.Database("waiters")
        d = H.Daemon(db.uri, name="waiters",
                     env={"ORDERD_FAILPOINTS": "slow_process_ms=1500"})
        try:
            d.start()
            run = H.rand_suffix(5)
            sku = "WT-" + run
            H.set_stock(d.client, sku, 10000)
            ids = ["wt-%s-%03d" % (run, i) for i in range(200)]
            st, _, body = d.client.api("POST", "/v1/orders/batch", json={
                "orders": [H.order(i, items=[{"sku": sku, "qty": 1}])
                           for i in ids]})
            self.assertEqual(st, 200, body)
            answers = {}
            lock = threading.Lock()

            def wait(oid):
                t0 = time.time()
                st, _, o = H.Client(d.url).api(
                    "GET", "/v1/orders/%s?wait_ms=20000" % oid, timeout=30)
                with lock:
                    answers[oid] = (st, o, time.time() - t0)

            threads = [threading.Thread(target=wait, args=(i,)) for i in ids]
            for t in threads:
                t.start()
            for t in threads:
                t.join(40)
            self.assertEqual(len(answers), len(ids))
            for oid, (st, o, took) in answers.items():
                self.assertEqual(st, 200, o)
                self.assertEqual(o["status"], "completed", o)
                self.assertLess(took, 15, "%s answered only at its deadline"
                                % oid)
            self.assertEqual(d.stop(), 0)
        finally:
            d.kill()
            db.drop()


if __name__ == "__main__":
    H.main()
