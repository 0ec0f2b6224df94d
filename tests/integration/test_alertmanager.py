"""test_alertmanager: the built-in alerts reach a real Alertmanager.

A real prometheus-alertmanager (Debian package) runs on loopback on a free
port with its own storage directory, a one-route configuration grouping by
alertname and service, and gossip off. orderd POSTs its alert states to
it (ORDERD_ALERT_WEBHOOK_URL); every assertion reads Alertmanager's own
API (GET /api/v2/alerts), never orderd's word for it:

- HighErrorRate: the error rate crosses ORDERD_ALERT_ERROR_RATE (a source
  of failures the test controls, error_source()), the alert shows up
  active with the labels orderd promises; the failures stop, and after
  the hysteresis window the alert is resolved in Alertmanager long before
  the endsAt of its last firing update would have expired it.
- HighErrorRate from the confirm step: the confirm service
  (fake_confirm.py) starts answering 500, the alert fires in Alertmanager;
  it answers 200 again, the held orders complete and the alert resolves.
- BacklogTooOld: one worker stalls on its order (failpoint
  slow_process_ms) while a second order waits; the alert shows up, and is
  resolved once the waiting order is claimed.
"""

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from fake_confirm import FakeConfirm  # noqa: E402

AM_BIN = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")

AM_CONFIG = """\
route:
  receiver: "null"
  group_by: [alertname, service]
  group_wait: 1s
  group_interval: 5s
  repeat_interval: 1h
receivers:
  - name: "null"
"""


class Alertmanager:
    """A throwaway Alertmanager on 127.0.0.1: stopped by PID."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="am-", dir=H.TMP)
        self.port = None
        self.proc = None

    def start(self):
        cfg = os.path.join(self.dir, "alertmanager.yml")
        with open(cfg, "w") as f:
            f.write(AM_CONFIG)
        for _ in range(3):
            self.port = H.free_port()
            log = open(os.path.join(self.dir, "am.log"), "ab")
            self.proc = subprocess.Popen(
                [AM_BIN, "--config.file=" + cfg,
                 "--storage.path=" + os.path.join(self.dir, "data"),
                 "--web.listen-address=127.0.0.1:%d" % self.port,
                 "--cluster.listen-address="],
                stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL)
            log.close()
            with H._procs_lock:
                H._procs.add(self.proc)
            deadline = time.time() + 20
            while time.time() < deadline and self.proc.poll() is None:
                try:
                    if requests.get(self.url + "/-/ready",
                                    timeout=2).status_code == 200:
                        return self
                except requests.RequestException:
                    pass
                time.sleep(0.1)
            self.stop()
        raise AssertionError("alertmanager did not start:\n" +
                             H.log_tail(os.path.join(self.dir, "am.log")))

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    @property
    def webhook(self):
        return self.url + "/api/v2/alerts"

    def alerts(self, alertname):
        """Alertmanager's alerts of that name (resolved ones are not
        listed by its API)."""
        r = requests.get(self.url + "/api/v2/alerts", timeout=5,
                         params={"filter": 'alertname="%s"' % alertname})
        r.raise_for_status()
        return r.json()

    def groups(self):
        r = requests.get(self.url + "/api/v2/alerts/groups", timeout=5)
        r.raise_for_status()
        return r.json()

    def wait_active(self, alertname, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            got = [a for a in self.alerts(alertname)
                   if a["status"]["state"] == "active"]
            if got:
                return got
            time.sleep(0.2)
        raise AssertionError("%s not active in Alertmanager within %ds: %r"
                             % (alertname, timeout, self.alerts(alertname)))

    def wait_gone(self, alertname, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if not self.alerts(alertname):
                return
            time.sleep(0.2)
        raise AssertionError("%s still in Alertmanager after %ds: %r"
                             % (alertname, timeout, self.alerts(alertname)))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def remove(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def am_time(s):
    """An Alertmanager (Go RFC 3339, any fraction) time as epoch seconds."""
    import datetime
    import re
    m = re.match(r"^(.*?T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", s)
    frac = (m.group(2) or ".0")[:7]
    tz = "+00:00" if m.group(3) == "Z" else m.group(3)
    return datetime.datetime.fromisoformat(m.group(1) + frac + tz).timestamp()


@contextlib.contextmanager
def error_source(d, db, rate=0.05):
    """Makes orderd's error rate cross the threshold while the block
    runs: the products table is held from outside, so stock changes wait
    ORDERD_BUSY_TIMEOUT_MS and are answered 503; a thread keeps sending
    them. (Once the confirm step exists, "the confirm service answers
    500" can take this function's place.)"""
    stop = threading.Event()
    codes = []

    def hammer():
        c = H.Client(d.url)
        i = 0
        while not stop.is_set():
            st, _, _ = c.api("PUT", "/v1/products/AM-%d" % (i % 8),
                             json={"stock": 1}, timeout=30)
            codes.append(st)
            i += 1

    with H.StoreBlocker(db, tables="products"):
        t = threading.Thread(target=hammer)
        t.start()
        try:
            yield codes
        finally:
            stop.set()
            t.join(30)


class AlertmanagerTest(unittest.TestCase):
    def setUp(self):
        if not AM_BIN:
            self.skipTest("prometheus-alertmanager is not installed")
        self.am = Alertmanager().start()
        self.db = H.Database("alerts")
        self.ds = []

    def tearDown(self):
        for d in self.ds:
            d.kill()
        self.db.drop()
        self.am.remove()

    def daemon(self, replica, **env):
        base = {
            "ORDERD_REPLICA_ID": replica,
            "ORDERD_ALERT_WEBHOOK_URL": self.am.webhook,
            "ORDERD_LOG_LEVEL": "info",
        }
        base.update(env)
        d = H.Daemon(self.db.uri, env=base)
        self.ds.append(d)
        return d.start()

    def test_high_error_rate_fires_and_resolves(self):
        d = self.daemon("am-a", ORDERD_ALERT_WINDOW_S="3",
                        ORDERD_ALERT_MIN_EVENTS="10",
                        ORDERD_BUSY_TIMEOUT_MS="100",
                        ORDERD_WORKERS="1")
        # Healthy traffic first: nothing reaches Alertmanager.
        for i in range(20):
            st, _, _ = d.api("PUT", "/v1/products/AM-%d" % (i % 8),
                             json={"stock": 5})
            self.assertEqual(st, 200)
        time.sleep(1.5)  # more than a sender tick
        self.assertEqual(self.am.alerts("HighErrorRate"), [])

        with error_source(d, self.db) as codes:
            got = self.am.wait_active("HighErrorRate")
        self.assertIn(503, codes)
        self.assertEqual(len(got), 1, got)
        a = got[0]
        self.assertEqual(a["labels"], {"alertname": "HighErrorRate",
                                       "service": "orderd",
                                       "replica": "am-a",
                                       "severity": "critical"})
        self.assertEqual(a["annotations"]["threshold"], "0.05")
        self.assertGreater(float(a["annotations"]["value"]), 0.05)
        self.assertIn("events failed", a["annotations"]["description"])
        self.assertTrue(a["annotations"]["summary"])
        self.assertEqual(a["generatorURL"], d.url + "/v1/alerts")
        # endsAt of a live alert lies minutes ahead (4 resend intervals),
        # so a disappearance within seconds below is the resolve POST.
        self.assertGreater(am_time(a["endsAt"]), time.time() + 60,
                           a["endsAt"])
        st, _, body = d.api("GET", "/v1/alerts")
        mine = {x["name"]: x for x in body["alerts"]}
        self.assertEqual(mine["HighErrorRate"]["state"], "firing")
        self.assertEqual(mine["BacklogTooOld"]["state"], "inactive")

        # The failures stop. The errors leave the 3 s window, then the
        # rate stays at or below the threshold for another 3 s: resolved.
        t0 = time.time()
        self.am.wait_gone("HighErrorRate", timeout=30)
        took = time.time() - t0
        self.assertGreater(took, 3.0, "resolved before a full window")
        st, _, body = d.api("GET", "/v1/alerts")
        mine = {x["name"]: x for x in body["alerts"]}
        self.assertEqual(mine["HighErrorRate"]["state"], "inactive")

        m = d.metrics()
        self.assertGreaterEqual(H.metric_sum(
            m, "orderd_alert_notifications_total", outcome="sent"), 2)
        self.assertEqual(H.metric_sum(
            m, "orderd_alert_firing", alert="HighErrorRate"), 0)
        self.assertEqual(d.stop(), 0)
        # Each state change logged once.
        lines = [ln for ln in d.log().splitlines()
                 if '"alert":"HighErrorRate"' in ln]
        self.assertEqual([ln for ln in lines if '"msg":"alert firing"' in ln
                          ].__len__(), 1, lines)
        self.assertEqual([ln for ln in lines if '"msg":"alert resolved"' in ln
                          ].__len__(), 1, lines)

    def test_high_error_rate_from_confirm_failures(self):
        failing = threading.Event()
        failing.set()
        fc = FakeConfirm(lambda oid, a: (500, 0, {}) if failing.is_set()
                         else (200, 0, {}))
        try:
            d = self.daemon("am-c", ORDERD_ALERT_WINDOW_S="3",
                            ORDERD_ALERT_MIN_EVENTS="10",
                            ORDERD_CONFIRM_URL=fc.url,
                            ORDERD_MAX_ATTEMPTS="1000",
                            ORDERD_RETRY_BASE_MS="20",
                            ORDERD_RETRY_MAX_MS="100",
                            ORDERD_POLL_MS="20")
            H.set_stock(d.client, "AM-C", 1000)
            ids = ["c%02d" % i for i in range(20)]
            st, _, body = d.api("POST", "/v1/orders/batch", json={
                "orders": [H.order(o, items=[{"sku": "AM-C", "qty": 1}])
                           for o in ids]})
            self.assertEqual(st, 200, body)
            got = self.am.wait_active("HighErrorRate")
            self.assertEqual(got[0]["labels"]["replica"], "am-c")
            # The stock stays held while the confirm service fails.
            st, _, p = d.api("GET", "/v1/products/AM-C")
            self.assertEqual(p["stock"], 1000 - len(ids))
            failing.clear()
            done = H.wait_terminal(d.client, ids, timeout=60)
            self.assertTrue(all(o["status"] == "completed"
                                for o in done.values()))
            self.am.wait_gone("HighErrorRate", timeout=30)
            self.assertGreater(H.metric_sum(
                d.metrics(), "orderd_confirm_requests_total",
                outcome="error"), 10)
            rc, out = H.verify(self.db.uri)
            self.assertEqual(rc, 0, out)
        finally:
            fc.close()

    def test_backlog_too_old_fires_and_resolves(self):
        d = self.daemon("am-b", ORDERD_WORKERS="1", ORDERD_CLAIM_BATCH="1",
                        ORDERD_ALERT_BACKLOG_S="1", ORDERD_DRAIN_MS="2000",
                        ORDERD_FAILPOINTS="slow_process_ms=8000")
        sku = "BL-" + H.rand_suffix(5)
        H.set_stock(d.client, sku, 10)
        ids = ["bl-%s-%d" % (H.rand_suffix(4), i) for i in range(2)]
        for oid in ids:
            st, _, body = d.api("POST", "/v1/orders", json=H.order(
                oid, items=[{"sku": sku, "qty": 1}]))
            self.assertEqual(st, 201, body)
        # The worker sleeps 8 s on the first order; the second waits.
        got = self.am.wait_active("BacklogTooOld", timeout=20)
        self.assertEqual(got[0]["labels"], {"alertname": "BacklogTooOld",
                                            "service": "orderd",
                                            "replica": "am-b",
                                            "severity": "warning"})
        self.assertEqual(got[0]["annotations"]["threshold"], "1")
        self.assertGreater(float(got[0]["annotations"]["value"]), 1)
        # Claimed once the first is done: nothing pending, resolved.
        self.am.wait_gone("BacklogTooOld", timeout=30)
        st, _, o = d.api("GET", "/v1/orders/" + ids[0])
        self.assertEqual(o["status"], "completed")
        st, _, body = d.api("GET", "/v1/alerts")
        mine = {x["name"]: x for x in body["alerts"]}
        self.assertEqual(mine["BacklogTooOld"]["state"], "inactive")
        d.kill()


if __name__ == "__main__":
    H.main()
