
/*
 * Copyright (C) The ngx_http_momo_module developers
 *
 * Payment records in the momo zone: an rbtree keyed by the reference
 * id, an LRU queue for eviction, and the status-query, notify and
 * payment-in-flight leases.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_momo_shm.h"


static ngx_http_momo_node_t *ngx_http_momo_record_lock(ngx_shm_zone_t *zone,
    u_char *ref, ngx_http_momo_shctx_t **shp, ngx_slab_pool_t **shpool);
static ngx_http_momo_node_t *ngx_http_momo_record_lookup(
    ngx_http_momo_shctx_t *sh, u_char *ref, uint32_t hash);
static ngx_http_momo_node_t *ngx_http_momo_record_create(
    ngx_http_momo_shctx_t *sh, ngx_slab_pool_t *shpool, u_char *ref,
    uint32_t hash);
static void ngx_http_momo_record_touch(ngx_http_momo_shctx_t *sh,
    ngx_http_momo_node_t *mn);
static void ngx_http_momo_record_free(ngx_http_momo_shctx_t *sh,
    ngx_slab_pool_t *shpool, ngx_http_momo_node_t *mn);
static void ngx_http_momo_record_merge(ngx_http_momo_record_t *dst,
    ngx_http_momo_record_t *src);
static ngx_uint_t ngx_http_momo_record_same(ngx_http_momo_record_t *a,
    ngx_http_momo_record_t *b);
static void ngx_http_momo_record_payload(ngx_http_momo_record_t *dst,
    ngx_http_momo_record_t *src);
static void ngx_http_momo_record_field(u_char *dst, u_char *dst_len,
    u_char *src, u_char src_len, size_t size, ngx_uint_t keep);


ngx_int_t
ngx_http_momo_record_get(ngx_shm_zone_t *zone, u_char *ref,
    ngx_http_momo_record_t *rec)
{
    uint32_t                hash;
    ngx_int_t               rc;
    ngx_slab_pool_t        *shpool;
    ngx_http_momo_node_t   *mn;
    ngx_http_momo_shctx_t  *sh;

    sh = ngx_http_momo_shm_ctx(zone, &shpool);
    if (sh == NULL) {
        return NGX_DECLINED;
    }

    hash = ngx_crc32_short(ref, NGX_HTTP_MOMO_UUID_LEN);

    ngx_shmtx_lock(&shpool->mutex);

    mn = ngx_http_momo_record_lookup(sh, ref, hash);

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
    uint32_t                hash;
    ngx_slab_pool_t        *shpool;
    ngx_http_momo_node_t   *mn;
    ngx_http_momo_shctx_t  *sh;

    sh = ngx_http_momo_shm_ctx(zone, &shpool);
    if (sh == NULL) {
        return NGX_ERROR;
    }

    hash = ngx_crc32_short(rec->reference_id, NGX_HTTP_MOMO_UUID_LEN);

    ngx_shmtx_lock(&shpool->mutex);

    mn = ngx_http_momo_record_lookup(sh, rec->reference_id, hash);

    if (mn == NULL) {
        mn = ngx_http_momo_record_create(sh, shpool, rec->reference_id,
                                         hash);
        if (mn == NULL) {
            ngx_shmtx_unlock(&shpool->mutex);
            goto failed;
        }

    } else {
        ngx_http_momo_record_touch(sh, mn);
    }

    ngx_http_momo_record_merge(&mn->rec, rec);

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

    hash = ngx_crc32_short(rec->reference_id, NGX_HTTP_MOMO_UUID_LEN);
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
    uint32_t                hash;
    ngx_slab_pool_t        *shpool;
    ngx_http_momo_node_t   *mn;
    ngx_http_momo_shctx_t  *sh;

    sh = ngx_http_momo_shm_ctx(zone, &shpool);
    if (sh == NULL) {
        return;
    }

    hash = ngx_crc32_short(ref, NGX_HTTP_MOMO_UUID_LEN);

    ngx_shmtx_lock(&shpool->mutex);

    mn = ngx_http_momo_record_lookup(sh, ref, hash);

    if (mn != NULL && mn->pay_pid == ngx_pid && mn->pay_owner == owner) {
        mn->pay_pid = 0;

        if (forget && !mn->rec.accepted) {
            mn->rec.amount_len = 0;
            mn->rec.currency_len = 0;
            mn->rec.phone_len = 0;
            mn->rec.external_id_len = 0;
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

    hash = ngx_crc32_short(ref, NGX_HTTP_MOMO_UUID_LEN);
    now = ngx_current_msec;

    ngx_shmtx_lock(&shpool->mutex);

    mn = ngx_http_momo_record_lookup(sh, ref, hash);

    if (mn == NULL) {
        mn = ngx_http_momo_record_create(sh, shpool, ref, hash);
        if (mn == NULL) {
            ngx_shmtx_unlock(&shpool->mutex);
            goto failed;
        }

        goto lease;
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

lease:

    mn->query_pid = ngx_pid;
    mn->query_serial = serial;
    mn->query_until = now + lease;

    *rec = mn->rec;

    ngx_shmtx_unlock(&shpool->mutex);

    (void) ngx_atomic_fetch_add(&c->cache_misses, 1);

    return NGX_OK;

failed:

    ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                  "momo: no memory in momo zone \"%V\" for payment \"%*s\"",
                  &zone->shm.name, (size_t) NGX_HTTP_MOMO_UUID_LEN, ref);

    return NGX_ERROR;
}


/* a status query that ended without MTN's answer: the next one asks */

void
ngx_http_momo_record_unquery(ngx_shm_zone_t *zone, u_char *ref,
    ngx_uint_t serial)
{
    ngx_slab_pool_t        *shpool;
    ngx_http_momo_node_t   *mn;
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

    ngx_shmtx_unlock(&shpool->mutex);
}


ngx_int_t
ngx_http_momo_record_notify(ngx_shm_zone_t *zone, u_char *ref,
    ngx_msec_t lease, ngx_uint_t serial)
{
    uint32_t                hash;
    ngx_int_t               rc;
    ngx_msec_t              now;
    ngx_slab_pool_t        *shpool;
    ngx_http_momo_node_t   *mn;
    ngx_http_momo_shctx_t  *sh;

    sh = ngx_http_momo_shm_ctx(zone, &shpool);
    if (sh == NULL) {
        return NGX_DECLINED;
    }

    hash = ngx_crc32_short(ref, NGX_HTTP_MOMO_UUID_LEN);
    now = ngx_current_msec;
    rc = NGX_DECLINED;

    ngx_shmtx_lock(&shpool->mutex);

    mn = ngx_http_momo_record_lookup(sh, ref, hash);

    if (mn != NULL
        && ngx_http_momo_state_final(mn->rec.state)
        && mn->rec.notified != 2
        && !(mn->notifying
             && (ngx_msec_int_t) (mn->notify_until - now) > 0))
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

    return ngx_http_momo_record_lookup(sh, ref,
                                       ngx_crc32_short(ref,
                                                       NGX_HTTP_MOMO_UUID_LEN));
}


static ngx_http_momo_node_t *
ngx_http_momo_record_lookup(ngx_http_momo_shctx_t *sh, u_char *ref,
    uint32_t hash)
{
    ngx_int_t              rc;
    ngx_rbtree_node_t     *node, *sentinel;
    ngx_http_momo_node_t  *mn;

    node = sh->rbtree.root;
    sentinel = sh->rbtree.sentinel;

    while (node != sentinel) {

        if (hash < node->key) {
            node = node->left;
            continue;
        }

        if (hash > node->key) {
            node = node->right;
            continue;
        }

        /* hash == node->key */

        mn = (ngx_http_momo_node_t *) node;

        rc = ngx_memcmp(ref, mn->rec.reference_id, NGX_HTTP_MOMO_UUID_LEN);

        if (rc == 0) {
            return mn;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


static ngx_http_momo_node_t *
ngx_http_momo_record_create(ngx_http_momo_shctx_t *sh,
    ngx_slab_pool_t *shpool, u_char *ref, uint32_t hash)
{
    ngx_http_momo_node_t  *mn;

    mn = ngx_http_momo_shm_alloc(sh, shpool, sizeof(ngx_http_momo_node_t));
    if (mn == NULL) {
        return NULL;
    }

    ngx_memzero(mn, sizeof(ngx_http_momo_node_t));

    mn->node.key = hash;
    ngx_memcpy(mn->rec.reference_id, ref, NGX_HTTP_MOMO_UUID_LEN);
    mn->rec.state = NGX_HTTP_MOMO_ST_UNKNOWN;

    ngx_rbtree_insert(&sh->rbtree, &mn->node);
    ngx_queue_insert_head(&sh->queue, &mn->queue);

    return mn;
}


static void
ngx_http_momo_record_touch(ngx_http_momo_shctx_t *sh,
    ngx_http_momo_node_t *mn)
{
    ngx_queue_remove(&mn->queue);
    ngx_queue_insert_head(&sh->queue, &mn->queue);
}


/*
 * Frees up to NGX_HTTP_MOMO_EVICT of the least recently used records that
 * nobody is querying or notifying.  When every record has a live lease,
 * the oldest goes anyway: its holder's later update re-creates it.
 */

ngx_uint_t
ngx_http_momo_record_expire(ngx_http_momo_shctx_t *sh,
    ngx_slab_pool_t *shpool)
{
    ngx_uint_t             n;
    ngx_msec_t             now;
    ngx_queue_t           *q, *prev;
    ngx_http_momo_node_t  *mn;

    now = ngx_current_msec;
    n = 0;

    for (q = ngx_queue_last(&sh->queue);
         q != ngx_queue_sentinel(&sh->queue) && n < NGX_HTTP_MOMO_EVICT;
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

    if (n == 0 && !ngx_queue_empty(&sh->queue)) {
        q = ngx_queue_last(&sh->queue);
        mn = ngx_queue_data(q, ngx_http_momo_node_t, queue);

        ngx_http_momo_record_free(sh, shpool, mn);
        n++;
    }

    if (n) {
        (void) ngx_atomic_fetch_add(&sh->counters.cache_evictions, n);
    }

    return n;
}


static void
ngx_http_momo_record_free(ngx_http_momo_shctx_t *sh, ngx_slab_pool_t *shpool,
    ngx_http_momo_node_t *mn)
{
    ngx_queue_remove(&mn->queue);
    ngx_rbtree_delete(&sh->rbtree, &mn->node);
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


void
ngx_http_momo_rbtree_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t     **p;
    ngx_http_momo_node_t   *mn, *mnt;

    for ( ;; ) {

        if (node->key < temp->key) {

            p = &temp->left;

        } else if (node->key > temp->key) {

            p = &temp->right;

        } else { /* node->key == temp->key */

            mn = (ngx_http_momo_node_t *) node;
            mnt = (ngx_http_momo_node_t *) temp;

            p = (ngx_memcmp(mn->rec.reference_id, mnt->rec.reference_id,
                            NGX_HTTP_MOMO_UUID_LEN)
                 < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}
