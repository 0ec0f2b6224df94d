#!/usr/bin/python3
"""bench.py: one benchmark run of orderd, every figure beside its limit.

    /usr/bin/python3 bench/bench.py [BUILD_DIR] [--backend sqlite|postgres]
        [--seconds S] [--reps N] [--replicas 1,2,4] [--no-peers] [--quick]
        [--json FILE]

BUILD_DIR (or $BUILD, default build/) holds orderd, bench_loadgen,
bench_sqlite_raw and bench_sqlite_ceiling; the SQLite run is in
bench_sqlite.py. `make bench` runs this after building, once per backend.

A run measures the limit of the store on this machine first (SQLite: raw
one-row insert transactions with synchronous=FULL on the same disk, by
bench_sqlite_raw; PostgreSQL: pgbench with a one-row insert script, 16
clients, on the same server), then starts orderd on that store and drives it
with bench_loadgen. On PostgreSQL it also runs orderd's peers (Graphile
Worker, pg-boss: bench/peers.py; --no-peers skips them) on the same cluster,
one repetition of each after each of orderd's with the first replica count,
and prints orderd's ratio to each. Every measurement is repeated --reps
times and the median is reported, because a shared 2-core machine is noisy;
figures are also given as ratios to the limit measured in the same run. The
results go to stdout as a table and to BUILD_DIR/bench-results.json (or
--json). Every process started is stopped on exit, including on errors and
Ctrl-C.
"""
import argparse
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import peers  # bench/peers.py (sys.path[0] is bench/)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PG_BIN = "/usr/lib/postgresql/15/bin"
SKUS = 100
SKU_PREFIX = "bench-sku-"
STOCK = 1000000000
BUDGET_S = 270  # the whole run stays under 5 minutes
# PostgreSQL mode runs the peers too (bench/peers.py, about 40 s per
# repetition): its budget, so that `make bench` (both modes) stays near 10
# minutes.
PG_BUDGET_S = 600
# The issue-9 workload, for orderd and its peers alike: 30,000 units added
# in batches of 100 by 4 producers, orderd reserving stock on 20 skus.
PEER_UNITS = 30000
PEER_SKUS = 20
DRAIN_TIMEOUT_S = 45
TERMINAL = ("completed", "rejected", "failed", "cancelled")
OPEN = ("pending", "processing")
# Processes that mean someone else is compiling: figures are then noisy.
BUSY_NAMES = ("cc1", "cc1plus", "ld", "collect2", "clang", "ctest", "cmake")

T0 = time.monotonic()
# bench_sqlite.py imports this module as "bench": let that be this very
# module (one Proc registry) when this file runs as a script.
sys.modules.setdefault("bench", sys.modules[__name__])


def log(msg):
    sys.stderr.write("[bench %5.1fs] %s\n" % (time.monotonic() - T0, msg))
    sys.stderr.flush()


def over_budget(margin=0):
    return time.monotonic() - T0 > BUDGET_S - margin


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def http(method, url, body=None, timeout=10):
    """Returns (status, parsed JSON or None)."""
    data = None
    headers = {}
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, method=method,
                                 headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
            status = r.status
    except urllib.error.HTTPError as e:
        raw = e.read()
        status = e.code
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, None


def busy_processes():
    """Names of compiler-like processes on the machine (not ours)."""
    seen = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/comm" % pid) as f:
                name = f.read().strip()
        except OSError:
            continue
        if name in BUSY_NAMES:
            seen.add(name)
    return sorted(seen)


def machine_busy_s():
    """CPU seconds all processes have used on this machine (/proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal: all but idle, iowait
    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


class Proc:
    """A child process that we own and always stop."""
    all = []

    def __init__(self, args, env=None, log_path=None, name="proc"):
        self.name = name
        self.log_path = log_path
        out = open(log_path, "ab") if log_path else subprocess.DEVNULL
        self.p = subprocess.Popen(args, env=env, stdout=out,
                                  stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL)
        if log_path:
            out.close()
        Proc.all.append(self)

    @property
    def pid(self):
        return self.p.pid

    def alive(self):
        return self.p.poll() is None

    def proc_status(self, field):
        """A field of /proc/PID/status in KiB (VmHWM, VmRSS), or None."""
        try:
            with open("/proc/%d/status" % self.p.pid) as f:
                for line in f:
                    if line.startswith(field + ":"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None

    def cpu_seconds(self):
        try:
            with open("/proc/%d/stat" % self.p.pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            tick = os.sysconf("SC_CLK_TCK")
            return (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            return None

    def stop(self, timeout=15):
        if self.p.poll() is not None:
            return self.p.returncode
        self.p.send_signal(signal.SIGTERM)
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            log("%s (pid %d) ignored SIGTERM for %ds: killing" %
                (self.name, self.p.pid, timeout))
            self.p.kill()
            return self.p.wait()

    @classmethod
    def stop_all(cls):
        for p in reversed(cls.all):
            try:
                p.stop()
            except Exception as e:  # keep stopping the others
                log("stopping %s: %s" % (p.name, e))
        cls.all = []


class Orderd:
    """One orderd replica on a free port."""

    def __init__(self, build, database, tmp, name, extra_env=None):
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        env = dict(os.environ)
        for k in list(env):
            if k.startswith("ORDERD_"):
                del env[k]
        env.update({"ORDERD_LOG_LEVEL": "warn", "ORDERD_DRAIN_MS": "5000",
                    "ORDERD_REPLICA_ID": name})
        env.update(extra_env or {})
        self.log_path = os.path.join(tmp, "%s.log" % name)
        self.proc = Proc([os.path.join(build, "orderd"),
                          "--database", database,
                          "--listen", "127.0.0.1:%d" % self.port],
                         env=env, log_path=self.log_path, name=name)

    def wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.proc.alive():
                raise SystemExit("orderd exited with %s at start; log:\n%s" %
                                 (self.proc.p.returncode, self.log_tail()))
            try:
                st, _ = http("GET", self.url + "/readyz", timeout=2)
                if st == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise SystemExit("orderd not ready after %ds; log:\n%s" %
                         (timeout, self.log_tail()))

    def log_tail(self, n=4000):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-n:]
        except OSError:
            return ""

    def log_lines(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return sum(1 for _ in f)
        except OSError:
            return 0


# ---- limits -----------------------------------------------------------------

# The batch workload of issue 9: 30,000 orders in batches of 100 from 4
# connections, full stock reservation on 20 skus.
E2E_BATCH_ORDERS = 30000
E2E_BATCH_SKUS = 20


def proc_minflt(pid):
    """Minor page faults of process pid so far (/proc/PID/stat), or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[7])
    except (OSError, IndexError, ValueError):
        return None


def group_commits(url):
    """(orders, transactions) of orderd's group commit so far, or None."""
    m = metrics_snapshot(url, ("orderd_group_commit_orders_sum",
                               "orderd_group_commit_orders_count"))
    try:
        return (float(m["orderd_group_commit_orders_sum"]),
                float(m["orderd_group_commit_orders_count"]))
    except (KeyError, ValueError):
        return None


def measured_e2e(b, od, conns, n, batch=None, skus=SKUS):
    """b.end_to_end on one orderd, with what orderd spent on it: CPU, minor
    page faults (per 10,000 accepted orders) and its group-commit sizes."""
    c0, m0 = od.proc.cpu_seconds(), machine_busy_s()
    f0, g0 = proc_minflt(od.proc.pid), group_commits(od.url)
    e = b.end_to_end([od.url], conns, n, batch=batch, skus=skus)
    c1, m1 = od.proc.cpu_seconds(), machine_busy_s()
    f1, g1 = proc_minflt(od.proc.pid), group_commits(od.url)
    e["orderd_cpu_s"] = c1 - c0 if c0 is not None else None
    e["others_cpu_s"] = round(m1 - m0 - (e["orderd_cpu_s"] or 0) -
                              e["loadgen_cpu_s"], 2)
    e["minflt"] = f1 - f0 if None not in (f0, f1) else None
    e["faults_per_10k"] = (e["minflt"] * 10000.0 / e["accepted"]
                           if e["minflt"] is not None and e["accepted"]
                           else None)
    e["group_commit_mean"] = ((g1[0] - g0[0]) / (g1[1] - g0[1])
                              if g0 and g1 and g1[1] > g0[1] else None)
    return e


def ratio_row(name, vals, lims, target=None, op=None):
    """A table row whose ratio is the median of per-repetition ratios, each
    against the limit measured in the same repetition."""
    ratios = [v / lim for v, lim in zip(vals, lims) if v and lim]
    return {"name": name, "value": median(vals), "runs": vals,
            "limit": median(lims), "ratio": median(ratios) if ratios else None,
            "target": target, "op": op}


def value_row(name, vals, target=None, op=None):
    return {"name": name, "value": median(vals), "runs": vals,
            "limit": None, "ratio": None, "target": target, "op": op}


def limit_summary(what, runs):
    return {"what": what,
            "tx_per_s": median(r["tx_per_s"] for r in runs),
            "runs": runs}


PGBENCH_SCRIPT = """\\set w random(1, 1000000000)
INSERT INTO bench_raw(worker, payload) VALUES (:w, repeat('x', 200));
"""


def pg_run(args, **kw):
    if os.geteuid() == 0:
        args = ["runuser", "-u", "postgres", "--"] + args
    return subprocess.run(args, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, **kw)


def pgbench_limit(uri, tmp, reps, seconds, clients=16):
    # In /tmp: the postgres user may not reach the build directory.
    fd, script = tempfile.mkstemp(prefix="orderd-pgbench-", suffix=".sql")
    with os.fdopen(fd, "w") as f:
        f.write(PGBENCH_SCRIPT)
    os.chmod(script, 0o644)
    try:
        return pgbench_runs(uri, script, reps, seconds, clients)
    finally:
        os.unlink(script)


def pgbench_runs(uri, script, reps, seconds, clients):
    r = pg_run([PG_BIN + "/psql", "-q", "-v", "ON_ERROR_STOP=1", "-d", uri,
                "-c", "CREATE TABLE IF NOT EXISTS bench_raw(id bigserial "
                "PRIMARY KEY, worker bigint NOT NULL, payload text NOT NULL)"],
               timeout=60)
    if r.returncode != 0:
        raise SystemExit("psql: " + r.stdout)
    runs = []
    for i in range(reps):
        r = pg_run([PG_BIN + "/pgbench", "-n", "-M", "prepared",
                    "-c", str(clients), "-j", "2", "-T", str(int(seconds)),
                    "-f", script, uri], timeout=seconds + 60)
        tps = None
        for line in r.stdout.splitlines():
            if line.startswith("tps =") and tps is None:
                tps = float(line.split()[2])
        if r.returncode != 0 or tps is None:
            raise SystemExit("pgbench failed:\n" + r.stdout)
        runs.append(tps)
        log("pgbench %d/%d: %.1f tps" % (i + 1, reps, tps))
    return {"what": "pgbench one-row insert transactions/s, %d clients, "
                    "same server" % clients,
            "tx_per_s": median(runs), "runs": runs}


# ---- orderd measurements ----------------------------------------------------

class Bench:
    def __init__(self, args):
        self.args = args
        self.build = args.build
        self.seq = 0  # distinct id prefixes across all runs

    def prefix(self, what):
        self.seq += 1
        return "b%d-%s-%d" % (os.getpid() % 100000, what, self.seq)

    def loadgen(self, url, mode, conns, seconds=None, requests=None,
                batch=None, warmup=0.5, prefix=None, skus=SKUS):
        args = [os.path.join(self.build, "bench_loadgen"), "--url", url,
                "--mode", mode, "--connections", str(conns),
                "--skus", str(skus), "--sku-prefix", SKU_PREFIX,
                "--prefix", prefix or self.prefix(mode)]
        if requests:
            args += ["--requests", str(requests)]
        else:
            args += ["--seconds", str(seconds), "--warmup", str(warmup)]
        if batch:
            args += ["--batch", str(batch)]
        return subprocess.Popen(args, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def loadgen_result(self, p, timeout):
        # Children's CPU grows when one is reaped: the delta across this
        # wait is this loadgen's (they are reaped one at a time).
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        out, err = p.communicate(timeout=timeout)
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        if p.returncode != 0:
            raise SystemExit("loadgen failed (%d): %s" % (p.returncode, err))
        if err.strip():
            log("loadgen said: " + err.strip()[:1000])
        r = json.loads(out)
        r["loadgen_cpu_s"] = round(ru1.ru_utime + ru1.ru_stime -
                                   ru0.ru_utime - ru0.ru_stime, 3)
        return r

    def run_load(self, url, mode, conns, batch=None):
        s = self.args.seconds
        p = self.loadgen(url, mode, conns, seconds=s, batch=batch)
        return self.loadgen_result(p, s + 90)

    def open_count(self, url):
        """Orders not yet terminal: (count, exact)."""
        st, j = http("GET", url + "/v1/stats")
        if st == 200 and isinstance(j, dict) and \
                isinstance(j.get("orders"), dict) and \
                all(k in j["orders"] for k in OPEN):
            return sum(int(j["orders"][k]) for k in OPEN), True
        # Fallback on the contract alone: any open order at all?
        n = 0
        for status in OPEN:
            st, j = http("GET", url + "/v1/orders?status=%s&limit=1" % status)
            if st != 200 or not isinstance(j, dict):
                raise SystemExit("GET /v1/orders?status=%s: %s %s" %
                                 (status, st, j))
            n += len(j.get("orders") or [])
        return n, False

    def drain(self, url, timeout=DRAIN_TIMEOUT_S):
        """Waits until no order is open; returns seconds or None (timeout)."""
        t = time.monotonic()
        while time.monotonic() - t < timeout:
            n, _ = self.open_count(url)
            if n == 0:
                return time.monotonic() - t
            time.sleep(0.05)
        return None

    def end_to_end(self, urls, conns, n_orders, batch=None, skus=SKUS):
        """Submits n_orders orders over all urls (single submits, or batch
        requests of `batch` orders, items over the first `skus` products);
        orders/s until every one is terminal."""
        per = max(1, conns // len(urls))
        t0 = time.monotonic()
        procs = []
        for i, u in enumerate(urls):
            share = n_orders // len(urls) + (1 if i < n_orders % len(urls)
                                             else 0)
            if batch:
                procs.append(self.loadgen(u, "batch", per,
                                          requests=max(1, share // batch),
                                          batch=batch,
                                          prefix=self.prefix("e2eb"),
                                          skus=skus))
            else:
                procs.append(self.loadgen(u, "submit", per, requests=share,
                                          prefix=self.prefix("e2e"),
                                          skus=skus))
        subs = [self.loadgen_result(p, 180) for p in procs]
        t_sub = time.monotonic() - t0
        accepted = sum(s["orders_ok"] for s in subs)
        left = None
        while time.monotonic() - t0 < t_sub + DRAIN_TIMEOUT_S:
            left, _ = self.open_count(urls[0])
            if left == 0:
                break
            time.sleep(0.02)
        el = time.monotonic() - t0
        done = left == 0
        return {"orders": n_orders, "accepted": accepted,
                "submit_seconds": round(t_sub, 3),
                "seconds": round(el, 3), "drained": done,
                "orders_per_s": accepted / el if done else None,
                "submit_errors": sum(s["errors"] for s in subs),
                "submit_p99_ms": max(s["p99_ms"] for s in subs),
                "loadgen_cpu_s": sum(s["loadgen_cpu_s"] for s in subs),
                "submit_by_status": [s["by_status"] for s in subs]}


def stats_snapshot(url):
    try:
        st, j = http("GET", url + "/v1/stats")
        return j if st == 200 else {"status": st}
    except OSError as e:
        return {"error": str(e)}


def metrics_snapshot(url, names=("orderd_orders_processed_total",
                                 "orderd_retries_total",
                                 "orderd_store_errors_total",
                                 "orderd_http_requests_total")):
    try:
        with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
            text = r.read().decode(errors="replace")
    except OSError as e:
        return {"error": str(e)}
    out = {}
    for line in text.splitlines():
        if line.startswith(names):
            k, _, v = line.rpartition(" ")
            out[k] = v
    return out


def set_stock(url):
    for i in range(SKUS):
        st, j = http("PUT", "%s/v1/products/%s%d" % (url, SKU_PREFIX, i),
                     {"stock": STOCK})
        if st != 200:
            raise SystemExit("PUT /v1/products: %s %s" % (st, j))


def phase_row(name, runs, key):
    vals = [r.get(key) for r in runs]
    return {"name": name, "median": median(vals), "runs": vals}


def pg_over_budget(margin=0):
    return time.monotonic() - T0 > PG_BUDGET_S - margin


def run_postgres(b, args, tmp, res):
    node = None if args.no_peers else peers.install_or_note(
        b.build, log, res["notes"])
    pgdir = os.path.join(tmp, "pg")
    r = subprocess.run(["/usr/bin/python3",
                        os.path.join(REPO, "tests", "pgcluster.py"),
                        "start", pgdir], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=120)
    if r.returncode != 0:
        raise SystemExit("pgcluster start failed:\n" + r.stdout)
    res["_pgdir"] = pgdir
    with open(os.path.join(pgdir, "uri")) as f:
        uri = f.read().strip()
    lim = pgbench_limit(uri, tmp, args.reps, max(3, args.raw_seconds * 2))
    res["limit"] = lim
    log("limit: %.0f tx/s (median)" % lim["tx_per_s"])
    lim_v = lim["tx_per_s"]
    rows = []
    runs = {}
    runs_b = {}
    rss = {}
    peer_reps = []
    peer_idle = []
    for nrep in args.replicas:
        if pg_over_budget(40):
            log("time budget reached: skipping %d replicas" % nrep)
            break
        # One at a time: the first creates the schema.
        ods = []
        for i in range(nrep):
            ods.append(Orderd(b.build, uri, tmp, "orderd-r%d-%d" % (nrep, i)))
            ods[-1].wait_ready()
        if nrep == args.replicas[0]:
            set_stock(ods[0].url)
        # The peers run beside the first replica count, one repetition of
        # each after each of orderd's, on the same cluster.
        with_peers = node is not None and nrep == args.replicas[0]
        key = "replicas%d" % nrep
        runs[key] = []
        lat = []
        for rep in range(args.reps):
            if rep and pg_over_budget(40 + (60 if with_peers else 0)):
                break
            b.drain(ods[0].url)
            # Latency under the same load: 64 connections spread over the
            # replicas, each loadgen to its own replica.
            ps = [b.loadgen(od.url, "submit", max(1, 64 // nrep),
                            seconds=args.seconds) for od in ods]
            ls = [b.loadgen_result(p, args.seconds + 90) for p in ps]
            lat.append({"p50_ms": max(x["p50_ms"] for x in ls),
                        "p99_ms": max(x["p99_ms"] for x in ls),
                        "orders_per_s": sum(x["orders_per_s"] for x in ls),
                        "errors": sum(x["errors"] for x in ls)})
            # End to end, the workload: 30,000 orders on 20 skus,
            # single submits at 64 connections, then batch submits of 100
            # (as orderctl sends) at 4 connections per replica, where the
            # figure is processing rather than HTTP request handling.
            b.drain(ods[0].url)
            e = b.end_to_end([od.url for od in ods], 64, PEER_UNITS,
                             skus=PEER_SKUS)
            runs[key].append(dict(e, submit=lat[-1]))
            log("%s rep %d: %s" % (key, rep + 1, runs[key][-1]))
            b.drain(ods[0].url)
            e = b.end_to_end([od.url for od in ods], 4 * nrep, PEER_UNITS,
                             batch=100, skus=PEER_SKUS)
            runs_b.setdefault(key, []).append(e)
            log("%s batch rep %d: %s" % (key, rep + 1, e))
            if with_peers:
                b.drain(ods[0].url)
                c0 = [od.proc.cpu_seconds() or 0 for od in ods]
                peer_reps.append(peers.run_rep(uri, b.build, rep + 1, log,
                                               node))
                # orderd is idle meanwhile (waiting for a notification):
                # its CPU says whether it took anything from the peers.
                peer_idle.append(round(sum(
                    (od.proc.cpu_seconds() or 0) - c
                    for od, c in zip(ods, c0)), 2))
        rss[key] = max((od.proc.proc_status("VmHWM") or 0) for od in ods)
        for od in ods:
            od.proc.stop()
        v = median(r["orders_per_s"] for r in runs[key])
        rows.append({"name": "end-to-end orders/s, %d replica(s)" % nrep,
                     "value": v,
                     "runs": [r["orders_per_s"] for r in runs[key]],
                     "limit": lim_v, "ratio": v / lim_v if v else None,
                     "target": None, "op": None})
        vb = median(r["orders_per_s"] for r in runs_b.get(key, []))
        rows.append({"name": "end-to-end orders/s, batch submits, %d "
                     "replica(s)" % nrep, "value": vb,
                     "runs": [r["orders_per_s"] for r in runs_b.get(key, [])],
                     "limit": lim_v, "ratio": vb / lim_v if vb else None,
                     "target": ("ratio", 2.0) if nrep == 4 else None,
                     "op": ">=" if nrep == 4 else None})
        for f in ("p50_ms", "p99_ms"):
            rows.append({"name": "submit %s ms, 64 conns, %d replica(s)" %
                         (f[:3], nrep),
                         "value": median(x[f] for x in lat),
                         "runs": [x[f] for x in lat], "limit": None,
                         "ratio": None, "target": None, "op": None})
        if with_peers and peer_reps:
            summ = peers.summarize(peer_reps)
            res["peers"] = summ
            res["peers_orderd_idle_cpu_s"] = peer_idle
            rows += peers.goal_rows(
                summ, [r["orders_per_s"] for r in runs_b[key]],
                [r["orders_per_s"] for r in runs[key]], nrep, PEER_SKUS, res)
    res["runs"] = runs
    res["runs_batch"] = runs_b
    res["rss_peak_kb"] = max(rss.values()) if rss else None
    rows.append({"name": "peak RSS MB (VmHWM, largest replica)",
                 "value": res["rss_peak_kb"] / 1024.0
                 if res["rss_peak_kb"] else None, "runs": None,
                 "limit": None, "ratio": None, "target": ("value", 64.0),
                 "op": "<="})
    return rows


def verdict(row):
    t = row.get("target")
    if not t:
        return ""
    kind, bound = t
    v = row["ratio"] if kind in ("ratio", "peer") else row["value"]
    if v is None:
        return "MISS"
    ok = v >= bound if row["op"] == ">=" else v <= bound
    return "PASS" if ok else "MISS"


def fmt(v, digits=1):
    if v is None:
        return "-"
    if isinstance(v, float):
        return "%.*f" % (digits, v)
    return str(v)


def print_table(res, rows):
    lim = res["limit"]
    print()
    print("orderd benchmark, backend %s, %d repetition(s), medians" %
          (res["backend"], res["reps"]))
    print("limit: %s = %.0f (median; runs: %s)" % (
        lim["what"], lim["tx_per_s"],
        ", ".join("%.0f" % (r["tx_per_s"] if isinstance(r, dict) else r)
                  for r in lim["runs"])))
    hdr = ("figure", "value", "target", "limit", "ratio", "")
    fmt_s = "%-48s %10s %14s %9s %7s %5s"
    print(fmt_s % hdr)
    print("-" * 98)
    for r in rows:
        t = r.get("target")
        if t:
            tgt = "%s %s%s" % (r["op"], fmt(t[1]),
                               {"ratio": "x limit",
                                "peer": "x peer"}.get(t[0], ""))
        else:
            tgt = ""
        digits = 2 if "ms" in r["name"] else 1
        print(fmt_s % (r["name"], fmt(r["value"], digits), tgt,
                       fmt(r["limit"], 0), fmt(r["ratio"], 2), verdict(r)))
    peers.print_side_by_side(res.get("peer_table"))
    print()
    for n in res["notes"]:
        print("note: " + n)


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("build", nargs="?",
                    default=os.environ.get("BUILD", "build"))
    ap.add_argument("--backend", choices=("sqlite", "postgres"),
                    default=os.environ.get("BENCH_BACKEND", "sqlite"))
    ap.add_argument("--seconds", type=float, default=5.0,
                    help="length of each load measurement")
    ap.add_argument("--raw-seconds", type=float, default=2.0,
                    help="length of each raw-limit phase")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--replicas", default="1,2,4",
                    help="postgres: replica counts")
    ap.add_argument("--no-peers", action="store_true",
                    help="postgres: skip Graphile Worker and pg-boss")
    ap.add_argument("--quick", action="store_true",
                    help="1 repetition of 2 s: a smoke run, not a result")
    ap.add_argument("--json", help="results file "
                    "(default BUILD/bench-results.json)")
    a = ap.parse_args(argv)
    if a.quick:
        a.reps, a.seconds, a.raw_seconds = 1, 2.0, 1.0
    a.build = os.path.abspath(os.path.join(REPO, a.build)
                              if not os.path.isabs(a.build) else a.build)
    a.replicas = [int(x) for x in a.replicas.split(",") if x.strip()]
    a.json = a.json or os.path.join(a.build, "bench-results.json")
    return a


def main(argv):
    args = parse_args(argv)
    for tool in ("orderd", "bench_loadgen", "bench_sqlite_raw"):
        if not os.access(os.path.join(args.build, tool), os.X_OK):
            raise SystemExit("bench: %s/%s missing: build first (make bench)"
                             % (args.build, tool))
    # Same disk as the repo and the build: the limit and orderd's database
    # must share it for the ratio to mean anything.
    base = os.path.join(args.build, "benchtmp")
    os.makedirs(base, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="run-", dir=base)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    res = {"backend": args.backend, "reps": args.reps,
           "seconds_per_measurement": args.seconds,
           "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "machine": {"cores": os.cpu_count(),
                       "loadavg_start": os.getloadavg(),
                       "busy_processes_start": busy_processes()},
           "notes": []}
    b = Bench(args)
    try:
        if args.backend == "sqlite":
            import bench_sqlite
            rows = bench_sqlite.run_sqlite(b, args, tmp, res)
        else:
            rows = run_postgres(b, args, tmp, res)
    finally:
        Proc.stop_all()
        if res.get("_pgdir"):
            subprocess.run(["/usr/bin/python3",
                            os.path.join(REPO, "tests", "pgcluster.py"),
                            "stop", res.pop("_pgdir")],
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=120)
        shutil.rmtree(tmp, ignore_errors=True)
    res["machine"]["loadavg_end"] = os.getloadavg()
    res["machine"]["busy_processes_end"] = busy_processes()
    busy = set(res["machine"]["busy_processes_start"] +
               res["machine"]["busy_processes_end"])
    if busy:
        res["notes"].append("other work on the machine during the run (%s): "
                            "figures are noisy" % ", ".join(sorted(busy)))
    res["notes"].append("load generator and orderd share the %s cores" %
                        os.cpu_count())
    others = []
    for key, rs in (res.get("runs") or {}).items():
        for i, r in enumerate(rs):
            o = r.get("others_cpu_s")
            if o is not None and o > 0.5:
                others.append("%s#%d %.1fs" % (key, i + 1, o))
    if others:
        res["notes"].append("CPU used by other processes during: " +
                            ", ".join(others))
    res["seconds_total"] = round(time.monotonic() - T0, 1)
    for r in rows:
        r["verdict"] = verdict(r)
    res["rows"] = rows
    with open(args.json, "w") as f:
        json.dump(res, f, indent=1, default=str)
    print_table(res, rows)
    print("results: %s (%.0f s)" % (args.json, res["seconds_total"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
