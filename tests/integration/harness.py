"""harness: shared helpers for the black-box tests of the real orderd binary.

Owns: free-port picking, a throwaway database per test (a fresh SQLite file,
or a fresh PostgreSQL database in the cluster named by
$ORDERD_TEST_PGDIR/uri), the Daemon process wrapper (start, wait for
/readyz, SIGTERM/SIGKILL/SIGSTOP, log capture), a thread-safe HTTP client,
polling helpers, orderctl, a Prometheus text parser and main() which maps
unittest results to the exit codes CTest expects (0 pass, 77 skip, 1 fail).

Environment (set by CMake): ORDERD_BIN, ORDERCTL_BIN, ORDERD_TEST_TMP,
ORDERD_TEST_BACKEND (sqlite|postgres), ORDERD_TEST_PGDIR.

Every process started here is registered and killed (by PID) at exit, so a
failing test never leaves a daemon behind.
"""

import atexit
import concurrent.futures
import json as jsonlib
import os
import random
import re
import signal
import socket
import string
import subprocess
import sys
import threading
import time
import unittest
import urllib.parse

import requests

import contract

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BIN = os.environ.get("ORDERD_BIN", os.path.join(ROOT, "build", "orderd"))
CTL = os.environ.get("ORDERCTL_BIN", os.path.join(ROOT, "build", "orderctl"))
TMP = os.environ.get("ORDERD_TEST_TMP", "/tmp/orderd-itest")
BACKEND = os.environ.get("ORDERD_TEST_BACKEND", "sqlite")
PGDIR = os.environ.get("ORDERD_TEST_PGDIR", "")

TERMINAL = ("completed", "rejected", "failed", "cancelled")
STATUSES = ("pending", "processing") + TERMINAL
TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")

os.makedirs(TMP, exist_ok=True)

_procs = set()
_procs_lock = threading.Lock()


def _kill_all():
    with _procs_lock:
        procs = list(_procs)
    for p in procs:
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGCONT)
                os.kill(p.pid, signal.SIGKILL)
                p.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                pass


atexit.register(_kill_all)


def _sigterm(signum, frame):
    # CTest's timeout sends SIGTERM/SIGKILL to us: take the daemons along.
    _kill_all()
    sys.exit(1)


signal.signal(signal.SIGTERM, _sigterm)


def rand_suffix(n=8):
    return "".join(random.choice(string.ascii_lowercase + string.digits)
                   for _ in range(n))


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---------------------------------------------------------------- databases

def pg_base_uri():
    if not PGDIR:
        return None
    try:
        with open(os.path.join(PGDIR, "uri")) as f:
            return f.read().strip() or None
    except OSError:
        return None


def _pg_uri_with_db(base, dbname):
    u = urllib.parse.urlsplit(base)
    return urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + dbname,
                                    u.query, u.fragment))


class Database:
    """A fresh, empty database for one test: .uri is what ORDERD_DATABASE
    and `orderctl verify --database` take. drop() is best effort."""

    def __init__(self, name="t"):
        self.name = "%s_%s" % (re.sub(r"[^a-z0-9_]", "_", name.lower()),
                               rand_suffix())
        if BACKEND == "postgres":
            import psycopg2
            base = pg_base_uri()
            if not base:
                raise unittest.SkipTest("no PostgreSQL cluster (%s/uri)" % PGDIR)
            self.base = base
            conn = psycopg2.connect(base)
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute('CREATE DATABASE "t_%s"' % self.name)
            conn.close()
            self.uri = _pg_uri_with_db(base, "t_" + self.name)
        else:
            self.path = os.path.join(TMP, "%s.db" % self.name)
            for suffix in ("", "-wal", "-shm"):
                try:
                    os.unlink(self.path + suffix)
                except OSError:
                    pass
            self.uri = "sqlite:" + self.path

    def drop(self):
        if BACKEND == "postgres":
            try:
                import psycopg2
                conn = psycopg2.connect(self.base)
                conn.autocommit = True
                with conn.cursor() as cur:
                    cur.execute('DROP DATABASE IF EXISTS "t_%s" WITH (FORCE)'
                                % self.name)
                conn.close()
            except Exception:
                pass
        else:
            for suffix in ("", "-wal", "-shm"):
                try:
                    os.unlink(self.path + suffix)
                except OSError:
                    pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.drop()


class StoreBlocker:
    """Holds the store's write path from outside orderd, as a context
    manager: on SQLite the write lock (BEGIN IMMEDIATE), on PostgreSQL an
    EXCLUSIVE lock on the given tables."""

    def __init__(self, db, tables="orders"):
        self.db = db
        self.tables = tables
        self.conn = None

    def __enter__(self):
        if BACKEND == "postgres":
            import psycopg2
            self.conn = psycopg2.connect(self.db.uri)
            cur = self.conn.cursor()
            cur.execute("LOCK TABLE %s IN EXCLUSIVE MODE" % self.tables)
        else:
            import sqlite3
            self.conn = sqlite3.connect(self.db.path, isolation_level=None,
                                        timeout=10)
            self.conn.execute("BEGIN IMMEDIATE")
        return self

    def __exit__(self, *exc):
        if BACKEND == "postgres":
            self.conn.rollback()
        else:
            self.conn.execute("ROLLBACK")
        self.conn.close()


# ---------------------------------------------------------------- client

# Every answer Client.api receives is checked against docs/openapi.yaml
# (contract.py). The fault suite and the benchmarks turn it off: they
# measure throughput under faults, and the contract is the integration
# tests' to hold.
CHECK_CONTRACT = True


class Client:
    """HTTP client with one keep-alive requests.Session per thread."""

    def __init__(self, base, token=None):
        self.base = base
        self.token = token
        self._local = threading.local()

    def session(self):
        s = getattr(self._local, "s", None)
        if s is None:
            s = requests.Session()
            self._local.s = s
        return s

    def api(self, method, path, json=None, headers=None, data=None,
            timeout=60, token=None, params=None):
        """Returns (status, headers, body): body parsed as JSON when it is
        JSON, else the text (or None when empty)."""
        h = {}
        tok = token if token is not None else self.token
        if tok:
            h["Authorization"] = "Bearer " + tok
        if json is not None:
            data = jsonlib.dumps(json)
            h["Content-Type"] = "application/json"
        if headers:
            h.update(headers)
        r = self.session().request(method, self.base + path, data=data,
                                   headers=h, timeout=timeout, params=params)
        if CHECK_CONTRACT:
            contract.check(method,
                           urllib.parse.urlsplit(r.request.path_url).path,
                           r.status_code, r.headers, r.content)
        body = None
        if r.content:
            try:
                body = r.json()
            except ValueError:
                body = r.text
        return r.status_code, r.headers, body


# ---------------------------------------------------------------- daemon

def log_tail(path, n=40):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
        return "\n".join(lines[-n:])
    except OSError:
        return "(no log)"


class DaemonError(Exception):
    pass


class Daemon:
    """The real orderd. Start with .start() or as a context manager."""

    def __init__(self, db_uri, env=None, args=None, name="orderd",
                 token=None, ready_timeout=15.0):
        self.db_uri = db_uri
        self.extra_env = dict(env or {})
        self.args = list(args or [])
        self.name = name
        self.token = token
        self.ready_timeout = ready_timeout
        self.proc = None
        self.port = None
        self.log_path = None
        self.client = None
        self.rc = None

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    @property
    def pid(self):
        return self.proc.pid

    def start(self, wait_ready=True):
        last = None
        for _ in range(3):
            try:
                self._start_once(wait_ready)
                return self
            except DaemonError as e:
                last = e
                tail = log_tail(self.log_path, 10).lower()
                if "in use" not in tail and "bind" not in tail:
                    raise
        raise last

    def _start_once(self, wait_ready):
        self.port = free_port()
        self.log_path = os.path.join(
            TMP, "%s-%d-%s.log" % (self.name, self.port, rand_suffix(4)))
        env = dict(os.environ)
        env.update({
            "ORDERD_DATABASE": self.db_uri,
            "ORDERD_LOG_LEVEL": "warn",
        })
        env.update(self.extra_env)
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [BIN, "--listen", "127.0.0.1:%d" % self.port] + self.args,
            env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)
        log.close()
        with _procs_lock:
            _procs.add(self.proc)
        self.rc = None
        self.client = Client(self.url, self.token)
        if wait_ready:
            self.wait_ready()

    def wait_ready(self, timeout=None):
        deadline = time.time() + (timeout or self.ready_timeout)
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise DaemonError("orderd exited with %d before ready:\n%s"
                                  % (self.proc.returncode,
                                     log_tail(self.log_path)))
            try:
                r = requests.get(self.url + "/readyz", timeout=2)
                if r.status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        self.kill()
        raise DaemonError("orderd not ready within %.0fs:\n%s"
                          % (timeout or self.ready_timeout,
                             log_tail(self.log_path)))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        if self.alive():
            os.kill(self.proc.pid, sig)

    def stop(self, timeout=30.0, sig=signal.SIGTERM):
        """SIGTERM (or sig) and wait; returns the exit code (SIGKILL and
        -9 after timeout)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGCONT)
                os.kill(self.proc.pid, sig)
            except OSError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.rc = self.proc.returncode
        return self.rc

    def kill(self):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        self.rc = self.proc.returncode
        return self.rc

    def restart(self, env=None, wait_ready=True):
        """Stops (SIGTERM) if running, then starts again on the same
        database; env replaces the extra environment when given."""
        self.stop()
        if env is not None:
            self.extra_env = dict(env)
        return self.start(wait_ready)

    def log(self):
        return log_tail(self.log_path, 1000000)

    def api(self, *a, **kw):
        return self.client.api(*a, **kw)

    def metrics(self):
        r = requests.get(self.url + "/metrics", timeout=10)
        r.raise_for_status()
        return parse_metrics(r.text)

    def __enter__(self):
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop(timeout=10)


def run_orderd(args, env=None, timeout=20, unset=()):
    """Runs orderd to completion (for config errors, --help...), without
    the variables named in unset. Returns (exit code, combined output)."""
    e = dict(os.environ)
    e.setdefault("ORDERD_LOG_LEVEL", "warn")
    e.update(env or {})
    for k in unset:
        e.pop(k, None)
    p = subprocess.Popen([BIN] + list(args), env=e, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    with _procs_lock:
        _procs.add(p)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        return None, out.decode("utf-8", "replace"), \
            err.decode("utf-8", "replace")
    return p.returncode, out.decode("utf-8", "replace"), \
        err.decode("utf-8", "replace")


def orderctl(args, url=None, token=None, timeout=120, env=None):
    """Runs orderctl; returns subprocess.CompletedProcess (text)."""
    e = dict(os.environ)
    if url:
        e["ORDERD_URL"] = url
    if token:
        e["ORDERD_TOKEN"] = token
    e.update(env or {})
    return subprocess.run([CTL] + list(args), env=e, capture_output=True,
                          text=True, timeout=timeout)


def verify(db_uri, timeout=180):
    """`orderctl verify --database URI`: (exit code, output)."""
    p = orderctl(["verify", "--database", db_uri], timeout=timeout)
    return p.returncode, p.stdout + p.stderr


# ---------------------------------------------------------------- helpers

def order(oid, customer="cust-1", items=None, metadata=None):
    o = {"id": oid, "customer": customer,
         "items": items if items is not None else [{"sku": "SKU-1", "qty": 1}]}
    if metadata is not None:
        o["metadata"] = metadata
    return o


def parse_time(s):
    """An API time string as seconds since the epoch (float)."""
    import datetime
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def set_stock(client, sku, stock):
    st, _, body = client.api("PUT", "/v1/products/%s" % sku,
                             json={"stock": stock})
    if st != 200:
        raise AssertionError("PUT /v1/products/%s -> %s %r" % (sku, st, body))
    return body


def get_order(client, oid, wait_ms=None):
    path = "/v1/orders/%s" % oid
    if wait_ms is not None:
        path += "?wait_ms=%d" % wait_ms
    return client.api("GET", path, timeout=max(60, (wait_ms or 0) / 1000 + 30))


def wait_terminal(client, ids, timeout=60.0, threads=8):
    """Polls every order in ids until each is terminal. Returns a dict
    id -> order; raises AssertionError listing the laggards on timeout."""
    ids = list(ids)
    deadline = time.time() + timeout
    result = {}

    def one(oid):
        while True:
            left = deadline - time.time()
            if left <= 0:
                return oid, None
            st, _, body = get_order(client, oid,
                                    wait_ms=int(min(left, 5) * 1000))
            if st == 200 and isinstance(body, dict) and \
                    body.get("status") in TERMINAL:
                return oid, body
            if st not in (200,):
                time.sleep(0.1)
            elif left < 5:
                time.sleep(0.05)

    with concurrent.futures.ThreadPoolExecutor(threads) as ex:
        for oid, o in ex.map(one, ids):
            result[oid] = o
    missing = [i for i, o in result.items() if o is None]
    if missing:
        sample = {}
        for oid in missing[:5]:
            st, _, body = get_order(client, oid)
            sample[oid] = (st, body)
        raise AssertionError("%d of %d orders not terminal after %.0fs, e.g. %r"
                             % (len(missing), len(ids), timeout, sample))
    return result


def list_all(client, path="/v1/orders", key="orders", limit=1000, query=""):
    """Pages through a list route; returns every element."""
    out = []
    cursor = None
    for _ in range(100000):
        q = "limit=%d" % limit + (("&" + query) if query else "")
        if cursor:
            q += "&cursor=" + urllib.parse.quote(cursor, safe="")
        st, _, body = client.api("GET", path + "?" + q)
        if st != 200:
            raise AssertionError("GET %s?%s -> %s %r" % (path, q, st, body))
        out.extend(body[key])
        cursor = body.get("next_cursor")
        if not cursor:
            return out
    raise AssertionError("paging did not end")


# ---------------------------------------------------------------- metrics

_SAMPLE_RE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+-?\d+)?$')
_LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?')


def parse_metrics(text):
    """Parses Prometheus text format 0.0.4. Returns {"samples": [(name,
    labels dict, value)], "types": {name: type}}; raises ValueError on a
    malformed line."""
    samples = []
    types = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 4 and parts[1] == "TYPE":
                types[parts[2]] = parts[3].strip()
            continue
        m = _SAMPLE_RE.match(line)
        if not m:
            raise ValueError("bad exposition line: %r" % line)
        labels = {}
        if m.group(3):
            rest = m.group(3)
            pos = 0
            while pos < len(rest):
                lm = _LABEL_RE.match(rest, pos)
                if not lm:
                    raise ValueError("bad labels: %r" % line)
                labels[lm.group(1)] = lm.group(2)
                pos = lm.end()
        v = m.group(4)
        value = float(v.replace("+Inf", "inf").replace("-Inf", "-inf"))
        samples.append((m.group(1), labels, value))
    return {"samples": samples, "types": types}


def metric_sum(metrics, name, **labels):
    """Sum of every sample of name whose labels include labels; None when
    there is no such sample."""
    total = None
    for n, lab, v in metrics["samples"]:
        if n != name:
            continue
        if all(lab.get(k) == str(val) for k, val in labels.items()):
            total = (total or 0) + v
    return total


def metric_names(metrics):
    return {n for n, _, _ in metrics["samples"]} | set(metrics["types"])


# ---------------------------------------------------------------- main

def main():
    """unittest.main() with CTest exit codes: 77 when the binary (or the
    PostgreSQL cluster) is missing or every test skipped."""
    if not os.access(BIN, os.X_OK):
        print("SKIP: ORDERD_BIN %s not found" % BIN)
        sys.exit(77)
    if BACKEND == "postgres" and not pg_base_uri():
        print("SKIP: no PostgreSQL cluster uri in %r" % PGDIR)
        sys.exit(77)
    prog = unittest.main(exit=False, warnings="ignore")
    res = prog.result
    _kill_all()
    if not res.wasSuccessful():
        sys.exit(1)
    if res.testsRun and len(res.skipped) == res.testsRun:
        sys.exit(77)
    sys.exit(0)


# ---------------------------------------------------------------- raw HTTP

def raw_http(port, data, timeout=10.0, send_after=None, source=None):
    """Sends raw bytes (data, then each chunk of send_after, ignoring a peer
    that has stopped reading), returns the bytes received until the peer
    closes, the headers and announced body arrive, or timeout. source: the
    local address to connect from (another 127.x address), if any."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                 source_address=(source, 0) if source
                                 else None)
    got = b""
    try:
        try:
            s.sendall(data)
            for chunk in (send_after or ()):
                s.sendall(chunk)
        except OSError:
            pass
        s.settimeout(timeout)
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except OSError:
                break
            if not chunk:
                break
            got += chunk
            head, sep, body = got.partition(b"\r\n\r\n")
            if sep:
                m = re.search(rb"(?i)content-length:\s*(\d+)", head)
                if m and len(body) >= int(m.group(1)):
                    break
    finally:
        s.close()
    return got


def raw_status(resp):
    """Status code of a raw HTTP response, or None."""
    m = re.match(rb"HTTP/1\.[01] (\d{3})", resp)
    return int(m.group(1)) if m else None
