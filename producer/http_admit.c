/*
 * http_admit.c: the HTTP layer's connection and client caps. It owns the
 * counts per address (hash tables of struct ip_count): open connections
 * per peer address (max_connections in all, max_per_ip each) and, for a
 * trusted proxy's connections, requests in progress per client its
 * X-Forwarded-For names (proxy.h), under the same max_per_ip. http.c asks
 * it when a connection is adopted and when a request's head is complete,
 * and gives the counts back when they end. Owns who a request's client and
 * peer are (http_client, http_peer of http.h).
 */
#include "http_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <event2/keyvalq_struct.h>

#include "log.h"
#include "proxy.h"

/* The count for key in table (IP_BUCKETS slots), made (at 0) if missing. */
static struct ip_count *ip_get(struct ip_count **table, const unsigned char key[NETADDR_LEN])
{
    unsigned h = 2166136261u; /* FNV-1a */
    for (int i = 0; i < NETADDR_LEN; i++)
        h = (h ^ key[i]) * 16777619u;
    struct ip_count **slot = &table[h % IP_BUCKETS];
    for (struct ip_count *e = *slot; e; e = e->next)
        if (memcmp(e->addr, key, NETADDR_LEN) == 0)
            return e;
    struct ip_count *e = calloc(1, sizeof *e);
    memcpy(e->addr, key, NETADDR_LEN);
    e->bucket = h % IP_BUCKETS;
    e->next = *slot;
    *slot = e;
    return e;
}

void http_ip_put(struct ip_count **table, struct ip_count *e)
{
    if (!e || --e->n > 0)
        return;
    for (struct ip_count **p = &table[e->bucket]; *p; p = &(*p)->next)
        if (*p == e) {
            *p = e->next;
            free(e);
            return;
        }
}

void http_ip_table_free(struct ip_count **table)
{
    for (int b = 0; b < IP_BUCKETS; b++) /* empty once every connection is gone */
        while (table[b]) {
            struct ip_count *e = table[b];
            table[b] = e->next;
            free(e);
        }
}

bool http_peer_admit(struct http_server *srv, bool has_peer, const unsigned char addr[NETADDR_LEN],
                     const char *text, bool *via_proxy, struct ip_count **ip)
{
    if (srv->nconns >= srv->lim.max_connections) {
        log_warn("http_conn_refused", "reason=max_connections max=%d peer=%s",
                 srv->lim.max_connections, text);
        return false;
    }
    /* A trusted proxy's connections carry many clients: its requests are
     * counted per client instead (http_client_admit). */
    *via_proxy = has_peer && netset_contains(srv->lim.trusted_proxies, addr);
    *ip = srv->lim.max_per_ip > 0 && has_peer && !*via_proxy ? ip_get(srv->ips, addr) : NULL;
    if (*ip && (*ip)->n >= srv->lim.max_per_ip) {
        log_warn("http_conn_refused", "reason=max_connections_per_ip max=%d peer=%s",
                 srv->lim.max_per_ip, text);
        return false;
    }
    if (*ip)
        (*ip)->n++;
    return true;
}

bool http_client_admit(struct http_conn *c, struct http_request *r)
{
    snprintf(r->client, sizeof r->client, "%s", c->peer_text);
    if (!c->via_proxy)
        return true;
    size_t n = 0;
    struct evkeyval *kv;
    TAILQ_FOREACH(kv, &r->msg.headers, next)
        n += strcasecmp(kv->key, "X-Forwarded-For") == 0;
    const char **values = calloc(n ? n : 1, sizeof *values);
    size_t i = 0;
    TAILQ_FOREACH(kv, &r->msg.headers, next)
        if (strcasecmp(kv->key, "X-Forwarded-For") == 0)
            values[i++] = kv->value;
    unsigned char client[NETADDR_LEN];
    if (proxy_forwarded_client(c->srv->lim.trusted_proxies, values, n, client))
        netaddr_format(client, r->client);
    else
        memcpy(client, c->peer, NETADDR_LEN);
    free(values);
    if (c->srv->lim.max_per_ip <= 0)
        return true;
    struct ip_count *e = ip_get(c->srv->clients, client);
    if (e->n >= c->srv->lim.max_per_ip) {
        log_warn("http_client_refused", "reason=max_connections_per_ip max=%d client=%s peer=%s",
                 c->srv->lim.max_per_ip, r->client, c->peer_text);
        return false;
    }
    e->n++;
    r->client_count = e;
    return true;
}

const char *http_client(const struct http_request *req)
{
    return req->client[0] ? req->client : req->conn->peer_text;
}

const char *http_peer(const struct http_request *req)
{
    return req->conn->peer_text;
}
