#!/usr/bin/python3
"""bench/cost.py: what one order costs, in orderd and in PostgreSQL.

    /usr/bin/python3 bench/cost.py [BUILD_DIR] [--orders 30000] [--skus 20]
        [--reps 3] [--batch 100] [--connections 4] [--json FILE]

The "find the cost before changing anything" measurement (issue 9). A
private PostgreSQL 15 cluster (tests/pgcluster.py, fsync on,
synchronous_commit=on, with pg_stat_statements preloaded), one orderd
replica on it, stock for --skus skus, then per repetition the end-to-end
batch workload of bench.py: --orders orders in requests of --batch orders
over --connections connections, the clock from the first request until
/v1/stats shows nothing pending or processing. Around each repetition it
takes, and reports per order:

- CPU seconds of orderd (utime+stime, /proc/PID/stat) and of the whole
  PostgreSQL cluster: the postmaster with every child (backends, background
  writer, WAL writer, checkpointer, autovacuum launcher and workers) live at
  either end, plus the postmaster's cutime+cstime, which holds the CPU of
  children that exited in between (autovacuum workers);
- statements (pg_stat_statements calls, BEGIN/COMMIT included) and rows
  they returned or changed, by statement, with the top statements by
  total execution time;
- row versions written per table (pg_stat_user_tables n_tup_ins, n_tup_upd,
  n_tup_hot_upd, n_tup_del) and committed transactions;
- WAL bytes (pg_current_wal_lsn), WAL records and full-page images
  (pg_stat_wal), and the WAL by record type (pg_waldump --stats=record over
  the repetition's LSN range, best effort).

It also measures one idle stretch (nothing submitted) so the cost of
polling can be told apart. Medians over the repetitions; the machine may be
shared, so the JSON keeps every repetition. Prints a table and the JSON
(to stdout, and to --json, default BUILD/cost-results.json). A benchmark,
not a test. It reuses bench.py (orderd, loadgen, the end-to-end run) and
vacuum_pin.py (the cluster with pg_stat_statements) by import.
"""
import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
import types

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "tests"))

import bench  # noqa: E402
import pgcluster  # noqa: E402
import vacuum_pin  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
TABLES = ("orders", "order_events", "reservations", "products",
          "adjustments", "notifications", "replicas", "locks")
# Distinctive text of each statement orderd prepares
# (src/store/postgres_*.c), to name pg_stat_statements' rows. First match
# wins; anything else is shown by its text.
NAMES = (
    ("INSERT INTO orders (id", "submit"),
    ("attempts = o.attempts + 1, lease_owner", "claim"),
    ("WITH pu AS (UPDATE products", "process_apply"),
    ("o.held FROM orders o JOIN unnest", "process_orders"),
    ("SELECT sku, stock, ctid FROM products", "process_products"),
    ("SELECT seq, lease_until FROM orders", "reap"),
    ("fingerprint = CASE WHEN attempts <", "retry"),
    ("UPDATE orders SET status = 'pending', attempts = greatest(",
     "release"),
    ("WHERE status = 'pending' UNION ALL", "stats_live"),
    ("count(*) FROM orders GROUP BY status", "stats_count"),
    ("SELECT min(created_at) FROM orders", "stats_oldest"),
    ("SELECT x.i, o.status FROM unnest", "orders_status"),
    ("FROM orders WHERE id = ANY($1::text[])", "submit_read"),
    ("INSERT INTO replicas", "replica_beat"),
    ("FROM replicas WHERE last_seen", "replicas_list"),
    ("ON CONFLICT (sku) DO NOTHING", "product_ensure"),
    ("FROM products WHERE sku = $1 FOR UPDATE", "product_lock"),
    ("u AS (UPDATE products SET stock = $2", "product_set"),
    ("FROM notifications WHERE status = 'pending')", "notify_oldest"),
    ("FROM notifications GROUP BY status", "notify_stats"),
    ("fingerprint IS NULL ORDER BY seq", "failures_unprinted"),
    ("SELECT o.fingerprint, count(*)", "failures_list"),
    ("SET statement_timeout", "session setup"),
)
# The hot tables: their statistics must have settled before a reading.
HOT = ("orders", "order_events", "reservations", "products")


def shape(text):
    """Text with literals and parameters as ?: pg_stat_statements replaces
    constants by $n in some entries and not in others."""
    t = " ".join(text.split())
    t = re.sub(r"'(?:[^']|'')*'", "?", t)
    t = re.sub(r"\$\d+", "?", t)
    return re.sub(r"\b\d+\b", "?", t)


SHAPES = tuple((shape(sig), name) for sig, name in NAMES)


def log(msg):
    bench.log("cost: " + msg)


def label(query):
    q = shape(query)
    if q.upper() in ("BEGIN", "COMMIT", "ROLLBACK", "SELECT ?"):
        return q.upper()
    for sig, name in SHAPES:
        if sig in q:
            return name
    return q[:60]


# ---- the cluster's CPU ------------------------------------------------------

def _stat(pid):
    """(ppid, utime+stime, cutime+cstime) in seconds, or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # fields[0] is state (field 3): ppid is field 4, utime..cstime 14..17.
    return (int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK,
            (int(fields[13]) + int(fields[14])) / TICK)


def postmaster_pid(pgdir):
    path = os.path.join(pgcluster.home_of(pgdir), "data", "postmaster.pid")
    with open(path) as f:
        return int(f.readline())


def cluster_cpu(pm):
    """CPU seconds of the whole cluster so far: the postmaster's own and
    its reaped children's, plus every live child's."""
    s = _stat(pm)
    if s is None:
        raise SystemExit("cost: postmaster %d is gone" % pm)
    total = s[1] + s[2]
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == pm:
            continue
        c = _stat(int(d))
        if c and c[0] == pm:
            total += c[1]
    return total


# ---- PostgreSQL's counters --------------------------------------------------

def q(conn, sql, args=None):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchall() if cur.description else []


def counters(conn):
    """The cumulative counters a repetition is the difference of."""
    t = {r[0]: {"ins": r[1], "upd": r[2], "hot_upd": r[3], "del": r[4]}
         for r in q(conn, "SELECT relname, n_tup_ins, n_tup_upd,"
                    " n_tup_hot_upd, n_tup_del FROM pg_stat_user_tables"
                    " WHERE relname = ANY(%s)", (list(TABLES),))}
    db = q(conn, "SELECT xact_commit, xact_rollback, blks_hit, blks_read"
           " FROM pg_stat_database WHERE datname = current_database()")[0]
    wal = q(conn, "SELECT wal_records, wal_fpi, wal_bytes::bigint,"
            " wal_write, wal_sync FROM pg_stat_wal")[0]
    bg = q(conn, "SELECT checkpoints_timed + checkpoints_req,"
           " buffers_checkpoint, buffers_clean, buffers_backend"
           " FROM pg_stat_bgwriter")[0]
    return {"tables": t,
            "db": dict(zip(("xact_commit", "xact_rollback", "blks_hit",
                            "blks_read"), db)),
            "wal": dict(zip(("records", "fpi", "bytes", "write", "sync"),
                            wal)),
            "bgwriter": dict(zip(("checkpoints", "buffers_checkpoint",
                                  "buffers_clean", "buffers_backend"), bg))}


def table_sum(c):
    return sum(sum(v.values()) for t, v in c["tables"].items() if t in HOT)


def settled_counters(conn, timeout=20):
    """Table counters once every backend has flushed its share.
    PostgreSQL 15 keeps a backend's table statistics in memory and flushes
    them at the end of a transaction at most once a second, or, when the
    backend went idle with some pending (a pooled connection nobody checks
    out), after 10 s of idleness (PGSTAT_IDLE_INTERVAL). So: wait those
    10 s, then until two reads a second apart agree (bounded)."""
    t0 = time.monotonic()
    time.sleep(10.5)
    last = counters(conn)
    while time.monotonic() - t0 < timeout:
        time.sleep(1.1)
        c = counters(conn)
        if table_sum(c) == table_sum(last):
            return c
        last = c
    log("table statistics still moving after %ds" % timeout)
    return last


def diff(a, b):
    if isinstance(a, dict):
        return {k: diff(a.get(k, 0) if isinstance(b[k], (int, float))
                        else a.get(k, {}), b[k]) for k in b}
    return b - a


def lsn(conn):
    return q(conn, "SELECT pg_current_wal_lsn()::text")[0][0]


def lsn_bytes(conn, a, b):
    return int(q(conn, "SELECT pg_wal_lsn_diff(%s, %s)", (b, a))[0][0])


def statements(conn):
    rows = q(conn, "SELECT query, calls, rows, total_exec_time,"
             " shared_blks_hit + shared_blks_read, shared_blks_dirtied,"
             " wal_records, wal_fpi, wal_bytes::bigint"
             " FROM pg_stat_statements"
             " WHERE dbid = (SELECT oid FROM pg_database"
             " WHERE datname = current_database())"
             " AND query NOT ILIKE '%%pg_stat%%'"
             " AND query NOT ILIKE '%%pg_current_wal_lsn%%'"
             " AND query NOT ILIKE '%%pg_wal_lsn_diff%%'")
    out = {}
    for r in rows:
        name = label(r[0])
        s = out.setdefault(name, {"calls": 0, "rows": 0, "total_ms": 0.0,
                                  "blks": 0, "dirtied": 0, "wal_records": 0,
                                  "wal_fpi": 0, "wal_bytes": 0,
                                  "query": " ".join(r[0].split())[:200]})
        for k, v in zip(("calls", "rows", "total_ms", "blks", "dirtied",
                         "wal_records", "wal_fpi", "wal_bytes"), r[1:]):
            s[k] += float(v) if k == "total_ms" else int(v)
    return out


WALDUMP_LINE = re.compile(r"^(\S+/\S+)\s+(\d+)\s+\(\s*[\d.]+\)\s+(\d+)"
                          r"\s+\(\s*[\d.]+\)\s+(\d+)\s+\(\s*[\d.]+\)"
                          r"\s+(\d+)")


def waldump(pgdir, start, end, top=14):
    """WAL of [start, end) by record type, or an error string."""
    data = os.path.join(pgcluster.home_of(pgdir), "data")
    r = pgcluster.run([pgcluster.BIN + "/pg_waldump", "-p",
                       os.path.join(data, "pg_wal"), "-s", start, "-e", end,
                       "--stats=record"], check=False, timeout=120)
    if r.returncode != 0:
        return {"error": r.stdout.strip()[-300:]}
    recs = []
    for line in r.stdout.splitlines():
        # "Heap/INSERT  N (pct)  record bytes (pct)  FPI bytes (pct)
        #  combined bytes (pct)"
        m = WALDUMP_LINE.match(line)
        if m:
            recs.append({"type": m.group(1), "count": int(m.group(2)),
                         "rec_bytes": int(m.group(3)),
                         "fpi_bytes": int(m.group(4)),
                         "bytes": int(m.group(5))})
    recs.sort(key=lambda x: -x["bytes"])
    return {"records": recs[:top],
            "total_bytes": sum(x["bytes"] for x in recs)}


# ---- one measurement --------------------------------------------------------

class Meter:
    def __init__(self, conn, pgdir, pm, orderd):
        self.conn, self.pgdir, self.pm, self.od = conn, pgdir, pm, orderd

    def start(self):
        self.c0 = counters(self.conn)
        q(self.conn, "SELECT pg_stat_statements_reset()")
        self.lsn0 = lsn(self.conn)
        self.pg0 = cluster_cpu(self.pm)
        self.od0 = self.od.proc.cpu_seconds()
        self.t0 = time.monotonic()

    def stop(self, orders, extra=None):
        """The figures since start(), per order (orders > 0) or per
        second (orders == 0: the idle stretch)."""
        el = time.monotonic() - self.t0
        od1 = self.od.proc.cpu_seconds()
        pg1 = cluster_cpu(self.pm)
        lsn1 = lsn(self.conn)
        st = statements(self.conn)
        c1 = settled_counters(self.conn)
        d = diff(self.c0, c1)
        per = orders if orders else el
        wal_b = lsn_bytes(self.conn, self.lsn0, lsn1)
        calls = sum(s["calls"] for s in st.values())
        rows = {t: {k: v / per for k, v in d["tables"][t].items()}
                for t in d["tables"] if any(d["tables"][t].values())}
        res = {
            "seconds": round(el, 3), "orders": orders,
            "per": "order" if orders else "second",
            "orderd_cpu_s": round(od1 - self.od0, 3),
            "pg_cpu_s": round(pg1 - self.pg0, 3),
            "orderd_cpu_us": (od1 - self.od0) / per * 1e6,
            "pg_cpu_us": (pg1 - self.pg0) / per * 1e6,
            "statements": calls / per,
            "transactions": d["db"]["xact_commit"] / per,
            "rollbacks": d["db"]["xact_rollback"] / per,
            "row_versions": {t: r["ins"] + r["upd"] for t, r in
                             rows.items()},
            "row_versions_total": sum(r["ins"] + r["upd"]
                                      for r in rows.values()),
            "rows": rows,
            "wal_bytes": wal_b / per,
            "wal_records": d["wal"]["records"] / per,
            "wal_fpi": d["wal"]["fpi"] / per,
            "wal_syncs": d["wal"]["sync"] / per,
            "checkpoints": d["bgwriter"]["checkpoints"],
            "by_statement": {
                n: dict(s, calls_per=s["calls"] / per,
                        rows_per=s["rows"] / per,
                        us_per=s["total_ms"] * 1000 / per)
                for n, s in st.items()},
            "exec_ms_total": sum(s["total_ms"] for s in st.values()),
        }
        if orders:
            res["waldump"] = waldump(self.pgdir, self.lsn0, lsn1)
        res.update(extra or {})
        return res


def med(runs, key):
    return bench.median([r.get(key) for r in runs])


def med_path(runs, *path):
    vals = []
    for r in runs:
        v = r
        for p in path:
            v = v.get(p, {}) if isinstance(v, dict) else {}
        vals.append(v if isinstance(v, (int, float)) else 0)
    return bench.median(vals)


def summary(runs, idle):
    s = {k: med(runs, k) for k in
         ("orderd_cpu_us", "pg_cpu_us", "statements", "transactions",
          "row_versions_total", "wal_bytes", "wal_records", "wal_fpi",
          "wal_syncs", "orders_per_s", "loadgen_cpu_us")}
    s["orders_per_s_runs"] = [r.get("orders_per_s") for r in runs]
    s["pg_cpu_us_runs"] = [round(r["pg_cpu_us"], 1) for r in runs]
    s["orderd_cpu_us_runs"] = [round(r["orderd_cpu_us"], 1) for r in runs]
    s["db_orders_per_core_s"] = 1e6 / s["pg_cpu_us"] if s["pg_cpu_us"] \
        else None
    s["orderd_orders_per_core_s"] = 1e6 / s["orderd_cpu_us"] \
        if s["orderd_cpu_us"] else None
    tables = sorted({t for r in runs for t in r["rows"]})
    s["rows"] = {t: {k: med_path(runs, "rows", t, k)
                     for k in ("ins", "upd", "hot_upd", "del")}
                 for t in tables}
    names = {n for r in runs for n in r["by_statement"]}
    st = {}
    for n in names:
        st[n] = {k: med_path(runs, "by_statement", n, k)
                 for k in ("calls_per", "rows_per", "us_per", "total_ms",
                           "calls", "wal_bytes", "wal_fpi")}
        one = [r["by_statement"][n] for r in runs if n in r["by_statement"]]
        st[n]["ms_per_call"] = (st[n]["total_ms"] / st[n]["calls"]
                                if st[n]["calls"] else None)
        st[n]["wal_bytes_per"] = (st[n]["wal_bytes"] / runs[0]["orders"]
                                  if runs[0]["orders"] else None)
        st[n]["query"] = one[0]["query"]
    s["by_statement"] = st
    s["idle_per_s"] = {k: idle.get(k) for k in
                       ("orderd_cpu_us", "pg_cpu_us", "statements",
                        "wal_bytes")} if idle else None
    return s


def print_table(res):
    s = res["summary"]
    w = res["workload"]
    print()
    print("orderd cost per order, PostgreSQL, 1 replica: %d orders in "
          "batches of %d over %d connections, %d skus, end to end; "
          "median of %d" % (w["orders"], w["batch"], w["connections"],
                            w["skus"], len(res["runs"])))
    rows = [
        ("end-to-end orders/s", s["orders_per_s"], "%.0f",
         " (runs: %s)" % ", ".join("%.0f" % v for v in
                                   s["orders_per_s_runs"] if v)),
        ("orderd CPU us/order", s["orderd_cpu_us"], "%.1f",
         " (runs: %s)" % ", ".join("%.1f" % v for v in
                                   s["orderd_cpu_us_runs"])),
        ("PostgreSQL CPU us/order (whole cluster)", s["pg_cpu_us"], "%.1f",
         " (runs: %s)" % ", ".join("%.1f" % v for v in s["pg_cpu_us_runs"])),
        ("load generator CPU us/order", s["loadgen_cpu_us"], "%.1f", ""),
        ("=> orders/s per PostgreSQL core", s["db_orders_per_core_s"],
         "%.0f", ""),
        ("=> orders/s per orderd core", s["orderd_orders_per_core_s"],
         "%.0f", ""),
        ("statements/order (incl. BEGIN/COMMIT)", s["statements"], "%.3f",
         ""),
        ("committed transactions/order", s["transactions"], "%.3f", ""),
        ("row versions written/order (ins+upd)", s["row_versions_total"],
         "%.2f", ""),
        ("WAL bytes/order", s["wal_bytes"], "%.0f", ""),
        ("WAL records/order", s["wal_records"], "%.2f", ""),
        ("WAL full-page images/order", s["wal_fpi"], "%.3f", ""),
        ("WAL fsyncs/order", s["wal_syncs"], "%.4f", ""),
    ]
    for name, v, f, extra in rows:
        print("  %-44s %10s%s" % (name, f % v if v is not None else "-",
                                  extra))
    print()
    print("  row versions per order, by table (median):")
    print("    %-14s %8s %8s %8s %8s" % ("table", "ins", "upd", "hot_upd",
                                         "del"))
    for t, r in sorted(s["rows"].items()):
        print("    %-14s %8.3f %8.3f %8.3f %8.3f" % (t, r["ins"], r["upd"],
                                                   r["hot_upd"], r["del"]))
    print()
    print("  statements by total execution time (median run):")
    print("    %-18s %9s %9s %9s %9s %9s %9s" % (
        "statement", "calls/ord", "rows/ord", "ms/call", "exec_us/o",
        "share", "WAL B/o"))
    tot = sum(x["us_per"] for x in s["by_statement"].values()) or 1
    for n, x in sorted(s["by_statement"].items(),
                       key=lambda kv: -kv[1]["us_per"])[:14]:
        print("    %-18s %9.4f %9.3f %9.3f %9.2f %8.1f%% %9.0f" % (
            n[:18], x["calls_per"], x["rows_per"], x["ms_per_call"] or 0,
            x["us_per"], 100 * x["us_per"] / tot, x["wal_bytes_per"] or 0))
    wd = res["runs"][len(res["runs"]) // 2].get("waldump") or {}
    if wd.get("records"):
        n = res["workload"]["orders"]
        print()
        print("  WAL by record type (pg_waldump, one run), per order:")
        for r in wd["records"]:
            print("    %-26s %8.3f records %8.0f bytes (%5.0f of them FPI)" %
                  (r["type"], r["count"] / n, r["bytes"] / n,
                   r["fpi_bytes"] / n))
    elif wd.get("error"):
        print("  pg_waldump: %s" % wd["error"])
    if s["idle_per_s"]:
        i = s["idle_per_s"]
        print()
        print("  idle (nothing submitted), per second: orderd %.0f us CPU, "
              "PostgreSQL %.0f us CPU, %.1f statements, %.0f WAL bytes" %
              (i["orderd_cpu_us"], i["pg_cpu_us"], i["statements"],
               i["wal_bytes"]))
    print()
    for n in res["notes"]:
        print("note: " + n)


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("build", nargs="?",
                    default=os.environ.get("BUILD", "build"))
    ap.add_argument("--orders", type=int, default=30000)
    ap.add_argument("--skus", type=int, default=20)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=3000,
                    help="orders run once before measuring")
    ap.add_argument("--idle-seconds", type=float, default=5.0)
    ap.add_argument("--auto-explain", type=int, metavar="MS",
                    help="log plans of statements slower than MS "
                    "(auto_explain) to --pg-log")
    ap.add_argument("--pg-log", help="keep the server log here")
    ap.add_argument("--pg-set", action="append", default=[],
                    metavar="NAME=VALUE", help="a server setting for the "
                    "experiment (ALTER SYSTEM), e.g. "
                    "plan_cache_mode=force_custom_plan")
    ap.add_argument("--json", help="default BUILD/cost-results.json")
    a = ap.parse_args(argv)
    a.build = os.path.abspath(os.path.join(REPO, a.build)
                              if not os.path.isabs(a.build) else a.build)
    a.json = a.json or os.path.join(a.build, "cost-results.json")
    return a


def run(args):
    for tool in ("orderd", "bench_loadgen"):
        if not os.access(os.path.join(args.build, tool), os.X_OK):
            raise SystemExit("cost: %s/%s missing: build first" %
                             (args.build, tool))
    import psycopg2
    bench.SKUS = args.skus  # bench's loadgen and set_stock read it
    base = os.path.join(args.build, "benchtmp")
    os.makedirs(base, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="cost-", dir=base)
    pgdir = os.path.join(tmp, "pg")
    res = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "workload": {"orders": args.orders, "batch": args.batch,
                        "connections": args.connections, "skus": args.skus,
                        "items_per_order": 1, "replicas": 1},
           "machine": {"cores": os.cpu_count(),
                       "loadavg_start": os.getloadavg(),
                       "busy_processes_start": bench.busy_processes()},
           "notes": []}
    conn = None
    try:
        vacuum_pin._start_cluster(pgcluster, pgdir, args.auto_explain)
        with open(os.path.join(pgdir, "uri")) as f:
            uri = f.read().strip()
        conn = psycopg2.connect(uri)
        conn.autocommit = True  # every read a fresh statistics snapshot
        q(conn, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        for kv in args.pg_set:
            k, _, v = kv.partition("=")
            q(conn, "ALTER SYSTEM SET %s = %%s" % k, (v,))
        if args.pg_set:
            q(conn, "SELECT pg_reload_conf()")
            res["pg_set"] = args.pg_set
        res["postgres"] = q(conn, "SELECT version()")[0][0]
        pm = postmaster_pid(pgdir)
        od = bench.Orderd(args.build, uri, tmp, "orderd-cost")
        od.wait_ready()
        bench.set_stock(od.url)
        b = bench.Bench(types.SimpleNamespace(build=args.build, seconds=5))
        meter = Meter(conn, pgdir, pm, od)
        if args.warmup:
            e = b.end_to_end([od.url], args.connections, args.warmup,
                             batch=args.batch)
            log("warm-up: %s orders/s" % e["orders_per_s"])
        # Statistics as autovacuum would have them on a table in use.
        q(conn, "ANALYZE")
        meter.start()
        time.sleep(args.idle_seconds)
        idle = meter.stop(0)
        log("idle: orderd %.0f us/s, postgres %.0f us/s" %
            (idle["orderd_cpu_us"], idle["pg_cpu_us"]))
        runs = []
        for rep in range(args.reps):
            b.drain(od.url)
            meter.start()
            e = b.end_to_end([od.url], args.connections, args.orders,
                             batch=args.batch)
            if not e["drained"]:
                res["notes"].append("rep %d did not drain" % (rep + 1))
            n = e["accepted"]
            r = meter.stop(n, {
                "orders_per_s": e["orders_per_s"],
                "loadgen_cpu_us": e["loadgen_cpu_s"] / n * 1e6 if n else None,
                "submit_errors": e["submit_errors"],
                "busy_processes": bench.busy_processes()})
            runs.append(r)
            log("rep %d: %.0f orders/s, orderd %.1f us, postgres %.1f us, "
                "%.2f statements, %.2f row versions, %.0f WAL bytes per "
                "order" % (rep + 1, r["orders_per_s"] or 0,
                           r["orderd_cpu_us"], r["pg_cpu_us"],
                           r["statements"], r["row_versions_total"],
                           r["wal_bytes"]))
        res["rss_peak_kb"] = od.proc.proc_status("VmHWM")
        od.proc.stop()
        res["idle"] = idle
        res["runs"] = runs
        res["summary"] = summary(runs, idle)
    finally:
        if conn is not None:
            conn.close()
        bench.Proc.stop_all()
        if args.pg_log:
            shutil.copy(os.path.join(pgcluster.home_of(pgdir), "log"),
                        args.pg_log)
        pgcluster.stop(pgdir)
        shutil.rmtree(tmp, ignore_errors=True)
    res["machine"]["loadavg_end"] = os.getloadavg()
    busy = set(res["machine"]["busy_processes_start"])
    for r in res["runs"]:
        busy |= set(r["busy_processes"])
    if busy:
        res["notes"].append("other work on the machine during the run (%s):"
                            " figures are noisy" % ", ".join(sorted(busy)))
    res["notes"].append(
        "orderd, PostgreSQL and the load generator share %d cores; CPU "
        "figures are per process, so they hold under load better than "
        "orders/s does" % os.cpu_count())
    res["notes"].append(
        "PostgreSQL CPU includes the end-to-end clock's polling of "
        "/v1/stats every 20 ms (stats_* statements) and idle claims; the "
        "idle line gives their rate per second")
    return res


def main(argv):
    args = parse_args(argv)
    res = run(args)
    with open(args.json, "w") as f:
        json.dump(res, f, indent=1, default=str)
    print(json.dumps(res["summary"], indent=1, default=str))
    print_table(res)
    print("results: %s" % args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
