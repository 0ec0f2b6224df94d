"""Primary failover the way PostgreSQL HA is run in production: Patroni
and etcd managing two nodes with synchronous replication (lib/patroni.py)."""
import os
import threading
import time
import urllib.parse

import psycopg2

from lib import patroni
from lib.suite import Scenario


class _Servers:
    """What a Run needs of its database servers, over a Patroni pair: the
    multi-host URI everywhere, so the checker also follows the leader."""

    def __init__(self, cluster):
        self.c = cluster
        self.primary = self

    def create_db(self, name):
        self.c.create_db(name)
        self.wait_writable(name)

    def wait_writable(self, db, timeout=60):
        """Until three writes in a row commit through the multi-host URI
        within 3 s each: what orderd's open needs (its migrations commit,
        and a commit waits for the synchronous standby), and what the
        leader's first write after Patroni's bootstrap does not always
        promise (seen in CI: a replica started then could not open its
        store, and orderd exits when it cannot)."""
        t_end = time.monotonic() + timeout
        good = 0
        while good < 3:
            if time.monotonic() > t_end:
                raise AssertionError("%s not writable within %ds"
                                     % (db, timeout))
            done = []

            def write():
                try:
                    c = psycopg2.connect(self.dsn(db), connect_timeout=2)
                    c.autocommit = True
                    with c.cursor() as cur:
                        cur.execute("SELECT txid_current()")
                    c.close()
                    done.append(True)
                except psycopg2.Error:
                    pass
            t = threading.Thread(target=write, daemon=True)
            t.start()
            t.join(3)
            good = good + 1 if done else 0
            time.sleep(0.3)

    def uri(self, db, host=None):
        return self.c.uri(db)

    def dsn(self, db):
        u = self.c.uri(db)
        q = urllib.parse.urlsplit(u).query
        return u if "target_session_attrs" in q else u + (
            "&" if q else "?") + "target_session_attrs=read-write"


class Failover(Scenario):
    """The Patroni leader killed (-9, patroni and postgres together), then
    frozen (SIGSTOP), then cut off (nftables, every packet dropped), each
    until the standby is promoted; replicas follow through their
    multi-host URI (target_session_attrs=read-write). Synchronous
    replication: no acknowledged order may be lost."""
    name = "patroni-failover"
    netns = False            # the nodes live in namespaces of their own
    faults = ("kill", "freeze", "cut")
    timeout_s = 400

    def prepare(self, run):
        ok, why = patroni.available()
        if not ok:
            raise AssertionError("Patroni cannot run here: " + why)
        self.cluster = patroni.PatroniCluster(os.path.join(run.dir, "pha"))
        self.cluster.start()
        run.pair = _Servers(self.cluster)

    def settle_bound(self):
        # Patroni takes a leader key's ttl (12 s) plus the promotion to
        # fail over; the bound starts at the heal, after the failover.
        return super().settle_bound() + 5.0

    def nemesis(self, run):
        c = self.cluster
        for kind in self.faults:
            old = c.leader()
            run.fault("%s the primary (%s)" % (kind, old))
            getattr(c, kind + "_primary")()
            secs = c.wait_leader_change(old, timeout=60)
            self.times = getattr(self, "times", []) + ["%s %.1fs"
                                                       % (kind, secs)]
            c.heal()
            c.wait_healthy(timeout=90)
            run.sleep(2)

    def figures(self, run, rep):
        return {"failover": "/".join(getattr(self, "times", []))}

    def teardown(self, run):
        self.cluster.stop()


SCENARIOS = [Failover]
