"""test_pgbouncer: orderd behind PgBouncer in transaction pooling mode
(PostgreSQL only; docs/postgres.md, "Behind PgBouncer").

A real pgbouncer (Debian's 1.18, scripts/deps.sh test) is started per test
on a free 127.0.0.1 port, pool_mode = transaction, default_pool_size =
POOL_SIZE (4), in front of the throwaway cluster the pg fixture started;
each test has its own fresh database, reached through it.

- test_two_replicas: two replicas with ORDERD_PG_POOLER=transaction share
  the 4 server sessions (sampled in pg_stat_activity: never more); 1,200
  orders over 20 skus, in batches and one by one, to both; every order
  terminal, stock reserved exactly (final stock = set stock - completed
  quantities, reservations only for completed orders), `orderctl verify`
  clean both through pgbouncer and directly, and none of orderd's session
  settings left on any server session (each still shows the server's
  defaults), so nothing depended on them.
- test_settings_per_transaction: orderd's lock_timeout
  (ORDERD_BUSY_TIMEOUT_MS=300) still holds through pgbouncer, in an
  explicit transaction (PUT /v1/products, blocked on a product row) and in
  a single statement (lock acquire, blocked on a locks row): each answers
  503 in well under the store deadline (4 s) without a deadline hit.
- test_deadline_pool_exhausted: with every server session held by other
  clients' open transactions, pgbouncer queues orderd's statements (its own
  query_wait_timeout is 120 s); orderd's store deadline (1.5 s) still
  bounds every answer (submit and /readyz: 503 within deadline + 1 s), and
  after the sessions are released the orders go through.
- test_without_setting_fails: the same two replicas with
  ORDERD_PG_POOLER=none (named prepared statements, session SETs) do not
  work behind transaction pooling: submissions fail or orders never finish.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness as H  # noqa: E402

PGBOUNCER = "/usr/sbin/pgbouncer"
POOL_SIZE = 4
N_SKUS = 20


def skip_unless_ready():
    if H.BACKEND != "postgres":
        raise unittest.SkipTest("PgBouncer sits in front of PostgreSQL only")
    if not os.access(PGBOUNCER, os.X_OK):
        raise unittest.SkipTest("no %s (scripts/deps.sh test)" % PGBOUNCER)


class Bouncer:
    """pgbouncer in the foreground, transaction pooling, on a free port,
    forwarding every database name to the test cluster. Registered with
    the harness, so it is killed by PID when the test process exits."""

    def __init__(self, pg_port, pool_size=POOL_SIZE):
        self.dir = tempfile.mkdtemp(prefix="orderd-pgbouncer-")
        os.chmod(self.dir, 0o755)
        self.port = H.free_port()
        ini = os.path.join(self.dir, "pgbouncer.ini")
        users = os.path.join(self.dir, "users.txt")
        with open(users, "w") as f:
            f.write('"postgres" ""\n')
        with open(ini, "w") as f:
            f.write("[databases]\n"
                    "* = host=127.0.0.1 port=%d\n"
                    "[pgbouncer]\n"
                    "listen_addr = 127.0.0.1\n"
                    "listen_port = %d\n"
                    "unix_socket_dir =\n"
                    "auth_type = trust\n"
                    "auth_file = %s\n"
                    "pool_mode = transaction\n"
                    "default_pool_size = %d\n"
                    "max_client_conn = 1000\n"
                    "max_db_connections = %d\n"
                    % (pg_port, self.port, users, pool_size, pool_size))
        for p in (ini, users):
            os.chmod(p, 0o644)
        self.log_path = os.path.join(self.dir, "log")
        log = open(self.log_path, "wb")
        # pgbouncer refuses to run as root.
        user = "postgres" if os.geteuid() == 0 else None
        self.proc = subprocess.Popen([PGBOUNCER, ini], stdout=log,
                                     stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, user=user)
        log.close()
        with H._procs_lock:
            H._procs.add(self.proc)
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("pgbouncer exited: %s" %
                                     H.log_tail(self.log_path))
            if "listening on 127.0.0.1" in H.log_tail(self.log_path):
                return
            time.sleep(0.05)
        raise AssertionError("pgbouncer not listening: %s" %
                             H.log_tail(self.log_path))

    def uri(self, dbname):
        return "postgres://postgres@127.0.0.1:%d/%s" % (self.port, dbname)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)


def pg_port(uri):
    import urllib.parse
    return urllib.parse.urlsplit(uri).port


def dbname(db):
    return "t_" + db.name


def server_sessions(db):
    """Client backends connected to db's database right now."""
    import psycopg2
    conn = psycopg2.connect(db.base)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE "
                        "datname = %s AND backend_type = 'client backend'",
                        (dbname(db),))
            return cur.fetchone()[0]
    finally:
        conn.close()


def items_for(i):
    a = "SKU-%02d" % (i % N_SKUS)
    b = "SKU-%02d" % ((i * 7 + 3) % N_SKUS)
    items = [{"sku": a, "qty": 1 + i % 3}]
    if b != a:
        items.append({"sku": b, "qty": 1})
    return items


class PgBouncerTest(unittest.TestCase):
    def setUp(self):
        skip_unless_ready()
        self.db = H.Database("pgbouncer")
        self.bouncer = Bouncer(pg_port(self.db.base))
        self.daemons = []
        self.clean_exit = True  # every replica drains and exits 0

    def tearDown(self):
        codes = [(d.name, d.stop(timeout=15)) for d in self.daemons]
        self.bouncer.stop()
        self.db.drop()
        if self.clean_exit:
            self.assertEqual([c for c in codes if c[1] != 0], [],
                             "\n".join(d.log()[-2000:] for d in self.daemons))

    def replica(self, name, pooler="transaction", env=None, **kw):
        e = {"ORDERD_PG_POOLER": pooler, "ORDERD_REPLICA_ID": name,
             "ORDERD_WORKERS": "2", "ORDERD_POLL_MS": "20"}
        e.update(env or {})
        d = H.Daemon(self.bouncer.uri(dbname(self.db)), env=e, name=name,
                     **kw)
        d.start()
        self.daemons.append(d)
        return d

    def submit_all(self, daemons, n, prefix):
        """n orders, alternately to each daemon, half in batches of 50 and
        half one by one, from 8 threads. Returns (acknowledged ids,
        failures as (status, body) of every non-2xx answer)."""
        orders = [H.order("%s-%d" % (prefix, i), items=items_for(i))
                  for i in range(n)]
        half = n // 2
        jobs = [("batch", orders[i:i + 50]) for i in range(0, half, 50)]
        jobs += [("one", [o]) for o in orders[half:]]
        acked, failures = [], []
        lock = threading.Lock()
        it = iter(enumerate(jobs))

        def worker():
            while True:
                with lock:
                    nxt = next(it, None)
                if nxt is None:
                    return
                k, (kind, batch) = nxt
                d = daemons[k % len(daemons)]
                try:
                    if kind == "batch":
                        st, _, body = d.api("POST", "/v1/orders/batch",
                                            json={"orders": batch},
                                            timeout=30)
                        res = body.get("results", []) if st == 200 and \
                            isinstance(body, dict) else []
                        with lock:
                            if st != 200:
                                failures.append((st, body))
                            for o, r in zip(batch, res):
                                if r.get("status") in (200, 201):
                                    acked.append(o["id"])
                                else:
                                    failures.append((r.get("status"), r))
                    else:
                        st, _, body = d.api("POST", "/v1/orders",
                                            json=batch[0], timeout=30)
                        with lock:
                            if st in (200, 201):
                                acked.append(batch[0]["id"])
                            else:
                                failures.append((st, body))
                except Exception as e:  # a hung or reset request
                    with lock:
                        failures.append((None, repr(e)))

        ts = [threading.Thread(target=worker) for _ in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(120)
        return acked, failures

    def test_two_replicas(self):
        a = self.replica("pgb-a")
        b = self.replica("pgb-b")
        stock = {"SKU-%02d" % i: 150 for i in range(N_SKUS)}
        for sku, n in stock.items():
            H.set_stock(a.client, sku, n)

        peak = [0]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], server_sessions(self.db))
                time.sleep(0.05)
        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            acked, failures = self.submit_all([a, b], 1200, "pgb")
            self.assertEqual(failures, [])
            self.assertEqual(len(acked), 1200)
            done = H.wait_terminal(a.client, acked, timeout=120)
        finally:
            stop.set()
            sampler.join()
        self.assertGreaterEqual(peak[0], 1)
        self.assertLessEqual(peak[0], POOL_SIZE,
                             "more server sessions than the pool")

        # Stock reserved exactly: every completed order's items taken once,
        # nothing for the others.
        by_status = {}
        taken = {sku: 0 for sku in stock}
        for oid, o in done.items():
            by_status[o["status"]] = by_status.get(o["status"], 0) + 1
            if o["status"] == "completed":
                for it in o["items"]:
                    taken[it["sku"]] += it["qty"]
        self.assertEqual(set(by_status) - {"completed", "rejected"}, set(),
                         by_status)
        self.assertGreater(by_status.get("completed", 0), 100, by_status)
        self.assertGreater(by_status.get("rejected", 0), 100, by_status)
        for sku, n in stock.items():
            st, _, p = a.api("GET", "/v1/products/%s" % sku)
            self.assertEqual(st, 200)
            self.assertEqual(p["stock"], n - taken[sku], sku)
        import psycopg2
        conn = psycopg2.connect(self.db.uri)
        with conn.cursor() as cur:
            cur.execute("SELECT o.status, count(*) FROM reservations r "
                        "JOIN orders o ON o.id = r.order_id GROUP BY 1")
            res = dict(cur.fetchall())
        conn.close()
        n_items = sum(len(o["items"]) for o in done.values()
                      if o["status"] == "completed")
        self.assertEqual(res, {"completed": n_items})

        rc, out = H.verify(self.db.uri)
        self.assertEqual(rc, 0, out)
        p = H.orderctl(["verify", "--database",
                        self.bouncer.uri(dbname(self.db))],
                       env={"ORDERD_PG_POOLER": "transaction"})
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

        # No session state: hold every server session at once (an open
        # transaction each) and read the settings orderd would have SET
        # per session without ORDERD_PG_POOLER=transaction.
        conns = [psycopg2.connect(self.bouncer.uri(dbname(self.db)))
                 for _ in range(POOL_SIZE)]
        try:
            for c in conns:
                with c.cursor() as cur:
                    cur.execute("SELECT current_setting('statement_timeout'),"
                                " current_setting('lock_timeout'),"
                                " current_setting('client_connection_"
                                "check_interval')")
                    self.assertEqual(cur.fetchone(), ("0", "0", "0"))
        finally:
            for c in conns:
                c.close()

    def deadline_hits(self, d):
        return H.metric_sum(d.metrics(),
                            "orderd_store_deadline_exceeded_total") or 0

    def test_settings_per_transaction(self):
        import psycopg2
        a = self.replica("pgb-set", env={"ORDERD_BUSY_TIMEOUT_MS": "300",
                                         "ORDERD_STORE_DEADLINE_MS": "4000"})
        H.set_stock(a.client, "SKU-L", 5)
        st, _, lk = a.api("POST", "/v1/locks/L/acquire",
                          json={"owner": "o1", "ttl_ms": 100})
        self.assertEqual(st, 200, lk)
        time.sleep(0.2)  # expired: the next acquire updates the row
        hits0 = self.deadline_hits(a)
        holder = psycopg2.connect(self.db.uri)
        try:
            with holder.cursor() as cur:
                cur.execute("SELECT 1 FROM products WHERE sku = 'SKU-L' "
                            "FOR UPDATE")
                cur.execute("SELECT 1 FROM locks WHERE name = 'L' "
                            "FOR UPDATE")
            for what, method, path, body in (
                    ("transaction", "PUT", "/v1/products/SKU-L",
                     {"stock": 7}),
                    ("single statement", "POST", "/v1/locks/L/acquire",
                     {"owner": "o2", "ttl_ms": 10000})):
                t0 = time.monotonic()
                st, _, resp = a.api(method, path, json=body, timeout=30)
                el = time.monotonic() - t0
                self.assertEqual(st, 503, "%s: %s %r" % (what, st, resp))
                self.assertLess(el, 2.0, "%s: lock_timeout did not end the "
                                "wait (%.1fs)" % (what, el))
        finally:
            holder.rollback()
            holder.close()
        self.assertEqual(self.deadline_hits(a), hits0)
        st, _, p = a.api("PUT", "/v1/products/SKU-L", json={"stock": 7})
        self.assertEqual((st, p["stock"]), (200, 7))
        st, _, lk = a.api("POST", "/v1/locks/L/acquire",
                          json={"owner": "o2", "ttl_ms": 10000})
        self.assertEqual(st, 200, lk)

    def test_deadline_pool_exhausted(self):
        import psycopg2
        deadline_s = 1.5
        a = self.replica("pgb-dl", env={"ORDERD_STORE_DEADLINE_MS": "1500"})
        H.set_stock(a.client, "SKU-00", 100)
        hits0 = self.deadline_hits(a)
        holders = []
        try:
            for _ in range(POOL_SIZE):
                c = psycopg2.connect(self.bouncer.uri(dbname(self.db)))
                with c.cursor() as cur:
                    cur.execute("SELECT 1")  # BEGIN + SELECT: holds a session
                holders.append(c)
            for i in range(3):
                t0 = time.monotonic()
                st, hdr, body = a.api("POST", "/v1/orders",
                                      json=H.order("dl-%d" % i,
                                                   items=[{"sku": "SKU-00",
                                                           "qty": 1}]),
                                      timeout=30)
                el = time.monotonic() - t0
                self.assertEqual(st, 503, body)
                self.assertLessEqual(el, deadline_s + 1.0, el)
            t0 = time.monotonic()
            r = H.requests.get(a.url + "/readyz", timeout=30)
            self.assertEqual(r.status_code, 503)
            self.assertLessEqual(time.monotonic() - t0, deadline_s + 1.0)
        finally:
            for c in holders:
                c.rollback()
                c.close()
        self.assertGreater(self.deadline_hits(a), hits0)
        ids = []
        for i in range(3):
            st, _, body = a.api("POST", "/v1/orders",
                                json=H.order("dl-%d" % i,
                                             items=[{"sku": "SKU-00",
                                                     "qty": 1}]))
            self.assertIn(st, (200, 201), body)
            ids.append(body["id"])
        done = H.wait_terminal(a.client, ids, timeout=30)
        self.assertEqual({o["status"] for o in done.values()}, {"completed"})
        rc, out = H.verify(self.db.uri)
        self.assertEqual(rc, 0, out)

    def test_without_setting_fails(self):
        self.clean_exit = False  # draining against a broken store
        try:
            a = self.replica("pgb-none-a", pooler="none")
            b = self.replica("pgb-none-b", pooler="none")
        except H.DaemonError:
            return  # not even starting is failing too
        ok = True
        try:
            for i in range(N_SKUS):
                H.set_stock(a.client, "SKU-%02d" % i, 150)
        except AssertionError:
            ok = False
        acked, failures = self.submit_all([a, b], 400, "none")
        finished = True
        try:
            H.wait_terminal(a.client, acked, timeout=20)
        except AssertionError:
            finished = False
        self.assertFalse(ok and not failures and finished,
                         "orderd with ORDERD_PG_POOLER=none worked behind "
                         "transaction pooling: this test no longer shows "
                         "what the setting is for")


if __name__ == "__main__":
    H.main()
