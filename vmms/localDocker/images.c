/*
 * images.c: the images a job may name. Owns get_images (every repo tag the
 * engine has, ":latest" dropped) and load_image (POST a `docker save`
 * tarball streamed from disk, then tag the result with the wanted name).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ld.h"
#include "log.h"

static int add_name(char ***names, size_t *count, size_t *cap, const char *tag)
{
    size_t n = strlen(tag);
    if (n > 7 && strcmp(tag + n - 7, ":latest") == 0)
        n -= 7;
    for (size_t i = 0; i < *count; i++)
        if (strlen((*names)[i]) == n && strncmp((*names)[i], tag, n) == 0)
            return 0;
    if (*count == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        char **nn = realloc(*names, nc * sizeof *nn);
        if (nn == NULL)
            return -1;
        *names = nn;
        *cap = nc;
    }
    char *s = strndup(tag, n);
    if (s == NULL)
        return -1;
    (*names)[(*count)++] = s;
    return 0;
}

int ld_get_images(void *vctx, char ***names, size_t *count, char *err, size_t errlen)
{
    struct ld_ctx *ctx = vctx;
    *names = NULL;
    *count = 0;
    struct ld_request req = {.method = "GET", .path = "/images/json"};
    struct ld_response resp;
    int rc = ld_docker(ctx, &req, &resp, err, errlen);
    if (rc == VMMS_OK && (resp.status != 200 || !json_is_array(resp.json)))
        rc = ld_docker_fail(&resp, "cannot list images", err, errlen);
    size_t cap = 0, i, j;
    json_t *img, *tag;
    if (rc == VMMS_OK)
        json_array_foreach(resp.json, i, img) {
            json_array_foreach(json_object_get(img, "RepoTags"), j, tag) {
                const char *t = json_string_value(tag);
                if (t == NULL || strcmp(t, "<none>:<none>") == 0)
                    continue;
                if (add_name(names, count, &cap, t) != 0) {
                    rc = ld_fail(err, errlen, VMMS_ERR, "out of memory");
                    goto out;
                }
            }
        }
out:
    ld_response_free(&resp);
    if (rc != VMMS_OK) {
        vmms_free_names(*names, *count);
        *names = NULL;
        *count = 0;
    }
    return rc;
}

/* Image references we put in URLs: [A-Za-z0-9._/:@-], not empty. */
static bool ref_ok(const char *s)
{
    if (*s == '\0' || strlen(s) > 255)
        return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._/:@-") ==
           strlen(s);
}

/* "repo[:tag]" -> repo, tag ("latest" when absent). */
static void split_ref(const char *ref, char *repo, size_t rsz, char *tag, size_t tsz)
{
    const char *colon = strrchr(ref, ':');
    const char *slash = strrchr(ref, '/');
    if (colon && (!slash || colon > slash)) {
        snprintf(repo, rsz, "%.*s", (int)(colon - ref), ref);
        snprintf(tag, tsz, "%s", colon + 1);
    } else {
        snprintf(repo, rsz, "%s", ref);
        snprintf(tag, tsz, "latest");
    }
}

/* Reads the load answer (a stream of JSON objects, one per line) into the
 * first loaded reference (name:tag, or the image ID). */
static int parse_load(const struct ld_response *resp, char *loaded, size_t lsz,
                      bool *has_name, char *err, size_t errlen)
{
    loaded[0] = '\0';
    const char *p = resp->body ? resp->body : "";
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        json_t *msg = json_loadb(p, n, 0, NULL);
        p += n + (nl ? 1 : 0);
        if (msg == NULL)
            continue;
        const char *e = json_string_value(json_object_get(msg, "error"));
        const char *s = json_string_value(json_object_get(msg, "stream"));
        int rc = VMMS_OK;
        if (e)
            rc = ld_fail(err, errlen, VMMS_ERR, "Docker could not load the image: %s", e);
        else if (s && loaded[0] == '\0') {
            const char *v = NULL;
            if (strncmp(s, "Loaded image: ", 14) == 0) {
                v = s + 14;
                *has_name = true;
            } else if (strncmp(s, "Loaded image ID: ", 17) == 0) {
                v = s + 17;
                *has_name = false;
            }
            if (v)
                snprintf(loaded, lsz, "%.*s", (int)strcspn(v, "\r\n"), v);
        }
        json_decref(msg);
        if (rc != VMMS_OK)
            return rc;
    }
    if (loaded[0] == '\0' || !ref_ok(loaded))
        return ld_fail(err, errlen, VMMS_ERR,
                       "Docker loaded no image from the tarball (is it a `docker save` "
                       "archive?)");
    return VMMS_OK;
}

int ld_load_image(void *vctx, const char *tar_path, const char *name, int timeout_s,
                  char *err, size_t errlen)
{
    struct ld_ctx *ctx = vctx;
    if (name == NULL || !ref_ok(name) || strchr(name, '@'))
        return ld_fail(err, errlen, VMMS_ERR,
                       "bad image name \"%s\": use letters, digits, '.', '_', '-', '/' "
                       "and an optional :tag", name ? name : "(null)");
    FILE *f = fopen(tar_path, "rbe");
    if (f == NULL)
        return ld_fail(err, errlen, VMMS_ERR, "cannot open %s: %s", tar_path, strerror(errno));
    struct stat st;
    long long size = fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) ? st.st_size : -1;
    long t0 = clock_mono_ms();
    struct ld_request req = {.method = "POST", .path = "/images/load?quiet=1", .upload = f,
                             .upload_size = size, .timeout_s = timeout_s};
    struct ld_response resp;
    int rc = ld_docker(ctx, &req, &resp, err, errlen);
    fclose(f);
    char loaded[300];
    bool has_name = false;
    if (rc == VMMS_OK && resp.status != 200)
        rc = ld_docker_fail(&resp, "Docker could not load the image", err, errlen);
    if (rc == VMMS_OK)
        rc = parse_load(&resp, loaded, sizeof loaded, &has_name, err, errlen);
    ld_response_free(&resp);
    if (rc != VMMS_OK)
        return rc;

    char want_repo[256], want_tag[256], got_repo[300], got_tag[300];
    split_ref(name, want_repo, sizeof want_repo, want_tag, sizeof want_tag);
    if (has_name) {
        split_ref(loaded, got_repo, sizeof got_repo, got_tag, sizeof got_tag);
        if (strcmp(got_repo, want_repo) == 0 && strcmp(got_tag, want_tag) == 0)
            goto done;
    }
    char er[800], et[800], path[2048];
    snprintf(path, sizeof path, "/images/%s/tag?repo=%s&tag=%s", loaded,
             ld_urlencode(want_repo, er, sizeof er), ld_urlencode(want_tag, et, sizeof et));
    struct ld_request treq = {.method = "POST", .path = path};
    rc = ld_docker(ctx, &treq, &resp, err, errlen);
    if (rc == VMMS_OK && resp.status != 201)
        rc = ld_docker_fail(&resp, "cannot tag the loaded image", err, errlen);
    ld_response_free(&resp);
    if (rc != VMMS_OK)
        return rc;
done:;
    char qn[300], ql[300];
    log_info("image_loaded", "name=%s loaded=%s ms=%ld", log_quote(name, qn, sizeof qn),
             log_quote(loaded, ql, sizeof ql), (long)(clock_mono_ms() - t0));
    return VMMS_OK;
}
