#!/usr/bin/env python3
"""fleet: N orderd replicas on one PostgreSQL behind HAProxy on loopback,
with exactly the settings of the Kubernetes ConfigMap
(deploy/kubernetes/base/configmap.yaml, read, not copied). Only what must
differ on one machine is overridden: ORDERD_LISTEN (127.0.0.1, a port per
replica), ORDERD_REPLICA_ID, the database (ORDERD_DATABASE_FILE, a file in
the temp dir, as the Secret would be mounted) and ORDERD_API_TOKENS_FILE
(a mounted Secret path in the ConfigMap: a tokens file in the temp dir).
HAProxy health-checks GET /readyz every 500 ms (fall 2, rise 2), as a
Service's endpoints follow the readiness probe. See README.md.

    python3 deploy/local/fleet.py up --database postgres://... [-n 3]

Importable: Fleet(db_uri, n).start(); .lb_url; .restart(i); .stop().
"""
import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
CONFIGMAP = os.path.join(ROOT, "deploy", "kubernetes", "base",
                         "configmap.yaml")
HAPROXY = "/usr/sbin/haproxy"
# The settings a single machine must set itself; everything else comes
# from the ConfigMap unchanged.
LOCAL = ("ORDERD_LISTEN", "ORDERD_REPLICA_ID", "ORDERD_DATABASE",
         "ORDERD_DATABASE_FILE", "ORDERD_API_TOKENS_FILE")


def configmap_env(path=CONFIGMAP):
    """The data of the ConfigMap named orderd in path: {ORDERD_*: str}."""
    with open(path) as f:
        for doc in yaml.safe_load_all(f):
            if doc and doc.get("kind") == "ConfigMap" and \
                    doc.get("metadata", {}).get("name") == "orderd":
                data = doc.get("data") or {}
                for k, v in data.items():
                    if not k.startswith("ORDERD_") or not isinstance(v, str):
                        raise ValueError("%s: data.%s must be an ORDERD_* "
                                         "string" % (path, k))
                return dict(data)
    raise ValueError("%s: no ConfigMap named orderd" % path)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(url, timeout=2.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


HAPROXY_CFG = """\
global
    maxconn 4096
    stats socket {dir}/haproxy.sock mode 600 level admin
    log stderr format short local0 info

defaults
    mode http
    log global
    option httplog
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 10s
    # Keep-alive to the clients, a fresh connection to the backend for
    # every request: a backend closing an idle keep-alive connection
    # (ORDERD_HTTP_HEAD_TIMEOUT_MS, or its exit after the drain) can
    # never race a request sent on it.
    option http-server-close
    # Belt and braces: a connection refused or reset before any byte of
    # the answer is retried on another server (orderd's writes are
    # idempotent by order id, so a resend is safe).
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response response-timeout

frontend orderd
    bind 127.0.0.1:{port}
    default_backend orderd

backend orderd
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 500ms fall 2 rise 2
{servers}
"""


class Replica:
    def __init__(self, fleet, i):
        self.fleet, self.i = fleet, i
        self.name = "orderd-%d" % i
        self.port = free_port()
        self.proc = None
        self.log_path = os.path.join(fleet.dir, self.name + ".log")

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def env(self):
        e = {k: v for k, v in os.environ.items()
             if not k.startswith("ORDERD_")}
        e.update(self.fleet.settings)
        e.update({"ORDERD_LISTEN": "127.0.0.1:%d" % self.port,
                  "ORDERD_REPLICA_ID": self.name,
                  "ORDERD_DATABASE_FILE": self.fleet.db_file})
        e.pop("ORDERD_DATABASE", None)
        if self.fleet.tokens_file:
            e["ORDERD_API_TOKENS_FILE"] = self.fleet.tokens_file
        else:
            e.pop("ORDERD_API_TOKENS_FILE", None)
        e.update(self.fleet.overrides)
        return e

    def start(self, timeout=20.0):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([self.fleet.orderd], env=self.env(),
                                     stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited %d:\n%s" % (
                    self.name, self.proc.returncode, self.log_tail()))
            if http_status(self.url + "/readyz") == 200:
                return self
            time.sleep(0.05)
        raise RuntimeError("%s not ready:\n%s" % (self.name,
                                                   self.log_tail()))

    def log_tail(self, n=20):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def terminate(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout=None):
        return self.proc.wait(timeout)


class Fleet:
    def __init__(self, db_uri, n=3, orderd=None, tokens=None, overrides=None,
                 configmap=CONFIGMAP, port=None):
        self.db_uri = db_uri
        self.n = n
        self.orderd = orderd or os.path.join(ROOT, "build", "orderd")
        self.settings = configmap_env(configmap)
        self.tokens = list(tokens or [])
        self.overrides = dict(overrides or {})
        self.port = port or free_port()
        self.dir = None
        self.replicas = []
        self.haproxy = None

    @property
    def lb_url(self):
        return "http://127.0.0.1:%d" % self.port

    def start(self):
        self.dir = tempfile.mkdtemp(prefix="orderd-fleet-")
        self.db_file = os.path.join(self.dir, "database-uri")
        fd = os.open(self.db_file, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, (self.db_uri + "\n").encode())
        os.close(fd)
        self.tokens_file = None
        if self.tokens:
            self.tokens_file = os.path.join(self.dir, "tokens")
            with open(self.tokens_file, "w") as f:
                f.write("\n".join(self.tokens) + "\n")
        self.replicas = [Replica(self, i) for i in range(self.n)]
        for r in self.replicas:
            r.start()
        self._start_haproxy()
        deadline = time.time() + 15
        while time.time() < deadline:
            if all(s == "UP" for s in self.server_states().values()):
                return self
            time.sleep(0.1)
        raise RuntimeError("HAProxy never saw every replica UP: %r"
                           % self.server_states())

    def _start_haproxy(self):
        servers = "\n".join(
            "    server %s 127.0.0.1:%d check" % (r.name, r.port)
            for r in self.replicas)
        cfg = os.path.join(self.dir, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(HAPROXY_CFG.format(dir=self.dir, port=self.port,
                                       servers=servers))
        log = open(os.path.join(self.dir, "haproxy.log"), "ab")
        self.haproxy = subprocess.Popen([HAPROXY, "-db", "-f", cfg],
                                        stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.time() + 10
        while time.time() < deadline:
            if os.path.exists(os.path.join(self.dir, "haproxy.sock")):
                return
            if self.haproxy.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("haproxy did not start: see %s/haproxy.log"
                           % self.dir)

    def _admin(self, cmd):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(2)
            s.connect(os.path.join(self.dir, "haproxy.sock"))
            s.sendall((cmd + "\n").encode())
            out = b""
            while True:
                b = s.recv(65536)
                if not b:
                    break
                out += b
        return out.decode()

    def server_states(self):
        """{replica name: "UP" | "DOWN" | "MAINT" ...} as HAProxy sees it."""
        out = {}
        lines = self._admin("show stat").splitlines()
        if not lines:
            return out
        head = lines[0].lstrip("# ").split(",")
        for ln in lines[1:]:
            row = dict(zip(head, ln.split(",")))
            if row.get("pxname") == "orderd" and \
                    row.get("svname", "").startswith("orderd-"):
                out[row["svname"]] = row.get("status", "").split(" ")[0]
        return out

    def restart(self, i, timeout=60.0):
        """Stops replica i like a rolling update (SIGTERM, wait for exit)
        and starts it again on the same port; returns (exit code,
        timeline dict, seconds from its start)."""
        r = self.replicas[i]
        t = {"sigterm": time.time()}
        r.terminate()
        while r.proc.poll() is None:
            if "down" not in t and self.server_states().get(r.name) != "UP":
                t["down"] = time.time()
            time.sleep(0.05)
        t["exit"] = time.time()
        rc = r.proc.returncode
        r.start()
        t["started"] = time.time()
        deadline = time.time() + timeout
        while self.server_states().get(r.name) != "UP":
            if time.time() > deadline:
                raise RuntimeError("%s never UP again" % r.name)
            time.sleep(0.05)
        t["up"] = time.time()
        return rc, t

    def stop(self):
        for r in self.replicas:
            r.terminate()
        for r in self.replicas:
            if r.proc:
                try:
                    r.wait(60)
                except subprocess.TimeoutExpired:
                    r.proc.kill()
                    r.wait()
        if self.haproxy and self.haproxy.poll() is None:
            self.haproxy.terminate()
            self.haproxy.wait(10)

    def cleanup(self):
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start the fleet; Ctrl-C stops it")
    up.add_argument("--database", default=os.environ.get("ORDERD_DATABASE"),
                    help="PostgreSQL URI (default: $ORDERD_DATABASE)")
    up.add_argument("-n", type=int, default=3, help="replicas (3)")
    up.add_argument("--port", type=int, default=8080,
                    help="HAProxy's port on 127.0.0.1 (8080)")
    up.add_argument("--orderd", help="the binary (build/orderd)")
    up.add_argument("--token", action="append", default=[],
                    help="an API token (repeatable; none: no auth)")
    a = ap.parse_args()
    if not a.database or not a.database.startswith(("postgres://",
                                                    "postgresql://")):
        ap.error("--database postgres://... is required")
    f = Fleet(a.database, a.n, orderd=a.orderd, tokens=a.token, port=a.port)
    try:
        f.start()
        print("fleet up: %s -> %s (logs and haproxy.cfg in %s)" % (
            f.lb_url, ", ".join(r.url for r in f.replicas), f.dir))
        print("settings from %s: %s" % (os.path.relpath(CONFIGMAP),
                                        ", ".join(sorted(f.settings))))
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        while True:
            signal.pause()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        f.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
