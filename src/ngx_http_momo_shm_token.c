
/*
 * Copyright (C) The ngx_http_momo_module developers
 *
 * MTN access tokens in the momo zone: two slots per account so that
 * readers never see a half-written token, and a refresh lease that dies
 * with its worker.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_momo_shm.h"


static ngx_int_t ngx_http_momo_token_copied(ngx_http_momo_token_copy_t *c,
    ngx_pool_t *pool, ngx_str_t *token, ngx_uint_t *gen);
static void ngx_http_momo_token_copy(ngx_http_momo_product_t *pr,
    ngx_http_momo_token_t *t, ngx_atomic_uint_t version, ngx_uint_t gen,
    time_t refresh_at, u_char *data, size_t len);
static ngx_http_momo_token_t *ngx_http_momo_token_get(
    ngx_http_momo_shctx_t *sh, ngx_slab_pool_t *shpool, ngx_str_t *key,
    ngx_uint_t create, char **err);


/*
 * NGX_OK: a usable token, in *token as "Bearer <token>"; NGX_DECLINED:
 * the caller holds the refresh lease (and has the token, if one is still
 * usable); NGX_BUSY: no usable token, another worker refreshes it.  A
 * fresh token comes from this worker's copy while the zone's token keeps
 * the copy's version: no lock then.
 */

ngx_int_t
ngx_http_momo_token_acquire(ngx_shm_zone_t *zone, ngx_http_momo_product_t *pr,
    ngx_msec_t lease, ngx_uint_t serial, ngx_pool_t *pool, ngx_str_t *token,
    ngx_uint_t *gen)
{
    char                        *err;
    u_char                      *p, buf[NGX_HTTP_MOMO_TOKEN_MAX];
    size_t                       len;
    time_t                       now, refresh_at;
    ngx_int_t                    rc;
    ngx_str_t                   *key;
    ngx_atomic_uint_t            version;
    ngx_msec_t                   msec;
    ngx_uint_t                   usable, fresh, lease_free, backoff;
    ngx_slab_pool_t             *shpool;
    ngx_http_momo_token_t       *t;
    ngx_http_momo_shctx_t       *sh;
    ngx_http_momo_token_slot_t  *slot;

    token->len = 0;
    token->data = NULL;
    *gen = 0;

    if (ngx_http_momo_token_copied(pr->copy, pool, token, gen) != NGX_DECLINED)
    {
        return token->len ? NGX_OK : NGX_ERROR;
    }

    sh = ngx_http_momo_shm_ctx(zone, &shpool);
    if (sh == NULL) {
        return NGX_ERROR;
    }

    key = &pr->token_key;

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
        t->lease_serial = serial;
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
    version = t->version;
    refresh_at = slot->refresh_at;

    ngx_shmtx_unlock(&shpool->mutex);

    if (len == 0) {
        return rc;
    }

    if (fresh) {
        ngx_http_momo_token_copy(pr, t, version, *gen, refresh_at, buf, len);
    }

    /* the one copy a request keeps: the calls' Authorization value */

    token->data = ngx_pnalloc(pool, sizeof("Bearer ") - 1 + len);
    if (token->data == NULL) {

        if (rc == NGX_DECLINED) {
            ngx_http_momo_token_release(zone, key, serial);
        }

        return NGX_ERROR;
    }

    p = ngx_cpymem(token->data, "Bearer ", sizeof("Bearer ") - 1);
    ngx_memcpy(p, buf, len);
    token->len = sizeof("Bearer ") - 1 + len;

    return rc;

failed:

    ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0, "momo: %s", err);

    return NGX_ERROR;
}


/* NGX_DECLINED: no good copy; NGX_OK: *token is the copy's; else NGX_ERROR */

static ngx_int_t
ngx_http_momo_token_copied(ngx_http_momo_token_copy_t *c, ngx_pool_t *pool,
    ngx_str_t *token, ngx_uint_t *gen)
{
    if (c == NULL
        || c->token == NULL
        || c->version != c->token->version
        || ngx_time() >= c->refresh_at)
    {
        return NGX_DECLINED;
    }

    token->data = ngx_pnalloc(pool, c->len);
    if (token->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(token->data, c->data, c->len);
    token->len = c->len;
    *gen = c->gen;

    return NGX_OK;
}


/*
 * This worker's copy of t's fresh token, as the zone held it at version.
 * Its room is taken once per product and worker, from the cycle's pool;
 * without memory there is just no copy.
 */

static void
ngx_http_momo_token_copy(ngx_http_momo_product_t *pr, ngx_http_momo_token_t *t,
    ngx_atomic_uint_t version, ngx_uint_t gen, time_t refresh_at,
    u_char *data, size_t len)
{
    u_char                      *p;
    ngx_http_momo_token_copy_t  *c;

    c = pr->copy;

    if (c == NULL) {
        c = ngx_palloc(ngx_cycle->pool, sizeof(ngx_http_momo_token_copy_t));
        if (c == NULL) {
            return;
        }

        pr->copy = c;
    }

    p = ngx_cpymem(c->data, "Bearer ", sizeof("Bearer ") - 1);
    ngx_memcpy(p, data, len);

    c->len = sizeof("Bearer ") - 1 + len;
    c->token = t;
    c->version = version;
    c->gen = gen;
    c->refresh_at = refresh_at;
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
    t->version++;
    t->lease_pid = 0;
    t->backoff = 0;

    *gen = t->gen;

    ngx_shmtx_unlock(&shpool->mutex);

    return NGX_OK;
}


/* a refresh that failed, or whose request died: only its holder's */

void
ngx_http_momo_token_release(ngx_shm_zone_t *zone, ngx_str_t *key,
    ngx_uint_t serial)
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

    if (t != NULL
        && ngx_http_momo_lease_owned(t->lease_pid, t->lease_serial, serial))
    {
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
        t->version++;
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
