"""check: reads a scenario's history and the final database state and
says what went wrong, if anything.

Violations (each must be 0):
  lost        acknowledged, but not terminal (or not there) after healing
  corrupt     stored content differs from what was acknowledged
  duplicated  an order that took stock twice or finished twice (events),
              two reservation rows for one item, or two 201s for one id
  stale       a write under a lease accepted with another fence than the
              lease's latest claim (order_events record the writer's fence)
  replica     an event without the replica that recorded it, or a
              holder's write (reserve, retry, release, complete, reject)
              recorded by another replica than the one that took the lease
  stock       per SKU: adjustments - taken != stock, where taken
              sums the items of completed and held orders (so a double
              decrement shows even when every row looks fine alone), and
              the reservation rows must sum to the same
  notify      (when notifications run) a terminal order without an
              accepted delivery, or a key shared by two events, or an
              event delivered under two keys
  fence       (SIGSTOP scenarios) no fence rejection observed: the
              scenario did not test what it claims
  late        an order acknowledged before the heal not terminal within
              lease + maximum backoff (+ processing slack) after it

Figures: operations attempted/acknowledged/failed/indeterminate, orders,
throughput during and after the fault as ratios of the baseline, and the
time until throughput is back to 90% of it.
"""
import collections
import json
import sqlite3

import psycopg2

TERMINAL = ("completed", "rejected", "failed", "cancelled")
FENCED = ("complete", "reject", "fail", "retry", "release", "reserve")
# Written only by the lease's holder (a 'fail' may be the reaper's, under
# the fence it took back).
HOLDER = ("complete", "reject", "retry", "release", "reserve")


class Store:
    """The final state, from PostgreSQL (dsn) or a SQLite file (path)."""

    def __init__(self, backend, where):
        self.backend = backend
        self.where = where

    def rows(self, sql):
        if self.backend == "postgres":
            c = psycopg2.connect(self.where, connect_timeout=10)
            try:
                with c.cursor() as cur:
                    cur.execute(sql)
                    return cur.fetchall()
            finally:
                c.close()
        c = sqlite3.connect("file:%s?mode=ro" % self.where, uri=True,
                            timeout=30)
        try:
            return c.execute(sql).fetchall()
        finally:
            c.close()

    def orders(self):
        return {r[0]: {"status": r[1], "items": r[2], "held": bool(r[3]),
                       "finished_at": r[4]}
                for r in self.rows("SELECT id, status, items, held,"
                                   " finished_at FROM orders")}

    def statuses(self, ids=None):
        return {r[0]: r[1] for r in self.rows("SELECT id, status FROM orders")}


def _items(text):
    return {i["sku"]: i["qty"] for i in json.loads(text)}


def rate(times, t0, t1):
    n = sum(1 for t in times if t0 <= t < t1)
    return n / (t1 - t0) if t1 > t0 else 0.0


def recovery(times, t_heal, t_end, base, window=2.0, step=0.25):
    """Seconds after t_heal until the rate over a sliding window is back
    to 90% of base; None if it never is before t_end."""
    t = t_heal
    while t + window <= t_end:
        if rate(times, t, t + window) >= 0.9 * base:
            return t - t_heal
        t += step
    return None


class Report:
    def __init__(self, name):
        self.name = name
        self.v = collections.Counter()
        self.examples = collections.defaultdict(list)
        self.figures = {}

    def bad(self, kind, example=None, n=1):
        self.v[kind] += n
        if example is not None and len(self.examples[kind]) < 3:
            self.examples[kind].append(example)

    @property
    def ok(self):
        return sum(self.v.values()) == 0

    def line(self):
        f = self.figures

        def ratio(k):
            return "%.2f" % f[k] if f.get(k) is not None else "-"
        back = f.get("back_to_90")
        s = ("%-22s %s  ops %d (ok %d, fail %d, unknown %d), orders %d,"
             " faults %d, lost %d, dup %d, stale %d, fence-rejects %s,"
             " settle %.1fs, tput during %s after %s, 90%% in %s"
             % (self.name, "PASS" if self.ok else "FAIL",
                f.get("ops", 0), f.get("ok", 0), f.get("fail", 0),
                f.get("unknown", 0), f.get("orders", 0), f.get("faults", 0),
                self.v["lost"], self.v["duplicated"], self.v["stale"],
                "%d" % f["fence_rejections"] if f.get("fence_rejections")
        is not None else "-", f.get("settle", 0.0),
                ratio("during"), ratio("after"),
                "%.1fs" % back if back is not None else "-"))
        for k in sorted(f.get("extra", {})):
            s += ", %s %s" % (k, f["extra"][k])
        if not self.ok:
            s += "\n    violations: " + ", ".join(
                "%s %d %s" % (k, n, self.examples.get(k, [])[:3])
                for k, n in sorted(self.v.items()) if n)
        return s


def check(rep, load, store, initial_stock, *, receiver=None,
          expect_fence=False, fence_rejections=None, settle=None,
          settle_bound=None, windows=None):
    """Fills rep from the history (load), the final state (store) and
    what the scenario observed."""
    n_ops, n_ok, n_fail, n_unknown = load.counts()
    acked = load.acked()
    rep.figures.update(ops=n_ops, ok=n_ok, fail=n_fail, unknown=n_unknown,
                       orders=len(load.orders))
    for oid, st, body in load.unexpected:
        rep.bad("unexpected", (oid, st, body))
    created = collections.Counter(op["id"] for op in load.history
                                  if op["status"] == 201)
    for oid, n in created.items():
        if n > 1:
            rep.bad("duplicated", (oid, "created %d times (201)" % n))

    orders = store.orders()
    mine = {k: v for k, v in orders.items() if k in load.orders}
    for oid in sorted(acked):
        o = mine.get(oid)
        if o is None or o["status"] not in TERMINAL:
            rep.bad("lost", (oid, o and o["status"]))
        elif _items(o["items"]) != {i["sku"]: i["qty"] for i in
                                    load.orders[oid]["items"]}:
            rep.bad("corrupt", (oid, o["items"]))
    for oid in mine:
        if oid not in load.orders:
            rep.bad("corrupt", (oid, "never submitted"))

    # Events: stock taken at most once, finished at most once, every
    # fenced write under the latest claim's fence. An order decided in
    # the transaction that claimed it (store_take) has no claim event:
    # its outcome carries a fence newer than every earlier one, and a
    # stale writer's can only be older. Every event names the replica that
    # recorded it, and a holder's write the replica that took the lease.
    evs = collections.defaultdict(list)
    for oid, ev, fence, who in store.rows(
            "SELECT order_id, event, fence, replica FROM order_events"
            " ORDER BY id"):
        evs[oid].append((ev, fence, who))
    for oid, lst in evs.items():
        cur = holder = None
        taken = finished = 0
        reserved = False
        for ev, fence, who in lst:
            if who is None:
                rep.bad("replica", (oid, ev, "no replica recorded"))
            if ev == "claim":
                if cur is not None and fence <= cur:
                    rep.bad("stale", (oid, "fence went back", cur, fence))
                cur, holder = fence, who
                continue
            if ev in ("complete", "reject", "fail") and \
                    (cur is None or fence > cur):
                cur, holder = fence, who
            if ev in HOLDER and fence == cur and who != holder:
                rep.bad("replica", (oid, ev, who, "lease taken by", holder))
            if ev == "reserve":
                taken += 1
                reserved = True
            elif ev == "complete" and not reserved:
                taken += 1
            if ev in ("complete", "reject", "fail"):
                finished += 1
            if ev in ("reject", "fail", "cancel"):
                reserved = False
            if ev in FENCED and fence != cur:
                rep.bad("stale", (oid, ev, fence, cur))
        if taken > 1 or finished > 1:
            rep.bad("duplicated", (oid, [e for e, _, _ in lst]))
    per_item = collections.Counter(
        (o, s) for o, s, _ in store.rows("SELECT order_id, sku, qty FROM"
                                         " reservations"))
    for key, n in per_item.items():
        if n > 1:
            rep.bad("duplicated", ("reservation", key, n))

    # Stock: exact conservation per SKU.
    stock = dict(store.rows("SELECT sku, stock FROM products"))
    adj = collections.Counter()
    for sku, d in store.rows("SELECT sku, delta FROM adjustments"):
        adj[sku] += d
    taken = collections.Counter()
    for o in orders.values():
        if o["status"] == "completed" or (o["held"] and o["status"] in
                                          ("pending", "processing")):
            for sku, q in _items(o["items"]).items():
                taken[sku] += q
    reserved = collections.Counter()
    for _, sku, q in store.rows("SELECT order_id, sku, qty FROM reservations"):
        reserved[sku] += q
    for sku, init in initial_stock.items():
        # The stock was set by PUT, which records its delta from 0.
        if adj[sku] != init:
            rep.bad("stock", (sku, "adjustments", adj[sku], "set", init))
        want = adj[sku] - taken[sku]
        if stock.get(sku) != want or reserved[sku] != taken[sku]:
            rep.bad("stock", (sku, "stock", stock.get(sku), "want", want,
                              "reserved", reserved[sku], "taken", taken[sku]))

    if receiver is not None:
        _check_notify(rep, receiver, mine)
    if fence_rejections is not None:
        rep.figures["fence_rejections"] = fence_rejections
    if expect_fence and not fence_rejections:
        rep.bad("fence", "no fence rejection observed")
    if settle is not None:
        rep.figures["settle"] = settle
        if settle_bound is not None and settle > settle_bound:
            rep.bad("late", "settled in %.1fs > %.1fs" % (settle,
                                                          settle_bound))
    if windows:
        _throughput(rep, load, windows, mine)
    return rep


def _check_notify(rep, receiver, mine):
    _, accepted, _ = receiver.snapshot()
    by_event = collections.defaultdict(set)
    by_key = collections.defaultdict(set)
    for key, body in accepted.items():
        ev = (body["order"]["id"], body["type"])
        by_event[ev].add(key)
        by_key[key].add(ev)
    for oid, o in mine.items():
        if o["status"] in TERMINAL and o["status"] != "cancelled":
            ev = (oid, "order." + o["status"])
            if not by_event.get(ev):
                rep.bad("notify", ("undelivered", ev))
    for ev, keys in by_event.items():
        if len(keys) > 1:
            rep.bad("notify", ("two keys", ev, sorted(keys)))
    for key, evs in by_key.items():
        if len(evs) > 1:
            rep.bad("notify", ("key reused", key, sorted(evs)))
    rep.figures.setdefault("extra", {})["delivered"] = len(accepted)


def _throughput(rep, load, w, mine):
    """w: t_start, t_fault, t_heal, t_end (time.time()). Acknowledged
    submissions per second as the clients saw them; the processing rate
    (orders finished per second, from the store's finished_at, written by
    the replicas' clocks) beside it."""
    times = load.ack_times()
    base = rate(times, w["t_start"], w["t_fault"])
    rep.figures["baseline"] = base
    if base <= 0:
        rep.bad("baseline", "no acknowledged order before the fault")
        return
    rep.figures["during"] = rate(times, w["t_fault"], w["t_heal"]) / base
    rep.figures["after"] = rate(times, w["t_heal"], w["t_end"]) / base
    rep.figures["back_to_90"] = recovery(times, w["t_heal"], w["t_end"], base)
    rep.figures["timeline"] = [
        round(rate(times, t, t + 1)) for t in
        range(int(w["t_start"]), int(w["t_end"]) + 1)]
    done = sorted(o["finished_at"] / 1000.0 for o in mine.values()
                  if o["finished_at"])
    pbase = rate(done, w["t_start"], w["t_fault"])
    if pbase > 0:
        rep.figures["proc_during"] = rate(done, w["t_fault"],
                                          w["t_heal"]) / pbase
        rep.figures.setdefault("extra", {})["proc-during"] = (
            "%.2f" % rep.figures["proc_during"])
