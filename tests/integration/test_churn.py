"""test_churn: steady load reuses its memory. After a warm-up, thousands of
orders submitted in batches and processed to the end cost the daemon almost
no minor page faults (/proc/PID/stat minflt): memory freed by one batch is
reused by the next instead of being handed back to the kernel and faulted
in again (main.c, keep_freed_memory). Counts, not times: the figure does not
depend on the machine's speed. Release builds only (the sanitizers bring
their own allocators)."""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

SKUS = 20
BATCH = 100
WARMUP = 3000
MEASURED = 6000
# Faults per 10,000 orders. With glibc's default trimming this machine saw
# 56,000-65,000 (SQLite) ; with the freed memory kept, 100-250.
LIMIT_PER_10K = 3000


def minflt(pid):
    with open("/proc/%d/stat" % pid) as f:
        return int(f.read().rsplit(")", 1)[1].split()[7])


class ChurnTest(unittest.TestCase):
    def submit(self, d, prefix, n):
        for start in range(0, n, BATCH):
            orders = [{"id": "%s-%d" % (prefix, i), "customer": "c",
                       "items": [{"sku": "churn-%d" % (i % SKUS),
                                  "qty": 1}],
                       "metadata": {"note": "x" * 200}}
                      for i in range(start, start + BATCH)]
            st, _, body = d.api("POST", "/v1/orders/batch",
                                json={"orders": orders})
            self.assertEqual(st, 200, body)
            self.assertTrue(all(r["status"] == 201
                                for r in body["results"]), body)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            st, _, body = d.api("GET", "/v1/stats")
            self.assertEqual(st, 200, body)
            if body["orders"]["pending"] + body["orders"]["processing"] == 0:
                return
            time.sleep(0.05)
        self.fail("orders still open after 60 s: %s" % body)

    def test_steady_batches_reuse_memory(self):
        db = H.Database("churn")
        with H.Daemon(db.uri, name="churn") as d:
            for k in range(SKUS):
                st, _, body = d.api("PUT", "/v1/products/churn-%d" % k,
                                    json={"stock": 10 ** 9})
                self.assertEqual(st, 200, body)
            self.submit(d, "warm", WARMUP)
            before = minflt(d.pid)
            self.submit(d, "steady", MEASURED)
            per_10k = (minflt(d.pid) - before) * 10000 / MEASURED
            print("minor faults per 10,000 orders: %.0f (limit %d)"
                  % (per_10k, LIMIT_PER_10K))
            self.assertLess(per_10k, LIMIT_PER_10K)
        db.drop()


if __name__ == "__main__":
    unittest.main()
