"""test_dashboard: the dashboard (src/http/static/) in Debian's chromium,
driven headless by playwright-core (tests/browser/dashboard.mjs), against a
real orderd on SQLite with API tokens, a confirm fake that fails or
declines some orders, notifications to an endpoint that always fails (so
some go dead), and orders flowing from a background submitter while the
page is open. The script asserts the auth prompt, moving charts, a failed
order under its fingerprint and its requeue, the order lookup with its
history, set-stock, fixed tile and chart boxes while data streams, and
axe-core's accessibility rules; this file checks the API side of the
requeue and the stock. Screenshots (desktop 1440x900 light, phone 390x844
dark) land in ORDERD_BROWSER_ARTIFACTS (build/browser-artifacts).
"""

import json
import os
import shutil
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import harness as H  # noqa: E402
from fake_confirm import FakeConfirm  # noqa: E402

TOKEN = "dash-test-token-0123456789"
REPLICA = "dash-r1"
NODE_DIR = os.environ.get("ORDERD_TEST_NODE", "")
ART = os.environ.get("ORDERD_BROWSER_ARTIFACTS",
                     os.path.join(H.TMP, "browser-artifacts"))
CHROMIUM = "/usr/bin/chromium"


def skip(msg):
    print("SKIP: " + msg)
    sys.exit(77)


def confirm_script(oid, attempt):
    # Every 7th order fails for good (503 until ORDERD_MAX_ATTEMPTS), every
    # 11th is declined, the rest confirm.
    n = int(oid.rsplit("-", 1)[-1])
    if n % 7 == 3:
        return (503, 0.0, {})
    if n % 11 == 5:
        return (402, 0.0, {})
    return (200, 0.0, {})


class Submitter(threading.Thread):
    """A few orders every 100 ms until stopped, in bursts so the charts
    have a shape."""

    def __init__(self, client):
        super().__init__(daemon=True)
        self.c = client
        self.n = 0
        self.stop = threading.Event()
        self.errors = []

    def run(self):
        tick = 0
        while not self.stop.is_set():
            tick += 1
            k = 2 + (tick // 10) % 4
            orders = []
            for _ in range(k):
                self.n += 1
                orders.append(H.order("dash-%d" % self.n, items=[
                    {"sku": "SKU-%d" % (self.n % 3), "qty": 1}]))
            try:
                st, _, body = self.c.api("POST", "/v1/orders/batch",
                                         json={"orders": orders}, timeout=10)
                if st not in (200, 201):
                    self.errors.append((st, body))
            except Exception as e:  # noqa: BLE001
                self.errors.append(repr(e))
            self.stop.wait(0.1)


def main():
    if not os.access(H.BIN, os.X_OK):
        skip("ORDERD_BIN %s not found" % H.BIN)
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules",
                                      "playwright-core")):
        skip("no playwright-core in %r (fixture node.setup)" % NODE_DIR)
    if not os.access(CHROMIUM, os.X_OK):
        skip("no " + CHROMIUM)
    os.makedirs(ART, exist_ok=True)
    started = time.monotonic()
    db = H.Database("dashboard")
    fc = FakeConfirm(script=confirm_script)
    dead_end = FakeConfirm(script=lambda oid, a: (500, 0.0, {}))
    d = H.Daemon(db.uri, name="dashboard", token=TOKEN, env={
        "ORDERD_API_TOKENS": TOKEN,
        "ORDERD_REPLICA_ID": REPLICA,
        "ORDERD_CONFIRM_URL": fc.url,
        "ORDERD_MAX_ATTEMPTS": "2",
        "ORDERD_RETRY_BASE_MS": "20",
        "ORDERD_RETRY_MAX_MS": "50",
        "ORDERD_WORKERS": "4",
        "ORDERD_POLL_MS": "20",
        "ORDERD_NOTIFY_URL": dead_end.url,
        "ORDERD_NOTIFY_SECRET": "dashboard-test-secret-0123",
        "ORDERD_NOTIFY_MAX_ATTEMPTS": "1",
    })
    sub = None
    rc = 1
    try:
        d.start()
        c = d.client
        for i in range(3):
            H.set_stock(c, "SKU-%d" % i, 1000000)
        for i in range(12):
            H.set_stock(c, "BOOK-%02d" % i, 40 + i * 7)
        sub = Submitter(c)
        sub.start()
        # A failed order to look up: the first with n % 7 == 3.
        failed_id = "dash-3"
        H.wait_terminal(c, [failed_id], timeout=20)
        env = dict(os.environ, DASH_URL=d.url, DASH_TOKEN=TOKEN,
                   DASH_ORDER=failed_id, DASH_REPLICA=REPLICA, DASH_ART=ART,
                   DASH_NODE_MODULES=os.path.join(NODE_DIR, "node_modules"))
        settle_s = int(os.environ.get("DASH_SETTLE_MS", "0")) // 1000
        p = subprocess.run(["node", os.path.join(HERE, "dashboard.mjs")],
                           env=env, timeout=120 + settle_s,
                           stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        print(p.stdout, end="")
        result = {}
        for line in p.stdout.splitlines():
            if line.startswith("RESULT "):
                result = json.loads(line[7:])
        ok = p.returncode == 0
        # The API side of what the page did.
        st, _, prod = c.api("GET", "/v1/products/SKU-DASH")
        if not (st == 200 and prod.get("stock") == 777):
            print("FAIL: SKU-DASH stock is %s %r, want 777" % (st, prod))
            ok = False
        if result.get("requeued", 0) < 1:
            print("FAIL: the page requeued no order: %r" % (result,))
            ok = False
        if sub.errors:
            print("FAIL: submitter errors: %r" % sub.errors[:3])
            ok = False
        rc = 0 if ok else 1
    finally:
        if sub is not None:
            sub.stop.set()
            sub.join(5)
        d.kill()
        fc.close()
        dead_end.close()
        db.drop()
    print("browser.dashboard: %.1f s, %d orders submitted, artifacts in %s"
          % (time.monotonic() - started, sub.n if sub else 0, ART))
    if rc == 0 and os.environ.get("DASH_UPDATE_DOCS"):
        img = os.path.join(HERE, "..", "..", "docs", "img")
        os.makedirs(img, exist_ok=True)
        for n in ("dashboard-desktop.png", "dashboard-phone.png"):
            shutil.copy(os.path.join(ART, n), os.path.join(img, n))
    sys.exit(rc)


if __name__ == "__main__":
    main()
