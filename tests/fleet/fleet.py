"""fleet.py: the Python side of tests/fleet/fleet.sh for the distDocker
integration tests. A Fleet is a context manager that builds N SSH worker
hosts (network namespaces with their own sshd, sharing the local Docker
engine), stops and restarts a host's sshd, writes distDocker config for
them, and removes everything (hosts, their containers, files) on exit.

    import fleet
    with fleet.Fleet(3) as f:
        cfg = f.distdocker_config(max_jobs=2)
        f.stop(2); f.start(2)
"""
import json
import os
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "fleet.sh")


class FleetError(RuntimeError):
    pass


class Fleet:
    def __init__(self, n, prefix=None):
        self.n = n
        self.prefix = prefix or "f%d" % (os.getpid() % 1000000)
        self.info = None

    def _run(self, *args, timeout=60):
        env = dict(os.environ, FLEET_OWNER_PID=str(os.getpid()))
        r = subprocess.run([SCRIPT] + [str(a) for a in args], capture_output=True, text=True,
                           timeout=timeout, env=env)
        if r.returncode != 0:
            raise FleetError("fleet.sh %s: %s" % (" ".join(map(str, args)),
                                                  (r.stderr or r.stdout).strip()[-800:]))
        return r.stdout

    def __enter__(self):
        self._run("up", self.n, self.prefix)
        with open("/run/tango-fleet/%s/fleet.json" % self.prefix) as fh:
            self.info = json.load(fh)
        return self

    def __exit__(self, *exc):
        self.down()
        return False

    def down(self):
        if self.info is not None:
            self._run("down", self.n, self.prefix)
            self.info = None

    def stop(self, i):
        """Kills every process of host i (1-based): its sshd and sessions."""
        self._run("stop", self.prefix, i)

    def start(self, i):
        self._run("start", self.prefix, i)

    def address(self, i):
        return self.info["hosts"][i - 1]["address"]

    def label(self, i):
        return "%s:22" % self.address(i)

    def volume_dir(self, i):
        return self.info["hosts"][i - 1]["volume_dir"]

    def dead_address(self):
        """An address of the fleet's subnet that nothing answers on."""
        return "%s.99" % self.info["subnet"]

    def host(self, i, max_jobs=2, known_hosts=None, address=None):
        return {"address": address or self.address(i), "user": "root",
                "private_key": self.info["client_key"],
                "known_hosts": known_hosts or self.info["known_hosts"],
                "volume_dir": self.volume_dir(i), "max_jobs": max_jobs}

    def distdocker_config(self, hosts=None, max_jobs=2, **top):
        """vmms_config.distDocker for the given host objects (default: all)."""
        cfg = {"hosts": hosts or [self.host(i, max_jobs) for i in range(1, self.n + 1)],
               "connect_timeout_s": 2, "command_timeout_s": 30, "down_backoff_s": 1,
               "down_backoff_max_s": 2, "health_interval_s": 2, "run_grace_s": 5}
        cfg.update(top)
        return cfg

    def leftovers(self):
        """Entries left in the hosts' volume directories."""
        out = []
        for h in self.info["hosts"]:
            try:
                out += [os.path.join(h["volume_dir"], e) for e in os.listdir(h["volume_dir"])]
            except FileNotFoundError:
                pass
        return out
