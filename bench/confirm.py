#!/usr/bin/env python3
"""bench/confirm.py: how much a slow confirm service costs, beside its limit.

N orders (default 100) against a confirm service (tests/integration/
fake_confirm.py) that answers 200 after DELAY seconds (default 0.2), timed
from the first submit until every order is terminal. Run once with
ORDERD_CONFIRM_CONCURRENCY=1 (the limit: one call at a time, N x DELAY) and
REPS times (default 3) with the default 64; prints the medians and the
ratio. SQLite in a temporary directory. Not a test: nothing asserts a speed.

    /usr/bin/python3 bench/confirm.py [BUILD_DIR] [--orders N] [--delay S]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))


def run_once(H, FakeConfirm, n, delay, concurrency):
    db = H.Database("bench_confirm")
    fc = FakeConfirm(lambda oid, a: (200, delay, {}))
    d = H.Daemon(db.uri, env={
        "ORDERD_CONFIRM_URL": fc.url, "ORDERD_POLL_MS": "20",
        "ORDERD_CONFIRM_CONCURRENCY": str(concurrency)}).start()
    try:
        H.set_stock(d.client, "SKU-1", n)
        ids = ["b%05d" % i for i in range(n)]
        t0 = time.monotonic()
        for i in range(0, n, 100):
            st, _, body = d.client.api("POST", "/v1/orders/batch", json={
                "orders": [H.order(o) for o in ids[i:i + 100]]})
            if st not in (200, 201):
                raise SystemExit("submit failed: %s %r" % (st, body))
        H.wait_terminal(d.client, ids, timeout=n * delay + 120)
        return time.monotonic() - t0
    finally:
        d.kill()
        fc.close()
        db.drop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build", nargs="?", default=os.environ.get("BUILD", "build"))
    ap.add_argument("--orders", type=int, default=100)
    ap.add_argument("--delay", type=float, default=0.2)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    os.environ.setdefault("ORDERD_BIN", os.path.join(build, "orderd"))
    os.environ.setdefault("ORDERCTL_BIN", os.path.join(build, "orderctl"))
    os.environ.setdefault("ORDERD_TEST_TMP", tempfile.mkdtemp(prefix="bench-confirm-"))
    os.environ["ORDERD_TEST_BACKEND"] = "sqlite"
    import harness as H
    H.CHECK_CONTRACT = False  # a benchmark: no per-answer schema checks
    from fake_confirm import FakeConfirm
    serial = run_once(H, FakeConfirm, a.orders, a.delay, 1)
    par = [run_once(H, FakeConfirm, a.orders, a.delay, 64)
           for _ in range(a.reps)]
    med = statistics.median(par)
    print("%d orders, confirm answers after %.0f ms" % (a.orders, a.delay * 1000))
    print("  concurrency 1 (the limit): %.2f s" % serial)
    print("  concurrency 64: %.2f s (median of %d: %s)"
          % (med, a.reps, ", ".join("%.2f" % x for x in par)))
    print("  ratio: %.1fx faster" % (serial / med))


if __name__ == "__main__":
    main()
