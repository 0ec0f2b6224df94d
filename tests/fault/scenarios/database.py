"""Faults on the PostgreSQL primary (its synchronous standby streams on)."""
import time

from lib.load import Reads
from lib.suite import Scenario


class Restart(Scenario):
    """The database restarts under load: `pg_ctl stop -m immediate` (a
    crash: recovery from WAL), then `-m fast` (clients disconnected
    cleanly). Replicas reconnect by themselves (G6)."""
    name = "db-restart"

    def nemesis(self, run):
        for mode in ("immediate", "fast"):
            run.fault("pg_ctl restart -m " + mode)
            run.pair.restart(mode)
            run.pair.wait_sync()
            run.sleep(2)


class Freeze(Scenario):
    """The database frozen (SIGSTOP of the postmaster and every backend)
    for longer than the store deadline: connections stay open and nothing
    answers. Requests, submissions and reads alike, must be answered 503
    within the deadline instead of hanging (G6), and nothing acknowledged
    may be lost."""
    name = "db-freeze"
    reads = None

    def nemesis(self, run):
        # Submissions are bounded by the HTTP layer's own submit deadline
        # too; reads only by the store's: without them a store call with
        # no deadline would go unnoticed.
        self.reads = Reads(run.load).start()
        try:
            run.fault("SIGSTOP postgres for 5 s (store deadline 3 s)")
            run.pair.freeze()
            run.sleep(5)
            run.pair.thaw()
        finally:
            self.reads.stop()

    def heal(self, run):
        run.pair.thaw()

    def figures(self, run, rep):
        return hangs(rep, run.load.history + self.reads.history)


def hangs(rep, history, limit=3.0 + 1.5):
    """Every answer within the store deadline (3 s) and a margin: a
    frozen or unreachable database must never hold a client."""
    for op in history:
        if op["end"] - op["invoke"] > limit:
            rep.bad("hang", (op["op"], op["id"],
                             round(op["end"] - op["invoke"], 1),
                             op["status"]))
    return {"slowest": "%.1fs" % max(op["end"] - op["invoke"]
                                      for op in history),
            "reads": len([op for op in history if op["op"] == "read"])}


class Terminate(Scenario):
    """Every backend of orderd's database terminated by
    pg_terminate_backend, twice a second for 6 s."""
    name = "db-terminate"

    def nemesis(self, run):
        t_end = time.monotonic() + 6
        while time.monotonic() < t_end:
            run.pair.terminate_backends(run.db)
            run.fault("pg_terminate_backend")
            run.sleep(0.5)


class Slots(Scenario):
    """Every connection slot taken by another client, then for 5 s orderd's
    own backends terminated every 100 ms while the client takes back each
    slot they free: the replicas' pools shrink and can only reconnect by
    winning a freed slot. (A replica started while no slot is free exits:
    it cannot open its store; its supervisor restarts it.) Every answer,
    reads included, within the store deadline and a margin, and at least
    half the baseline's throughput meanwhile."""
    name = "db-slots"

    def nemesis(self, run):
        self.reads = Reads(run.load).start()
        try:
            self._exhaust(run)
        finally:
            self.reads.stop()

    def _exhaust(self, run):
        n = run.pair.take_slots(run.db)
        run.fault("%d connection slots taken" % n)
        # Terminated backends free their slots as they exit: take those
        # back, racing the replicas' reconnects.
        self.evicted = 0
        t_end = time.monotonic() + 5
        while time.monotonic() < t_end:
            self.evicted += run.pair.evict(run.db, run.pair.hogs[0])
            run.pair.take_slots(run.db)
            time.sleep(0.1)
        run.pair.release_slots()

    def figures(self, run, rep):
        f = hangs(rep, run.load.history + self.reads.history)
        f["orderd-backends-terminated"] = self.evicted
        # The pools keep serving on the connections they have and win
        # back freed slots: at least half the baseline (clean builds:
        # 0.79-0.92; a pool that retries a refused connect until it
        # works, holding its caller: 0.36).
        during = rep.figures.get("during")
        if during is not None and during < 0.5:
            rep.bad("throughput", "during %.2f < 0.50 of baseline" % during)
        return f

    def heal(self, run):
        run.pair.release_slots()


class VacuumPin(Scenario):
    """A transaction left open for 60 s (`BEGIN; SELECT txid_current();`
    and nothing else) pins the xmin horizon while load runs: no dead row
    version can be removed. Throughput must stay >= 90% of the baseline,
    for the submissions and for the processing alike."""
    name = "vacuum-pin"
    baseline_s = 6.0
    pin_s = 60.0

    def nemesis(self, run):
        c = run.pair.pin_horizon(run.db)
        run.fault("transaction open for %.0f s" % self.pin_s)
        try:
            run.sleep(self.pin_s)
        finally:
            c.close()

    def figures(self, run, rep):
        f = rep.figures
        for k in ("during", "proc_during"):
            if f.get(k) is None or f[k] < 0.9:
                rep.bad("throughput", "%s %.2f < 0.90 of baseline"
                        % (k, f.get(k) or 0))
        return {}


SCENARIOS = [Restart, Freeze, Terminate, Slots, VacuumPin]
