"""test_locks_replicas: named locks (leases with fencing tokens) across
replicas. Four orderd processes share one database (on SQLite one file
opened by four processes, which is what the lock semantics need; on
PostgreSQL a fresh database in the shared cluster; nothing is restarted).

- 16 threads, released by one barrier, acquire the same lock through
  different replicas: exactly one 200, the others 409 lock_held naming the
  winner (several rounds).
- Fences of successive grants (after a release or an expiry, through any
  replica, for any lock) strictly increase.
- A stale fence can neither renew nor release (409 lock_lost) once another
  replica granted a newer one, and the newer holder is untouched.
- An acquire with wait_ms through replica B is granted soon after the
  holder releases through replica C.
"""

import os
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import replica_helpers as R  # noqa: E402
H = R.H

N_REPLICAS = 4
N_THREADS = 16


def err_code(body):
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return body["error"].get("code")
    return None


class LocksReplicasTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.db = H.Database("locksrep")
        try:
            cls.ds = R.start_replicas(cls.db.uri, N_REPLICAS, "l")
        except Exception:
            cls.db.drop()
            raise

    @classmethod
    def tearDownClass(cls):
        rcs = []
        for d in cls.ds:
            rcs.append(d.stop(timeout=20))
        for d in cls.ds:
            d.kill()
        try:
            rc, out = H.verify(cls.db.uri)
        finally:
            cls.db.drop()
        if rc != 0 or any(c != 0 for c in rcs):
            raise AssertionError("drain exit codes %r, verify %d:\n%s"
                                 % (rcs, rc, out))

    def setUp(self):
        for d in self.ds:
            self.assertTrue(d.alive(), "%s died:\n%s"
                            % (d.name, H.log_tail(d.log_path, 30)))
        self.run_id = H.rand_suffix(6)

    def rep(self, i):
        return self.ds[i % N_REPLICAS]

    def acquire(self, i, name, owner, ttl_ms=10000, wait_ms=None, timeout=60):
        body = {"owner": owner, "ttl_ms": ttl_ms}
        if wait_ms is not None:
            body["wait_ms"] = wait_ms
        return self.rep(i).api("POST", "/v1/locks/%s/acquire" % name,
                               json=body, timeout=timeout)

    def renew(self, i, name, owner, fence, ttl_ms=10000):
        return self.rep(i).api("POST", "/v1/locks/%s/renew" % name,
                               json={"owner": owner, "fence": fence,
                                     "ttl_ms": ttl_ms})

    def release(self, i, name, owner, fence):
        return self.rep(i).api("POST", "/v1/locks/%s/release" % name,
                               json={"owner": owner, "fence": fence})

    def get(self, i, name):
        return self.rep(i).api("GET", "/v1/locks/%s" % name)

    def wait_free(self, i, name, timeout=10):
        """Waits until GET says the lock is free (404), judged by the
        store's clock through replica i."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            st, _, body = self.get(i, name)
            if st == 404:
                return
            self.assertEqual(st, 200, body)
            time.sleep(0.05)
        self.fail("lock %s not free after %ds" % (name, timeout))

    # ------------------------------------------------------------ tests

    def test_race_exactly_one_winner(self):
        name = "race-" + self.run_id
        last_fence = 0
        for rnd in range(5):
            bar = threading.Barrier(N_THREADS)
            res = [None] * N_THREADS

            def one(t):
                try:
                    bar.wait(30)
                except threading.BrokenBarrierError:
                    pass
                try:
                    res[t] = self.acquire(t, name, "own-%d-%d" % (rnd, t))
                except Exception as e:  # noqa: BLE001
                    res[t] = (None, None, repr(e))

            ths = [threading.Thread(target=one, args=(t,), daemon=True)
                   for t in range(N_THREADS)]
            for t in ths:
                t.start()
            for t in ths:
                t.join(60)
            self.assertFalse(any(t.is_alive() for t in ths), "acquire hung")
            wins = [(t, r[2]) for t, r in enumerate(res) if r[0] == 200]
            self.assertEqual(len(wins), 1, "round %d: %d winners: %r"
                             % (rnd, len(wins), [(t, r[0], r[2]) for t, r
                                                 in enumerate(res)]))
            t_win, won = wins[0]
            self.assertEqual(won["owner"], "own-%d-%d" % (rnd, t_win))
            self.assertEqual(won["name"], name)
            self.assertGreater(won["fence"], last_fence)
            last_fence = won["fence"]
            for t, r in enumerate(res):
                if t == t_win:
                    continue
                self.assertEqual((r[0], err_code(r[2])), (409, "lock_held"),
                                 "round %d thread %d: %r" % (rnd, t, r))
                self.assertEqual(r[2].get("holder"), won["owner"], r)
            # Every replica sees the same holder.
            for i in range(N_REPLICAS):
                st, _, body = self.get(i, name)
                self.assertEqual(st, 200, body)
                self.assertEqual((body["owner"], body["fence"]),
                                 (won["owner"], won["fence"]))
            st, _, body = self.release(t_win + 1, name, won["owner"],
                                       won["fence"])
            self.assertEqual(st, 204, body)

    def test_fences_increase_across_replicas(self):
        names = ["fa-" + self.run_id, "fb-" + self.run_id]
        fences = []
        for k in range(12):
            name = names[k % 2]
            owner = "o-%d" % k
            st, _, g = self.acquire(k, name, owner,
                                    ttl_ms=150 if k % 3 == 2 else 10000)
            self.assertEqual(st, 200, (k, g))
            fences.append((k, name, g["fence"]))
            if k % 3 == 2:
                # Let it expire (store's clock), checked via another replica.
                self.wait_free(k + 1, name)
            else:
                st, _, b = self.release(k + 2, name, owner, g["fence"])
                self.assertEqual(st, 204, b)
        fs = [f for _, _, f in fences]
        self.assertEqual(fs, sorted(set(fs)),
                         "fences not strictly increasing across replicas "
                         "and locks: %r" % fences)
        # An expired lock re-acquired on the same name also moves forward.
        st, _, g = self.acquire(1, names[0], "o-last")
        self.assertEqual(st, 200, g)
        self.assertGreater(g["fence"], fs[-1])
        self.release(2, names[0], "o-last", g["fence"])

    def test_stale_fence_cannot_renew_or_release(self):
        name = "stale-" + self.run_id
        # X holds through A with a short lease and lets it expire.
        st, _, x = self.acquire(0, name, "svc-x", ttl_ms=200)
        self.assertEqual(st, 200, x)
        self.wait_free(1, name)
        # Y is granted a newer fence through B.
        st, _, y = self.acquire(1, name, "svc-y", ttl_ms=20000)
        self.assertEqual(st, 200, y)
        self.assertGreater(y["fence"], x["fence"])
        # X, stale, tries through C and D (and A, its own replica).
        for i in (2, 3, 0):
            st, _, b = self.renew(i, name, "svc-x", x["fence"])
            self.assertEqual((st, err_code(b)), (409, "lock_lost"),
                             "stale renew via %s: %r" % (self.rep(i).name, b))
            st, _, b = self.release(i, name, "svc-x", x["fence"])
            self.assertEqual((st, err_code(b)), (409, "lock_lost"),
                             "stale release via %s: %r" % (self.rep(i).name, b))
        # Y's old owner name with the stale fence does not work either.
        st, _, b = self.release(3, name, "svc-y", x["fence"])
        self.assertEqual((st, err_code(b)), (409, "lock_lost"), b)
        # Same owner re-granted: its own older fence is stale too.
        st, _, b = self.release(2, name, "svc-y", y["fence"])
        self.assertEqual(st, 204, b)
        st, _, x2 = self.acquire(3, name, "svc-x", ttl_ms=200)
        self.assertEqual(st, 200, x2)
        self.wait_free(0, name)
        st, _, x3 = self.acquire(1, name, "svc-x", ttl_ms=20000)
        self.assertEqual(st, 200, x3)
        self.assertGreater(x3["fence"], x2["fence"])
        st, _, b = self.renew(2, name, "svc-x", x2["fence"])
        self.assertEqual((st, err_code(b)), (409, "lock_lost"), b)
        st, _, b = self.release(0, name, "svc-x", x2["fence"])
        self.assertEqual((st, err_code(b)), (409, "lock_lost"), b)
        # The current holder is untouched and can renew through any replica.
        for i in range(N_REPLICAS):
            st, _, b = self.get(i, name)
            self.assertEqual((st, b.get("owner"), b.get("fence")),
                             (200, "svc-x", x3["fence"]), b)
        st, _, b = self.renew(3, name, "svc-x", x3["fence"])
        self.assertEqual(st, 200, b)
        self.assertEqual(b.get("fence", x3["fence"]), x3["fence"])
        st, _, b = self.release(2, name, "svc-x", x3["fence"])
        self.assertEqual(st, 204, b)
        # A released fence is stale as well.
        st, _, b = self.renew(1, name, "svc-x", x3["fence"])
        self.assertEqual((st, err_code(b)), (409, "lock_lost"), b)

    def test_wait_granted_after_release_elsewhere(self):
        name = "wait-" + self.run_id
        st, _, h = self.acquire(0, name, "holder", ttl_ms=30000)
        self.assertEqual(st, 200, h)
        res = {}

        def waiter():
            t0 = time.monotonic()
            try:
                res["r"] = self.acquire(1, name, "waiter", ttl_ms=10000,
                                        wait_ms=15000, timeout=60)
            except Exception as e:  # noqa: BLE001
                res["r"] = (None, None, repr(e))
            res["t"] = time.monotonic()
            res["took"] = res["t"] - t0

        th = threading.Thread(target=waiter, daemon=True)
        th.start()
        time.sleep(1.0)
        self.assertTrue(th.is_alive(), "wait_ms acquire answered while the "
                        "lock is held: %r" % res)
        st, _, b = self.release(2, name, "holder", h["fence"])
        t_rel = time.monotonic()
        self.assertEqual(st, 204, b)
        th.join(30)
        self.assertFalse(th.is_alive(), "wait_ms acquire hung")
        st, _, w = res["r"]
        self.assertEqual(st, 200, "waiter via B not granted after release "
                         "via C: %r" % (res,))
        lag = res["t"] - t_rel
        self.assertLess(lag, 3.0, "granted %.2fs after the release" % lag)
        self.assertEqual(w["owner"], "waiter")
        self.assertGreater(w["fence"], h["fence"])
        st, _, g = self.get(3, name)
        self.assertEqual((st, g.get("owner"), g.get("fence")),
                         (200, "waiter", w["fence"]))
        # And a wait that times out answers 409 lock_held with the holder.
        t0 = time.monotonic()
        st, _, b = self.acquire(2, name, "late", wait_ms=500)
        took = time.monotonic() - t0
        self.assertEqual((st, err_code(b), b.get("holder")),
                         (409, "lock_held", "waiter"), b)
        self.assertGreaterEqual(took, 0.4)
        self.release(3, name, "waiter", w["fence"])


if __name__ == "__main__":
    H.main()
