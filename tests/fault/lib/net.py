"""net: one network namespace per replica, joined to the root namespace by
a veth pair, and the faults that cross it.

Replica i lives in namespace `ofault<i>` at 10.231.<i>.2 (FAULT_NETNS and
FAULT_SUBNET change the names and the 231); the root side of its veth is
10.231.<i>.1, where it reaches the database, the fakes and
where its clients come from. Inside the namespace an nftables table
`inet fault` holds the current fault:

    cut_db()        drop everything to and from the database ports
    cut_clients()   drop everything to and from the replica's HTTP port
    lose_answers()  drop what the replica's HTTP port sends, but SYN-ACKs
    loss(pct)       drop pct% of all packets, both ways
    heal()          flush the table

This kernel has no sch_netem (tc answers "Specified qdisc kind is
unknown"), so delay comes from a userspace proxy (proxy.py) on the
replica's database path; loss and partitions are nftables rules, which
drop packets as a broken network would (no RST, no ICMP).
"""
import os
import subprocess

from . import env

# Two runs at once (a scratch build beside the real one) need their own
# names and subnets: FAULT_NETNS=ofb FAULT_SUBNET=233.
PREFIX = os.environ.get("FAULT_NETNS", "ofault")
SUBNET = int(os.environ.get("FAULT_SUBNET", "231"))


def sh(*args, check=True):
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(args), r.stderr.strip()))
    return r


def available():
    r = subprocess.run(["ip", "netns", "list"], capture_output=True)
    if r.returncode != 0:
        return False, "ip netns does not work here"
    if subprocess.run(["nft", "--version"], capture_output=True).returncode:
        return False, "nft (nftables) is missing"
    return True, ""


def remove_stale():
    """Namespaces a crashed earlier run left behind."""
    out = sh("ip", "netns", "list", check=False).stdout
    for line in out.splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(PREFIX):
            sh("ip", "netns", "del", name, check=False)
    out = sh("ip", "-o", "link", "show", check=False).stdout
    for line in out.splitlines():
        parts = line.split(":")
        if len(parts) > 1:
            dev = parts[1].strip().split("@")[0]
            if dev.startswith(PREFIX):
                sh("ip", "link", "del", dev, check=False)


class Netns:
    def __init__(self, idx):
        assert 0 < idx < 250
        self.idx = idx
        self.name = "%s%d" % (PREFIX, idx)
        self.host_dev = "%sh%d" % (PREFIX, idx)
        self.ns_dev = "%sn%d" % (PREFIX, idx)
        self.outside = "10.%d.%d.1" % (SUBNET, idx)    # root side
        self.inside = "10.%d.%d.2" % (SUBNET, idx)     # the replica's
        self.db_ports = []
        self.http_port = None
        self.fault = None
        self.up = False

    def create(self):
        sh("ip", "netns", "add", self.name)
        self.up = True
        env.on_exit(self.destroy)
        sh("ip", "link", "add", self.host_dev, "type", "veth", "peer", "name",
           self.ns_dev)
        sh("ip", "link", "set", self.ns_dev, "netns", self.name)
        sh("ip", "addr", "add", self.outside + "/30", "dev", self.host_dev)
        sh("ip", "link", "set", self.host_dev, "up")
        self.exec_sh("ip", "addr", "add", self.inside + "/30", "dev",
                     self.ns_dev)
        self.exec_sh("ip", "link", "set", self.ns_dev, "up")
        self.exec_sh("ip", "link", "set", "lo", "up")
        self.exec_sh("nft", "add", "table", "inet", "fault")
        self.exec_sh("nft", "add", "chain", "inet", "fault", "in",
                     "{ type filter hook input priority 0; }")
        self.exec_sh("nft", "add", "chain", "inet", "fault", "out",
                     "{ type filter hook output priority 0; }")
        return self

    def destroy(self):
        if not self.up:
            return
        self.up = False
        sh("ip", "netns", "del", self.name, check=False)
        sh("ip", "link", "del", self.host_dev, check=False)

    def prefix(self):
        """The command prefix that runs a program inside."""
        return ["ip", "netns", "exec", self.name]

    def exec_sh(self, *args, check=True):
        return sh(*(self.prefix() + list(args)), check=check)

    def _rules(self, rules):
        self.exec_sh("nft", "flush", "chain", "inet", "fault", "in")
        self.exec_sh("nft", "flush", "chain", "inet", "fault", "out")
        for chain, rule in rules:
            self.exec_sh(*(["nft", "add", "rule", "inet", "fault", chain]
                           + rule.split()))

    @staticmethod
    def _set(ports):
        return "{ %s }" % ", ".join(str(p) for p in ports)

    def cut_db(self):
        ports = self._set(self.db_ports)
        self._rules([("out", "tcp dport %s drop" % ports),
                     ("in", "tcp sport %s drop" % ports)])
        self.fault = "cut_db"

    def cut_clients(self):
        self._rules([("in", "tcp dport %d drop" % self.http_port),
                     ("out", "tcp sport %d drop" % self.http_port)])
        self.fault = "cut_clients"

    def lose_answers(self):
        """The replica hears its clients but its answers are lost: every
        segment from its HTTP port dropped except the SYN-ACK, so
        connections open and requests arrive (and are carried out) while
        the client waits for an answer that never comes."""
        self._rules([("out", "tcp sport %d tcp flags & syn == 0 drop"
                      % self.http_port)])

    def loss(self, pct):
        self._rules([("in", "meta l4proto tcp numgen random mod 100 < %d drop"
                      % pct),
                     ("out", "meta l4proto tcp numgen random mod 100 < %d drop"
                      % pct)])
        self.fault = "loss"

    def heal(self):
        self._rules([])
        self.fault = None
