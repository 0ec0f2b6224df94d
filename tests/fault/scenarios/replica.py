"""Faults on the orderd replicas themselves: crashes, stalls, clocks."""
import time

from lib.suite import Scenario


def holder(run, held=False, tries=200):
    """SIGSTOPs a replica while it holds leases on orders in flight (held:
    orders inside a confirm call); returns it, still stopped."""
    cond = "status = 'processing'" + (" AND held" if held else "")
    store = run.store()
    for _ in range(tries):
        owners = [o for (o,) in store.rows(
            "SELECT DISTINCT lease_owner FROM orders WHERE " + cond)]
        for r in run.replicas:
            if r.name in owners and r.alive() and not r.stopped:
                r.sigstop()
                still = store.rows(
                    "SELECT count(*) FROM orders WHERE %s AND lease_owner"
                    " = '%s'" % (cond, r.name))[0][0]
                if still:
                    return r
                r.sigcont()
        time.sleep(0.05)
    raise AssertionError("no replica caught holding a lease")


def wake_when_taken(run, r, held=False, timeout=None):
    """With r stopped: waits until another replica holds one of the
    orders r held when it stopped (reaped, claimed again: a new fence),
    then SIGCONTs r at once, so that what r writes on waking meets an
    order still processing under its new holder. Only the fence tells
    such a write from the holder's own; a stalled writer that wakes
    after the new holder finished is also stopped by the status, and
    would not show a missing fence. Bounded by three lease lengths."""
    cond = "status = 'processing'" + (" AND held" if held else "")
    store = run.store()
    mine = [i for (i,) in store.rows(
        "SELECT id FROM orders WHERE %s AND lease_owner = '%s'"
        % (cond, r.name))]
    if timeout is None:
        timeout = 3 * run.sc.lease_ms / 1000.0
    t_end = time.monotonic() + timeout
    taken = 0
    while mine and time.monotonic() < t_end:
        taken = store.rows(
            "SELECT count(*) FROM orders WHERE status = 'processing'"
            " AND lease_owner <> '%s' AND id IN (%s)"
            % (r.name, ", ".join("'%s'" % i for i in mine)))[0][0]
        if taken:
            break
        time.sleep(0.02)
    r.sigcont()
    return taken


class Kill9(Scenario):
    """kill -9 of a replica and restart: once, then three times in a row
    a second apart (G1, G3: what was acknowledged survives; what it held
    is reclaimed when its lease expires)."""
    name = "kill9"

    def nemesis(self, run):
        r = run.replicas[1]
        run.fault("kill -9 " + r.name)
        run.restart(r)
        run.sleep(2)
        for _ in range(3):
            run.fault("kill -9 " + r.name)
            run.restart(r)
            run.sleep(1)


class StopProcessing(Scenario):
    """SIGSTOP of a lease holder in the middle of processing, then
    SIGCONT: once as soon as another replica has claimed one of its
    orders again (the stalled writer wakes while the new holder still
    holds: only the fence can refuse it), once after three lease lengths
    (the new holder has finished). Its leases are reclaimed, and what it
    writes on waking must be refused by the fence (G4)."""
    name = "sigstop-processing"
    expect_fence = True
    env = {"ORDERD_FAILPOINTS": "slow_process_ms=150"}

    def nemesis(self, run):
        for wake in ("taken", "late"):
            r = holder(run)
            run.fault("SIGSTOP %s, SIGCONT %s" % (r.name, wake))
            if wake == "taken":
                wake_when_taken(run, r)
            else:
                run.sleep(3 * self.lease_ms / 1000.0)
                r.sigcont()
            run.sleep(1)

    def heal(self, run):
        for r in run.replicas:
            r.sigcont()


def slow_confirm(oid, attempt):
    return (200, 0.8, {})


class StopConfirm(Scenario):
    """SIGSTOP of a replica while it waits on confirm calls: another
    replica reclaims the held orders and confirms them again with the
    same Idempotency-Key; the stalled one is woken once as soon as one
    of its orders is claimed again (its finish meets the new holder's
    lease: only the fence can refuse it), once after three lease lengths.
    Its finish on waking must be refused by the fence (G4, G8)."""
    name = "sigstop-confirm"
    confirm = staticmethod(slow_confirm)
    expect_fence = True
    # Each order spends 0.8 s in its confirm call, and a replica makes 64
    # at once (ORDERD_CONFIRM_CONCURRENCY): 80 orders/s a replica, 160
    # with one stopped. Flat out, the clients offer some 500 a second, so
    # the backlog grows for the whole run and the time to settle measures
    # the queue, not the recovery. 6 threads x 20 = 120 orders/s keeps it
    # within what two replicas confirm.
    rate = 20

    def nemesis(self, run):
        for wake in ("taken", "late"):
            r = holder(run, held=True)
            run.fault("SIGSTOP %s in a confirm call, SIGCONT %s"
                      % (r.name, wake))
            if wake == "taken":
                wake_when_taken(run, r, held=True)
            else:
                run.sleep(3 * self.lease_ms / 1000.0)
                r.sigcont()
            run.sleep(1.5)

    def heal(self, run):
        for r in run.replicas:
            r.sigcont()


class ClockJump(Scenario):
    """One replica's wall clock steps 30 s forward, then back to true
    time, then 15 s back (libfaketime; the monotonic clock is left alone,
    as an NTP step leaves it)."""
    name = "clock-jump"
    faketime = (0,)

    def nemesis(self, run):
        r = run.replicas[0]
        for off in ("+30s", "+0", "-15s"):
            run.fault("clock %s on %s" % (off, r.name))
            r.jump(off)
            run.sleep(3)

    def heal(self, run):
        run.replicas[0].jump("+0")

    def figures(self, run, rep):
        # Nothing here stalls or kills a replica, so no lease may run out
        # under its holder: an expiry (the reaper's 'expire' event) means
        # a lease was measured by a clock that the step moved. Without
        # this, a lease taken back from a live replica is refused by the
        # fence and shows nowhere.
        n = run.store().rows("SELECT count(*) FROM order_events"
                             " WHERE event = 'expire'")[0][0]
        if n:
            rep.bad("clock", "%d leases expired under live replicas" % n)
        return {"expired": n}


SCENARIOS = [Kill9, StopProcessing, StopConfirm, ClockJump]
