/*
 * test_proxy.c: common/netset.c (strict address parsing, address/CIDR sets)
 * and producer/proxy.c (which client a trusted balancer's X-Forwarded-For
 * names): the right-most untrusted entry wins, entries the client wrote
 * left of it are never read, anything malformed or too long among the
 * entries read means "use the peer". The layer's use of it (only from a
 * trusted peer, the per-client cap) is in test_http.c.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "netset.h"
#include "../../producer/proxy.h"

static struct netset *set_of(char **entries, size_t n)
{
    struct netset *s = NULL;
    char err[256];
    if (netset_new(entries, n, &s, err, sizeof err))
        fail_msg("set refused: %s", err);
    return s;
}

static bool parses(const char *text)
{
    unsigned char a[NETADDR_LEN];
    return netaddr_parse(text, strlen(text), a) == 0;
}

static const char *formatted(const char *text, char buf[NETADDR_TEXT_MAX])
{
    unsigned char a[NETADDR_LEN];
    assert_int_equal(netaddr_parse(text, strlen(text), a), 0);
    netaddr_format(a, buf);
    return buf;
}

static void test_addr_parse(void **state)
{
    (void)state;
    char buf[NETADDR_TEXT_MAX];
    assert_string_equal(formatted("192.0.2.7", buf), "192.0.2.7");
    assert_string_equal(formatted("::1", buf), "::1");
    assert_string_equal(formatted("2001:db8::5", buf), "2001:db8::5");
    assert_string_equal(formatted("::ffff:192.0.2.7", buf), "192.0.2.7"); /* mapped = IPv4 */
    const char *bad[] = {"", "1.2.3", "1.2.3.4.5", "01.2.3.4", "1.2.3.256", "127.1",
                         "0x7f.0.0.1", "1.2.3.4:80", "[::1]", "[::1]:80", "fe80::1%eth0",
                         " 1.2.3.4", "1.2.3.4 ", "unknown", "_hidden", "localhost",
                         "1.2.3.4/32", "2001:db8::5::1",
                         "1111:2222:3333:4444:5555:6666:7777:8888:9999"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (parses(bad[i]))
            fail_msg("\"%s\" parsed as an address", bad[i]);
    /* exactly len bytes: a NUL inside, or text past len, does not count */
    unsigned char a[NETADDR_LEN];
    assert_int_equal(netaddr_parse("1.2.3.4\0", 8, a), -1);
    assert_int_equal(netaddr_parse("1.2.3.4, 5.6.7.8", 7, a), 0);
    char longer[200];
    memset(longer, '1', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    assert_false(parses(longer));
}

/* Checks that the set holds each of in[] and none of out[] (n each). */
static void expect_members(const struct netset *s, const char *const *in, const char *const *out,
                           size_t n)
{
    unsigned char a[NETADDR_LEN];
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(netaddr_parse(in[i], strlen(in[i]), a), 0);
        if (!netset_contains(s, a))
            fail_msg("%s not in the set", in[i]);
        assert_int_equal(netaddr_parse(out[i], strlen(out[i]), a), 0);
        if (netset_contains(s, a))
            fail_msg("%s in the set", out[i]);
    }
}

static void test_set(void **state)
{
    (void)state;
    char *entries[] = {"10.1.0.0/16", "192.0.2.7", "fd00::/8", "::1"};
    struct netset *s = set_of(entries, 4);
    assert_int_equal(netset_size(s), 4);
    unsigned char a[NETADDR_LEN];
    const char *in[] = {"10.1.200.3", "192.0.2.7", "fd12::1", "::1", "::ffff:10.1.0.1"};
    const char *out[] = {"10.2.0.1", "192.0.2.8", "fe00::1", "::2", "1.2.3.4"};
    expect_members(s, in, out, 5);
    netset_free(s);
    /* prefix edge cases */
    char *all4[] = {"0.0.0.0/0"};
    s = set_of(all4, 1);
    assert_int_equal(netaddr_parse("203.0.113.9", 11, a), 0);
    assert_true(netset_contains(s, a));
    assert_int_equal(netaddr_parse("2001:db8::1", 11, a), 0);
    assert_false(netset_contains(s, a)); /* an IPv4 /0 holds no IPv6 address */
    netset_free(s);
    /* a prefix that ends inside a byte: only its bits count */
    char *partial[] = {"10.0.0.0/12", "fe80::/10"};
    s = set_of(partial, 2);
    const char *pin[] = {"10.15.255.255", "febf::1"}, *pout[] = {"10.16.0.0", "fec0::1"};
    expect_members(s, pin, pout, 2);
    netset_free(s);
    /* empty and NULL sets hold nothing */
    s = set_of(NULL, 0);
    assert_false(netset_contains(s, a));
    netset_free(s);
    assert_false(netset_contains(NULL, a));
    /* refusals name the entry */
    const char *bad[] = {"10.0.0.0/33", "10.0.0.0/", "10.0.0.0/08", "10.0.0.0/-1", "::/129",
                         "host.example", "10.0.0.0/8/8", "10.0.0.0 /8", "127.1", ""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char *e[] = {"192.0.2.1", (char *)bad[i]};
        char err[256] = "";
        struct netset *t = NULL;
        if (netset_new(e, 2, &t, err, sizeof err) == 0)
            fail_msg("entry \"%s\" accepted", bad[i]);
        assert_non_null(strstr(err, "entry 2"));
    }
}

/* The forwarded client for headers (NULL-terminated) behind trusted, as
 * text, or "peer" when there is none. */
static const char *client_of(const struct netset *trusted, const char **headers, char *buf)
{
    size_t n = 0;
    while (headers[n])
        n++;
    unsigned char a[NETADDR_LEN];
    if (!proxy_forwarded_client(trusted, headers, n, a))
        return "peer";
    netaddr_format(a, buf);
    return buf;
}

#define CLIENT(...) client_of(trusted, (const char *[]){__VA_ARGS__, NULL}, buf)

static void test_forwarded_client(void **state)
{
    (void)state;
    char *entries[] = {"10.0.0.0/24", "2001:db8::1"};
    struct netset *trusted = set_of(entries, 2);
    char buf[NETADDR_TEXT_MAX];
    /* the balancer's own entry, right-most */
    assert_string_equal(CLIENT("192.0.2.1"), "192.0.2.1");
    assert_string_equal(CLIENT("2001:db8::77"), "2001:db8::77");
    /* entries the client wrote (left) are not read: not even garbage spoils it */
    assert_string_equal(CLIENT("6.6.6.6, 192.0.2.1"), "192.0.2.1");
    assert_string_equal(CLIENT("garbage, <script>, 192.0.2.1"), "192.0.2.1");
    assert_string_equal(CLIENT("garbage", "192.0.2.1"), "192.0.2.1"); /* haproxy: own line */
    /* trusted hops on the right are skipped; OWS and tabs around entries */
    assert_string_equal(CLIENT("192.0.2.1,10.0.0.5", "2001:db8::1"), "192.0.2.1");
    assert_string_equal(CLIENT(" 192.0.2.1 ,\t10.0.0.5\t"), "192.0.2.1");
    /* every entry trusted: the left-most */
    assert_string_equal(CLIENT("10.0.0.7, 10.0.0.5"), "10.0.0.7");
    /* malformed where it is read: the peer */
    assert_string_equal(CLIENT("192.0.2.1, garbage"), "peer");
    assert_string_equal(CLIENT("192.0.2.1:5555"), "peer");
    assert_string_equal(CLIENT("[2001:db8::77]"), "peer");
    assert_string_equal(CLIENT("unknown"), "peer");
    assert_string_equal(CLIENT(""), "peer");
    assert_string_equal(CLIENT("192.0.2.1,"), "peer");
    assert_string_equal(CLIENT("192.0.2.1,,10.0.0.5"), "peer");
    assert_string_equal(CLIENT("192.0.2.1", "10.0.0.5, "), "peer");
    /* no header: the peer */
    assert_string_equal(client_of(trusted, (const char *[]){NULL}, buf), "peer");
    /* a huge header: only the right-most entries are read... */
    size_t big = 64 * 1024;
    char *huge = malloc(big + 64);
    huge[0] = '\0';
    size_t len = 0;
    while (len < big)
        len += (size_t)sprintf(huge + len, "9.9.9.%zu, ", len % 250);
    strcpy(huge + len, "192.0.2.1");
    assert_string_equal(CLIENT(huge), "192.0.2.1");
    /* ...and more than PROXY_MAX_HOPS trusted hops: the peer */
    len = 0;
    for (int i = 0; i < PROXY_MAX_HOPS; i++)
        len += (size_t)sprintf(huge + len, "10.0.0.%d, ", i + 1);
    strcpy(huge + len, "10.0.0.99");
    assert_string_equal(CLIENT(huge), "peer");
    free(huge);
    /* many header lines count their entries together */
    const char *lines[PROXY_MAX_HOPS + 2];
    for (int i = 0; i < PROXY_MAX_HOPS + 1; i++)
        lines[i] = "10.0.0.1";
    lines[PROXY_MAX_HOPS + 1] = NULL;
    assert_string_equal(client_of(trusted, lines, buf), "peer");
    lines[PROXY_MAX_HOPS] = NULL;
    assert_string_equal(client_of(trusted, lines, buf), "10.0.0.1");
    lines[0] = "192.0.2.9";
    assert_string_equal(client_of(trusted, lines, buf), "192.0.2.9");
    netset_free(trusted);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addr_parse),
        cmocka_unit_test(test_set),
        cmocka_unit_test(test_forwarded_client),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
