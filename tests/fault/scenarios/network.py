"""Faults on the network between a replica, the database and its clients
(nftables rules inside the replica's namespace; delay through a proxy)."""
from lib.load import Reads
from lib.proxy import DelayProxy
from lib.suite import Scenario
from scenarios.database import hangs


class PartitionDb(Scenario):
    """One replica cut off from the database for 6 s (longer than its
    lease and the store deadline), packets dropped silently; its clients
    still reach it and must get 503s, not hangs; its orders are reclaimed
    by the others."""
    name = "partition-db"
    reads = None

    def nemesis(self, run):
        ns = run.replicas[1].netns
        self.reads = Reads(run.load).start()
        try:
            run.fault("partition %s | database" % run.replicas[1].name)
            ns.cut_db()
            run.sleep(6)
            ns.heal()
        finally:
            self.reads.stop()

    def heal(self, run):
        run.replicas[1].netns.heal()

    def figures(self, run, rep):
        # The docstring's "503s, not hangs", checked.
        return hangs(rep, run.load.history + self.reads.history)


def replays(rep, history):
    """G2 where it matters: an order whose outcome was unknown to its
    client (timeout, broken connection) although it was stored, then
    resubmitted with the same id, must be answered 200 with the stored
    order. Counts those replays; an order refused (4xx) after an unknown
    outcome is a violation, and so is a run with no replay at all: its
    unknown outcomes were all requests that never arrived, and nothing
    in it tested idempotent submission (the every-tenth resubmission of
    an acknowledged order aside)."""
    by_id = {}
    for op in sorted(history, key=lambda op: op["invoke"]):
        by_id.setdefault(op["id"], []).append(op)
    n = 0
    for oid, ops in by_id.items():
        for a, b in zip(ops, ops[1:]):
            if a["outcome"] != "unknown":
                continue
            if b["status"] == 200:
                n += 1
            elif b["outcome"] == "fail":
                rep.bad("replay", (oid, b["status"], "refused after an"
                                   " unknown outcome"))
    if n == 0 and not rep.v["replay"]:
        rep.bad("replay", "no order stored under a lost answer was"
                " resubmitted: G2 not exercised")
    return {"replays": n}


class PartitionClients(Scenario):
    """One replica cut off from its clients for 6 s, then for 6 s more
    only its answers lost (requests arrive and are carried out): their
    requests time out and are resubmitted elsewhere (idempotent submit,
    G2: an order stored under a lost answer must be replayed, 200); the
    replica goes on processing."""
    name = "partition-clients"

    def nemesis(self, run):
        ns = run.replicas[1].netns
        run.fault("partition %s | clients" % run.replicas[1].name)
        ns.cut_clients()
        run.sleep(6)
        # Longer than the clients' 5 s timeout, so that no answer's
        # retransmission reaches a client still waiting.
        run.fault("answers of %s lost" % run.replicas[1].name)
        ns.lose_answers()
        run.sleep(6)
        ns.heal()

    def heal(self, run):
        run.replicas[1].netns.heal()

    def figures(self, run, rep):
        return replays(rep, run.load.history)


class DelayLoss(Scenario):
    """One replica's database path slowed by 40 ms each way (a proxy; this
    kernel has no netem), then 10% of its packets dropped both ways.
    While the delay lasts, clients give up after 80 ms, less than the
    slowed replica's one database round trip: its submissions are stored
    after their clients stopped waiting, and resubmitted elsewhere (G2,
    as in partition-clients; with the 5 s timeout no outcome here was
    ever unknown)."""
    name = "delay-loss"
    client_timeout_s = 0.08

    def replica_uri(self, run, i, host):
        if i != 1:
            return run.db_uri(host)
        self.proxies = [DelayProxy((host, 0), ("127.0.0.1", n.port))
                        for n in (run.pair.primary, run.pair.standby)]
        hosts = ",".join("%s:%d" % p.addr for p in self.proxies)
        return ("postgres://postgres@%s/%s?target_session_attrs=read-write"
                "&connect_timeout=3" % (hosts, run.db))

    def nemesis(self, run):
        run.fault("delay 40 ms on %s, clients' timeout %.0f ms"
                  % (run.replicas[1].name, 1000 * self.client_timeout_s))
        self.timeout_was = run.load.timeout
        run.load.timeout = self.client_timeout_s
        for p in self.proxies:
            p.delay = 0.04
        run.sleep(5)
        for p in self.proxies:
            p.delay = 0.0
        run.load.timeout = self.timeout_was
        run.fault("10% packet loss on " + run.replicas[1].name)
        run.replicas[1].netns.loss(10)
        run.sleep(5)
        run.replicas[1].netns.heal()

    def heal(self, run):
        for p in self.proxies:
            p.delay = 0.0
        if getattr(self, "timeout_was", None):
            run.load.timeout = self.timeout_was
        run.replicas[1].netns.heal()

    def figures(self, run, rep):
        return replays(rep, run.load.history)


SCENARIOS = [PartitionDb, PartitionClients, DelayLoss]
