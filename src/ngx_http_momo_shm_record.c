
/*
 * Copyright (C) The ngx_http_momo_module developers
 *
 * Payment records in the momo zone: a hash table by reference id (the
 * CRC32 of a reference the gateway made, from random bytes or an HMAC, or
 * one MTN knows: a client cannot choose a record's reference), LRU
 * queues for eviction, and the status-query, notify and
 * payment-in-flight leases.
 *
 * Only the gateway's own payments (momo_pay) and payments MTN reports a
 * status of get a record: a status query for any other reference, the
 * kind a client can make up by the thousand, keeps its outcome in a
 * small ring of probes instead, and never evicts a payment.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_momo_shm.h"


static ngx_http_momo_node_t *ngx_http_momo_record_lock(ngx_shm_zone_t *zone,
    u_char *ref, ngx_http_momo_shctx_t **shp, ngx_slab_pool_t **shpool);
static ngx_int_t ngx_http_momo_record_store(ngx_shm_zone_t *zone,
    ngx_http_momo_record_t *rec, ngx_uint_t query_lease, time_t checked_at);
static ngx_uint_t ngx_http_momo_record_same(ngx_http_momo_record_t *a,
    ngx_http_momo_record_t *b);
static void ngx_http_momo_record_payload(ngx_http_momo_record_t *dst,
    ngx_http_momo_record_t *src);
static ngx_uint_t ngx_http_momo_record_lru(ngx_http_momo_record_t *rec);
static ngx_uint_t ngx_http_momo_record_evict(ngx_http_momo_shctx_t *sh,
    ngx_slab_pool_t *shpool, ngx_queue_t *lru, ngx_msec_t now);
static ngx_http_momo_probe_t *ngx_http_momo_probe_lookup(
    ngx_http_momo_shctx_t *sh, u_char *ref);
static ngx_int_t ngx_http_momo_probe_query(ngx_http_momo_shctx_t *sh,
    u_char *ref, ngx_msec_t lease, ngx_uint_t serial, ngx_msec_t interval,
    ngx_http_momo_record_t *rec);
static void ngx_http_momo_probe_answer(ngx_http_momo_shctx_t *sh,
    ngx_http_momo_record_t *rec, ngx_uint_t serial, time_t checked_at);
static void ngx_http_momo_record_free(ngx_http_momo_shctx_t *sh,
    ngx_slab_pool_t *shpool, ngx_http_momo_node_t *mn);
static void ngx_http_momo_record_merge(ngx_http_momo_record_t *dst,
    ngx_http_momo_record_t *src);
static void ngx_http_momo_record_field(u_char *dst, u_char *dst_len,
    u_char *src, u_char src_len, size_t size, ngx_uint_t keep);


ngx_int_t
ngx_http_momo_record_get(ngx_shm_zone_t *zone, u_char *ref,
    ngx_http_momo_record_t *rec)
{
    ngx_int_t               rc;
    ngx_slab_pool_t        *shpool;
    ngx_http_momo_node_t   *mn;
    ngx_http_momo_shctx_t  *sh;

    mn = ngx_http_momo_record_lock(zone, ref, &sh, &shpool);

    if (sh == NULL) {
        return NGX_DECLINED;
    }

    if (mn != NULL) {
        ngx_http_momo_record_touch(sh, mn);
        *rec = mn->rec;
        rc = NGX_OK;

    } else {
        rc = NGX_DECLINED;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return rc;
}


/*
 * query_lease: the serial of the status-query lease the caller holds for
 * this record, which MTN's answer ends (0: none).
 */

ngx_int_t
ngx_http_momo_record_update(ngx_shm_zone_t *zone,
    ngx_http_momo_record_t *rec, ngx_uint_t query_lease)
{
    return ngx_http_momo_record_store(zone, rec, query_lease, 0);
}


/*
 * MTN's answer to a status query: stored with the time it was given, and
 * the query lease released.
 */

ngx_int_t
ngx_http_momo_record_answer(ngx_shm_zone_t *zone, ngx_http_momo_record_t *rec,
    ngx_uint_t query_lease)
{
    return ngx_http_momo_record_store(zone, rec, query_lease, ngx_time());
}


static ngx_int_t
ngx_http_momo_record_store(ngx_shm_zone_t *zone, ngx_http_momo_record_t *rec,
    ngx_uint_t query_lease, time_t checked_at)
{
    uint32_t                hash;
    ngx_slab_pool_t        *shpool;
    ngx_http_momo_node_t   *mn;
    ngx_http_momo_shctx_t  *sh;

    sh = ngx_http_momo_shm_ctx(zone, &shpool);
    if (sh == NULL) {
        return NGX_ERROR;
    }

    hash = ngx_http_momo_ref_hash(rec->reference_id);

    ngx_shmtx_lock(&shpool->mutex);

    mn = ngx_http_momo_record_lookup(sh, rec->reference_id, hash);

    if (mn == NULL && query_lease) {
        ngx_http_momo_probe_answer(sh, rec, query_lease, checked_at);

        if (ngx_http_momo_record_lru(rec) == NGX_HTTP_MOMO_LRU_DONE) {
            /* the query found nothing to keep: not a payment of ours */
            ngx_shmtx_unlock(&shpool->mutex);
            return NGX_OK;
        }
    }

    if (mn == NULL) {
        mn = ngx_http_momo_record_create(sh, shpool, rec->reference_id,
                                         hash);
        if (mn == NULL) {
            ngx_shmtx_unlock(&shpool->mutex);
            goto failed;
        }
    }

    ngx_http_momo_sched_stamp(sh, mn, rec);
    ngx_http_momo_record_merge(&mn->rec, rec);
    ngx_http_momo_record_touch(sh, mn);

    if (mn->rec.kind == NGX_HTTP_MOMO_KIND_REFUND
        && mn->rec.state == NGX_HTTP_MOMO_ST_FAILED)
    {
        /* a refund MTN failed moved no money: its amount is free again */
        ngx_http_momo_ledger_failed_locked(sh, mn->rec.reference_id);
    }

    if (query_lease) {
        if (ngx_http_momo_lease_owned(mn->query_pid, mn->query_serial,
                                      query_lease))
        {
            mn->query_pid = 0;
        }

        mn->last_query = ngx_current_msec;
        mn->queried = 1;
    }

    if (checked_at) {
        mn->rec.checked_at = checked_at;
    }

    *rec = mn->rec;

    ngx_shmtx_unlock(&shpool->mutex);

    return NGX_OK;

failed:

    ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                  "momo: no memory in momo zone \"%V\" for payment \"%*s\"",
                  &zone->shm.name, (size_t) NGX_HTTP_MOMO_UUID_LEN,
                  rec->reference_id);

    return NGX_ERROR;
}


/*
 * A payment with an Idempotency-Key claims its record before MTN sees it,
 * in one step under the zone lock, so that two requests with one key
 * never both decide on what the record held before either wrote:
 *
 *   NGX_OK        no other request of this key is in flight: the caller
 *                 holds the payment lease (*owner) and sends the payment;
 *                 *fresh when the payload is this request's, the record
 *                 having held none
 *   NGX_BUSY      the key's first request is still in flight
 *   NGX_DECLINED  the record holds another amount, currency or phone
 *   NGX_DONE      MTN accepted this very payment
 *   NGX_ERROR     no memory in the zone
 *
 * rec holds the request's payment on entry and the record on return.
 */

ngx_int_t
ngx_http_momo_record_claim(ngx_shm_zone_t *zone, ngx_http_momo_record_t *rec,
    ngx_msec_t lease, ngx_uint_t *owner, ngx_uint_t *fresh)
{
    uint32_t                hash;
    ngx_int_t               rc;
    ngx_msec_t              now;
    ngx_slab_pool_t        *shpool;
    ngx_http_momo_node_t   *mn;
    ngx_http_momo_shctx_t  *sh;

    static ngx_uint_t       seq;

    sh = ngx_http_momo_shm_ctx(zone, &shpool);
    if (sh == NULL) {
        return NGX_ERROR;
    }

    hash = ngx_http_momo_ref_hash(rec->reference_id);
    now = ngx_current_msec;
    *fresh = 0;

    ngx_shmtx_lock(&shpool->mutex);

    mn = ngx_http_momo_record_lookup(sh, rec->reference_id, hash);

    if (mn == NULL) {
        mn = ngx_http_momo_record_create(sh, shpool, rec->reference_id,
                                         hash);
        if (mn == NULL) {
            ngx_shmtx_unlock(&shpool->mutex);
            return NGX_ERROR;
        }

    } else {
        ngx_http_momo_record_touch(sh, mn);
    }

    if (ngx_http_momo_lease_live(mn->pay_pid, mn->pay_until, now)) {
        rc = NGX_BUSY;

    } else if (mn->rec.amount_len == 0) {
        ngx_http_momo_record_payload(&mn->rec, rec);
        *fresh = 1;
        rc = NGX_OK;

    } else if (!ngx_http_momo_record_same(&mn->rec, rec)) {
        rc = NGX_DECLINED;

    } else if (mn->rec.accepted) {
        rc = NGX_DONE;

    } else {
        /* sent before without MTN's answer: MTN's 409 will tell */
        rc = NGX_OK;
    }

    ngx_http_momo_record_touch(sh, mn);

    if (rc == NGX_OK) {
        mn->pay_pid = ngx_pid;
        mn->pay_until = now + lease;
        mn->pay_owner = ++seq;
        *owner = seq;
    }

    *rec = mn->rec;

    ngx_shmtx_unlock(&shpool->mutex);

    return rc;
}


/*
 * Ends the payment lease if the caller still holds it.  "forget" takes
 * the payload back out of a record that had none before the claim and
 * that MTN has not accepted: nothing proved it.
 */

void
ngx_http_momo_record_release(ngx_shm_zone_t *zone, u_char *ref,
    ngx_uint_t owner, ngx_uint_t forget)
{
    ngx_slab_pool_t        *shpool;
    ngx_http_momo_node_t   *mn;
    ngx_http_momo_shctx_t  *sh;

    mn = ngx_http_momo_record_lock(zone, ref, &sh, &shpool);

    if (sh == NULL) {
        return;
    }

    if (mn != NULL && mn->pay_pid == ngx_pid && mn->pay_owner == owner) {
        mn->pay_pid = 0;

        if (forget && !mn->rec.accepted) {
            mn->rec.amount_len = 0;
            mn->rec.currency_len = 0;
            mn->rec.phone_len = 0;
            mn->rec.external_id_len = 0;
            ngx_http_momo_record_touch(sh, mn);
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);
}


ngx_int_t
ngx_http_momo_record_query(ngx_shm_zone_t *zone, u_char *ref,
    ngx_msec_t lease, ngx_uint_t serial, ngx_msec_t interval,
    ngx_http_momo_record_t *rec)
{
    uint32_t                   hash;
    ngx_int_t                  rc;
    ngx_msec_t                 now;
    ngx_uint_t                 recent;
    ngx_slab_pool_t           *shpool;
    ngx_http_momo_node_t      *mn;
    ngx_http_momo_shctx_t     *sh;
    ngx_http_momo_counters_t  *c;

    sh = ngx_http_momo_shm_ctx(zone, &shpool);
    if (sh == NULL) {
        return NGX_ERROR;
    }

    c = &sh->counters;

    hash = ngx_http_momo_ref_hash(ref);
    now = ngx_current_msec;

    ngx_shmtx_lock(&shpool->mutex);

    mn = ngx_http_momo_record_lookup(sh, ref, hash);

    if (mn == NULL) {
        rc = ngx_http_momo_probe_query(sh, ref, lease, serial, interval,
                                       rec);
        ngx_shmtx_unlock(&shpool->mutex);

        (void) ngx_atomic_fetch_add(rc == NGX_DONE ? &c->cache_hits
                                                   : &c->cache_misses, 1);
        return rc;
    }

    ngx_http_momo_record_touch(sh, mn);

    /* at most one query to MTN per reference and interval, all workers */

    recent = (mn->queried
              && (ngx_msec_int_t) (now - mn->last_query)
                 < (ngx_msec_int_t) interval);

    if (ngx_http_momo_state_final(mn->rec.state) || recent) {
        *rec = mn->rec;
        ngx_shmtx_unlock(&shpool->mutex);

        (void) ngx_atomic_fetch_add(&c->cache_hits, 1);
        return NGX_DONE;
    }

    if (ngx_http_momo_lease_live(mn->query_pid, mn->query_until, now)) {
        ngx_shmtx_unlock(&shpool->mutex);
        return NGX_BUSY;
    }

    mn->query_pid = ngx_pid;
    mn->query_until = now + lease;
    mn->query_serial = serial;

    *rec = mn->rec;

    ngx_shmtx_unlock(&shpool->mutex);

    (void) ngx_atomic_fetch_add(&c->cache_misses, 1);

    return NGX_OK;
}


/*
 * a status query that ended without MTN's answer, or was not sent: the
 * next one asks
 */

void
ngx_http_momo_record_unquery(ngx_shm_zone_t *zone, u_char *ref,
    ngx_uint_t serial)
{
    ngx_slab_pool_t        *shpool;
    ngx_http_momo_node_t   *mn;
    ngx_http_momo_probe_t  *pr;
    ngx_http_momo_shctx_t  *sh;

    mn = ngx_http_momo_record_lock(zone, ref, &sh, &shpool);

    if (sh == NULL) {
        return;
    }

    if (mn != NULL
        && ngx_http_momo_lease_owned(mn->query_pid, mn->query_serial, serial))
    {
        mn->query_pid = 0;
    }

    pr = ngx_http_momo_probe_lookup(sh, ref);

    if (pr != NULL
        && ngx_http_momo_lease_owned(pr->query_pid, pr->query_serial, serial))
    {
        pr->query_pid = 0;
    }

    ngx_shmtx_unlock(&shpool->mutex);
}


ngx_int_t
ngx_http_momo_record_notify(ngx_shm_zone_t *zone, u_char *ref,
    ngx_msec_t lease, ngx_uint_t serial)
{
    ngx_int_t               rc;
    ngx_msec_t              now;
    ngx_slab_pool_t        *shpool;
    ngx_http_momo_node_t   *mn;
    ngx_http_momo_shctx_t  *sh;

    now = ngx_current_msec;
    rc = NGX_DECLINED;

    mn = ngx_http_momo_record_lock(zone, ref, &sh, &shpool);

    if (sh == NULL) {
        return NGX_DECLINED;
    }

    if (mn != NULL
        && ngx_http_momo_state_final(mn->rec.state)
        && mn->rec.notified != 2
        && !(mn->notifying
             && (ngx_msec_int_t) (mn->notify_until - now) > 0)
        && ngx_http_momo_sched_notify_due(sh, mn))
    {
        ngx_http_momo_record_touch(sh, mn);

        mn->rec.notified = 1;
        mn->notifying = 1;
        mn->notify_pid = ngx_pid;
        mn->notify_serial = serial;
        mn->notify_until = now + lease;
        rc = NGX_OK;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return rc;
}


/*
 * A delivery the application took is done, whoever holds the lease now;
 * a failed or unknown one is only its own lease's to give back.
 */

void
ngx_http_momo_record_notified(ngx_shm_zone_t *zone, u_char *ref,
    ngx_uint_t ok, ngx_uint_t serial)
{
    ngx_uint_t              owned;
    ngx_slab_pool_t        *shpool;
    ngx_http_momo_node_t   *mn;
    ngx_http_momo_shctx_t  *sh;

    mn = ngx_http_momo_record_lock(zone, ref, &sh, &shpool);

    if (sh == NULL) {
        return;
    }

    owned = (mn != NULL && mn->notifying
             && ngx_http_momo_lease_owned(mn->notify_pid, mn->notify_serial,
                                          serial));

    if (mn != NULL && ok) {
        mn->rec.notified = 2;
    }

    if (owned) {
        mn->notifying = 0;

        if (!ok) {
            mn->rec.notified = 0;
        }

        ngx_http_momo_sched_notified(sh, mn, ok);
    }

    if (mn != NULL) {
        ngx_http_momo_record_touch(sh, mn);     /* its LRU may change */
    }

    ngx_shmtx_unlock(&shpool->mutex);

    if (ok) {
        (void) ngx_atomic_fetch_add(&sh->counters.notify_ok, 1);

    } else {
        (void) ngx_atomic_fetch_add(&sh->counters.notify_failed, 1);
    }
}


/* the zone locked and the record of ref in it, if any; *shp NULL: none */

static ngx_http_momo_node_t *
ngx_http_momo_record_lock(ngx_shm_zone_t *zone, u_char *ref,
    ngx_http_momo_shctx_t **shp, ngx_slab_pool_t **shpool)
{
    ngx_http_momo_shctx_t  *sh;

    sh = ngx_http_momo_shm_ctx(zone, shpool);
    *shp = sh;

    if (sh == NULL) {
        return NULL;
    }

    ngx_shmtx_lock(&(*shpool)->mutex);

    return ngx_http_momo_record_lookup(sh, ref, ngx_http_momo_ref_hash(ref));
}


ngx_http_momo_node_t *
ngx_http_momo_record_lookup(ngx_http_momo_shctx_t *sh, u_char *ref,
    uint32_t hash)
{
    ngx_http_momo_node_t  *mn;

    for (mn = sh->buckets[hash & sh->mask]; mn; mn = mn->next) {

        if (mn->hash == hash
            && ngx_memcmp(ref, mn->rec.reference_id, NGX_HTTP_MOMO_UUID_LEN)
               == 0)
        {
            return mn;
        }
    }

    return NULL;
}


ngx_http_momo_node_t *
ngx_http_momo_record_create(ngx_http_momo_shctx_t *sh,
    ngx_slab_pool_t *shpool, u_char *ref, uint32_t hash)
{
    ngx_http_momo_node_t  **bucket, *mn;

    mn = ngx_http_momo_shm_alloc(sh, shpool, sizeof(ngx_http_momo_node_t));
    if (mn == NULL) {
        return NULL;
    }

    ngx_memzero(mn, sizeof(ngx_http_momo_node_t));

    mn->hash = hash;
    ngx_memcpy(mn->rec.reference_id, ref, NGX_HTTP_MOMO_UUID_LEN);
    mn->rec.state = NGX_HTTP_MOMO_ST_UNKNOWN;
    mn->rec.checked_at = ngx_time();

    bucket = &sh->buckets[hash & sh->mask];
    mn->next = *bucket;
    *bucket = mn;

    ngx_queue_insert_head(&sh->lru[NGX_HTTP_MOMO_LRU_DONE], &mn->queue);

    return mn;
}


void
ngx_http_momo_record_touch(ngx_http_momo_shctx_t *sh,
    ngx_http_momo_node_t *mn)
{
    ngx_http_momo_sweep_unlink(sh, mn);
    ngx_queue_remove(&mn->queue);
    ngx_queue_insert_head(&sh->lru[ngx_http_momo_record_lru(&mn->rec)],
                          &mn->queue);
}


static ngx_uint_t
ngx_http_momo_record_lru(ngx_http_momo_record_t *rec)
{
    if (ngx_http_momo_state_final(rec->state)) {
        return (rec->notified == 2) ? NGX_HTTP_MOMO_LRU_DONE
                                    : NGX_HTTP_MOMO_LRU_UNNOTIFIED;
    }

    if (rec->state == NGX_HTTP_MOMO_ST_NOT_FOUND
        || (!rec->accepted && rec->amount_len == 0
            && rec->state == NGX_HTTP_MOMO_ST_UNKNOWN))
    {
        return NGX_HTTP_MOMO_LRU_DONE;
    }

    return NGX_HTTP_MOMO_LRU_PENDING;
}


/*
 * Frees up to NGX_HTTP_MOMO_EVICT of the least recently used records that
 * nobody is querying or notifying, from the first queue that has any:
 * settled payments go before un-notified ones, and those before pending
 * ones.  When every record has a live lease, the oldest of the first
 * non-empty queue goes anyway: its holder's later update re-creates it.
 */

ngx_uint_t
ngx_http_momo_record_expire(ngx_http_momo_shctx_t *sh,
    ngx_slab_pool_t *shpool)
{
    ngx_uint_t             i, n;
    ngx_msec_t             now;
    ngx_queue_t           *q;
    ngx_http_momo_node_t  *mn;

    now = ngx_current_msec;
    n = 0;

    for (i = 0; i < NGX_HTTP_MOMO_LRU_MAX && n == 0; i++) {
        n = ngx_http_momo_record_evict(sh, shpool, &sh->lru[i], now);
    }

    for (i = 0; i < NGX_HTTP_MOMO_LRU_MAX && n == 0; i++) {
        if (ngx_queue_empty(&sh->lru[i])) {
            continue;
        }

        q = ngx_queue_last(&sh->lru[i]);
        mn = ngx_queue_data(q, ngx_http_momo_node_t, queue);

        ngx_http_momo_record_free(sh, shpool, mn);
        n++;
    }

    if (n) {
        (void) ngx_atomic_fetch_add(&sh->counters.cache_evictions, n);
    }

    return n;
}


static ngx_uint_t
ngx_http_momo_record_evict(ngx_http_momo_shctx_t *sh,
    ngx_slab_pool_t *shpool, ngx_queue_t *lru, ngx_msec_t now)
{
    ngx_uint_t             n;
    ngx_queue_t           *q, *prev;
    ngx_http_momo_node_t  *mn;

    n = 0;

    for (q = ngx_queue_last(lru);
         q != ngx_queue_sentinel(lru) && n < NGX_HTTP_MOMO_EVICT;
         q = prev)
    {
        prev = ngx_queue_prev(q);
        mn = ngx_queue_data(q, ngx_http_momo_node_t, queue);

        if (ngx_http_momo_lease_live(mn->query_pid, mn->query_until, now)
            || ngx_http_momo_lease_live(mn->pay_pid, mn->pay_until, now)
            || (mn->notifying
                && (ngx_msec_int_t) (mn->notify_until - now) > 0))
        {
            continue;
        }

        ngx_http_momo_record_free(sh, shpool, mn);
        n++;
    }

    return n;
}


static ngx_http_momo_probe_t *
ngx_http_momo_probe_lookup(ngx_http_momo_shctx_t *sh, u_char *ref)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_HTTP_MOMO_PROBES; i++) {
        if (ngx_memcmp(sh->probes[i].ref, ref, NGX_HTTP_MOMO_UUID_LEN) == 0) {
            return &sh->probes[i];
        }
    }

    return NULL;
}


/*
 * record_query for a reference without a record: the same answers
 * (NGX_DONE with the last outcome within the interval, NGX_BUSY while
 * another query is out, NGX_OK with the lease), from the probe ring; a
 * new reference takes the oldest probe's place.
 */

static ngx_int_t
ngx_http_momo_probe_query(ngx_http_momo_shctx_t *sh, u_char *ref,
    ngx_msec_t lease, ngx_uint_t serial, ngx_msec_t interval,
    ngx_http_momo_record_t *rec)
{
    ngx_msec_t              now;
    ngx_http_momo_probe_t  *pr;

    now = ngx_current_msec;

    ngx_memzero(rec, sizeof(ngx_http_momo_record_t));
    ngx_memcpy(rec->reference_id, ref, NGX_HTTP_MOMO_UUID_LEN);
    rec->state = NGX_HTTP_MOMO_ST_UNKNOWN;

    pr = ngx_http_momo_probe_lookup(sh, ref);

    if (pr == NULL) {
        pr = &sh->probes[sh->probe_next++ % NGX_HTTP_MOMO_PROBES];

        ngx_memzero(pr, sizeof(ngx_http_momo_probe_t));
        ngx_memcpy(pr->ref, ref, NGX_HTTP_MOMO_UUID_LEN);

    } else {
        rec->state = pr->state;
        rec->checked_at = pr->checked_at;

        if (pr->queried
            && (ngx_msec_int_t) (now - pr->last_query)
               < (ngx_msec_int_t) interval)
        {
            return NGX_DONE;
        }

        if (ngx_http_momo_lease_live(pr->query_pid, pr->query_until, now)) {
            return NGX_BUSY;
        }
    }

    pr->query_pid = ngx_pid;
    pr->query_until = now + lease;
    pr->query_serial = serial;

    return NGX_OK;
}


static void
ngx_http_momo_probe_answer(ngx_http_momo_shctx_t *sh,
    ngx_http_momo_record_t *rec, ngx_uint_t serial, time_t checked_at)
{
    ngx_http_momo_probe_t  *pr;

    pr = ngx_http_momo_probe_lookup(sh, rec->reference_id);

    if (pr == NULL) {
        return;             /* its place was taken meanwhile */
    }

    if (ngx_http_momo_lease_owned(pr->query_pid, pr->query_serial, serial)) {
        pr->query_pid = 0;
    }

    pr->queried = 1;
    pr->last_query = ngx_current_msec;

    if (checked_at) {
        pr->state = rec->state;
        pr->checked_at = checked_at;
    }
}


static void
ngx_http_momo_record_free(ngx_http_momo_shctx_t *sh, ngx_slab_pool_t *shpool,
    ngx_http_momo_node_t *mn)
{
    ngx_http_momo_node_t  **p;

    for (p = &sh->buckets[mn->hash & sh->mask]; *p != mn; p = &(*p)->next) {
        /* void */
    }

    *p = mn->next;

    ngx_http_momo_sweep_unlink(sh, mn);
    ngx_queue_remove(&mn->queue);
    ngx_slab_free_locked(shpool, mn);
}


/*
 * The first final state wins: MTN's later answers, stale or not, never
 * turn a SUCCESSFUL payment into a FAILED one or back to pending.  Such
 * an answer leaves the outcome (reason, financial transaction id) alone
 * and only fills the payment's empty fields.  Otherwise a non-empty
 * field overwrites and an empty one keeps the old value; UNKNOWN ("no
 * answer") never replaces a known state.  "accepted" is sticky and
 * "notified" only grows here.
 */

static void
ngx_http_momo_record_merge(ngx_http_momo_record_t *dst,
    ngx_http_momo_record_t *src)
{
    ngx_uint_t  keep;

    keep = 0;

    if (ngx_http_momo_state_final(dst->state)) {
        keep = (src->state != dst->state);

    } else if (src->state != NGX_HTTP_MOMO_ST_UNKNOWN) {
        dst->state = src->state;
    }

    if (src->accepted) {
        dst->accepted = 1;
    }

    if (src->kind) {
        dst->kind = src->kind;
    }

    if (src->notified > dst->notified && src->notified <= 2) {
        dst->notified = src->notified;
    }

    ngx_http_momo_record_field(dst->amount, &dst->amount_len,
                               src->amount, src->amount_len,
                               sizeof(dst->amount), keep);
    ngx_http_momo_record_field(dst->currency, &dst->currency_len,
                               src->currency, src->currency_len,
                               sizeof(dst->currency), keep);
    ngx_http_momo_record_field(dst->phone, &dst->phone_len,
                               src->phone, src->phone_len,
                               sizeof(dst->phone), keep);
    ngx_http_momo_record_field(dst->external_id, &dst->external_id_len,
                               src->external_id, src->external_id_len,
                               sizeof(dst->external_id), keep);

    if (keep) {
        return;
    }

    ngx_http_momo_record_field(dst->reason, &dst->reason_len,
                               src->reason, src->reason_len,
                               sizeof(dst->reason), 0);
    ngx_http_momo_record_field(dst->financial_transaction_id, &dst->fin_len,
                               src->financial_transaction_id, src->fin_len,
                               sizeof(dst->financial_transaction_id), 0);
}


static void
ngx_http_momo_record_field(u_char *dst, u_char *dst_len, u_char *src,
    u_char src_len, size_t size, ngx_uint_t keep)
{
    if (src_len == 0 || (keep && *dst_len != 0)) {
        return;
    }

    if (src_len > size) {
        src_len = (u_char) size;
    }

    ngx_memcpy(dst, src, src_len);
    *dst_len = src_len;
}


/* the payload an Idempotency-Key stands for */

static ngx_uint_t
ngx_http_momo_record_same(ngx_http_momo_record_t *a,
    ngx_http_momo_record_t *b)
{
    return a->amount_len == b->amount_len
           && a->currency_len == b->currency_len
           && a->phone_len == b->phone_len
           && ngx_memcmp(a->amount, b->amount, a->amount_len) == 0
           && ngx_memcmp(a->currency, b->currency, a->currency_len) == 0
           && ngx_memcmp(a->phone, b->phone, a->phone_len) == 0;
}


static void
ngx_http_momo_record_payload(ngx_http_momo_record_t *dst,
    ngx_http_momo_record_t *src)
{
    ngx_memcpy(dst->amount, src->amount, src->amount_len);
    dst->amount_len = src->amount_len;
    ngx_memcpy(dst->currency, src->currency, src->currency_len);
    dst->currency_len = src->currency_len;
    ngx_memcpy(dst->phone, src->phone, src->phone_len);
    dst->phone_len = src->phone_len;
    ngx_memcpy(dst->external_id, src->external_id, src->external_id_len);
    dst->external_id_len = src->external_id_len;
    dst->account = src->account;            /* whose MTN account asks */
}
