
/*
 * Copyright (C) The ngx_http_momo_module developers
 *
 * The status budget: how many status queries each MTN account may send
 * per second, across all workers (momo_status_rate; MTN caps them at 10
 * per second).  Each account keeps the times of its last grants in a
 * ring in the zone; a query is allowed while fewer than "rate" grants
 * fall in the last 1.1 s, so that no one-second window ever holds more
 * than "rate" queries, whatever the bursts, even when the network delays
 * some of them by up to 100 ms on their way to MTN.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_momo_shm.h"


#define NGX_HTTP_MOMO_BUDGET_WINDOW  1100     /* ms */


static ngx_http_momo_budget_t *ngx_http_momo_budget_get(
    ngx_http_momo_shctx_t *sh, ngx_slab_pool_t *shpool, ngx_str_t *account,
    ngx_uint_t rate);
static ngx_http_momo_budget_t *ngx_http_momo_budget_grow(
    ngx_http_momo_shctx_t *sh, ngx_slab_pool_t *shpool,
    ngx_http_momo_budget_t *old, ngx_str_t *account, ngx_uint_t rate);
static ngx_msec_t ngx_http_momo_budget_now(void);


ngx_int_t
ngx_http_momo_budget_take(ngx_shm_zone_t *zone, ngx_str_t *account,
    ngx_uint_t rate, ngx_uint_t reserve)
{
    ngx_int_t                rc;
    ngx_msec_t               now;
    ngx_uint_t               k, i;
    ngx_slab_pool_t         *shpool;
    ngx_http_momo_shctx_t   *sh;
    ngx_http_momo_budget_t  *b;

    sh = ngx_http_momo_shm_ctx(zone, &shpool);
    if (sh == NULL || rate == 0 || reserve >= rate) {
        return NGX_BUSY;
    }

    /* the k-th latest grant must have left the window */

    k = rate - reserve;
    rc = NGX_BUSY;

    ngx_shmtx_lock(&shpool->mutex);

    b = ngx_http_momo_budget_get(sh, shpool, account, rate);

    if (b != NULL) {

        /*
         * read under the lock, so that the ring is in time order; the
         * cached ngx_current_msec may be a loop iteration old
         */

        now = ngx_http_momo_budget_now();

        i = (b->next + b->size - k) % b->size;

        if (b->n < k
            || now - b->grant[i] >= NGX_HTTP_MOMO_BUDGET_WINDOW)
        {
            b->grant[b->next] = now;
            b->next = (b->next + 1) % b->size;

            if (b->n < b->size) {
                b->n++;
            }

            rc = NGX_OK;
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    if (rc == NGX_OK) {
        (void) ngx_atomic_fetch_add(&sh->counters.budget_granted, 1);

    } else {
        (void) ngx_atomic_fetch_add(&sh->counters.budget_refused, 1);
    }

    return rc;
}


/*
 * The account's ring, created on first use, and grown when a location
 * allows more than it holds (a reload raised momo_status_rate).  NULL
 * when the zone has no room: the caller refuses, it never goes over.
 */

static ngx_http_momo_budget_t *
ngx_http_momo_budget_get(ngx_http_momo_shctx_t *sh, ngx_slab_pool_t *shpool,
    ngx_str_t *account, ngx_uint_t rate)
{
    ngx_uint_t               i;
    ngx_http_momo_budget_t  *b;

    if (account->len > NGX_HTTP_MOMO_KEY_MAX) {
        return NULL;
    }

    for (i = 0; i < NGX_HTTP_MOMO_TOKENS; i++) {
        b = sh->budgets[i];

        if (b == NULL) {
            break;
        }

        if (b->key_len == account->len
            && ngx_memcmp(b->key, account->data, account->len) == 0)
        {
            if (b->size >= rate) {
                return b;
            }

            b = ngx_http_momo_budget_grow(sh, shpool, b, account, rate);

            if (b != NULL) {
                sh->budgets[i] = b;
            }

            return b;
        }
    }

    if (i == NGX_HTTP_MOMO_TOKENS) {
        return NULL;
    }

    b = ngx_http_momo_budget_grow(sh, shpool, NULL, account, rate);

    if (b != NULL) {
        sh->budgets[i] = b;
    }

    return b;
}


static ngx_http_momo_budget_t *
ngx_http_momo_budget_grow(ngx_http_momo_shctx_t *sh, ngx_slab_pool_t *shpool,
    ngx_http_momo_budget_t *old, ngx_str_t *account, ngx_uint_t rate)
{
    size_t                   size;
    ngx_uint_t               i, j;
    ngx_http_momo_budget_t  *b;

    size = offsetof(ngx_http_momo_budget_t, grant)
           + rate * sizeof(ngx_msec_t);

    b = ngx_http_momo_shm_alloc(sh, shpool, size);
    if (b == NULL) {
        return NULL;
    }

    ngx_memzero(b, size);

    b->size = rate;
    b->key_len = account->len;
    ngx_memcpy(b->key, account->data, account->len);

    if (old == NULL) {
        return b;
    }

    /* the old grants, oldest first */

    for (i = 0; i < old->n; i++) {
        j = (old->next + old->size - old->n + i) % old->size;
        b->grant[i] = old->grant[j];
    }

    b->n = old->n;
    b->next = old->n % b->size;

    ngx_slab_free_locked(shpool, old);

    return b;
}


static ngx_msec_t
ngx_http_momo_budget_now(void)
{
#if (NGX_HAVE_CLOCK_MONOTONIC)
    struct timespec  ts;

    if (clock_gettime(CLOCK_MONOTONIC, &ts) == 0) {
        return (ngx_msec_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    }
#endif

    return ngx_current_msec;
}
