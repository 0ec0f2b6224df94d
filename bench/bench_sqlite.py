"""bench_sqlite: the SQLite run of bench.py (`--backend sqlite`, the default).

Per repetition, with orderd idle: the raw limit (bench_sqlite_raw) and the
store-only ceiling (bench_sqlite_ceiling: orderd's own writes per order on
its schema, one connection, batches of 1, 32, 100 and 256); then, on one orderd:
single submits at 16 and 64 connections, batch submits, GET /livez at 64
connections (the HTTP stack's ceiling), end to end with single submits and
end to end with batch submits (30,000 orders, 100 per request, 4
connections, 20 skus). Each figure is reported beside its own limit as the
median of per-repetition ratios (bench/README.md). Imported by bench.py's
main(); it uses bench.py's helpers.
"""
import json
import os
import subprocess

from bench import (DRAIN_TIMEOUT_S, E2E_BATCH_ORDERS, E2E_BATCH_SKUS, Orderd,
                   busy_processes, limit_summary, log, machine_busy_s,
                   measured_e2e, median, metrics_snapshot, over_budget,
                   ratio_row, set_stock, stats_snapshot, value_row)


def sqlite_raw(build, tmp, seconds):
    """One bench_sqlite_raw run: its JSON object."""
    out = subprocess.run([os.path.join(build, "bench_sqlite_raw"),
                          "--dir", tmp, "--seconds", str(seconds)],
                         check=True, stdout=subprocess.PIPE,
                         text=True, timeout=seconds * 2 + 30).stdout
    return json.loads(out)


def sqlite_ceiling(build, tmp, seconds, batches=(1, 32, 100, 256),
                   skus=E2E_BATCH_SKUS):
    """One bench_sqlite_ceiling run (orderd's own writes per order, on its
    schema, one connection): its JSON object, plus by_batch {B: orders/s}."""
    out = subprocess.run([os.path.join(build, "bench_sqlite_ceiling"),
                          "--dir", tmp, "--seconds", str(seconds),
                          "--batches", ",".join(str(x) for x in batches),
                          "--skus", str(skus)],
                         check=True, stdout=subprocess.PIPE, text=True,
                         timeout=seconds * len(batches) * 3 + 60).stdout
    j = json.loads(out)
    j["by_batch"] = {r["batch"]: r["orders_per_s"] for r in j["runs"]}
    return j


def run_sqlite(b, args, tmp, res):
    if not os.access(os.path.join(b.build, "bench_sqlite_ceiling"), os.X_OK):
        raise SystemExit("bench: %s/bench_sqlite_ceiling missing: build "
                         "first (make bench)" % b.build)
    db = os.path.join(tmp, "bench.db")
    od = Orderd(b.build, "sqlite:" + db, tmp, "orderd-bench")
    od.wait_ready()
    set_stock(od.url)
    res["orderd_pid"] = od.proc.pid
    runs = {"submit16": [], "submit64": [], "batch": [], "livez": [],
            "e2e": [], "e2e_batch": []}
    limits = []
    ceilings = []
    for rep in range(args.reps):
        if rep and over_budget(60):
            log("time budget reached: %d repetitions" % rep)
            break
        # The limit is measured in every repetition, beside the figures it
        # divides, so that both see the same machine load (orderd is idle).
        b.drain(od.url)
        limits.append(sqlite_raw(b.build, tmp, args.raw_seconds))
        log("raw sqlite rep %d: %s" % (rep + 1, limits[-1]))
        ceilings.append(sqlite_ceiling(b.build, tmp, args.raw_seconds))
        log("store-only ceiling rep %d: %s" % (rep + 1,
                                                ceilings[-1]["by_batch"]))
        for key, mode, conns, batch in (("submit16", "submit", 16, None),
                                        ("submit64", "submit", 64, None),
                                        ("batch", "batch", 4, 100),
                                        ("livez", "livez", 64, None)):
            d = b.drain(od.url)
            if d is None:
                log("orders still open after %ds: measuring anyway" %
                    DRAIN_TIMEOUT_S)
            c0, m0 = od.proc.cpu_seconds(), machine_busy_s()
            r = b.run_load(od.url, mode, conns, batch)
            c1, m1 = od.proc.cpu_seconds(), machine_busy_s()
            r["drain_before_s"] = d
            r["orderd_cpu_s"] = c1 - c0 if c0 is not None else None
            # CPU that neither orderd nor the load generator used: other
            # people's work. A large value explains an outlier.
            r["others_cpu_s"] = round(m1 - m0 - (r["orderd_cpu_s"] or 0) -
                                      r["loadgen_cpu_s"], 2)
            r["busy_processes"] = busy_processes()
            runs[key].append(r)
            log("%s rep %d: %.0f orders/s (%.0f req/s), p50 %.2f ms, "
                "p99 %.2f ms, max %.1f ms, errors %d %s, cpu s: orderd %.1f "
                "loadgen %.1f others %.1f" %
                (key, rep + 1, r["orders_per_s"], r["rps"], r["p50_ms"],
                 r["p99_ms"],
                 r["max_ms"], r["errors"], r["by_status"],
                 r["orderd_cpu_s"] or 0, r["loadgen_cpu_s"],
                 r["others_cpu_s"]))
        d = b.drain(od.url)
        rate = median(r["orders_per_s"] for r in runs["submit64"]) or 1000
        n = int(min(40000, max(2000, rate * args.seconds * 0.6)))
        e = measured_e2e(b, od, 64, n)
        runs["e2e"].append(e)
        log("e2e rep %d: %s" % (rep + 1, e))
        # The batch workload: the figure divided by the ceiling at batch 100.
        b.drain(od.url)
        e = measured_e2e(b, od, 4, E2E_BATCH_ORDERS, batch=100,
                         skus=E2E_BATCH_SKUS)
        runs["e2e_batch"].append(e)
        log("e2e batch rep %d: %s" % (rep + 1, e))
    res["rss_peak_kb"] = od.proc.proc_status("VmHWM")
    res["stats_end"] = stats_snapshot(od.url)
    res["metrics_end"] = metrics_snapshot(od.url)
    rc = od.proc.stop()
    res["orderd_exit"] = rc
    res["orderd_log_lines"] = od.log_lines()
    res["orderd_log_tail"] = od.log_tail(2000)
    res["runs"] = runs
    res["ceilings"] = ceilings
    lim = limit_summary("SQLite one-row insert transactions/s, WAL, "
                        "synchronous=FULL, same disk (higher of 1 thread "
                        "and 16 threads)", limits)
    res["limit"] = lim
    lim_v = lim["tx_per_s"]

    def row(name, key, field, target=None, op=None, ratio=True):
        vals = [r.get(field) for r in runs[key]]
        # Ratio: the median of per-repetition ratios, each against the
        # limit measured in that repetition.
        ratios = [v / l["tx_per_s"] for v, l in zip(vals, limits)
                  if v and l["tx_per_s"]]
        return {"name": name, "value": median(vals), "runs": vals,
                "limit": lim_v if ratio else None,
                "ratio": median(ratios) if ratio else None,
                "target": target, "op": op}
    rows = [
        row("durable single submits/s, 16 conns", "submit16",
            "orders_per_s"),
        row("durable single submits/s, 64 conns", "submit64",
            "orders_per_s"),
        row("batch-submit orders/s (100/req, 4 conns)", "batch",
            "orders_per_s"),
        row("end-to-end orders/s (single submits, 64 conns)", "e2e",
            "orders_per_s", target=("ratio", 5.0), op=">="),
        row("submit p50 ms, 16 conns", "submit16", "p50_ms", ratio=False),
        row("submit p99 ms, 16 conns", "submit16", "p99_ms", ratio=False),
        row("submit p50 ms, 64 conns", "submit64", "p50_ms", ratio=False),
        row("submit p99 ms, 64 conns", "submit64", "p99_ms",
            target=("value", 20.0), op="<=", ratio=False),
        row("submit max ms, 64 conns", "submit64", "max_ms", ratio=False),
    ]
    # Issue 9 goal 2: each figure beside its own limit, same repetition.
    nrep = len(runs["e2e"])
    ceil1 = [c["by_batch"].get(1) for c in ceilings][:nrep]
    # 32: about the group a commit gathers from 64 single-submit
    # connections (printed below): what bounds single submits end to end.
    ceil32 = [c["by_batch"].get(32) for c in ceilings][:nrep]
    ceil100 = [c["by_batch"].get(100) for c in ceilings][:nrep]
    # 256 = orderd's claim-batch: the group commit merges queued batch
    # requests (its mean per transaction is printed), so this is the
    # stricter limit for the same workload.
    ceil256 = [c["by_batch"].get(256) for c in ceilings][:nrep]
    livez = [r["rps"] for r in runs["livez"]]
    rows += [
        value_row("store-only ceiling orders/s, batch 1", ceil1),
        value_row("store-only ceiling orders/s, batch 32", ceil32),
        value_row("store-only ceiling orders/s, batch 100", ceil100),
        value_row("store-only ceiling orders/s, batch 256", ceil256),
        value_row("GET /livez answers/s, 64 conns", livez),
        ratio_row("e2e batch orders/s / ceiling at batch 100",
                  [r["orders_per_s"] for r in runs["e2e_batch"]], ceil100,
                  target=("ratio", 0.6), op=">="),
        ratio_row("e2e batch orders/s / ceiling at batch 256",
                  [r["orders_per_s"] for r in runs["e2e_batch"]], ceil256),
        ratio_row("e2e single orders/s / GET /livez, 64 conns",
                  [r["orders_per_s"] for r in runs["e2e"]], livez,
                  target=("ratio", 0.5), op=">="),
        ratio_row("e2e single orders/s / ceiling at batch 32",
                  [r["orders_per_s"] for r in runs["e2e"]], ceil32),
        value_row("e2e single: group-commit orders per tx",
                  [r["group_commit_mean"] for r in runs["e2e"]]),
        value_row("e2e batch: group-commit orders per tx",
                  [r["group_commit_mean"] for r in runs["e2e_batch"]]),
        value_row("page faults per 10k orders, e2e single",
                  [r["faults_per_10k"] for r in runs["e2e"]]),
        value_row("page faults per 10k orders, e2e batch",
                  [r["faults_per_10k"] for r in runs["e2e_batch"]]),
    ]
    rss = res["rss_peak_kb"]
    rows.append({"name": "peak RSS MB (VmHWM)",
                 "value": rss / 1024.0 if rss else None, "runs": None,
                 "limit": None, "ratio": None, "target": ("value", 64.0),
                 "op": "<="})
    return rows
