"""pg: the suite's PostgreSQL, a primary with a synchronous standby.

    pair = PgPair(workdir); pair.start()
    uri = pair.create_db("kill9")       # multi-host URI, read-write target

The primary is initdb'ed by tests/pgcluster.py; the standby is cloned from
it by pg_basebackup -R and streams from it; the primary waits for the
standby's flush on every commit (synchronous_standby_names). Both listen on
every address so that replicas in their own network namespaces reach them
through their veth pair (pg_hba trusts 127.0.0.1 and 10.0.0.0/8 only).

The faults on the database live here too: restart (immediate or fast),
freeze (SIGSTOP of the postmaster and every backend), terminate backends,
take every connection slot, pin the xmin horizon with an open transaction.
"""
import os
import shutil
import signal
import subprocess
import time

import psycopg2

from . import env

PG = "/usr/lib/postgresql/15/bin"
SUBNET = "10.0.0.0/8"   # the replicas' namespaces (lib/net.py)


def _run(args, check=True, timeout=120):
    if env.AS_ROOT:
        args = ["runuser", "-u", "postgres", "--"] + args
    r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError("%s failed (%d):\n%s"
                           % (" ".join(args), r.returncode, r.stdout[-3000:]))
    return r


class Node:
    """One PostgreSQL server: data dir, port, log."""

    def __init__(self, home, name, port):
        self.home = home
        self.name = name
        self.port = port
        self.data = os.path.join(home, name)
        self.log = os.path.join(home, name + ".log")

    def start(self):
        _run([PG + "/pg_ctl", "-D", self.data, "-l", self.log, "-t", "60",
              "-w", "start"])

    def stop(self, mode="fast"):
        _run([PG + "/pg_ctl", "-D", self.data, "-m", mode, "-t", "30", "-w",
              "stop"], check=False)

    def running(self):
        return _run([PG + "/pg_ctl", "-D", self.data, "status"],
                    check=False).returncode == 0

    def postmaster_pid(self):
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                return int(f.readline())
        except (OSError, ValueError):
            return None

    def pids(self):
        """The postmaster and all its children."""
        pm = self.postmaster_pid()
        if pm is None:
            return []
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pm)],
                             capture_output=True, text=True).stdout
        return [pm] + [int(p) for p in out.split()]

    def dsn(self, db="postgres"):
        return "postgres://postgres@127.0.0.1:%d/%s" % (self.port, db)


class PgPair:
    def __init__(self, workdir):
        self.dir = workdir
        self.home = None
        self.primary = None
        self.standby = None
        self.frozen = []
        self.hogs = []

    # ------------------------------------------------------------ set-up

    def start(self):
        import pgcluster
        pgcluster.start(self.dir)          # initdb + start the primary
        self.home = pgcluster.home_of(self.dir)
        with open(os.path.join(self.dir, "port")) as f:
            port = int(f.read())
        # pgcluster's node lives in HOME/data; keep its name.
        self.primary = Node(self.home, "data", port)
        self.primary.log = os.path.join(self.home, "log")
        env.on_exit(self.stop)
        with open(os.path.join(self.primary.data, "postgresql.conf"), "a") as f:
            f.write("listen_addresses = '*'\n"
                    "max_connections = 400\n"
                    "wal_level = replica\n"
                    "max_wal_senders = 4\n"
                    "synchronous_standby_names = '*'\n"
                    "wal_sender_timeout = 5s\n")
        with open(os.path.join(self.primary.data, "pg_hba.conf"), "a") as f:
            f.write("host all all %s trust\n"
                    "host replication all 127.0.0.1/32 trust\n" % SUBNET)
        self.primary.stop()
        self.primary.start()
        sport = env.free_port()
        self.standby = Node(self.home, "standby", sport)
        _run([PG + "/pg_basebackup", "-D", self.standby.data, "-h",
              "127.0.0.1", "-p", str(port), "-U", "postgres", "-R",
              "-X", "stream", "--no-sync"])
        # -R wrote primary_conninfo to postgresql.auto.conf.
        with open(os.path.join(self.standby.data, "postgresql.conf"), "a") as f:
            f.write("port = %d\n"
                    "hot_standby = on\n"
                    "wal_receiver_status_interval = 1s\n"
                    # Back within a second of a primary restart: until
                    # it is, every commit waits for it.
                    "wal_retrieve_retry_interval = 500ms\n" % sport)
        self.standby.start()
        self.wait_sync()

    def wait_sync(self, timeout=30):
        """Until the standby streams as the synchronous one."""
        t_end = time.monotonic() + timeout
        while time.monotonic() < t_end:
            try:
                rows = self.query("SELECT sync_state FROM"
                                  " pg_stat_replication")
                if rows and rows[0][0] == "sync":
                    return
            except psycopg2.Error:
                pass
            time.sleep(0.2)
        raise RuntimeError("standby not synchronous after %ds" % timeout)

    def addresses(self, host="127.0.0.1"):
        """host:port of both servers, for a multi-host URI."""
        return "%s:%d,%s:%d" % (host, self.primary.port, host,
                                self.standby.port)

    def uri(self, db, host="127.0.0.1"):
        return ("postgres://postgres@%s/%s?target_session_attrs=read-write"
                "&connect_timeout=3" % (self.addresses(host), db))

    def create_db(self, name):
        self.query('CREATE DATABASE "%s"' % name)
        return name

    def connect(self, db="postgres", timeout=5):
        c = psycopg2.connect(self.primary.dsn(db), connect_timeout=timeout)
        c.autocommit = True
        return c

    def query(self, sql, args=None, db="postgres"):
        c = self.connect(db)
        try:
            with c.cursor() as cur:
                cur.execute(sql, args)
                return cur.fetchall() if cur.description else None
        finally:
            c.close()

    def stop(self):
        self.thaw()
        self.release_slots()
        for n in (self.standby, self.primary):
            if n is not None:
                n.stop("immediate")
        if self.home and self.home != self.dir:
            shutil.rmtree(self.home, ignore_errors=True)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.primary = self.standby = None

    # ------------------------------------------------------------ faults

    def restart(self, mode):
        """pg_ctl stop -m MODE, then start; returns the seconds it took."""
        t0 = time.monotonic()
        self.primary.stop(mode)
        self.primary.start()
        return time.monotonic() - t0

    def freeze(self):
        """SIGSTOP the postmaster and every backend: connections stay open
        and nothing answers (a hung server, not a dead one)."""
        self.frozen = self.primary.pids()
        for p in self.frozen:
            try:
                os.kill(p, signal.SIGSTOP)
            except ProcessLookupError:
                pass

    def thaw(self):
        for p in self.frozen:
            try:
                os.kill(p, signal.SIGCONT)
            except ProcessLookupError:
                pass
        self.frozen = []

    def terminate_backends(self, db):
        """pg_terminate_backend on every client backend of db; returns how
        many it ended."""
        rows = self.query("SELECT count(*) FILTER (WHERE pg_terminate_backend"
                          "(pid)) FROM pg_stat_activity WHERE datname = %s"
                          " AND pid <> pg_backend_pid()", (db,))
        return rows[0][0]

    def take_slots(self, db):
        """Opens connections (as the superuser orderd also is) until the
        server refuses more: every slot taken by another client. Returns how
        many it holds; release_slots() closes them."""
        while True:
            try:
                c = psycopg2.connect(self.primary.dsn(db), connect_timeout=3)
            except psycopg2.OperationalError:
                break
            self.hogs.append(c)
            if len(self.hogs) > 2000:
                break
        return len(self.hogs)

    def evict(self, db, via):
        """pg_terminate_backend on every backend of db but the hogs', run
        on one of them (via): the clients must reconnect and cannot."""
        mine = []
        for c in self.hogs:
            mine.append(c.get_backend_pid())
        with via.cursor() as cur:
            cur.execute("SELECT count(*) FILTER (WHERE pg_terminate_backend"
                        "(pid)) FROM pg_stat_activity WHERE datname = %s"
                        " AND pid <> ALL(%s)", (db, mine))
            return cur.fetchone()[0]

    def release_slots(self):
        for c in self.hogs:
            try:
                c.close()
            except psycopg2.Error:
                pass
        self.hogs = []

    def pin_horizon(self, db):
        """BEGIN; SELECT txid_current(); left open: the forgotten session
        that holds back vacuum. Returns the connection; close it to end."""
        c = psycopg2.connect(self.primary.dsn(db), connect_timeout=5)
        with c.cursor() as cur:
            cur.execute("SELECT txid_current()")
        return c
