"""Black-box test of GET /v1/orders/{id}/history against the real orderd:
the trail starts with the submission, shows each claim with its fence and
attempt, the retries, the outcome with its reason, and an operator's
requeue; unknown ids are 404, malformed ones 400, the route needs the
token. (Every answer is also checked against docs/openapi.yaml by the
harness.)
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Daemon, Database, order, rand_suffix,  # noqa: E402
                     set_stock, wait_terminal)

TOKEN = "history-token-" + rand_suffix(12)
SKU = "HIST-SKU"


def names(hist):
    return [e["event"] for e in hist["events"]]


class HistoryTest(unittest.TestCase):

    def test_completed_order(self):
        with Database("history") as db, Daemon(
                db.uri, token=TOKEN, name="history",
                env={"ORDERD_API_TOKENS": TOKEN}) as d:
            c = d.client
            set_stock(c, SKU, 10)
            oid = "h-" + rand_suffix(6)
            st, _, _ = c.api("POST", "/v1/orders",
                             json=order(oid, items=[{"sku": SKU, "qty": 1}]))
            self.assertEqual(st, 201)
            done = wait_terminal(c, [oid])[oid]
            self.assertEqual(done["status"], "completed")
            st, _, h = c.api("GET", "/v1/orders/%s/history" % oid)
            self.assertEqual(st, 200, h)
            self.assertEqual(h["id"], oid)
            self.assertFalse(h["truncated"])
            ev = h["events"]
            self.assertEqual(ev[0]["event"], "submit")
            self.assertEqual(ev[0]["at"], done["created_at"])
            self.assertIsNone(ev[0]["fence"])
            self.assertEqual(ev[-1]["event"], "complete")
            self.assertGreater(ev[-1]["fence"], 0)
            self.assertEqual(ev[-1]["at"], done["finished_at"])
            self.assertEqual([e["at"] for e in ev], sorted(e["at"] for e in ev))

            st, _, body = c.api("GET", "/v1/orders/nope-%s/history"
                                % rand_suffix(4))
            self.assertEqual((st, body["error"]["code"]), (404, "not_found"))
            st, _, body = c.api("GET", "/v1/orders/bad%20id/history")
            self.assertEqual((st, body["error"]["code"]),
                             (400, "invalid_request"))
            st, _, body = c.api("GET", "/v1/orders/%s/history" % oid,
                                token="wrong")
            self.assertEqual((st, body["error"]["code"]),
                             (401, "unauthorized"))

    def test_retried_failed_and_requeued(self):
        with Database("history_fail") as db, Daemon(
                db.uri, token=TOKEN, name="history-fail",
                env={"ORDERD_API_TOKENS": TOKEN,
                     "ORDERD_FAILPOINTS": "fail_process=1",
                     "ORDERD_MAX_ATTEMPTS": "2",
                     "ORDERD_RETRY_BASE_MS": "1",
                     "ORDERD_RETRY_MAX_MS": "5"}) as d:
            c = d.client
            set_stock(c, SKU, 10)
            oid = "hf-" + rand_suffix(6)
            st, _, _ = c.api("POST", "/v1/orders",
                             json=order(oid, items=[{"sku": SKU, "qty": 1}]))
            self.assertEqual(st, 201)
            done = wait_terminal(c, [oid])[oid]
            self.assertEqual(done["status"], "failed")
            st, _, h = c.api("GET", "/v1/orders/%s/history" % oid)
            self.assertEqual(st, 200, h)
            self.assertEqual(names(h), ["submit", "claim", "retry", "claim",
                                        "fail"])
            claims = [e for e in h["events"] if e["event"] == "claim"]
            self.assertEqual([e["attempt"] for e in claims], [1, 2])
            self.assertLess(claims[0]["fence"], claims[1]["fence"])
            fail = h["events"][-1]
            self.assertEqual(fail["fence"], claims[1]["fence"])
            self.assertEqual(fail["reason"], done["reason"])
            self.assertIsNotNone(fail["reason"])

            st, _, _ = c.api("POST", "/v1/orders/%s/requeue" % oid)
            self.assertEqual(st, 200)
            wait_terminal(c, [oid])
            st, _, h = c.api("GET", "/v1/orders/%s/history" % oid)
            self.assertEqual(names(h)[:6], ["submit", "claim", "retry",
                                            "claim", "fail", "requeue"])
            self.assertEqual(names(h)[-1], "fail")
            # Only the final outcome carries the order's reason.
            self.assertIsNone(h["events"][4]["reason"])


if __name__ == "__main__":
    unittest.main()
