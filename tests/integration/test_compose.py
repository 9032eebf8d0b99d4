"""deploy/compose/docker-compose.yml run with Debian's docker-compose (v1)
on this machine's Docker, images built offline (make service-image: the
script is run here and skips when the image is up to date):
  - Redis + producer + consumer come up with only Autolab's .env variables
    (plus a free Redis port on the host's loopback: this machine may run its
    own Redis); the producer answers /health at http://127.0.0.1:PORT
    (TANGO_COMPOSE_PORT, default 3000, as Autolab's RESTFUL_PORT), and the
    containers' health checks report healthy;
  - an Autolab-like client submits a job; it runs in a sibling container on
    the host's Docker (its files through DOCKER_TANGO_HOST_VOLUME_PATH) and
    calls back; the consumer's log says which Autolab variables it used;
  - the jobs' isolation with the consumer in a container: the firewall
    rules in the host's namespace (test_hardening_net's checks), and a job
    cannot reach another job, a service of the host, the producer (its
    container or its published port) or Redis's container, while it reaches
    a host outside (test_hardening_net's network namespace);
  - docker restart of the consumer's container while a job runs: the job
    ends once, with one callback;
  - docker-compose down, a job queued, up: the queue survived (AOF volume);
  - the standby profile starts a second consumer on its own metrics port;
  - a consumer's container without the host's network or NET_ADMIN stops,
    saying why; the Autolab fragment merges with an Autolab-shaped file.
Everything is made under one compose project name of the test's own and
removed at the end (docker-compose down -v; the fixture container)."""
import json
import os
import shutil
import subprocess
import tempfile
import time

import test_hardening_net as hn
import tlib
from tjobs import CallbackReceiver, makefile, submit, wait_output

PID = os.getpid()
PROJECT = "tcmp%d" % PID
DEPLOYMENT = "tc%d" % (PID % 100000)          # instance prefix tango-<it>-
PORT = int(os.environ.get("TANGO_COMPOSE_PORT", "3000"))
KEY = "autolab-key-%d" % PID
COMPOSE = os.path.join(tlib.ROOT, "deploy", "compose", "docker-compose.yml")
# TANGO_COMPOSE_BUILD: the build whose programs go into the image (another
# tree's build, to see this test fail on older code; its image is then
# named tango-service-under-test so make service-image's is left alone)
BUILD = os.environ.get("TANGO_COMPOSE_BUILD", os.path.join(tlib.ROOT, "build"))
IMAGE = "tango-service" if "TANGO_COMPOSE_BUILD" not in os.environ else "tango-service-under-test"
JOBNET = "tango-jobs"                           # the default jobs' network
LAB = "course1-compose"


class Site:
    """The compose project: its .env, docker-compose calls, the API."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="tango-compose-")
        self.volumes = os.path.join(self.tmp, "volumes")
        self.key = KEY
        self.redis_port = tlib.free_port()
        env = {"DOCKER_DEPLOYMENT": DEPLOYMENT, "RESTFUL_KEY": KEY,
               "DOCKER_REDIS_HOSTNAME": "redis",
               "DOCKER_VOLUME_PATH": "/opt/TangoService/Tango/volumes",
               "DOCKER_TANGO_HOST_VOLUME_PATH": self.volumes,
               "TANGO_REDIS_PORT": str(self.redis_port), "TANGO_PORT_PUBLISHED": str(PORT)}
        if IMAGE != "tango-service":
            env["TANGO_IMAGE"] = IMAGE
        self.envfile = os.path.join(self.tmp, ".env")
        with open(self.envfile, "w") as f:
            f.write("".join("%s=%s\n" % kv for kv in env.items()))

    def compose(self, *args, timeout=180, check=True):
        # a clean environment: only .env configures the site
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.tmp}
        r = subprocess.run(["docker-compose", "-p", PROJECT, "-f", COMPOSE, "--env-file",
                            self.envfile] + list(args),
                           capture_output=True, text=True, timeout=timeout, env=env)
        if check and r.returncode != 0:
            raise RuntimeError("docker-compose %s: %s" % (" ".join(args), r.stderr[-800:]))
        return r

    def container(self, service):
        return "%s_%s_1" % (PROJECT, service)

    def logs(self, service):
        r = subprocess.run(["docker", "logs", self.container(service)], capture_output=True,
                           text=True, timeout=30)
        return r.stdout + r.stderr

    def healthy(self, timeout=60):
        return tlib.wait_for(lambda: self.health() == 200, timeout)

    def health(self):
        try:
            return tlib.request(PORT, "GET", "/health", timeout=3).status
        except OSError:
            return None

    # the tlib.Service calls tjobs uses
    def request(self, method, path, body=None, headers=None, **kw):
        return tlib.request(PORT, method, path, body, headers, kw.get("timeout", 30))

    get = tlib.Service.get
    post = tlib.Service.post
    open = tlib.Service.open
    upload = tlib.Service.upload
    add_job = tlib.Service.add_job
    poll = tlib.Service.poll


def build_image():
    r = subprocess.run([os.path.join(tlib.ROOT, "deploy", "image", "build-service-image.sh"),
                        BUILD, IMAGE],
                       capture_output=True, text=True, timeout=600)
    return tlib.check("service image built offline (make service-image)", r.returncode == 0,
                      r.stderr[-800:])


def come_up(site):
    site.compose("up", "-d")
    up = tlib.check("compose: the producer answers /health on 127.0.0.1:%d" % PORT,
                    site.healthy(90), site.logs("tango")[-800:] + site.logs("tango-consumer")[-800:])
    log = site.logs("tango-consumer")
    tlib.check("consumer: says it used Autolab's variables", "event=autolab_env used=" in log and
               "DOCKER_TANGO_HOST_VOLUME_PATH=host_volume_dir" in log and KEY not in log,
               [l for l in log.splitlines() if "autolab_env" in l])
    tlib.check("consumer: installed the jobs' firewall in the host's namespace",
               tlib.wait_for(lambda: "event=jobs_network network=%s " % JOBNET in
                             site.logs("tango-consumer"), 30), log[-600:])
    return up


def healthy_containers(site):
    """The image's HEALTHCHECK (the producer's /health) and the consumer's
    (tangoctl status) report healthy."""
    def state(svc):
        return subprocess.run(["docker", "inspect", "-f", "{{.State.Health.Status}}",
                               site.container(svc)], capture_output=True, text=True,
                              timeout=30).stdout.strip()
    for svc in ("tango", "tango-consumer"):
        tlib.check("%s's container reports healthy" % svc,
                   tlib.wait_for(lambda: state(svc) == "healthy", 60), state(svc))


def job_with_callback(site, cb):
    files = {"hello.sh": b"echo hello from compose; id -un\n", "Makefile": makefile("sh hello.sh")}
    r = submit(site, LAB, files, "hello.out", timeout=30, callback_url=cb.url("hello"))
    tlib.check("client: job accepted", r.get("statusMsg") == "Job added", r)
    out = wait_output(site, LAB, "hello.out", 90)
    tlib.check("job ran in a sibling container and its output came back",
               out is not None and b"hello from compose" in out,
               out or site.logs("tango-consumer")[-1200:])
    calls = cb.wait("hello", 30)
    tlib.check("the job called back once", len(calls) == 1 and
               b"hello from compose" in (calls[0]["content"] or b""), calls)


def isolation(site):
    hn.check_rules("compose consumer", JOBNET)
    fx = hn.Fixtures()  # only its "internet" host (a network namespace of ours)
    net = json.loads(hn.sh("docker", "network", "inspect", JOBNET).stdout)[0]
    gw = net["IPAM"]["Config"][0]["Gateway"]
    peer = "%s-peer" % PROJECT
    hn.sh("docker", "run", "-d", "--name", peer, "--network", JOBNET, "-e", "SECRET=SECRET-peer",
          "autograding_image", "python3", "-c", hn.SERVER)
    try:
        peer_ip = json.loads(hn.sh("docker", "inspect", peer).stdout)[0][
            "NetworkSettings"]["Networks"][JOBNET]["IPAddress"]
        addr = {}
        for svc in ("tango", "redis"):
            nets = json.loads(hn.sh("docker", "inspect", site.container(svc)).stdout)[0][
                "NetworkSettings"]["Networks"]
            addr[svc] = list(nets.values())[0]["IPAddress"]
        host = hn.Listener()
        fx.internet_up()
        blocked = [["another-job", peer_ip, hn.SECRET_PORT],
                   ["host-service", gw, host.port],
                   ["producer-published", gw, PORT],
                   ["producer-container", addr["tango"], 3000],
                   ["redis-container", addr["redis"], 6379]]
        res = hn.probe(site, "course1-isolation",
                       [["internet", hn.NS_ADDR, fx.inet_port]] + blocked)
        host.close()
        got = res.get("internet", ("?", "-"))
        tlib.check("compose: a job reaches a host outside (its network works)",
                   got == ("0", "pong"), got)
        for name, _, _ in blocked:
            rc, text = res.get(name, ("?", "-"))
            tlib.check("compose: a job cannot reach %s" % name,
                       rc not in ("0", "?") and "SECRET" not in text, (rc, text))
    finally:
        hn.sh("docker", "rm", "-f", peer, check=False)
        fx.down()


def restart_consumer(site, cb):
    files = {"Makefile": makefile("echo B-started\nsleep 6\necho B-done")}
    r = submit(site, LAB, files, "b.out", timeout=60, callback_url=cb.url("b"))
    jid = r.get("jobId")
    running = tlib.wait_for(lambda: "B-started" in (site.get(
        "/getPartialOutput/%s/%s/" % (KEY, jid)).json().get("output") or ""), 60)
    tlib.check("job B runs before the restart", running, r)
    subprocess.run(["docker", "restart", "-t", "2", site.container("tango-consumer")],
                   capture_output=True, timeout=60)
    out = wait_output(site, LAB, "b.out", 90)
    tlib.check("docker restart of the consumer: job B still ends with its output",
               out is not None and b"B-done" in out, out or site.logs("tango-consumer")[-1500:])
    tlib.check("job B called back", len(cb.wait("b", 30)) == 1, cb.for_tag("b"))


def queue_survives(site, cb):
    site.compose("stop", "tango-consumer")
    files = {"Makefile": makefile("echo C-done")}
    r = submit(site, LAB, files, "c.out", timeout=30, callback_url=cb.url("c"))
    tlib.check("job C queued with no consumer", r.get("statusMsg") == "Job added", r)
    site.compose("down")
    site.compose("up", "-d")
    tlib.check("after down/up the producer is back", site.healthy(90))
    out = wait_output(site, LAB, "c.out", 90)
    tlib.check("docker-compose down then up: the queued job C ran (AOF volume)",
               out is not None and b"C-done" in out, out or site.logs("tango-consumer")[-1500:])


def standby(site):
    site.compose("--profile", "standby", "up", "-d", "tango-standby")
    ok = tlib.wait_for(lambda: "event=started" in site.logs("tango-standby"), 60)
    log = site.logs("tango-standby")
    tlib.check("the standby comes up beside the consumer (its own metrics port)", ok and
               ("port=9102" in log) and subprocess.run(
                   ["docker", "inspect", "-f", "{{.State.Running}}",
                    site.container("tango-standby")], capture_output=True,
                   text=True).stdout.strip() == "true", log[-800:])


AUTOLAB_LIKE = """version: "3.3"
services:
  redis:
    container_name: redis
    image: redis:latest
    command: ["redis-server", "--appendonly", "yes"]
    ports: ["127.0.0.1:6379:6379"]
  autolab:
    container_name: autolab
    image: autolab
    environment: [RESTFUL_HOST, RESTFUL_PORT, RESTFUL_KEY]
volumes:
  mysql-db:
"""


def autolab_fragment(site):
    """The fragment that replaces Autolab's tango service, beside an
    Autolab-shaped file: docker-compose accepts the pair (nothing pulled)."""
    base = os.path.join(site.tmp, "autolab-compose.yml")
    with open(base, "w") as f:
        f.write(AUTOLAB_LIKE)
    frag = os.path.join(tlib.ROOT, "deploy", "compose", "autolab-tango.yml")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": site.tmp}
    r = subprocess.run(["docker-compose", "-p", PROJECT + "a", "-f", base, "-f", frag,
                        "--env-file", site.envfile, "config"], capture_output=True, text=True,
                       timeout=60, env=env)
    tlib.check("the Autolab fragment merges with Autolab's services (docker-compose config)",
               r.returncode == 0 and "network_mode: host" in r.stdout and
               "RESTFUL_KEY: %s" % KEY in r.stdout and "tango-consumer" in r.stdout,
               r.stderr[-600:] or r.stdout[-600:])


def refused_without_privileges():
    """A consumer's container without the host's network, or without
    NET_ADMIN, does not start and says why (the jobs' firewall check)."""
    base = ["docker", "run", "--rm", "--user", "root", "-e", "TANGO_REDIS_URL=redis://127.0.0.1:1/0",
            "-v", "/var/run/docker.sock:/var/run/docker.sock"]
    cases = [("without the host's network", ["--name", PROJECT + "-nohost", "--cap-add",
                                              "NET_ADMIN"], "not in this network namespace"),
             ("without NET_ADMIN", ["--name", PROJECT + "-nocap", "--network", "host"],
              "jobs' firewall")]
    for what, opts, needle in cases:
        r = subprocess.run(base + opts + [IMAGE, "/usr/local/bin/tango-consumer"],
                           capture_output=True, text=True, timeout=60)
        tlib.check("a consumer's container %s stops, saying why" % what,
                   r.returncode != 0 and needle in r.stderr, (r.returncode, r.stderr[-500:]))


def main():
    if not tlib.check("docker-compose is installed (deploy/setup-host.sh)",
                      shutil.which("docker-compose") is not None):
        return
    if not build_image():
        return
    site = Site()
    cb = CallbackReceiver(host="172.17.0.1")  # docker0: a callback_allow default accepts it
    try:
        autolab_fragment(site)
        refused_without_privileges()
        if come_up(site):
            job_with_callback(site, cb)
            isolation(site)
            healthy_containers(site)
            restart_consumer(site, cb)
            queue_survives(site, cb)
            standby(site)
            tlib.check("job B called back exactly once (by the end of the test)",
                       len(cb.for_tag("b")) == 1, cb.for_tag("b"))
    finally:
        cb.close()
        site.compose("--profile", "standby", "down", "-v", "--remove-orphans", check=False)
        # the job volumes were made by root in the consumer's container
        shutil.rmtree(site.tmp, ignore_errors=True)


main()
tlib.done()
