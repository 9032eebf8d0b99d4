/*
 * creds.c: the AWS credentials ec2SSH signs with, in this order: the
 * config's access_key_id / secret_access_key (/ session_token), the
 * environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN),
 * then the instance profile through IMDSv2 (PUT a session token, GET the
 * role's name, GET its credentials) at imds_endpoint with a 2 s timeout.
 * Instance-profile credentials are cached in the context until 5 minutes
 * before they expire (at most 12 hours). What IMDS answers is read by pure
 * parsers (ec2_imds_role, ec2_imds_creds), and every source's key id,
 * secret and token must be header-safe (printable, no space, no CR/LF).
 * Secrets are never logged, nor put in an error; only their source is
 * logged.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "clock.h"
#include "ec2.h"
#include "log.h"

#define IMDS_TIMEOUT_MS 2000
#define REFRESH_BEFORE_MS (5 * 60 * 1000L)

#define MAX_LIFE_S (12 * 3600L)

/* A key id, secret or token as it may go into a header: printable ASCII, no
 * space (a CR or LF would start a header of its own). */
static bool header_safe(const char *s)
{
    for (; *s; s++)
        if (*s < 0x21 || *s > 0x7e)
            return false;
    return true;
}

static bool fill(struct ec2_creds *c, const char *id, const char *secret, const char *token,
                 const char *source)
{
    if (!id || !secret || !id[0] || !secret[0] || strlen(id) >= sizeof c->key_id ||
        strlen(secret) >= sizeof c->secret || (token && strlen(token) >= sizeof c->token) ||
        !header_safe(id) || !header_safe(secret) || (token && !header_safe(token)))
        return false;
    memset(c, 0, sizeof *c);
    snprintf(c->key_id, sizeof c->key_id, "%s", id);
    snprintf(c->secret, sizeof c->secret, "%s", secret);
    snprintf(c->token, sizeof c->token, "%s", token ? token : "");
    snprintf(c->source, sizeof c->source, "%s", source);
    return true;
}

/* Seconds from now until an ISO 8601 UTC time ("2026-12-01T23:00:00Z"). */
static long seconds_until(const char *iso)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (iso == NULL || strptime(iso, "%Y-%m-%dT%H:%M:%S", &tm) == NULL)
        return 0;
    return (long)(timegm(&tm) - time(NULL));
}

bool ec2_imds_role(const char *doc, char *role, size_t rolesz)
{
    size_t n = strcspn(doc, "\r\n");
    bool ok = n > 0 && n <= 128 && n < rolesz &&
              strspn(doc, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                          "0123456789+=,.@_-") >= n;
    snprintf(role, rolesz, "%.*s", ok ? (int)n : 0, doc);
    return ok;
}

bool ec2_imds_creds(const char *doc, size_t len, struct ec2_creds *out)
{
    json_t *j = json_loadb(doc, len, JSON_REJECT_DUPLICATES, NULL);
    const char *id = json_string_value(json_object_get(j, "AccessKeyId"));
    const char *sec = json_string_value(json_object_get(j, "SecretAccessKey"));
    const char *tok = json_string_value(json_object_get(j, "Token"));
    long left = seconds_until(json_string_value(json_object_get(j, "Expiration")));
    bool ok = fill(out, id, sec, tok, "instance-profile");
    if (ok)
        out->expires_ms = clock_mono_ms() +
                          (left > 0 ? (left < MAX_LIFE_S ? left : MAX_LIFE_S) : 3600) * 1000L;
    json_decref(j);
    return ok;
}

static int imds_get(const struct ec2_ctx *ctx, const char *method, const char *path,
                    const char *header, char **out, char *err, size_t errlen)
{
    char url[512];
    snprintf(url, sizeof url, "%s%s", ctx->cfg.imds_endpoint, path);
    struct curl_slist *h = curl_slist_append(NULL, header);
    size_t len;
    long http;
    int rc = ec2_http(method, url, h, "", NULL, NULL, NULL, IMDS_TIMEOUT_MS, out, &len, &http,
                      err, errlen);
    curl_slist_free_all(h);
    if (rc == VMMS_OK && http != 200) {
        free(*out);
        *out = NULL;
        rc = vmms_fail(err, errlen, VMMS_ERR, "instance profile: %s answered HTTP %ld", path,
                       http);
    }
    return rc;
}

static int from_imds(struct ec2_ctx *ctx, struct ec2_creds *out, char *err, size_t errlen)
{
    char *token = NULL, *role = NULL, *doc = NULL;
    int rc = imds_get(ctx, "PUT", "/latest/api/token",
                      "X-aws-ec2-metadata-token-ttl-seconds: 21600", &token, err, errlen);
    char hdr[1200], path[400];
    if (rc == VMMS_OK) {
        token[strcspn(token, "\r\n")] = '\0';
        snprintf(hdr, sizeof hdr, "X-aws-ec2-metadata-token: %.1100s", token);
        rc = imds_get(ctx, "GET", "/latest/meta-data/iam/security-credentials/", hdr, &role,
                      err, errlen);
    }
    char name[129];
    if (rc == VMMS_OK && !ec2_imds_role(role, name, sizeof name))
        rc = vmms_fail(err, errlen, VMMS_ERR, "instance profile: no usable role name");
    if (rc == VMMS_OK) {
        snprintf(path, sizeof path, "/latest/meta-data/iam/security-credentials/%s", name);
        rc = imds_get(ctx, "GET", path, hdr, &doc, err, errlen);
    }
    if (rc == VMMS_OK && !ec2_imds_creds(doc, strlen(doc), out))
        rc = vmms_fail(err, errlen, VMMS_ERR, "instance profile: the role's credentials "
                       "are not in the expected form");
    if (token)
        memset(token, 0, strlen(token));
    if (doc)
        memset(doc, 0, strlen(doc));
    memset(hdr, 0, sizeof hdr);
    free(token);
    free(role);
    free(doc);
    return rc;
}

int ec2_creds_get(struct ec2_ctx *ctx, struct ec2_creds *out, char *err, size_t errlen)
{
    const struct ec2_config *c = &ctx->cfg;
    if (c->access_key_id[0] &&
        fill(out, c->access_key_id, c->secret_access_key, c->session_token, "config"))
        return VMMS_OK;
    if (getenv("AWS_ACCESS_KEY_ID") &&
        fill(out, getenv("AWS_ACCESS_KEY_ID"), getenv("AWS_SECRET_ACCESS_KEY"),
             getenv("AWS_SESSION_TOKEN"), "environment"))
        return VMMS_OK;
    pthread_mutex_lock(&ctx->lock);
    bool fresh = ctx->creds.key_id[0] && ctx->creds.expires_ms - REFRESH_BEFORE_MS > clock_mono_ms();
    if (fresh)
        *out = ctx->creds;
    pthread_mutex_unlock(&ctx->lock);
    if (fresh)
        return VMMS_OK;
    char why[300];
    int rc = from_imds(ctx, out, why, sizeof why);
    if (rc != VMMS_OK)
        return vmms_fail(err, errlen, VMMS_ERR,
                         "no AWS credentials: none in the config, none in the environment "
                         "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), and the instance profile "
                         "gave none (%s)", why);
    pthread_mutex_lock(&ctx->lock);
    ctx->creds = *out;
    pthread_mutex_unlock(&ctx->lock);
    log_info("ec2_credentials", "source=instance-profile expires_in_s=%ld",
             (long)((out->expires_ms - clock_mono_ms()) / 1000));
    return VMMS_OK;
}
