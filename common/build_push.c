/*
 * build_push.c: config key "build_push_to" (build_push.h).
 */
#include "build_push.h"

#include <stdio.h>
#include <string.h>

#include "registries.h"

int build_push_check(const char *to, const json_t *regs, char *err, size_t errlen)
{
    if (to[0] == '\0')
        return 0;
    char probe[IMAGE_REF_MAX + 2];
    struct image_ref ref;
    int n = snprintf(probe, sizeof probe, "%s/x", to);
    if (n < 0 || (size_t)n >= sizeof probe - 64 || image_ref_parse(probe, &ref) != 0 ||
        !ref.remote || ref.tag[0] || ref.digest[0]) {
        snprintf(err, errlen, "\"%.100s\" is not \"host[:port]/prefix\" (a registry, then "
                 "lower-case path components; no tag, at most %d bytes)", to,
                 IMAGE_REF_MAX - 64);
        return -1;
    }
    if (!registries_find(regs, ref.registry)) {
        snprintf(err, errlen, "registry \"%s\" is not listed in config key \"registries\"",
                 ref.registry);
        return -1;
    }
    return 0;
}

int build_push_target(const char *to, const char *image, char *repo, size_t repolen,
                      char *tag, size_t taglen)
{
    const char *colon = strchr(image, ':');
    size_t name_len = colon ? (size_t)(colon - image) : strlen(image);
    int n = snprintf(repo, repolen, "%s/%.*s", to, (int)name_len, image);
    int m = snprintf(tag, taglen, "%s", colon ? colon + 1 : "latest");
    struct image_ref ref;
    char whole[IMAGE_REF_MAX + 2];
    return n < 0 || (size_t)n >= repolen || m < 0 || (size_t)m >= taglen ||
                   (size_t)snprintf(whole, sizeof whole, "%s:%s", repo, tag) >= sizeof whole ||
                   image_ref_parse(whole, &ref) != 0
               ? -1
               : 0;
}

bool build_push_under(const char *to, const struct image_ref *ref, char *local, size_t len)
{
    if (to[0] == '\0' || !ref->remote)
        return false;
    char full[2 * IMAGE_REF_MAX + 2];
    snprintf(full, sizeof full, "%s/%s", ref->registry, ref->path);
    size_t tl = strlen(to);
    if (strncmp(full, to, tl) != 0 || full[tl] != '/')
        return false;
    snprintf(local, len, "%s", full + tl + 1);
    return true;
}
