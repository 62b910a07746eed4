
/*
 * Copyright (C) The ngx_http_momo_module developers
 *
 * momo_metrics: the counters of the momo zone in the Prometheus text
 * format 0.0.4.  Counts and timings only: no token, key, API user or
 * reference id is ever printed.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_momo_module.h"


/* longest sample line, numbers included, and longest # HELP + # TYPE */

#define NGX_HTTP_MOMO_METRICS_LINE  128
#define NGX_HTTP_MOMO_METRICS_HEAD  256
#define NGX_HTTP_MOMO_METRICS_FAMILIES  14


/* ngx_http_momo_shm.c; not in the shared header */

static void ngx_http_momo_metrics_snapshot(ngx_http_momo_counters_t *dst,
    ngx_http_momo_counters_t *src);
static size_t ngx_http_momo_metrics_size(ngx_http_momo_counters_t *c);
static u_char *ngx_http_momo_metrics_write(u_char *p,
    ngx_http_momo_counters_t *c, ngx_uint_t tokens, time_t expires_in);
static u_char *ngx_http_momo_metrics_calls(u_char *p,
    ngx_http_momo_counters_t *c);
static u_char *ngx_http_momo_metrics_latency(u_char *p,
    ngx_http_momo_counters_t *c);
static ngx_int_t ngx_http_momo_metrics_send(ngx_http_request_t *r,
    ngx_uint_t status, ngx_str_t *type, ngx_buf_t *b);


static char  *ngx_http_momo_metrics_legs[] = {
    "token", "requesttopay", "status", "disbursement",
    "disbursement_status", "notify"
};


/* the bounds of ngx_http_momo_count_call()'s buckets, in seconds */

static char  *ngx_http_momo_metrics_le[] = {
    "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "+Inf"
};


static char  *ngx_http_momo_metrics_pay[] = {
    "accepted", "replayed", "invalid", "conflict", "rejected",
    "auth_failed", "timeout", "unavailable"
};


static char  *ngx_http_momo_metrics_cb[] = {
    "accepted", "duplicate", "forbidden", "invalid"
};


ngx_int_t
ngx_http_momo_metrics_handler(ngx_http_request_t *r)
{
    size_t                      size;
    time_t                      expires_in, left;
    ngx_int_t                   rc;
    ngx_str_t                   type;
    ngx_buf_t                  *b;
    ngx_uint_t                  i, tokens, gen;
    ngx_shm_zone_t             *zone;
    ngx_http_momo_counters_t   *c, *snap;
    ngx_http_momo_main_conf_t  *mmcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_momo_module);
    zone = mmcf->shm_zone;

    c = ngx_http_momo_counters(zone);

    if (c == NULL) {
        b = ngx_create_temp_buf(r->pool, sizeof("no momo_zone\n") - 1);
        if (b == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        b->last = ngx_cpymem(b->last, "no momo_zone\n",
                             sizeof("no momo_zone\n") - 1);

        ngx_str_set(&type, "text/plain");

        return ngx_http_momo_metrics_send(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                          &type, b);
    }

    /*
     * Counters keep moving while the answer is built: work on a copy, so
     * the size computed first still holds when the lines are written.
     */

    snap = ngx_palloc(r->pool, sizeof(ngx_http_momo_counters_t));
    if (snap == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_momo_metrics_snapshot(snap, c);

    tokens = 0;
    expires_in = -1;

    for (i = 0; /* void */ ; i++) {
        rc = ngx_http_momo_token_info(zone, i, &left, &gen);

        if (rc == NGX_DONE) {
            break;
        }

        if (rc != NGX_OK) {
            continue;
        }

        tokens++;

        if (expires_in == -1 || left < expires_in) {
            expires_in = left;
        }
    }

    size = ngx_http_momo_metrics_size(snap)
           + ngx_http_momo_metrics_sweep_size();

    b = ngx_create_temp_buf(r->pool, size);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_http_momo_metrics_write(b->last, snap, tokens, expires_in);
    b->last = ngx_http_momo_metrics_sweep(b->last, mmcf);

    ngx_str_set(&type, "text/plain; version=0.0.4");

    return ngx_http_momo_metrics_send(r, NGX_HTTP_OK, &type, b);
}


/*
 * The counters struct is made of ngx_atomic_t only: read it word by word,
 * each word whole, as stub_status reads its counters.
 */

static void
ngx_http_momo_metrics_snapshot(ngx_http_momo_counters_t *dst,
    ngx_http_momo_counters_t *src)
{
    ngx_uint_t     i, n;
    ngx_atomic_t  *s, *d;

    s = (ngx_atomic_t *) src;
    d = (ngx_atomic_t *) dst;
    n = sizeof(ngx_http_momo_counters_t) / sizeof(ngx_atomic_t);

    for (i = 0; i < n; i++) {
        d[i] = s[i];
    }
}


static size_t
ngx_http_momo_metrics_size(ngx_http_momo_counters_t *c)
{
    ngx_uint_t  leg, status, lines;

    lines = 3 * NGX_HTTP_MOMO_PAY_MAX   /* payments, refunds, payouts */
            + 2 + 1 + 1 + 1             /* refreshes, hits, tokens, ttl */
            + NGX_HTTP_MOMO_CB_MAX      /* callbacks */
            + 2 + 1                     /* status cache, evictions */
            + 2                         /* notify */
            + 2;                        /* status budget */

    for (leg = 0; leg <= NGX_HTTP_MOMO_LEG_MAX; leg++) {

        for (status = 0; status < 600; status++) {
            if (c->calls[leg][status]) {
                lines++;
            }
        }

        if (c->latency_count[leg]) {
            lines += NGX_HTTP_MOMO_LATENCY_BUCKETS + 2;
        }
    }

    return NGX_HTTP_MOMO_METRICS_FAMILIES * NGX_HTTP_MOMO_METRICS_HEAD
           + lines * NGX_HTTP_MOMO_METRICS_LINE;
}


static u_char *
ngx_http_momo_metrics_write(u_char *p, ngx_http_momo_counters_t *c,
    ngx_uint_t tokens, time_t expires_in)
{
    ngx_uint_t  i;

    p = ngx_http_momo_metrics_family(p, "momo_payments_total", "counter",
                                     "Payment requests by result.");

    for (i = 0; i < NGX_HTTP_MOMO_PAY_MAX; i++) {
        p = ngx_sprintf(p, "momo_payments_total{result=\"%s\"} %uA\n",
                        ngx_http_momo_metrics_pay[i], c->payments[i]);
    }

    p = ngx_http_momo_metrics_family(p, "momo_refunds_total", "counter",
                                     "Refund requests by result.");

    for (i = 0; i < NGX_HTTP_MOMO_PAY_MAX; i++) {
        p = ngx_sprintf(p, "momo_refunds_total{result=\"%s\"} %uA\n",
                        ngx_http_momo_metrics_pay[i], c->refunds[i]);
    }

    p = ngx_http_momo_metrics_family(p, "momo_payouts_total", "counter",
                                     "Payout requests by result.");

    for (i = 0; i < NGX_HTTP_MOMO_PAY_MAX; i++) {
        p = ngx_sprintf(p, "momo_payouts_total{result=\"%s\"} %uA\n",
                        ngx_http_momo_metrics_pay[i], c->payouts[i]);
    }

    p = ngx_http_momo_metrics_calls(p, c);
    p = ngx_http_momo_metrics_latency(p, c);

    p = ngx_http_momo_metrics_family(p, "momo_token_refreshes_total",
                                     "counter",
                                     "MTN access token requests by result.");

    p = ngx_sprintf(p, "momo_token_refreshes_total{result=\"ok\"} %uA\n"
                       "momo_token_refreshes_total{result=\"failed\"} %uA\n",
                    c->token_refresh_ok, c->token_refresh_failed);

    p = ngx_http_momo_metrics_family(p, "momo_token_cache_hits_total",
                                     "counter",
                                     "MTN calls made with a cached token.");

    p = ngx_sprintf(p, "momo_token_cache_hits_total %uA\n", c->token_hits);

    p = ngx_http_momo_metrics_family(p, "momo_tokens", "gauge",
                                     "Valid MTN access tokens held.");

    p = ngx_sprintf(p, "momo_tokens %ui\n", tokens);

    if (expires_in >= 0) {
        p = ngx_http_momo_metrics_family(p, "momo_token_expires_in_seconds",
                                         "gauge",
                                         "Seconds until the first held "
                                         "token stops being used.");

        p = ngx_sprintf(p, "momo_token_expires_in_seconds %T\n", expires_in);
    }

    p = ngx_http_momo_metrics_family(p, "momo_callbacks_total", "counter",
                                     "Callbacks from MTN by result.");

    for (i = 0; i < NGX_HTTP_MOMO_CB_MAX; i++) {
        p = ngx_sprintf(p, "momo_callbacks_total{result=\"%s\"} %uA\n",
                        ngx_http_momo_metrics_cb[i], c->callbacks[i]);
    }

    p = ngx_http_momo_metrics_family(p, "momo_status_cache_total", "counter",
                                     "Status queries answered from the "
                                     "shared cache (hit) or by MTN (miss).");

    p = ngx_sprintf(p, "momo_status_cache_total{result=\"hit\"} %uA\n"
                       "momo_status_cache_total{result=\"miss\"} %uA\n",
                    c->cache_hits, c->cache_misses);

    p = ngx_http_momo_metrics_family(p, "momo_status_cache_evictions_total",
                                     "counter",
                                     "Payment records evicted from a full "
                                     "momo zone.");

    p = ngx_sprintf(p, "momo_status_cache_evictions_total %uA\n",
                    c->cache_evictions);

    p = ngx_http_momo_metrics_family(p, "momo_notify_total", "counter",
                                     "Final payments posted to momo_notify "
                                     "by result.");

    p = ngx_sprintf(p, "momo_notify_total{result=\"ok\"} %uA\n"
                       "momo_notify_total{result=\"failed\"} %uA\n",
                    c->notify_ok, c->notify_failed);

    p = ngx_http_momo_metrics_family(p, "momo_status_budget_total",
                                     "counter",
                                     "Status queries to MTN allowed and "
                                     "refused by momo_status_rate.");

    p = ngx_sprintf(p, "momo_status_budget_total{result=\"granted\"} %uA\n"
                       "momo_status_budget_total{result=\"refused\"} %uA\n",
                    c->budget_granted, c->budget_refused);

    return p;
}


u_char *
ngx_http_momo_metrics_family(u_char *p, char *name, char *type, char *help)
{
    return ngx_sprintf(p, "# HELP %s %s\n# TYPE %s %s\n",
                       name, help, name, type);
}


static u_char *
ngx_http_momo_metrics_calls(u_char *p, ngx_http_momo_counters_t *c)
{
    char        *leg;
    ngx_uint_t   i, status;

    p = ngx_http_momo_metrics_family(p, "momo_mtn_requests_total", "counter",
                                     "Calls by endpoint (MTN's token, "
                                     "requesttopay and status, "
                                     "disbursement: refund and transfer, "
                                     "disbursement_status; notify: the "
                                     "momo_notify location) and HTTP status "
                                     "(none: no answer).");

    for (i = 0; i <= NGX_HTTP_MOMO_LEG_MAX; i++) {
        leg = ngx_http_momo_metrics_legs[i];

        for (status = 0; status < 600; status++) {

            if (c->calls[i][status] == 0) {
                continue;
            }

            if (status == 0) {
                p = ngx_sprintf(p, "momo_mtn_requests_total{endpoint=\"%s\","
                                   "status=\"none\"} %uA\n",
                                leg, c->calls[i][status]);
                continue;
            }

            p = ngx_sprintf(p, "momo_mtn_requests_total{endpoint=\"%s\","
                               "status=\"%ui\"} %uA\n",
                            leg, status, c->calls[i][status]);
        }
    }

    return p;
}


static u_char *
ngx_http_momo_metrics_latency(u_char *p, ngx_http_momo_counters_t *c)
{
    char              *leg;
    ngx_uint_t         i, n;
    ngx_atomic_uint_t  sum, ms;

    p = ngx_http_momo_metrics_family(p, "momo_mtn_request_duration_seconds",
                                     "histogram",
                                     "Time MTN took to answer, by endpoint.");

    for (i = 0; i <= NGX_HTTP_MOMO_LEG_MAX; i++) {

        if (c->latency_count[i] == 0) {
            continue;
        }

        leg = ngx_http_momo_metrics_legs[i];
        sum = 0;

        for (n = 0; n < NGX_HTTP_MOMO_LATENCY_BUCKETS; n++) {
            sum += c->latency[i][n];

            p = ngx_sprintf(p, "momo_mtn_request_duration_seconds_bucket"
                               "{endpoint=\"%s\",le=\"%s\"} %uA\n",
                            leg, ngx_http_momo_metrics_le[n], sum);
        }

        ms = c->latency_sum_ms[i];

        p = ngx_sprintf(p, "momo_mtn_request_duration_seconds_sum"
                           "{endpoint=\"%s\"} %uA.%03uA\n"
                           "momo_mtn_request_duration_seconds_count"
                           "{endpoint=\"%s\"} %uA\n",
                        leg, ms / 1000, ms % 1000,
                        leg, c->latency_count[i]);
    }

    return p;
}


static ngx_int_t
ngx_http_momo_metrics_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *type, ngx_buf_t *b)
{
    ngx_int_t         rc;
    ngx_chain_t       out;
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Cache-Control");
    ngx_str_set(&h->value, "no-store");

    r->headers_out.status = status;
    /*
     * The header filter appends "; charset=utf-8"; the parameters in
     * content_type_len keep the charset filter away from the type.
     */

    r->headers_out.content_type = *type;
    r->headers_out.content_type_len = type->len;
    r->headers_out.content_type_lowcase = NULL;
    ngx_str_set(&r->headers_out.charset, "utf-8");
    r->headers_out.content_length_n = b->last - b->pos;

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    return ngx_http_output_filter(r, &out);
}
