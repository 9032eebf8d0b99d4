/*
 * init.c: the start of every plugin's init (grading.h, vmms_init_check):
 * the prefix check and libcurl's one global set-up.
 */
#include <pthread.h>

#include <curl/curl.h>

#include "common/grading.h"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_rc;

static void curl_init(void)
{
    curl_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int vmms_init_check(const char *plugin, const char *prefix, bool curl, char *err, size_t errlen)
{
    if (prefix == NULL || !vmms_name_ok(prefix, 64))
        return vmms_fail(err, errlen, VMMS_ERR, "%s: bad prefix: it must be 1..63 letters, "
                         "digits, '_', '.', '-'", plugin);
    if (!curl)
        return VMMS_OK;
    pthread_once(&curl_once, curl_init);
    if (curl_rc != CURLE_OK)
        return vmms_fail(err, errlen, VMMS_ERR, "%s: curl_global_init failed: %s", plugin,
                         curl_easy_strerror(curl_rc));
    return VMMS_OK;
}
