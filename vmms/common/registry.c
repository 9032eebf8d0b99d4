/*
 * registry.c: the registry client's requests (see registry.h). Every
 * request: https:// only (redirects too: a blob may be served from
 * elsewhere; curl sends our Authorization only to the registry's own
 * host), the registry's CA file, 10 s to connect, a stall deadline
 * (CURLOPT_LOW_SPEED_*: under 1 byte/s for stall_s fails it) and an overall
 * one (transfer_deadline: a trickle cannot hold a pull forever). A 401 is
 * answered once (registry_auth.c), only when the answer came from the
 * registry's own host (not a host a redirect led to), and the request made
 * again. A blob is cut at the size its manifest declares. Bytes are
 * hashed as they arrive; a blob that is not its digest is refused and
 * removed, so no half or wrong file is left.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "grading.h"
#include "registries.h"
#include "registry.h"
#include "vmms.h"

#define DEFAULT_STALL_S 30L
#define MIN_RATE_BPS (256L * 1024) /* the slowest average a deadline allows */
#define MANIFEST_ACCEPT                                                                    \
    "Accept: application/vnd.oci.image.index.v1+json, "                                    \
    "application/vnd.oci.image.manifest.v1+json, "                                         \
    "application/vnd.docker.distribution.manifest.list.v2+json, "                          \
    "application/vnd.docker.distribution.manifest.v2+json"

int reg_client_init(struct reg_client *c, const json_t *regs, const char *host, char *err,
                    size_t errlen)
{
    memset(c, 0, sizeof *c);
    const json_t *e = registries_find(regs, host);
    if (e == NULL)
        return vmms_fail(err, errlen, VMMS_ERR, "registry \"%.100s\" is not in config key "
                         "\"registries\"", host ? host : "");
    snprintf(c->host, sizeof c->host, "%s", host);
    snprintf(c->ca_file, sizeof c->ca_file, "%s",
             json_string_value(json_object_get(e, "ca_file")) ?: "");
    snprintf(c->creds_file, sizeof c->creds_file, "%s",
             json_string_value(json_object_get(e, "credentials")) ?: "");
    json_int_t s = json_integer_value(json_object_get(e, "stall_timeout_s"));
    c->stall_s = s > 0 ? (long)s : DEFAULT_STALL_S;
    return VMMS_OK;
}

void reg_client_clear(struct reg_client *c)
{
    OPENSSL_cleanse(c->auth, sizeof c->auth);
}

/* Where one request's answer goes: memory (up to max) or a file, hashed. */
struct reg_sink {
    char *buf;
    size_t len;
    long max;
    int fd;              /* >= 0: write here */
    EVP_MD_CTX *md;
    bool over, write_failed;
    bool foreign;        /* the last answer came from another host (a redirect) */
    long status;         /* of the last answer (redirects end in one) */
    char ctype[128];
    char challenge[1536];
};

static size_t sink_write(char *p, size_t sz, size_t n, void *arg)
{
    struct reg_sink *s = arg;
    size_t len = sz * n;
    if (s->status != 200)
        return len; /* an error page: not ours to keep */
    if ((long)(s->len + len) > s->max) {
        s->over = true;
        return 0;
    }
    if (s->fd >= 0) {
        for (size_t off = 0; off < len;) {
            ssize_t w = write(s->fd, p + off, len - off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                s->write_failed = true;
                return 0;
            }
            off += (size_t)w;
        }
    } else {
        char *nb = realloc(s->buf, s->len + len + 1);
        if (nb == NULL)
            return 0;
        s->buf = nb;
        memcpy(s->buf + s->len, p, len);
        s->buf[s->len + len] = '\0';
    }
    EVP_DigestUpdate(s->md, p, len);
    s->len += len;
    return len;
}

/* Copies header "Name: value" line (not NUL ended) into out if it is name. */
static void header_value(const char *line, size_t n, const char *name, char *out, size_t outsz)
{
    size_t k = strlen(name);
    if (n <= k + 1 || strncasecmp(line, name, k) != 0 || line[k] != ':')
        return;
    const char *v = line + k + 1;
    size_t vn = n - k - 1;
    while (vn && (*v == ' ' || *v == '\t'))
        v++, vn--;
    while (vn && (v[vn - 1] == '\r' || v[vn - 1] == '\n' || v[vn - 1] == ' '))
        vn--;
    snprintf(out, outsz, "%.*s", (int)(vn < outsz ? vn : outsz - 1), v);
}

static size_t sink_header(char *p, size_t sz, size_t n, void *arg)
{
    struct reg_sink *s = arg;
    size_t len = sz * n;
    if (len > 5 && strncmp(p, "HTTP/", 5) == 0) {
        /* a new answer (after a redirect or a 100): its own headers */
        s->ctype[0] = s->challenge[0] = '\0';
        s->status = strtol(memchr(p, ' ', len) ? (char *)memchr(p, ' ', len) + 1 : "0",
                           NULL, 10);
    }
    header_value(p, len, "Content-Type", s->ctype, sizeof s->ctype);
    header_value(p, len, "WWW-Authenticate", s->challenge, sizeof s->challenge);
    return len;
}

/* The overall deadline (s) of a transfer of at most max bytes: 4 stall
 * periods plus max at MIN_RATE_BPS. */
static long transfer_deadline(const struct reg_client *c, long max)
{
    return c->stall_s * 4 + max / MIN_RATE_BPS + 1;
}

/* Whether the last answer of h came from c's own host and port. */
static bool from_registry(CURL *h, const struct reg_client *c)
{
    char *u = NULL, want[300];
    curl_easy_getinfo(h, CURLINFO_EFFECTIVE_URL, &u);
    int n = snprintf(want, sizeof want, "https://%s/", c->host);
    return u != NULL && n > 0 && strncasecmp(u, want, (size_t)n) == 0;
}

/* One GET of url into s with c's current Authorization. */
static CURLcode perform(struct reg_client *c, const char *url, const char *accept,
                        struct reg_sink *s)
{
    CURL *h = curl_easy_init();
    if (h == NULL)
        return CURLE_OUT_OF_MEMORY;
    struct curl_slist *hl = accept ? curl_slist_append(NULL, accept) : NULL;
    char auth[REG_AUTH_MAX + 32];
    if (c->auth[0]) {
        snprintf(auth, sizeof auth, "Authorization: %s", c->auth);
        hl = curl_slist_append(hl, auth);
        OPENSSL_cleanse(auth, sizeof auth);
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, sink_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, s);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, c->stall_s);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, transfer_deadline(c, s->max));
    if (c->ca_file[0])
        curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
    CURLcode r = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &s->status);
    s->foreign = !from_registry(h, c);
    curl_slist_free_all(hl); /* (the Authorization copy in it: freed, not wiped) */
    curl_easy_cleanup(h);
    return r;
}

/* Restarts sink s for another attempt. */
static void sink_reset(struct reg_sink *s)
{
    free(s->buf);
    s->buf = NULL;
    s->len = 0;
    s->over = s->write_failed = false;
    EVP_DigestInit_ex(s->md, EVP_sha256(), NULL);
    if (s->fd >= 0 && (ftruncate(s->fd, 0) != 0 || lseek(s->fd, 0, SEEK_SET) != 0))
        s->write_failed = true;
}

/* The error of a failed transfer, naming what and the registry. */
static int transfer_error(struct reg_client *c, CURLcode r, const struct reg_sink *s,
                          const char *what, char *err, size_t errlen)
{
    if (s->over)
        return vmms_fail(err, errlen, VMMS_ERR, "registry %s: %s is larger than %ld bytes: "
                         "refused", c->host, what, s->max);
    if (s->write_failed)
        return vmms_fail(err, errlen, VMMS_ERR, "registry %s: %s: cannot write it: %s",
                         c->host, what, strerror(errno));
    if (r == CURLE_OPERATION_TIMEDOUT)
        return vmms_fail(err, errlen, VMMS_ERR, "registry %s: %s: no progress for %ld s "
                         "(stall_timeout_s) or not done in %ld s: gave up", c->host, what,
                         c->stall_s, transfer_deadline(c, s->max));
    return vmms_fail(err, errlen, VMMS_ERR, "registry %s: %s: %s", c->host, what,
                     curl_easy_strerror(r));
}

/* GET /v2/<repo>/<kind>/<ref> into s: a 401 answered once. */
static int request(struct reg_client *c, const char *repo, const char *kind, const char *ref,
                   const char *accept, struct reg_sink *s, const char *what, char *err,
                   size_t errlen)
{
    char url[1024], scope[512];
    snprintf(url, sizeof url, "https://%s/v2/%s/%s/%s", c->host, repo, kind, ref);
    snprintf(scope, sizeof scope, "repository:%s:pull", repo);
    for (int attempt = 0;; attempt++) {
        sink_reset(s);
        CURLcode r = perform(c, url, accept, s);
        if (r != CURLE_OK)
            return transfer_error(c, r, s, what, err, errlen);
        if (s->status != 401)
            break;
        struct reg_challenge ch;
        if (s->foreign)
            return vmms_fail(err, errlen, VMMS_ERR, "registry %s: %s: HTTP 401 from a host "
                             "a redirect led to: no credentials sent there", c->host, what);
        if (attempt > 0)
            return vmms_fail(err, errlen, VMMS_ERR, "registry %s refused the credentials of "
                             "%s (HTTP 401)", c->host, c->creds_file[0] ? c->creds_file
                             : "(none configured)");
        if (reg_challenge_parse(s->challenge, &ch) != 0)
            return vmms_fail(err, errlen, VMMS_ERR, "registry %s: HTTP 401 without a Basic "
                             "or Bearer challenge", c->host);
        if (reg_authorize(c, &ch, scope, err, errlen) != VMMS_OK)
            return VMMS_ERR;
    }
    if (s->status == 404)
        return vmms_fail(err, errlen, VMMS_NOT_FOUND, "registry %s: %s: not found", c->host,
                         what);
    if (s->status != 200)
        return vmms_fail(err, errlen, VMMS_ERR, "registry %s: %s: HTTP %ld", c->host, what,
                         s->status);
    return VMMS_OK;
}

/* "sha256:<hex of s's bytes>" into out (72 bytes). */
static void sink_digest(struct reg_sink *s, char out[72])
{
    unsigned char d[32];
    unsigned dl = 0;
    EVP_DigestFinal_ex(s->md, d, &dl);
    strcpy(out, "sha256:");
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + 7 + 2 * i, 3, "%02x", d[i]);
}

/* A GET of repo's kind/ref into memory (at most max bytes): body, digest. */
static int get_mem(struct reg_client *c, const char *repo, const char *kind, const char *ref,
                   const char *accept, long max, const char *what, char **body, size_t *len,
                   char ctype[128], char digest[72], char *err, size_t errlen)
{
    struct reg_sink s = {.max = max, .fd = -1, .md = EVP_MD_CTX_new()};
    *body = NULL;
    *len = 0;
    if (s.md == NULL)
        return vmms_fail(err, errlen, VMMS_ERR, "out of memory");
    int rc = request(c, repo, kind, ref, accept, &s, what, err, errlen);
    if (rc == VMMS_OK && s.buf == NULL)
        s.buf = strdup("");
    if (rc == VMMS_OK) {
        sink_digest(&s, digest);
        if (ctype)
            snprintf(ctype, 128, "%s", s.ctype);
        *body = s.buf;
        *len = s.len;
        s.buf = NULL;
    }
    free(s.buf);
    EVP_MD_CTX_free(s.md);
    return rc;
}

int reg_get_manifest(struct reg_client *c, const char *repo, const char *ref, char **body,
                     size_t *len, char ctype[128], char digest[72], char *err, size_t errlen)
{
    char what[400];
    snprintf(what, sizeof what, "manifest %.200s:%.80s", repo, ref);
    int rc = get_mem(c, repo, "manifests", ref, MANIFEST_ACCEPT, REG_MANIFEST_MAX, what, body,
                     len, ctype, digest, err, errlen);
    if (rc == VMMS_OK && strncmp(ref, "sha256:", 7) == 0 && strcmp(ref, digest) != 0) {
        free(*body);
        *body = NULL;
        return vmms_fail(err, errlen, VMMS_ERR, "registry %s: %s: its bytes are %.19s..., "
                         "not the digest asked for: refused", c->host, what, digest);
    }
    return rc;
}

int reg_get_blob_mem(struct reg_client *c, const char *repo, const char *digest, long max,
                     char **body, size_t *len, char *err, size_t errlen)
{
    char what[400], got[72];
    snprintf(what, sizeof what, "blob %.19s... of %.200s", digest, repo);
    int rc = get_mem(c, repo, "blobs", digest, NULL, max, what, body, len, NULL, got, err,
                     errlen);
    if (rc == VMMS_OK && strcmp(got, digest) != 0) {
        free(*body);
        *body = NULL;
        return vmms_fail(err, errlen, VMMS_ERR, "registry %s: %s: its bytes are %.19s...: "
                         "refused", c->host, what, got);
    }
    return rc;
}

int reg_get_blob_file(struct reg_client *c, const char *repo, const char *digest, long max,
                      const char *dir, char *path, char *err, size_t errlen)
{
    char what[400], got[72];
    snprintf(what, sizeof what, "blob %.19s... of %.200s", digest, repo);
    snprintf(path, PATH_MAX, "%s/blob-%d-XXXXXX", dir, (int)getpid());
    struct reg_sink s = {.max = max, .fd = mkostemp(path, O_CLOEXEC),
                         .md = EVP_MD_CTX_new()};
    if (s.fd < 0 || s.md == NULL) {
        int e = errno;
        if (s.fd >= 0)
            close(s.fd), unlink(path);
        EVP_MD_CTX_free(s.md);
        return vmms_fail(err, errlen, VMMS_ERR, "cannot make %s: %s", path, strerror(e));
    }
    int rc = request(c, repo, "blobs", digest, NULL, &s, what, err, errlen);
    if (rc == VMMS_OK) {
        sink_digest(&s, got);
        if (strcmp(got, digest) != 0)
            rc = vmms_fail(err, errlen, VMMS_ERR, "registry %s: %s: its bytes are %.19s..., "
                           "not its digest: refused, nothing kept", c->host, what, got);
    }
    if (close(s.fd) != 0 && rc == VMMS_OK)
        rc = vmms_fail(err, errlen, VMMS_ERR, "cannot write %s: %s", path, strerror(errno));
    if (rc != VMMS_OK)
        unlink(path);
    EVP_MD_CTX_free(s.md);
    return rc;
}
