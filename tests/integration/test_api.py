"""test_api: every route, status code and error code of API.md's orders,
products and locks against the real orderd, plus the processing rules
(all-or-nothing reservation, rejects, retries to `failed`, requeue). Black
box: HTTP only, plus orderctl verify. The HTTP edges (protocol, auth,
failures inside, a stuck store, retries) are in test_api_http.py."""

import datetime
import os
import socket
import sys
import json
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import order  # noqa: E402


def uid(prefix="o"):
    return "%s-%s" % (prefix, H.rand_suffix(10))


def parse_time(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc)


class Base(unittest.TestCase):
    env = {"ORDERD_WORKERS": "2"}
    token = None

    @classmethod
    def setUpClass(cls):
        cls.db = H.Database(cls.__name__)
        cls.d = H.Daemon(cls.db.uri, env=cls.env, name=cls.__name__,
                         token=cls.token)
        try:
            cls.d.start()
        except Exception:
            cls.db.drop()
            raise
        cls.c = cls.d.client

    @classmethod
    def tearDownClass(cls):
        cls.d.stop(timeout=15)
        cls.db.drop()

    def api(self, *a, **kw):
        return self.c.api(*a, **kw)

    def assertError(self, resp, status, code):
        st, hdr, body = resp
        self.assertEqual(st, status, "expected %d %s, got %s %r"
                         % (status, code, st, body))
        self.assertIsInstance(body, dict, "error body not JSON: %r" % (body,))
        self.assertIn("error", body)
        self.assertEqual(body["error"].get("code"), code, body)
        self.assertIsInstance(body["error"].get("message"), str, body)
        self.assertTrue(hdr.get("Content-Type", "").startswith(
            "application/json"), hdr.get("Content-Type"))
        return body

    def assertOrderShape(self, o, src=None):
        for k in ("id", "customer", "items", "metadata", "status", "attempts",
                  "reason", "created_at", "updated_at", "finished_at"):
            self.assertIn(k, o, "order lacks %s: %r" % (k, o))
        self.assertIn(o["status"], H.STATUSES)
        self.assertIsInstance(o["attempts"], int)
        self.assertRegex(o["created_at"], H.TIME_RE)
        self.assertRegex(o["updated_at"], H.TIME_RE)
        self.assertIsInstance(o["metadata"], dict)
        if o["status"] in H.TERMINAL:
            self.assertRegex(o["finished_at"], H.TIME_RE)
            self.assertGreaterEqual(parse_time(o["finished_at"]),
                                    parse_time(o["created_at"]))
        else:
            self.assertIsNone(o["finished_at"])
        if src is not None:
            self.assertEqual(o["id"], src["id"])
            self.assertEqual(o["customer"], src["customer"])
            self.assertEqual(sorted((i["sku"], i["qty"]) for i in o["items"]),
                             sorted((i["sku"], i["qty"]) for i in src["items"]))
            self.assertEqual(o["metadata"], src.get("metadata") or {})

    def submit(self, o, expect=201):
        st, hdr, body = self.api("POST", "/v1/orders", json=o)
        self.assertEqual(st, expect, body)
        return hdr, body

    def stock(self, sku):
        st, _, body = self.api("GET", "/v1/products/" + sku)
        self.assertEqual(st, 200, body)
        return body["stock"]


class OrdersTest(Base):
    def test_submit_201(self):
        sku = uid("SKU")
        H.set_stock(self.c, sku, 100)
        o = order(uid(), "cust-42", [{"sku": sku, "qty": 2}])
        before = datetime.datetime.now(datetime.timezone.utc)
        hdr, body = self.submit(o)
        self.assertTrue(hdr.get("Location", "").endswith("/v1/orders/" + o["id"]),
                        hdr.get("Location"))
        self.assertOrderShape(body, o)
        self.assertEqual(body["status"], "pending")
        self.assertEqual(body["attempts"], 0)
        self.assertIsNone(body["reason"])
        self.assertIsNone(body["finished_at"])
        self.assertEqual(body["metadata"], {})
        created = parse_time(body["created_at"])
        self.assertLess(abs((created - before).total_seconds()), 60)
        st, _, got = self.api("GET", "/v1/orders/" + o["id"])
        self.assertEqual(st, 200)
        self.assertOrderShape(got, o)
        self.assertEqual(got["created_at"], body["created_at"])

    def test_metadata_forms(self):
        sku = uid("SKU")
        H.set_stock(self.c, sku, 100)
        for md in (None, {}):
            o = order(uid(), items=[{"sku": sku, "qty": 1}])
            o["metadata"] = md
            _, body = self.submit(o)
            self.assertEqual(body["metadata"], {})
        md = {"channel": "web", "n": 3, "nested": {"a": [1, 2, {"b": None}]},
              "u": "h\u00e9llo \u2603", "f": True}
        o = order(uid(), items=[{"sku": sku, "qty": 1}], metadata=md)
        _, body = self.submit(o)
        self.assertEqual(body["metadata"], md)
        st, _, got = self.api("GET", "/v1/orders/" + o["id"])
        self.assertEqual(got["metadata"], md)

    def test_replay_and_conflict(self):
        a, b = uid("SKU"), uid("SKU")
        H.set_stock(self.c, a, 1000)
        H.set_stock(self.c, b, 1000)
        o = order(uid(), "cust-7", [{"sku": a, "qty": 2}, {"sku": b, "qty": 3}],
                  metadata={"k": "v"})
        _, first = self.submit(o)
        replay = dict(o, items=list(reversed(o["items"])))
        _, again = self.submit(replay, expect=200)
        self.assertOrderShape(again, o)
        self.assertEqual(again["created_at"], first["created_at"])
        # Conflicts: quantity, customer, metadata, an extra item.
        for bad in (dict(o, items=[{"sku": a, "qty": 2}, {"sku": b, "qty": 4}]),
                    dict(o, customer="cust-8"),
                    dict(o, metadata={"k": "w"}),
                    dict(o, metadata=None),
                    dict(o, items=[{"sku": a, "qty": 2}])):
            self.assertError(self.api("POST", "/v1/orders", json=bad), 409,
                             "conflict")
        # Missing metadata and {} are the same thing.
        o2 = order(uid(), items=[{"sku": a, "qty": 1}])
        self.submit(o2)
        self.submit(dict(o2, metadata={}), expect=200)
        self.submit(dict(o2, metadata=None), expect=200)
        # Replays hold for the order's whole life (G2): after completion too.
        done = H.wait_terminal(self.c, [o["id"]], timeout=30)[o["id"]]
        self.assertEqual(done["status"], "completed", done)
        _, late = self.submit(replay, expect=200)
        self.assertEqual(late["status"], "completed")
        self.assertError(self.api("POST", "/v1/orders",
                                  json=dict(o, customer="x")), 409, "conflict")

    def test_batch(self):
        sku = uid("SKU")
        H.set_stock(self.c, sku, 1000)
        pre = order(uid(), items=[{"sku": sku, "qty": 1}])
        self.submit(pre)
        a = order(uid(), items=[{"sku": sku, "qty": 1}])
        b = order(uid(), items=[{"sku": sku, "qty": 2}], metadata={"x": 1})
        a_conf = dict(a, items=[{"sku": sku, "qty": 5}])
        bad = order(uid(), items=[{"sku": sku, "qty": 0}])
        bad_id = order("bad id!", items=[{"sku": sku, "qty": 1}])
        entries = [a, b, dict(a), a_conf, bad, pre, bad_id,
                   dict(b, items=list(b["items"]))]
        st, _, body = self.api("POST", "/v1/orders/batch",
                               json={"orders": entries})
        self.assertEqual(st, 200, body)
        res = body["results"]
        self.assertEqual(len(res), len(entries))
        self.assertEqual([r["status"] for r in res],
                         [201, 201, 200, 409, 400, 200, 400, 200], res)
        self.assertOrderShape(res[0]["order"], a)
        self.assertOrderShape(res[1]["order"], b)
        self.assertOrderShape(res[2]["order"], a)
        self.assertEqual(res[3]["error"]["code"], "conflict")
        self.assertEqual(res[4]["error"]["code"], "invalid_request")
        self.assertOrderShape(res[5]["order"], pre)
        self.assertEqual(res[6]["error"]["code"], "invalid_request")
        for r in (res[0], res[1]):
            st, _, got = self.api("GET", "/v1/orders/" + r["order"]["id"])
            self.assertEqual(st, 200)
        st, _, got = self.api("GET", "/v1/orders/" + bad["id"])
        self.assertEqual(st, 404)
        # The in-batch conflict did not change the stored order.
        st, _, got = self.api("GET", "/v1/orders/" + a["id"])
        self.assertEqual(got["items"], [{"sku": sku, "qty": 1}])

    def test_batch_envelope_errors(self):
        for body in ({}, {"orders": {}}, {"orders": "x"}, {"orders": None},
                     {"orders": [], "extra": 1}, {"order": []}):
            self.assertError(self.api("POST", "/v1/orders/batch", json=body),
                             400, "invalid_request")
        self.assertError(self.api("POST", "/v1/orders/batch", data="[]",
                                  headers={"Content-Type": "application/json"}),
                         400, "invalid_request")

    def test_get_404(self):
        self.assertError(self.api("GET", "/v1/orders/" + uid()), 404,
                         "not_found")

    def test_get_wait_ms_terminal(self):
        o = order(uid(), items=[{"sku": uid("NOPE"), "qty": 1}])
        self.submit(o)
        t0 = time.time()
        st, _, body = H.get_order(self.c, o["id"], wait_ms=20000)
        elapsed = time.time() - t0
        self.assertEqual(st, 200)
        self.assertEqual(body["status"], "rejected", body)
        self.assertEqual(body["reason"], "unknown_sku")
        self.assertLess(elapsed, 10, "wait_ms did not return when terminal")
        # Already terminal: immediately.
        t0 = time.time()
        st, _, body = H.get_order(self.c, o["id"], wait_ms=20000)
        self.assertLess(time.time() - t0, 1.0)
        self.assertEqual(body["status"], "rejected")
        # Bounds.
        self.assertError(self.api("GET", "/v1/orders/%s?wait_ms=30001" % o["id"]),
                         400, "invalid_request")
        self.assertError(self.api("GET", "/v1/orders/%s?wait_ms=-1" % o["id"]),
                         400, "invalid_request")
        self.assertError(self.api("GET", "/v1/orders/%s?wait_ms=abc" % o["id"]),
                         400, "invalid_request")
        st, _, _ = self.api("GET", "/v1/orders/%s?wait_ms=0" % o["id"])
        self.assertEqual(st, 200)
        # Unknown order with wait_ms: 404, no waiting.
        t0 = time.time()
        self.assertError(self.api("GET", "/v1/orders/%s?wait_ms=5000" % uid()),
                         404, "not_found")
        self.assertLess(time.time() - t0, 4.5)

    def test_list_and_paging(self):
        sku = uid("SKU")
        H.set_stock(self.c, sku, 1000)
        mine = []
        for i in range(23):
            o = order(uid("L%02d" % i), items=[{"sku": sku, "qty": 1}])
            self.submit(o)
            mine.append(o["id"])
        H.wait_terminal(self.c, mine, timeout=30)
        all_orders = H.list_all(self.c, limit=7)
        ids = [o["id"] for o in all_orders]
        self.assertEqual(len(ids), len(set(ids)), "paging repeated an order")
        for oid in mine:
            self.assertIn(oid, ids)
        times = [o["created_at"] for o in all_orders]
        self.assertEqual(times, sorted(times), "not oldest first")
        pos = [ids.index(oid) for oid in mine]
        self.assertEqual(pos, sorted(pos), "submission order not kept")
        # Same set with the default limit, and limit=1000.
        st, _, body = self.api("GET", "/v1/orders")
        self.assertEqual(st, 200)
        self.assertIn("next_cursor", body)
        self.assertLessEqual(len(body["orders"]), 100)
        st, _, body = self.api("GET", "/v1/orders?limit=1000")
        self.assertEqual(st, 200)
        if len(ids) <= 1000:
            self.assertEqual([o["id"] for o in body["orders"]], ids)
            self.assertIsNone(body["next_cursor"])
        # Filter.
        st, _, body = self.api("GET", "/v1/orders?status=completed&limit=1000")
        self.assertEqual(st, 200)
        self.assertTrue(body["orders"])
        for o in body["orders"]:
            self.assertEqual(o["status"], "completed")
        for oid in mine:
            self.assertIn(oid, [o["id"] for o in body["orders"]])
        done = H.list_all(self.c, query="status=completed", limit=3)
        self.assertEqual(len(done), len({o["id"] for o in done}))
        for st_name in H.STATUSES:
            st, _, body = self.api("GET", "/v1/orders?status=" + st_name)
            self.assertEqual(st, 200, (st_name, body))
        # Bounds and garbage.
        for q in ("limit=0", "limit=1001", "limit=-1", "limit=abc", "limit=",
                  "status=bogus", "cursor=%00garbage%FF", "cursor=garbage!!",
                  "cursor=" + "A" * 600):
            self.assertError(self.api("GET", "/v1/orders?" + q), 400,
                             "invalid_request")

    def test_requeue_cancel_conflicts(self):
        o = order(uid(), items=[{"sku": uid("NOPE"), "qty": 1}])
        self.submit(o)
        H.wait_terminal(self.c, [o["id"]], timeout=30)
        self.assertError(self.api("POST", "/v1/orders/%s/requeue" % o["id"]),
                         409, "conflict")
        self.assertError(self.api("POST", "/v1/orders/%s/cancel" % o["id"]),
                         409, "conflict")
        self.assertError(self.api("POST", "/v1/orders/%s/requeue" % uid()),
                         404, "not_found")
        self.assertError(self.api("POST", "/v1/orders/%s/cancel" % uid()),
                         404, "not_found")

    def test_processing_rules(self):
        a, b = uid("SKU"), uid("SKU")
        H.set_stock(self.c, a, 10)
        H.set_stock(self.c, b, 5)
        x = order(uid(), items=[{"sku": a, "qty": 3}, {"sku": b, "qty": 6}])
        y = order(uid(), items=[{"sku": a, "qty": 3}, {"sku": uid("NOPE"), "qty": 1}])
        self.submit(x)
        self.submit(y)
        got = H.wait_terminal(self.c, [x["id"], y["id"]], timeout=30)
        self.assertEqual(got[x["id"]]["status"], "rejected")
        self.assertEqual(got[x["id"]]["reason"], "insufficient_stock")
        self.assertEqual(got[y["id"]]["status"], "rejected")
        self.assertEqual(got[y["id"]]["reason"], "unknown_sku")
        self.assertOrderShape(got[x["id"]], x)
        self.assertEqual(self.stock(a), 10)
        self.assertEqual(self.stock(b), 5)
        z = order(uid(), items=[{"sku": a, "qty": 3}, {"sku": b, "qty": 5}])
        self.submit(z)
        zz = H.wait_terminal(self.c, [z["id"]], timeout=30)[z["id"]]
        self.assertEqual(zz["status"], "completed", zz)
        self.assertIsNone(zz["reason"])
        self.assertGreaterEqual(zz["attempts"], 1)
        self.assertOrderShape(zz, z)
        self.assertEqual(self.stock(a), 7)
        self.assertEqual(self.stock(b), 0)
        w = order(uid(), items=[{"sku": b, "qty": 1}])
        self.submit(w)
        ww = H.wait_terminal(self.c, [w["id"]], timeout=30)[w["id"]]
        self.assertEqual((ww["status"], ww["reason"]),
                         ("rejected", "insufficient_stock"))
        self.assertEqual(self.stock(b), 0)
        # Restocking is an adjustment; completed reservations stay.
        H.set_stock(self.c, b, 2)
        self.assertEqual(self.stock(b), 2)


class ProductsTest(Base):
    def test_products(self):
        sku = uid("SKU")
        self.assertError(self.api("GET", "/v1/products/" + sku), 404,
                         "not_found")
        st, _, body = self.api("PUT", "/v1/products/" + sku, json={"stock": 5})
        self.assertEqual(st, 200, body)
        self.assertEqual(body["sku"], sku)
        self.assertEqual(body["stock"], 5)
        self.assertRegex(body["updated_at"], H.TIME_RE)
        st, _, body = self.api("PUT", "/v1/products/" + sku,
                               json={"stock": 1000000000})
        self.assertEqual((st, body["stock"]), (200, 1000000000))
        st, _, body = self.api("PUT", "/v1/products/" + sku, json={"stock": 0})
        self.assertEqual((st, body["stock"]), (200, 0))
        st, _, body = self.api("GET", "/v1/products/" + sku)
        self.assertEqual((st, body["sku"], body["stock"]), (200, sku, 0))
        for bad in ({"stock": -1}, {"stock": 1000000001}, {"stock": "5"},
                    {"stock": 1.5}, {}, {"stock": 5, "x": 1}, {"stock": None},
                    {"stock": True}):
            self.assertError(self.api("PUT", "/v1/products/" + sku, json=bad),
                             400, "invalid_request")
        st, _, body = self.api("GET", "/v1/products/" + sku)
        self.assertEqual(body["stock"], 0)
        st, _, _ = self.api("PUT", "/v1/products/" + "x" * 65, json={"stock": 1})
        self.assertIn(st, (400, 404))
        st, _, _ = self.api("PUT", "/v1/products/bad%20sku", json={"stock": 1})
        self.assertIn(st, (400, 404))

    def test_product_list(self):
        skus = sorted(uid("PL%02d" % i) for i in range(12))
        for s in skus:
            H.set_stock(self.c, s, 1)
        got = H.list_all(self.c, "/v1/products", "products", limit=5)
        names = [p["sku"] for p in got]
        self.assertEqual(len(names), len(set(names)))
        for s in skus:
            self.assertIn(s, names)
        for p in got:
            self.assertIn("stock", p)
            self.assertRegex(p["updated_at"], H.TIME_RE)
        for q in ("limit=0", "limit=1001", "cursor=garbage!!"):
            self.assertError(self.api("GET", "/v1/products?" + q), 400,
                             "invalid_request")


class LocksTest(Base):
    def acquire(self, name, owner, ttl=10000, **kw):
        body = {"owner": owner, "ttl_ms": ttl}
        body.update(kw)
        return self.api("POST", "/v1/locks/%s/acquire" % name, json=body)

    def test_wait_of_departed_client_leaves_lock_free(self):
        """A waiting acquire whose client hangs up must not leave the lock
        granted to nobody: the grant it could not deliver is released."""
        import socket
        name = uid("lock")
        st, _, g = self.acquire(name, "holder", ttl=400)
        self.assertEqual(st, 200, g)
        body = json.dumps({"owner": "gone", "ttl_ms": 600000,
                           "wait_ms": 3000}).encode()
        host, port = self.d.url.rsplit("/", 1)[-1].split(":")
        s = socket.create_connection((host, int(port)))
        s.sendall(b"POST /v1/locks/%s/acquire HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n%s"
                  % (name.encode(), len(body), body))
        time.sleep(0.2)
        s.close()  # gives up while suspended, before the holder's ttl ends
        time.sleep(1.5)  # the waiter has retried and granted by now
        st, _, cur = self.api("GET", "/v1/locks/" + name)
        self.assertEqual(st, 404, "lock held by a departed client: %r" % cur)
        st, _, g2 = self.acquire(name, "next")
        self.assertEqual(st, 200, g2)
        self.assertGreater(g2["fence"], g["fence"])

    def test_lock_lifecycle(self):
        name = uid("lock")
        st, _, g = self.acquire(name, "svc-a")
        self.assertEqual(st, 200, g)
        self.assertEqual(g["name"], name)
        self.assertEqual(g["owner"], "svc-a")
        self.assertIsInstance(g["fence"], int)
        self.assertRegex(g["expires_at"], H.TIME_RE)
        body = self.assertError(self.acquire(name, "svc-b"), 409, "lock_held")
        self.assertEqual(body.get("holder"), "svc-a")
        self.assertRegex(body.get("expires_at", ""), H.TIME_RE)
        self.assertError(self.acquire(name, "svc-a"), 409, "lock_held")
        st, _, cur = self.api("GET", "/v1/locks/" + name)
        self.assertEqual(st, 200, cur)
        self.assertEqual(cur.get("owner", cur.get("holder")), "svc-a")
        # Renew.
        time.sleep(0.01)
        st, _, r = self.api("POST", "/v1/locks/%s/renew" % name,
                            json={"owner": "svc-a", "fence": g["fence"],
                                  "ttl_ms": 20000})
        self.assertEqual(st, 200, r)
        self.assertRegex(r["expires_at"], H.TIME_RE)
        self.assertGreater(parse_time(r["expires_at"]),
                           parse_time(g["expires_at"]))
        self.assertError(self.api("POST", "/v1/locks/%s/renew" % name,
                                  json={"owner": "svc-a",
                                        "fence": g["fence"] + 1000,
                                        "ttl_ms": 1000}), 409, "lock_lost")
        self.assertError(self.api("POST", "/v1/locks/%s/renew" % name,
                                  json={"owner": "svc-b", "fence": g["fence"],
                                        "ttl_ms": 1000}), 409, "lock_lost")
        # Release.
        self.assertError(self.api("POST", "/v1/locks/%s/release" % name,
                                  json={"owner": "svc-a",
                                        "fence": g["fence"] - 1}),
                         409, "lock_lost")
        st, _, body = self.api("POST", "/v1/locks/%s/release" % name,
                               json={"owner": "svc-a", "fence": g["fence"]})
        self.assertEqual(st, 204, body)
        self.assertIsNone(body)
        self.assertError(self.api("POST", "/v1/locks/%s/release" % name,
                                  json={"owner": "svc-a", "fence": g["fence"]}),
                         409, "lock_lost")
        self.assertError(self.api("GET", "/v1/locks/" + name), 404, "not_found")
        self.assertError(self.api("POST", "/v1/locks/%s/renew" % name,
                                  json={"owner": "svc-a", "fence": g["fence"],
                                        "ttl_ms": 1000}), 409, "lock_lost")
        st, _, g2 = self.acquire(name, "svc-b")
        self.assertEqual(st, 200)
        self.assertGreater(g2["fence"], g["fence"])

    def test_lock_expiry(self):
        name = uid("lock")
        st, _, g = self.acquire(name, "svc-a", ttl=200)
        self.assertEqual(st, 200, g)
        time.sleep(0.7)
        self.assertError(self.api("GET", "/v1/locks/" + name), 404, "not_found")
        st, _, g2 = self.acquire(name, "svc-b", ttl=5000)
        self.assertEqual(st, 200, g2)
        self.assertGreater(g2["fence"], g["fence"])
        self.assertError(self.api("POST", "/v1/locks/%s/renew" % name,
                                  json={"owner": "svc-a", "fence": g["fence"],
                                        "ttl_ms": 1000}), 409, "lock_lost")
        self.assertError(self.api("POST", "/v1/locks/%s/release" % name,
                                  json={"owner": "svc-a", "fence": g["fence"]}),
                         409, "lock_lost")

    def test_fences_increase_across_locks(self):
        fences = []
        for i in range(6):
            st, _, g = self.acquire(uid("fl%d" % i), "svc-%d" % i)
            self.assertEqual(st, 200, g)
            fences.append(g["fence"])
        self.assertEqual(fences, sorted(set(fences)), fences)

    def test_acquire_wait(self):
        name = uid("lock")
        st, _, g = self.acquire(name, "svc-a", ttl=600)
        self.assertEqual(st, 200)
        t0 = time.time()
        st, _, g2 = self.acquire(name, "svc-b", ttl=5000, wait_ms=8000)
        elapsed = time.time() - t0
        self.assertEqual(st, 200, g2)
        self.assertEqual(g2["owner"], "svc-b")
        self.assertGreater(g2["fence"], g["fence"])
        self.assertGreater(elapsed, 0.2)
        self.assertLess(elapsed, 6)
        # Times out while the holder keeps it.
        t0 = time.time()
        body = self.assertError(self.acquire(name, "svc-c", ttl=1000,
                                             wait_ms=400), 409, "lock_held")
        elapsed = time.time() - t0
        self.assertEqual(body.get("holder"), "svc-b")
        self.assertGreater(elapsed, 0.3)
        self.assertLess(elapsed, 4)
        # A release wakes a waiter.
        import threading
        res = {}

        def waiter():
            res["r"] = self.acquire(name, "svc-d", ttl=1000, wait_ms=10000)
            res["t"] = time.time()
        th = threading.Thread(target=waiter)
        th.start()
        time.sleep(0.3)
        t_rel = time.time()
        st, _, _ = self.api("POST", "/v1/locks/%s/release" % name,
                            json={"owner": "svc-b", "fence": g2["fence"]})
        self.assertEqual(st, 204)
        th.join(15)
        self.assertEqual(res["r"][0], 200, res["r"])
        self.assertLess(res["t"] - t_rel, 3)

    def test_lock_validation(self):
        name = uid("lock")
        for body in ({"owner": "a", "ttl_ms": 99}, {"owner": "a", "ttl_ms": 600001},
                     {"owner": "a"}, {"ttl_ms": 1000}, {"owner": "", "ttl_ms": 1000},
                     {"owner": "a b", "ttl_ms": 1000},
                     {"owner": "x" * 65, "ttl_ms": 1000},
                     {"owner": "a", "ttl_ms": 1000, "wait_ms": 30001},
                     {"owner": "a", "ttl_ms": 1000, "bogus": 1}):
            self.assertError(self.api("POST", "/v1/locks/%s/acquire" % name,
                                      json=body), 400, "invalid_request")
        for body in ({"owner": "a", "ttl_ms": 1000}, {"owner": "a", "fence": "1",
                                                       "ttl_ms": 1000}):
            self.assertError(self.api("POST", "/v1/locks/%s/renew" % name,
                                      json=body), 400, "invalid_request")
        self.assertError(self.api("POST", "/v1/locks/%s/release" % name,
                                  json={"owner": "a"}), 400, "invalid_request")
        st, _, _ = self.acquire("x" * 65, "a")
        self.assertIn(st, (400, 404))


if __name__ == "__main__":
    H.main()
