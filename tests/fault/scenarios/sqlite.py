"""The embedded backend: the disk fills up under load, then the process
is killed while it is full."""
import errno
import os
import subprocess
import time

from lib.suite import Scenario


class DiskFull(Scenario):
    """SQLite on a 128 MiB tmpfs. A filler file takes every free byte for
    4 s: writes fail (503, never a false acknowledgement); once there is
    room again orderd must take orders by itself within 5 s. Then the disk
    fills again and orderd is killed -9 while it is full, and started once
    it has room. Nothing acknowledged is lost (G1)."""
    name = "sqlite-disk-full"
    backend = "sqlite"
    n_replicas = 1
    threads = 4

    def sqlite_path(self, run):
        self.mnt = os.path.join(run.dir, "tmpfs")
        os.makedirs(self.mnt)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128m", "tmpfs",
                        self.mnt], check=True)
        from lib import env
        env.on_exit(self._umount)
        self.filler = os.path.join(self.mnt, "filler")
        return os.path.join(self.mnt, "orderd.db")

    def _umount(self):
        subprocess.run(["umount", "-l", self.mnt], capture_output=True)

    def _fill(self):
        """Writes until the file system has no byte left (unbuffered, so
        nothing is left to flush on close)."""
        with open(self.filler, "wb", buffering=0) as f:
            for size in (1 << 20, 4096, 512):
                block = b"\0" * size
                while True:
                    try:
                        f.write(block)
                    except OSError as e:
                        if e.errno != errno.ENOSPC:
                            raise
                        break

    def nemesis(self, run):
        r = run.replicas[0]
        run.fault("disk full")
        self._fill()
        run.sleep(4)
        os.unlink(self.filler)
        # Room again: orderd must take orders again by itself.
        t_free = time.time()
        while not [t for t in run.load.ack_times() if t > t_free]:
            if time.time() - t_free > 5:
                raise AssertionError("no order acknowledged within 5 s of"
                                     " the disk having room again")
            time.sleep(0.1)
        run.sleep(2)
        run.fault("disk full, then kill -9 %s" % r.name)
        self._fill()
        run.sleep(2)
        r.kill9()
        os.unlink(self.filler)
        r.start()

    def heal(self, run):
        if os.path.exists(self.filler):
            os.unlink(self.filler)

    def teardown(self, run):
        self._umount()

    def figures(self, run, rep):
        return {"free-after": "%d KiB" % (os.statvfs(self.mnt).f_bavail *
                                          os.statvfs(self.mnt).f_frsize
                                          // 1024)}


SCENARIOS = [DiskFull]
