"""test_api: every route, status code and error code of API.md against the
real orderd, plus the processing rules (all-or-nothing reservation, rejects,
retries to `failed`, requeue). Black box: HTTP only, plus orderctl verify."""

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
        st, _, al = self.api("GET", "/v1/alerts")
        self.assertEqual(st, 200, al)
        self.assertIsInstance(al.get("alerts"), list)
        for a in al["alerts"]:
            for k in ("name", "state", "value", "threshold", "since"):
                self.assertIn(k, a, a)
            self.assertIn(a["state"], ("firing", "inactive"))


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
           "ORDERD_RETRY_CAP_MS": "60000"}

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
            "ORDERD_RETRY_CAP_MS": "200"})
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
