#!/usr/bin/python3
"""patroni: a Patroni + etcd PostgreSQL 15 HA pair for the fault suite.

    cluster = PatroniCluster(workdir)      # name="pha"
    cluster.start()                        # etcd + n1 + n2, sync replication
    uri = cluster.create_db("orders")      # multi-host, target_session_attrs
    old = cluster.leader()
    cluster.kill_primary()                 # or cut_primary(), freeze_primary()
    cluster.wait_leader_change(old)        # seconds since the fault
    cluster.heal()                         # old primary rejoins (pg_rewind)
    cluster.wait_healthy()
    cluster.stop()                         # also registered with atexit

    python3 tests/fault/lib/patroni.py --selftest    (patroni_selftest.py;
    not in ctest, about 1.5 min)

Layout. Three network namespaces (etcd, n1, n2), each joined to the root
namespace by a veth pair on its own /30 of 10.232.N.0/24 (N >= 100, the
first without address or route here, picked under a lock file): etcd at
.2, n1 at .6, n2 at .10, root ends .1, .5, .9. The root namespace routes
between them with forwarding on for those veths only (IPv4 forwarding is
decided by the incoming interface: net.ipv4.ip_forward stays as it is),
and an nft table of ours drops what they would forward to the default
route's interface. The namespaces route 10.232.0.0/16 only: nothing
leaves the machine and outside name lookups fail at once (with a default
route, the getfqdn() of Patroni's REST server cost 10 s of DNS timeout at
every start). Root-namespace clients reach the nodes directly; a client
in its own namespace needs a 10.232.0.0/16 address (pg_hba trusts that
and 127.0.0.1), a route via its root end and enable_forwarding(<root
end>). Own addresses, fixed ports: PostgreSQL 5432, REST 8008, etcd 2379.

Names: namespaces orderd-<name>-<pid>-{etcd,n1,n2}, root veths od<N>*,
runtime data (PGDATA, sockets, etcd) in /tmp/orderd-patroni-<name>-<pid>-*
owned by postgres (PostgreSQL and Patroni run as postgres, via setpriv),
logs in the workdir: etcd.log, n1.log, n2.log (Patroni and its PostgreSQL,
pg_rewind and pg_basebackup included, all log to stderr); workdir/runtime
links to the runtime data. A node is everything in its namespace: kill,
freeze and stop act on the PIDs `ip netns pids` lists, only ever ours.
start() removes leftovers of crashed runs (namespaces, nft tables and
runtime data whose <pid> is dead); stop() is idempotent and runs at exit;
keep=True (or ORDERD_FAULT_KEEP=1) keeps the workdir.

DCS: etcd's v2 API (--enable-v2, Patroni's `etcd:` with python3-etcd),
not v3, on purpose. Patroni 3.0.2's etcd3 backend (Debian 12) renews the
leader key with an unconditional put when its lease has expired
(patroni/patroni#2689, fixed in 3.0.3): a frozen leader that wakes up
takes the leader key back from the standby that was promoted meanwhile,
which is demoted and rewound, and the rows it acknowledged are gone. The
v2 backend updates the key with compare-and-swap on its own name, so the
woken leader finds the key taken and demotes. `--selftest --dcs etcd3`
shows it: after freeze_primary 13 acknowledged rows were gone and the
pair never became healthy again (the /sync key names the other leader).

Timing: ttl 12 s, loop_wait 2 s, retry_timeout 4 s (Patroni needs
loop_wait + 2 * retry_timeout <= ttl; 10 <= 12 leaves 2 s). A failover
takes what is left of the leader's key (10-12 s), plus the standby's look
at the old leader's REST API (refused at once when killed; a 2 s timeout
when cut or frozen), plus the promotion: self-test 11.8 s killed, about
13 s cut or frozen. A cut leader demotes itself after retry_timeout
without etcd, before its key expires. A shorter ttl fails over sooner, but
a leader whose loop stalls past ttl - loop_wait (an etcd fsync or a query
on a loaded 2-core machine) then loses its key and demotes for nothing.

synchronous_mode on, synchronous_mode_strict off. Either mode keeps what
the suite checks: Patroni promotes only a node named in etcd's /sync key,
and a primary removes a standby from that key (in etcd, under its leader
lock) before it stops waiting for it, so no promoted node can miss an
acknowledged commit. They differ while one node is down: non-strict lets
the lone primary commit (those rows live on one disk, and no automatic
failover is possible until the standby is back in sync); strict blocks
every commit until a standby returns. With two nodes strict would stop
all orders from a failover until heal(), turning every failover scenario
into an outage; non-strict is how two-node Patroni clusters are run. The
faults here only ever take the leader away, never the standby.

Faults, and what surprised:
- kill: SIGKILL of patroni, postmaster and backends at once. Clients get
  connection refused at once (the address stays up, nothing listens); a
  crash that also silences the address is cut. heal() starts Patroni:
  crash recovery in single-user mode, pg_rewind, replica.
- cut: nft drop-all in the node's namespace (loopback allowed). Open
  client connections hang, nothing tells them (orderd's deadline ends
  them); commits waiting for the standby stay unacknowledged.
- freeze: SIGSTOP of the node's processes. Its kernel still accepts
  connections (until the listen backlog is full) and ACKs data: connects
  and statements hang instead of failing; libpq's connect_timeout
  (blocking connects only) moves a multi-host connect on to the next
  host. After SIGCONT the old leader finds its key taken and demotes
  within a loop; until then it is a primary taking connections, but its
  commits wait for a synchronous standby that is now a primary, so none
  is acknowledged; pg_rewind discards those local-only commits. A
  watchdog (mode off here: no device) would reset a frozen node instead.
- If pg_rewind fails Patroni takes a new base backup
  (remove_data_directory_on_rewind_failure): heal() converges either way.
- After a failover the new primary commits alone until the old one
  streams again: wait_healthy() is where sync is back.
- The file is named patroni.py: keep tests/fault/lib itself off the
  sys.path of anything that imports Patroni's package.
"""

import atexit
import fcntl
import glob
import json
import os
import queue
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

PG_BIN = "/usr/lib/postgresql/15/bin"
PATRONI = "/usr/bin/patroni"
ETCD = "/usr/bin/etcd"
PG_PORT, API_PORT, ETCD_PORT = 5432, 8008, 2379
TTL, LOOP_WAIT, RETRY_TIMEOUT = 12, 2, 4
LOCK = "/run/lock/orderd-patroni.lock"
NODES = ("n1", "n2")
# role -> offset of its /30 inside 10.232.N.0/24
SLOTS = {"etcd": 0, "n1": 4, "n2": 8}

_live_ns = set()  # namespaces owned by live PatroniCluster objects here


def _run(args, check=True, timeout=30):
    r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(args), r.stdout.strip()))
    return r


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _ns_pids(ns):
    r = _run(["ip", "netns", "pids", ns], check=False)
    return [int(p) for p in r.stdout.split() if p.isdigit()]


def _signal_all(pids, sig):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _nft(rules, ns=None):
    pre = ["ip", "netns", "exec", ns] if ns else []
    r = subprocess.run(pre + ["nft", "-f", "-"], input=rules, text=True,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=10)
    if r.returncode != 0:
        raise RuntimeError("nft: " + r.stdout)


def _reap(proc, timeout):
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        pass


def enable_forwarding(ifname):
    """Lets the root namespace route packets that come in on ifname (a
    root-side veth of a client namespace) to the cluster's nodes."""
    with open("/proc/sys/net/ipv4/conf/%s/forwarding" % ifname, "w") as f:
        f.write("1\n")


def _http_json(url, timeout=1.5, data=None):
    req = urllib.request.Request(url, data=data)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read().decode())


def _wait_poll(conn, deadline):
    import psycopg2.extensions as ext
    while True:
        state = conn.poll()
        if state == ext.POLL_OK:
            return
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("postgres: no answer in time")
        fd = conn.fileno()
        if state == ext.POLL_READ:
            select.select([fd], [], [], left)
        elif state == ext.POLL_WRITE:
            select.select([], [fd], [], left)
        else:
            raise RuntimeError("postgres: poll state %r" % state)


def pg_sql(host, sql, dbname="postgres", timeout=3.0, port=PG_PORT):
    """One autocommit statement on one host, bounded by timeout even if the
    server is frozen (nonblocking libpq, polled). Returns rows or None."""
    import psycopg2
    deadline = time.monotonic() + timeout
    conn = psycopg2.connect(host=host, port=port, user="postgres",
                            dbname=dbname, async_=1)
    try:
        _wait_poll(conn, deadline)
        cur = conn.cursor()
        cur.execute(sql)
        _wait_poll(conn, deadline)
        return cur.fetchall() if cur.description else None
    finally:
        conn.close()


def available():
    """(True, "") if this machine can run a PatroniCluster, else (False,
    why). Cheap: creates and removes one probe namespace."""
    import importlib.util
    import pwd
    if os.geteuid() != 0:
        return False, "needs root (network namespaces)"
    for path in (PATRONI, ETCD, PG_BIN + "/postgres", PG_BIN + "/pg_rewind"):
        if not os.access(path, os.X_OK):
            return False, "%s missing (scripts/deps.sh test)" % path
    missing = [t for t in ("ip", "nft", "setpriv") if not shutil.which(t)]
    if missing or "postgres" not in [u.pw_name for u in pwd.getpwall()]:
        return False, "missing: %s" % (missing or "user postgres")
    if not importlib.util.find_spec("psycopg2"):
        return False, "psycopg2 missing for %s" % sys.executable
    ns = "orderd-probe-%d" % os.getpid()
    try:
        for args in (["/usr/bin/python3", "-c", "import etcd, patroni"],
                     ["ip", "netns", "add", ns],
                     ["ip", "netns", "exec", ns, "nft", "add", "table",
                      "inet", "probe"]):
            r = _run(args, check=False)
            if r.returncode != 0:
                return False, "%s: %s" % (" ".join(args), r.stdout[-200:])
    finally:
        _run(["ip", "netns", "delete", ns], check=False)
    return True, ""


class Node:
    def __init__(self, name, ns, ip, vroot, home, log):
        self.name, self.ns, self.ip, self.vroot = name, ns, ip, vroot
        self.home, self.log = home, log
        self.proc = None  # Popen of patroni (setpriv execs it: same PID)


class PatroniCluster:
    def __init__(self, workdir, name="pha", keep=None, dcs="etcd"):
        if not re.fullmatch(r"[a-z][a-z0-9]{0,7}", name):
            raise ValueError("name: 1-8 lowercase letters/digits")
        if dcs not in ("etcd", "etcd3"):
            raise ValueError("dcs: etcd (v2 API, default) or etcd3")
        self.dcs = dcs
        self.workdir = os.path.abspath(workdir)
        self.name = name
        self.keep = (os.environ.get("ORDERD_FAULT_KEEP") == "1"
                     if keep is None else keep)
        self.tag = "orderd-%s-%d" % (name, os.getpid())
        self.net = None  # N of 10.232.N.0/24
        self.table = None  # root-namespace nft table (_guard)
        self.home = None
        self.etcd = None  # Node for etcd (proc = etcd)
        self.nodes = {}
        self.fault = None  # (kind, node name, monotonic time)
        self.started = False
        self.stopped = False
        atexit.register(self.stop)

    def _ns(self, role):
        return "%s-%s" % (self.tag, role)

    def _ip(self, role, host):
        return "10.232.%d.%d" % (self.net, SLOTS[role] + host)

    def _stale(self, pid):
        """Whether a namespace/table/directory of ours named with pid is a
        leftover: its process is gone, or it is this process's and no live
        cluster here uses it."""
        if pid != os.getpid():
            return not _alive(pid)
        prefix = "orderd-%s-%d" % (self.name, pid)
        return not any(x.startswith(prefix) for x in _live_ns)

    def _cleanup_stale(self):
        pat = re.compile(r"^orderd-%s-(\d+)-(etcd|n1|n2)$" % self.name)
        out = _run(["ip", "netns", "list"], check=False).stdout
        for line in out.splitlines():
            ns = line.split(" ")[0]
            m = pat.match(ns)
            if not m or ns in _live_ns:
                continue
            if not self._stale(int(m.group(1))):
                continue
            _signal_all(_ns_pids(ns), signal.SIGKILL)
            _run(["ip", "netns", "delete", ns], check=False)
            sys.stderr.write("patroni: removed stale namespace %s\n" % ns)
        tpat = re.compile(r"^table inet (orderd_%s_(\d+))$" % self.name)
        for line in _run(["nft", "list", "tables"], check=False).stdout \
                .splitlines():
            m = tpat.match(line.strip())
            if m and self._stale(int(m.group(2))):
                _run(["nft", "delete", "table", "inet", m.group(1)],
                     check=False)
        for d in glob.glob("/tmp/orderd-patroni-%s-*" % self.name):
            m = re.match(r".*/orderd-patroni-%s-(\d+)-" % self.name, d)
            if not m or not self._stale(int(m.group(1))):
                continue
            _remove_shm(d)
            shutil.rmtree(d, ignore_errors=True)
            sys.stderr.write("patroni: removed stale %s\n" % d)

    def _pick_net(self):
        used = _run(["ip", "-4", "-o", "addr", "show"]).stdout + \
            _run(["ip", "-4", "route", "show", "table", "all"]).stdout
        taken = set(int(x) for x in re.findall(r"\b10\.232\.(\d+)\.", used))
        if re.search(r"\b10\.232\.0\.0/(1[0-6]|[0-9])\b", used):
            raise RuntimeError("10.232.0.0/16 is routed as a whole here")
        for n in range(100, 255):
            if n not in taken:
                return n
        raise RuntimeError("no free 10.232.N.0/24")

    def _add_ns(self, role):
        ns = self._ns(role)
        vroot = "od%d%s" % (self.net, role)
        outer, inner = self._ip(role, 1), self._ip(role, 2)
        _run(["ip", "netns", "add", ns])
        _live_ns.add(ns)
        for c in ("-n %(ns)s link set lo up",
                  "link add %(v)s type veth peer name eth0 netns %(ns)s",
                  "addr add %(o)s/30 dev %(v)s", "link set %(v)s up",
                  "-n %(ns)s addr add %(i)s/30 dev eth0",
                  "-n %(ns)s link set eth0 up",  # no default route:
                  "-n %(ns)s route add 10.232.0.0/16 via %(o)s"):
            _run(["ip"] + (c % {"ns": ns, "v": vroot, "o": outer,
                                "i": inner}).split())
        enable_forwarding(vroot)
        return ns, inner, vroot

    def _guard(self):
        """Our veths have forwarding on; this root-namespace nft table
        (ours alone, named with our PID) drops what they would forward out
        of the machine (to a 10.232 address nobody has: it would follow
        the default route)."""
        devs = set(re.findall(r"\bdev (\S+)", _run(
            ["ip", "-4", "route", "show", "default"]).stdout))
        rule = ""
        if devs:
            rule = 'iifname "od%d*" oifname { %s } drop;' % (
                self.net, ", ".join('"%s"' % d for d in sorted(devs)))
        self.table = self.tag.replace("-", "_")
        _nft("table inet %s {\n chain forward { type filter hook forward "
             "priority 0; policy accept; %s }\n}\n" % (self.table, rule))

    def _setup_net(self):
        os.makedirs(os.path.dirname(LOCK), exist_ok=True)
        with open(LOCK, "w") as lk:
            fcntl.flock(lk, fcntl.LOCK_EX)
            self.net = self._pick_net()
            self._guard()
            for role in ("etcd",) + NODES:
                ns, ip, vroot = self._add_ns(role)
                home = os.path.join(self.home, role)
                os.makedirs(home)
                shutil.chown(home, "postgres", "postgres")
                os.chmod(home, 0o700)
                n = Node(role, ns, ip, vroot, home,
                         os.path.join(self.workdir, role + ".log"))
                if role == "etcd":
                    self.etcd = n
                else:
                    self.nodes[role] = n

    def _start_etcd(self):
        e = self.etcd
        url = "http://%s:%d" % (e.ip, ETCD_PORT)
        peer = "http://%s:%d" % (e.ip, ETCD_PORT + 1)
        cmd = ["ip", "netns", "exec", e.ns, ETCD, "--name", "e1",
               "--data-dir", os.path.join(e.home, "data"),
               "--listen-client-urls", url, "--advertise-client-urls", url,
               "--listen-peer-urls", peer,
               "--initial-advertise-peer-urls", peer,
               "--initial-cluster", "e1=" + peer,
               "--initial-cluster-state", "new",
               "--initial-cluster-token", self.tag,
               "--logger", "zap", "--log-level", "warn"]
        if self.dcs == "etcd":
            cmd.append("--enable-v2=true")
        with open(e.log, "ab") as log:
            e.proc = subprocess.Popen(cmd, stdout=log, stderr=log,
                                      stdin=subprocess.DEVNULL,
                                      start_new_session=True)

    def _etcd_healthy(self):
        try:
            h = _http_json("http://%s:%d/health" % (self.etcd.ip, ETCD_PORT))
            return h.get("health") == "true"
        except (OSError, ValueError):
            return False

    def _patroni_conf(self, node):
        hba = ["local all all trust",
               "host all all 127.0.0.1/32 trust",
               "host replication all 127.0.0.1/32 trust",
               "host all all 10.232.0.0/16 trust",
               "host replication all 10.232.0.0/16 trust"]
        params = {
            "max_connections": 300, "shared_buffers": "64MB",
            "wal_level": "replica", "hot_standby": "on",
            "wal_log_hints": "on", "max_wal_senders": 10,
            "max_replication_slots": 10, "wal_keep_size": "256MB",
            "synchronous_commit": "on", "fsync": "on",
            "full_page_writes": "on", "wal_receiver_timeout": "10s",
            "wal_sender_timeout": "10s",
        }
        return {
            "scope": self.name, "namespace": "/orderd/", "name": node.name,
            "log": {"level": "INFO", "format":
                    "%(asctime)s patroni %(levelname)s: %(message)s"},
            "restapi": {"listen": "%s:%d" % (node.ip, API_PORT),
                        "connect_address": "%s:%d" % (node.ip, API_PORT)},
            self.dcs: {"hosts": ["%s:%d" % (self.etcd.ip, ETCD_PORT)],
                       "protocol": "http"},
            "bootstrap": {
                "dcs": {"ttl": TTL, "loop_wait": LOOP_WAIT,
                        "retry_timeout": RETRY_TIMEOUT,
                        "maximum_lag_on_failover": 1048576,
                        "synchronous_mode": True,
                        "synchronous_mode_strict": False,
                        "postgresql": {"use_pg_rewind": True,
                                       "use_slots": True,
                                       "parameters": params}},
                "initdb": [{"encoding": "UTF8"}, {"locale": "C"},
                           {"auth": "trust"}, "no-sync"],
            },
            "postgresql": {
                "listen": "%s,127.0.0.1:%d" % (node.ip, PG_PORT),
                "connect_address": "%s:%d" % (node.ip, PG_PORT),
                "data_dir": os.path.join(node.home, "data"),
                "bin_dir": PG_BIN,
                "pgpass": os.path.join(node.home, "pgpass"),
                "use_unix_socket": True,
                "use_unix_socket_repl": False,
                "authentication": {"superuser": {"username": "postgres"},
                                   "replication": {"username": "postgres"},
                                   "rewind": {"username": "postgres"}},
                "pg_hba": hba,
                "remove_data_directory_on_rewind_failure": True,
                "remove_data_directory_on_diverged_timelines": True,
                "parameters": {
                    "unix_socket_directories": node.home,
                    "logging_collector": "off", "log_destination": "stderr",
                    "log_line_prefix": "%m [%p] postgres ",
                    "log_min_messages": "warning", "log_connections": "off",
                },
            },
            "watchdog": {"mode": "off"},
        }

    def _start_patroni(self, node):
        conf = os.path.join(node.home, "patroni.yml")
        if not os.path.exists(conf):
            # JSON is YAML.
            with open(conf, "w") as f:
                json.dump(self._patroni_conf(node), f, indent=1)
            shutil.chown(conf, "postgres", "postgres")
        cmd = ["ip", "netns", "exec", node.ns, "setpriv", "--reuid=postgres",
               "--regid=postgres", "--init-groups", "--", PATRONI, conf]
        env = {"PATH": "/usr/bin:/bin", "HOME": node.home,
               "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
        with open(node.log, "ab") as log:
            log.write(b"==== patroni.py: starting %s at %s\n" %
                      (node.name.encode(), time.ctime().encode()))
            log.flush()
            node.proc = subprocess.Popen(cmd, stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL, env=env,
                                         cwd=node.home,
                                         start_new_session=True)

    def start(self, timeout=90):
        """etcd + two Patroni nodes; returns when a leader takes writes and
        the other node is a streaming synchronous standby."""
        if self.started:
            raise RuntimeError("already started")
        t0 = time.monotonic()
        self.started = True
        self._cleanup_stale()
        os.makedirs(self.workdir, exist_ok=True)
        self.home = tempfile.mkdtemp(
            prefix="orderd-patroni-%s-%d-" % (self.name, os.getpid()),
            dir="/tmp")
        shutil.chown(self.home, "postgres", "postgres")
        os.chmod(self.home, 0o755)
        link = os.path.join(self.workdir, "runtime")
        if os.path.islink(link):
            os.unlink(link)
        os.symlink(self.home, link)
        try:
            self._setup_net()
            self._start_etcd()
            self._until(t0 + timeout, self._etcd_healthy, "etcd healthy")
            for n in self.nodes.values():
                self._start_patroni(n)
            self.wait_healthy(timeout=max(1, t0 + timeout - time.monotonic()))
        except BaseException:
            self._dump_logs()
            self.stop()
            raise
        return time.monotonic() - t0

    def uri(self, dbname="postgres"):
        hosts = ",".join("%s:%d" % (n.ip, PG_PORT)
                         for n in self.nodes.values())
        return ("postgres://postgres@%s/%s?target_session_attrs=read-write"
                "&connect_timeout=2" % (hosts, dbname))

    def create_db(self, name):
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
            raise ValueError("database name: lowercase identifier")
        leader = self.leader()
        if not leader:
            raise RuntimeError("create_db: no leader")
        pg_sql(self.nodes[leader].ip, 'CREATE DATABASE "%s"' % name,
               timeout=30)
        return self.uri(name)

    def members(self, timeout=1.5):
        """Members as Patroni's /cluster reports them, {} if no node
        answers. /cluster reads etcd on every request, so the first answer
        is as good as any: both nodes are asked at once and a frozen or cut
        one costs nothing while the other answers."""
        answers = queue.Queue()

        def ask(n):
            try:
                answers.put(_http_json("http://%s:%d/cluster" %
                                       (n.ip, API_PORT), timeout=timeout))
            except (OSError, ValueError):
                answers.put(None)
        for n in self.nodes.values():
            threading.Thread(target=ask, args=(n,), daemon=True).start()
        end = time.monotonic() + timeout + 0.5
        for _ in self.nodes:
            try:
                view = answers.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                break
            if view is not None:
                return {m["name"]: m for m in view.get("members", [])}
        return {}

    def leader(self):
        """Name of the node holding the leader key, None if none."""
        for m in self.members().values():
            if m.get("role") in ("leader", "master", "primary"):
                return m["name"]
        return None

    def _writable(self, name):
        try:
            pg_sql(self.nodes[name].ip, "SELECT txid_current()", timeout=3)
            return True
        except Exception:
            return False

    def _sync_ok(self, leader, other):
        try:
            rows = pg_sql(self.nodes[leader].ip,
                          "SELECT count(*) FROM pg_stat_replication WHERE "
                          "application_name = '%s' AND state = 'streaming' "
                          "AND sync_state = 'sync'" % other, timeout=3)
            return rows[0][0] == 1
        except Exception:
            return False

    def _healthy(self):
        ms = self.members()
        leader = [n for n, m in ms.items()
                  if m.get("role") in ("leader", "master", "primary")
                  and m.get("state") == "running"]
        if len(leader) != 1:
            return False
        others = [n for n in NODES if n != leader[0]]
        sync = [n for n in others if ms.get(n, {}).get("role") ==
                "sync_standby" and ms[n].get("state") in ("running",
                                                           "streaming")]
        return (len(sync) == 1 and self._sync_ok(leader[0], sync[0])
                and self._writable(leader[0]))

    def _take_fault(self, kind):
        if self.fault:
            raise RuntimeError("fault %s still active: heal() first" %
                               self.fault[0])
        leader = self.leader()
        if not leader:
            raise RuntimeError("%s: no leader" % kind)
        self.fault = (kind, leader, time.monotonic())
        return self.nodes[leader]

    def kill_primary(self):
        """SIGKILL the leader node's patroni, postmaster and backends at
        once, as a machine crash would. Returns the node's name."""
        n = self._take_fault("kill")
        pids = _ns_pids(n.ns)
        if n.proc:  # patroni first: it must not see postgres die
            pids = [n.proc.pid] + [p for p in pids if p != n.proc.pid]
        _signal_all(pids, signal.SIGKILL)
        self.fault = (self.fault[0], n.name, time.monotonic())
        if n.proc:
            _reap(n.proc, 5)
        return n.name

    def cut_primary(self):
        """Drop every packet to and from the leader node except its own
        loopback (etcd, the other node, clients). Returns the node's name."""
        n = self._take_fault("cut")
        rules = ("table inet orderd_cut {\n"
                 " chain in { type filter hook input priority -300; "
                 "policy drop; iifname \"lo\" accept; }\n"
                 " chain out { type filter hook output priority -300; "
                 "policy drop; oifname \"lo\" accept; }\n}\n")
        try:
            _nft(rules, n.ns)
        except BaseException:
            self.fault = None
            raise
        self.fault = (self.fault[0], n.name, time.monotonic())
        return n.name

    def freeze_primary(self):
        """SIGSTOP every process of the leader node. Returns its name."""
        n = self._take_fault("freeze")
        _signal_all(_ns_pids(n.ns), signal.SIGSTOP)
        self.fault = (self.fault[0], n.name, time.monotonic())
        return n.name

    def heal(self):
        """Undo the last fault. The old primary then rejoins as a replica
        by itself (wait_healthy() waits for that)."""
        if not self.fault:
            return
        kind, name, _ = self.fault
        n = self.nodes[name]
        if kind == "kill":
            self._start_patroni(n)
        elif kind == "cut":
            _run(["ip", "netns", "exec", n.ns, "nft", "delete", "table",
                  "inet", "orderd_cut"])
        elif kind == "freeze":
            _signal_all(_ns_pids(n.ns), signal.SIGCONT)
        self.fault = None

    def wait_leader_change(self, old, timeout=60):
        """Waits until a node other than old holds the leader key and
        commits a write. Returns seconds since the last fault was injected
        (since this call if no fault is active)."""
        t0 = self.fault[2] if self.fault else time.monotonic()
        end = time.monotonic() + timeout

        def changed():
            lead = self.leader()
            return lead not in (None, old) and self._writable(lead)
        self._until(end, changed, "a leader other than %s" % old)
        return time.monotonic() - t0

    def wait_healthy(self, timeout=60):
        """Waits for a leader taking writes and a streaming synchronous
        standby (Patroni's /sync key and pg_stat_replication agree).
        Returns the seconds waited."""
        t0 = time.monotonic()
        self._until(t0 + timeout, self._healthy,
                    "a leader and a streaming sync standby")
        return time.monotonic() - t0

    def _until(self, end, pred, what):
        while True:
            if pred():
                return
            if time.monotonic() >= end:
                self._dump_logs()
                raise TimeoutError("patroni: timed out waiting for %s "
                                   "(logs in %s)" % (what, self.workdir))
            time.sleep(0.2)

    def _dump_logs(self, n=25):
        for node in [self.etcd] + list(self.nodes.values()):
            if not node:
                continue
            try:
                with open(node.log, errors="replace") as f:
                    tail = f.readlines()[-n:]
            except OSError:
                continue
            sys.stderr.write("---- %s (last %d lines)\n%s" %
                             (node.log, n, "".join(tail)))

    def stop(self):
        """Stop everything, remove namespaces (veths go with them), the
        runtime directory and, unless keep, the workdir. Idempotent."""
        if self.stopped or not self.started:
            self.stopped = True
            return
        self.stopped = True
        for n in list(self.nodes.values()) + ([self.etcd] if self.etcd
                                               else []):
            _stop_ns(n)
        # Also namespaces a failed start created before their Node.
        for ns in sorted(x for x in _live_ns if x.startswith(self.tag + "-")):
            _signal_all(_ns_pids(ns), signal.SIGKILL)
            _run(["ip", "netns", "delete", ns], check=False)
            _live_ns.discard(ns)
        if self.table:
            _run(["nft", "delete", "table", "inet", self.table], check=False)
        if self.home:
            _remove_shm(self.home)
            shutil.rmtree(self.home, ignore_errors=True)
        link = os.path.join(self.workdir, "runtime")
        if os.path.islink(link):
            os.unlink(link)
        if not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _postmaster_pid(home):
    try:
        with open(os.path.join(home, "data", "postmaster.pid")) as f:
            return int(f.readline())
    except (OSError, ValueError):
        return None


def _stop_ns(node):
    """Kills what runs in node's namespace: patroni first (it must not
    restart postgres), then an immediate shutdown of the postmaster
    (SIGQUIT: it removes its shared memory), then SIGKILL for whatever is
    left, all bounded."""
    pids = _ns_pids(node.ns)
    if not pids:
        return
    _signal_all(pids, signal.SIGCONT)  # a frozen node cannot shut down
    if node.proc:
        _signal_all([node.proc.pid], signal.SIGKILL)
    pm = [p for p in [_postmaster_pid(node.home)] if p in pids]
    _signal_all(pm, signal.SIGQUIT)
    end = time.monotonic() + 5
    while time.monotonic() < end and any(_alive(p) for p in pm):
        time.sleep(0.05)
    _signal_all(_ns_pids(node.ns), signal.SIGKILL)
    end = time.monotonic() + 5
    while time.monotonic() < end and _ns_pids(node.ns):
        time.sleep(0.05)
    if node.proc:
        _reap(node.proc, 2)


def _remove_shm(home):
    """Removes the SysV segments that postmasters under home left behind
    when SIGKILLed (a live postmaster keeps its segment attached)."""
    ids = set()
    for pidfile in glob.glob(os.path.join(home, "*", "data",
                                          "postmaster.pid")):
        try:
            with open(pidfile) as f:
                ids.add(f.read().splitlines()[6].split()[1])
        except (OSError, IndexError):
            pass
    try:
        with open("/proc/sysvipc/shm") as f:
            rows = [r.split() for r in f.read().splitlines()[1:]]
    except OSError:
        return
    for r in rows:
        if len(r) > 6 and r[1] in ids and r[6] == "0":  # shmid, nattch
            _run(["ipcrm", "-m", r[1]], check=False)


def _main(argv):
    import importlib.util
    args = argv[1:]
    dcs = args[2] if len(args) == 3 and args[1] == "--dcs" else "etcd"
    if args not in (["--selftest"], ["--selftest", "--dcs", dcs]) or \
            dcs not in ("etcd", "etcd3"):
        sys.stderr.write("usage: %s --selftest [--dcs etcd|etcd3]\n" % argv[0])
        return 2
    if not importlib.util.find_spec("psycopg2") and \
            sys.executable != "/usr/bin/python3":  # pyenv's python3 on PATH
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + argv)
    import patroni_selftest  # beside this file: sys.path[0]
    return patroni_selftest.selftest(sys.modules[__name__], dcs)


if __name__ == "__main__":
    sys.exit(_main(sys.argv))
