"""test_rolling: a rolling restart through HAProxy drops no request.

deploy/local/fleet.py starts 3 replicas on PostgreSQL with the ConfigMap's
settings (deploy/kubernetes/base/configmap.yaml, incl. its
ORDERD_SHUTDOWN_DELAY_MS and ORDERD_DRAIN_MS, unscaled) behind HAProxy
health-checking /readyz. Client threads submit orders and read them back
through HAProxy on keep-alive connections while every replica in turn gets
SIGTERM, exits, starts again and is seen UP. Any non-2xx answer, connection
error or timeout is a failure: there must be none. Afterwards every
accepted order is terminal and `orderctl verify` is clean. PostgreSQL only
(exit 77 elsewhere); needs /usr/sbin/haproxy."""

import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, os.path.join(ROOT, "deploy", "local"))
import harness as H  # noqa: E402

CLIENTS = 4


def main():
    if H.BACKEND != "postgres" or not os.path.exists("/usr/sbin/haproxy"):
        print("skip: needs ORDERD_TEST_BACKEND=postgres and haproxy")
        return 77
    import fleet as F
    db = H.Database("rolling")
    f = F.Fleet(db.uri, 3, orderd=H.BIN)
    stop = threading.Event()
    lock = threading.Lock()
    sent, failed, accepted, failures = [0], [0], [], []
    run = H.rand_suffix(5)
    sku = "RR-" + run
    try:
        f.start()
        lb = H.Client(f.lb_url)
        H.set_stock(lb, sku, 10 ** 9)

        def client(k):
            c = H.Client(f.lb_url)  # one keep-alive session per thread
            n = 0
            while not stop.is_set():
                oid = "rr-%s-%d-%d" % (run, k, n)
                n += 1
                for method, path, body in (
                        ("POST", "/v1/orders",
                         H.order(oid, items=[{"sku": sku, "qty": 1}])),
                        ("GET", "/v1/orders/" + oid, None)):
                    t = time.time()
                    try:
                        st, _, b = c.api(method, path, json=body, timeout=5)
                        ok = 200 <= st < 300
                        what = "%s %r" % (st, b)
                    except Exception as e:  # connection error, timeout
                        ok, what = False, repr(e)
                    with lock:
                        sent[0] += 1
                        if not ok:
                            failed[0] += 1
                            failures.append("%.2f %s %s: %s" % (
                                t - t0, method, path, what[:200]))
                        elif method == "POST":
                            accepted.append(oid)
                    if not ok:
                        break  # no GET of an order that was refused
                time.sleep(0.01)
        t0 = time.time()
        threads = [threading.Thread(target=client, args=(k,), daemon=True)
                   for k in range(CLIENTS)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        timeline = []
        for i in range(len(f.replicas)):
            rc, t = f.restart(i)
            timeline.append((f.replicas[i].name, rc, t))
            time.sleep(0.5)
        time.sleep(1.0)
        stop.set()
        for t in threads:
            t.join(10)
        print("delay %s ms, drain %s ms (from the ConfigMap)" % (
            f.settings.get("ORDERD_SHUTDOWN_DELAY_MS"),
            f.settings.get("ORDERD_DRAIN_MS")))
        for name, rc, t in timeline:
            print("%s: SIGTERM at %.2fs, HAProxy not UP at %s, exit %s at "
                  "%.2fs, started %.2fs, UP at %.2fs" % (
                      name, t["sigterm"] - t0,
                      "%.2fs" % (t["down"] - t0) if "down" in t else "never",
                      rc, t["exit"] - t0, t["started"] - t0, t["up"] - t0))
        print("requests sent %d, failed %d, orders accepted %d, %.1fs"
              % (sent[0], failed[0], len(accepted), time.time() - t0))
        for line in failures[:20]:
            print("  failure: " + line)
        ok = failed[0] == 0 and sent[0] > 100
        ok = ok and all(rc == 0 and "down" in t for _, rc, t in timeline)
        final = H.wait_terminal(lb, accepted, timeout=60)
        statuses = {}
        for o in final.values():
            statuses[o["status"]] = statuses.get(o["status"], 0) + 1
        print("final statuses: %r" % statuses)
        ok = ok and set(statuses) == {"completed"} and \
            len(final) == len(accepted)
    finally:
        stop.set()
        f.stop()
    rc, out = H.verify(db.uri)
    print("orderctl verify: %d %s" % (rc, out.strip()[-300:]))
    if ok and rc == 0:
        f.cleanup()
        db.drop()
        print("PASS")
        return 0
    print("FAIL (logs in %s)" % f.dir)
    return 1


if __name__ == "__main__":
    sys.exit(main())
