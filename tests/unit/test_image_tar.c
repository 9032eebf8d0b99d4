/*
 * test_image_tar.c: common/image_tar.c (the /build tarball rule) and
 * common/jobnet.c (the jobs' network description). Tarballs are written
 * here with libarchive into a temp file: the shapes `docker save` makes and
 * the ones an attacker would (other tags, Go's case-folded keys, duplicate
 * keys, links, "..", too big), each checked against the rule.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <jansson.h>

#include "image_tar.h"
#include "jobnet.h"

/* One entry to write: a regular file (data), a symlink (link) or a dir. */
struct ent {
    const char *name;
    const char *data;   /* regular file content */
    const char *link;   /* symlink target */
    bool dir;
    size_t size;        /* for data: 0 = strlen(data) */
};

static char tmpdir[] = "/tmp/test_image_tar.XXXXXX";
static int seq;

/* Writes the entries as a tar (gzip with gz) and opens it; returns the fd. */
static int tarball(const struct ent *e, size_t n, bool gz)
{
    char path[128];
    snprintf(path, sizeof path, "%s/t%d.tar", tmpdir, seq++);
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    if (gz)
        archive_write_add_filter_gzip(a);
    assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
    for (size_t i = 0; i < n; i++) {
        struct archive_entry *ae = archive_entry_new();
        archive_entry_set_pathname(ae, e[i].name);
        size_t len = e[i].data ? (e[i].size ? e[i].size : strlen(e[i].data)) : 0;
        if (e[i].link) {
            archive_entry_set_filetype(ae, AE_IFLNK);
            archive_entry_set_symlink(ae, e[i].link);
        } else if (e[i].dir) {
            archive_entry_set_filetype(ae, AE_IFDIR);
        } else {
            archive_entry_set_filetype(ae, AE_IFREG);
            archive_entry_set_size(ae, (la_int64_t)len);
        }
        archive_entry_set_perm(ae, 0644);
        assert_int_equal(archive_write_header(a, ae), ARCHIVE_OK);
        if (len)
            assert_int_equal(archive_write_data(a, e[i].data, len), (la_ssize_t)len);
        archive_entry_free(ae);
    }
    archive_write_close(a);
    archive_write_free(a);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    return fd;
}

static char err[512];

/* image_tar_check of the entries for want: 0 or -1; *tagged set. */
static int check(const struct ent *e, size_t n, const char *want, bool *tagged)
{
    int fd = tarball(e, n, false);
    err[0] = '\0';
    bool t = false;
    int rc = image_tar_check(fd, want, &t, err, sizeof err);
    close(fd);
    if (tagged)
        *tagged = t;
    return rc;
}

#define LAYERS {"abc/layer.tar", "layer bytes", NULL, false, 0}, \
               {"abc/json", "{}", NULL, false, 0}, {"cfg.json", "{}", NULL, false, 0}
#define MANIFEST(tags) "[{\"Config\":\"cfg.json\",\"RepoTags\":" tags ",\"Layers\":[\"abc/layer.tar\"]}]"

static void test_good_shapes(void **state)
{
    (void)state;
    bool tagged;
    struct ent good[] = {{"abc/", NULL, NULL, true, 0}, LAYERS,
                         {"manifest.json", MANIFEST("[\"mylab:latest\"]"), NULL, false, 0},
                         {"repositories", "{}", NULL, false, 0}};
    assert_int_equal(check(good, 6, "mylab", &tagged), 0);
    assert_true(tagged);
    struct ent untagged[] = {LAYERS, {"./manifest.json", MANIFEST("null"), NULL, false, 0}};
    assert_int_equal(check(untagged, 4, "anything:v2", &tagged), 0);
    assert_false(tagged);
    /* Docker's spellings of one name */
    struct ent spelled[] = {LAYERS, {"manifest.json",
        MANIFEST("[\"docker.io/library/mylab:latest\",\"library/mylab\",\"mylab\"]"), NULL,
        false, 0}};
    assert_int_equal(check(spelled, 4, "mylab:latest", &tagged), 0);
    /* layer.tar symlinks, as docker save dedups layers */
    struct ent dedup[] = {LAYERS, {"def/layer.tar", NULL, "../abc/layer.tar", false, 0},
                          {"manifest.json", MANIFEST("[]"), NULL, false, 0}};
    assert_int_equal(check(dedup, 5, "mylab", &tagged), 0);
    /* gzip-compressed */
    int fd = tarball(good, 6, true);
    assert_int_equal(image_tar_check(fd, "mylab", &tagged, err, sizeof err), 0);
    close(fd);
}

static void test_other_tags_refused(void **state)
{
    (void)state;
    static const char *const tags[] = {
        "[\"autograding_image:latest\"]", "[\"mylab:latest\",\"autograding_image\"]",
        "[\"mylab:v2\"]", "[\"other/mylab\"]", "[\"registry.example.com/mylab\"]",
        "[\"mylab@sha256:" "0000000000000000000000000000000000000000000000000000000000000000\"]",
        "[\"MYLAB\"]", "[7]", "\"mylab\"", "{}"};
    for (size_t i = 0; i < sizeof tags / sizeof tags[0]; i++) {
        char man[512];
        snprintf(man, sizeof man, MANIFEST("%s"), tags[i]);
        struct ent e[] = {LAYERS, {"manifest.json", man, NULL, false, 0}};
        if (check(e, 4, "mylab", NULL) != -1)
            fail_msg("RepoTags %s accepted for mylab", tags[i]);
        assert_true(strlen(err) > 10);
    }
    struct ent e[] = {LAYERS, {"manifest.json", MANIFEST("[\"autograding_image:latest\"]"),
                               NULL, false, 0}};
    assert_int_equal(check(e, 4, "mylab", NULL), -1);
    assert_non_null(strstr(err, "autograding_image:latest"));
    assert_non_null(strstr(err, "only creates or replaces mylab"));
}

static void test_manifest_json_tricks(void **state)
{
    (void)state;
    static const char *const bad[] = {
        /* Go folds key case: "repotags" is RepoTags for Docker */
        "[{\"Config\":\"cfg.json\",\"repotags\":[\"autograding_image:latest\"],\"Layers\":[]}]",
        "[{\"Config\":\"cfg.json\",\"RepoTags\":[\"mylab\"],\"RepoTags\":[\"x:latest\"]}]",
        "[{\"Config\":\"cfg.json\",\"RepoTags\":[\"mylab\"]}] [\"trailing\"]",
        "[{\"Config\":\"cfg.json\"},{\"Config\":\"cfg.json\"}]",  /* two images */
        "[]", "{}", "not json", "[{\"RepoTags\":[\"mylab\"],\"Extra\":1}]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct ent e[] = {LAYERS, {"manifest.json", bad[i], NULL, false, 0}};
        if (check(e, 4, "mylab", NULL) != -1)
            fail_msg("manifest %s accepted", bad[i]);
    }
    /* the last top-level manifest.json is the one Docker reads */
    struct ent last[] = {LAYERS, {"manifest.json", MANIFEST("[\"mylab\"]"), NULL, false, 0},
                         {"./manifest.json", MANIFEST("[\"victim\"]"), NULL, false, 0}};
    assert_int_equal(check(last, 5, "mylab", NULL), -1);
    assert_non_null(strstr(err, "victim"));
    struct ent first_bad[] = {LAYERS, {"manifest.json", MANIFEST("[\"victim\"]"), NULL, false, 0},
                              {"manifest.json", MANIFEST("[\"mylab\"]"), NULL, false, 0}};
    assert_int_equal(check(first_bad, 5, "mylab", NULL), 0);
    /* over 1 MiB */
    size_t big = (size_t)IMAGE_TAR_MANIFEST_MAX + 10;
    char *huge = malloc(big + 1);
    memset(huge, ' ', big);
    memcpy(huge, "[]", 2);
    huge[big] = '\0';
    struct ent h[] = {LAYERS, {"manifest.json", huge, NULL, false, 0}};
    assert_int_equal(check(h, 4, "mylab", NULL), -1);
    assert_non_null(strstr(err, "over"));
    free(huge);
}

static void test_links_and_paths(void **state)
{
    (void)state;
    struct ent as_link[] = {LAYERS, {"m.json", MANIFEST("[\"victim\"]"), NULL, false, 0},
                            {"manifest.json", NULL, "m.json", false, 0}};
    assert_int_equal(check(as_link, 5, "mylab", NULL), -1);
    struct ent via_dir[] = {LAYERS, {"d", NULL, ".", false, 0},
                            {"d/manifest.json", MANIFEST("[\"victim\"]"), NULL, false, 0}};
    assert_int_equal(check(via_dir, 5, "mylab", NULL), -1);
    assert_non_null(strstr(err, "symlink"));
    struct ent deep_dir[] = {LAYERS, {"a/b", NULL, "/", false, 0},
                             {"a/b/manifest.json", MANIFEST("[\"victim\"]"), NULL, false, 0},
                             {"manifest.json", MANIFEST("[\"mylab\"]"), NULL, false, 0}};
    assert_int_equal(check(deep_dir, 6, "mylab", NULL), -1);
    struct ent dotdot[] = {LAYERS, {"x/../manifest.json", MANIFEST("[\"mylab\"]"), NULL, false, 0}};
    assert_int_equal(check(dotdot, 4, "mylab", NULL), -1);
    struct ent as_dir[] = {LAYERS, {"manifest.json", NULL, NULL, true, 0}};
    assert_int_equal(check(as_dir, 4, "mylab", NULL), -1);
    /* a manifest.json in a plain subdirectory is no manifest */
    struct ent sub[] = {LAYERS, {"abc/manifest.json", MANIFEST("[\"victim\"]"), NULL, false, 0},
                        {"manifest.json", MANIFEST("[\"mylab\"]"), NULL, false, 0}};
    assert_int_equal(check(sub, 5, "mylab", NULL), 0);
    struct ent none[] = {LAYERS, {"repositories", "{\"victim\":{\"latest\":\"x\"}}", NULL, false, 0}};
    assert_int_equal(check(none, 4, "mylab", NULL), -1);
    assert_non_null(strstr(err, "no manifest.json"));
    /* not a tarball */
    char path[128];
    snprintf(path, sizeof path, "%s/junk", tmpdir);
    FILE *f = fopen(path, "w");
    fputs("this is not a tar file at all\n", f);
    fclose(f);
    int fd = open(path, O_RDONLY);
    bool t;
    assert_int_equal(image_tar_check(fd, "mylab", &t, err, sizeof err), -1);
    close(fd);
}

static void test_refs_and_load_lines(void **state)
{
    (void)state;
    assert_true(image_ref_same("mylab", "mylab:latest"));
    assert_true(image_ref_same("docker.io/library/mylab:latest", "mylab"));
    assert_true(image_ref_same("index.docker.io/library/mylab", "mylab"));
    assert_true(image_ref_same("docker.io/mylab", "mylab"));
    assert_false(image_ref_same("mylab:v1", "mylab"));
    assert_false(image_ref_same("library/x/mylab", "mylab"));
    assert_false(image_ref_same("mylab@sha256:00", "mylab"));
    assert_false(image_ref_same("", "mylab"));
    char out[64];
    const char *l1 = "Loaded image: mylab:latest\n";
    assert_int_equal(image_load_line(l1, strlen(l1), out, sizeof out), 1);
    assert_string_equal(out, "mylab:latest");
    const char *l2 = "Loaded image ID: sha256:abcd\r\n";
    assert_int_equal(image_load_line(l2, strlen(l2), out, sizeof out), 2);
    assert_string_equal(out, "sha256:abcd");
    assert_int_equal(image_load_line("Loading layer", 13, out, sizeof out), 0);
    assert_int_equal(image_load_line("Loaded image: ", 14, out, sizeof out), 0);
}

/* The bytes of a tarball made by tarball() (malloc'd; *len its size). */
static char *tar_bytes(const struct ent *e, size_t n, bool gz, size_t *len)
{
    int fd = tarball(e, n, gz);
    off_t size = lseek(fd, 0, SEEK_END);
    char *buf = malloc((size_t)size);
    assert_non_null(buf);
    assert_int_equal(pread(fd, buf, (size_t)size, 0), size);
    close(fd);
    *len = (size_t)size;
    return buf;
}

/* image_tar_measure counts every layer's files (decompressed), refuses past
 * either cap naming its config key, and checks free space. */
static void test_measure(void **state)
{
    (void)state;
    static char kib[1024];
    memset(kib, 'a', sizeof kib);
    struct ent files[] = {{"a", kib, NULL, false, 1000}, {"b", kib, NULL, false, 1000},
                          {"d/", NULL, NULL, true, 0}, {"d/c", kib, NULL, false, 1000}};
    size_t llen;
    char *layer = tar_bytes(files, 4, true, &llen); /* a gzip layer, as OCI saves have */
    struct ent outer[] = {{"abc/layer.tar", layer, NULL, false, llen},
                          {"cfg.json", "{}", NULL, false, 0},
                          {"manifest.json", MANIFEST("[]"), NULL, false, 0}};
    int fd = tarball(outer, 3, true);
    struct image_tar_size size;
    assert_int_equal(image_tar_measure(fd, 1 << 20, 100, &size, err, sizeof err), 0);
    assert_int_equal(size.entries, 4 + 2);
    assert_int_equal(size.bytes, 3000 + 2 + (long long)strlen(MANIFEST("[]")));
    assert_int_equal(image_tar_measure(fd, 2500, 100, &size, err, sizeof err), -1);
    assert_non_null(strstr(err, "image_max_unpacked_mb"));
    assert_int_equal(image_tar_measure(fd, 1 << 20, 5, &size, err, sizeof err), -1);
    assert_non_null(strstr(err, "image_max_entries"));
    assert_int_equal(image_tar_admit(fd, 1 << 20, 100, tmpdir, err, sizeof err), 0);
    assert_int_equal(image_tar_admit(fd, 1LL << 50, 100, NULL, err, sizeof err), 0);
    close(fd);
    free(layer);
}

static void test_jobnet(void **state)
{
    (void)state;
    struct jobnet_config c;
    jobnet_config_default(&c);
    json_t *v = json_string("bridge");
    assert_int_equal(jobnet_config_key(&c, "t", "network", v, err, sizeof err), -1);
    json_decref(v);
    v = json_string("a-very-long-network-name");
    assert_int_equal(jobnet_config_key(&c, "t", "network", v, err, sizeof err), 1);
    json_decref(v);
    assert_int_equal(jobnet_config_finish(&c, "t", err, sizeof err), -1); /* > 15 for a bridge */
    v = json_string("tj0");
    assert_int_equal(jobnet_config_key(&c, "t", "network_bridge", v, err, sizeof err), 1);
    json_decref(v);
    assert_int_equal(jobnet_config_finish(&c, "t", err, sizeof err), 0);
    assert_int_equal(jobnet_config_key(&c, "t", "volume_dir", NULL, err, sizeof err), 0);

    jobnet_config_default(&c);
    assert_int_equal(jobnet_config_finish(&c, "t", err, sizeof err), 0);
    assert_string_equal(c.bridge, "tango-jobs");
    char ifn[16];
    json_t *net = json_pack("{s:s, s:s, s:s, s:{s:s, s:s}}", "Name", "tango-jobs", "Id",
                            "0123456789abcdef", "Driver", "bridge", "Options",
                            JOBNET_OPT_ICC, "false", JOBNET_OPT_BRIDGE, "tango-jobs");
    assert_int_equal(jobnet_check(net, &c, ifn, sizeof ifn, err, sizeof err), 0);
    assert_string_equal(ifn, "tango-jobs");
    json_object_del(json_object_get(net, "Options"), JOBNET_OPT_BRIDGE);
    assert_int_equal(jobnet_check(net, &c, ifn, sizeof ifn, err, sizeof err), 0);
    assert_string_equal(ifn, "br-0123456789ab");
    json_object_set_new(json_object_get(net, "Options"), JOBNET_OPT_ICC, json_string("true"));
    assert_int_equal(jobnet_check(net, &c, ifn, sizeof ifn, err, sizeof err), -1);
    assert_non_null(strstr(err, "reach each other"));
    json_object_del(json_object_get(net, "Options"), JOBNET_OPT_ICC);
    assert_int_equal(jobnet_check(net, &c, ifn, sizeof ifn, err, sizeof err), -1);
    json_object_set_new(json_object_get(net, "Options"), JOBNET_OPT_ICC, json_string("false"));
    json_object_set_new(net, "Driver", json_string("overlay"));
    assert_int_equal(jobnet_check(net, &c, ifn, sizeof ifn, err, sizeof err), -1);
    json_decref(net);

    const char *argv[JOBNET_RULE_ARGS];
    size_t n = jobnet_rule_argv("-C", "tango-jobs", argv);
    assert_true(n < JOBNET_RULE_ARGS);
    assert_null(argv[n]);
    char text[256];
    jobnet_rule_text("tango-jobs", text, sizeof text);
    assert_string_equal(text, "iptables -w 5 -I INPUT -i tango-jobs -m conntrack ! --ctstate "
                              "ESTABLISHED,RELATED -j DROP");
}

static int setup(void **state)
{
    (void)state;
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_shapes),
        cmocka_unit_test(test_other_tags_refused),
        cmocka_unit_test(test_manifest_json_tricks),
        cmocka_unit_test(test_links_and_paths),
        cmocka_unit_test(test_refs_and_load_lines),
        cmocka_unit_test(test_measure),
        cmocka_unit_test(test_jobnet),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
