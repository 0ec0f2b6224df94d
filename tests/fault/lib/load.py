"""load: the suite's clients, and the history they record.

Each client thread submits orders in a closed loop, round-robin over the
replicas it may reach. Every attempt is one operation in the history:

    {"op": "submit", "id": ..., "replica": ..., "invoke": t0, "end": t1,
     "outcome": "ok" | "fail" | "unknown", "status": HTTP status or None}

ok is 201 or 200 (acknowledged: stored, G1), fail a definite refusal (a 4xx
other than 408/429: the order is not stored), unknown everything else (a
timeout, a broken connection, 429, 5xx: the order may or may not be
stored). Like a careful real client, a thread resubmits an order whose
outcome is unknown, with the same id (submit is idempotent, G2), until it
is acknowledged or refused or its deadline passes. One order in ten is
submitted to two replicas at the same moment (the checker allows one 201
per id in the whole history), and another one in ten is submitted once
more after its acknowledgement, to another replica, which must answer 200
with the same order.

Times are time.time() (wall clock, comparable with the database's
millisecond timestamps) for the throughput windows.
"""
import random
import threading
import time

import requests

SKUS_PLENTY = ["sku-%02d" % i for i in range(8)]
SKUS_SCARCE = ["scarce-%d" % i for i in range(2)]


def make_order(oid, rnd):
    items = {}
    for _ in range(rnd.randint(1, 3)):
        sku = rnd.choice(SKUS_SCARCE if rnd.random() < 0.1 else SKUS_PLENTY)
        items[sku] = items.get(sku, 0) + rnd.randint(1, 3)
    return {"id": oid, "customer": "cust-%d" % rnd.randint(1, 50),
            "items": [{"sku": s, "qty": q} for s, q in sorted(items.items())]}


class Load:
    def __init__(self, targets, tag, threads=8, timeout=5.0, deadline=60.0,
                 rate=None):
        """targets: a callable returning the list of base URLs clients may
        use now. rate: orders per second per thread (None: as fast as the
        replicas answer)."""
        self.targets = targets
        self.tag = tag
        self.n_threads = threads
        self.timeout = timeout
        self.deadline = deadline
        self.rate = rate
        self.lock = threading.Lock()
        self.history = []
        self.orders = {}          # id -> submitted body
        self.unexpected = []      # (id, status, body): answers no client expects
        self.stop_ev = threading.Event()
        self.threads = []

    def start(self):
        for i in range(self.n_threads):
            t = threading.Thread(target=self._run, args=(i,), daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def stop(self, timeout=None):
        """Stops invoking new orders; threads finish resubmitting the ones
        in flight (bounded by the per-order deadline)."""
        self.stop_ev.set()
        for t in self.threads:
            t.join(timeout if timeout is not None else self.deadline + 30)

    def _record(self, op):
        with self.lock:
            self.history.append(op)

    def _attempt(self, s, url, order, rid):
        t0 = time.time()
        op = {"op": "submit", "id": order["id"], "replica": url,
              "invoke": t0, "status": None}
        try:
            r = s.post(url + "/v1/orders", json=order, timeout=self.timeout)
            op["status"] = r.status_code
            if r.status_code in (200, 201):
                op["outcome"] = "ok"
                try:
                    body = r.json()
                except ValueError:
                    body = None
                if not body or body.get("id") != order["id"]:
                    with self.lock:
                        self.unexpected.append((order["id"], r.status_code,
                                                r.text[:200]))
            elif 400 <= r.status_code < 500 and r.status_code not in (408,
                                                                      429):
                op["outcome"] = "fail"
                with self.lock:
                    self.unexpected.append((order["id"], r.status_code,
                                            r.text[:200]))
            else:
                op["outcome"] = "unknown"
        except requests.RequestException:
            op["outcome"] = "unknown"
        op["end"] = time.time()
        self._record(op)
        return op

    def _run(self, idx):
        rnd = random.Random("%s-%d" % (self.tag, idx))
        s = requests.Session()
        n = 0
        k = idx
        while not self.stop_ev.is_set():
            t_start = time.monotonic()
            oid = "%s-%d-%d" % (self.tag, idx, n)
            n += 1
            order = make_order(oid, rnd)
            with self.lock:
                self.orders[oid] = order
            if n % 10 == 0:
                # Submitted twice at the same moment, to two replicas:
                # one may create it (201), the other must replay it.
                urls = self.targets()
                twin = threading.Thread(target=self._attempt, args=(
                    requests.Session(), urls[(k + 1) % len(urls)], order,
                    idx))
                twin.start()
            t_end = time.monotonic() + self.deadline
            attempt = 0
            while True:
                urls = self.targets()
                k += 1
                url = urls[k % len(urls)]
                op = self._attempt(s, url, order, idx)
                if op["outcome"] != "unknown":
                    break
                s.close()
                s = requests.Session()
                if time.monotonic() > t_end:
                    break
                attempt += 1
                time.sleep(rnd.uniform(0, min(1.0, 0.05 * 2 ** attempt)))
            if n % 10 == 0:
                twin.join()
            if op["outcome"] == "ok" and n % 10 == 5:
                urls = self.targets()
                again = self._attempt(s, urls[(k + 1) % len(urls)], order,
                                      idx)
                if again["outcome"] == "ok" and again["status"] != 200:
                    with self.lock:
                        self.unexpected.append((oid, again["status"],
                                                "resubmission not 200"))
            if self.rate:
                left = 1.0 / self.rate - (time.monotonic() - t_start)
                if left > 0:
                    self.stop_ev.wait(left)

    # ------------------------------------------------------------ figures

    def acked(self):
        with self.lock:
            return {op["id"] for op in self.history if op["outcome"] == "ok"}

    def counts(self):
        """Operations attempted, acknowledged, failed, indeterminate."""
        with self.lock:
            ops = list(self.history)
        c = {"ok": 0, "fail": 0, "unknown": 0}
        for op in ops:
            c[op["outcome"]] += 1
        return len(ops), c["ok"], c["fail"], c["unknown"]

    def ack_times(self):
        with self.lock:
            return sorted(op["end"] for op in self.history
                          if op["outcome"] == "ok")


class Reads:
    """Readers beside the load: one thread per target, in a closed loop,
    GET /v1/orders/<id> of an acknowledged order. A read reaches the store
    through its connection pool, not through the submit batcher (whose
    answers the HTTP layer bounds by itself), so only the store's own
    deadline keeps a read from hanging. History entries are like the
    load's: {"op": "read", "id", "replica", "invoke", "end", "status"}."""

    def __init__(self, load, timeout=10.0):
        self.load = load
        self.timeout = timeout
        self.history = []
        self.lock = threading.Lock()
        self.stop_ev = threading.Event()
        self.threads = []

    def start(self):
        for url in self.load.targets():
            t = threading.Thread(target=self._run, args=(url,), daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(self.timeout + 5)

    def _run(self, url):
        s = requests.Session()
        while not self.stop_ev.is_set():
            acked = sorted(self.load.acked())
            if not acked:
                self.stop_ev.wait(0.1)
                continue
            oid = acked[-1]
            op = {"op": "read", "id": oid, "replica": url,
                  "invoke": time.time(), "status": None}
            try:
                r = s.get(url + "/v1/orders/" + oid, timeout=self.timeout)
                op["status"] = r.status_code
            except requests.RequestException:
                s.close()
                s = requests.Session()
            op["end"] = time.time()
            with self.lock:
                self.history.append(op)
            self.stop_ev.wait(0.1)
