/*
 * test_jobnet_fw.c: the jobs' firewall script of common/jobnet_fw.c (what
 * each back end installs, in which order, names checked) and the reader of
 * /proc/net/route that finds the uplinks.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "jobnet.h"

static char script[JOBNET_SCRIPT_MAX];

static const char *after(const char *hay, const char *needle)
{
    const char *p = strstr(hay, needle);
    return p ? p + strlen(needle) : NULL;
}

static void test_docker_mode(void **state)
{
    (void)state;
    struct jobnet_fw fw = {.input = true};
    strcpy(fw.bridge, "tango-jobs");
    assert_int_equal(jobnet_fw_script(&fw, script, sizeof script), 0);
    assert_non_null(strstr(script, "'-A TANGO-tango-jobs -i tango-jobs -m conntrack --ctstate "
                                   "DNAT -j DROP'"));
    assert_non_null(strstr(script, "-d 169.254.0.0/16 -j DROP"));
    assert_non_null(strstr(script, "-d fe80::/10 -j DROP"));
    assert_non_null(strstr(script, "-d fd00:ec2::254/128 -j DROP"));
    assert_non_null(strstr(script, "iptables -w 5 -t mangle -I FORWARD -j 'TANGO-tango-jobs'"));
    assert_non_null(strstr(script, "ip6tables -w 5 -I 'INPUT' '-i' 'tango-jobs'"));
    /* Docker's own rules decide the rest: no RETURN, no catch-all DROP */
    assert_null(strstr(script, "RETURN"));
    assert_null(strstr(script, "-i tango-jobs -j DROP"));
    fw.input = false;
    assert_int_equal(jobnet_fw_script(&fw, script, sizeof script), 0);
    assert_null(strstr(script, "INPUT"));
}

static void test_owned_mode_order(void **state)
{
    (void)state;
    struct jobnet_fw fw = {.owned = true, .nuplinks = 2};
    strcpy(fw.bridge, "tango-oci0");
    strcpy(fw.uplinks[0], "eth0");
    strcpy(fw.uplinks[1], "ens5");
    assert_int_equal(jobnet_fw_script(&fw, script, sizeof script), 0);
    const char *drop_ll = strstr(script, "-d 169.254.0.0/16 -j DROP");
    const char *ret0 = strstr(script, "-i tango-oci0 -o eth0 -j RETURN");
    const char *ret1 = strstr(script, "-i tango-oci0 -o ens5 -j RETURN");
    const char *all = strstr(script, "-i tango-oci0 -j DROP");
    assert_non_null(drop_ll);
    assert_non_null(ret0);
    assert_non_null(ret1);
    assert_non_null(all);
    assert_true(drop_ll < ret0 && ret0 < ret1 && ret1 < all); /* drops before RETURNs */
    assert_non_null(after(script, "--ctstate ESTABLISHED,RELATED -j RETURN' '-A TANGO-tango-oci0"
                                  " -o tango-oci0 -j DROP'"));
    /* IPv6: nothing of the bridge's passes (IPv6 is off on it) */
    const char *v6 = strstr(script, "need ip6tables");
    assert_non_null(v6);
    assert_null(strstr(v6, "RETURN"));
}

static void test_names_checked(void **state)
{
    (void)state;
    struct jobnet_fw fw = {.owned = true, .nuplinks = 1};
    strcpy(fw.bridge, "br';reboot");
    strcpy(fw.uplinks[0], "eth0");
    assert_int_equal(jobnet_fw_script(&fw, script, sizeof script), -1);
    strcpy(fw.bridge, "tango-oci0");
    strcpy(fw.uplinks[0], "$(x)");
    assert_int_equal(jobnet_fw_script(&fw, script, sizeof script), -1);
    strcpy(fw.uplinks[0], "eth0");
    fw.nuplinks = JOBNET_UPLINKS_MAX + 1;
    assert_int_equal(jobnet_fw_script(&fw, script, sizeof script), -1);
    fw.nuplinks = 1;
    assert_int_equal(jobnet_fw_script(&fw, script, 100), -1); /* does not fit */
}

static void test_default_uplinks(void **state)
{
    (void)state;
    const char *route =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
        "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
        "docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n"
        "eth0\t00000000\t020200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
        "wg0\t00000000\t00000000\t0001\t0\t0\t50\t00000000\t0\t0\t0\n"
        "down0\t00000000\t00000000\t0000\t0\t0\t0\t00000000\t0\t0\t0\n"
        "bad;name\t00000000\t00000000\t0001\t0\t0\t0\t00000000\t0\t0\t0\n";
    char up[JOBNET_UPLINKS_MAX][JOBNET_IFNAME_MAX + 1];
    assert_int_equal(jobnet_default_uplinks(route, up, JOBNET_UPLINKS_MAX), 2);
    assert_string_equal(up[0], "eth0");
    assert_string_equal(up[1], "wg0");
    assert_int_equal(jobnet_default_uplinks(route, up, 1), 1);
    assert_int_equal(jobnet_default_uplinks("Iface\tDestination\n", up, 8), 0);
    assert_int_equal(jobnet_default_uplinks("", up, 8), 0);
    assert_int_equal(jobnet_default_uplinks(NULL, up, 8), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_docker_mode),
        cmocka_unit_test(test_owned_mode_order),
        cmocka_unit_test(test_names_checked),
        cmocka_unit_test(test_default_uplinks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
