"""tregistry: the registry fixtures of test_registry.py and the pull
benchmark: a test CA and certificates (openssl), Debian's CNCF distribution
registry (`docker-registry`) on loopback with TLS and htpasswd auth or
token auth, a token server (bearer flow, RS256 tokens signed with the
openssl CLI), and a TLS proxy in front of a registry that can pass
through, alter one blob, stall a blob mid-way, or answer a manifest with
an index that has no linux/amd64 image. Every piece runs in the test's own
directory on ports of its own; nothing touches the machine's port 5000."""
import base64
import hashlib
import http.client
import http.server
import json
import os
import ssl
import subprocess
import threading
import time
import urllib.parse

import tlib

USER = "course15213"
PASSWORD = "pw-Registry-7731"
SERVICE = "tango-test-registry"
ISSUER = "tango-test-issuer"


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True,
                   timeout=60)


def make_ca(d, name):
    """A CA d/<name>-ca.{key,crt} and a server certificate d/<name>.{key,crt}
    for 127.0.0.1 and 127.0.0.2 (another host on loopback) signed by it."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            "/CN=%s test CA" % name, "-keyout", name + "-ca.key", "-out", name + "-ca.crt", cwd=d)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout",
            name + ".key", "-out", name + ".csr", cwd=d)
    with open(os.path.join(d, name + ".ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,IP:127.0.0.2\nbasicConstraints=CA:FALSE\n"
                "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", name + ".csr", "-CA", name + "-ca.crt", "-CAkey",
            name + "-ca.key", "-CAcreateserial", "-days", "2", "-extfile", name + ".ext",
            "-out", name + ".crt", cwd=d)
    return os.path.join(d, name + "-ca.crt")


def server_context(d, name):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(d, name + ".crt"), os.path.join(d, name + ".key"))
    return ctx


def creds_file(d, name, user, password, mode=0o600):
    path = os.path.join(d, name)
    with open(path, "w") as f:
        f.write("%s:%s\n" % (user, password))
    os.chmod(path, mode)
    return path


class Registry:
    """docker-registry serving storage on 127.0.0.1:port with TLS and
    htpasswd auth (token=None) or token auth (token: the token server)."""

    def __init__(self, d, storage, name, token=None):
        self.d, self.port = d, tlib.free_port()
        self.host = "127.0.0.1:%d" % self.port
        if token:
            auth = ("  token:\n    realm: %s\n    service: %s\n    issuer: %s\n"
                    "    rootcertbundle: %s\n" % (token.realm, SERVICE, ISSUER, token.cert))
        else:
            hp = os.path.join(d, "htpasswd")
            with open(hp, "wb") as f:
                f.write(subprocess.run(["htpasswd", "-Bbn", USER, PASSWORD], check=True,
                                       capture_output=True).stdout)
            auth = "  htpasswd:\n    realm: tango-test\n    path: %s\n" % hp
        self.cfg = os.path.join(d, name + ".yml")
        with open(self.cfg, "w") as f:
            f.write("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
                    "    rootdirectory: %s\nhttp:\n  addr: %s\n  secret: tango-test\n"
                    "  tls:\n    certificate: %s\n    key: %s\nauth:\n%s"
                    % (storage, self.host, os.path.join(d, "srv.crt"),
                       os.path.join(d, "srv.key"), auth))
        self.log = open(os.path.join(d, name + ".log"), "wb")
        self.proc = subprocess.Popen(["docker-registry", "serve", self.cfg], stdout=self.log,
                                     stderr=self.log)
        tlib.wait_port(self.port, 20, self.proc)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)
        self.log.close()


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


class TokenServer:
    """GET /token?service=&scope= with Basic USER:PASSWORD -> {"token": JWT}
    for the registry's token auth; 401 otherwise. Counts what it issued."""

    def __init__(self, d):
        self.d = d
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                "/CN=tango token signer", "-keyout", "token.key", "-out", "token.crt", cwd=d)
        self.cert = os.path.join(d, "token.crt")
        der = subprocess.run(["openssl", "x509", "-in", self.cert, "-outform", "DER"],
                             capture_output=True, check=True).stdout
        self.x5c = base64.b64encode(der).decode()
        self.issued = 0
        self.refused = 0
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                outer.answer(self)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.socket = server_context(d, "srv").wrap_socket(self.server.socket,
                                                                   server_side=True)
        self.realm = "https://127.0.0.1:%d/token" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def sign(self, claims):
        head = b64url(json.dumps({"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}).encode())
        body = b64url(json.dumps(claims).encode())
        msg = ("%s.%s" % (head, body)).encode()
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign",
                              os.path.join(self.d, "token.key")], input=msg,
                             capture_output=True, check=True).stdout
        return "%s.%s" % (msg.decode(), b64url(sig))

    def answer(self, h):
        want = "Basic " + base64.b64encode(("%s:%s" % (USER, PASSWORD)).encode()).decode()
        if h.headers.get("Authorization") != want:
            self.refused += 1
            h.send_response(401)
            h.end_headers()
            return
        q = urllib.parse.parse_qs(urllib.parse.urlparse(h.path).query)
        access = []
        for scope in q.get("scope", []):
            parts = scope.split(":")
            if len(parts) == 3 and parts[0] == "repository":
                access.append({"type": "repository", "name": parts[1],
                               "actions": parts[2].split(",")})
        now = int(time.time())
        tok = self.sign({"iss": ISSUER, "sub": USER, "aud": SERVICE, "exp": now + 300,
                         "nbf": now - 10, "iat": now, "jti": "t%d" % self.issued,
                         "access": access})
        self.issued += 1
        body = json.dumps({"token": tok}).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class RealmSpy:
    """A token server on 127.0.0.2 (another host than the registries'
    127.0.0.1): answers any GET with a token and records the Authorization
    header each request carried (None: none)."""

    def __init__(self, d):
        self.auth = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                outer.auth.append(self.headers.get("Authorization"))
                body = b'{"token": "spy-token"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.2", 0), H)
        self.server.socket = server_context(d, "srv").wrap_socket(self.server.socket,
                                                                   server_side=True)
        self.realm = "https://127.0.0.2:%d/token" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class Proxy:
    """TLS on 127.0.0.1:port (certificate cert: "srv" or "other") in front
    of registry upstream. mode: "pass"; "tamper" (the blob digest target:
    one byte changed); "oversize" (blob target: 4 MiB more than it is);
    "stall" (blob target: half sent, then nothing until stop); "index"
    (manifests/<target>: an OCI index of linux/arm64 and windows/amd64
    only); "realm" (every request: 401 with a Bearer realm of URL target)."""

    def __init__(self, d, upstream, ca, mode="pass", target=None, cert="srv"):
        self.upstream, self.mode, self.target = upstream, mode, target
        self.client_ctx = ssl.create_default_context(cafile=ca)
        self.release = threading.Event()
        self.hits = 0
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                outer.handle(self, "GET")

            def do_HEAD(self):
                outer.handle(self, "HEAD")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.server.socket = server_context(d, cert).wrap_socket(self.server.socket,
                                                                  server_side=True)
        self.port = self.server.server_address[1]
        self.host = "127.0.0.1:%d" % self.port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @staticmethod
    def fake_index_body():
        return json.dumps({"schemaVersion": 2, "mediaType":
                           "application/vnd.oci.image.index.v1+json", "manifests": [
                               {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                "digest": "sha256:" + "1" * 64, "size": 100,
                                "platform": {"os": "linux", "architecture": "arm64"}},
                               {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                "digest": "sha256:" + "2" * 64, "size": 100,
                                "platform": {"os": "windows", "architecture": "amd64"}}]}).encode()

    def fake_index(self, h):
        body = self.fake_index_body()
        h.send_response(200)
        h.send_header("Content-Type", "application/vnd.oci.image.index.v1+json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def handle(self, h, method):
        self.hits += 1
        fake = "sha256:" + hashlib.sha256(self.fake_index_body()).hexdigest()
        if self.mode == "realm":
            h.send_response(401)
            h.send_header("WWW-Authenticate", 'Bearer realm="%s",service="spy"' % self.target)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        if self.mode == "index" and (h.path.endswith("/manifests/" + self.target) or
                                     h.path.endswith("/manifests/" + fake)):
            return self.fake_index(h)
        up = http.client.HTTPSConnection("127.0.0.1", int(self.upstream.split(":")[1]),
                                         context=self.client_ctx, timeout=60)
        headers = {k: v for k, v in h.headers.items() if k.lower() in
                   ("authorization", "accept", "range")}
        up.request(method, h.path, headers=headers)
        r = up.getresponse()
        data = r.read()
        up.close()
        ours = self.target and h.path.endswith("/blobs/" + str(self.target)) and r.status == 200
        if ours and self.mode == "tamper" and data:
            data = bytes([data[0] ^ 0x01]) + data[1:]
        if ours and self.mode == "oversize":
            data = data + b"\0" * (4 << 20)
        h.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in ("content-length", "connection", "transfer-encoding"):
                h.send_header(k, v)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if method == "HEAD":
            return
        if ours and self.mode == "stall":
            h.wfile.write(data[:len(data) // 2])
            h.wfile.flush()
            self.release.wait(120)  # the fault itself: a registry that stops sending
            h.close_connection = True  # then the rest never comes: the client sees a cut
            return
        h.wfile.write(data)

    def stop(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def skopeo_push(src, dest_host, ref, certdir, extra=()):
    """skopeo copy src (e.g. docker-daemon:IMAGE) to dest_host/ref."""
    r = subprocess.run(["skopeo", "copy", "--quiet", "--dest-creds", "%s:%s" % (USER, PASSWORD),
                        "--dest-cert-dir", certdir] + list(extra) +
                       [src, "docker://%s/%s" % (dest_host, ref)],
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError("skopeo copy %s: %s" % (src, r.stderr[-500:]))


def manifest(host, ref_path, ref, certdir):
    """The raw manifest and its digest through skopeo inspect --raw."""
    r = subprocess.run(["skopeo", "inspect", "--raw", "--creds", "%s:%s" % (USER, PASSWORD),
                        "--cert-dir", certdir, "docker://%s/%s:%s" % (host, ref_path, ref)],
                       capture_output=True, timeout=60, check=True)
    return json.loads(r.stdout), "sha256:" + hashlib.sha256(r.stdout).hexdigest()


class RegistryAPI:
    """Raw pushes to a registry with Basic auth (the htpasswd one): what
    skopeo cannot be made to do, e.g. a zstd layer on top of an existing
    gzip base (skopeo reuses the gzip blob it knows)."""

    def __init__(self, host, ca):
        self.host = host
        self.ctx = ssl.create_default_context(cafile=ca)
        self.auth = "Basic " + base64.b64encode(("%s:%s" % (USER, PASSWORD)).encode()).decode()

    def call(self, method, path, body=None, headers=None):
        c = http.client.HTTPSConnection(self.host, context=self.ctx, timeout=60)
        h = {"Authorization": self.auth}
        h.update(headers or {})
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        c.close()
        if r.status >= 300:
            raise RuntimeError("%s %s: HTTP %d %s" % (method, path, r.status, data[:200]))
        return r, data

    def blob(self, repo, data=None, mount=None):
        """Uploads data (or mounts digest mount from repo "course/img")."""
        if mount:
            self.call("POST", "/v2/%s/blobs/uploads/?mount=%s&from=course/img" % (repo, mount))
            return mount
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        r, _ = self.call("POST", "/v2/%s/blobs/uploads/" % repo)
        loc = urllib.parse.urlparse(r.getheader("Location"))
        q = loc.query + ("&" if loc.query else "") + "digest=" + digest
        self.call("PUT", "%s?%s" % (loc.path, q), data,
                  {"Content-Type": "application/octet-stream"})
        return digest

    def get(self, repo, kind, ref, accept=None):
        return self.call("GET", "/v2/%s/%s/%s" % (repo, kind, ref), None,
                         {"Accept": accept} if accept else None)[1]

    def manifest(self, repo, tag, man):
        self.call("PUT", "/v2/%s/manifests/%s" % (repo, tag), json.dumps(man).encode(),
                  {"Content-Type": man["mediaType"]})


def push_zstd_on_base(api, d, repo, tag, marker):
    """repo:tag = course/img:v1's layers plus one zstd layer holding
    /zstd-marker (marker); returns that layer's digest."""
    oci_accept = "application/vnd.oci.image.manifest.v1+json, " \
                 "application/vnd.docker.distribution.manifest.v2+json"
    base = json.loads(api.get("course/img", "manifests", "v1", oci_accept))
    cfg = json.loads(api.get("course/img", "blobs", base["config"]["digest"]))
    src = os.path.join(d, "zlayer")
    os.makedirs(src, exist_ok=True)
    with open(os.path.join(src, "zstd-marker"), "w") as f:
        f.write(marker + "\n")
    os.chmod(os.path.join(src, "zstd-marker"), 0o644)
    tar = subprocess.run(["tar", "-C", src, "--owner=0", "--group=0", "-cf", "-",
                          "zstd-marker"], capture_output=True, check=True).stdout
    ztar = subprocess.run(["zstd", "-q", "-c"], input=tar, capture_output=True,
                          check=True).stdout
    cfg["rootfs"]["diff_ids"].append("sha256:" + hashlib.sha256(tar).hexdigest())
    cfg_bytes = json.dumps(cfg).encode()
    layers = [dict(l, mediaType=l["mediaType"].replace(
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "application/vnd.oci.image.layer.v1.tar+gzip")) for l in base["layers"]]
    for l in layers:
        api.blob(repo, mount=l["digest"])
    zdigest = api.blob(repo, ztar)
    layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd",
                   "digest": zdigest, "size": len(ztar)})
    api.manifest(repo, tag, {
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": api.blob(repo, cfg_bytes), "size": len(cfg_bytes)},
        "layers": layers})
    return zdigest
