"""patroni_selftest: the self-test of patroni.py, run by
`python3 tests/fault/lib/patroni.py --selftest [--dcs etcd|etcd3]`
(not registered in ctest: about 1.5 minutes).

Starts the pair, creates a database and a table, and writes rows 1, 2, 3,
... through one multi-host libpq connection (the URI orderd would get)
while doing, in turn, kill_primary, cut_primary and freeze_primary, each
followed by wait_leader_change, heal and wait_healthy. Passes if every
acknowledged row is on the final leader and on its standby, and the
leader did not move back to the old primary after heal. Prints per fault
the failover time (fault -> another node leader and committing), the
writer's longest time without an acknowledgement, the time from heal to
a synchronous pair again and how the old primary rejoined.
"""

import os
import shutil
import socket
import tempfile
import threading
import time


class Writer(threading.Thread):
    """Inserts rows through one multi-host libpq connection (blocking
    libpq: connect_timeout bounds each host), reconnecting after any error.
    A statement outstanding longer than OP_TIMEOUT has its socket shut down
    by a watchdog: a frozen or cut server never answers, and a blocking
    libpq call would wait forever. acked: ids whose INSERT returned;
    unknown: ids whose INSERT failed (they may or may not be stored)."""
    OP_TIMEOUT = 4.0

    def __init__(self, uri):
        super().__init__(daemon=True)
        self.uri = uri
        self.acked, self.unknown, self.ack_times = [], [], []
        self.stop_ev = threading.Event()
        self.mu = threading.Lock()
        self.op = None  # (fd, started) of the statement outstanding

    def _watchdog(self):
        while not self.stop_ev.wait(0.2):
            with self.mu:
                if self.op and time.monotonic() - self.op[1] > self.OP_TIMEOUT:
                    # Under mu: the writer cannot close (and so free) the
                    # fd before it has cleared op.
                    s = socket.socket(fileno=os.dup(self.op[0]))
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    s.close()
                    self.op = None

    def run(self):
        import psycopg2
        threading.Thread(target=self._watchdog, daemon=True).start()
        conn, i = None, 0
        while not self.stop_ev.is_set():
            if conn is None:
                try:
                    conn = psycopg2.connect(self.uri)
                    conn.autocommit = True
                except psycopg2.Error:
                    time.sleep(0.2)
                    continue
            i += 1
            with self.mu:
                self.op = (conn.fileno(), time.monotonic())
            try:
                conn.cursor().execute("INSERT INTO t (id) VALUES (%s)", (i,))
                ok = True
            except psycopg2.Error:
                ok = False
            with self.mu:
                self.op = None
            if ok:
                self.acked.append(i)
                self.ack_times.append(time.monotonic())
                time.sleep(0.01)
            else:
                self.unknown.append(i)
                conn.close()
                conn = None
                time.sleep(0.1)
        if conn is not None:
            conn.close()

    def outage(self, t0, t1):
        """The longest time without an acknowledgement within [t0, t1]."""
        ts = [t0] + [t for t in self.ack_times if t0 < t < t1] + [t1]
        return max(b - a for a, b in zip(ts, ts[1:]))


def rejoin_method(log, since):
    """How a node rejoined, from its log after byte offset since."""
    with open(log, "rb") as f:
        f.seek(since)
        text = f.read().decode(errors="replace").lower()
    if "removing data directory" in text or "bootstrap from leader" in text:
        return "new base backup"
    if "pg_rewind exit code=0" in text:
        return "pg_rewind"
    return "no pg_rewind"


def check_rows(P, c, w):
    """Every acknowledged row on the leader and, once replayed, on the
    standby. Returns a list of failures."""
    final = c.leader()
    rows = P.pg_sql(c.nodes[final].ip, "SELECT id FROM t", dbname="selftest",
                    timeout=10)
    present = set(r[0] for r in rows)
    lost = sorted(set(w.acked) - present)
    standby = [n for n in P.NODES if n != final][0]
    missing = present
    end = time.monotonic() + 10  # the standby replays after its flush
    while missing and time.monotonic() < end:
        srows = P.pg_sql(c.nodes[standby].ip, "SELECT id FROM t",
                         dbname="selftest", timeout=10)
        missing = present - set(r[0] for r in srows)
        time.sleep(0.2)
    print("rows: %d acknowledged, %d unknown (%d of them stored), %d on "
          "leader %s; acknowledged but lost: %d; missing on standby %s: %d" %
          (len(w.acked), len(w.unknown), len(set(w.unknown) & present),
           len(present), final, len(lost), standby, len(missing)))
    fails = []
    if lost:
        fails.append("acknowledged rows lost: %s" % lost[:20])
    if missing:
        fails.append("standby lacks rows: %s" % sorted(missing)[:20])
    return fails


def selftest(P, dcs="etcd"):
    ok, why = P.available()
    if not ok:
        print("patroni selftest: SKIP: " + why)
        return 77
    t_all = time.monotonic()
    workdir = tempfile.mkdtemp(prefix="orderd-patroni-selftest-")
    c = P.PatroniCluster(workdir, dcs=dcs,
                         keep=os.environ.get("ORDERD_FAULT_KEEP") == "1")
    w = None
    try:
        t = c.start()
        print("start: %.1f s, dcs %s, leader %s, uri %s" %
              (t, dcs, c.leader(), c.uri()))
        uri = c.create_db("selftest")
        P.pg_sql(c.nodes[c.leader()].ip,
                 "CREATE TABLE t (id bigint PRIMARY KEY, "
                 "at timestamptz DEFAULT clock_timestamp())",
                 dbname="selftest", timeout=10)
        w = Writer(uri)
        w.start()
        time.sleep(2)
        fails, times = [], []
        for fault in ("kill_primary", "cut_primary", "freeze_primary"):
            old = c.leader()
            since = os.path.getsize(c.nodes[old].log)
            getattr(c, fault)()
            t_fault = c.fault[2]
            fo = c.wait_leader_change(old, timeout=60)
            new = c.leader()
            time.sleep(1)  # the writer lands on the new leader
            th = time.monotonic()
            c.heal()
            try:
                c.wait_healthy(timeout=60)
            except TimeoutError as e:
                fails.append("%s: %s" % (fault, e))
                print("FAIL: " + fails[-1])
                break  # still check the rows below
            after = c.leader()
            print("%-15s %s -> %s: failover %.1f s, writer's longest gap "
                  "%.1f s, heal -> sync pair %.1f s (%s), %d acks so far" %
                  (fault, old, new, fo, w.outage(t_fault - 1, th),
                   time.monotonic() - th,
                   rejoin_method(c.nodes[old].log, since), len(w.acked)))
            times.append("%s %.1f s" % (fault, fo))
            if after != new:
                fails.append("%s: after heal the leader went back from %s "
                             "to %s" % (fault, new, after))
                print("FAIL: " + fails[-1])
            time.sleep(1)
        w.stop_ev.set()
        w.join(10)
        fails += check_rows(P, c, w)
        print("failover times: " + ", ".join(times))
        for f in fails:
            print("FAIL: " + f)
        print("selftest %s in %.1f s" % ("FAILED" if fails else "OK",
                                         time.monotonic() - t_all))
        return 1 if fails else 0
    finally:
        if w:
            w.stop_ev.set()
        c.stop()
        if c.keep:
            print("kept logs in " + workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
