/*
 * registry.h: a client of the OCI distribution API (the registry protocol)
 * over libcurl, for the back ends that pull images without a daemon. Owns:
 *   registry.c           the requests: HTTPS only (the registry's ca_file or
 *                        the system's), a stall deadline and an overall
 *                        deadline (from the size cap) on every transfer,
 *                        a 401 answered only from the registry's own host,
 *                        size caps, manifests (tag -> digest), blobs to
 *                        memory or to a file, each checked against its sha256;
 *   registry_auth.c      the 401 answer: Basic, or the bearer-token flow
 *                        (WWW-Authenticate: Bearer realm, service, scope ->
 *                        a token fetched with the registry's credentials ->
 *                        the request again);
 *   registry_manifest.c  the parse of a manifest or an index (OCI and
 *                        Docker v2), linux/amd64 chosen from an index;
 *   registry_ref.c       a tag resolved to its digest;
 *   registry_engine_auth.c  the credentials of a pull or a push through a
 *                        Docker daemon: X-Registry-Auth, a docker CLI
 *                        config.json (also linked into the consumer).
 * Registry answers are outside input: registry_manifest.c and the challenge
 * parse are fuzzed by tests/fuzz/fuzz_registry.c. Credentials (registries.h)
 * are read when a registry asks for them and never logged; a token or a
 * Basic header lives only in struct reg_client, wiped by reg_client_clear.
 */
#ifndef TANGO_VMMS_REGISTRY_H
#define TANGO_VMMS_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#pragma GCC visibility push(hidden)

#define REG_MANIFEST_MAX (4L * 1024 * 1024) /* a manifest, an index, an image config */
#define REG_LAYERS_MAX 128
#define REG_AUTH_MAX 8192                   /* an Authorization header value */

struct reg_client {
    char host[254];          /* "host[:port]" */
    char ca_file[4097];      /* "" = the system's CAs */
    char creds_file[4097];   /* "" = anonymous */
    long stall_s;            /* a transfer moving no byte this long fails */
    char auth[REG_AUTH_MAX]; /* "Basic ..." or "Bearer ..." once a 401 asked; secret */
};

/* Sets up c for registry host from the "registries" object regs. VMMS_OK,
 * or VMMS_ERR when host is not listed there. */
int reg_client_init(struct reg_client *c, const json_t *regs, const char *host, char *err,
                    size_t errlen);
/* Wipes the credentials c holds. */
void reg_client_clear(struct reg_client *c);

/* GETs the manifest ref (a tag or "sha256:...") of repository repo, asking
 * for OCI and Docker v2 manifests and indexes. *body (malloc'd, NUL ended,
 * at most REG_MANIFEST_MAX), *len, ctype (its Content-Type, 128 bytes) and
 * digest ("sha256:<hex>" of the body, 72 bytes). A digest ref is checked:
 * other bytes are refused. VMMS_OK, VMMS_NOT_FOUND (404), or VMMS_ERR with
 * err (no secret in it). */
int reg_get_manifest(struct reg_client *c, const char *repo, const char *ref, char **body,
                     size_t *len, char ctype[128], char digest[72], char *err, size_t errlen);

/* GETs blob digest ("sha256:<hex>") of repo into memory, at most max
 * bytes, refused unless its sha256 is digest. Same returns. */
int reg_get_blob_mem(struct reg_client *c, const char *repo, const char *digest, long max,
                     char **body, size_t *len, char *err, size_t errlen);

/* GETs blob digest of repo into a new file made in dir (a directory of our
 * own), named "blob-<pid>-XXXXXX"; its path into path (PATH_MAX bytes).
 * Refused (and the file removed) when it is longer than max bytes (the
 * size the manifest declares) or its sha256 is not digest: on any failure
 * no file is left. Same returns. */
int reg_get_blob_file(struct reg_client *c, const char *repo, const char *digest, long max,
                      const char *dir, char *path, char *err, size_t errlen);

/* ---- registry_ref.c ---- */

/* name pinned: a registry reference by tag (or none) into
 * "host/path@sha256:..." of the manifest the registry serves for it now
 * (listed in regs, the "registries" object); a local name or a reference
 * by digest copied as it is. VMMS_OK, VMMS_NOT_FOUND, or VMMS_ERR with err. */
int reg_resolve(const json_t *regs, const char *name, char *out, size_t outlen, char *err,
                size_t errlen);

/* ---- registry_engine_auth.c ---- */

/* The X-Registry-Auth value for a Docker Engine pull from (or push to)
 * registry host:
 * base64url of {"username","password","serveraddress"} from its
 * credentials file, malloc'd into *out (NULL: the registry is listed with
 * no credentials, pull anonymously). A secret: free it with
 * reg_engine_auth_free, never log it. VMMS_OK, or VMMS_ERR with err (an
 * unlisted registry, an unreadable credentials file). */
int reg_engine_auth(const json_t *regs, const char *host, char **out, char *err,
                    size_t errlen);
/* Wipes and frees what reg_engine_auth or reg_docker_config made (NULL:
 * nothing). */
void reg_engine_auth_free(char *auth);
/* The docker CLI config.json for a pull from registry host:
 * {"auths":{HOST:{"auth":base64(user:pass)}}} from its credentials file
 * ({"auths":{}} for a registry listed with none), malloc'd into *out. A
 * secret: free it with reg_engine_auth_free, never log it. VMMS_OK, or
 * VMMS_ERR with err as reg_engine_auth. */
int reg_docker_config(const json_t *regs, const char *host, char **out, char *err,
                      size_t errlen);

/* ---- registry_auth.c ---- */

/* Whether URL u's host, its port aside, is the host of hp ("host[:port]");
 * false for a URL with userinfo or an IPv6 literal. */
bool reg_same_host(const char *u, const char *hp);

/* A parsed WWW-Authenticate challenge. */
struct reg_challenge {
    bool bearer;             /* else Basic */
    char realm[1024], service[256], scope[512];
};
/* Parses header value v (its scheme and its quoted parameters). 0, or -1
 * for a scheme other than Basic and Bearer or a malformed value. */
int reg_challenge_parse(const char *v, struct reg_challenge *ch);
/* Answers challenge ch of registry c (scope: what the request wanted,
 * used when ch names none): fills c->auth with Basic credentials or a
 * bearer token fetched from ch->realm (HTTPS only; the credentials go with
 * it only when the realm's host is the registry's host, port aside, else
 * the token is asked for anonymously). VMMS_OK or VMMS_ERR. */
int reg_authorize(struct reg_client *c, const struct reg_challenge *ch, const char *scope,
                  char *err, size_t errlen);
/* The token of a token server's JSON answer ("token" or "access_token",
 * printable, at most REG_AUTH_MAX - 8 bytes) into out; -1 if none. */
int reg_token_parse(const char *body, size_t len, char *out, size_t outsz);

/* ---- registry_manifest.c ---- */

struct reg_image {
    char config[72];                 /* the image config's digest */
    size_t nlayers;
    char layers[REG_LAYERS_MAX][72]; /* bottom first */
    long long sizes[REG_LAYERS_MAX]; /* each layer's declared size (> 0) */
};
enum reg_kind { REG_IMAGE = 1, REG_INDEX = 2 };
/* Parses a manifest body of Content-Type ctype (or its own "mediaType"):
 * REG_IMAGE with *img filled (1..REG_LAYERS_MAX layers of tar, tar+gzip or
 * tar+zstd media types, sha256 digests), or REG_INDEX with pick the digest
 * of its linux/amd64 manifest; VMMS_ERR with err otherwise (schema 1, no
 * linux/amd64 entry: err lists the platforms it has, other layer types). */
int reg_manifest_parse(const char *body, size_t len, const char *ctype, struct reg_image *img,
                       char pick[72], char *err, size_t errlen);

#pragma GCC visibility pop

#endif
