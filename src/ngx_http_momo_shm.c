
/*
 * Copyright (C) The ngx_http_momo_module developers
 *
 * The momo shared zone: MTN access tokens with a refresh lease, the cache
 * of payment records behind momo_status and the notify bookkeeping, and
 * the counters momo_metrics prints.
 *
 * Every critical section runs under shpool->mutex, copies a few hundred
 * bytes at most (a token: 4 KB), and neither logs nor does I/O.  When a
 * worker dies holding the mutex the master force-unlocks it, so what is
 * written under the lock is ordered so that a half-done write is never
 * visible: a token goes into the inactive slot before "active" flips.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_momo_module.h"


#define NGX_HTTP_MOMO_SHM_MAGIC    0x6f6d6f6d    /* "momo" */
#define NGX_HTTP_MOMO_SHM_VERSION  1

#define NGX_HTTP_MOMO_TOKENS       16    /* accounts (key) per zone */
#define NGX_HTTP_MOMO_BACKOFF      1000  /* ms after a failed refresh */
#define NGX_HTTP_MOMO_EVICT        4     /* records freed per attempt */


typedef struct {
    time_t                      refresh_at;
    time_t                      expires_at;
    size_t                      len;            /* 0: no token */
    u_char                      data[NGX_HTTP_MOMO_TOKEN_MAX];
} ngx_http_momo_token_slot_t;


typedef struct {
    ngx_http_momo_token_slot_t  slot[2];
    ngx_uint_t                  active;         /* the slot readers use */
    ngx_uint_t                  gen;            /* bumped by each store */

    ngx_pid_t                   lease_pid;      /* 0: nobody refreshes */
    ngx_msec_t                  lease_until;
    ngx_msec_t                  next_try;       /* when backoff is set */
    ngx_uint_t                  backoff;

    size_t                      key_len;
    u_char                      key[NGX_HTTP_MOMO_KEY_MAX];
} ngx_http_momo_token_t;


typedef struct {
    ngx_rbtree_node_t           node;           /* key: crc32 of the ref */
    ngx_queue_t                 queue;          /* LRU, newest first */

    ngx_msec_t                  query_until;
    ngx_msec_t                  last_query;
    ngx_msec_t                  notify_until;
    ngx_pid_t                   query_pid;      /* 0: no query lease */
    unsigned                    queried:1;      /* last_query is set */
    unsigned                    notifying:1;    /* notify_until is set */

    ngx_http_momo_record_t      rec;
} ngx_http_momo_node_t;


typedef struct {
    ngx_uint_t                  magic;
    ngx_uint_t                  version;
    size_t                      layout;         /* sizes of the structs */

    ngx_rbtree_t                rbtree;
    ngx_rbtree_node_t           sentinel;
    ngx_queue_t                 queue;

    /* filled in order and never freed: the first NULL ends the table */
    ngx_http_momo_token_t      *tokens[NGX_HTTP_MOMO_TOKENS];

    ngx_http_momo_counters_t    counters;
} ngx_http_momo_shctx_t;


#define ngx_http_momo_shm_layout()                                           \
    (sizeof(ngx_http_momo_shctx_t) * 1000003                                 \
     + sizeof(ngx_http_momo_node_t) * 1009                                   \
     + sizeof(ngx_http_momo_token_t))



static ngx_uint_t ngx_http_momo_lease_live(ngx_pid_t pid, ngx_msec_t until,
    ngx_msec_t now);
static ngx_http_momo_shctx_t *ngx_http_momo_shm_ctx(ngx_shm_zone_t *zone,
    ngx_slab_pool_t **shpool);
static void *ngx_http_momo_shm_alloc(ngx_http_momo_shctx_t *sh,
    ngx_slab_pool_t *shpool, size_t size);
static ngx_http_momo_token_t *ngx_http_momo_token_get(
    ngx_http_momo_shctx_t *sh, ngx_slab_pool_t *shpool, ngx_str_t *key,
    ngx_uint_t create, char **err);
static ngx_http_momo_node_t *ngx_http_momo_record_lookup(
    ngx_http_momo_shctx_t *sh, u_char *ref, uint32_t hash);
static ngx_http_momo_node_t *ngx_http_momo_record_create(
    ngx_http_momo_shctx_t *sh, ngx_slab_pool_t *shpool, u_char *ref,
    uint32_t hash);
static void ngx_http_momo_record_touch(ngx_http_momo_shctx_t *sh,
    ngx_http_momo_node_t *mn);
static ngx_uint_t ngx_http_momo_record_expire(ngx_http_momo_shctx_t *sh,
    ngx_slab_pool_t *shpool);
static void ngx_http_momo_record_free(ngx_http_momo_shctx_t *sh,
    ngx_slab_pool_t *shpool, ngx_http_momo_node_t *mn);
static void ngx_http_momo_record_merge(ngx_http_momo_record_t *dst,
    ngx_http_momo_record_t *src);
static void ngx_http_momo_record_field(u_char *dst, u_char *dst_len,
    u_char *src, u_char src_len, size_t size, ngx_uint_t keep);
static void ngx_http_momo_rbtree_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);


/* upper bounds of the latency buckets, in ms; metrics prints them in s */

static ngx_msec_t  ngx_http_momo_latency_bounds[] = {
    50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000
};


ngx_int_t
ngx_http_momo_shm_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    size_t                  len;
    ngx_slab_pool_t        *shpool;
    ngx_http_momo_shctx_t  *sh;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    sh = shpool->data;

    /*
     * A reload that keeps the zone (same name, size and tag) passes the
     * old zone's data, and shm.exists is the Windows way of saying the
     * same.  The old workers still serve from this memory while the
     * master runs this: adopt it, and write nothing.  shm_zone->data
     * belongs to the directive code, so the shared context is found at
     * shpool->data, which a fresh (zero-filled) mapping has NULL.
     */

    if (data != NULL || shm_zone->shm.exists || sh != NULL) {

        if (sh == NULL
            || sh->magic != NGX_HTTP_MOMO_SHM_MAGIC
            || sh->version != NGX_HTTP_MOMO_SHM_VERSION
            || sh->layout != ngx_http_momo_shm_layout())
        {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                          "momo zone \"%V\" was created by another version "
                          "of ngx_http_momo_module; change the momo_zone "
                          "size or restart nginx instead of reloading",
                          &shm_zone->shm.name);
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    len = sizeof(" in momo zone \"\"") + shm_zone->shm.name.len;

    shpool->log_ctx = ngx_slab_alloc(shpool, len);
    if (shpool->log_ctx == NULL) {
        goto failed;
    }

    ngx_sprintf(shpool->log_ctx, " in momo zone \"%V\"%Z",
                &shm_zone->shm.name);

    sh = ngx_slab_calloc(shpool, sizeof(ngx_http_momo_shctx_t));
    if (sh == NULL) {
        goto failed;
    }

    sh->magic = NGX_HTTP_MOMO_SHM_MAGIC;
    sh->version = NGX_HTTP_MOMO_SHM_VERSION;
    sh->layout = ngx_http_momo_shm_layout();

    ngx_rbtree_init(&sh->rbtree, &sh->sentinel,
                    ngx_http_momo_rbtree_insert_value);

    ngx_queue_init(&sh->queue);

    /*
     * A full zone is handled by evicting records, and nothing may be
     * logged under the lock: the slab allocator stays quiet.
     */

    shpool->log_nomem = 0;

    shpool->data = sh;

    return NGX_OK;

failed:

    ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                  "momo zone \"%V\" of %uz bytes is too small",
                  &shm_zone->shm.name, shm_zone->shm.size);

    return NGX_ERROR;
}


ngx_http_momo_counters_t *
ngx_http_momo_counters(ngx_shm_zone_t *zone)
{
    ngx_slab_pool_t        *shpool;
    ngx_http_momo_shctx_t  *sh;

    sh = ngx_http_momo_shm_ctx(zone, &shpool);
    if (sh == NULL) {
        return NULL;
    }

    return &sh->counters;
}


void
ngx_http_momo_count_call(ngx_shm_zone_t *zone, ngx_uint_t leg,
    ngx_uint_t status, ngx_msec_t elapsed)
{
    ngx_uint_t                 i;
    ngx_http_momo_counters_t  *c;

    c = ngx_http_momo_counters(zone);

    if (c == NULL || leg > NGX_HTTP_MOMO_LEG_MAX) {
        return;
    }

    if (status >= 600) {
        status = 0;
    }

    for (i = 0; i < NGX_HTTP_MOMO_LATENCY_BUCKETS - 1; i++) {
        if (elapsed <= ngx_http_momo_latency_bounds[i]) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&c->calls[leg][status], 1);
    (void) ngx_atomic_fetch_add(&c->latency[leg][i], 1);
    (void) ngx_atomic_fetch_add(&c->latency_sum_ms[leg], elapsed);
    (void) ngx_atomic_fetch_add(&c->latency_count[leg], 1);
}


ngx_int_t
ngx_http_momo_token_acquire(ngx_shm_zone_t *zone, ngx_str_t *key,
    ngx_msec_t lease, ngx_pool_t *pool, ngx_str_t *token, ngx_uint_t *gen)
{
    char                        *err;
    u_char                       buf[NGX_HTTP_MOMO_TOKEN_MAX];
    size_t                       len;
    time_t                       now;
    ngx_int_t                    rc;
    ngx_msec_t                   msec;
    ngx_uint_t                   usable, fresh, lease_free, backoff;
    ngx_slab_pool_t             *shpool;
    ngx_http_momo_token_t       *t;
    ngx_http_momo_shctx_t       *sh;
    ngx_http_momo_token_slot_t  *slot;

    token->len = 0;
    token->data = NULL;
    *gen = 0;

    sh = ngx_http_momo_shm_ctx(zone, &shpool);
    if (sh == NULL) {
        return NGX_ERROR;
    }

    now = ngx_time();
    msec = ngx_current_msec;
    err = NULL;
    len = 0;

    ngx_shmtx_lock(&shpool->mutex);

    t = ngx_http_momo_token_get(sh, shpool, key, 1, &err);

    if (t == NULL) {
        ngx_shmtx_unlock(&shpool->mutex);
        goto failed;
    }

    slot = &t->slot[t->active];

    usable = (slot->len != 0 && now < slot->expires_at);
    fresh = (usable && now < slot->refresh_at);
    lease_free = !ngx_http_momo_lease_live(t->lease_pid, t->lease_until,
                                           msec);
    backoff = (t->backoff
               && (ngx_msec_int_t) (t->next_try - msec) > 0);

    if (fresh) {
        rc = NGX_OK;

    } else if (lease_free && !backoff) {
        /* the caller refreshes; a crashed caller's lease just runs out */
        t->lease_pid = ngx_pid;
        t->lease_until = msec + lease;
        rc = NGX_DECLINED;

    } else if (usable) {
        /* someone else refreshes, or the last try failed: keep using it */
        rc = NGX_OK;

    } else {
        rc = NGX_BUSY;
    }

    if (usable) {
        len = slot->len;
        ngx_memcpy(buf, slot->data, len);
    }

    *gen = t->gen;

    ngx_shmtx_unlock(&shpool->mutex);

    if (len == 0) {
        return rc;
    }

    token->data = ngx_pnalloc(pool, len);
    if (token->data == NULL) {

        if (rc == NGX_DECLINED) {
            ngx_http_momo_token_release(zone, key);
        }

        return NGX_ERROR;
    }

    ngx_memcpy(token->data, buf, len);
    token->len = len;

    return rc;

failed:

    ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0, "momo: %s", err);

    return NGX_ERROR;
}


ngx_int_t
ngx_http_momo_token_store(ngx_shm_zone_t *zone, ngx_str_t *key,
    ngx_str_t *token, time_t ttl, ngx_uint_t *gen)
{
    char                        *err;
    time_t                       now, expires_at, refresh_at;
    ngx_slab_pool_t             *shpool;
    ngx_http_momo_token_t       *t;
    ngx_http_momo_shctx_t       *sh;
    ngx_http_momo_token_slot_t  *slot;

    sh = ngx_http_momo_shm_ctx(zone, &shpool);
    if (sh == NULL) {
        return NGX_ERROR;
    }

    if (token->len == 0 || token->len > NGX_HTTP_MOMO_TOKEN_MAX
        || ttl <= 0)
    {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "momo: MTN token of %uz bytes valid for %T s "
                      "not stored (at most %d bytes)",
                      token->len, ttl, NGX_HTTP_MOMO_TOKEN_MAX);
        return NGX_DECLINED;
    }

    /*
     * Stop using a token 30 s before MTN does, so that a request
     * started with it does not reach MTN expired; ask for the next one
     * 10 min ahead, as MTN suggests for its 3600 s tokens.
     */

    now = ngx_time();
    expires_at = now + ttl - ngx_min(30, ttl / 10);
    refresh_at = now + ttl - ngx_min(600, ttl / 4);

    err = NULL;

    ngx_shmtx_lock(&shpool->mutex);

    t = ngx_http_momo_token_get(sh, shpool, key, 1, &err);

    if (t == NULL) {
        ngx_shmtx_unlock(&shpool->mutex);

        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0, "momo: %s", err);
        return NGX_ERROR;
    }

    slot = &t->slot[t->active ^ 1];

    ngx_memcpy(slot->data, token->data, token->len);
    slot->len = token->len;
    slot->refresh_at = refresh_at;
    slot->expires_at = expires_at;

    ngx_memory_barrier();

    t->active ^= 1;

    t->gen++;
    t->lease_pid = 0;
    t->backoff = 0;

    *gen = t->gen;

    ngx_shmtx_unlock(&shpool->mutex);

    return NGX_OK;
}


void
ngx_http_momo_token_release(ngx_shm_zone_t *zone, ngx_str_t *key)
{
    ngx_slab_pool_t        *shpool;
    ngx_http_momo_token_t  *t;
    ngx_http_momo_shctx_t  *sh;

    sh = ngx_http_momo_shm_ctx(zone, &shpool);
    if (sh == NULL) {
        return;
    }

    ngx_shmtx_lock(&shpool->mutex);

    t = ngx_http_momo_token_get(sh, shpool, key, 0, NULL);

    if (t != NULL) {
        t->lease_pid = 0;
        t->next_try = ngx_current_msec + NGX_HTTP_MOMO_BACKOFF;
        t->backoff = 1;
    }

    ngx_shmtx_unlock(&shpool->mutex);
}


void
ngx_http_momo_token_drop(ngx_shm_zone_t *zone, ngx_str_t *key,
    ngx_uint_t gen)
{
    ngx_slab_pool_t        *shpool;
    ngx_http_momo_token_t  *t;
    ngx_http_momo_shctx_t  *sh;

    sh = ngx_http_momo_shm_ctx(zone, &shpool);
    if (sh == NULL) {
        return;
    }

    ngx_shmtx_lock(&shpool->mutex);

    t = ngx_http_momo_token_get(sh, shpool, key, 0, NULL);

    /* a newer token than the one MTN refused stays */

    if (t != NULL && t->gen == gen) {
        t->slot[t->active].len = 0;
    }

    ngx_shmtx_unlock(&shpool->mutex);
}


/*
 * For momo_metrics: entry i of the token table.  NGX_DONE past the last
 * entry, NGX_DECLINED when the entry holds no usable token, NGX_OK with
 * the seconds left and the generation.  Neither the token nor its key
 * leaves the zone.
 */

ngx_int_t
ngx_http_momo_token_info(ngx_shm_zone_t *zone, ngx_uint_t i,
    time_t *expires_in, ngx_uint_t *gen)
{
    time_t                       now;
    ngx_int_t                    rc;
    ngx_slab_pool_t             *shpool;
    ngx_http_momo_token_t       *t;
    ngx_http_momo_shctx_t       *sh;
    ngx_http_momo_token_slot_t  *slot;

    sh = ngx_http_momo_shm_ctx(zone, &shpool);
    if (sh == NULL || i >= NGX_HTTP_MOMO_TOKENS) {
        return NGX_DONE;
    }

    now = ngx_time();

    ngx_shmtx_lock(&shpool->mutex);

    t = sh->tokens[i];

    if (t == NULL) {
        rc = NGX_DONE;

    } else {
        slot = &t->slot[t->active];

        if (slot->len != 0 && now < slot->expires_at) {
            *expires_in = slot->expires_at - now;
            *gen = t->gen;
            rc = NGX_OK;

        } else {
            rc = NGX_DECLINED;
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return rc;
}


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


ngx_int_t
ngx_http_momo_record_update(ngx_shm_zone_t *zone,
    ngx_http_momo_record_t *rec, ngx_uint_t release_query)
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

    if (release_query) {
        mn->query_pid = 0;
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


ngx_int_t
ngx_http_momo_record_query(ngx_shm_zone_t *zone, u_char *ref,
    ngx_msec_t lease, ngx_msec_t interval, ngx_http_momo_record_t *rec)
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


ngx_int_t
ngx_http_momo_record_notify(ngx_shm_zone_t *zone, u_char *ref,
    ngx_msec_t lease)
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
        mn->notify_until = now + lease;
        rc = NGX_OK;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return rc;
}


void
ngx_http_momo_record_notified(ngx_shm_zone_t *zone, u_char *ref,
    ngx_uint_t ok)
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

    if (mn != NULL) {
        mn->rec.notified = ok ? 2 : 0;
        mn->notifying = 0;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    if (ok) {
        (void) ngx_atomic_fetch_add(&sh->counters.notify_ok, 1);

    } else {
        (void) ngx_atomic_fetch_add(&sh->counters.notify_failed, 1);
    }
}


static ngx_http_momo_shctx_t *
ngx_http_momo_shm_ctx(ngx_shm_zone_t *zone, ngx_slab_pool_t **shpool)
{
    if (zone == NULL || zone->shm.addr == NULL) {
        return NULL;
    }

    *shpool = (ngx_slab_pool_t *) zone->shm.addr;

    return (*shpool)->data;
}


/*
 * Allocates under the lock; when the zone is full, the least recently
 * used payment records make room.  Fails only when none is left.
 */

static void *
ngx_http_momo_shm_alloc(ngx_http_momo_shctx_t *sh, ngx_slab_pool_t *shpool,
    size_t size)
{
    void  *p;

    for ( ;; ) {
        p = ngx_slab_alloc_locked(shpool, size);

        if (p != NULL) {
            return p;
        }

        if (ngx_http_momo_record_expire(sh, shpool) == 0) {
            return NULL;
        }
    }
}


static ngx_http_momo_token_t *
ngx_http_momo_token_get(ngx_http_momo_shctx_t *sh, ngx_slab_pool_t *shpool,
    ngx_str_t *key, ngx_uint_t create, char **err)
{
    ngx_uint_t              i;
    ngx_http_momo_token_t  *t;

    if (key->len > NGX_HTTP_MOMO_KEY_MAX) {
        if (err != NULL) {
            *err = "token key too long";
        }

        return NULL;
    }

    for (i = 0; i < NGX_HTTP_MOMO_TOKENS; i++) {
        t = sh->tokens[i];

        if (t == NULL) {
            break;
        }

        if (t->key_len == key->len
            && ngx_memcmp(t->key, key->data, key->len) == 0)
        {
            return t;
        }
    }

    if (!create) {
        return NULL;
    }

    if (i == NGX_HTTP_MOMO_TOKENS) {
        *err = "too many MTN accounts share the momo zone";
        return NULL;
    }

    t = ngx_http_momo_shm_alloc(sh, shpool, sizeof(ngx_http_momo_token_t));
    if (t == NULL) {
        *err = "no memory in momo zone for an MTN token";
        return NULL;
    }

    ngx_memzero(t, offsetof(ngx_http_momo_token_t, key));

    t->key_len = key->len;
    ngx_memcpy(t->key, key->data, key->len);

    sh->tokens[i] = t;

    return t;
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

static ngx_uint_t
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


static void
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


/*
 * A lease (token refresh, status query) is live until its time runs out,
 * or until its holder's process is gone (killed, crashed): the others
 * must not wait for a dead worker.  kill(pid, 0) sends nothing.
 */

static ngx_uint_t
ngx_http_momo_lease_live(ngx_pid_t pid, ngx_msec_t until, ngx_msec_t now)
{
    if (pid == 0 || (ngx_msec_int_t) (until - now) <= 0) {
        return 0;
    }

    if (pid != ngx_pid && kill(pid, 0) == -1 && ngx_errno == NGX_ESRCH) {
        return 0;
    }

    return 1;
}
