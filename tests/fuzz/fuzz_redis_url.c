/* fuzz_redis_url.c: libFuzzer harness for config key redis_url
 * (common/redis_url.c redis_url_parse, both redis:// and
 * redis-sentinel://). A URL that parses must give a usable target (ports
 * 1..65535, db 0..1000, 1..REDIS_SENTINELS_MAX sentinels with a master
 * name for the sentinel form); a refusal must say why and never repeat the
 * password. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "redis_url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *url = fuzz_cstr(data, size);
    struct redis_target t;
    char err[512] = "";
    if (redis_url_parse(url, &t, err, sizeof err) == 0) {
        if (t.db < 0 || t.db > 1000)
            abort();
        if (t.sentinel) {
            if (t.nsentinels < 1 || t.nsentinels > REDIS_SENTINELS_MAX || t.master[0] == '\0')
                abort();
            for (int i = 0; i < t.nsentinels; i++)
                if (t.sentinels[i].port < 1 || t.sentinels[i].port > 65535 ||
                    t.sentinels[i].host[0] == '\0')
                    abort();
        } else if (t.port < 1 || t.port > 65535 || t.host[0] == '\0') {
            abort();
        }
    } else {
        if (err[0] == '\0' || strstr(err, "redis_url") == NULL)
            abort(); /* a refusal names the key and its reason */
        /* the password (between "//:" or "user:" and the last '@') is never
         * repeated: check the common form "scheme://:PASSWORD@..." */
        const char *s = strstr(url, "://:");
        const char *at = s ? strrchr(s, '@') : NULL;
        if (s && at && at - (s + 4) >= 8) {
            char pw[300];
            size_t n = (size_t)(at - (s + 4));
            if (n < sizeof pw) {
                memcpy(pw, s + 4, n);
                pw[n] = '\0';
                /* an error that quotes the password also quotes another
                 * one put in its place (the message's own words, which may
                 * happen to match, do not change) */
                if (strstr(err, pw)) {
                    char *other = strdup(url);
                    char q[300];
                    memset(q, 'Q', n);
                    q[n] = '\0';
                    memset(other + (s + 4 - url), 'Q', n);
                    struct redis_target t2;
                    char err2[512] = "";
                    if (redis_url_parse(other, &t2, err2, sizeof err2) != 0 && strstr(err2, q))
                        abort();
                    free(other);
                }
            }
        }
    }
    free(url);
    return 0;
}
