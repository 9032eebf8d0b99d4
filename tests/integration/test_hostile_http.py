"""Hostile HTTP against a real producer (issue 10, items 2 and 9): request
smuggling with two Content-Length headers (40 then 2) is refused and nothing
in its body is parsed as a second request; a slowloris head (one header line
every 3 s) is cut at http_head_timeout_s; 120 slow sockets from one address
do not stop a client from another address being served
(max_connections_per_ip)."""
import select
import socket
import time

import tlib

K = "k-hostile-http-Jx52"
HEAD_TIMEOUT_S = 5


def status_lines(resp):
    return [l for l in resp.split(b"\r\n") if l.startswith(b"HTTP/1.1 ")]


def wait_closed(s, timeout):
    """Reads until the peer closes or timeout; returns (closed, data)."""
    data = b""
    end = time.time() + timeout
    while time.time() < end:
        r, _, _ = select.select([s], [], [], max(0.0, end - time.time()))
        if not r:
            break
        try:
            d = s.recv(65536)
        except OSError:
            return True, data
        if not d:
            return True, data
        data += d
    return False, data


with tlib.Service(config={"http_head_timeout_s": HEAD_TIMEOUT_S, "http_timeout_s": 60,
                          "max_connections": 100, "max_connections_per_ip": 20}, key=K) as svc:
    port = svc.port

    # --- two Content-Length headers: 40 then 2
    smuggled = b"GET /info/%s/ HTTP/1.1\r\nHost: t\r\n\r\n" % K.encode()
    body = smuggled.ljust(40, b"x")
    resp = tlib.raw(port, b"POST /addJob/%s/lab/ HTTP/1.1\r\nHost: t\r\nContent-Length: 40\r\n"
                          b"Content-Length: 2\r\n\r\n" % K.encode() + body)
    lines = status_lines(resp)
    tlib.check("two Content-Length (40 then 2): one answer, 400",
               len(lines) == 1 and lines[0].startswith(b"HTTP/1.1 400 "), resp)
    tlib.check("two Content-Length: says why", b"More than one Content-Length" in resp, resp)
    tlib.check("two Content-Length: nothing in the body was read as a request",
               b"Found info" not in resp and b"Job added" not in resp, resp)
    resp = tlib.raw(port, b"POST /addJob/%s/lab/ HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n"
                          b"Content-Length: 2\r\n\r\nab" % K.encode() + smuggled)
    tlib.check("two equal Content-Length: refused, no second request",
               len(status_lines(resp)) == 1 and b" 400 " in resp and b"Found info" not in resp, resp)
    resp = tlib.raw(port, b"POST /addJob/%s/lab/ HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                          b"Content-Length: 40\r\n\r\n" % K.encode() + body)
    tlib.check("Transfer-Encoding with Content-Length: refused, no second request",
               len(status_lines(resp)) == 1 and b" 400 " in resp and b"Found info" not in resp, resp)
    resp = tlib.raw(port, b"GET /info/%s/ HTTP/1.1\r\n\r\n" % K.encode())
    tlib.check("HTTP/1.1 without Host: 400", b"HTTP/1.1 400 " in resp and b"Host" in resp, resp)
    svc.get("/open/%s/lab/" % K)
    trailers = b"".join(b"X-T%d: %s\r\n" % (i, b"v" * 50) for i in range(20000))
    resp = tlib.raw(port, b"POST /upload/%s/lab/ HTTP/1.1\r\nHost: t\r\nFilename: t.txt\r\n"
                          b"Transfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n" % K.encode() +
                    trailers + b"\r\n", paced=True)
    tlib.check("20,000 trailer lines: refused (431), the upload not kept",
               b"HTTP/1.1 431 " in resp and b"Uploaded file" not in resp and
               "t.txt" not in svc.get("/open/%s/lab/" % K).json().get("files", {}), resp[:300])
    r = svc.get("/info/%s/" % K)
    tlib.check("after the smuggling tries the producer still serves", r.status == 200, r.status)

    # --- slowloris: one header line every 3 s is cut at the head deadline
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    t0 = time.time()
    s.sendall(b"GET /info/%s/ HTTP/1.1\r\nHost: t\r\n" % K.encode())
    closed, data = False, b""
    for i in range(10):
        closed, got = wait_closed(s, 3.0)
        data += got
        if closed:
            break
        try:
            s.sendall(b"X-Drip-%d: a\r\n" % i)
        except OSError:
            closed = True
            break
    took = time.time() - t0
    s.close()
    tlib.check("slowloris (a header line every 3 s): cut at http_head_timeout_s",
               closed and HEAD_TIMEOUT_S - 0.5 <= took < HEAD_TIMEOUT_S + 3, (closed, took))
    tlib.check("slowloris: answered 408 before the close", b"HTTP/1.1 408 " in data, data)
    print("# slowloris cut after %.2f s (http_head_timeout_s=%d)" % (took, HEAD_TIMEOUT_S))
    tlib.check("slowloris: the cut is logged",
               "http_head_timeout" in svc.producers[0].logtext())

    # --- 120 slow sockets from one address; another address is still served
    slow, refused = [], 0
    for i in range(120):
        c = socket.create_connection(("127.0.0.1", port), timeout=5)
        try:
            c.sendall(b"GET /info/%s/ HTTP/1.1\r\nHost: t\r\nX-Slow: " % K.encode())
        except OSError:
            pass
        slow.append(c)
    for c in slow:  # the ones over the cap are closed by the producer at once
        c.setblocking(False)
    end = time.time() + 3
    while time.time() < end:
        refused = 0
        for c in slow:
            try:
                if c.recv(100) == b"":
                    refused += 1
            except BlockingIOError:
                pass
            except OSError:
                refused += 1
        if refused >= 100:
            break
        time.sleep(0.05)
    tlib.check("120 slow sockets from one address: all but max_connections_per_ip (20) refused",
               refused == 100, refused)
    t0 = time.time()
    other = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=("127.0.0.2", 0))
    other.sendall(b"GET /info/%s/ HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" % K.encode())
    closed, data = wait_closed(other, 5)
    served_in = time.time() - t0
    other.close()
    tlib.check("120 slow sockets from one address: a client from another address is served at once",
               b"Found info successfully" in data and time.time() - t0 < 1.0,
               (time.time() - t0, data[:200]))
    print("# 120 slow sockets: %d refused at once; the other address served in %.1f ms"
          % (refused, 1000 * served_in))
    tlib.check("per-address refusals are logged",
               "reason=max_connections_per_ip" in svc.producers[0].logtext())
    for c in slow:
        c.close()

tlib.done()
