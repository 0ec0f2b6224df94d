"""replica_helpers: what the multi-replica tests share (test_failover.py,
test_locks_replicas.py): a PostgreSQL cluster they may restart (a private
throwaway one by default: CTest runs other PostgreSQL tests concurrently
on the shared cluster, and restarting it under them would fail them
spuriously; ORDERD_TEST_PG_SHARED=1 uses the shared one), replicas started
under ids of their own, a submitter that retries 429/503 and connection
errors with full-jitter backoff and resubmits unacknowledged orders, and
the final checks (every acknowledged order terminal and stored as
submitted, stock conserved, `orderctl verify` clean).

The many-replica load test that used to live here (kill -9 of a replica
and an immediate database restart mid-run, duplicates sent to two
replicas at once) is now the fault suite's kill9, db-restart and mixed
scenarios (tests/fault/run), whose clients send one order in ten to two
replicas at the same moment.
"""

import atexit
import os
import random
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(TESTS, "integration"))
sys.path.insert(0, TESTS)
import harness as H  # noqa: E402
H.CHECK_CONTRACT = False  # harness.py: the contract is the integration tests'
import pgcluster  # noqa: E402

PGCLUSTER = os.path.join(TESTS, "pgcluster.py")
PY = "/usr/bin/python3"

LEASE_MS = 2000
SUBMIT_DEADLINE_S = 120  # one order's retries end after this
REQ_TIMEOUT_S = 30


# ---------------------------------------------------------------- cluster

class Cluster:
    """A PostgreSQL cluster the test may restart: a private one (default)
    or the shared $ORDERD_TEST_PGDIR one when ORDERD_TEST_PG_SHARED=1."""

    def __init__(self, name):
        self.private = os.environ.get("ORDERD_TEST_PG_SHARED") != "1"
        self.closed = False
        if self.private:
            self.dir = os.path.join(H.TMP, "pg-%s-%s" % (name, H.rand_suffix(5)))
            r = subprocess.run([PY, PGCLUSTER, "start", self.dir],
                               capture_output=True, text=True, timeout=120)
            # Stopped even when CTest's timeout ends us (the harness turns
            # SIGTERM into sys.exit, which runs atexit).
            atexit.register(self.close)
            if r.returncode != 0:
                raise AssertionError("pgcluster start failed:\n%s%s"
                                     % (r.stdout, r.stderr))
        else:
            self.dir = H.PGDIR
        with open(os.path.join(self.dir, "uri")) as f:
            self.base = f.read().strip()
        self.dbs = []

    def create_db(self, name):
        import psycopg2
        db = "t_%s_%s" % (name, H.rand_suffix())
        conn = psycopg2.connect(self.base, connect_timeout=10)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute('CREATE DATABASE "%s"' % db)
        finally:
            conn.close()
        self.dbs.append(db)
        u = urllib.parse.urlsplit(self.base)
        return urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + db,
                                        u.query, u.fragment))

    def restart_immediate(self):
        """`pgcluster.py restart DIR --immediate`; returns seconds taken."""
        t0 = time.monotonic()
        r = subprocess.run([PY, PGCLUSTER, "restart", self.dir, "--immediate"],
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise AssertionError("pgcluster restart failed:\n%s%s"
                                 % (r.stdout, r.stderr))
        return time.monotonic() - t0

    def stop_immediate(self):
        pgcluster.pg_stop(pgcluster.home_of(os.path.abspath(self.dir)),
                          immediate=True)

    def start(self):
        pgcluster.pg_start(pgcluster.home_of(os.path.abspath(self.dir)))

    def close(self):
        if self.closed:
            return
        self.closed = True
        if self.private:
            subprocess.run([PY, PGCLUSTER, "stop", self.dir],
                           capture_output=True, text=True, timeout=120)
            shutil.rmtree(self.dir, ignore_errors=True)
            return
        # Shared cluster: make sure it is up again, drop our databases.
        try:
            home = pgcluster.home_of(os.path.abspath(self.dir))
            if not pgcluster.running(home):
                pgcluster.pg_start(home)
            import psycopg2
            conn = psycopg2.connect(self.base, connect_timeout=10)
            conn.autocommit = True
            with conn.cursor() as cur:
                for db in self.dbs:
                    cur.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % db)
            conn.close()
        except Exception:
            pass


# ---------------------------------------------------------------- replicas

def replica_env(rid, extra=None):
    e = {"ORDERD_WORKERS": "2", "ORDERD_LEASE_MS": str(LEASE_MS),
         "ORDERD_REAP_MS": "250", "ORDERD_REPLICA_ID": rid,
         "ORDERD_HTTP_THREADS": "4"}
    e.update(extra or {})
    return e


def start_replicas(db_uri, n, prefix, extra=None):
    ds = []
    try:
        for i in range(n):
            rid = "%s%d" % (prefix, i)
            d = H.Daemon(db_uri, name="rep-" + rid, env=replica_env(rid, extra),
                         ready_timeout=30)
            ds.append(d)
            d.start()
    except Exception:
        for d in ds:
            d.kill()
        raise
    return ds


def readyz(d, timeout=3):
    try:
        return requests.get(d.url + "/readyz", timeout=timeout).status_code
    except requests.RequestException:
        return None


def wait_readyz(ds, want, timeout):
    """Waits until every replica in ds answers /readyz with want; returns
    the seconds it took, or None on timeout."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if all(readyz(d) == want for d in ds):
            return time.monotonic() - t0
        time.sleep(0.1)
    return None


def processed_total(d):
    try:
        return H.metric_sum(d.metrics(), "orderd_orders_processed_total") or 0
    except Exception:
        return None


def backoff(attempt, retry_after=None, base=0.05, cap=1.0):
    """Full jitter; a Retry-After (seconds) is honoured but capped so a
    bounded test does not sleep for long."""
    t = random.uniform(0, min(cap, base * (2 ** min(attempt, 10))))
    if retry_after:
        try:
            t = max(t, min(float(retry_after), cap))
        except ValueError:
            pass
    time.sleep(t)


class Submitter:
    """Submits orders through a list of Daemons (whose url may change when
    one is restarted), retrying connection errors, 429 and 503 until the
    order is acknowledged or SUBMIT_DEADLINE_S passes. Records every answer
    per order id (thread-safe)."""

    def __init__(self, replicas, deadline_s=SUBMIT_DEADLINE_S):
        self.replicas = replicas
        self.deadline_s = deadline_s
        self.lock = threading.Lock()
        self.answers = {}      # id -> list of (status|"conn"|"timeout", body)
        self.unexpected = []   # (id, replica, status, body): 4xx/5xx not 429/503
        self.local = threading.local()
        self.count_acked = 0
        self.count_503 = 0
        self.count_429 = 0
        self.count_conn = 0

    def session(self):
        s = getattr(self.local, "s", None)
        if s is None:
            s = requests.Session()
            self.local.s = s
        return s

    def _record(self, oid, what, body):
        with self.lock:
            self.answers.setdefault(oid, []).append((what, body))
            if what in (200, 201):
                self.count_acked += 1
            elif what == 503:
                self.count_503 += 1
            elif what == 429:
                self.count_429 += 1
            elif what in ("conn", "timeout"):
                self.count_conn += 1

    def submit(self, order, idx):
        """Returns the acknowledging status (201/200) or None."""
        oid = order["id"]
        t_end = time.monotonic() + self.deadline_s
        attempt = 0
        while time.monotonic() < t_end:
            d = self.replicas[idx % len(self.replicas)]
            retry_after = None
            try:
                r = self.session().post(d.url + "/v1/orders", json=order,
                                        timeout=REQ_TIMEOUT_S)
                st = r.status_code
                try:
                    body = r.json()
                except ValueError:
                    body = r.text
                self._record(oid, st, body)
                if st in (200, 201):
                    return st
                if st not in (429, 503):
                    with self.lock:
                        self.unexpected.append((oid, d.name, st, body))
                    return None
                retry_after = r.headers.get("Retry-After")
                if retry_after is None:
                    with self.lock:
                        self.unexpected.append((oid, d.name, st,
                                                "no Retry-After header"))
            except requests.Timeout:
                self._record(oid, "timeout", None)
                self.local.s = None
                idx += 1
            except requests.RequestException:
                # Killed replica, or one restarting on a new port: the
                # outcome is unknown, resubmit (elsewhere).
                self._record(oid, "conn", None)
                self.local.s = None
                idx += 1
            attempt += 1
            backoff(attempt, retry_after)
        return None


def get_json(d, path, timeout=30):
    r = requests.get(d.url + path, timeout=timeout)
    return r.status_code, (r.json() if r.content else None)


def stats_counts(d):
    st, body = get_json(d, "/v1/stats")
    if st != 200:
        return None
    return body["orders"]


def list_orders(client):
    return {o["id"]: o for o in H.list_all(client, "/v1/orders")}


def wait_all_terminal(ds, timeout):
    """Polls /v1/stats on any live replica until no order is pending or
    processing. Returns (seconds, last counts); seconds None on timeout."""
    t0 = time.monotonic()
    counts = None
    while time.monotonic() - t0 < timeout:
        for d in ds:
            if not d.alive():
                continue
            try:
                c = stats_counts(d)
            except (requests.RequestException, ValueError):
                c = None
            if c is not None:
                counts = c
                if c.get("pending", 0) == 0 and c.get("processing", 0) == 0:
                    return time.monotonic() - t0, c
                break
        time.sleep(0.5)
    return None, counts


def same_content(sub, stored):
    if stored.get("customer") != sub["customer"]:
        return False
    a = sorted((i["sku"], i["qty"]) for i in sub["items"])
    b = sorted((i["sku"], i["qty"]) for i in stored.get("items", []))
    return a == b and (stored.get("metadata") or {}) == (sub.get("metadata") or {})


def check_submissions(tc, sub, orders, dup_ids):
    """Shared checks of the Submitter's record: every order acknowledged,
    never two 201s for one id, duplicate pairs one 201 + one 200 when no
    attempt's outcome was unknown, no unexpected status."""
    tc.assertEqual(sub.unexpected[:10], [], "unexpected answers (%d), e.g. "
                   "the first ten" % len(sub.unexpected))
    unacked = [o["id"] for o in orders
               if not any(w in (200, 201) for w, _ in sub.answers.get(o["id"], []))]
    tc.assertEqual(unacked[:10], [], "%d orders never acknowledged within "
                   "%ds of retries (replicas did not recover?)"
                   % (len(unacked), SUBMIT_DEADLINE_S))
    two_201 = [oid for oid, a in sub.answers.items()
               if sum(1 for w, _ in a if w == 201) > 1]
    tc.assertEqual(two_201[:10], [], "%d orders created twice (two 201s)"
                   % len(two_201))
    bad_pairs = []
    for oid in dup_ids:
        a = sub.answers.get(oid, [])
        acks = [w for w, _ in a if w in (200, 201)]
        unknown = any(w in ("conn", "timeout", 503) for w, _ in a)
        if len(acks) != 2:
            bad_pairs.append((oid, [w for w, _ in a]))
        elif not unknown and sorted(acks) != [200, 201]:
            bad_pairs.append((oid, [w for w, _ in a]))
        elif unknown and acks.count(201) > 1:
            bad_pairs.append((oid, [w for w, _ in a]))
    tc.assertEqual(bad_pairs[:10], [], "%d duplicate pairs not answered one "
                   "201 + one 200" % len(bad_pairs))
    # Non-duplicates: 201, or 200 only after an attempt of unknown outcome.
    dset = set(dup_ids)
    bad_single = []
    for o in orders:
        if o["id"] in dset:
            continue
        a = sub.answers.get(o["id"], [])
        acks = [w for w, _ in a if w in (200, 201)]
        unknown = any(w in ("conn", "timeout", 503) for w, _ in a)
        if acks and acks[0] == 200 and not unknown:
            bad_single.append((o["id"], [w for w, _ in a]))
    tc.assertEqual(bad_single[:10], [], "%d orders answered 200 (replay) on "
                   "their first and only submission" % len(bad_single))
    # Every acknowledged body is the submitted order.
    bad_body = []
    by_id = {o["id"]: o for o in orders}
    for oid, a in sub.answers.items():
        for w, b in a:
            if w in (200, 201) and not (isinstance(b, dict) and
                                         b.get("id") == oid and
                                         same_content(by_id[oid], b)):
                bad_body.append((oid, w, b))
    tc.assertEqual(bad_body[:5], [], "acknowledged bodies differ from the "
                   "submitted orders")


def check_final(tc, client, orders, initial_stock, sub, allow_rejected=True):
    """Every acknowledged order is stored with its content and terminal;
    stock conserved per SKU. Returns the stored orders by id."""
    stored = list_orders(client)
    acked = [o for o in orders
             if any(w in (200, 201) for w, _ in sub.answers.get(o["id"], []))]
    missing = [o["id"] for o in acked if o["id"] not in stored]
    tc.assertEqual(missing[:10], [], "%d acknowledged orders LOST (G1)"
                   % len(missing))
    by_id = {o["id"]: o for o in orders}
    foreign = [i for i in stored if i not in by_id]
    tc.assertEqual(foreign[:10], [], "orders in the store nobody submitted")
    not_term = [(i, o["status"]) for i, o in stored.items()
                if o["status"] not in H.TERMINAL]
    tc.assertEqual(not_term[:10], [], "%d orders not terminal" % len(not_term))
    wrong = [i for i, o in stored.items() if not same_content(by_id[i], o)]
    tc.assertEqual(wrong[:10], [], "stored orders differ from the submitted")
    bad_status = []
    for i, o in stored.items():
        if o["status"] == "completed":
            continue
        if allow_rejected and o["status"] == "rejected" and \
                o.get("reason") == "insufficient_stock":
            continue
        bad_status.append((i, o["status"], o.get("reason"), o.get("attempts")))
    tc.assertEqual(bad_status[:10], [], "%d orders neither completed nor "
                   "rejected insufficient_stock" % len(bad_status))
    used = {}
    for o in stored.values():
        if o["status"] == "completed":
            for it in o["items"]:
                used[it["sku"]] = used.get(it["sku"], 0) + it["qty"]
    bad_stock = []
    for sku, init in sorted(initial_stock.items()):
        st, _, p = client.api("GET", "/v1/products/" + sku)
        tc.assertEqual(st, 200, p)
        want = init - used.get(sku, 0)
        if p["stock"] != want:
            bad_stock.append((sku, init, used.get(sku, 0), p["stock"], want))
        tc.assertGreaterEqual(p["stock"], 0, "stock negative (G4)")
    tc.assertEqual(bad_stock, [], "stock not conserved (sku, initial, "
                   "completed qty, final, expected): reserved twice or lost?")
    return stored


# ---------------------------------------------------------------- the test
