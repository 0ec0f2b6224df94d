"""proxy: a TCP proxy that delays what crosses it, standing in for tc
netem's delay on this kernel (it has no sch_netem). Every chunk read on
one side is written to the other `delay` seconds after it arrived, each
direction in order, so a request-response round trip costs 2 * delay.
`jitter` adds a uniform extra of up to that many seconds per chunk.

    p = DelayProxy(listen=("10.231.1.1", 0), target=("127.0.0.1", 5432))
    p.delay = 0.05
"""
import collections
import random
import socket
import threading
import time

from . import env


class DelayProxy:
    def __init__(self, listen, target):
        self.target = target
        self.delay = 0.0
        self.jitter = 0.0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(listen)
        self.sock.listen(256)
        self.addr = self.sock.getsockname()
        self.closed = False
        self.conns = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()
        env.on_exit(self.close)

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(self.target, timeout=5)
            except OSError:
                c.close()
                continue
            u.settimeout(None)
            with self.lock:
                self.conns += [c, u]
            for a, b in ((c, u), (u, c)):
                q = collections.deque()
                cv = threading.Condition()
                threading.Thread(target=self._read, args=(a, b, q, cv),
                                 daemon=True).start()
                threading.Thread(target=self._write, args=(a, b, q, cv),
                                 daemon=True).start()

    def _read(self, a, b, q, cv):
        while True:
            try:
                data = a.recv(65536)
            except OSError:
                data = b""
            due = time.monotonic() + self.delay + random.uniform(0, self.jitter)
            with cv:
                q.append((due, data))
                cv.notify()
            if not data:
                return

    def _write(self, a, b, q, cv):
        while True:
            with cv:
                while not q:
                    cv.wait()
                due, data = q.popleft()
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                if not data:
                    b.shutdown(socket.SHUT_WR)
                    return
                b.sendall(data)
            except OSError:
                for s in (a, b):
                    try:
                        s.close()
                    except OSError:
                        pass
                return

    def close(self):
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass
        with self.lock:
            for s in self.conns:
                try:
                    s.close()
                except OSError:
                    pass
