"""Black-box test of the dead letters against the real orderd (harness.py
starts it on a free port with a fresh database, on the backend CTest
names): orders fail in two different ways, GET /v1/failures shows the two
groups with the right counts and times, and after the cause is "fixed"
(the failpoint turned off) POST /v1/failures/{fingerprint}/requeue brings
one group back: its orders complete, the other group stays. Malformed
fingerprints are 400 invalid_request, unknown ones requeue nothing, both
routes need the token. `orderctl failures` and `orderctl failures requeue`
show and do the same.

The two ways to fail: a transient processing error on every attempt
(failpoint fail_process=1, ORDERD_MAX_ATTEMPTS=2), which ends in the
store error's text; and a lease that runs out while the batch is held
(slow_process_ms past ORDERD_LEASE_MS, one attempt), "lease expired".
"""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (TIME_RE, Daemon, Database, order, parse_time,  # noqa: E402
                     rand_suffix, set_stock, wait_terminal)

TOKEN = "failures-token-" + rand_suffix(12)
SKU = "FP-SKU"
N_TRANSIENT = 6
N_LEASE = 3


def ctl(daemon, *args, token=TOKEN):
    return harness.orderctl([str(a) for a in args], url=daemon.url,
                            token=token, env={"ORDERD_TOKEN": token or ""})


class FailuresTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.db = Database("failures")
        base = {"ORDERD_API_TOKENS": TOKEN, "ORDERD_WORKERS": "2"}
        cls.d = Daemon(cls.db.uri, token=TOKEN, name="failures",
                       env=dict(base, ORDERD_FAILPOINTS="fail_process=1",
                                ORDERD_MAX_ATTEMPTS="2",
                                ORDERD_RETRY_BASE_MS="1",
                                ORDERD_RETRY_MAX_MS="5")).start()
        c = cls.d.client
        set_stock(c, SKU, 1000)
        p = "tr-" + rand_suffix(4)
        cls.transient = ["%s-%d" % (p, i) for i in range(N_TRANSIENT)]
        for oid in cls.transient:
            st, _, body = c.api("POST", "/v1/orders",
                                json=order(oid, items=[{"sku": SKU, "qty": 1}]))
            assert st == 201, (st, body)
        done = wait_terminal(c, cls.transient, timeout=60)
        cls.transient_reason = done[cls.transient[0]]["reason"]
        assert all(o["status"] == "failed" for o in done.values()), done

        # Second way: the lease runs out while processing sleeps.
        cls.d.restart(env=dict(base, ORDERD_FAILPOINTS="slow_process_ms=700",
                               ORDERD_LEASE_MS="100", ORDERD_REAP_MS="10",
                               ORDERD_MAX_ATTEMPTS="1"))
        c = cls.d.client
        p = "le-" + rand_suffix(4)
        cls.lease = ["%s-%d" % (p, i) for i in range(N_LEASE)]
        for oid in cls.lease:
            st, _, body = c.api("POST", "/v1/orders",
                                json=order(oid, items=[{"sku": SKU, "qty": 1}]))
            assert st == 201, (st, body)
        done = wait_terminal(c, cls.lease, timeout=60)
        assert all(o["status"] == "failed" and o["reason"] == "lease expired"
                   for o in done.values()), done

        # The fix: no failpoints any more.
        cls.d.restart(env=base)

    @classmethod
    def tearDownClass(cls):
        cls.d.stop(timeout=10)
        cls.db.drop()

    def groups(self, query=""):
        st, _, body = self.d.api("GET", "/v1/failures" + query)
        self.assertEqual(st, 200, body)
        self.assertEqual(set(body), {"failures"})
        return body["failures"]

    def test_1_groups_then_requeue_one(self):
        gs = self.groups()
        self.assertEqual(len(gs), 2, gs)
        for g in gs:
            self.assertEqual(set(g), {"fingerprint", "sample_reason", "count",
                                      "first_seen", "last_seen"})
            self.assertRegex(g["fingerprint"], r"^[0-9a-f]{16}$")
            self.assertRegex(g["first_seen"], TIME_RE)
            self.assertRegex(g["last_seen"], TIME_RE)
            self.assertLessEqual(parse_time(g["first_seen"]),
                                 parse_time(g["last_seen"]))
        # Largest first.
        big, small = gs
        self.assertEqual(big["count"], N_TRANSIENT)
        self.assertEqual(big["sample_reason"], self.transient_reason)
        self.assertEqual(small["count"], N_LEASE)
        self.assertEqual(small["sample_reason"], "lease expired")
        self.assertNotEqual(big["fingerprint"], small["fingerprint"])
        # finished_at of the group's orders bound first/last seen.
        fin = [parse_time(self.d.api("GET", "/v1/orders/" + o)[2]["finished_at"])
               for o in self.transient]
        self.assertAlmostEqual(parse_time(big["first_seen"]), min(fin), places=3)
        self.assertAlmostEqual(parse_time(big["last_seen"]), max(fin), places=3)
        # limit takes the largest.
        self.assertEqual([g["fingerprint"] for g in self.groups("?limit=1")],
                         [big["fingerprint"]])

        # orderctl shows the same groups.
        p = ctl(self.d, "failures")
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = p.stdout.splitlines()
        self.assertTrue(lines[0].startswith("FINGERPRINT"), p.stdout)
        self.assertTrue(lines[1].startswith(big["fingerprint"]), p.stdout)
        self.assertIn(" %d " % N_TRANSIENT, lines[1])
        self.assertTrue(lines[2].startswith(small["fingerprint"]), p.stdout)
        self.assertTrue(lines[2].endswith("lease expired"), p.stdout)
        p = ctl(self.d, "--json", "failures")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout)["failures"], gs)

        # The cause is fixed: requeue the transient group (by orderctl),
        # its orders complete; the other group stays failed.
        p = ctl(self.d, "failures", "requeue", big["fingerprint"])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.strip(), "requeued %d failed orders of %s"
                         % (N_TRANSIENT, big["fingerprint"]))
        done = wait_terminal(self.d.client, self.transient, timeout=30)
        for oid, o in done.items():
            self.assertEqual(o["status"], "completed", o)
        for oid in self.lease:
            st, _, o = self.d.api("GET", "/v1/orders/" + oid)
            self.assertEqual((st, o["status"]), (200, "failed"))
        gs2 = self.groups()
        self.assertEqual(gs2, [small])
        # Again: nothing left in that group, and not an error.
        st, _, body = self.d.api(
            "POST", "/v1/failures/%s/requeue" % big["fingerprint"])
        self.assertEqual((st, body), (200, {"fingerprint": big["fingerprint"],
                                            "requeued": 0}))
        p = ctl(self.d, "--json", "failures", "requeue", small["fingerprint"][::-1])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout)["requeued"], 0)
        rc, out = harness.verify(self.db.uri)
        self.assertEqual(rc, 0, out)

    def test_2_bad_fingerprint(self):
        for fp in ("XYZ", "0123456789ABCDEF", "0123456789abcde",
                   "0123456789abcdef0", "0123456789abcdeg", "a" * 70):
            st, _, body = self.d.api("POST", "/v1/failures/%s/requeue" % fp)
            self.assertEqual(st, 400, (fp, body))
            self.assertEqual(body["error"]["code"], "invalid_request")
            self.assertIn("fingerprint", body["error"]["message"])
        st, _, body = self.d.api("GET", "/v1/failures?limit=0")
        self.assertEqual((st, body["error"]["code"]), (400, "invalid_request"))
        st, _, body = self.d.api("GET", "/v1/failures?limit=1001")
        self.assertEqual(st, 400)
        # A body other than {} is refused, as on the order requeue.
        st, _, body = self.d.api("POST", "/v1/failures/%s/requeue" % ("0" * 16),
                                 json={"force": True})
        self.assertEqual((st, body["error"]["code"]), (400, "invalid_request"))
        st, _, body = self.d.api("DELETE", "/v1/failures")
        self.assertEqual(st, 405)
        # orderctl refuses it before asking.
        p = ctl(self.d, "failures", "requeue", "nope")
        self.assertEqual(p.returncode, 64, p.stderr)
        self.assertIn("fingerprint", p.stderr)

    def test_3_auth(self):
        fp = self.groups()[0]["fingerprint"]
        for method, path in (("GET", "/v1/failures"),
                             ("POST", "/v1/failures/%s/requeue" % fp)):
            st, _, body = self.d.api(method, path, token="wrong-" + TOKEN)
            self.assertEqual((st, body["error"]["code"]), (401, "unauthorized"))
            r = harness.requests.request(method, self.d.url + path, timeout=10)
            self.assertEqual(r.status_code, 401)
        # Nothing was requeued by the refused calls.
        self.assertEqual(self.groups()[0]["count"], N_LEASE)
        p = ctl(self.d, "failures", token="wrong")
        self.assertEqual(p.returncode, 77, p.stderr)
        self.assertNotIn("wrong", p.stderr)


if __name__ == "__main__":
    harness.main()
