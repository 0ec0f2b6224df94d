#!/usr/bin/python3
"""pgbouncer.py: orderd direct and through PgBouncer, side by side.

    /usr/bin/python3 bench/pgbouncer.py BUILD_DIR [--reps N] [--replicas 1,2]
        [--orders N] [--single-orders N] [--pool-size N] [--quick]

One throwaway PostgreSQL 15 cluster (tests/pgcluster.py: fsync on,
synchronous_commit on) and one pgbouncer 1.18 in front of it (pool_mode =
transaction, default_pool_size = --pool-size, on a free 127.0.0.1 port).
Three ways to reach the same database, with 1 and 2 replicas:

  direct       orderd straight to PostgreSQL, ORDERD_PG_POOLER=none
               (named statements prepared once per connection, session SETs)
  unprepared   orderd straight to PostgreSQL, ORDERD_PG_POOLER=transaction
               (every statement unnamed, settings set in every transaction):
               the cost of the setting alone
  pgbouncer    orderd through pgbouncer, ORDERD_PG_POOLER=transaction: the
               setting plus the pooler's hop

Two workloads, end to end (clock from the first submit until no order is
open; bench.py's Bench.end_to_end): batch submits of 100 orders, 30,000
orders, 4 connections per replica; single submits, 64 connections in all.
Orders are spread over 20 skus with stock to spare (every order completes,
its stock reserved). Each figure is the median of --reps repetitions; the
three configurations alternate inside each repetition so that they share
the machine's load, and the ratios are to `direct` of the same run. Peak
server sessions (client backends of the database in pg_stat_activity,
sampled every 50 ms) show each configuration's connection use, and CPU
microseconds per order of orderd, of PostgreSQL (every child of the
postmaster) and of pgbouncer (/proc/PID/stat across each run) show the
cost with less noise than throughput on a shared machine.

The load generator, the orderd wrapper and the cluster plumbing are
bench.py's, imported. Every process started is stopped on exit.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402

PGBOUNCER = "/usr/sbin/pgbouncer"
DB = "bench_pgbouncer"
CONFIGS = ("direct", "unprepared", "pgbouncer")


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def start_pgbouncer(tmp, pg_port, pool_size):
    """pgbouncer in the foreground as a bench.Proc; returns its port."""
    d = tempfile.mkdtemp(prefix="pgbouncer-", dir="/tmp")
    os.chmod(d, 0o755)
    port = bench.free_port()
    users = os.path.join(d, "users.txt")
    ini = os.path.join(d, "pgbouncer.ini")
    with open(users, "w") as f:
        f.write('"postgres" ""\n')
    with open(ini, "w") as f:
        f.write(PGBOUNCER_INI % {"pg_port": pg_port, "port": port,
                                 "users": users, "pool": pool_size})
    for p in (users, ini):
        os.chmod(p, 0o644)
    log_path = os.path.join(tmp, "pgbouncer.log")
    # pgbouncer refuses to run as root: -u drops to postgres.
    args = [PGBOUNCER] + (["-u", "postgres"] if os.geteuid() == 0 else [])
    proc = bench.Proc(args + [ini], log_path=log_path, name="pgbouncer")
    # Not daemonized (no -d): proc.pid is pgbouncer itself.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not proc.alive():
            raise SystemExit("pgbouncer exited: " + open(log_path).read())
        with open(log_path, errors="replace") as f:
            if "listening on 127.0.0.1" in f.read():
                return port, d, proc.pid
        time.sleep(0.05)
    raise SystemExit("pgbouncer not listening: " + open(log_path).read())


# What docs/postgres.md recommends, with the bench's port and pool size.
PGBOUNCER_INI = """\
[databases]
* = host=127.0.0.1 port=%(pg_port)d
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %(port)d
unix_socket_dir =
auth_type = trust
auth_file = %(users)s
pool_mode = transaction
default_pool_size = %(pool)d
max_client_conn = 2000
"""


def proc_cpu_s(pid):
    """utime + stime of pid in seconds, 0 when it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def children_of(ppid):
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == ppid:
                    out.append(int(name))
        except (OSError, IndexError, ValueError):
            continue
    return out


class CpuMeter:
    """CPU seconds used by groups of processes between start() and stop():
    orderd (the replicas), postgres (every child of the postmaster: the
    backends and auxiliary processes) and pgbouncer. A backend that exits
    in between loses its share; orderd's are pooled and live for the run."""

    def __init__(self, postmaster, pgbouncer):
        self.postmaster = postmaster
        self.pgbouncer = pgbouncer

    def sample(self, orderd_pids):
        return {"orderd": sum(proc_cpu_s(p) for p in orderd_pids),
                "postgres": sum(proc_cpu_s(p)
                                for p in children_of(self.postmaster)),
                "pgbouncer": proc_cpu_s(self.pgbouncer)}

    def start(self, orderd_pids):
        self.pids = orderd_pids
        self.t0 = self.sample(orderd_pids)

    def stop(self):
        t1 = self.sample(self.pids)
        return {k: round(t1[k] - self.t0[k], 3) for k in t1}


class SessionSampler:
    """Peak number of client backends on DB while running."""

    def __init__(self, base_uri):
        import psycopg2
        self.conn = psycopg2.connect(base_uri)
        self.conn.autocommit = True
        self.peak = 0
        self.stop_ev = threading.Event()
        self.t = None

    def start(self):
        self.peak = 0
        self.stop_ev.clear()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        with self.conn.cursor() as cur:
            while not self.stop_ev.is_set():
                cur.execute("SELECT count(*) FROM pg_stat_activity WHERE "
                            "datname = %s AND backend_type = "
                            "'client backend'", (DB,))
                self.peak = max(self.peak, cur.fetchone()[0])
                time.sleep(0.05)

    def stop(self):
        self.stop_ev.set()
        self.t.join(5)
        return self.peak


def run(args):
    tmp = tempfile.mkdtemp(prefix="run-pgbouncer-",
                           dir=os.path.join(args.build, "benchtmp"))
    pgdir = os.path.join(tmp, "pg")
    r = subprocess.run(["/usr/bin/python3",
                        os.path.join(bench.REPO, "tests", "pgcluster.py"),
                        "start", pgdir], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=120)
    if r.returncode != 0:
        raise SystemExit("pgcluster start failed:\n" + r.stdout)
    bdir = None
    try:
        with open(os.path.join(pgdir, "uri")) as f:
            base = f.read().strip()
        with open(os.path.join(pgdir, "port")) as f:
            pg_port = int(f.read())
        bench.pg_run([bench.PG_BIN + "/psql", "-q", "-d", base, "-c",
                      "CREATE DATABASE " + DB], timeout=60, check=True)
        bport, bdir, bpid = start_pgbouncer(tmp, pg_port, args.pool_size)
        home = subprocess.run(
            ["/usr/bin/python3", "-c",
             "import sys; sys.path.insert(0, %r); import pgcluster; "
             "print(pgcluster.home_of(%r))" %
             (os.path.join(bench.REPO, "tests"), pgdir)],
            stdout=subprocess.PIPE, text=True, check=True).stdout.strip()
        with open(os.path.join(home, "data", "postmaster.pid")) as f:
            meter = CpuMeter(int(f.readline()), bpid)
        uris = {
            "direct": ("postgres://postgres@127.0.0.1:%d/%s" % (pg_port, DB),
                       "none"),
            "unprepared": ("postgres://postgres@127.0.0.1:%d/%s" %
                           (pg_port, DB), "transaction"),
            "pgbouncer": ("postgres://postgres@127.0.0.1:%d/%s" % (bport, DB),
                          "transaction"),
        }
        b = bench.Bench(argparse.Namespace(build=args.build, seconds=5))
        sampler = SessionSampler(base)
        res = {"runs": {}, "pool_size": args.pool_size}
        stocked = False
        for nrep in args.replicas:
            for rep in range(args.reps):
                for cfg in CONFIGS:
                    uri, pooler = uris[cfg]
                    ods = []
                    for i in range(nrep):
                        ods.append(bench.Orderd(
                            args.build, uri, tmp, "od-%s-%d-%d-%d" %
                            (cfg, nrep, rep, i),
                            extra_env={"ORDERD_PG_POOLER": pooler}))
                        ods[-1].wait_ready()
                    urls = [od.url for od in ods]
                    if not stocked:
                        bench.set_stock(urls[0])
                        stocked = True
                    out = {}
                    for wl, conns, n, batch in (
                            ("batch", 4 * nrep, args.orders, 100),
                            ("single", 64, args.single_orders, None)):
                        b.drain(urls[0])
                        sampler.start()
                        meter.start([od.proc.pid for od in ods])
                        e = b.end_to_end(urls, conns, n, batch=batch)
                        cpu = meter.stop()
                        e["server_sessions_peak"] = sampler.stop()
                        # CPU per order, microseconds, by process group.
                        e["cpu_us_per_order"] = {
                            k: round(v * 1e6 / max(1, e["accepted"]), 1)
                            for k, v in cpu.items()}
                        out[wl] = e
                        bench.log("%d replica(s) rep %d %-10s %-6s: %s "
                                  "orders/s, %d errors, %d server sessions, "
                                  "cpu us/order %s"
                                  % (nrep, rep + 1, cfg, wl,
                                     "%.0f" % e["orders_per_s"]
                                     if e["orders_per_s"] else "-",
                                     e["submit_errors"],
                                     e["server_sessions_peak"],
                                     e["cpu_us_per_order"]))
                    for od in ods:
                        od.proc.stop()
                    res["runs"].setdefault("%d" % nrep, {}).setdefault(
                        cfg, []).append(out)
        return res
    finally:
        bench.Proc.stop_all()
        subprocess.run(["/usr/bin/python3",
                        os.path.join(bench.REPO, "tests", "pgcluster.py"),
                        "stop", pgdir], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=120)
        if bdir:
            shutil.rmtree(bdir, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)


def report(res):
    print()
    print("orderd direct vs PgBouncer (pool_mode = transaction, "
          "default_pool_size = %d); end-to-end orders/s, median of %d; "
          "ratio to direct of the same run" %
          (res["pool_size"], res["reps"]))
    fmt = "%-9s %-27s %-11s %6s %9s %13s %8s %8s %8s"
    print(fmt % ("replicas", "workload", "config", "ratio", "orders/s",
                 "server sess.", "orderd", "postgres", "bouncer"))
    print("%-80s %s" % ("", "(CPU us per order, medians)"))
    print("-" * 107)
    res["rows"] = []
    for nrep, by_cfg in res["runs"].items():
        for wl, name in (("batch", "batch 100/req, 4 conns/rep"),
                         ("single", "single submits, 64 conns")):
            for cfg in CONFIGS:
                runs = by_cfg.get(cfg, [])
                v = median(r[wl]["orders_per_s"] for r in runs)
                # Ratio: median of per-repetition ratios to direct.
                ratios = [r[wl]["orders_per_s"] / d[wl]["orders_per_s"]
                          for r, d in zip(runs, by_cfg["direct"])
                          if r[wl]["orders_per_s"] and
                          d[wl]["orders_per_s"]]
                ratio = median(ratios)
                sess = max((r[wl]["server_sessions_peak"] for r in runs),
                           default=None)
                cpu = {k: median(r[wl]["cpu_us_per_order"][k] for r in runs)
                       for k in ("orderd", "postgres", "pgbouncer")}
                res["rows"].append({"replicas": int(nrep), "workload": wl,
                                    "config": cfg, "orders_per_s": v,
                                    "ratio_to_direct": ratio,
                                    "runs": [r[wl]["orders_per_s"]
                                             for r in runs],
                                    "server_sessions_peak": sess,
                                    "cpu_us_per_order": cpu})
                print(fmt % (nrep, name, cfg,
                             "%.2f" % ratio if ratio else "-",
                             "%.0f" % v if v else "-",
                             sess if sess is not None else "-",
                             "%.0f" % cpu["orderd"], "%.0f" % cpu["postgres"],
                             "%.0f" % cpu["pgbouncer"]))
    print()
    print("note: %d cores shared by orderd, PostgreSQL, pgbouncer, the load "
          "generator and other work on the machine: figures are noisy, "
          "compare ratios of the same run" % os.cpu_count())


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("build")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--replicas", default="1,2")
    ap.add_argument("--orders", type=int, default=30000,
                    help="orders per batch-submit run")
    ap.add_argument("--single-orders", type=int, default=10000,
                    help="orders per single-submit run")
    ap.add_argument("--pool-size", type=int, default=8,
                    help="pgbouncer default_pool_size")
    ap.add_argument("--quick", action="store_true",
                    help="1 repetition, fewer orders: a smoke run")
    ap.add_argument("--json", help="results file (default "
                    "BUILD/bench-pgbouncer.json)")
    args = ap.parse_args(argv)
    if args.quick:
        args.reps, args.orders, args.single_orders = 1, 3000, 2000
    args.build = os.path.abspath(args.build)
    args.replicas = [int(x) for x in args.replicas.split(",") if x.strip()]
    for tool in ("orderd", "bench_loadgen"):
        if not os.access(os.path.join(args.build, tool), os.X_OK):
            raise SystemExit("%s/%s missing: build first" % (args.build,
                                                              tool))
    if not os.access(PGBOUNCER, os.X_OK):
        raise SystemExit("no %s: scripts/deps.sh test" % PGBOUNCER)
    os.makedirs(os.path.join(args.build, "benchtmp"), exist_ok=True)
    # The workload of the issue: 20 skus (bench.py's own default is 100).
    bench.SKUS = 20
    bench.signal.signal(bench.signal.SIGTERM, lambda *_: sys.exit(143))
    t0 = time.monotonic()
    res = run(args)
    res.update({"reps": args.reps, "orders": args.orders,
                "single_orders": args.single_orders,
                "seconds": round(time.monotonic() - t0, 1),
                "busy_processes": bench.busy_processes()})
    report(res)
    path = args.json or os.path.join(args.build, "bench-pgbouncer.json")
    with open(path, "w") as f:
        json.dump(res, f, indent=1, default=str)
    print("results: %s (%.0f s)" % (path, res["seconds"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
