#!/usr/bin/env python3
"""bench/vacuum_pin.py: orderd's throughput while a transaction pins vacuum.

A private PostgreSQL 15 cluster (tests/pgcluster.py, in a temporary
directory), REPLICAS orderd processes on it (default 2) and a closed-loop
load client: THREADS threads (default 16), each with its own keep-alive
session to one replica, posting a batch of BATCH orders (default 10) to
POST /v1/orders/batch, waiting (GET ?wait_ms) until the batch's last order
is terminal, and posting the next: a closed loop end to end, so the
backlog stays bounded and the figure is what orderd sustains. After a warm-up (with
an ANALYZE in the middle, as autovacuum would have run on a database in
use), the baseline is measured for --baseline seconds; then one other session runs
`BEGIN; SELECT txid_current();` and holds the transaction open for
--pin-seconds (the forgotten session that pins the xmin horizon: no dead
row version newer than it can be removed, by vacuum or by index hints)
while the load goes on; then it rolls back and --after seconds are
measured. Throughput is orders that reached a terminal status per second
(orderd_orders_processed_total of every replica, scraped each window, as
Prometheus would); the accepted submits per second and the pending backlog
are printed beside it. Each window's figure is a ratio to the baseline.

Near the end of the baseline and of the pin it runs the claim's scan under
EXPLAIN (ANALYZE, BUFFERS) and reads pg_stat_statements (preloaded in the
cluster), so the statements that degrade are named, not guessed.

A benchmark, not a test: nothing asserts a speed. The lead's fault suite
imports run() and judges the figures itself.

    /usr/bin/python3 bench/vacuum_pin.py [BUILD_DIR] [--pin-seconds 60]
        [--baseline 30] [--after 20] [--window 5] [--replicas 2]
        [--threads 16] [--batch 10] [--skus 100] [--json FILE]
        [--auto-explain MS] [--pg-log FILE]
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, os.path.join(ROOT, "tests"))

SKUS = 100  # default --skus

# The claim's scan as stmt_claim (src/store/postgres_lease.c) runs it, in a
# transaction that is rolled back: it locks rows, changes nothing.
CLAIM_SCAN = ("SELECT seq FROM orders WHERE status = 'pending' AND next_at <="
              " (extract(epoch from clock_timestamp()) * 1000)::bigint"
              " ORDER BY next_at, seq LIMIT 256 FOR UPDATE SKIP LOCKED")


ENV_KEYS = ("ORDERD_BIN", "ORDERCTL_BIN", "ORDERD_TEST_TMP",
            "ORDERD_TEST_BACKEND", "ORDERD_TEST_PGDIR")


def _env(build, tmp, pgdir):
    """Points the harness at this run's cluster; returns what to restore."""
    saved = {k: os.environ.get(k) for k in ENV_KEYS}
    os.environ["ORDERD_BIN"] = os.path.join(build, "orderd")
    os.environ["ORDERCTL_BIN"] = os.path.join(build, "orderctl")
    os.environ["ORDERD_TEST_TMP"] = tmp
    os.environ["ORDERD_TEST_BACKEND"] = "postgres"
    os.environ["ORDERD_TEST_PGDIR"] = pgdir
    return saved


def _env_restore(saved):
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _start_cluster(pgcluster, pgdir, auto_explain_ms):
    """A fresh cluster with pg_stat_statements preloaded (and auto_explain
    when auto_explain_ms is set: plans of slower statements in its log)."""
    pgcluster.start(pgdir)
    home = pgcluster.home_of(pgdir)
    conf = os.path.join(home, "data", "postgresql.conf")
    libs = "pg_stat_statements"
    extra = "pg_stat_statements.track = all\n"
    if auto_explain_ms is not None:
        libs += ",auto_explain"
        extra += ("auto_explain.log_min_duration = %d\n"
                  "auto_explain.log_analyze = on\n"
                  "auto_explain.log_buffers = on\n"
                  "log_min_messages = log\n" % auto_explain_ms)
    with open(conf, "a") as f:
        f.write("shared_preload_libraries = '%s'\n%s" % (libs, extra))
    pgcluster.restart(pgdir, False)


class Load:
    """The closed-loop client: threads posting batches until stopped."""

    def __init__(self, H, daemons, threads, batch, skus):
        self.H = H
        self.skus = skus
        self.daemons = daemons
        self.batch = batch
        self.ok = [0] * threads
        self.errors = [0] * threads
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,),
                                         daemon=True)
                        for i in range(threads)]

    def _run(self, i):
        client = self.H.Client(self.daemons[i % len(self.daemons)].url)
        n = 0
        while not self.stop.is_set():
            orders = []
            for _ in range(self.batch):
                n += 1
                sku = "SKU-%d" % ((i * 7919 + n) % self.skus)
                orders.append(self.H.order("t%d-%d" % (i, n),
                                           items=[{"sku": sku, "qty": 1}]))
            try:
                st, _, body = client.api("POST", "/v1/orders/batch",
                                         json={"orders": orders}, timeout=30)
            except Exception:
                self.errors[i] += 1
                time.sleep(0.1)
                continue
            if st in (200, 201) and isinstance(body, dict):
                self.ok[i] += sum(1 for r in body.get("results", [])
                                  if r.get("status") in (200, 201))
            else:
                self.errors[i] += 1
                time.sleep(0.1)
                continue
            # Closed end to end: the next batch goes when this one's last
            # order is terminal. Orders are claimed oldest first, so the
            # backlog stays near THREADS x BATCH instead of growing.
            try:
                client.api("GET", "/v1/orders/%s?wait_ms=10000"
                           % orders[-1]["id"], timeout=30)
            except Exception:
                self.errors[i] += 1

    def start(self):
        for t in self.threads:
            t.start()

    def join(self):
        self.stop.set()
        for t in self.threads:
            t.join(35)

    def accepted(self):
        return sum(self.ok)


def _scrape(H, daemons):
    """(orders processed, orders pending) summed over the replicas."""
    done = 0.0
    pending = 0.0
    for d in daemons:
        m = d.metrics()
        done += H.metric_sum(m, "orderd_orders_processed_total")
        pending = max(pending, H.metric_sum(m, "orderd_orders",
                                            status="pending"))
    return done, pending


def _explain(conn):
    """The claim's scan under EXPLAIN (ANALYZE, BUFFERS), rolled back."""
    with conn.cursor() as cur:
        cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + CLAIM_SCAN)
        plan = "\n".join(r[0] for r in cur.fetchall())
    conn.rollback()
    return plan


def _top_statements(conn, n=8):
    """pg_stat_statements since the last reset: the costliest by total time,
    with shared buffers touched per call."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT calls, round(total_exec_time::numeric, 1),"
            " round((total_exec_time / greatest(calls, 1))::numeric, 3),"
            " (shared_blks_hit + shared_blks_read) / greatest(calls, 1),"
            " left(regexp_replace(query, '\\s+', ' ', 'g'), 90)"
            " FROM pg_stat_statements WHERE query NOT ILIKE '%%pg_stat%%'"
            " ORDER BY total_exec_time DESC LIMIT " + str(int(n)))
        rows = cur.fetchall()
        cur.execute("SELECT pg_stat_statements_reset()")
    conn.commit()
    return [{"calls": r[0], "total_ms": float(r[1]), "mean_ms": float(r[2]),
             "blks_per_call": int(r[3]), "query": r[4]} for r in rows]


def _dead(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT relname, n_live_tup, n_dead_tup"
                    " FROM pg_stat_user_tables WHERE relname IN"
                    " ('orders', 'order_events', 'reservations',"
                    " 'products', 'order_queue') ORDER BY relname")
        rows = cur.fetchall()
    conn.commit()
    return {r[0]: {"live": r[1], "dead": r[2]} for r in rows}


def run(build="build", pin_seconds=60, baseline=30, after=20, window=5,
        replicas=2, threads=16, batch=10, skus=SKUS, warmup=5,
        auto_explain_ms=None,
        pg_log=None, log=print):
    """Runs the whole measurement on a private cluster and returns a dict:
    baseline (orders/s), during (mean orders/s over the pin), during_min
    (the worst window), after (orders/s after the release), each with its
    ratio to the baseline, the per-window figures, and the profile (claim
    plans, top statements, dead tuples). Stops everything it started."""
    build = os.path.abspath(build)
    tmp = tempfile.mkdtemp(prefix="bench-vacuum-pin-")
    pgdir = os.path.join(tmp, "pg")
    saved_env = _env(build, tmp, pgdir)
    import pgcluster
    import harness as H
    import psycopg2
    # A caller (the fault suite) may have imported harness for its own
    # cluster: point it at this one for the run, and back after.
    saved = (H.BIN, H.BACKEND, H.PGDIR, H.TMP)
    H.BIN, H.BACKEND, H.PGDIR, H.TMP = (os.path.join(build, "orderd"),
                                        "postgres", pgdir, tmp)
    db = daemons = load = pin = mon = None
    try:
        _start_cluster(pgcluster, pgdir, auto_explain_ms)
        db = H.Database("vacuum_pin")
        daemons = [H.Daemon(db.uri, name="orderd-%d" % i).start()
                   for i in range(replicas)]
        for k in range(skus):
            H.set_stock(daemons[0].client, "SKU-%d" % k, 10 ** 9)
        mon = psycopg2.connect(db.uri)
        with mon.cursor() as cur:
            cur.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        mon.commit()
        load = Load(H, daemons, threads, batch, skus)
        load.start()
        # Statistics as autovacuum would have them on a database in use
        # (its first ANALYZE comes a naptime, 1 min, after start): the
        # replicas' prepared statements got generic plans while the tables
        # were empty, and ANALYZE makes them plan again.
        time.sleep(warmup)
        with mon.cursor() as cur:
            cur.execute("ANALYZE")
        mon.commit()
        time.sleep(warmup)

        windows = []
        profile = {}
        t0 = time.monotonic()
        last_done, _ = _scrape(H, daemons)
        last_acc = load.accepted()
        last_t = t0
        _top_statements(mon)  # reset
        phases = [("baseline", baseline), ("pin", pin_seconds),
                  ("after", after)]
        for phase, seconds in phases:
            if phase == "pin":
                profile["baseline_plan"] = _explain(mon)
                profile["baseline_statements"] = _top_statements(mon)
                profile["baseline_dead"] = _dead(mon)
                pin = psycopg2.connect(db.uri)
                with pin.cursor() as cur:
                    cur.execute("SELECT txid_current()")
                    profile["pin_xid"] = cur.fetchone()[0]
                log("pin: transaction %s open" % profile["pin_xid"])
            if phase == "after":
                profile["pin_plan"] = _explain(mon)
                profile["pin_statements"] = _top_statements(mon)
                profile["pin_dead"] = _dead(mon)
                pin.rollback()
                pin.close()
                pin = None
                log("pin: released")
            end = time.monotonic() + seconds
            while time.monotonic() < end - 0.01:
                time.sleep(max(0.0, min(window, end - time.monotonic())))
                now = time.monotonic()
                done, pending = _scrape(H, daemons)
                acc = load.accepted()
                dt = now - last_t
                w = {"phase": phase, "t": round(now - t0, 1),
                     "processed_per_s": (done - last_done) / dt,
                     "accepted_per_s": (acc - last_acc) / dt,
                     "pending": pending}
                windows.append(w)
                last_done, last_acc, last_t = done, acc, now
        load.join()
        load_errors = sum(load.errors)
        load = None

        def mean(phase):
            ws = [w["processed_per_s"] for w in windows if w["phase"] == phase]
            return sum(ws) / len(ws) if ws else 0.0

        base = mean("baseline")
        for w in windows:
            w["ratio"] = w["processed_per_s"] / base if base else 0.0
        pin_ws = [w["processed_per_s"] for w in windows if w["phase"] == "pin"]
        res = {
            "replicas": replicas, "threads": threads, "batch": batch,
            "skus": skus,
            "pin_seconds": pin_seconds, "window": window,
            "baseline": base, "during": mean("pin"),
            "during_min": min(pin_ws) if pin_ws else 0.0,
            "after": mean("after"),
            "load_errors": load_errors,
            "windows": windows, "profile": profile,
        }
        for k in ("during", "during_min", "after"):
            res[k + "_ratio"] = res[k] / base if base else 0.0
        return res
    finally:
        if load:
            load.join()
        for c in (pin, mon):
            if c is not None:
                try:
                    c.close()
                except Exception:
                    pass
        for d in daemons or []:
            d.stop(timeout=10)
        if db:
            db.drop()
        if pg_log:
            shutil.copy(os.path.join(pgcluster.home_of(pgdir), "log"), pg_log)
        pgcluster.stop(pgdir)
        H.BIN, H.BACKEND, H.PGDIR, H.TMP = saved
        _env_restore(saved_env)
        shutil.rmtree(tmp, ignore_errors=True)


def report(res, out=sys.stdout):
    p = lambda *a: print(*a, file=out)
    p("%d replicas, %d threads x batches of %d orders over %d skus,"
      " window %d s" % (res["replicas"], res["threads"], res["batch"],
                        res["skus"], res["window"]))
    p("%-9s %7s %12s %12s %9s %7s" % ("phase", "t (s)", "processed/s",
                                      "accepted/s", "pending", "ratio"))
    for w in res["windows"]:
        p("%-9s %7.1f %12.0f %12.0f %9.0f %6.0f%%"
          % (w["phase"], w["t"], w["processed_per_s"], w["accepted_per_s"],
             w["pending"], 100 * w["ratio"]))
    p("baseline %.0f orders/s; during the %d s pin %.0f (%.0f%%, worst"
      " window %.0f%%); after %.0f (%.0f%%); load errors %d"
      % (res["baseline"], res["pin_seconds"], res["during"],
         100 * res["during_ratio"], 100 * res["during_min_ratio"],
         res["after"], 100 * res["after_ratio"], res["load_errors"]))
    prof = res["profile"]
    for when in ("baseline", "pin"):
        p("\n-- claim scan at the end of the %s --" % when)
        p(prof.get(when + "_plan", "(none)"))
        p("-- top statements over the %s (ms total, ms/call, buffers/call)"
          " --" % when)
        for s in prof.get(when + "_statements", []):
            p("%8d %10.1f %8.3f %8d  %s" % (s["calls"], s["total_ms"],
                                            s["mean_ms"], s["blks_per_call"],
                                            s["query"]))
        p("-- live/dead tuples: %s" % json.dumps(prof.get(when + "_dead")))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build", nargs="?",
                    default=os.environ.get("BUILD", os.path.join(ROOT,
                                                                 "build")))
    ap.add_argument("--pin-seconds", type=int, default=60)
    ap.add_argument("--baseline", type=int, default=30)
    ap.add_argument("--after", type=int, default=20)
    ap.add_argument("--window", type=int, default=5)
    ap.add_argument("--replicas", type=int, default=2)
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--skus", type=int, default=SKUS,
                    help="products the orders spread over (each one a stock"
                    " row updated once per batch that names it)")
    ap.add_argument("--json", help="also write every figure to this file")
    ap.add_argument("--auto-explain", type=int, metavar="MS",
                    help="log the plans of statements slower than MS")
    ap.add_argument("--pg-log", help="keep the server log in this file")
    a = ap.parse_args()
    res = run(a.build, pin_seconds=a.pin_seconds, baseline=a.baseline,
              after=a.after, window=a.window, replicas=a.replicas,
              threads=a.threads, batch=a.batch, skus=a.skus,
              auto_explain_ms=a.auto_explain, pg_log=a.pg_log,
              log=lambda s: print(s, file=sys.stderr, flush=True))
    report(res)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
