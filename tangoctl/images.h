/*
 * images.h: what tangoctl images' files share: images.c gathers what
 * uses an image (live jobs, warm pools, the config's images) and prints;
 * images_rows.c makes the rows (below) and decides each one's action;
 * images_docker.c lists and prunes the Docker images of the Engine API;
 * images_oci.c lists and prunes localOCI's layer store. A back end's rows
 * are JSON objects {backend, name, ours, in_use, action} appended to one
 * array, action being "keep", "remove" (dry run), "removed" or "failed".
 */
#ifndef TANGO_CTL_IMAGES_H
#define TANGO_CTL_IMAGES_H

#include <stdbool.h>
#include <jansson.h>

#include "ctl.h"

/* What an images run does: list only, or prune (dry or not). */
struct img_run {
    struct ctl *x;
    json_t *uses;  /* {canonical image name: count} of live jobs, pools, config */
    bool prune;
    bool dry;
    char **match;  /* prune only names matching one of these globs (NULL: all) */
    int nmatch;
    json_t *rows;  /* the rows appended by the back ends */
    int failed;    /* a back end or a removal failed: tangoctl exits 1 */
};

/* name without a ":latest" ending into buf (len bytes); returns buf. */
const char *img_canon(const char *name, char *buf, size_t len);

/* How many users name image (":latest" dropped; a "reg-<hex>" localOCI
 * record is used by any name ending "@sha256:<hex>"). */
long long img_use_count(const json_t *uses, const char *name);

/* Appends one row to r->rows (action from ours, use and the run's mode)
 * and returns whether the caller should remove the thing now. */
bool img_row(struct img_run *r, const char *backend, const char *name, bool ours,
             long long in_use);

/* Whether the last row goes (removed, or would be in a dry run). */
bool img_row_goes(const struct img_run *r);

/* Marks the last row's removal done or failed (why on stderr when failed). */
void img_removed(struct img_run *r, bool ok, const char *why);

/* The Docker images of the dockerd named by vmms_config.localDocker.socket
 * (else build_docker_socket): all listed; only those labelled tango.image
 * that nothing uses are pruned, by tag (or by id when untagged). An
 * unreachable dockerd is a warning and sets r->failed. */
void img_docker(struct img_run *r);

/* localOCI's store (vmms_config.localOCI.store_dir; nothing when the config
 * names none): image records and layers; prunes registry-pull records
 * ("reg-<hex>") nothing uses, then layer directories no kept record lists. */
void img_oci(struct img_run *r);

#endif
