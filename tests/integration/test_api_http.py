"""test_api_http: the HTTP edges of API.md against the real orderd: the
protocol (methods, headers, request ids, limits), bearer auth and token
files, internal failures that must still be answered, /v1/stats as a pure
read, a stuck store, and retries. Black box: HTTP only. The routes
themselves are test_api.py, whose Base class this file shares."""

import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import order  # noqa: E402
from test_api import Base, uid  # noqa: E402


class HttpTest(Base):
    def test_404_405(self):
        for path in ("/nope", "/v1", "/v1/nope", "/v1/orders/a/b/c",
                     "/v1/orders/a/explode", "/metricsx", "/v2/orders"):
            self.assertError(self.api("GET", path), 404, "not_found")
        for method, path, allowed in (
                ("DELETE", "/v1/orders", {"GET", "POST"}),
                ("PUT", "/v1/orders", {"GET", "POST"}),
                ("DELETE", "/v1/orders/abc", {"GET"}),
                ("GET", "/v1/orders/abc/cancel", {"POST"}),
                ("GET", "/v1/orders/abc/requeue", {"POST"}),
                ("POST", "/v1/products/abc", {"GET", "PUT"}),
                ("GET", "/v1/locks/abc/acquire", {"POST"}),
                ("POST", "/livez", {"GET"}),
                ("POST", "/metrics", {"GET"}),
                ("DELETE", "/readyz", {"GET"})):
            st, hdr, body = self.api(method, path)
            self.assertError((st, hdr, body), 405, "method_not_allowed")
            allow = {m.strip() for m in hdr.get("Allow", "").split(",") if m.strip()}
            self.assertTrue(allowed <= allow, "%s %s: Allow %r" %
                            (method, path, hdr.get("Allow")))

    def test_request_id(self):
        st, hdr, _ = self.api("GET", "/livez", headers={"X-Request-Id": "abc-1.2:3_Z"})
        self.assertEqual(hdr.get("X-Request-Id"), "abc-1.2:3_Z")
        rid = "r" * 128
        st, hdr, _ = self.api("GET", "/v1/orders/" + uid(),
                              headers={"X-Request-Id": rid})
        self.assertEqual((st, hdr.get("X-Request-Id")), (404, rid))
        seen = set()
        for bad in ("r" * 129, "has space", "semi;colon", "", "é"):
            st, hdr, _ = self.api("GET", "/livez",
                                  headers={"X-Request-Id": bad.encode("utf-8")})
            got = hdr.get("X-Request-Id")
            self.assertTrue(got, "no generated X-Request-Id for %r" % bad)
            self.assertNotEqual(got, bad)
            self.assertRegex(got, r"^[A-Za-z0-9._:-]{1,128}$")
            seen.add(got)
        st, hdr, _ = self.api("POST", "/v1/orders", json={"bad": 1})
        self.assertRegex(hdr.get("X-Request-Id", ""), r"^[A-Za-z0-9._:-]{1,128}$")
        seen.add(hdr.get("X-Request-Id"))
        self.assertEqual(len(seen), 6, "generated ids not unique")

    def test_check_order_no_auth(self):
        big = b"x" * (100 * 1024)
        # 415 beats 413.
        self.assertError(self.api("POST", "/v1/orders", data=big,
                                  headers={"Content-Type": "text/plain"}),
                         415, "unsupported_media_type")
        # 413 beats 400.
        self.assertError(self.api("POST", "/v1/orders", data=big,
                                  headers={"Content-Type": "application/json"}),
                         413, "payload_too_large")
        # 405 beats 415.
        self.assertError(self.api("DELETE", "/v1/orders", data=b"{}",
                                  headers={"Content-Type": "text/plain"}),
                         405, "method_not_allowed")
        # Parameters on the media type are fine; other types are not.
        st, _, body = self.api("POST", "/v1/orders", data=b"{}",
                               headers={"Content-Type": "application/json; charset=utf-8"})
        self.assertEqual(st, 400, body)
        for ct in (None, "text/json", "application/jsonx", "application/x-www-form-urlencoded"):
            h = {"Content-Type": ct} if ct else {}
            r = self.c.session().post(self.c.base + "/v1/orders", data=b"{}",
                                      headers=h, timeout=30)
            self.assertEqual(r.status_code, 415, (ct, r.text))
            self.assertEqual(r.json()["error"]["code"], "unsupported_media_type")

    def test_ops(self):
        st, _, _ = self.api("GET", "/livez")
        self.assertEqual(st, 200)
        st, _, _ = self.api("GET", "/readyz")
        self.assertEqual(st, 200)
        r = self.c.session().get(self.c.base + "/metrics", timeout=10)
        self.assertEqual(r.status_code, 200)
        self.assertTrue(r.headers.get("Content-Type", "").startswith("text/plain"),
                        r.headers.get("Content-Type"))
        m0 = H.parse_metrics(r.text)
        names = H.metric_names(m0)
        required = ["orderd_http_requests_total",
                    "orderd_http_request_duration_seconds",
                    "orderd_orders_submitted_total",
                    "orderd_orders_processed_total",
                    "orderd_order_processing_seconds",
                    "orderd_orders",
                    "orderd_oldest_pending_order_age_seconds",
                    "orderd_retries_total",
                    "orderd_lease_expirations_total",
                    "orderd_fence_rejections_total",
                    "orderd_store_errors_total",
                    "orderd_alert_firing",
                    "orderd_build_info"]
        missing = [n for n in required if n not in names]
        self.assertEqual(missing, [], "metrics missing")
        for n in names:
            self.assertTrue(n.startswith("orderd_") or n.startswith("process_")
                            or n.startswith("go_"), n)
        for h in ("orderd_http_request_duration_seconds",
                  "orderd_order_processing_seconds"):
            self.assertEqual(m0["types"].get(h), "histogram", h)
        for n, t in m0["types"].items():
            if t == "counter":
                self.assertTrue(n.endswith("_total"), n)
        self.assertIsNotNone(H.metric_sum(m0, "orderd_build_info"))
        bi = [lab for n, lab, _ in m0["samples"] if n == "orderd_build_info"]
        self.assertIn("version", bi[0])
        # Counters move.
        sku = uid("SKU")
        H.set_stock(self.c, sku, 10)
        o = order(uid(), items=[{"sku": sku, "qty": 1}])
        self.submit(o)
        H.wait_terminal(self.c, [o["id"]], timeout=30)
        m1 = self.d.metrics()
        self.assertGreater(H.metric_sum(m1, "orderd_http_requests_total") or 0,
                           H.metric_sum(m0, "orderd_http_requests_total") or 0)
        self.assertGreater(H.metric_sum(m1, "orderd_orders_submitted_total") or 0,
                           H.metric_sum(m0, "orderd_orders_submitted_total") or 0)
        self.assertGreater(
            H.metric_sum(m1, "orderd_orders_processed_total", outcome="completed") or 0,
            H.metric_sum(m0, "orderd_orders_processed_total", outcome="completed") or 0)
        # Terminal counts are refreshed at most every 2 s (a full count
        # of every order kept is not paid on each scrape).
        deadline = time.time() + 5
        while (H.metric_sum(m1, "orderd_orders", status="completed") or 0) < 1 \
                and time.time() < deadline:
            time.sleep(0.2)
            m1 = self.d.metrics()
        self.assertGreaterEqual(
            H.metric_sum(m1, "orderd_orders", status="completed") or 0, 1)
        self.assertGreaterEqual(
            H.metric_sum(m1, "orderd_order_processing_seconds_count") or 0, 1)
        codes = {lab.get("code") for n, lab, _ in m1["samples"]
                 if n == "orderd_http_requests_total"}
        self.assertIn("201", codes)
        # Stats and alerts.
        st, _, stats = self.api("GET", "/v1/stats")
        self.assertEqual(st, 200, stats)
        self.assertIsInstance(stats, dict)
        # Issue 10: per-outcome throughput (their sum is processed_per_s),
        # the configured error-rate threshold, leases per owner.
        tp = stats["throughput"]
        self.assertGreater(tp["completed_per_s"], 0, stats)
        self.assertEqual(tp["rejected_per_s"], 0, stats)
        self.assertEqual(tp["failed_per_s"], 0, stats)
        self.assertAlmostEqual(tp["processed_per_s"], tp["completed_per_s"]
                               + tp["rejected_per_s"] + tp["failed_per_s"])
        self.assertEqual(stats["alert_threshold"], 0.05, stats)
        self.assertIsInstance(stats["leases"], list, stats)
        for g in stats["leases"]:
            self.assertEqual(set(g), {"replica", "orders"}, stats)
        st, _, al = self.api("GET", "/v1/alerts")
        self.assertEqual(st, 200, al)
        self.assertIsInstance(al.get("alerts"), list)
        for a in al["alerts"]:
            for k in ("name", "state", "value", "threshold", "since"):
                self.assertIn(k, a, a)
            self.assertIn(a["state"], ("firing", "inactive"))
        # API 1.1: exactly these names, as in orderd_alert_firing{alert}.
        self.assertEqual([a["name"] for a in al["alerts"]],
                         ["HighErrorRate", "BacklogTooOld"])
        firing = {lab["alert"] for n, lab, _ in m1["samples"]
                  if n == "orderd_alert_firing"}
        self.assertEqual(firing, {"HighErrorRate", "BacklogTooOld"})


class FaultAnswerTest(Base):
    """Internal failures become answers that say so, never a silent hole:
    an order that cannot be encoded in a batch answer is a per-item 500
    error (never a null in results), and a failed store read behind a
    scrape is visible in /metrics."""
    env = {"ORDERD_WORKERS": "1",
           "ORDERD_FAILPOINTS": "fail_batch_encode=1,fail_scrape_stats=1"}

    def test_batch_encode_failure_is_an_item_error(self):
        sku = uid("SKU")
        H.set_stock(self.c, sku, 10)
        orders = [order(uid(), items=[{"sku": sku, "qty": 1}])
                  for _ in range(3)]
        st, _, body = self.api("POST", "/v1/orders/batch",
                               json={"orders": orders})
        self.assertEqual(st, 200, body)
        self.assertEqual(len(body["results"]), 3, body)
        for r in body["results"]:
            self.assertIsInstance(r, dict, "a result is not an object: %r"
                                  % (body["results"],))
            self.assertEqual(r.get("status"), 500, r)
            self.assertEqual(r["error"]["code"], "internal", r)
            self.assertIsInstance(r["error"]["message"], str, r)
        # The orders were committed all the same: a retry replays them.
        for o in orders:
            st, _, got = self.api("GET", "/v1/orders/" + o["id"])
            self.assertEqual(st, 200, got)

    def test_failed_scrape_is_visible(self):
        m0 = self.d.metrics()
        time.sleep(1.2)
        m1 = self.d.metrics()
        e0 = H.metric_sum(m0, "orderd_store_errors_total", kind="stats")
        e1 = H.metric_sum(m1, "orderd_store_errors_total", kind="stats")
        self.assertIsNotNone(e1, "failed stats reads are not counted")
        self.assertGreater(e1, e0 or 0)
        age = H.metric_sum(m1, "orderd_store_stats_age_seconds")
        self.assertIsNotNone(age, "no orderd_store_stats_age_seconds")
        self.assertGreaterEqual(age, 1.0, "stale gauges look fresh")
        self.assertEqual(m1["types"].get("orderd_store_stats_age_seconds"),
                         "gauge")


class StatsReadOnlyTest(Base):
    """GET /v1/stats is a read: it lists the replicas the store has seen,
    but the heartbeat itself is the reaper's write (once a period). Here
    the period is a minute, so after the first beat the replicas table
    changes only if the stats route writes to it."""
    env = {"ORDERD_WORKERS": "1", "ORDERD_REAP_MS": "60000"}

    def sql(self, stmt):
        if H.BACKEND == "postgres":
            import psycopg2
            conn = psycopg2.connect(self.db.uri)
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(stmt)
                rows = cur.fetchall() if cur.description else None
            conn.close()
            return rows
        import sqlite3
        conn = sqlite3.connect(self.db.path, timeout=10)
        with conn:
            rows = conn.execute(stmt).fetchall()
        conn.close()
        return rows

    def test_stats_writes_no_heartbeat(self):
        deadline = time.time() + 10
        while not self.sql("SELECT id FROM replicas") and time.time() < deadline:
            time.sleep(0.05)  # the reaper's first beat
        self.assertTrue(self.sql("SELECT id FROM replicas"), "no first beat")
        self.sql("DELETE FROM replicas")
        for _ in range(5):
            st, _, body = self.api("GET", "/v1/stats")
            self.assertEqual(st, 200, body)
            # The answering replica still counts itself, listed first.
            self.assertGreaterEqual(body["replicas_seen"], 1, body)
            self.assertEqual(len(body["replicas"]), 1, body)
            self.assertEqual(body["leases"], [], body)  # none processing
        self.assertEqual(self.sql("SELECT id FROM replicas"), [],
                         "GET /v1/stats wrote a heartbeat")


class AuthTest(Base):
    env = {"ORDERD_WORKERS": "1", "ORDERD_API_TOKENS": "tok-a,tok-b"}

    def test_auth(self):
        c = self.c
        for tok in (None, "", "tok-c", "tok-a x", "tok", "tok-a,tok-b", "TOK-A", "tok-a\ttok-b"):
            h = {}
            if tok is not None:
                h["Authorization"] = "Bearer " + tok
            self.assertError(c.api("GET", "/v1/orders/x", headers=h), 401,
                             "unauthorized")
        self.assertError(c.api("GET", "/v1/orders/x",
                               headers={"Authorization": "Basic dG9rLWE="}),
                         401, "unauthorized")
        for tok in ("tok-a", "tok-b"):
            self.assertError(c.api("GET", "/v1/orders/x", token=tok), 404,
                             "not_found")
        for path in ("/livez", "/readyz", "/metrics"):
            st, _, _ = c.api("GET", path)
            self.assertEqual(st, 200, path)
        for path in ("/v1/orders", "/v1/stats", "/v1/alerts", "/v1/products",
                     "/v1/locks/x"):
            self.assertError(c.api("GET", path), 401, "unauthorized")
        st, _, _ = c.api("GET", "/v1/stats", token="tok-b")
        self.assertEqual(st, 200)
        # Check order: route/method first, then auth, then content type.
        self.assertError(c.api("DELETE", "/v1/orders"), 405, "method_not_allowed")
        self.assertError(c.api("GET", "/v1/nope"), 404, "not_found")
        self.assertError(c.api("POST", "/v1/orders", data=b"x" * 100000,
                               headers={"Content-Type": "text/plain"}),
                         401, "unauthorized")
        self.assertError(c.api("POST", "/v1/orders", data=b"x" * 100000,
                               headers={"Content-Type": "text/plain"},
                               token="tok-a"), 415, "unsupported_media_type")
        self.assertError(c.api("POST", "/v1/orders", data=b"x" * 100000,
                               headers={"Content-Type": "application/json"},
                               token="tok-a"), 413, "payload_too_large")
        self.assertError(c.api("POST", "/v1/orders", data=b"{",
                               headers={"Content-Type": "application/json"},
                               token="tok-a"), 400, "invalid_request")

    def test_401_before_body(self):
        # Announce a 3 MiB body, send none of it: the 401 must come anyway.
        s = socket.create_connection(("127.0.0.1", self.d.port), timeout=10)
        try:
            s.sendall(b"POST /v1/orders/batch HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Type: application/json\r\n"
                      b"Content-Length: 3145728\r\n\r\n")
            s.settimeout(5)
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except socket.timeout:
                pass
            self.assertTrue(data.startswith(b"HTTP/1.1 401"),
                            "no 401 before the body: %r" % data[:200])
        finally:
            s.close()
        st, _, _ = self.c.api("GET", "/livez")
        self.assertEqual(st, 200)


class TokenFileTest(Base):
    tok_path = os.path.join(H.TMP, "tokens-%s.txt" % H.rand_suffix())
    env = {"ORDERD_WORKERS": "1", "ORDERD_API_TOKENS_FILE": tok_path}

    @classmethod
    def setUpClass(cls):
        with open(cls.tok_path, "w") as f:
            f.write("file-tok-1\nfile-tok-2\n")
        os.chmod(cls.tok_path, 0o600)
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        try:
            os.unlink(cls.tok_path)
        except OSError:
            pass

    def test_token_file(self):
        for tok in ("file-tok-1", "file-tok-2"):
            self.assertError(self.c.api("GET", "/v1/orders/x", token=tok), 404,
                             "not_found")
        for tok in (None, "file-tok-3", "file-tok-1\nfile-tok-2"):
            h = {"Authorization": "Bearer " + tok} if tok else {}
            try:
                resp = self.c.api("GET", "/v1/orders/x", headers=h)
            except ValueError:
                continue  # requests refuses a newline in a header: fine
            self.assertError(resp, 401, "unauthorized")


class StuckTest(Base):
    """Every processing attempt fails and the retry is far away, so orders
    stay pending: cancel works, and ?wait_ms times out."""
    env = {"ORDERD_WORKERS": "1", "ORDERD_FAILPOINTS": "fail_process=1",
           "ORDERD_MAX_ATTEMPTS": "8", "ORDERD_RETRY_BASE_MS": "60000",
           "ORDERD_RETRY_MAX_MS": "60000"}

    def pending_after_attempt(self, oid):
        deadline = time.time() + 20
        while time.time() < deadline:
            st, _, o = self.api("GET", "/v1/orders/" + oid)
            if o["status"] == "pending" and o["attempts"] >= 1:
                return o
            time.sleep(0.05)
        self.fail("order %s never went back to pending: %r" % (oid, o))

    def test_cancel_pending(self):
        sku = uid("SKU")
        H.set_stock(self.c, sku, 10)
        o = order(uid(), items=[{"sku": sku, "qty": 4}])
        self.submit(o)
        p = self.pending_after_attempt(o["id"])
        self.assertIsNone(p["finished_at"])
        st, _, c = self.api("POST", "/v1/orders/%s/cancel" % o["id"])
        self.assertEqual(st, 200, c)
        self.assertEqual(c["status"], "cancelled")
        self.assertOrderShape(c, o)
        self.assertError(self.api("POST", "/v1/orders/%s/cancel" % o["id"]),
                         409, "conflict")
        self.assertError(self.api("POST", "/v1/orders/%s/requeue" % o["id"]),
                         409, "conflict")
        self.assertEqual(self.stock(sku), 10)
        # Requeue of a pending order is a conflict too.
        o2 = order(uid(), items=[{"sku": sku, "qty": 1}])
        self.submit(o2)
        self.pending_after_attempt(o2["id"])
        self.assertError(self.api("POST", "/v1/orders/%s/requeue" % o2["id"]),
                         409, "conflict")
        # A cancelled order replays as cancelled.
        _, again = self.submit(o, expect=200)
        self.assertEqual(again["status"], "cancelled")

    def test_wait_ms_times_out(self):
        o = order(uid(), items=[{"sku": uid("SKU"), "qty": 1}])
        H.set_stock(self.c, o["items"][0]["sku"], 5)
        self.submit(o)
        self.pending_after_attempt(o["id"])
        t0 = time.time()
        st, _, body = H.get_order(self.c, o["id"], wait_ms=1000)
        elapsed = time.time() - t0
        self.assertEqual(st, 200)
        self.assertIn(body["status"], ("pending", "processing"))
        self.assertGreater(elapsed, 0.9)
        self.assertLess(elapsed, 4)
        # Several concurrent waiters are all answered.
        import concurrent.futures
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            t0 = time.time()
            res = list(ex.map(lambda _: H.get_order(self.c, o["id"], wait_ms=800),
                              range(16)))
        self.assertTrue(all(r[0] == 200 for r in res))
        self.assertLess(time.time() - t0, 8)
        # Cancelling wakes a waiter early.
        import threading
        out = {}

        def waiter():
            out["r"] = H.get_order(self.c, o["id"], wait_ms=20000)
            out["t"] = time.time()
        th = threading.Thread(target=waiter)
        th.start()
        time.sleep(0.3)
        t_c = time.time()
        st, _, _ = self.api("POST", "/v1/orders/%s/cancel" % o["id"])
        self.assertEqual(st, 200)
        th.join(30)
        self.assertEqual(out["r"][2]["status"], "cancelled")
        self.assertLess(out["t"] - t_c, 3, "waiter not woken by the cancel")


class RetryTest(unittest.TestCase):
    """G8: bounded retries, failed with the last error, requeue completes."""

    def test_retries_then_requeue(self):
        db = H.Database("retry")
        d = H.Daemon(db.uri, name="retry", env={
            "ORDERD_WORKERS": "1", "ORDERD_FAILPOINTS": "fail_process=1",
            "ORDERD_MAX_ATTEMPTS": "3", "ORDERD_RETRY_BASE_MS": "20",
            "ORDERD_RETRY_MAX_MS": "200"})
        try:
            d.start()
            c = d.client
            sku = uid("SKU")
            H.set_stock(c, sku, 10)
            o = order(uid(), items=[{"sku": sku, "qty": 3}])
            st, _, _ = c.api("POST", "/v1/orders", json=o)
            self.assertEqual(st, 201)
            f = H.wait_terminal(c, [o["id"]], timeout=30)[o["id"]]
            self.assertEqual(f["status"], "failed", f)
            self.assertEqual(f["attempts"], 3)
            self.assertIsInstance(f["reason"], str)
            self.assertTrue(f["reason"])
            self.assertRegex(f["finished_at"], H.TIME_RE)
            st, _, p = c.api("GET", "/v1/products/" + sku)
            self.assertEqual(p["stock"], 10)
            m = d.metrics()
            self.assertGreaterEqual(H.metric_sum(m, "orderd_retries_total") or 0, 2)
            self.assertGreaterEqual(H.metric_sum(m, "orderd_orders_processed_total",
                                                 outcome="failed") or 0, 1)
            self.assertEqual(d.stop(), 0)
            # Restart without the failpoint: still failed (dead letter)...
            d.extra_env = {"ORDERD_WORKERS": "1"}
            d.start()
            c = d.client
            time.sleep(0.5)
            st, _, f2 = c.api("GET", "/v1/orders/" + o["id"])
            self.assertEqual(f2["status"], "failed")
            # ...until requeued.
            st, _, r = c.api("POST", "/v1/orders/%s/requeue" % o["id"])
            self.assertEqual(st, 200, r)
            self.assertIn(r["status"], ("pending", "processing", "completed"))
            if r["status"] == "pending":
                self.assertEqual(r["attempts"], 0)
                self.assertIsNone(r["finished_at"])
                self.assertIsNone(r["reason"])
            done = H.wait_terminal(c, [o["id"]], timeout=30)[o["id"]]
            self.assertEqual(done["status"], "completed", done)
            self.assertEqual(done["attempts"], 1)
            self.assertIsNone(done["reason"])
            st, _, p = c.api("GET", "/v1/products/" + sku)
            self.assertEqual(p["stock"], 7)
            self.assertEqual(c.api("POST", "/v1/orders/%s/requeue" % o["id"])[0],
                             409)
            self.assertEqual(d.stop(), 0)
            rc, out = H.verify(db.uri)
            self.assertEqual(rc, 0, out)
        finally:
            d.kill()
            db.drop()


if __name__ == "__main__":
    H.main()
