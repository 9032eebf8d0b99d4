/* fuzz_docker.c: libFuzzer harness for the Docker API replies the
 * localDocker plugin parses (vmms/localDocker: container and exec inspect
 * JSON, container and image lists, the exec attach stream demultiplexer,
 * the events stream, container create answers), driven through the
 * plugin's public operations (vmms_plugin in vmms.h) against a fake Docker
 * daemon on a Unix socket in this process.
 *
 * Input: byte 0 picks the operation (get_images, get_vms,
 * get_partial_output, attach_job, start_job, initialize_vm, destroy_vm);
 * the rest is a list of replies separated by "--next--". The n-th request
 * Docker gets during the operation is answered with the n-th reply: its
 * byte 0 picks the HTTP status, byte 1 the content type, the rest is the
 * body (sent with a Content-Length). Requests past the last reply get 404,
 * which ends every polling loop of the plugin at once (a 409 on DELETE, for
 * one, makes it poll until the container is gone).
 * /_ping and the jobs' network inspect (made once, at init) get fixed
 * answers. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "log.h"
#include "vmms.h"

extern const struct vmms_ops vmms_plugin;

#define SEP "--next--"
#define MAX_REPLIES 16
#define HEAD_MAX 65536

static void *plugin;

/* The replies of the current input, in a copy of it that only the next
 * input replaces (a late request of the last operation may still read it);
 * all guarded by lock. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uint8_t *script;
static const uint8_t *reply_at[MAX_REPLIES];
static size_t reply_len[MAX_REPLIES];
static size_t nreplies, next_reply;

/* 204 is sent without a body, as HTTP requires. */
static const int statuses[] = {200, 201, 204, 404, 409, 500};
static const char *const types[] = {"application/json", "application/vnd.docker.raw-stream",
                                    "application/vnd.docker.multiplexed-stream", "text/plain"};

static int write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int send_reply(int fd, int status, const char *type, const void *body, size_t len)
{
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d Fuzz\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Api-Version: 1.41\r\n\r\n", status, type, len);
    return write_all(fd, head, (size_t)n) < 0 || write_all(fd, body, len) < 0 ? -1 : 0;
}

/* Answers one request whose head is in head (path after the method). */
static int answer(int fd, const char *head)
{
    const char *path = strchr(head, ' ');
    path = path ? path + 1 : "";
    if (strncmp(path, "/v1.41", 6) == 0)
        path += 6;
    if (strncmp(path, "/_ping", 6) == 0)
        return send_reply(fd, 200, "text/plain", "OK", 2);
    if (strncmp(path, "/networks/tango-jobs", 20) == 0) {
        static const char net[] =
            "{\"Name\":\"tango-jobs\",\"Id\":\"0123456789abcdef0123\",\"Driver\":\"bridge\","
            "\"Options\":{\"com.docker.network.bridge.enable_icc\":\"false\","
            "\"com.docker.network.bridge.name\":\"tango-jobs\"}}";
        return send_reply(fd, 200, "application/json", net, sizeof net - 1);
    }
    pthread_mutex_lock(&lock);
    const uint8_t *r = NULL;
    size_t len = 0;
    if (next_reply < nreplies) {
        r = reply_at[next_reply];
        len = reply_len[next_reply];
        next_reply++;
    }
    if (!r || len < 2) {
        pthread_mutex_unlock(&lock);
        return send_reply(fd, 404, "application/json", "{\"message\":\"No such thing\"}",
                          26);
    }
    int status = statuses[r[0] % (sizeof statuses / sizeof statuses[0])];
    int rc = send_reply(fd, status, types[r[1] % (sizeof types / sizeof types[0])], r + 2,
                        status == 204 ? 0 : len - 2);
    pthread_mutex_unlock(&lock);
    return rc;
}

/* One client connection: requests in turn (keep-alive), bodies skipped. */
static void *serve(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char *buf = malloc(HEAD_MAX);
    size_t have = 0;
    for (;;) {
        char *end;
        buf[have] = '\0';
        while (!(end = strstr(buf, "\r\n\r\n"))) {
            if (have + 1 >= HEAD_MAX)
                goto out;
            ssize_t n = read(fd, buf + have, HEAD_MAX - 1 - have);
            if (n <= 0)
                goto out;
            have += (size_t)n;
            buf[have] = '\0';
        }
        size_t head_len = (size_t)(end - buf) + 4;
        size_t body = 0;
        const char *cl = strcasestr(buf, "\r\nContent-Length:");
        if (cl && cl < end)
            body = strtoul(cl + 17, NULL, 10);
        end[2] = '\0';
        if (answer(fd, buf) < 0)
            goto out;
        /* drop the body (what is already read of it first) */
        size_t extra = have - head_len;
        size_t skip = body < extra ? body : extra;
        memmove(buf, buf + head_len + skip, extra - skip);
        have = extra - skip;
        body -= skip;
        while (body > 0) {
            char tmp[4096];
            ssize_t n = read(fd, tmp, body < sizeof tmp ? body : sizeof tmp);
            if (n <= 0)
                goto out;
            body -= (size_t)n;
        }
    }
out:
    free(buf);
    close(fd);
    return NULL;
}

static void *listener(void *arg)
{
    int ls = (int)(intptr_t)arg;
    for (;;) {
        int fd = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        pthread_t t;
        if (pthread_create(&t, NULL, serve, (void *)(intptr_t)fd) != 0) {
            close(fd);
            continue;
        }
        pthread_detach(t);
    }
    return NULL;
}

/* The plugin's pauses between polls (clock_sleep_ms) are skipped: the
 * harness is linked with -Wl,--wrap=clock_sleep_ms (Makefile), so the
 * plugin's calls land here. Every polling loop still ends, on its deadline
 * or at the first 404 once the replies run out, but without sleeping. */
void __wrap_clock_sleep_ms(long ms);
void __wrap_clock_sleep_ms(long ms)
{
    (void)ms;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_init("fuzz", LOG_ERROR);
    char sock[PATH_MAX], vols[PATH_MAX], err[512];
    snprintf(sock, sizeof sock, "%s/docker.sock", fuzz_tmpdir());
    snprintf(vols, sizeof vols, "%s/volumes", fuzz_tmpdir());
    int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock);
    if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(ls, 64) < 0)
        abort();
    pthread_t t;
    if (pthread_create(&t, NULL, listener, (void *)(intptr_t)ls) != 0)
        abort();
    pthread_detach(t);
    json_t *cfg = json_pack("{s:s, s:s, s:b, s:i}", "socket", sock, "volume_dir", vols,
                            "host_firewall", 0, "api_timeout_s", 5);
    if (!cfg || vmms_plugin.init(cfg, "fz-", &plugin, err, sizeof err) != VMMS_OK) {
        fprintf(stderr, "fuzz_docker: plugin init failed: %s\n", err);
        abort();
    }
    json_decref(cfg);
    return 0;
}

static void on_vm(const char *name, const char *id, const char *image, bool running,
                  void *arg)
{
    (void)running;
    (void)arg;
    if (!name || !id || !image) /* the contract: every string is there */
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    int op = data[0];
    data++;
    size--;
    pthread_mutex_lock(&lock);
    free(script);
    script = malloc(size ? size : 1);
    if (!script)
        abort();
    memcpy(script, data, size);
    data = script;
    nreplies = next_reply = 0;
    while (nreplies < MAX_REPLIES) {
        const uint8_t *sep = memmem(data, size, SEP, sizeof SEP - 1);
        size_t len = sep ? (size_t)(sep - data) : size;
        reply_at[nreplies] = data;
        reply_len[nreplies++] = len;
        if (!sep)
            break;
        data += len + sizeof SEP - 1;
        size -= len + sizeof SEP - 1;
    }
    pthread_mutex_unlock(&lock);

    struct vmms_vm vm = {.name = "fz-j1-1", .image = "autograding_image", .id = "0123456789ab",
                         .cores = 1, .memory_mb = 256, .pids_limit = 64, .disk_mb = 64,
                         .network = false};
    char err[1024];
    switch (op % 7) {
    case 0: {
        char **names = NULL;
        size_t n = 0;
        if (vmms_plugin.get_images(plugin, &names, &n, err, sizeof err) == VMMS_OK) {
            for (size_t i = 0; i < n; i++)
                if (!names[i])
                    abort();
            vmms_free_names(names, n);
        }
        break;
    }
    case 1:
        vmms_plugin.get_vms(plugin, on_vm, NULL, err, sizeof err);
        break;
    case 2: {
        char *out = NULL;
        size_t len = 0;
        if (vmms_plugin.get_partial_output(plugin, &vm, 4096, &out, &len, err, sizeof err) ==
                VMMS_OK && len > 4096)
            abort(); /* never more than asked for */
        free(out);
        break;
    }
    case 3: {
        int status;
        vmms_plugin.attach_job(plugin, &vm, "0123456789abcdef", 200, &status, err, sizeof err);
        break;
    }
    case 4: {
        struct vmms_run run = {.timeout_s = 5, .max_output = 1024, .nproc = 64, .fsize = 1024};
        char handle[128];
        vmms_plugin.start_job(plugin, &vm, &run, handle, sizeof handle, err, sizeof err);
        break;
    }
    case 5:
        vm.id[0] = '\0';
        if (vmms_plugin.initialize_vm(plugin, &vm, err, sizeof err) == VMMS_OK)
            vmms_plugin.destroy_vm(plugin, &vm, err, sizeof err);
        break;
    default:
        vmms_plugin.destroy_vm(plugin, &vm, err, sizeof err);
        break;
    }
    return 0;
}
