"""replicas: orderd processes for the suite, each in its own network
namespace (net.Netns) when it talks to PostgreSQL, on 127.0.0.1 for
SQLite. A replica keeps its id and port across restarts, so a restarted
replica is the same replica to the store and to its clients.

A clock jump uses libfaketime: the replica starts with it preloaded,
reading its offset from a file that jump() rewrites; only the wall clock
moves (FAKETIME_DONT_FAKE_MONOTONIC), as an NTP step would.
"""
import os
import signal
import subprocess
import time

import requests

import harness as H

H.CHECK_CONTRACT = False  # harness.py: the contract is the integration tests'

from . import env

LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
PORT = 8080


class Replica:
    def __init__(self, name, db_uri, netns=None, extra=None, faketime=False):
        self.name = name
        self.db_uri = db_uri
        self.netns = netns
        self.extra = dict(extra or {})
        self.faketime_file = None
        if faketime:
            self.faketime_file = os.path.join(env.TMP, name + ".faketime")
            with open(self.faketime_file, "w") as f:
                f.write("+0\n")
        self.host = netns.inside if netns else "127.0.0.1"
        self.port = PORT if netns else env.free_port()
        if netns:
            netns.http_port = self.port
        self.proc = None
        self.log_path = os.path.join(env.TMP, name + ".log")
        self.stopped = False
        self.starts = 0

    @property
    def url(self):
        return "http://%s:%d" % (self.host, self.port)

    def env(self):
        e = dict(os.environ)
        e.update({"ORDERD_DATABASE": self.db_uri, "ORDERD_LOG_LEVEL": "warn",
                  "ORDERD_REPLICA_ID": self.name})
        e.update(self.extra)
        if self.faketime_file:
            e.update({"LD_PRELOAD": LIBFAKETIME,
                      "FAKETIME_TIMESTAMP_FILE": self.faketime_file,
                      "FAKETIME_DONT_FAKE_MONOTONIC": "1",
                      "FAKETIME_CACHE_DURATION": "1"})
        return e

    def start(self, wait=True, timeout=30):
        cmd = [env.BIN, "--listen", "%s:%d" % (self.host, self.port)]
        if self.netns:
            cmd = self.netns.prefix() + cmd
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, env=self.env(), stdout=log,
                                     stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        log.close()
        with H._procs_lock:
            H._procs.add(self.proc)
        env.on_exit(self.kill)
        self.starts += 1
        self.stopped = False
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=30):
        t_end = time.monotonic() + timeout
        while time.monotonic() < t_end:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited %d before ready:\n%s"
                                   % (self.name, self.proc.returncode,
                                      H.log_tail(self.log_path)))
            try:
                if requests.get(self.url + "/readyz", timeout=1).status_code \
                        == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise RuntimeError("%s not ready within %ds:\n%s"
                           % (self.name, timeout, H.log_tail(self.log_path)))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if self.alive():
            os.kill(self.proc.pid, sig)

    def kill9(self):
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(10)

    def kill(self):
        if self.alive():
            self.signal(signal.SIGCONT)
            self.kill9()

    def sigstop(self):
        self.signal(signal.SIGSTOP)
        self.stopped = True

    def sigcont(self):
        self.signal(signal.SIGCONT)
        self.stopped = False

    def term(self, timeout=30):
        if not self.alive():
            return self.proc.returncode if self.proc else None
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            return None

    def jump(self, offset):
        """Steps this replica's wall clock to real time + offset ("+30s",
        "-20s"; libfaketime syntax)."""
        with open(self.faketime_file, "w") as f:
            f.write(offset + "\n")

    def metrics(self, timeout=5):
        r = requests.get(self.url + "/metrics", timeout=timeout)
        r.raise_for_status()
        return H.parse_metrics(r.text)

    def metric(self, name, **labels):
        try:
            return H.metric_sum(self.metrics(), name, **labels) or 0
        except (requests.RequestException, ValueError):
            return None
