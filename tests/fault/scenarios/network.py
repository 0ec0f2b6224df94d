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


class PartitionClients(Scenario):
    """One replica cut off from its clients for 6 s: their requests time
    out and are resubmitted elsewhere (idempotent submit, G2); the replica
    goes on processing."""
    name = "partition-clients"

    def nemesis(self, run):
        ns = run.replicas[1].netns
        run.fault("partition %s | clients" % run.replicas[1].name)
        ns.cut_clients()
        run.sleep(6)
        ns.heal()

    def heal(self, run):
        run.replicas[1].netns.heal()


class DelayLoss(Scenario):
    """One replica's database path slowed by 40 ms each way (a proxy; this
    kernel has no netem), then 10% of its packets dropped both ways."""
    name = "delay-loss"

    def replica_uri(self, run, i, host):
        if i != 1:
            return run.db_uri(host)
        self.proxies = [DelayProxy((host, 0), ("127.0.0.1", n.port))
                        for n in (run.pair.primary, run.pair.standby)]
        hosts = ",".join("%s:%d" % p.addr for p in self.proxies)
        return ("postgres://postgres@%s/%s?target_session_attrs=read-write"
                "&connect_timeout=3" % (hosts, run.db))

    def nemesis(self, run):
        run.fault("delay 40 ms on %s" % run.replicas[1].name)
        for p in self.proxies:
            p.delay = 0.04
        run.sleep(5)
        for p in self.proxies:
            p.delay = 0.0
        run.fault("10% packet loss on " + run.replicas[1].name)
        run.replicas[1].netns.loss(10)
        run.sleep(5)
        run.replicas[1].netns.heal()

    def heal(self, run):
        for p in self.proxies:
            p.delay = 0.0
        run.replicas[1].netns.heal()


SCENARIOS = [PartitionDb, PartitionClients, DelayLoss]
