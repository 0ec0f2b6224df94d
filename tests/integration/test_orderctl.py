"""Black-box tests of orderctl against a real orderd (tests/integration/
harness.py starts the daemon on a free port with a fresh database).

Covers: submit from a JSON-lines file and from stdin (duplicates, invalid
lines, conflicts -> exit 65), arrays and single objects, get/list/cancel/
requeue exit codes, stock set/get/list, the lock commands, stats/alerts,
--json output that parses, 404 -> 66, unreachable server -> 69, bad token ->
77 without printing the token, and `verify` on a clean database (exit 0)
and on a deliberately corrupted one (exit 1 naming the product).
"""

import http.server
import json
import os
import sqlite3
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import BACKEND, Daemon, Database, free_port, rand_suffix  # noqa: E402


def ctl(daemon, *args, input=None, env=None, url=None):
    """Runs orderctl against daemon; returns CompletedProcess (text)."""
    e = {"ORDERD_URL": url or daemon.url, "ORDERD_TOKEN": ""}
    e.update(env or {})
    return harness.subprocess.run(
        [harness.CTL] + [str(a) for a in args], env=dict(os.environ, **e),
        input=input, capture_output=True, text=True, timeout=120)


def order(oid, sku, qty=1, customer="cust-1"):
    return {"id": oid, "customer": customer,
            "items": [{"sku": sku, "qty": qty}]}


class OrderctlTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.db = Database("orderctl")
        cls.d = Daemon(cls.db.uri, name="orderctl").start()
        cls.sku = "SKU-" + rand_suffix(6).upper()
        p = ctl(cls.d, "stock", "set", cls.sku, 1000)
        assert p.returncode == 0, p.stderr

    @classmethod
    def tearDownClass(cls):
        cls.d.stop(timeout=10)
        cls.db.drop()

    def run_ok(self, *args, **kw):
        p = ctl(self.d, *args, **kw)
        self.assertEqual(p.returncode, 0, "%r: %s%s" % (args, p.stdout,
                                                         p.stderr))
        return p

    def run_rc(self, rc, *args, **kw):
        p = ctl(self.d, *args, **kw)
        self.assertEqual(p.returncode, rc, "%r: %s%s" % (args, p.stdout,
                                                          p.stderr))
        return p

    # ---------------------------------------------------------- submit

    def test_submit_jsonl_file_with_duplicate_and_invalid(self):
        p = "p1-" + rand_suffix()
        lines = [
            json.dumps(order(p + "-a", self.sku)),
            json.dumps(order(p + "-b", self.sku, 2)),
            "",
            json.dumps(order(p + "-a", self.sku)),         # duplicate: replay
            json.dumps(order(p + "-a", self.sku, 5)),      # conflict
            json.dumps(order(p + "-c", self.sku, 0)),      # invalid qty
            "{not json",                                   # invalid line
        ]
        path = os.path.join(harness.TMP, "%s.jsonl" % p)
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        r = self.run_rc(65, "submit", path)
        out = r.stdout.splitlines()
        self.assertEqual(len(out), 6, r.stdout)
        self.assertEqual(out[0], p + "-a created")
        self.assertEqual(out[1], p + "-b created")
        self.assertEqual(out[2], p + "-a replayed")
        self.assertTrue(out[3].startswith(p + "-a conflict: "), out[3])
        self.assertTrue(out[4].startswith(p + "-c invalid: "), out[4])
        self.assertTrue(out[5].startswith("line 7 invalid: "), out[5])
        self.assertIn("2 created, 1 replayed, 1 conflict, 2 invalid",
                      r.stderr)

        # The same file again, now from stdin and with --json: every
        # line is a result object; the first two are replays now.
        with open(path) as f:
            text = f.read()
        r = self.run_rc(65, "--json", "submit", "-", input=text)
        res = [json.loads(line) for line in r.stdout.splitlines()]
        self.assertEqual([x["status"] for x in res],
                         [200, 200, 200, 409, 400, 400])
        self.assertEqual(res[0]["order"]["id"], p + "-a")
        self.assertEqual(res[3]["error"]["code"], "conflict")

    def test_submit_stdin_all_good_exits_0(self):
        p = "p2-" + rand_suffix()
        text = "".join(json.dumps(order("%s-%d" % (p, i), self.sku)) + "\n"
                       for i in range(5))
        r = self.run_ok("submit", input=text)
        self.assertEqual(r.stdout.count(" created"), 5, r.stdout)
        r = self.run_ok("submit", input=text)  # a safe retry
        self.assertEqual(r.stdout.count(" replayed"), 5, r.stdout)

    def test_submit_array_and_pretty_object(self):
        p = "p3-" + rand_suffix()
        arr = [order("%s-%d" % (p, i), self.sku) for i in range(3)]
        r = self.run_ok("submit", input=json.dumps(arr))
        self.assertEqual(r.stdout.count(" created"), 3, r.stdout)
        one = json.dumps(order(p + "-x", self.sku), indent=2)
        r = self.run_ok("submit", input=one)
        self.assertEqual(r.stdout.strip(), p + "-x created")
        r = self.run_rc(65, "submit", input="[1, {\"id\": ")
        self.assertIn("not a valid JSON array", r.stderr)

    def test_submit_more_than_one_batch(self):
        p = "p4-" + rand_suffix()
        text = "".join(json.dumps(order("%s-%d" % (p, i), self.sku, 1,
                                        "c" + str(i % 7))) + "\n"
                       for i in range(2100))
        r = self.run_ok("submit", input=text)
        self.assertEqual(r.stdout.count(" created"), 2100, r.stderr)
        self.assertIn("2100 created", r.stderr)

    def test_submit_missing_file(self):
        self.run_rc(66, "submit", "/nonexistent/orders.jsonl")

    # ---------------------------------------------------------- orders

    def test_get_list_cancel_requeue(self):
        p = "p5-" + rand_suffix()
        self.run_ok("submit", input=json.dumps(order(p, self.sku)))
        r = self.run_ok("--json", "get", p, "--wait=10000")
        o = json.loads(r.stdout)
        self.assertEqual(o["id"], p)
        self.assertIn(o["status"], harness.TERMINAL)
        r = self.run_ok("get", p)
        self.assertRegex(r.stdout, r"(?m)^id\s+%s$" % p)
        self.assertRegex(r.stdout, r"(?m)^status\s+%s$" % o["status"])
        self.assertRegex(r.stdout, r"(?m)^items\s+%s x1$" % self.sku)

        # Neither transition applies to a terminal order: 409 -> 65.
        r = self.run_rc(65, "cancel", p)
        self.assertIn("(conflict)", r.stderr)
        self.run_rc(65 if o["status"] != "failed" else 0, "requeue", p)

        # Missing orders: 404 -> 66, with the server's message and code.
        r = self.run_rc(66, "get", "nope-" + rand_suffix())
        self.assertRegex(r.stderr, r"^orderctl: get .*\(not_found\)$")
        self.run_rc(66, "cancel", "nope-" + rand_suffix())
        self.run_rc(66, "requeue", "nope-" + rand_suffix())

        r = self.run_ok("--json", "list", "--limit", "2")
        page = json.loads(r.stdout)
        self.assertLessEqual(len(page["orders"]), 2)
        self.assertIn("next_cursor", page)
        r = self.run_ok("list", "--all", "--limit", "50")
        self.assertIn(p, r.stdout)
        self.assertTrue(r.stdout.startswith("ID "), r.stdout[:80])
        self.run_rc(65, "list", "--status", "bogus")
        self.run_rc(64, "list", "--limit", "0")
        self.run_rc(64, "get", "bad/id")

    # ---------------------------------------------------------- stock

    def test_stock(self):
        sku = "S-" + rand_suffix()
        r = self.run_ok("stock", "set", sku, 7)
        self.assertRegex(r.stdout, r"(?m)^%s\s+7 " % sku)
        r = self.run_ok("--json", "stock", "get", sku)
        self.assertEqual(json.loads(r.stdout)["stock"], 7)
        r = self.run_ok("stock", "list", "--all")
        self.assertIn(sku, r.stdout)
        r = self.run_ok("stock", "list", "--json", "--limit", "1000")
        self.assertIn("products", json.loads(r.stdout))
        self.run_rc(66, "stock", "get", "missing-" + rand_suffix())
        self.run_rc(64, "stock", "set", sku, "lots")
        self.run_rc(64, "stock", "frobnicate")

    # ---------------------------------------------------------- locks

    def test_locks(self):
        name = "lk-" + rand_suffix()
        r = self.run_ok("--json", "lock", "acquire", name, "--owner", "a",
                        "--ttl-ms", 10000)
        lock = json.loads(r.stdout)
        fence = lock["fence"]
        self.assertEqual(lock["owner"], "a")
        r = self.run_rc(65, "lock", "acquire", name, "--owner", "b",
                        "--ttl-ms", 10000, "--wait-ms", 100)
        self.assertIn("(lock_held)", r.stderr)
        r = self.run_ok("lock", "get", name)
        self.assertRegex(r.stdout, r"(?m)^owner\s+a$")
        self.run_ok("lock", "renew", name, "--owner", "a", "--fence", fence,
                    "--ttl-ms", 10000)
        self.run_rc(65, "lock", "renew", name, "--owner", "a", "--fence",
                    fence + 1000, "--ttl-ms", 10000)
        r = self.run_ok("lock", "release", name, "--owner", "a", "--fence",
                        fence)
        self.assertIn("released", r.stdout)
        r = self.run_rc(65, "lock", "release", name, "--owner", "a",
                        "--fence", fence)
        self.assertIn("(lock_lost)", r.stderr)
        self.run_rc(66, "lock", "get", name)
        self.run_rc(64, "lock", "acquire", name, "--owner", "a")

    # ---------------------------------------------------------- operations

    def test_stats_and_alerts(self):
        r = self.run_ok("--json", "stats")
        self.assertIsInstance(json.loads(r.stdout), dict)
        self.run_ok("stats")
        r = self.run_ok("alerts", "--json")
        self.assertIsInstance(json.loads(r.stdout)["alerts"], list)
        self.run_ok("alerts")

    def test_usage_and_help(self):
        self.run_rc(64)
        self.run_rc(64, "frobnicate")
        self.run_rc(64, "get")
        r = self.run_ok("--help")
        self.assertIn("submit", r.stdout)
        for cmd in ("submit", "get", "list", "stock", "lock", "verify"):
            r = self.run_ok(cmd, "--help")
            self.assertIn("usage: orderctl " + cmd, r.stdout)

    def test_unreachable_server(self):
        url = "http://127.0.0.1:%d" % free_port()
        r = ctl(self.d, "get", "x", url=url)
        self.assertEqual(r.returncode, 69, r.stderr)
        self.assertIn("unreachable", r.stderr)
        r = ctl(self.d, "submit", input=json.dumps(order("u1", "S")), url=url)
        self.assertEqual(r.returncode, 69, r.stderr)


class FakeBatchServer(http.server.ThreadingHTTPServer):
    """Answers POST /v1/orders/batch with the given statuses in turn
    (Retry-After: 0), then with one 201 result per order."""

    def __init__(self, statuses):
        self.statuses = list(statuses)
        self.requests = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(
                    int(self.headers["Content-Length"])))
                server.requests += 1
                if server.statuses:
                    st = server.statuses.pop(0)
                    out = {"error": {"code": "unavailable" if st == 503
                                     else "rate_limited", "message": "busy"}}
                    hdr = {"Retry-After": "0"}
                else:
                    st = 200
                    out = {"results": [{"status": 201, "order": o}
                                       for o in body["orders"]]}
                    hdr = {}
                data = json.dumps(out).encode()
                self.send_response(st)
                for k, v in hdr.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        super().__init__(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.server_address[1]

    def close(self):
        self.shutdown()
        self.server_close()


class RetryTest(unittest.TestCase):
    """submit resends a whole batch on 429/503, a bounded number of times."""

    def submit(self, statuses):
        srv = FakeBatchServer(statuses)
        try:
            text = "".join(json.dumps(order("r-%d" % i, "S")) + "\n"
                           for i in range(3))
            r = ctl(None, "submit", input=text, url=srv.url)
            return r, srv.requests
        finally:
            srv.close()

    def test_retries_then_succeeds(self):
        r, n = self.submit([503, 429])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(n, 3)
        self.assertEqual(r.stdout.count(" created"), 3)
        self.assertIn("retrying", r.stderr)

    def test_gives_up_after_five_tries(self):
        r, n = self.submit([429] * 10)
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertEqual(n, 5)
        self.assertIn("(rate_limited)", r.stderr)


class TokenTest(unittest.TestCase):

    def test_bad_token_exits_77_and_is_not_printed(self):
        token = "tok-" + rand_suffix(16)
        with Database("ctltoken") as db, \
                Daemon(db.uri, env={"ORDERD_API_TOKENS": token},
                       name="ctltoken") as d:
            wrong = "wrong-" + rand_suffix(16)
            r = ctl(d, "stats", env={"ORDERD_TOKEN": wrong})
            self.assertEqual(r.returncode, 77, r.stderr)
            self.assertNotIn(wrong, r.stdout + r.stderr)
            r = ctl(d, "stats", "--token", token)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertNotIn(token, r.stdout + r.stderr)


class VerifyTest(unittest.TestCase):

    def corrupt(self, db, sku):
        sql = "UPDATE products SET stock = stock + 1 WHERE sku = '%s'" % sku
        if BACKEND == "postgres":
            import psycopg2
            conn = psycopg2.connect(db.uri)
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql)
            conn.close()
        else:
            conn = sqlite3.connect(db.path)
            conn.execute(sql)
            conn.commit()
            conn.close()

    def test_verify_clean_then_corrupted(self):
        sku = "V-" + rand_suffix().upper()
        with Database("ctlverify") as db:
            d = Daemon(db.uri, name="ctlverify").start()
            try:
                self.assertEqual(ctl(d, "stock", "set", sku, 10).returncode, 0)
                text = "".join(json.dumps(order("v-%d" % i, sku, 3)) + "\n"
                               for i in range(5))
                r = ctl(d, "submit", input=text)
                self.assertEqual(r.returncode, 0, r.stderr)
                harness.wait_terminal(d.client, ["v-%d" % i for i in range(5)])
            finally:
                d.stop(timeout=10)

            r = ctl(d, "verify", "--database", db.uri)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("verify: ok", r.stdout)

            self.corrupt(db, sku)
            r = ctl(d, "verify", "--database", db.uri)
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
            self.assertIn(sku, r.stdout)
            self.assertIn("verify: 1 violation", r.stdout)
            r = ctl(d, "--json", "verify", env={"ORDERD_DATABASE": db.uri})
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
            lines = [json.loads(x) for x in r.stdout.splitlines()]
            self.assertEqual(lines[-1], {"violations": 1})
            self.assertIn(sku, lines[0]["violation"])

    def test_verify_cannot_open(self):
        r = harness.orderctl(["verify", "--database",
                              "sqlite:/nonexistent/dir/x.db"])
        self.assertEqual(r.returncode, 66, r.stderr)
        r = harness.orderctl(["verify", "--database", "mysql://x"])
        self.assertEqual(r.returncode, 64, r.stderr)
        r = harness.orderctl(["verify"], env={"ORDERD_DATABASE": ""})
        self.assertEqual(r.returncode, 64, r.stderr)


if __name__ == "__main__":
    harness.main()
