"""test_store_freeze: a database that stops answering without closing its
sockets does not hang orderd (PostgreSQL only: SQLite is a local file).

One replica with ORDERD_STORE_DEADLINE_MS=1500 on a fresh database in a
PRIVATE throwaway cluster (freezing the shared one would stall every other
PostgreSQL test CTest runs beside this one). Four client threads submit
continuously. The postmaster and every process whose parent it is (the
backends and auxiliary processes) are SIGSTOPped for FREEZE_S = 6 s, four
times the deadline, then SIGCONTed - always, in a finally block.

What must hold:
- every submit is answered within the deadline + 1 s, before, during and
  after the freeze: 201/200, or 503 with Retry-After; never a hang, never a
  connection error, never another status;
- /readyz turns 503 during the freeze, and back to 200 by itself after it;
- after SIGCONT the clients retry every 503'd order by id, and every order
  is acknowledged (201/200), stored once with its content and completed,
  stock is conserved and `orderctl verify` exits 0;
- orderd_store_deadline_exceeded_total and
  orderd_submit_deadline_expired_total moved.
"""

import os
import signal
import sys
import threading
import time
import unittest

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import replica_helpers as R  # noqa: E402
H = R.H
pgcluster = R.pgcluster

DEADLINE_MS = 1500
BOUND_S = DEADLINE_MS / 1000.0 + 1.0   # every answer within this
FREEZE_S = 6.0
N_CLIENTS = 4
REQ_TIMEOUT_S = 15                      # far past BOUND_S: a hang shows


def postmaster_pid(cluster_dir):
    home = pgcluster.home_of(os.path.abspath(cluster_dir))
    with open(os.path.join(home, "data", "postmaster.pid")) as f:
        return int(f.readline().strip())


def children_of(ppid):
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses.
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == ppid:
            pids.append(int(name))
    return pids


class Freezer:
    """SIGSTOPs a cluster's postmaster and its children; thaw() SIGCONTs
    every process it stopped (idempotent)."""

    def __init__(self, cluster_dir):
        self.dir = cluster_dir
        self.stopped = []

    def freeze(self):
        pm = postmaster_pid(self.dir)
        # The postmaster first, so it forks no child we would miss.
        os.kill(pm, signal.SIGSTOP)
        self.stopped.append(pm)
        for pid in children_of(pm):
            try:
                os.kill(pid, signal.SIGSTOP)
                self.stopped.append(pid)
            except ProcessLookupError:
                pass
        return len(self.stopped)

    def thaw(self):
        # Children first: the postmaster wakes to running backends.
        for pid in reversed(self.stopped):
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        self.stopped = []


def timed_readyz(d):
    t0 = time.monotonic()
    try:
        st = requests.get(d.url + "/readyz", timeout=REQ_TIMEOUT_S).status_code
    except requests.RequestException as e:
        st = repr(e)
    return st, time.monotonic() - t0


@unittest.skipUnless(H.BACKEND == "postgres",
                     "freezes the PostgreSQL server: PostgreSQL only")
class StoreFreezeTest(unittest.TestCase):
    def setUp(self):
        self.cluster = R.Cluster("frz")
        self.freezer = Freezer(self.cluster.dir)
        self.ds = []

    def tearDown(self):
        self.freezer.thaw()
        for d in self.ds:
            d.kill()
        self.cluster.close()

    def test_frozen_database(self):
        uri = self.cluster.create_db("freeze")
        self.ds = R.start_replicas(
            uri, 1, "z", {"ORDERD_STORE_DEADLINE_MS": str(DEADLINE_MS)})
        d = self.ds[0]
        run = H.rand_suffix(5)
        skus = ["FZ-%s-%d" % (run, i) for i in range(3)]
        initial = {s: 10 ** 8 for s in skus}
        for s in skus:
            H.set_stock(d.client, s, initial[s])

        lock = threading.Lock()
        orders = []        # every order submitted
        answers = {}       # id -> [(status, body)] (R.check_final's shape)
        slow = []          # (id, status, seconds) past BOUND_S
        unexpected = []    # (id, status, detail)
        to_retry = []      # ids answered 503
        frozen = threading.Event()
        during = {"503": 0, "ack": 0}
        stop = threading.Event()

        def post(sess, o):
            t0 = time.monotonic()
            try:
                r = sess.post(d.url + "/v1/orders", json=o,
                              timeout=REQ_TIMEOUT_S)
                st = r.status_code
                try:
                    body = r.json()
                except ValueError:
                    body = r.text
                ra = r.headers.get("Retry-After")
            except requests.RequestException as e:
                st, body, ra = "error", repr(e), None
            took = time.monotonic() - t0
            with lock:
                answers.setdefault(o["id"], []).append((st, body))
                if took > BOUND_S:
                    slow.append((o["id"], st, round(took, 2)))
                if st == 503:
                    if ra is None:
                        unexpected.append((o["id"], st, "no Retry-After"))
                    if frozen.is_set():
                        during["503"] += 1
                elif st in (200, 201):
                    if frozen.is_set():
                        during["ack"] += 1
                else:
                    unexpected.append((o["id"], st, body))
            return st

        def client(ci):
            sess = requests.Session()
            k = 0
            while not stop.is_set():
                i = k * N_CLIENTS + ci
                o = {"id": "fz-%s-%05d" % (run, i), "customer": "c",
                     "items": [{"sku": skus[i % 3], "qty": 1 + i % 2}]}
                with lock:
                    orders.append(o)
                if post(sess, o) == 503:
                    with lock:
                        to_retry.append(o)
                k += 1
                time.sleep(0.02)

        threads = [threading.Thread(target=client, args=(c,), daemon=True)
                   for c in range(N_CLIENTS)]
        for t in threads:
            t.start()
        readyz_frozen = []
        try:
            time.sleep(2.0)
            t_freeze = time.monotonic()
            n_stopped = self.freezer.freeze()
            frozen.set()
            while time.monotonic() - t_freeze < FREEZE_S:
                readyz_frozen.append(timed_readyz(d))
                time.sleep(0.2)
        finally:
            frozen.clear()
            self.freezer.thaw()
        up = R.wait_readyz(self.ds, 200, 30)
        time.sleep(2.0)
        stop.set()
        for t in threads:
            t.join(REQ_TIMEOUT_S + 5)
        self.assertFalse(any(t.is_alive() for t in threads))

        # Retries by id of every 503: acknowledged now, the same order.
        sess = requests.Session()
        for o in to_retry:
            t_end = time.monotonic() + 30
            while post(sess, o) not in (200, 201) and \
                    time.monotonic() < t_end:
                time.sleep(0.1)

        m = d.metrics()
        hits = H.metric_sum(m, "orderd_store_deadline_exceeded_total") or 0
        late = H.metric_sum(m, "orderd_submit_deadline_expired_total") or 0
        print("\nfreeze summary: stopped %d processes for %.1fs; orders=%d "
              "503s=%d (during the freeze %d, acks during it %d) "
              "deadline_hits=%d submits_expired=%d readyz during=%r "
              "readyz 200 %.2fs after thaw"
              % (n_stopped, FREEZE_S, len(orders), len(to_retry),
                 during["503"], during["ack"], hits, late,
                 [(s, round(t, 2)) for s, t in readyz_frozen],
                 up if up is not None else -1), flush=True)

        self.assertEqual(slow[:10], [], "%d submits answered later than "
                         "deadline + 1 s = %.1fs (id, status, seconds)"
                         % (len(slow), BOUND_S))
        self.assertEqual(unexpected[:10], [], "answers other than 201/200 "
                         "or 503 with Retry-After")
        self.assertGreater(during["503"], 0, "no submit was answered 503 "
                           "while the database was frozen")
        self.assertIn(503, [s for s, _ in readyz_frozen],
                      "/readyz never 503 during the freeze: %r"
                      % readyz_frozen)
        slow_readyz = [(s, round(t, 2)) for s, t in readyz_frozen
                       if t > BOUND_S]
        self.assertEqual(slow_readyz, [], "/readyz slower than %.1fs"
                         % BOUND_S)
        self.assertIsNotNone(up, "/readyz not 200 within 30s of SIGCONT")
        self.assertGreater(hits, 0, "orderd_store_deadline_exceeded_total "
                           "did not move")
        self.assertGreater(late, 0, "orderd_submit_deadline_expired_total "
                           "did not move")

        unacked = [o["id"] for o in orders
                   if not any(w in (200, 201) for w, _ in answers[o["id"]])]
        self.assertEqual(unacked[:10], [], "%d orders never acknowledged "
                         "after the thaw" % len(unacked))
        two_201 = [i for i, a in answers.items()
                   if sum(1 for w, _ in a if w == 201) > 1]
        self.assertEqual(two_201[:10], [], "orders created twice")

        took, counts = R.wait_all_terminal(self.ds, 90)
        self.assertIsNotNone(took, "orders still pending/processing 90 s "
                             "after the thaw: %r" % counts)
        sub = type("Answers", (), {"answers": answers})()
        stored = R.check_final(self, d.client, orders, initial, sub,
                               allow_rejected=False)
        self.assertEqual(len(stored), len(orders))
        self.assertTrue(d.alive(), H.log_tail(d.log_path, 30))
        rc = d.stop(timeout=30)
        self.assertEqual(rc, 0, "drain exit %s:\n%s"
                         % (rc, H.log_tail(d.log_path, 30)))
        rc, out = H.verify(uri)
        self.assertEqual(rc, 0, "orderctl verify:\n" + out)


if __name__ == "__main__":
    H.main()
