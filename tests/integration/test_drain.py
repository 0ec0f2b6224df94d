"""test_drain: graceful shutdown and configuration errors. SIGTERM while
orders are processing and a ?wait_ms request is suspended: /readyz turns
503, new submissions get 503 + Retry-After, the waiter is answered, the
process exits 0 within ORDERD_DRAIN_MS, and after a restart every
acknowledged order completes exactly once. SIGINT does the same. Bad
configuration exits 78 with a message on stderr."""

import os
import signal
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

DRAIN_MS = 6000


class DrainTest(unittest.TestCase):
    def setUp(self):
        self.db = H.Database("drain")
        self.ds = []

    def tearDown(self):
        for d in self.ds:
            d.kill()
        self.db.drop()

    def daemon(self, env):
        e = {"ORDERD_WORKERS": "2", "ORDERD_DRAIN_MS": str(DRAIN_MS)}
        e.update(env)
        d = H.Daemon(self.db.uri, name="drain", env=e)
        self.ds.append(d)
        return d.start()

    def test_sigterm_while_busy(self):
        d = self.daemon({"ORDERD_FAILPOINTS": "slow_process_ms=1000"})
        c = d.client
        run = H.rand_suffix(5)
        sku = "DR-" + run
        H.set_stock(c, sku, 1000000)
        orders = [H.order("dr-%s-%05d" % (run, i), items=[{"sku": sku, "qty": 1}])
                  for i in range(2000)]
        acked = []
        for k in range(0, len(orders), 1000):
            st, _, body = c.api("POST", "/v1/orders/batch",
                                json={"orders": orders[k:k + 1000]})
            self.assertEqual(st, 200, body)
            for o, r in zip(orders[k:k + 1000], body["results"]):
                self.assertIn(r["status"], (200, 201), r)
                acked.append(o["id"])
        # Let processing start, so batches are in hand.
        deadline = time.time() + 10
        while time.time() < deadline:
            st, _, body = c.api("GET", "/v1/orders?status=processing&limit=1")
            if body["orders"]:
                break
            time.sleep(0.02)
        self.assertTrue(body["orders"], "nothing processing")
        waiter = {}

        def wait_last():
            try:
                waiter["r"] = H.get_order(H.Client(d.url), acked[-1],
                                          wait_ms=25000)
            except Exception as e:
                waiter["r"] = e
            waiter["t"] = time.time()
        th = threading.Thread(target=wait_last)
        th.start()
        time.sleep(0.3)
        t_term = time.time()
        d.send_signal(signal.SIGTERM)
        saw_unready = saw_503_submit = False
        fresh = H.Client(d.url)
        while d.alive() and time.time() - t_term < DRAIN_MS / 1000.0 + 5:
            try:
                st, hdr, body = fresh.api("GET", "/readyz", timeout=2)
                # The signal is delivered asynchronously: /readyz may still
                # say 200 for a moment, but once it said 503 it must stay so.
                if st == 200 and not saw_unready and \
                        time.time() - t_term < 1.0:
                    time.sleep(0.01)
                    continue
                self.assertIn(st, (503,), "readyz during drain: %s" % st)
                saw_unready = True
                o = H.order("late-%s-%s" % (run, H.rand_suffix()),
                            items=[{"sku": sku, "qty": 1}])
                st, hdr, body = fresh.api("POST", "/v1/orders", json=o, timeout=2)
                self.assertEqual(st, 503, body)
                self.assertEqual(body["error"]["code"], "unavailable")
                self.assertIn("Retry-After", hdr)
                self.assertRegex(hdr["Retry-After"], r"^\d+$")
                saw_503_submit = True
                st, hdr, body = fresh.api("POST", "/v1/orders/batch",
                                          json={"orders": [o]}, timeout=2)
                self.assertEqual(st, 503, body)
            except (H.requests.ConnectionError, H.requests.Timeout):
                pass
            time.sleep(0.05)
        try:
            d.proc.wait(max(0.1, DRAIN_MS / 1000.0 + 3 - (time.time() - t_term)))
        except Exception:
            pass
        elapsed = time.time() - t_term
        rc = d.kill()
        self.assertEqual(rc, 0, "exit code after SIGTERM: %s\n%s"
                         % (rc, H.log_tail(d.log_path)))
        self.assertLess(elapsed, DRAIN_MS / 1000.0 + 3, "drain too slow")
        self.assertTrue(saw_unready, "never saw /readyz 503 during the drain")
        self.assertTrue(saw_503_submit, "never saw a 503 submission during drain")
        th.join(30)
        r = waiter.get("r")
        self.assertIsInstance(r, tuple, "suspended waiter not answered: %r" % (r,))
        self.assertIn(r[0], (200, 503), r)
        self.assertLess(waiter["t"] - t_term, DRAIN_MS / 1000.0 + 3)

        # Restart: every acknowledged order completes exactly once.
        d2 = self.daemon({})
        final = H.wait_terminal(d2.client, acked, timeout=120)
        self.assertEqual({f["status"] for f in final.values()}, {"completed"})
        st, _, p = d2.client.api("GET", "/v1/products/" + sku)
        self.assertEqual(p["stock"], 1000000 - len(acked))
        every = H.list_all(d2.client, limit=1000)
        self.assertEqual(len(every), len(acked), "a refused order was stored")
        self.assertEqual(d2.stop(sig=signal.SIGINT), 0)
        rc, out = H.verify(self.db.uri)
        self.assertEqual(rc, 0, out)

    def test_drain_deadline_is_a_promise(self):
        """A drain whose work outlives ORDERD_DRAIN_MS still exits 0 by the
        deadline; the orders still claimed come back through their leases."""
        drain_ms = 1500
        # The watchdog exits on purpose with a worker still inside its
        # store call; under TSan that is a "thread leak", not a race.
        d = self.daemon({"ORDERD_FAILPOINTS": "slow_process_ms=6000",
                         "ORDERD_DRAIN_MS": str(drain_ms),
                         "ORDERD_LEASE_MS": "1000",
                         "TSAN_OPTIONS": "report_thread_leaks=0"})
        c = d.client
        run = H.rand_suffix(5)
        sku = "DD-" + run
        H.set_stock(c, sku, 1000)
        ids = ["dd-%s-%d" % (run, i) for i in range(20)]
        st, _, body = c.api("POST", "/v1/orders/batch", json={
            "orders": [H.order(i, items=[{"sku": sku, "qty": 1}])
                       for i in ids]})
        self.assertEqual(st, 200, body)
        deadline = time.time() + 10
        while time.time() < deadline:
            st, _, body = c.api("GET", "/v1/orders?status=processing&limit=1")
            if body["orders"]:
                break
            time.sleep(0.02)
        self.assertTrue(body["orders"], "nothing processing")
        t0 = time.time()
        rc = d.stop(timeout=drain_ms / 1000.0 + 5)
        elapsed = time.time() - t0
        self.assertEqual(rc, 0, H.log_tail(d.log_path))
        # Slack for start-up of the stop and sanitizer builds; without the
        # deadline the stalled batch alone would take 6 s.
        self.assertLess(elapsed, drain_ms / 1000.0 + 2.0,
                        "drain overran ORDERD_DRAIN_MS")
        d2 = self.daemon({})
        done = H.wait_terminal(d2.client, ids, timeout=30)
        for i in ids:
            self.assertEqual(done[i]["status"], "completed", done[i])
        self.assertEqual(d2.stop(), 0)
        rc, out = H.verify(self.db.uri)
        self.assertEqual(rc, 0, out)

    def test_waits_answered_503_while_the_store_stalls(self):
        """SIGTERM while a lock acquire (wait_ms) and an order GET (wait_ms)
        are suspended and the store stops answering: both clients get
        503 unavailable with Retry-After within the drain, not a reset when
        the deadline ends the process, and orderd exits 0."""
        drain_ms = 1500
        d = self.daemon({"ORDERD_DRAIN_MS": str(drain_ms),
                         "ORDERD_BUSY_TIMEOUT_MS": "20000",
                         "ORDERD_STATEMENT_TIMEOUT_MS": "20000",
                         "ORDERD_FAILPOINTS": "slow_process_ms=30000",
                         "TSAN_OPTIONS": "report_thread_leaks=0"})
        c = d.client
        run = H.rand_suffix(5)
        name = "dl-" + run
        st, _, g = c.api("POST", "/v1/locks/%s/acquire" % name,
                         json={"owner": "holder", "ttl_ms": 600000})
        self.assertEqual(st, 200, g)
        oid = "dw-" + run
        st, _, body = c.api("POST", "/v1/orders", json=H.order(oid))
        self.assertEqual(st, 201, body)
        got = {}

        def lock_wait():
            try:
                got["lock"] = H.Client(d.url).api(
                    "POST", "/v1/locks/%s/acquire" % name, timeout=30,
                    json={"owner": "waiter", "ttl_ms": 10000,
                          "wait_ms": 25000})
            except Exception as e:
                got["lock"] = e

        def order_wait():
            try:
                got["order"] = H.get_order(H.Client(d.url), oid,
                                           wait_ms=25000)
            except Exception as e:
                got["order"] = e
        threads = [threading.Thread(target=lock_wait),
                   threading.Thread(target=order_wait)]
        for t in threads:
            t.start()
        time.sleep(0.5)  # both suspended in their waits
        blocker = H.StoreBlocker(self.db, tables="orders, locks").__enter__()
        try:
            time.sleep(0.5)  # the next lock poll is stuck in the store
            t0 = time.time()
            d.send_signal(signal.SIGTERM)
            for t in threads:
                t.join(drain_ms / 1000.0 + 10)
            try:
                d.proc.wait(drain_ms / 1000.0 + 5)
            except Exception:
                pass
            rc = d.kill()
        finally:
            blocker.__exit__(None, None, None)
        self.assertEqual(rc, 0, H.log_tail(d.log_path))
        for k in ("lock", "order"):
            r = got.get(k)
            self.assertIsInstance(r, tuple, "%s wait not answered: %r"
                                  % (k, r))
            st, hdr, body = r
            self.assertEqual(st, 503, "%s wait: %s %r" % (k, st, body))
            self.assertEqual(body["error"]["code"], "unavailable")
            self.assertRegex(hdr.get("Retry-After", ""), r"^\d+$")
        self.assertLess(time.time() - t0, drain_ms / 1000.0 + 3)

    def test_sigint_and_sigterm_idle(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            d = self.daemon({})
            t0 = time.time()
            rc = d.stop(sig=sig, timeout=DRAIN_MS / 1000.0 + 5)
            self.assertEqual(rc, 0, H.log_tail(d.log_path))
            self.assertLess(time.time() - t0, 3, "idle shutdown slow")


class ShutdownDelayTest(unittest.TestCase):
    """ORDERD_SHUTDOWN_DELAY_MS: on SIGTERM only /readyz turns 503; orders
    are still accepted and processed for the delay, each answer closing its
    connection; then the usual drain refuses writes 503 and the process
    exits 0. A second signal ends the delay early."""

    def setUp(self):
        self.db = H.Database("delay")
        self.ds = []

    def tearDown(self):
        for d in self.ds:
            d.kill()
        self.db.drop()

    def daemon(self, env):
        e = {"ORDERD_WORKERS": "2", "ORDERD_DRAIN_MS": "3000"}
        e.update(env)
        d = H.Daemon(self.db.uri, name="delay", env=e)
        self.ds.append(d)
        return d.start()

    def test_ready_503_but_serving_during_the_delay(self):
        delay = 2.5
        # Slow processing keeps the drain busy long enough to be seen.
        d = self.daemon({"ORDERD_SHUTDOWN_DELAY_MS": str(int(delay * 1000)),
                         "ORDERD_FAILPOINTS": "slow_process_ms=800"})
        run = H.rand_suffix(5)
        sku = "SD-" + run
        H.set_stock(d.client, sku, 100000)
        # Before the signal, connections are kept alive.
        st, hdr, _ = d.client.api("GET", "/readyz")
        self.assertEqual(st, 200)
        self.assertNotIn("close", hdr.get("Connection", "").lower())
        writes = []  # (seconds after SIGTERM, status or exception, id)

        def submit():
            c = H.Client(d.url)
            while d.alive() and time.time() - t_term < delay + 8:
                oid = "sd-%s-%d" % (run, len(writes))
                t = time.time() - t_term
                try:
                    st, hdr, body = c.api("POST", "/v1/orders", timeout=2,
                                          json=H.order(oid, items=[
                                              {"sku": sku, "qty": 1}]))
                except (H.requests.ConnectionError, H.requests.Timeout) as e:
                    writes.append((t, e, oid))
                    return
                writes.append((t, (st, hdr, body), oid))
                time.sleep(0.02)
        t_term = time.time()
        d.send_signal(signal.SIGTERM)
        th = threading.Thread(target=submit)
        th.start()
        c = H.Client(d.url)
        ready = []
        while time.time() - t_term < delay - 0.5:
            st, _, _ = c.api("GET", "/readyz", timeout=2)
            ready.append(st)
            time.sleep(0.05)
        # The signal arrives asynchronously: 200 may come first, then 503.
        self.assertEqual(ready[-1], 503, ready)
        self.assertNotIn(200, ready[ready.index(503):], ready)
        # Workers still run: the first order completes within the delay.
        st, _, o = c.api("GET", "/v1/orders/%s?wait_ms=1000" % writes[0][2],
                         timeout=3)
        self.assertEqual(o["status"], "completed", o)
        self.assertLess(time.time() - t_term, delay)
        th.join(20)
        try:
            d.proc.wait(10)
        except Exception:
            pass
        self.assertEqual(d.kill(), 0, H.log_tail(d.log_path))
        accepted, refused = [], []
        for t, r, oid in writes:
            if isinstance(r, tuple) and t > 0.5:
                # From the signal on, every answer ends its connection: a
                # client's next request opens a new one, which the load
                # balancer sends to a replica that stays.
                self.assertEqual(r[1].get("Connection", "").lower(),
                                 "close", "%.2fs after SIGTERM" % t)
            if isinstance(r, tuple) and r[0] in (201, 202):
                self.assertLess(t, delay + 0.3, "write accepted after the "
                                "delay, %.2fs after SIGTERM" % t)
                accepted.append(oid)
            elif isinstance(r, tuple) and r[0] == 503:
                self.assertEqual(r[2]["error"]["code"], "unavailable")
                self.assertRegex(r[1].get("Retry-After", ""), r"^\d+$")
                self.assertGreater(t, delay - 0.3, "write refused during "
                                   "the delay, %.2fs after SIGTERM" % t)
                refused.append(oid)
            elif isinstance(r, tuple):
                self.fail("write %.2fs after SIGTERM: %r" % (t, r))
            else:
                # The connection ends when the process exits.
                self.assertGreater(t, delay - 0.3, "write failed during "
                                   "the delay: %r" % (r,))
        self.assertGreater(len(accepted), 20, writes[:3])
        self.assertTrue(refused, "never saw a 503 after the delay")
        d2 = self.daemon({})
        final = H.wait_terminal(d2.client, accepted, timeout=60)
        self.assertEqual({f["status"] for f in final.values()}, {"completed"})
        self.assertEqual(d2.stop(), 0)
        rc, out = H.verify(self.db.uri)
        self.assertEqual(rc, 0, out)

    def test_second_signal_ends_the_delay(self):
        d = self.daemon({"ORDERD_SHUTDOWN_DELAY_MS": "60000"})
        t0 = time.time()
        d.send_signal(signal.SIGTERM)
        deadline = time.time() + 5
        while time.time() < deadline:
            st, _, _ = d.client.api("GET", "/readyz", timeout=2)
            if st == 503:
                break
            time.sleep(0.02)
        self.assertEqual(st, 503)
        self.assertTrue(d.alive(), "exited without the delay")
        d.send_signal(signal.SIGINT)
        try:
            d.proc.wait(8)
        except Exception:
            pass
        self.assertEqual(d.kill(), 0, H.log_tail(d.log_path))
        self.assertLess(time.time() - t0, 8, "second signal did not cut "
                        "the shutdown delay short")


class DatabaseFileTest(unittest.TestCase):
    """ORDERD_DATABASE_FILE: the URI from a file's first line (a mounted
    Secret), trailing blanks trimmed; refused beside ORDERD_DATABASE."""

    def test_database_from_file(self):
        db = H.Database("dbfile")
        try:
            path = os.path.join(H.TMP, "dburi-%s" % H.rand_suffix())
            with open(path, "w") as f:
                f.write(db.uri + " \t\r\nignored second line\n")
            port = H.free_port()
            env = dict(os.environ)
            env.pop("ORDERD_DATABASE", None)
            env.update({"ORDERD_DATABASE_FILE": path,
                        "ORDERD_LOG_LEVEL": "warn"})
            log = open(os.path.join(H.TMP, "dbfile-%d.log" % port), "wb")
            p = H.subprocess.Popen(
                [H.BIN, "--listen", "127.0.0.1:%d" % port], env=env,
                stdout=log, stderr=H.subprocess.STDOUT,
                stdin=H.subprocess.DEVNULL)
            log.close()
            try:
                c = H.Client("http://127.0.0.1:%d" % port)
                deadline = time.time() + 15
                st = None
                while time.time() < deadline and p.poll() is None:
                    try:
                        st, _, _ = c.api("GET", "/readyz", timeout=2)
                        if st == 200:
                            break
                    except H.requests.RequestException:
                        pass
                    time.sleep(0.05)
                self.assertEqual(st, 200, "not ready with the database file")
                oid = "dbf-" + H.rand_suffix()
                st, _, body = c.api("POST", "/v1/orders", json=H.order(oid))
                self.assertIn(st, (201, 202), body)
            finally:
                p.send_signal(signal.SIGTERM)
                self.assertEqual(p.wait(15), 0)
            # The order is in the database the file names.
            with H.Daemon(db.uri, name="dbfile2") as d:
                st, _, o = d.client.api("GET", "/v1/orders/" + oid)
                self.assertEqual(st, 200, o)
            os.unlink(path)
        finally:
            db.drop()


class ConfigTest(unittest.TestCase):
    def check78(self, args=(), env=None, needle=None, secret=None):
        db = "sqlite:" + os.path.join(H.TMP, "cfg-%s.db" % H.rand_suffix())
        e = {"ORDERD_DATABASE": db, "ORDERD_LISTEN": "127.0.0.1:%d" % H.free_port()}
        e.update(env or {})
        drop = [k for k, v in e.items() if v is None]
        for k in drop:
            del e[k]
        rc, out, err = H.run_orderd(list(args), env=e, timeout=15,
                                    unset=drop)
        self.assertEqual(rc, 78, "args %r env %r: rc %r\n%s%s"
                         % (args, env, rc, out, err))
        self.assertTrue(err.strip(), "no message on stderr")
        if needle:
            self.assertIn(needle.lower(), err.lower())
        if secret:
            self.assertNotIn(secret, out + err)
        for suffix in ("", "-wal", "-shm"):
            try:
                os.unlink(db[len("sqlite:"):] + suffix)
            except OSError:
                pass

    def test_bad_config(self):
        self.check78(env={"ORDERD_LEASE_MS": "5"}, needle="LEASE_MS")
        self.check78(args=["--lease-ms", "5"], needle="lease")
        self.check78(env={"ORDERD_LEASE_MS": "abc"}, needle="LEASE_MS")
        self.check78(args=["--bogus-flag"], needle="bogus")
        self.check78(env={"ORDERD_LOG_LEVEL": "loud"}, needle="LOG_LEVEL")
        self.check78(env={"ORDERD_WORKERS": "many"}, needle="WORKERS")
        self.check78(env={"ORDERD_MAX_ATTEMPTS": "-1"}, needle="MAX_ATTEMPTS")
        self.check78(env={"ORDERD_DATABASE": "mysql://x"})
        self.check78(env={"ORDERD_API_TOKENS_FILE": "/nonexistent/tokens"})
        self.check78(env={"ORDERD_SHUTDOWN_DELAY_MS": "600001"},
                     needle="SHUTDOWN_DELAY_MS")
        # ORDERD_DATABASE_FILE: exclusive with ORDERD_DATABASE/--database,
        # unreadable, empty or not a URI; the URI itself is never shown.
        path = os.path.join(H.TMP, "dburi-%s" % H.rand_suffix())
        with open(path, "w") as f:
            f.write("postgres://u:hunter2@127.0.0.1/x\n")
        self.check78(env={"ORDERD_DATABASE_FILE": path},
                     needle="not both")
        self.check78(args=["--database", "sqlite:x.db"],
                     env={"ORDERD_DATABASE_FILE": path}, needle="not both")
        no_db = {"ORDERD_DATABASE": None}
        self.check78(env=dict(no_db, ORDERD_DATABASE_FILE="/nonexistent/db"),
                     needle="cannot read")
        for text, needle in (("\n", "no database URI"),
                             ("mysql://u:hunter2@h/x\n", "not sqlite")):
            with open(path, "w") as f:
                f.write(text)
            self.check78(env=dict(no_db, ORDERD_DATABASE_FILE=path),
                         needle=needle, secret="hunter2")
        os.unlink(path)
        # The flag wins over the environment.
        self.check78(args=["--lease-ms", "5"], env={"ORDERD_LEASE_MS": "1000"})

    def test_help(self):
        rc, out, err = H.run_orderd(["--help"], timeout=10)
        self.assertEqual(rc, 0)
        self.assertIn("ORDERD_LEASE_MS", out + err)


if __name__ == "__main__":
    H.main()
