"""Mixed faults: one at random every few seconds, each healed before the
next, on the replicas, the database and the network alike. In --ci it
runs for 24 s; --soak runs it for hours (lib/soak.py).

The faults are drawn from a bag holding each kind once, refilled
shuffled when empty, so any six faults in a row include every kind (a
plain random choice left a --ci run without a SIGSTOP one time in three,
and then nothing in it could meet a missing fence). The seed is random
unless FAULT_MIXED_SEED or Mixed.seed sets it, and is printed with the
figures, so a failing run can be replayed."""
import os
import random
import time

from lib.suite import Scenario
from scenarios.replica import holder, wake_when_taken


def kill9(run, rnd):
    r = rnd.choice(run.replicas)
    run.fault("kill -9 " + r.name)
    run.restart(r)


def sigstop(run, rnd):
    # Woken as soon as another replica holds one of its orders again
    # (bounded by three lease lengths), as in sigstop-processing: what
    # the stalled replica writes on waking then meets a live lease that
    # only the fence refuses; woken later, the status alone would.
    r = holder(run)
    run.fault("SIGSTOP %s, SIGCONT when taken" % r.name)
    wake_when_taken(run, r)


def db_restart(run, rnd):
    mode = rnd.choice(("immediate", "fast"))
    run.fault("pg_ctl restart -m " + mode)
    run.pair.restart(mode)
    run.pair.wait_sync()


def db_freeze(run, rnd):
    run.fault("SIGSTOP postgres 4 s")
    run.pair.freeze()
    try:
        time.sleep(4)
    finally:
        run.pair.thaw()


def db_terminate(run, rnd):
    run.fault("pg_terminate_backend")
    run.pair.terminate_backends(run.db)


def partition(run, rnd):
    r = rnd.choice(run.replicas)
    how = rnd.choice(("cut_db", "cut_clients", "loss"))
    run.fault("%s %s" % (how, r.name))
    if how == "loss":
        r.netns.loss(10)
    else:
        getattr(r.netns, how)()
    try:
        time.sleep(4)
    finally:
        r.netns.heal()


NEMESES = [kill9, sigstop, db_restart, db_freeze, db_terminate, partition]


class Mixed(Scenario):
    """Every kind of fault once, in a random order, one every 4 s, each
    healed before the next (the seed is printed; FAULT_MIXED_SEED replays
    it)."""
    name = "mixed"
    duration_s = 24.0
    every_s = 4.0
    seed = None
    # As in sigstop-processing: a batch takes 150 ms, so the orders of a
    # stalled holder are still in their new holder's hands when it wakes.
    # Processed in a few ms, the new holder had finished them by then
    # and the stalled writes met only the status.
    env = {"ORDERD_FAILPOINTS": "slow_process_ms=150"}

    def nemesis(self, run, on_fault=None):
        if self.seed is None:
            self.seed = int(os.environ.get("FAULT_MIXED_SEED") or
                            random.SystemRandom().randrange(1 << 32))
        rnd = random.Random(self.seed)
        bag = []
        t_end = time.monotonic() + self.duration_s
        while time.monotonic() < t_end:
            t0 = time.monotonic()
            if not bag:
                bag = list(NEMESES)
                rnd.shuffle(bag)
            bag.pop()(run, rnd)
            if on_fault:
                on_fault(run)
            left = self.every_s - (time.monotonic() - t0)
            if left > 0:
                time.sleep(min(left, max(0.0, t_end - time.monotonic())))

    def figures(self, run, rep):
        return {"seed": self.seed}

    def heal(self, run):
        run.pair.thaw()
        for r in run.replicas:
            r.sigcont()
            if r.netns:
                r.netns.heal()


SCENARIOS = [Mixed]
