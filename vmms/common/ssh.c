/*
 * ssh.c: one SSH connection to a server (ssh.h). Owns the TCP connect with
 * a deadline, the libssh2 handshake, host key verification (the target's
 * known_hosts file through libssh2_knownhost_*, or a list of expected
 * SHA256 fingerprints, or none), public key authentication, the rule for
 * waiting on a non-blocking session shared by several threads
 * (vssh_wait_io), channel slots (the server's MaxSessions), breaking and
 * closing a connection. Keys are never logged; host key fingerprints are.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "common/grading.h"
#include "common/ssh.h"
#include "log.h"

void vssh_wait_init(struct vssh_wait *w, long timeout_ms, atomic_int *abort)
{
    w->deadline_ms = clock_mono_ms() + (timeout_ms > 0 ? timeout_ms : 1);
    w->abort = abort;
    w->nap_ms = 1;
}

int vssh_wait_io(struct vssh_conn *c, struct vssh_wait *w, bool hold)
{
    if (atomic_load(&c->broken))
        return VSSH_W_BROKEN;
    if (w->abort && atomic_load(w->abort))
        return VSSH_W_ABORT;
    long left = w->deadline_ms - clock_mono_ms();
    if (left <= 0)
        return VSSH_W_TIMEOUT;
    int dirs = libssh2_session_block_directions(c->session);
    struct pollfd p = {.fd = c->sock};
    if (dirs & LIBSSH2_SESSION_BLOCK_INBOUND)
        p.events |= POLLIN;
    if (dirs & LIBSSH2_SESSION_BLOCK_OUTBOUND)
        p.events |= POLLOUT;
    if (p.events == 0) /* waiting on a packet another thread may read */
        p.events = POLLIN;
    /* A half-sent packet must be finished by the call that started it:
     * keep the lock so no other call slips its packet in between. */
    bool release = !hold && !(dirs & LIBSSH2_SESSION_BLOCK_OUTBOUND);
    int t = left < w->nap_ms ? (int)left : w->nap_ms;
    if (release)
        pthread_mutex_unlock(&c->lock);
    int n = poll(&p, 1, t);
    if (release)
        pthread_mutex_lock(&c->lock);
    /* Another thread may read our data off the socket while we sleep, so
     * the poll never sleeps long; it sleeps longer the longer nothing comes. */
    if (n == 0 && w->nap_ms < VSSH_NAP_MAX)
        w->nap_ms = w->nap_ms * 2 > VSSH_NAP_MAX ? VSSH_NAP_MAX : w->nap_ms * 2;
    return 0;
}

bool vssh_fatal(int rc)
{
    /* Not LIBSSH2_ERROR_SOCKET_NONE (-1): libssh2 also uses it for "no
     * such answer (yet)"; a session that really died fails the next call. */
    switch (rc) {
    case LIBSSH2_ERROR_BANNER_RECV:
    case LIBSSH2_ERROR_BANNER_SEND:
    case LIBSSH2_ERROR_INVALID_MAC:
    case LIBSSH2_ERROR_KEX_FAILURE:
    case LIBSSH2_ERROR_ALLOC:
    case LIBSSH2_ERROR_SOCKET_SEND:
    case LIBSSH2_ERROR_KEY_EXCHANGE_FAILURE:
    case LIBSSH2_ERROR_TIMEOUT:
    case LIBSSH2_ERROR_DECRYPT:
    case LIBSSH2_ERROR_SOCKET_DISCONNECT:
    case LIBSSH2_ERROR_PROTO:
    case LIBSSH2_ERROR_SOCKET_TIMEOUT:
    case LIBSSH2_ERROR_SOCKET_RECV:
    case LIBSSH2_ERROR_ENCRYPT:
    case LIBSSH2_ERROR_BAD_SOCKET:
        return true;
    default:
        return false;
    }
}

/* Called with c->lock held (or on a connection no other thread has). */
void vssh_error(struct vssh_conn *c, int rc, const char *what, char *err, size_t errlen)
{
    char *msg = NULL;
    int len = 0;
    if (c && c->session)
        libssh2_session_last_error(c->session, &msg, &len, 0);
    vmms_fail(err, errlen, VMMS_ERR, "%s: %.*s (libssh2 error %d)", what,
            msg && len > 0 ? len : 7, msg && len > 0 ? msg : "unknown", rc);
}

int vssh_slot_take(struct vssh_conn *c, struct vssh_wait *w)
{
    int rc = 0;
    pthread_mutex_lock(&c->lock);
    while (c->channels >= c->t.max_sessions) {
        if (atomic_load(&c->broken)) {
            rc = VSSH_W_BROKEN;
            break;
        }
        if (w->abort && atomic_load(w->abort)) {
            rc = VSSH_W_ABORT;
            break;
        }
        long now = clock_mono_ms();
        if (now >= w->deadline_ms) {
            rc = VSSH_W_TIMEOUT;
            break;
        }
        long until = w->deadline_ms < now + 100 ? w->deadline_ms : now + 100;
        struct timespec ts = clock_after_ms(CLOCK_MONOTONIC, until - now);
        pthread_cond_timedwait(&c->slot_cond, &c->lock, &ts);
    }
    if (rc == 0)
        c->channels++;
    pthread_mutex_unlock(&c->lock);
    return rc;
}

void vssh_slot_give(struct vssh_conn *c)
{
    pthread_mutex_lock(&c->lock);
    c->channels--;
    pthread_cond_signal(&c->slot_cond);
    pthread_mutex_unlock(&c->lock);
}

/* A non-blocking TCP connection to address:port by the deadline; -1 with
 * err set on failure. */
static int tcp_connect(const struct vssh_target *hc, long deadline, atomic_int *abort,
                       char *err, size_t errlen)
{
    char port[16];
    snprintf(port, sizeof port, "%d", hc->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int g = getaddrinfo(hc->address, port, &hints, &res);
    if (g != 0) {
        vmms_fail(err, errlen, VMMS_ERR, "cannot resolve %s: %s", hc->address, gai_strerror(g));
        return -1;
    }
    int fd = -1, last = ETIMEDOUT;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            last = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        if (errno == EINPROGRESS) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            int n = 0;
            for (long left; n == 0 && !atomic_load(abort) && (left = deadline - clock_mono_ms()) > 0;)
                n = poll(&p, 1, left < 100 ? (int)left : 100);
            int soerr = 0;
            socklen_t sl = sizeof soerr;
            if (n == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0)
                break;
            last = n == 1 ? (soerr ? soerr : ECONNREFUSED) : ETIMEDOUT;
        } else {
            last = errno;
        }
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        if (last == ETIMEDOUT)
            vmms_fail(err, errlen, VMMS_ERR, "cannot connect to %s:%d: no answer within the "
                    "connect timeout", hc->address, hc->port);
        else
            vmms_fail(err, errlen, VMMS_ERR, "cannot connect to %s:%d: %s", hc->address,
                    hc->port, strerror(last));
        return -1;
    }
    int one = 1, idle = 15, intvl = 5, cnt = 3;
    unsigned user_timeout = 30000; /* unacknowledged data for 30 s: the peer is gone */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof user_timeout);
    return fd;
}

static const struct {
    int hostkey_type;     /* LIBSSH2_HOSTKEY_TYPE_* */
    int known_type;       /* LIBSSH2_KNOWNHOST_KEY_* */
    const char *name;     /* for logs */
    const char *methods;  /* libssh2 host key methods for it */
} key_types[] = {
    {LIBSSH2_HOSTKEY_TYPE_ED25519, LIBSSH2_KNOWNHOST_KEY_ED25519, "ssh-ed25519", "ssh-ed25519"},
    {LIBSSH2_HOSTKEY_TYPE_ECDSA_256, LIBSSH2_KNOWNHOST_KEY_ECDSA_256, "ecdsa-sha2-nistp256",
     "ecdsa-sha2-nistp256"},
    {LIBSSH2_HOSTKEY_TYPE_ECDSA_384, LIBSSH2_KNOWNHOST_KEY_ECDSA_384, "ecdsa-sha2-nistp384",
     "ecdsa-sha2-nistp384"},
    {LIBSSH2_HOSTKEY_TYPE_ECDSA_521, LIBSSH2_KNOWNHOST_KEY_ECDSA_521, "ecdsa-sha2-nistp521",
     "ecdsa-sha2-nistp521"},
    {LIBSSH2_HOSTKEY_TYPE_RSA, LIBSSH2_KNOWNHOST_KEY_SSHRSA, "ssh-rsa",
     "rsa-sha2-512,rsa-sha2-256,ssh-rsa"},
    {LIBSSH2_HOSTKEY_TYPE_DSS, LIBSSH2_KNOWNHOST_KEY_SSHDSS, "ssh-dss", "ssh-dss"},
};
#define N_KEY_TYPES (sizeof key_types / sizeof key_types[0])

/* Asks the server for the key types known_hosts holds for this host (plain
 * entries), as OpenSSH does; hashed entries leave libssh2's default order. */
static void prefer_known_types(LIBSSH2_SESSION *s, LIBSSH2_KNOWNHOSTS *kh,
                               const struct vssh_target *hc)
{
    char bracketed[300];
    snprintf(bracketed, sizeof bracketed, "[%s]:%d", hc->address, hc->port);
    bool seen[N_KEY_TYPES] = {0};
    struct libssh2_knownhost *cur = NULL, *prev = NULL;
    while (libssh2_knownhost_get(kh, &cur, prev) == 0) {
        prev = cur;
        if (cur->name == NULL)
            continue;
        if (!(strcmp(cur->name, bracketed) == 0 ||
              (hc->port == 22 && strcmp(cur->name, hc->address) == 0)))
            continue;
        for (size_t i = 0; i < N_KEY_TYPES; i++)
            if ((cur->typemask & LIBSSH2_KNOWNHOST_KEY_MASK) == key_types[i].known_type)
                seen[i] = true;
    }
    char list[256] = "";
    for (size_t i = 0; i < N_KEY_TYPES; i++)
        if (seen[i]) {
            if (list[0])
                strcat(list, ",");
            strcat(list, key_types[i].methods);
        }
    if (list[0])
        libssh2_session_method_pref(s, LIBSSH2_METHOD_HOSTKEY, list);
}

static void b64(const unsigned char *in, size_t n, char *out, size_t outsz)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n && o + 5 < outsz; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0) |
                     (i + 2 < n ? in[i + 2] : 0);
        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
        if (i + 1 < n)
            out[o++] = tab[v >> 6 & 63];
        if (i + 2 < n)
            out[o++] = tab[v & 63];
    }
    out[o] = '\0';
}

/* Verifies the server's host key by the target's policy. VMMS_OK or
 * VMMS_ERR with *refused set. */
static int check_host_key(struct vssh_conn *c, LIBSSH2_KNOWNHOSTS *kh, bool *refused, char *err,
                          size_t errlen)
{
    const struct vssh_target *hc = &c->t;
    size_t len = 0;
    int type = 0;
    const char *key = libssh2_session_hostkey(c->session, &len, &type);
    const char *tname = "unknown";
    int kbit = LIBSSH2_KNOWNHOST_KEY_UNKNOWN;
    for (size_t i = 0; i < N_KEY_TYPES; i++)
        if (key_types[i].hostkey_type == type) {
            tname = key_types[i].name;
            kbit = key_types[i].known_type;
        }
    char fp[80] = "?";
    const unsigned char *h = (const unsigned char *)libssh2_hostkey_hash(
        c->session, LIBSSH2_HOSTKEY_HASH_SHA256);
    if (h) {
        char b[60];
        b64(h, 32, b, sizeof b);
        snprintf(fp, sizeof fp, "SHA256:%s", b);
    }
    snprintf(c->fingerprint, sizeof c->fingerprint, "%s", fp);
    if (key == NULL) {
        *refused = true;
        return vmms_fail(err, errlen, VMMS_ERR, "%s sent no host key", hc->label);
    }
    if (hc->policy == VSSH_KEY_ANY) {
        log_debug("host_key_unchecked", "host=%s type=%s fingerprint=%s", hc->label, tname, fp);
        return VMMS_OK;
    }
    if (hc->policy == VSSH_KEY_FINGERPRINTS) {
        /* Whole words of the list only: "SHA256:x" must not match "SHA256:xy". */
        size_t fl = strlen(fp);
        for (const char *p = hc->fingerprints ? hc->fingerprints : ""; h && *p;) {
            size_t n = strcspn(p, " \t\n");
            if (n == fl && strncmp(p, fp, fl) == 0) {
                log_debug("host_key_matched", "host=%s type=%s fingerprint=%s", hc->label, tname,
                          fp);
                return VMMS_OK;
            }
            p += n;
            p += strspn(p, " \t\n");
        }
        *refused = true;
        return vmms_fail(err, errlen, VMMS_ERR,
                         "host key mismatch: %s offered %s key %s, which is not one of the "
                         "fingerprints the instance printed on its console; refused", hc->label,
                         tname, fp);
    }
    int check = libssh2_knownhost_checkp(kh, hc->address, hc->port, key, len,
                                         LIBSSH2_KNOWNHOST_TYPE_PLAIN |
                                             LIBSSH2_KNOWNHOST_KEYENC_RAW | kbit, NULL);
    if (check == LIBSSH2_KNOWNHOST_CHECK_MATCH)
        return VMMS_OK;
    *refused = true;
    if (check == LIBSSH2_KNOWNHOST_CHECK_MISMATCH)
        return vmms_fail(err, errlen, VMMS_ERR,
                       "host key mismatch: %s offered %s key %s, which is not the one in %s "
                       "(host reinstalled, or someone in between); refused", hc->label,
                       tname, fp, hc->known_hosts);
    if (check == LIBSSH2_KNOWNHOST_CHECK_NOTFOUND)
        return vmms_fail(err, errlen, VMMS_ERR,
                       "host key unknown: %s offered %s key %s and %s has no %s key for it; "
                       "refused (add it with ssh-keyscan after checking it)", hc->label,
                       tname, fp, hc->known_hosts, tname);
    return vmms_fail(err, errlen, VMMS_ERR, "cannot check the host key of %s against %s; refused",
                   hc->label, hc->known_hosts);
}

/* Runs one session-level call to completion, keeping the lock while it
 * waits (no other thread may interleave such a call). */
#define SESSION_CALL(c, w, expr)                                                   \
    ({                                                                             \
        int rc_;                                                                   \
        for (;;) {                                                                 \
            rc_ = (expr);                                                          \
            if (rc_ != LIBSSH2_ERROR_EAGAIN)                                       \
                break;                                                             \
            int wr_ = vssh_wait_io((c), (w), true);                                  \
            if (wr_) {                                                             \
                rc_ = wr_ == VSSH_W_TIMEOUT ? LIBSSH2_ERROR_TIMEOUT                  \
                                          : LIBSSH2_ERROR_SOCKET_DISCONNECT;       \
                break;                                                             \
            }                                                                      \
        }                                                                          \
        rc_;                                                                       \
    })

static pthread_once_t ssh_once = PTHREAD_ONCE_INIT;
static int ssh_init_rc;

static void ssh_init(void)
{
    ssh_init_rc = libssh2_init(0);
}

int vssh_global_init(char *err, size_t errlen)
{
    pthread_once(&ssh_once, ssh_init);
    return ssh_init_rc == 0 ? VMMS_OK
                            : vmms_fail(err, errlen, VMMS_ERR, "libssh2_init failed (%d)",
                                        ssh_init_rc);
}

/* Takes the connected socket fd into c and makes c's lock, slot condition
 * and non-blocking libssh2 session. VMMS_OK, or a VMMS error in err with c
 * closed (fd with it). */
static int start_session(struct vssh_conn *c, int fd, char *err, size_t errlen)
{
    c->sock = fd;
    pthread_mutex_init(&c->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->slot_cond, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&c->broken, false);
    c->inited = true;
    c->session = libssh2_session_init_ex(NULL, NULL, NULL, c);
    if (c->session == NULL) {
        vssh_close(c);
        return vmms_fail(err, errlen, VMMS_ERR, "cannot make an SSH session (out of memory?)");
    }
    libssh2_session_set_blocking(c->session, 0);
    return VMMS_OK;
}

/* Reads hc's known_hosts into *kh (the caller frees it) and prefers the key
 * types it lists. Under the policy known_hosts a file that is missing or
 * unreadable is an error (*refused). c's lock held. VMMS_OK or a VMMS error. */
static int load_known_hosts(struct vssh_conn *c, const struct vssh_target *hc,
                            LIBSSH2_KNOWNHOSTS **kh, bool *refused, char *err, size_t errlen)
{
    bool strict = hc->policy == VSSH_KEY_KNOWN_HOSTS;
    if (hc->known_hosts && hc->known_hosts[0]) {
        *kh = libssh2_knownhost_init(c->session);
        int n = *kh ? libssh2_knownhost_readfile(*kh, hc->known_hosts,
                                                 LIBSSH2_KNOWNHOST_FILE_OPENSSH)
                    : -1;
        if (n < 0 && strict) {
            *refused = true;
            return vmms_fail(err, errlen, VMMS_ERR, "cannot read known_hosts %s (error %d)",
                             hc->known_hosts, n);
        } else if (n >= 0) {
            prefer_known_types(c->session, *kh, hc);
        }
    } else if (strict) {
        *refused = true;
        return vmms_fail(err, errlen, VMMS_ERR, "%s: no known_hosts file to check its key with",
                         hc->label);
    }
    return VMMS_OK;
}

/* The SSH handshake on fd within w. c's lock held. VMMS_OK or a VMMS error. */
static int handshake(struct vssh_conn *c, struct vssh_wait *w, const struct vssh_target *hc,
                     int fd, char *err, size_t errlen)
{
    int r = SESSION_CALL(c, w, libssh2_session_handshake(c->session, fd));
    if (r == 0)
        return VMMS_OK;
    if (r == LIBSSH2_ERROR_TIMEOUT)
        return vmms_fail(err, errlen, VMMS_ERR, "SSH handshake with %s: no answer within "
                         "the connect timeout", hc->label);
    vssh_error(c, r, "SSH handshake failed", err, errlen);
    return VMMS_ERR;
}

/* Public-key authentication as hc->user within w. c's lock held. VMMS_OK or
 * a VMMS error in err. */
static int authenticate(struct vssh_conn *c, struct vssh_wait *w, const struct vssh_target *hc,
                        char *err, size_t errlen)
{
    int r = SESSION_CALL(c, w, libssh2_userauth_publickey_fromfile_ex(
                                   c->session, hc->user, (unsigned)strlen(hc->user),
                                   hc->public_key && hc->public_key[0] ? hc->public_key : NULL,
                                   hc->private_key, NULL));
    if (r == LIBSSH2_ERROR_TIMEOUT)
        return vmms_fail(err, errlen, VMMS_ERR, "authentication on %s: no answer within the "
                         "connect timeout", hc->label);
    if (r != 0) {
        char e[200];
        vssh_error(c, r, "", e, sizeof e);
        return vmms_fail(err, errlen, VMMS_ERR,
                         "authentication as %s on %s failed%s (is the public key in that "
                         "user's authorized_keys?)", hc->user, hc->label, e);
    }
    return VMMS_OK;
}

/* Under c's lock: known_hosts, handshake on fd, host key check and
 * authentication, in that order, within w. VMMS_OK or a VMMS error in err
 * (*refused when the host key policy refused the host). */
static int secure_session(struct vssh_conn *c, struct vssh_wait *w,
                          const struct vssh_target *hc, int fd, bool *refused, char *err,
                          size_t errlen)
{
    LIBSSH2_KNOWNHOSTS *kh = NULL;
    pthread_mutex_lock(&c->lock);
    int rc = load_known_hosts(c, hc, &kh, refused, err, errlen);
    if (rc == VMMS_OK)
        rc = handshake(c, w, hc, fd, err, errlen);
    if (rc == VMMS_OK)
        rc = check_host_key(c, kh, refused, err, errlen);
    if (rc == VMMS_OK)
        rc = authenticate(c, w, hc, err, errlen);
    if (kh)
        libssh2_knownhost_free(kh);
    pthread_mutex_unlock(&c->lock);
    return rc;
}

int vssh_open(struct vssh_conn *c, const struct vssh_target *t, atomic_int *stop, bool *refused,
              char *err, size_t errlen)
{
    const struct vssh_target *hc = t;
    memset(c, 0, sizeof *c);
    c->sock = -1;
    c->t = *t;
    *refused = false;
    if (vssh_global_init(err, errlen) != VMMS_OK)
        return VMMS_ERR;
    long t0 = clock_mono_ms();
    struct vssh_wait w;
    vssh_wait_init(&w, t->connect_timeout_ms, stop);
    static atomic_int never;
    int fd = tcp_connect(hc, w.deadline_ms, stop ? stop : &never, err, errlen);
    if (fd < 0)
        return VMMS_ERR;
    int rc = start_session(c, fd, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    rc = secure_session(c, &w, hc, fd, refused, err, errlen);
    if (rc != VMMS_OK) {
        atomic_store(&c->broken, true);
        vssh_close(c);
        return rc;
    }
    log_debug("ssh_connected", "host=%s user=%s ms=%ld", hc->label, hc->user,
              (long)(clock_mono_ms() - t0));
    return VMMS_OK;
}

void vssh_break(struct vssh_conn *c, const char *reason)
{
    atomic_store(&c->broken, true);
    /* Wakes every thread polling this socket; the fd stays ours until close. */
    shutdown(c->sock, SHUT_RDWR);
    pthread_cond_broadcast(&c->slot_cond);
    if (c->on_break)
        c->on_break(c, reason);
}

void vssh_close(struct vssh_conn *c)
{
    if (c == NULL || !c->inited) {
        if (c && c->sock >= 0)
            close(c->sock);
        if (c)
            c->sock = -1;
        return;
    }
    if (c->session) {
        pthread_mutex_lock(&c->lock);
        if (!atomic_load(&c->broken))
            libssh2_session_disconnect(c->session, "tango closing");
        /* From here every send fails at once: nothing below can block. */
        shutdown(c->sock, SHUT_RDWR);
        for (int i = 0; i < 50 && libssh2_session_free(c->session) == LIBSSH2_ERROR_EAGAIN; i++)
            clock_sleep_ms(10);
        c->session = NULL;
        pthread_mutex_unlock(&c->lock);
    }
    if (c->sock >= 0)
        close(c->sock);
    c->sock = -1;
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->slot_cond);
    c->inited = false;
}
