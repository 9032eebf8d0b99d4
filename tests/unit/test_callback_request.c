/*
 * test_callback_request.c: consumer/callback_request.c: the host key the
 * per-host limits go by (host:port, lower case, the scheme's port by
 * default; never the path or query), the headers of a callback (Filename
 * and the dedupe headers; an id unfit for a header left out), and an
 * output file that cannot be read.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../consumer/callback_request.h"

static void hosts(const char *url, const char *want_log, const char *want_key)
{
    char log[256], key[320];
    cb_url_hosts(url, log, sizeof log, key, sizeof key);
    if (strcmp(log, want_log) != 0 || strcmp(key, want_key) != 0)
        fail_msg("%s: got %s / %s, want %s / %s", url, log, key, want_log, want_key);
}

static void test_host_keys(void **state)
{
    (void)state;
    hosts("http://Autolab.Example.EDU/courses/x/cb?key=secret", "Autolab.Example.EDU",
          "autolab.example.edu:80");
    hosts("https://autolab.example.edu/cb", "autolab.example.edu", "autolab.example.edu:443");
    hosts("http://127.0.0.1:8000/cb/1", "127.0.0.1", "127.0.0.1:8000");
    hosts("http://[::1]:9000/", "[::1]", "[::1]:9000");
    hosts("not a url", "?", "?");
    hosts("", "?", "?");
}

static int has_header(const struct curl_slist *h, const char *line)
{
    for (; h; h = h->next)
        if (strcmp(h->data, line) == 0)
            return 1;
    return 0;
}

static void test_headers(void **state)
{
    (void)state;
    char path[] = "/tmp/test_callback_request_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "grade\n", 6), 6);
    close(fd);
    struct cb_request_spec spec = {.url = "http://127.0.0.1:9/cb", .pin = "", .path = path,
                                   .name = "out.txt", .job = 42, .id = "42-7", .attempt = 3,
                                   .connect_timeout_ms = 1000, .timeout_ms = 5000};
    struct cb_request req;
    char err[200] = "";
    assert_int_equal(cb_request_init(&req, &spec, err, sizeof err), 0);
    assert_true(has_header(req.headers, "Filename: out.txt"));
    assert_true(has_header(req.headers, "X-Tango-Job-Id: 42"));
    assert_true(has_header(req.headers, "X-Tango-Callback-Id: 42-7"));
    assert_true(has_header(req.headers, "X-Tango-Callback-Attempt: 3"));
    cb_request_free(&req);
    /* an id that could break the header is left out, the rest stays */
    spec.id = "42\r\nX-Evil: 1";
    assert_int_equal(cb_request_init(&req, &spec, err, sizeof err), 0);
    for (const struct curl_slist *h = req.headers; h; h = h->next)
        assert_null(strstr(h->data, "Evil"));
    assert_true(has_header(req.headers, "X-Tango-Job-Id: 42"));
    cb_request_free(&req);
    unlink(path);
    /* no output file: refused before any request */
    assert_int_equal(cb_request_init(&req, &spec, err, sizeof err), -1);
    assert_string_equal(err, "cannot read output file");
    assert_null(req.easy);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_host_keys),
        cmocka_unit_test(test_headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
