"""env: paths, binaries and clean-up for the fault suite.

Everything the suite creates (processes, namespaces, firewall tables,
mounts, directories) registers an undo with on_exit(); the undos run in
reverse order at exit, also when the run is ended by SIGTERM or SIGINT
(turned into SystemExit here), so a failed or interrupted run leaves
nothing behind.
"""
import atexit
import os
import signal
import socket
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
FAULT = os.path.dirname(HERE)
TESTS = os.path.dirname(FAULT)
ROOT = os.path.dirname(TESTS)
sys.path.insert(0, os.path.join(TESTS, "integration"))
sys.path.insert(0, TESTS)

BIN = os.environ.get("ORDERD_BIN", os.path.join(ROOT, "build", "orderd"))
CTL = os.environ.get("ORDERCTL_BIN", os.path.join(ROOT, "build", "orderctl"))
TMP = os.path.join(os.environ.get("ORDERD_TEST_TMP", "/tmp/orderd-fault"),
                   "fault-" + os.environ.get("FAULT_NETNS", "ofault"))
AS_ROOT = os.geteuid() == 0
os.makedirs(TMP, exist_ok=True)

_undo = []
_lock = threading.Lock()


def on_exit(fn, *args):
    with _lock:
        _undo.append((fn, args))


def cleanup():
    while True:
        with _lock:
            if not _undo:
                return
            fn, args = _undo.pop()
        try:
            fn(*args)
        except Exception as e:  # clean-up goes on whatever one undo did
            sys.stderr.write("fault: clean-up %s: %s\n"
                             % (getattr(fn, "__name__", fn), e))


def _exit_on(signum, frame):
    raise SystemExit(128 + signum)


atexit.register(cleanup)
signal.signal(signal.SIGTERM, _exit_on)
signal.signal(signal.SIGINT, _exit_on)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
