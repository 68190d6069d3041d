"""One `tunnat run` in a network namespace, for every suite that runs one (test_service.py, test_floods.py, and the
failover cluster's nodes): its configuration file, its start (`ip netns exec NS tunnat run`, ready once its control
socket answers `tunnat status`), its status, signals, a bounded stop, and its log for failure messages.

    t = TunnatProcess(tunnat, "ns-nat", work)        # files in work: NAME.yaml, NAME.sock, NAME.N.log (run N)
    t.write_config(YAML)                              # {socket} in YAML stands for the control socket's path
    t.start()                                         # raises TunnatFailed with the log if it is not ready in time
    t.status()                                        # `tunnat status --json` as a dict, or None
    t.stop()                                          # SIGTERM, bounded wait, SIGKILL after it; the exit status

start() again after stop() or kill() is a restart (a new log file, so log_text() is this run's). Nothing here
asserts: a failure raises with what tunnat logged.
"""
import json
import os
import signal
import subprocess

from testbed import end, sh, wait_for


class TunnatFailed(RuntimeError):
    pass


class TunnatProcess:
    def __init__(self, tunnat, netns, work, name="tunnat", procs=None):
        """tunnat: the binary; netns: the namespace it runs in; work: a directory for its files; procs: a
        testbed.Processes that also ends it at teardown (optional)."""
        self.tunnat, self.netns, self.work, self.name, self.procs = tunnat, netns, str(work), name, procs
        self.config = os.path.join(self.work, f"{name}.yaml")
        self.socket = os.path.join(self.work, f"{name}.sock")
        self.proc = None
        self.runs = 0

    # -- configuration and life cycle

    def write_config(self, text):
        """Writes the configuration; `{socket}` in it becomes the control socket's path. Returns the path."""
        with open(self.config, "w") as f:
            f.write(text.replace("{socket}", self.socket))
        return self.config

    def argv(self, *args):
        return ["ip", "netns", "exec", self.netns, self.tunnat, *map(str, args)]

    def start(self, env=None, inherit=True, ready=True, seconds=20, listen_fds=()):
        """Starts `tunnat run --config`, with `env` added to this process's environment (without inherit: `env`
        alone). With ready, waits until the control socket answers `tunnat status` or tunnat exits, for at most
        `seconds`: raises TunnatFailed with the log unless it answers. listen_fds: (descriptor, name) pairs passed
        as systemd passes sockets (descriptors 3 and up, LISTEN_FDS, LISTEN_FDNAMES, LISTEN_PID)."""
        self.runs += 1
        e = dict(os.environ) if inherit else {}
        e.update(env or {})
        argv = self.argv("run", "--config", self.config)
        if listen_fds:
            # A shell moves them to 3, 4, ... and sets LISTEN_PID to its own pid, which exec keeps through
            # `ip netns exec` to tunnat.
            targets = range(3, 3 + len(listen_fds))
            assert not any(fd in targets for fd, _ in listen_fds), "pass descriptors numbered above the targets"
            moves = " ".join([f"{t}<&{fd}" for t, (fd, _) in zip(targets, listen_fds)] + [f"{fd}<&-" for fd, _ in listen_fds])
            names = ":".join(name for _, name in listen_fds)
            argv = ["bash", "-c", f'exec {moves}; LISTEN_PID=$$ LISTEN_FDS={len(listen_fds)} LISTEN_FDNAMES={names} exec "$@"',
                    "bash", *argv]
        with open(self.log_path(), "w") as log:
            # ip netns exec execs tunnat: the pid is tunnat's own.
            self.proc = subprocess.Popen(argv, env=e, stdout=log, stderr=subprocess.STDOUT,
                                         pass_fds=[fd for fd, _ in listen_fds])
        if self.procs is not None:
            self.procs.append(self.proc)
        if ready:
            self.wait_ready(seconds)
        return self

    def wait_ready(self, seconds=20):
        answered = wait_for(lambda: not self.alive() or self.status() is not None, seconds, step=0.1)
        if not self.alive():
            raise TunnatFailed(f"tunnat exited {self.proc.returncode} at start:\n{self.log_tail(40)}")
        if not answered:
            raise TunnatFailed(f"tunnat's control socket did not answer within {seconds} s:\n{self.log_tail(40)}")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid

    @property
    def returncode(self):
        return self.proc.returncode if self.proc else None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, seconds=15):
        """SIGTERM, then SIGKILL if it has not exited within `seconds`. Returns the exit status (None if it was never
        started)."""
        return end(self.proc, seconds) if self.proc else None

    def kill(self):
        """SIGKILL: none of tunnat's own clean-up runs."""
        if self.proc:
            end(self.proc, 10, signal.SIGKILL)

    # -- what it says

    def status_command(self, *flags, check=True, timeout=10):
        """`tunnat status --socket S FLAGS...` (run from the root namespace: the socket is a file)."""
        return sh(self.tunnat, "status", "--socket", self.socket, *flags, check=check, timeout=timeout)

    def status(self, timeout=10):
        """`tunnat status --json` as a dict, or None when it gives no answer within `timeout` (starting, busy, gone)."""
        try:
            r = self.status_command("--json", check=False, timeout=timeout)
            return json.loads(r.stdout) if r.returncode == 0 else None
        except (ValueError, subprocess.TimeoutExpired):
            return None

    def log_path(self):
        return os.path.join(self.work, f"{self.name}.{self.runs}.log")

    def log_text(self):
        try:
            with open(self.log_path()) as f:
                return f.read()
        except OSError as e:
            return f"(no log: {e})"

    def log_tail(self, n=20):
        return "".join(self.log_text().splitlines(keepends=True)[-n:])

    # -- what the kernel says of it

    def cpu_seconds(self):
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss(self):
        """Resident memory in bytes (VmRSS), or None once it has exited."""
        try:
            with open(f"/proc/{self.pid}/status") as f:
                return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            return None

    def thread_ids(self, name):
        """The ids of its threads called `name` (tunnat-q0, ...)."""
        found = []
        for tid in os.listdir(f"/proc/{self.pid}/task"):
            with open(f"/proc/{self.pid}/task/{tid}/comm") as f:
                if f.read().strip() == name:
                    found.append(int(tid))
        return found
