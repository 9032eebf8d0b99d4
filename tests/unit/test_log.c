/*
 * test_log.c: common/log.c: log_quote (quoting, escaping, truncation),
 * log_level_parse, and log_event's one line per event on stderr (captured
 * by pointing fd 2 at a temporary file).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdbool.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/* ---- capturing stderr ---- */

static FILE *cap;
static int saved_fd = -1;

static void capture_start(void)
{
    cap = tmpfile();
    assert_non_null(cap);
    fflush(stderr);
    saved_fd = dup(STDERR_FILENO);
    assert_true(saved_fd >= 0);
    assert_int_equal(dup2(fileno(cap), STDERR_FILENO), STDERR_FILENO);
}

/* Restores stderr and returns everything written (malloc'd), *len set. */
static char *capture_end(size_t *len)
{
    fflush(stderr);
    assert_int_equal(dup2(saved_fd, STDERR_FILENO), STDERR_FILENO);
    close(saved_fd);
    saved_fd = -1;
    assert_int_equal(fseek(cap, 0, SEEK_END), 0);
    long size = ftell(cap);
    assert_true(size >= 0);
    rewind(cap);
    char *buf = malloc((size_t)size + 1);
    size_t n = fread(buf, 1, (size_t)size, cap);
    buf[n] = '\0';
    fclose(cap);
    cap = NULL;
    *len = n;
    return buf;
}

static int count_char(const char *s, size_t len, char c)
{
    int n = 0;
    for (size_t i = 0; i < len; i++)
        n += s[i] == c;
    return n;
}

static void assert_matches(const char *s, const char *pattern)
{
    regex_t re;
    assert_int_equal(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0);
    int rc = regexec(&re, s, 0, NULL, 0);
    regfree(&re);
    if (rc != 0)
        fail_msg("\"%s\" does not match /%s/", s, pattern);
}

#define TS "ts=[0-9]{4}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9]\\.[0-9]{3}Z"

/* ---- log_quote ---- */

static void quote_is(const char *in, const char *want)
{
    char buf[256];
    memset(buf, '#', sizeof buf);
    const char *r = log_quote(in, buf, sizeof buf);
    assert_ptr_equal(r, buf);
    assert_string_equal(buf, want);
}

static void test_quote_cases(void **state)
{
    (void)state;
    quote_is("plain", "plain");
    quote_is("job-5_x.txt:7", "job-5_x.txt:7");
    quote_is("caf\xc3\xa9", "caf\xc3\xa9");
    quote_is("two words", "\"two words\"");
    quote_is(" ", "\" \"");
    quote_is("a=b", "\"a=b\"");
    quote_is("say \"hi\"", "\"say \\\"hi\\\"\"");
    quote_is("\"", "\"\\\"\"");
    quote_is("", "\"\"");
    quote_is("line1\nline2", "\"line1\\x0aline2\"");
    quote_is("tab\there", "\"tab\\x09here\"");
    quote_is("cr\r", "\"cr\\x0d\"");
    quote_is("\x1b[31m", "\"\\x1b[31m\"");
    quote_is("del\x7f", "\"del\\x7f\"");
    quote_is("\x01", "\"\\x01\"");
    /* A backslash is escaped, and so the value is quoted. */
    quote_is("C:\\dir", "\"C:\\\\dir\"");
    /* A forged field cannot appear: "x level=error" stays one value. */
    quote_is("x level=error", "\"x level=error\"");
}

/* The escaped form of each input byte, as log_quote writes it. */
static void escape_tokens(const char *s, char tok[][8], size_t *n)
{
    *n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++, (*n)++) {
        if (*p == '"' || *p == '\\')
            snprintf(tok[*n], 8, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            snprintf(tok[*n], 8, "\\x%02x", *p);
        else
            snprintf(tok[*n], 8, "%c", *p);
    }
}

static void check_truncated(const char *in)
{
    char tok[64][8];
    size_t ntok;
    escape_tokens(in, tok, &ntok);
    char big[512];
    log_quote(in, big, sizeof big);
    bool quoted = big[0] == '"';
    for (size_t bufsz = 0; bufsz <= strlen(big) + 8; bufsz++) {
        char buf[600];
        memset(buf, '#', sizeof buf);
        log_quote(in, buf, bufsz);
        /* Nothing written past bufsz. */
        for (size_t k = bufsz; k < sizeof buf; k++)
            if (buf[k] != '#')
                fail_msg("\"%s\" bufsz %zu: wrote byte %zu", in, bufsz, k);
        if (bufsz == 0)
            continue;
        size_t len = strnlen(buf, bufsz);
        if (len >= bufsz)
            fail_msg("\"%s\" bufsz %zu: not NUL-terminated", in, bufsz);
        /* Quotes come in pairs, or not at all. */
        const char *body = buf;
        size_t blen = len;
        if (quoted && len >= 2) {
            assert_int_equal(buf[0], '"');
            assert_int_equal(buf[len - 1], '"');
            body = buf + 1;
            blen = len - 2;
        } else {
            assert_true(len == 0 || !quoted);
        }
        /* The body is the escapes of a prefix of the input: no escape is cut. */
        char want[512] = "";
        size_t wl = 0;
        bool ok = blen == 0;
        for (size_t t = 0; t < ntok && wl < blen; t++) {
            wl += (size_t)snprintf(want + wl, sizeof want - wl, "%s", tok[t]);
            if (wl == blen)
                ok = true;
        }
        if (!ok || memcmp(body, want, blen) != 0)
            fail_msg("\"%s\" bufsz %zu: \"%s\" is not a cut at an escape boundary", in, bufsz,
                     buf);
    }
    /* Big enough: the whole value. */
    char buf[600];
    log_quote(in, buf, strlen(big) + 6);
    assert_string_equal(buf, big);
}

static void test_quote_truncation_at_boundaries(void **state)
{
    (void)state;
    check_truncated("abcdefghijklmnopqrstuvwxyz");
    check_truncated("a b c d e f g h i j k");
    check_truncated("\n\n\n\n\n\n\n\n\n\n");
    check_truncated("x\"y\"z\"w\"v\"");
    check_truncated("k=v=w=x=y=z");
    check_truncated("\\\\\\\\");
    check_truncated("");
    /* Tiny buffers: never a lone quote. */
    char buf[4];
    memset(buf, '#', sizeof buf);
    log_quote("a b", buf, 1);
    assert_string_equal(buf, "");
    log_quote("a b", buf, 2);
    assert_string_equal(buf, "");
    log_quote("a b", buf, 3);
    assert_string_equal(buf, "\"\"");
    log_quote("", buf, 3);
    assert_string_equal(buf, "\"\"");
    memset(buf, '#', sizeof buf);
    log_quote("abc", buf, 0);
    assert_int_equal(buf[0], '#');
    /* A plain value cut short is still a prefix. */
    char b8[8];
    log_quote("abcdefghij", b8, sizeof b8);
    assert_int_equal(strncmp(b8, "abcdefghij", strlen(b8)), 0);
    assert_true(strlen(b8) >= 1 && strlen(b8) < sizeof b8);
}

/* ---- log_level_parse ---- */

static void test_level_parse(void **state)
{
    (void)state;
    assert_int_equal(log_level_parse("debug"), LOG_DEBUG);
    assert_int_equal(log_level_parse("info"), LOG_INFO);
    assert_int_equal(log_level_parse("warn"), LOG_WARN);
    assert_int_equal(log_level_parse("error"), LOG_ERROR);
    assert_int_equal(log_level_parse("warning"), -1);
    assert_int_equal(log_level_parse("INFO"), -1);
    assert_int_equal(log_level_parse("info "), -1);
    assert_int_equal(log_level_parse(""), -1);
    assert_int_equal(log_level_parse("trace"), -1);
}

/* ---- log_event ---- */

static void test_event_line(void **state)
{
    (void)state;
    log_init("testcomp", LOG_INFO);
    char q[64];
    time_t before = time(NULL);
    capture_start();
    log_info("job_added", "id=%d name=%s", 5, log_quote("a b", q, sizeof q));
    size_t len;
    char *out = capture_end(&len);
    time_t after = time(NULL);
    assert_matches(out, "^" TS " level=info comp=testcomp event=job_added id=5 name=\"a b\"\n$");
    assert_int_equal(count_char(out, len, '\n'), 1);
    /* The timestamp is now, in UTC. */
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    assert_non_null(strptime(out + 3, "%Y-%m-%dT%H:%M:%S", &tm));
    time_t ts = timegm(&tm);
    assert_true(ts >= before && ts <= after);
    free(out);
}

static void test_event_levels(void **state)
{
    (void)state;
    log_init("consumer", LOG_WARN);
    capture_start();
    log_debug("d", "x=%d", 1);
    log_info("i", "x=%d", 2);
    log_warn("w", "x=%d", 3);
    log_error("e", "x=%d", 4);
    size_t len;
    char *out = capture_end(&len);
    assert_int_equal(count_char(out, len, '\n'), 2);
    char *nl = strchr(out, '\n');
    *nl = '\0';
    assert_matches(out, "^" TS " level=warn comp=consumer event=w x=3$");
    assert_matches(nl + 1, "^" TS " level=error comp=consumer event=e x=4\n$");
    free(out);

    log_init("producer", LOG_DEBUG);
    capture_start();
    log_debug("dbg", "k=%s", "v");
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-zero-length"
    log_info("bare", "");
#pragma GCC diagnostic pop
    out = capture_end(&len);
    nl = strchr(out, '\n');
    assert_non_null(nl);
    *nl = '\0';
    assert_matches(out, "^" TS " level=debug comp=producer event=dbg k=v$");
    /* No fields: no trailing space. */
    assert_matches(nl + 1, "^" TS " level=info comp=producer event=bare\n$");
    free(out);

    log_init("producer", LOG_ERROR);
    capture_start();
    log_warn("quiet", "x=%d", 1);
    out = capture_end(&len);
    assert_int_equal(len, 0);
    free(out);
}

static void test_event_long_message(void **state)
{
    (void)state;
    log_init("producer", LOG_INFO);
    char *big = malloc(5001);
    memset(big, 'x', 5000);
    big[5000] = '\0';
    capture_start();
    log_info("big", "msg=%s", big);
    log_info("after", "ok=%d", 1);
    size_t len;
    char *out = capture_end(&len);
    assert_int_equal(count_char(out, len, '\n'), 2);
    char *nl = strchr(out, '\n');
    size_t l1 = (size_t)(nl - out) + 1;
    assert_int_equal(l1, 2047); /* cut to the 2048-byte line buffer, newline kept */
    *nl = '\0';
    assert_matches(out, "^" TS " level=info comp=producer event=big msg=x+$");
    assert_matches(nl + 1, "^" TS " level=info comp=producer event=after ok=1\n$");
    free(out);

    /* An absurdly long event name: still one terminated line. */
    capture_start();
    log_info(big, "k=%s", "v");
    out = capture_end(&len);
    assert_int_equal(count_char(out, len, '\n'), 1);
    assert_int_equal(out[len - 1], '\n');
    assert_true(len < 2048);
    assert_int_equal(strncmp(out, "ts=", 3), 0);
    free(out);
    free(big);
}

#define NTHREADS 4
#define NLINES 200

static void *writer(void *arg)
{
    long t = (long)arg;
    char pad[1500];
    memset(pad, 'a' + (int)t, sizeof pad - 1);
    pad[sizeof pad - 1] = '\0';
    for (int i = 0; i < NLINES; i++)
        log_info("mt", "t=%ld i=%d pad=%s", t, i, pad);
    return NULL;
}

static void test_event_threads_do_not_interleave(void **state)
{
    (void)state;
    log_init("producer", LOG_INFO);
    capture_start();
    pthread_t th[NTHREADS];
    for (long t = 0; t < NTHREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, writer, (void *)t), 0);
    for (int t = 0; t < NTHREADS; t++)
        pthread_join(th[t], NULL);
    size_t len;
    char *out = capture_end(&len);
    assert_int_equal(count_char(out, len, '\n'), NTHREADS * NLINES);
    int seen[NTHREADS] = {0};
    char *save = NULL;
    for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        long t;
        int i;
        char *p = strstr(line, " event=mt t=");
        assert_non_null(p);
        assert_int_equal(sscanf(p, " event=mt t=%ld i=%d", &t, &i), 2);
        assert_true(t >= 0 && t < NTHREADS);
        char *pad = strstr(p, "pad=");
        assert_non_null(pad);
        pad += 4;
        assert_int_equal(strlen(pad), 1499);
        for (size_t k = 0; k < 1499; k++)
            if (pad[k] != 'a' + t)
                fail_msg("line of thread %ld is mixed", t);
        seen[t]++;
    }
    for (int t = 0; t < NTHREADS; t++)
        assert_int_equal(seen[t], NLINES);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quote_cases),
        cmocka_unit_test(test_quote_truncation_at_boundaries),
        cmocka_unit_test(test_level_parse),
        cmocka_unit_test(test_event_line),
        cmocka_unit_test(test_event_levels),
        cmocka_unit_test(test_event_long_message),
        cmocka_unit_test(test_event_threads_do_not_interleave),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
