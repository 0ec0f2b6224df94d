"""soak: the mixed scenario for a long time, with figures streamed.

Every ~10 s one fault (scenarios/mixed.py), healed before the next; after
each, one line: elapsed time, faults so far, operations, acknowledgements
per second over the last interval, and how many orders acknowledged more
than a settle bound ago are still not terminal (must stay 0; a non-zero
figure is printed as a violation at once). The clients submit a steady
25 orders a second each rather than flat out, since the whole history is
kept for the checker, which runs over it at the end; the last line is the
suite's summary.
"""
import time

from scenarios.mixed import Mixed

from . import check, suite


def run(pair, nets, duration):
    sc = Mixed()
    sc.duration_s = duration
    sc.every_s = 10.0
    # The history is kept whole for the final check: a steady 150 orders
    # a second (about 100 MB of history an hour), not flat out.
    sc.rate = 25.0
    t0 = time.monotonic()
    state = {"last_t": time.time(), "last_ok": 0, "bad": 0}

    def on_fault(r):
        now = time.time()
        bound = sc.settle_bound()
        with r.load.lock:
            old = {op["id"] for op in r.load.history
                   if op["outcome"] == "ok" and op["end"] < now - bound - 10}
        try:
            st = r.store().statuses()
            late = sum(1 for i in old if st.get(i) not in check.TERMINAL)
        except Exception:
            late = -1      # the database is down right now
        n, ok, fail, unknown = r.load.counts()
        rate = (ok - state["last_ok"]) / max(0.001, now - state["last_t"])
        state.update(last_t=now, last_ok=ok)
        if late > 0:
            state["bad"] += 1
        print("soak %6.0fs  faults %d  ops %d (ok %d, fail %d, unknown %d)"
              "  acks/s %.0f  unsettled %s%s"
              % (time.monotonic() - t0, r.faults, n, ok, fail, unknown, rate,
                 late if late >= 0 else "?",
                 "  VIOLATION" if late > 0 else ""), flush=True)

    nemesis = sc.nemesis
    sc.nemesis = lambda r: nemesis(r, on_fault)
    rep = suite.execute(sc, pair, nets)
    print(rep.line())
    print("fault suite: soak %.0f s, %d orders, %d faults, %d lost,"
          " %d duplicated, %d stale writes"
          % (time.monotonic() - t0, rep.figures.get("orders", 0),
             rep.figures.get("faults", 0), rep.v["lost"],
             rep.v["duplicated"], rep.v["stale"]), flush=True)
    return 0 if rep.ok and not state["bad"] else 1
