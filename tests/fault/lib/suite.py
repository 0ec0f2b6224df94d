"""suite: runs one scenario from set-up to verdict.

A scenario (scenarios/*.py) is a Scenario subclass: what it runs on (the
backend, how many replicas, the confirm and notification fakes) and its
nemesis, the faults it injects. execute() gives it a fresh database, its
replicas and the load, then:

    baseline (load, no fault) -> nemesis (faults, ends healed) -> after
    (load goes on) -> load stops -> every acknowledged order settles ->
    the checker reads the history and the final state

and returns the checker's Report.
"""
import os
import random
import secrets as pysecrets
import shutil
import string
import time

import harness as H

H.CHECK_CONTRACT = False  # harness.py: the contract is the integration tests'
from fake_confirm import FakeConfirm
from fake_receiver import FakeReceiver

from . import check, env, load, replicas

PLENTY = 10 ** 9
SCARCE = 40


class Scenario:
    name = ""
    backend = "postgres"
    n_replicas = 3
    confirm = None          # a FakeConfirm script: (oid, attempt) -> answer
    notify = False
    expect_fence = False    # the nemesis must make a fence reject a write
    lease_ms = 1500
    retry_max_ms = 1000
    threads = 6
    rate = None             # orders/s per client thread; None: flat out
    baseline_s = 3.0
    after_s = 4.0
    env = {}
    faketime = ()           # indexes of replicas under libfaketime
    netns = True            # PostgreSQL replicas in their own namespaces
    timeout_s = 120         # the whole scenario, a hard stop

    def sqlite_path(self, run):
        return os.path.join(run.dir, "orderd.db")

    def prepare(self, run):
        """Runs first: a scenario may bring its own database servers
        (run.pair: create_db, uri, primary.dsn)."""

    def replica_uri(self, run, i, host):
        """The database URI replica i uses (host: where it reaches the
        database from its namespace)."""
        return run.db_uri(host)

    def nemesis(self, run):
        raise NotImplementedError

    def heal(self, run):
        """Undoes whatever the nemesis may have left (also on error)."""

    def teardown(self, run):
        """Removes what the scenario set up itself (after its replicas
        stopped)."""

    def settle_bound(self):
        # A lease to expire, the longest backoff (Retry-After is capped
        # by it too), and 3 s for the rest: a reap interval, a poll, one
        # processing batch and one confirm call, on 2 loaded cores.
        return (self.lease_ms + self.retry_max_ms) / 1000.0 + 3.0


class Run:
    """What a nemesis works with."""

    def __init__(self, sc, pair, nets):
        self.sc = sc
        self.pair = pair
        self.nets = nets
        self.dir = os.path.join(env.TMP, "%s-%s" % (sc.name, "".join(
            random.choice(string.ascii_lowercase) for _ in range(5))))
        os.makedirs(self.dir)
        self.replicas = []
        self.hidden = set()     # replicas the clients do not use now
        self.faults = 0
        self.fence_seen = 0     # fence rejections scraped before restarts
        self.confirm = None
        self.receiver = None
        self.db = None
        self.load = None
        self.log = []

    # ------------------------------------------------------------ helpers

    def fault(self, what):
        self.faults += 1
        self.log.append((time.time(), what))

    def targets(self):
        live = [r.url for r in self.replicas if r.name not in self.hidden]
        return live or [r.url for r in self.replicas]

    def sleep(self, s):
        time.sleep(s)

    def db_uri(self, host="127.0.0.1"):
        sc = self.sc
        if sc.backend == "sqlite":
            return "sqlite:" + self.db
        return self.pair.uri(self.db, host=host)

    def scrape_fences(self, r):
        n = r.metric("orderd_fence_rejections_total")
        return n or 0

    def fence_rejections(self):
        return self.fence_seen + sum(self.scrape_fences(r)
                                     for r in self.replicas if r.alive())

    def restart(self, r, kill=True):
        """kill -9 (or SIGTERM) and start again under the same id."""
        if r.alive() and not kill:
            self.fence_seen += self.scrape_fences(r)
        r.kill9() if kill else r.term()
        r.start()

    def wait_settled(self, ids, timeout):
        """Seconds until every order in ids is terminal in the store, or
        None. self.stragglers: the orders that were last to get there."""
        store = self.store()
        t0 = time.monotonic()
        self.stragglers = list(ids)
        while time.monotonic() - t0 < timeout:
            try:
                st = store.statuses()
            except Exception:
                st = {}
            pending = [i for i in ids if st.get(i) not in check.TERMINAL]
            if not pending:
                return time.monotonic() - t0
            self.stragglers = pending
            time.sleep(0.2)
        return None

    def trail(self, oid, t0):
        """An order's events, as 'event fence @+seconds after t0'."""
        rows = self.store().rows(
            "SELECT event, fence, at FROM order_events WHERE order_id = '%s'"
            " ORDER BY id" % oid)
        return "%s: %s" % (oid, ", ".join(
            "%s %s @%+.1fs" % (e, f, at / 1000.0 - t0) for e, f, at in rows))

    def store(self):
        if self.sc.backend == "sqlite":
            return check.Store("sqlite", self.db)
        return check.Store("postgres", self.pair.primary.dsn(self.db))

    # ------------------------------------------------------------ set-up

    def replica_env(self, host):
        sc = self.sc
        e = {"ORDERD_WORKERS": "2", "ORDERD_LEASE_MS": str(sc.lease_ms),
             "ORDERD_REAP_MS": "200", "ORDERD_HTTP_THREADS": "4",
             "ORDERD_RETRY_BASE_MS": "50",
             "ORDERD_RETRY_MAX_MS": str(sc.retry_max_ms),
             "ORDERD_STORE_DEADLINE_MS": "3000",
             "ORDERD_MAX_ATTEMPTS": "50"}
        if self.confirm:
            e["ORDERD_CONFIRM_URL"] = self.confirm.url_for(host)
            e["ORDERD_CONFIRM_TIMEOUT_MS"] = "3000"
        if self.receiver:
            e["ORDERD_NOTIFY_URL"] = self.receiver.url_for(host)
            e["ORDERD_NOTIFY_SECRET"] = self.secret
        e.update(sc.env)
        return e

    def setup(self):
        sc = self.sc
        sc.prepare(self)
        if sc.confirm:
            self.confirm = FakeConfirm(sc.confirm, host="0.0.0.0")
            env.on_exit(self.confirm.close)
        if sc.notify:
            self.secret = pysecrets.token_hex(16)
            self.receiver = FakeReceiver([self.secret], host="0.0.0.0").start()
            env.on_exit(self.receiver.stop)
        if sc.backend == "postgres":
            self.db = "f_%s_%s" % (sc.name.replace("-", "_"),
                                   os.path.basename(self.dir)[-5:])
            self.pair.create_db(self.db)
        else:
            self.db = sc.sqlite_path(self)
        for i in range(sc.n_replicas):
            ns = (self.nets[i] if sc.backend == "postgres" and sc.netns
                  else None)
            host = ns.outside if ns else "127.0.0.1"
            if ns:
                ns.db_ports = [self.pair.primary.port, self.pair.standby.port]
            r = replicas.Replica("%s-r%d" % (sc.name, i),
                                 sc.replica_uri(self, i, host),
                                 netns=ns, extra=self.replica_env(host),
                                 faketime=i in sc.faketime)
            self.replicas.append(r)
            r.start(timeout=60)
        c = H.Client(self.replicas[0].url)
        self.initial = {}
        for sku in load.SKUS_PLENTY + load.SKUS_SCARCE:
            n = SCARCE if sku in load.SKUS_SCARCE else PLENTY
            H.set_stock(c, sku, n)
            self.initial[sku] = n

    def teardown(self):
        for r in self.replicas:
            r.kill()
        if self.confirm:
            self.confirm.close()
        if self.receiver:
            self.receiver.stop()
        for ns in self.nets:
            if ns.up:
                ns.heal()
        self.sc.teardown(self)
        shutil.rmtree(self.dir, ignore_errors=True)


def execute(sc, pair, nets):
    run = Run(sc, pair, nets)
    rep = check.Report(sc.name)
    t_begin = time.monotonic()
    try:
        run.setup()
        run.load = load.Load(run.targets, sc.name, threads=sc.threads,
                             rate=sc.rate).start()
        w = {"t_start": time.time()}
        time.sleep(sc.baseline_s)
        w["t_fault"] = time.time()
        try:
            sc.nemesis(run)
        finally:
            sc.heal(run)
        w["t_heal"] = time.time()
        before = run.load.acked()
        for r in run.replicas:
            if not r.alive():
                r.start(timeout=60)
        settle = run.wait_settled(before, sc.settle_bound() + 30)
        last = run.stragglers[:3]
        left = w["t_heal"] + sc.after_s - time.time()
        if left > 0:
            time.sleep(left)
        w["t_end"] = time.time()
        run.load.stop()
        if run.wait_settled(run.load.acked(), 60) is None:
            rep.bad("lost", "acknowledged orders still not terminal 60 s"
                    " after the load stopped")
        if run.receiver:
            wait_delivered(run, 60)
        fences = run.fence_rejections()
        if settle is None:
            settle = float("inf")
        if settle > sc.settle_bound():
            rep.figures.setdefault("extra", {})["stragglers"] = [
                run.trail(i, w["t_heal"]) for i in last]
        check.check(rep, run.load, run.store(), run.initial,
                    receiver=run.receiver, expect_fence=sc.expect_fence,
                    fence_rejections=fences, settle=settle,
                    settle_bound=sc.settle_bound(), windows=w)
        for r in run.replicas:
            r.term()
        rc, out = H.verify(run.db_uri())
        if rc != 0:
            rep.bad("verify", out.strip().splitlines()[-3:])
        rep.figures["faults"] = run.faults
        rep.figures["fault_log"] = [("%+.1fs" % (t - w["t_start"]), what)
                                    for t, what in run.log]
        extra = getattr(sc, "figures", None)
        if extra:
            rep.figures.setdefault("extra", {}).update(extra(run, rep) or {})
    except Exception as e:  # a scenario that breaks is a failed scenario
        import traceback
        rep.bad("error", "%s: %s" % (type(e).__name__, e))
        rep.figures["traceback"] = traceback.format_exc()
        for r in run.replicas:
            rep.figures["traceback"] += "\n--- %s log tail:\n%s" % (
                r.name, H.log_tail(r.log_path, 15))
    finally:
        if run.load:
            run.load.stop_ev.set()
        run.teardown()
    rep.figures["seconds"] = time.monotonic() - t_begin
    return rep


def wait_delivered(run, timeout):
    """Until every terminal order of the run has an accepted delivery."""
    store = run.store()
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        st = store.statuses()
        want = {(i, "order." + s) for i, s in st.items()
                if i in run.load.orders and s in check.TERMINAL}
        _, accepted, _ = run.receiver.snapshot()
        got = {(b["order"]["id"], b["type"]) for b in accepted.values()}
        if want <= got:
            return True
        time.sleep(0.3)
    return False
