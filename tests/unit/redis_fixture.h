/*
 * redis_fixture.h: a real redis-server for unit tests: started on a free
 * loopback port with no persistence (killed with the test process), and a
 * direct hiredis connection R for checks. Included by the tests that need
 * it (test_store.c, test_jobstate.c); each test binary has its own server.
 *
 *   redis_dir: set to a mkdtemp'd directory before redis_start()
 *   redis_start(): 0 once the server answers PING on redis_port
 *   redis_stop(sig): closes R and stops the server
 *   redis_reply(fmt, ...): a command on R; any reply (caller frees)
 *   redis_ok_reply(fmt, ...): the same, failing the test on an error reply
 *   redis_ok(fmt, ...): the same, reply freed
 * Include it after <cmocka.h>.
 */
#ifndef TANGO_TEST_REDIS_FIXTURE_H
#define TANGO_TEST_REDIS_FIXTURE_H

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdbool.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

static pid_t redis_pid = -1;
static int redis_port;
static char redis_dir[64];
static redisContext *R;         /* direct connection for checks */

/* ---- the Redis server ---- */

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) ||
        getsockname(fd, (struct sockaddr *)&a, &len)) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

/* Connects the direct context; 0 once Redis answers PING. */
static int direct_connect(void)
{
    if (R) {
        redisFree(R);
        R = NULL;
    }
    struct timeval tv = {0, 200000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", redis_port, tv);
    if (!c || c->err) {
        if (c)
            redisFree(c);
        return -1;
    }
    redisReply *r = redisCommand(c, "PING");
    int ok = r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
    if (r)
        freeReplyObject(r);
    if (!ok) {
        redisFree(c);
        return -1;
    }
    R = c;
    return 0;
}

static int redis_start(void)
{
    char port[16];
    snprintf(port, sizeof port, "%d", redis_port);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 0);
        dup2(devnull, 1);
        dup2(devnull, 2);
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1",
               "--save", "", "--appendonly", "no", "--dir", redis_dir, (char *)NULL);
        _exit(127);
    }
    redis_pid = pid;
    for (long deadline = now_ms() + 10000; now_ms() < deadline;) {
        if (direct_connect() == 0)
            return 0;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            redis_pid = -1;
            return -1;
        }
        usleep(20000);
    }
    return -1;
}

static void redis_stop(int sig)
{
    if (R) {
        redisFree(R);
        R = NULL;
    }
    if (redis_pid > 0) {
        kill(redis_pid, sig);
        waitpid(redis_pid, NULL, 0);
        redis_pid = -1;
    }
}

static redisReply *redis_vreply(bool must_succeed, const char *fmt, va_list ap)
{
    assert_non_null(R);
    redisReply *r = redisvCommand(R, fmt, ap);
    assert_non_null(r);
    if (must_succeed && r->type == REDIS_REPLY_ERROR)
        fail_msg("redis: %s", r->str);
    return r;
}

static inline redisReply *redis_reply(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redis_vreply(false, fmt, ap);
    va_end(ap);
    return r;
}

static inline redisReply *redis_ok_reply(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redis_vreply(true, fmt, ap);
    va_end(ap);
    return r;
}

static inline void redis_ok(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    freeReplyObject(redis_vreply(true, fmt, ap));
    va_end(ap);
}

#endif
