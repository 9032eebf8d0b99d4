"""ec2sim: a pretend EC2 on this machine for the ec2SSH tests, with no AWS.

- Moto: moto_server (a Python implementation of the EC2, IAM and STS APIs)
  on loopback with request authentication ON: the first 3 calls (made here)
  create an admin IAM user and its access key; every later call must be
  SigV4-signed by a key moto knows and allowed by that key's IAM policy.
- Account: a VPC and subnet whose range is a free 10.251.X.0/24, a security
  group, the key pair (the test's public key), AMIs tagged tango-image=NAME,
  a "tango" user and a "tango-role" role with the minimum policy of
  docs/backends/ec2SSH.md
  (tests/ec2/iam-policy.json), and temporary credentials of that role.
- VMs: a Docker network with exactly that subnet; a boot simulator thread
  that, when moto reports an instance running, starts a container of the VM
  image (vmimage.sh: sshd, the grading users, the autodriver, its own host
  key made at boot) at exactly the instance's private IP, and removes it
  when the instance is terminated. Instances of an AMI in `never_boot` are
  left without a VM (an instance that never becomes reachable).
- Proxy: a loopback HTTP proxy in front of moto that can answer the next N
  calls with RequestLimitExceeded (throttling), counts the actions, and
  gives GetConsoleOutput what cloud-init prints on a real instance: the
  VM's host key fingerprints between "BEGIN/END SSH HOST KEY FINGERPRINTS"
  (moto's console text is fixed), or a wrong fingerprint while
  `bad_console` is set.
- IMDS: a loopback fake of the instance metadata service (IMDSv2 only:
  PUT token, then GETs carrying it) serving the role's credentials.
Every address is loopback or the Docker test network.
"""
import base64
import http.client
import http.server
import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse

import boto3
from botocore.config import Config

HERE = os.path.dirname(os.path.abspath(__file__))
REGION = "us-east-1"
POLICY_FILE = os.path.join(HERE, "iam-policy.json")


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, timeout=20):
    import socket
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def free_subnet():
    used = subprocess.run(["ip", "-4", "route", "show"], capture_output=True, text=True).stdout
    used += subprocess.run(["docker", "network", "inspect", "--format",
                            "{{range .IPAM.Config}}{{.Subnet}} {{end}}"] +
                           subprocess.run(["docker", "network", "ls", "-q"], capture_output=True,
                                          text=True).stdout.split(),
                           capture_output=True, text=True).stdout
    for x in range(10, 250):
        if "10.251.%d." % x not in used:
            return "10.251.%d" % x
    raise RuntimeError("no free 10.251.X.0/24")


class Proxy:
    """Forwards every request to moto; throttle(n) makes the next n answer
    RequestLimitExceeded (HTTP 503, EC2's error document)."""

    def __init__(self, upstream_port, console=None):
        self.upstream = upstream_port
        self.console = console      # instance id -> console text, or None (not booted)
        self.bad_console = False
        self.lock = threading.Lock()
        self.pending_throttles = 0
        self.throttled = 0
        self.actions = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                action = urllib.parse.parse_qs(body.decode("utf-8", "replace")).get(
                    "Action", ["?"])[0]
                with outer.lock:
                    outer.actions.append(action)
                    throttle = outer.pending_throttles > 0
                    if throttle:
                        outer.pending_throttles -= 1
                        outer.throttled += 1
                if throttle:
                    doc = (b'<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error>'
                           b"<Code>RequestLimitExceeded</Code><Message>Request limit exceeded."
                           b"</Message></Error></Errors><RequestID>t</RequestID></Response>")
                    self.send_response(503)
                    self.send_header("Content-Type", "text/xml")
                    self.send_header("Content-Length", str(len(doc)))
                    self.end_headers()
                    self.wfile.write(doc)
                    return
                c = http.client.HTTPConnection("127.0.0.1", outer.upstream, timeout=30)
                hdrs = {k: v for k, v in self.headers.items()}
                c.request("POST", self.path, body, hdrs)
                r = c.getresponse()
                data = r.read()
                if action == "GetConsoleOutput" and r.status == 200 and outer.console:
                    iid = urllib.parse.parse_qs(body.decode()).get("InstanceId", [""])[0]
                    text = outer.console(iid, outer.bad_console)
                    if text is not None:
                        b64 = base64.b64encode(text.encode()).decode()
                        data = re.sub(rb"<output>[^<]*</output>",
                                      ("<output>%s</output>" % b64).encode(), data)
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection",
                                         "server", "date"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                c.close()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def throttle(self, n):
        with self.lock:
            self.pending_throttles = n

    def count(self, action):
        with self.lock:
            return self.actions.count(action)

    def close(self):
        self.server.shutdown()


class Imds:
    """IMDSv2 only: PUT /latest/api/token, then GETs with the token header.
    Serves one role's credentials; counts what it answered."""

    def __init__(self, role, creds):
        self.token = secrets.token_hex(16)
        self.hits = {"token": 0, "role": 0, "creds": 0, "refused": 0}
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def reply(self, code, body):
                b = body.encode()
                self.send_response(code)
                self.send_header("Content-Length", str(len(b)))
                self.end_headers()
                self.wfile.write(b)

            def do_PUT(self):
                if self.path == "/latest/api/token" and \
                        self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                    outer.hits["token"] += 1
                    return self.reply(200, outer.token)
                outer.hits["refused"] += 1
                self.reply(400, "")

            def do_GET(self):
                if self.headers.get("X-aws-ec2-metadata-token") != outer.token:
                    outer.hits["refused"] += 1
                    return self.reply(401, "")
                base = "/latest/meta-data/iam/security-credentials/"
                if self.path == base:
                    outer.hits["role"] += 1
                    return self.reply(200, role + "\n")
                if self.path == base + role:
                    outer.hits["creds"] += 1
                    return self.reply(200, json.dumps({
                        "Code": "Success", "Type": "AWS-HMAC",
                        "AccessKeyId": creds["AccessKeyId"],
                        "SecretAccessKey": creds["SecretAccessKey"],
                        "Token": creds["SessionToken"],
                        "Expiration": creds["Expiration"].strftime("%Y-%m-%dT%H:%M:%SZ")}))
                self.reply(404, "")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


class Ec2Sim:
    """The whole pretend EC2. Use as a context manager."""

    def __init__(self, vm_image, tag="t%d" % os.getpid()):
        self.tag = re.sub(r"[^a-z0-9]", "", tag)[:10]
        self.vm_image = vm_image
        self.tmp = tempfile.mkdtemp(prefix="tango-ec2-")
        self.proc = None
        self.network = "tango-ec2-" + self.tag
        self.booted = {}          # instance id -> container name
        self.never_boot = set()   # AMI ids whose instances get no VM
        self.max_live = 0         # most of our instances pending/running at once
        self.boots = 0
        self.stop_sim = threading.Event()
        self.sim_errors = []
        self.lock = threading.Lock()

    # ---- set-up ----
    def __enter__(self):
        try:
            self._start()
        except BaseException as e:
            self.__exit__(type(e), e, None)
            raise
        return self

    def _client(self, service, key, secret, token=None, port=None):
        return boto3.client(service, region_name=REGION,
                            endpoint_url="http://127.0.0.1:%d" % (port or self.port),
                            aws_access_key_id=key, aws_secret_access_key=secret,
                            aws_session_token=token,
                            config=Config(retries={"max_attempts": 2}))

    def _start(self):
        self.port = free_port()
        env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="3", MOTO_ALLOW_NONEXISTENT_REGION="1")
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            env.pop(k, None)
        self.log = open(os.path.join(self.tmp, "moto.log"), "wb")
        self.proc = subprocess.Popen([shutil.which("moto_server") or "moto_server", "-H",
                                      "127.0.0.1", "-p", str(self.port)], env=env,
                                     stdout=self.log, stderr=self.log)
        if not wait_port(self.port, 30):
            raise RuntimeError("moto_server did not start (see %s)" % self.log.name)
        # The 3 calls without authentication: an admin user and its key.
        iam0 = self._client("iam", "AKIDEXAMPLE0000000000", "x" * 40)
        iam0.create_user(UserName="admin")
        iam0.put_user_policy(UserName="admin", PolicyName="all", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*",
                                                    "Resource": "*"}]}))
        k = iam0.create_access_key(UserName="admin")["AccessKey"]
        self.admin = (k["AccessKeyId"], k["SecretAccessKey"])
        self.iam = self._client("iam", *self.admin)
        self.ec2 = self._client("ec2", *self.admin)
        # The service's identities, with the ec2SSH guide's minimum policy.
        policy = open(POLICY_FILE).read()
        self.iam.create_user(UserName="tango")
        self.iam.put_user_policy(UserName="tango", PolicyName="tango-ec2",
                                 PolicyDocument=policy)
        k = self.iam.create_access_key(UserName="tango")["AccessKey"]
        self.tango_key = (k["AccessKeyId"], k["SecretAccessKey"])
        # (In AWS the principal is the service ec2.amazonaws.com; moto checks
        # only AWS principals.)
        trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {
            "AWS": "*"}, "Action": "sts:AssumeRole"}]}
        role = self.iam.create_role(RoleName="tango-role",
                                    AssumeRolePolicyDocument=json.dumps(trust))["Role"]
        self.iam.put_role_policy(RoleName="tango-role", PolicyName="tango-ec2",
                                 PolicyDocument=policy)
        sts = self._client("sts", *self.admin)
        self.role_creds = sts.assume_role(RoleArn=role["Arn"], RoleSessionName="tango",
                                          DurationSeconds=3600)["Credentials"]
        # The network: a Docker network with the moto subnet's range.
        self.subnet_prefix = free_subnet()
        cidr = self.subnet_prefix + ".0/24"
        subprocess.run(["docker", "network", "create", "--internal", "--subnet", cidr,
                        "--gateway", self.subnet_prefix + ".1", "--label", "tango-ec2-test=1",
                        self.network], check=True, capture_output=True)
        vpc = self.ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
        self.subnet = self.ec2.create_subnet(VpcId=vpc, CidrBlock=cidr)["Subnet"]["SubnetId"]
        self.sg = self.ec2.create_security_group(GroupName="tango-graders", Description="t",
                                                 VpcId=vpc)["GroupId"]
        keyfile = os.path.join(self.tmp, "vm_key")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "tango-test",
                        "-f", keyfile], check=True)
        self.private_key = keyfile
        self.public_key = open(keyfile + ".pub").read().strip()
        self.ec2.import_key_pair(KeyName="tango-graders",
                                 PublicKeyMaterial=self.public_key.encode())
        self.amis = {}
        for name in ("autograding_image", "deadimage"):
            ami = self.ec2.register_image(Name="tango-" + name, RootDeviceName="/dev/sda1",
                                          Architecture="x86_64")["ImageId"]
            self.ec2.create_tags(Resources=[ami], Tags=[{"Key": "tango-image", "Value": name}])
            self.amis[name] = ami
        # An AMI of ours without the tag, and someone else's instance: never ours.
        self.untagged_ami = self.ec2.register_image(Name="not-for-tango",
                                                    RootDeviceName="/dev/sda1")["ImageId"]
        self.foreign = self.ec2.run_instances(ImageId=self.untagged_ami, MinCount=1, MaxCount=1,
                                              InstanceType="t3.micro", SubnetId=self.subnet)[
            "Instances"][0]["InstanceId"]
        self.never_boot.add(self.amis["deadimage"])
        self.never_boot.add(self.untagged_ami)
        self.proxy = Proxy(self.port, self.console_text)
        self.imds = Imds("tango-role", self.role_creds)
        self.sim = threading.Thread(target=self._simulate, daemon=True)
        self.sim.start()

    def plugin_config(self, prefix, **extra):
        cfg = {"region": REGION, "endpoint": "http://127.0.0.1:%d/" % self.proxy.port,
               "imds_endpoint": self.imds.url, "subnet": self.subnet,
               "security_groups": [self.sg], "key_pair": "tango-graders",
               "private_key": self.private_key, "ssh_user": "root",
               "known_hosts": "console", "use_private_ip": True, "max_vms": 3,
               "allowed_instance_types": ["t3.micro", "t3.small"],
               "default_instance_type": "t3.micro", "tags": {"course": "tango-test"},
               "image_tag": "tango-image", "initialize_timeout_s": 20, "ssh_timeout_s": 2,
               "command_timeout_s": 20, "api_timeout_s": 10, "api_retries": 5,
               "api_backoff_ms": 100, "poll_ms": 200, "run_grace_s": 10}
        cfg.update(extra)
        return cfg

    # ---- the boot simulator ----
    def instances(self, filters=None):
        out = []
        for r in self.ec2.describe_instances(Filters=filters or [])["Reservations"]:
            out.extend(r["Instances"])
        return out

    def ours(self, prefix, live=True):
        f = [{"Name": "tag:tango-service", "Values": [prefix]}]
        if live:
            f.append({"Name": "instance-state-name", "Values": ["pending", "running"]})
        return self.instances(f)

    def _simulate(self):
        while not self.stop_sim.is_set():
            try:
                self._sim_once()
            except Exception as e:  # keep simulating; the test reports it
                self.sim_errors.append(repr(e))
            self.stop_sim.wait(0.1)

    def _sim_once(self):
        insts = self.instances()
        live = [i for i in insts if i["State"]["Name"] in ("pending", "running") and
                any(t["Key"] == "tango-service" for t in i.get("Tags", []))]
        self.max_live = max(self.max_live, len(live))
        for i in insts:
            iid, state = i["InstanceId"], i["State"]["Name"]
            if state in ("shutting-down", "terminated") and iid in self.booted:
                subprocess.run(["docker", "rm", "-f", self.booted.pop(iid)],
                               capture_output=True)
        for i in insts:
            iid, state = i["InstanceId"], i["State"]["Name"]
            ip = i.get("PrivateIpAddress")
            if state != "running" or iid in self.booted or not ip or \
                    i["ImageId"] in self.never_boot:
                continue
            name = "%s-%s" % (self.network, iid)
            subprocess.run(["docker", "rm", "-f", name], capture_output=True)
            r = subprocess.run(["docker", "run", "-d", "--name", name, "--network",
                                self.network, "--ip", ip, "--label", "tango-ec2-test=1",
                                "--memory", "512m", "--pids-limit", "512",
                                "-e", "AUTHORIZED_KEY=" + self.public_key, self.vm_image],
                               capture_output=True, text=True)
            if r.returncode == 0:
                self.booted[iid] = name
                self.boots += 1
            else:
                self.sim_errors.append("boot %s at %s: %s" % (iid, ip, r.stderr.strip()[:200]))

    def console_text(self, iid, bad=False):
        """What cloud-init prints on the console of a booted VM: its host key
        fingerprints (ssh-keygen -lf), or one of no key when bad."""
        name = self.booted.get(iid)
        if not name:
            return None
        r = subprocess.run(["docker", "exec", name, "sh", "-c",
                            "ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            return None  # sshd not up yet: nothing printed
        line = r.stdout.strip()
        if bad:
            line = "256 SHA256:%s root@vm (ED25519)" % base64.b64encode(
                secrets.token_bytes(32)).decode().rstrip("=")
        return ("[   1.0] cloud-init[501]: Generating public/private ed25519 key pair.\n"
                "-----BEGIN SSH HOST KEY FINGERPRINTS-----\n%s\n"
                "-----END SSH HOST KEY FINGERPRINTS-----\n"
                "-----BEGIN SSH HOST KEY KEYS-----\n" % line)

    def vm_containers(self):
        out = subprocess.run(["docker", "ps", "-a", "--filter", "label=tango-ec2-test=1",
                              "--filter", "network=" + self.network, "--format", "{{.Names}}"],
                             capture_output=True, text=True).stdout.split()
        return out

    def __exit__(self, *exc):
        self.stop_sim.set()
        if getattr(self, "sim", None):
            self.sim.join(10)
        for name in self.vm_containers() + list(self.booted.values()):
            subprocess.run(["docker", "rm", "-f", name], capture_output=True)
        subprocess.run(["docker", "network", "rm", self.network], capture_output=True)
        for x in ("proxy", "imds"):
            if getattr(self, x, None):
                getattr(self, x).close()
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if exc and exc[0] is None and not os.environ.get("TANGO_KEEP_TMP"):
            shutil.rmtree(self.tmp, ignore_errors=True)
        return False
