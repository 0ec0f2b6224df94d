"""test_garbage: G10 against the real orderd. Malformed and hostile input
gets a clear 4xx JSON error (never a 5xx), oversized bodies get 413 without
being buffered, slow clients do not starve others, and after all of it the
daemon is alive, serves, drains cleanly and its store verifies."""

import json
import os
import random
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import order  # noqa: E402

JSON = {"Content-Type": "application/json"}
OK_CODES = {200, 201, 204, 400, 404, 405, 409, 413, 415}


def uid(p="g"):
    return "%s-%s" % (p, H.rand_suffix(10))


class GarbageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.db = H.Database("garbage")
        cls.d = H.Daemon(cls.db.uri, name="garbage",
                         env={"ORDERD_WORKERS": "2"})
        try:
            cls.d.start()
        except Exception:
            cls.db.drop()
            raise
        cls.c = cls.d.client
        cls.sku = uid("SKU")
        H.set_stock(cls.c, cls.sku, 1000000000)
        cls.statuses = []

    @classmethod
    def tearDownClass(cls):
        cls.d.stop(timeout=20)
        cls.db.drop()

    def post(self, path, body, ctype="application/json", expect=None):
        if isinstance(body, str):
            body = body.encode("utf-8")
        if not isinstance(body, (bytes, bytearray)):
            body = json.dumps(body).encode("utf-8")
        h = {"Content-Type": ctype} if ctype else {}
        st, hdr, resp = self.c.api("POST", path, data=body, headers=h)
        self.statuses.append(st)
        self.assertLess(st, 500, "5xx for %r: %r" % (body[:200], resp))
        if st >= 400:
            self.assertIsInstance(resp, dict, "error not JSON: %r" % (resp,))
            self.assertIsInstance(resp.get("error", {}).get("code"), str, resp)
        if expect is not None:
            self.assertEqual(st, expect, "body %r -> %s %r" % (body[:300], st, resp))
        return st, resp

    def order_bytes(self, **over):
        o = order(uid(), items=[{"sku": self.sku, "qty": 1}])
        o.update(over)
        return o

    # ------------------------------------------------------------ syntax

    def test_malformed_json(self):
        for b in ('{', '{"id":', '}', '', ' ', 'nul', '{}}', '{} {}',
                  "{'id': 'x'}", '{"id": "a",}', '{"id" "a"}', '[1,]',
                  '{"items": [{"sku": "a", "qty": NaN}]}', '{"a": Infinity}',
                  '\ufeff{}', '{"id": "a"} x', '{"id": "\\x41"}', '"\\u12"',
                  '{"id": "a\\"}'):
            self.post("/v1/orders", b, expect=400)
            self.post("/v1/orders/batch", b, expect=400)

    def test_non_object_bodies(self):
        for b in ('[]', '[{}]', '1', '"str"', 'null', 'true', '0.5', '[' + json.dumps(
                order("x")) + ']'):
            self.post("/v1/orders", b, expect=400)
            self.post("/v1/orders/batch", b, expect=400)
            self.c.api("PUT", "/v1/products/" + self.sku, data=b, headers=JSON)
            self.post("/v1/locks/l1/acquire", b, expect=400)

    def test_unknown_fields(self):
        self.post("/v1/orders", self.order_bytes(extra=1), expect=400)
        self.post("/v1/orders", self.order_bytes(status="completed"), expect=400)
        self.post("/v1/orders", self.order_bytes(attempts=0), expect=400)
        o = self.order_bytes()
        o["items"][0]["price"] = 3
        st, _ = self.post("/v1/orders", o)
        self.assertEqual(st, 400, "unknown field inside an item accepted")

    def test_duplicate_keys(self):
        oid = uid()
        b = ('{"id": "%s", "id": "%s-2", "customer": "c", "items": [{"sku": "%s", '
             '"qty": 1}]}' % (oid, oid, self.sku))
        self.post("/v1/orders", b, expect=400)
        b = ('{"id": "%s", "customer": "c", "items": [{"sku": "%s", "qty": 1, '
             '"qty": 2}]}' % (oid, self.sku))
        self.post("/v1/orders", b, expect=400)
        b = ('{"id": "%s", "customer": "c", "items": [{"sku": "%s", "qty": 1}], '
             '"metadata": {"a": 1, "a": 2}}' % (oid, self.sku))
        self.post("/v1/orders", b, expect=400)
        self.post("/v1/orders/batch", '{"orders": [], "orders": []}', expect=400)
        self.c.api("PUT", "/v1/products/" + self.sku,
                   data='{"stock": 1, "stock": 2}', headers=JSON)
        st, _, body = self.c.api("PUT", "/v1/products/" + uid("D"),
                                 data='{"stock": 1, "stock": 2}', headers=JSON)
        self.assertEqual(st, 400, body)
        self.assertEqual(self.c.api("GET", "/v1/orders/" + oid)[0], 404)

    def test_bad_utf8_and_nul(self):
        oid = uid()
        good = json.dumps(order(oid, items=[{"sku": self.sku, "qty": 1}])).encode()
        for bad in (b"\xff\xfe", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82",
                    b"\xf8\x88\x80\x80\x80", b"\x80"):
            self.post("/v1/orders", good.replace(b'"cust-1"', b'"c' + bad + b'"'),
                      expect=400)
            md = good[:-1] + b', "metadata": {"k": "v' + bad + b'"}}'
            self.post("/v1/orders", md, expect=400)
        for esc in ("\\u0000", "a\\u0000b", "\\ud800", "\\udc00x"):
            self.post("/v1/orders", good.replace(b'"cust-1"',
                                                 ('"%s"' % esc).encode()),
                      expect=400)
            md = good[:-1] + (', "metadata": {"k": "%s"}}' % esc).encode()
            self.post("/v1/orders", md, expect=400)
            md = good[:-1] + (', "metadata": {"%s": 1}}' % esc).encode()
            self.post("/v1/orders", md, expect=400)
        self.post("/v1/orders", good.replace(b'"cust-1"', b'"c\x00"'), expect=400)
        self.post("/v1/orders", good + b"\x00", expect=400)
        self.assertEqual(self.c.api("GET", "/v1/orders/" + oid)[0], 404)
        # Valid non-ASCII metadata is fine and echoed.
        o = order(uid(), items=[{"sku": self.sku, "qty": 1}],
                  metadata={"k": "\u00e9\u4e2d\U0001F600"})
        st, body = self.post("/v1/orders", o, expect=201)
        self.assertEqual(body["metadata"], o["metadata"])

    def test_nesting_depth(self):
        def nested(depth):
            # order object (1) > metadata object (2) > arrays (3..depth)
            inner = "[" * (depth - 2) + "]" * (depth - 2)
            return ('{"id": "%s", "customer": "c", "items": [{"sku": "%s", '
                    '"qty": 1}], "metadata": {"d": %s}}'
                    % (uid(), self.sku, inner))
        self.post("/v1/orders", nested(32), expect=201)
        self.post("/v1/orders", nested(33), expect=400)
        self.post("/v1/orders", nested(2000), expect=400)
        self.post("/v1/orders", "[" * 60000, expect=400)
        self.post("/v1/orders/batch", '{"orders": ' + "[" * 60000, expect=400)
        self.post("/v1/orders", '{"a":' * 10000 + "1" + "}" * 10000, expect=400)

    # ------------------------------------------------------------ sizes

    def test_body_limit_boundary(self):
        def padded(total):
            b = json.dumps(order(uid(), items=[{"sku": self.sku, "qty": 1}]))
            return (b[:-1] + " " * (total - len(b)) + "}").encode()
        self.post("/v1/orders", padded(65536), expect=201)
        self.post("/v1/orders", padded(65537), expect=413)
        self.post("/v1/orders", padded(10 * 1024 * 1024), expect=413)

    def test_413_without_buffering(self):
        for path, size in (("/v1/orders", 10 * 1024 * 1024),
                           ("/v1/orders/batch", 4 * 1024 * 1024 + 1),
                           ("/v1/orders/batch", 1 << 30),
                           ("/v1/products/" + self.sku, 1 << 20)):
            method = "PUT" if "products" in path else "POST"
            head = ("%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                    "\r\nContent-Length: %d\r\n\r\n" % (method, path, size)).encode()
            resp = H.raw_http(self.d.port, head + b"{", timeout=5)
            self.assertEqual(H.raw_status(resp), 413,
                             "%s %d: %r" % (path, size, resp[:300]))

    def test_chunked_over_limit(self):
        for path, total in (("/v1/orders", 200 * 1024),
                            ("/v1/orders/batch", 5 * 1024 * 1024)):
            head = ("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                    "\r\nTransfer-Encoding: chunked\r\n\r\n" % path).encode()
            piece = b'{"a": "' + b"x" * 16000
            chunks = []
            sent = 0
            while sent < total:
                chunks.append(b"%x\r\n%s\r\n" % (len(piece), piece))
                sent += len(piece)
            chunks.append(b"0\r\n\r\n")
            resp = H.raw_http(self.d.port, head, timeout=10, send_after=chunks)
            self.assertEqual(H.raw_status(resp), 413, "%s: %r" % (path, resp[:300]))

    def test_chunked_small_ok(self):
        b = json.dumps(order(uid(), items=[{"sku": self.sku, "qty": 1}])).encode()
        head = (b"POST /v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: "
                b"application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunks = [b"%x\r\n%s\r\n" % (len(b[i:i + 10]), b[i:i + 10])
                  for i in range(0, len(b), 10)] + [b"0\r\n\r\n"]
        resp = H.raw_http(self.d.port, head, timeout=10, send_after=chunks)
        self.assertEqual(H.raw_status(resp), 201, resp[:300])

    def test_big_batch_accepted(self):
        # ~3 MiB of real orders: under the 4 MiB batch cap.
        pad = "p" * 2900
        orders = [order(uid("B"), items=[{"sku": self.sku, "qty": 1}],
                        metadata={"pad": pad}) for _ in range(1000)]
        body = json.dumps({"orders": orders}).encode()
        self.assertGreater(len(body), 2900 * 1000)
        self.assertLess(len(body), 4 * 1024 * 1024)
        st, resp = self.post("/v1/orders/batch", body, expect=200)
        self.assertEqual(len(resp["results"]), 1000)
        self.assertEqual({r["status"] for r in resp["results"]}, {201})
        # 1001 entries: the envelope is invalid.
        small = [order(uid("B"), items=[{"sku": self.sku, "qty": 1}])
                 for _ in range(1001)]
        self.post("/v1/orders/batch", {"orders": small}, expect=400)
        self.assertEqual(self.c.api("GET", "/v1/orders/" + small[0]["id"])[0], 404)

    def test_content_type(self):
        b = json.dumps(self.order_bytes()).encode()
        for ct in (None, "text/plain", "application/xml", "json",
                   "application/json-seq", "multipart/form-data; boundary=x"):
            self.post("/v1/orders", b, ctype=ct, expect=415)
            self.post("/v1/orders/batch", b'{"orders": []}', ctype=ct, expect=415)
        for ct in ("application/json; charset=utf-8", "Application/JSON",
                   "application/json;charset=UTF-8"):
            self.post("/v1/orders", self.order_bytes(), ctype=ct, expect=201)

    # ------------------------------------------------------------ values

    def test_numbers_and_items(self):
        for qty in (0, -1, 1000001, 10 ** 20, 1.5, "1", None, True, [], {}):
            self.post("/v1/orders", self.order_bytes(
                items=[{"sku": self.sku, "qty": qty}]), expect=400)
        for raw in ("1e400", "-0.0", "99999999999999999999999999999", "1e3",
                    "1.0", "0x10", "01"):
            b = ('{"id": "%s", "customer": "c", "items": [{"sku": "%s", '
                 '"qty": %s}]}' % (uid(), self.sku, raw))
            st, _ = self.post("/v1/orders", b)
            if raw in ("1e400", "-0.0", "99999999999999999999999999999", "0x10",
                       "01"):
                self.assertEqual(st, 400, raw)
        self.post("/v1/orders", self.order_bytes(
            items=[{"sku": self.sku, "qty": 1000000}]), expect=201)
        skus = ["S%03d-%s" % (i, H.rand_suffix(4)) for i in range(101)]
        self.post("/v1/orders", self.order_bytes(
            items=[{"sku": s, "qty": 1} for s in skus]), expect=400)
        self.post("/v1/orders", self.order_bytes(
            items=[{"sku": s, "qty": 1} for s in skus[:100]]), expect=201)
        for items in ([], None, {}, "x", [{"sku": self.sku}], [{"qty": 1}],
                      [{"sku": self.sku, "qty": 1}, {"sku": self.sku, "qty": 2}],
                      [1], [[]]):
            self.post("/v1/orders", self.order_bytes(items=items), expect=400)
        for md in ([], "x", 1, True, {"big": "x" * 5000}):
            self.post("/v1/orders", self.order_bytes(metadata=md), expect=400)
        self.post("/v1/orders", self.order_bytes(metadata={"ok": "x" * 3000}),
                  expect=201)
        for stock in (10 ** 20, -5, 1.5, 1e400):
            st, _, body = self.c.api(
                "PUT", "/v1/products/" + uid("N"),
                data=('{"stock": %s}' % stock).encode(), headers=JSON)
            self.assertEqual(st, 400, (stock, body))

    def test_identifiers(self):
        ok64 = "a" * 64
        for field in ("id", "customer"):
            for bad in ("", "a" * 65, "a b", "a/b", "\u00e9", "a\nb", "a%b",
                        "a,b", "../x", 12, None, ["a"]):
                o = self.order_bytes()
                o[field] = bad
                self.post("/v1/orders", o, expect=400)
        for bad in ("", "a" * 65, "a b", "\u00e9", 5):
            self.post("/v1/orders", self.order_bytes(
                items=[{"sku": bad, "qty": 1}]), expect=400)
        o = self.order_bytes(id=uid()[:10] + "x" * 54, customer=ok64)
        o["id"] = (o["id"] + "A._:-")[-64:]
        self.post("/v1/orders", o, expect=201)
        for path in ("/v1/orders/" + "a" * 65, "/v1/orders/a%20b",
                     "/v1/orders/%00", "/v1/orders/%C3%A9"):
            st, _, body = self.c.api("GET", path)
            self.assertIn(st, (400, 404), (path, st, body))

    def test_missing_fields(self):
        base = self.order_bytes()
        for k in ("id", "customer", "items"):
            o = dict(base)
            del o[k]
            self.post("/v1/orders", o, expect=400)

    # ------------------------------------------------------------ transport

    def test_slow_clients(self):
        socks = []
        try:
            for i in range(24):
                s = socket.create_connection(("127.0.0.1", self.d.port), timeout=5)
                s.sendall(b"POST /v1/orders HTTP/1.1\r\nHost: x\r\n")
                socks.append(s)
            for i in range(8):
                s = socket.create_connection(("127.0.0.1", self.d.port), timeout=5)
                s.sendall(b"POST /v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: "
                          b"application/json\r\nContent-Length: 1000\r\n\r\n{\"id")
                socks.append(s)
            for round_ in range(3):
                for s in socks:
                    try:
                        s.sendall(b"X")
                    except OSError:
                        pass
                t0 = time.time()
                st, _, _ = self.c.api("GET", "/livez", timeout=10)
                self.assertEqual(st, 200)
                o = self.order_bytes()
                st, _, _ = self.c.api("POST", "/v1/orders", json=o, timeout=10)
                self.assertEqual(st, 201)
                self.assertLess(time.time() - t0, 3, "slow clients starve others")
                time.sleep(0.3)
        finally:
            for s in socks:
                s.close()

    def test_bad_http(self):
        # An unknown HTTP major version is answered by libmicrohttpd itself,
        # before orderd sees a request, with the 505 HTTP requires
        # (RFC 9110 15.6.6): the one 5xx that is not a server failure.
        resp = H.raw_http(self.d.port, b"GET / HTTP/9.9\r\n\r\n", timeout=3)
        self.assertIn(H.raw_status(resp), (None, 400, 505), resp[:200])
        for data in (b"GARBAGE\r\n\r\n", b"GET / HTTP/1.7\r\nHost: x\r\n\r\n",
                     b"GET /livez HTTP/1.1\r\n" + b"X-Big: " + b"a" * 200000 +
                     b"\r\n\r\n",
                     b"\x00\x01\x02\x03" * 100, b"GET /livez\r\n\r\n",
                     b"POST /v1/orders HTTP/1.1\r\nHost: x\r\nContent-Length: -5"
                     b"\r\nContent-Type: application/json\r\n\r\n",
                     b"POST /v1/orders HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                     b"Content-Length: 7\r\nContent-Type: application/json\r\n\r\n{}",
                     b"POST /v1/orders HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
                     b"chunked\r\nContent-Type: application/json\r\n\r\nzz\r\n"):
            resp = H.raw_http(self.d.port, data, timeout=3)
            st = H.raw_status(resp)
            self.assertTrue(st is None or st < 500, (data[:60], resp[:200]))
        st, _, _ = self.c.api("GET", "/livez")
        self.assertEqual(st, 200)

    def test_fuzz(self):
        rnd = random.Random(20261125)
        seeds = [
            json.dumps(order("fz-1", items=[{"sku": self.sku, "qty": 2}],
                             metadata={"a": [1, 2, {"b": "c"}]})).encode(),
            json.dumps({"orders": [order("fz-2", items=[{"sku": self.sku,
                                                         "qty": 1}])]}).encode(),
            b'{"stock": 12}',
            b'{"owner": "svc", "ttl_ms": 1000, "wait_ms": 0}',
        ]
        paths = [("POST", "/v1/orders"), ("POST", "/v1/orders/batch"),
                 ("PUT", "/v1/products/FZ-1"), ("POST", "/v1/locks/fz/acquire"),
                 ("POST", "/v1/locks/fz/renew"), ("POST", "/v1/locks/fz/release")]
        alphabet = b'{}[]",:0123456789-+.eE \\/ntrufalsu\x00\xff\xc3'
        for i in range(400):
            kind = rnd.randrange(4)
            if kind == 0:
                body = bytes(rnd.randrange(256) for _ in range(rnd.randrange(200)))
            else:
                body = bytearray(rnd.choice(seeds))
                for _ in range(rnd.randrange(1, 8)):
                    op = rnd.randrange(4)
                    pos = rnd.randrange(len(body) + 1)
                    if op == 0 and body:
                        del body[min(pos, len(body) - 1)]
                    elif op == 1:
                        body.insert(pos, rnd.choice(alphabet))
                    elif op == 2 and body:
                        body[min(pos, len(body) - 1)] = rnd.randrange(256)
                    else:
                        body = body[:pos]
                body = bytes(body)
            method, path = rnd.choice(paths)
            st, hdr, resp = self.c.api(method, path, data=body, headers=JSON)
            self.statuses.append(st)
            self.assertIn(st, OK_CODES, "fuzz #%d %s %s %r -> %s %r"
                          % (i, method, path, body[:200], st, resp))
            if st >= 400:
                self.assertIsInstance(resp, dict, (i, body[:100], resp))
        st, _, _ = self.c.api("GET", "/livez")
        self.assertEqual(st, 200)

    def test_zz_still_alive_and_sound(self):
        # Runs last (alphabetical): the daemon survived everything above.
        self.assertTrue(self.d.alive(), H.log_tail(self.d.log_path))
        st, _, _ = self.c.api("GET", "/livez")
        self.assertEqual(st, 200)
        st, _, _ = self.c.api("GET", "/readyz")
        self.assertEqual(st, 200)
        self.assertFalse([s for s in self.statuses if s >= 500])
        o = self.order_bytes()
        st, _, _ = self.c.api("POST", "/v1/orders", json=o)
        self.assertEqual(st, 201)
        H.wait_terminal(self.c, [o["id"]], timeout=60)
        m = self.d.metrics()
        fivexx = sum(v for n, lab, v in m["samples"]
                     if n == "orderd_http_requests_total"
                     and lab.get("code", "").startswith("5"))
        self.assertEqual(fivexx, 0, "daemon counted 5xx responses")
        rc = self.d.stop(timeout=30)
        self.assertEqual(rc, 0, H.log_tail(self.d.log_path))
        rc, out = H.verify(self.db.uri)
        self.assertEqual(rc, 0, out)


if __name__ == "__main__":
    H.main()
