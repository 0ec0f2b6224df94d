#!/usr/bin/python3
"""pgcluster: a throwaway PostgreSQL 15 cluster for tests.

    pgcluster.py start DIR               initdb + start on a free 127.0.0.1 port
    pgcluster.py stop DIR                stop (fast, then immediate), remove DIR
    pgcluster.py restart DIR [--immediate]   stop and start again, same port

start writes DIR/uri ("postgres://postgres@127.0.0.1:PORT/postgres") and
DIR/port. initdb refuses to run as root, so under euid 0 the cluster belongs
to the `postgres` user and every server command runs through
`runuser -u postgres --`. If that user cannot reach DIR (a parent directory
without search permission), the data lives in a private directory under /tmp
whose path is recorded in DIR/home and removed by stop.
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

BIN = "/usr/lib/postgresql/15/bin"
AS_ROOT = os.geteuid() == 0


def run(args, check=True, **kw):
    if AS_ROOT:
        args = ["runuser", "-u", "postgres", "--"] + args
    return subprocess.run(args, check=check, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, **kw)


def home_of(d):
    try:
        with open(os.path.join(d, "home")) as f:
            return f.read().strip()
    except OSError:
        return d


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def running(home):
    data = os.path.join(home, "data")
    if not os.path.isdir(data):
        return False
    r = run([BIN + "/pg_ctl", "-D", data, "status"], check=False)
    return r.returncode == 0


def pg_stop(home, immediate=False):
    data = os.path.join(home, "data")
    if not os.path.isdir(data):
        return
    modes = ["immediate"] if immediate else ["fast", "immediate"]
    for mode in modes:
        r = run([BIN + "/pg_ctl", "-D", data, "-m", mode, "-t", "20",
                 "-w", "stop"], check=False)
        if r.returncode == 0 or not running(home):
            return
    sys.stderr.write("pgcluster: could not stop %s\n" % data)


def pg_start(home):
    data = os.path.join(home, "data")
    r = run([BIN + "/pg_ctl", "-D", data, "-l", os.path.join(home, "log"),
             "-t", "30", "-w", "start"], check=False)
    if r.returncode != 0:
        sys.stderr.write(r.stdout)
        try:
            with open(os.path.join(home, "log")) as f:
                sys.stderr.write(f.read()[-4000:])
        except OSError:
            pass
        raise SystemExit("pgcluster: pg_ctl start failed")


def reachable_by_postgres(d):
    if not AS_ROOT:
        return True
    return run(["test", "-w", d, "-a", "-x", d], check=False).returncode == 0


def stop(d):
    home = home_of(d)
    pg_stop(home)
    if home != d:
        shutil.rmtree(home, ignore_errors=True)
    shutil.rmtree(d, ignore_errors=True)


def start(d):
    if os.path.exists(d):
        stop(d)
    os.makedirs(d)
    home = d
    if AS_ROOT:
        shutil.chown(d, "postgres", "postgres")
        if not reachable_by_postgres(d):
            home = tempfile.mkdtemp(prefix="orderd-pg-")
            shutil.chown(home, "postgres", "postgres")
            with open(os.path.join(d, "home"), "w") as f:
                f.write(home + "\n")
    data = os.path.join(home, "data")
    r = run([BIN + "/initdb", "-D", data, "-U", "postgres", "-A", "trust",
             "-E", "UTF8", "--locale=C", "--no-sync"], check=False)
    if r.returncode != 0:
        sys.stderr.write(r.stdout)
        raise SystemExit("pgcluster: initdb failed")
    port = free_port()
    conf = """
# pgcluster.py: throwaway test cluster
port = %d
listen_addresses = '127.0.0.1'
unix_socket_directories = '%s'
max_connections = 300
shared_buffers = 128MB
fsync = on
synchronous_commit = on
full_page_writes = on
log_min_messages = warning
log_connections = off
""" % (port, home)
    conf_path = os.path.join(data, "postgresql.conf")
    hba_path = os.path.join(data, "pg_hba.conf")
    # Written as root when root: keep the ownership postgres expects.
    with open(conf_path, "a") as f:
        f.write(conf)
    with open(hba_path, "w") as f:
        f.write("local all all trust\n"
                "host all all 127.0.0.1/32 trust\n")
    if AS_ROOT:
        shutil.chown(hba_path, "postgres", "postgres")
    pg_start(home)
    with open(os.path.join(d, "port"), "w") as f:
        f.write("%d\n" % port)
    with open(os.path.join(d, "uri"), "w") as f:
        f.write("postgres://postgres@127.0.0.1:%d/postgres\n" % port)
    print("pgcluster: started on 127.0.0.1:%d in %s" % (port, data))


def restart(d, immediate):
    home = home_of(d)
    pg_stop(home, immediate=immediate)
    pg_start(home)


def main(argv):
    if len(argv) < 3 or argv[1] not in ("start", "stop", "restart"):
        sys.stderr.write(__doc__)
        return 2
    d = os.path.abspath(argv[2])
    t0 = time.monotonic()
    if argv[1] == "start":
        start(d)
    elif argv[1] == "stop":
        stop(d)
    else:
        restart(d, "--immediate" in argv[3:])
    sys.stderr.write("pgcluster: %s took %.1fs\n" %
                     (argv[1], time.monotonic() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
