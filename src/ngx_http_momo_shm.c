
/*
 * Copyright (C) The ngx_http_momo_module developers
 *
 * The momo shared zone: its creation and adoption on reload, the
 * counters momo_metrics prints, and the leases of tokens and records.
 * Tokens are in ngx_http_momo_shm_token.c, payment records in
 * ngx_http_momo_shm_record.c.
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

#include "ngx_http_momo_shm.h"


static void ngx_http_momo_shm_hugepages(ngx_shm_t *shm, ngx_log_t *log);
static void ngx_http_momo_shm_settings(ngx_shm_zone_t *shm_zone,
    ngx_http_momo_shctx_t *sh);


/* upper bounds of the latency buckets, in ms; metrics prints them in s */

static ngx_msec_t  ngx_http_momo_latency_bounds[] = {
    50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000
};


ngx_int_t
ngx_http_momo_shm_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    size_t                  len;
    ngx_uint_t              i, n;
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

        /* the one setting kept in the zone follows the new configuration */

        ngx_http_momo_shm_settings(shm_zone, sh);

        return NGX_OK;
    }

    ngx_http_momo_shm_hugepages(&shm_zone->shm, shm_zone->shm.log);

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

    /*
     * Two to four buckets per record the zone can hold (a record takes a
     * 512-byte slot): a lookup reads a bucket and, in a full zone, half a
     * record or less on average before it finds its own or none.  Each
     * record it reads is a miss of the CPU's caches, wherever the zone
     * put it; the buckets take 3 to 6 % of the zone.  A tree of a few
     * hundred thousand records missed them at each of ~20 levels.
     */

    n = 256;

    while (n < shm_zone->shm.size / 256) {
        n <<= 1;
    }

    sh->buckets = ngx_slab_calloc(shpool, n * sizeof(ngx_http_momo_node_t *));
    if (sh->buckets == NULL) {
        goto failed;
    }

    sh->mask = n - 1;

    for (i = 0; i < NGX_HTTP_MOMO_LRU_MAX; i++) {
        ngx_queue_init(&sh->lru[i]);
        sh->sweep_at[i] = NULL;
    }

    sh->snap_walk = 0;
    sh->snap_at = NULL;

    ngx_http_momo_ledger_init(sh);

    /*
     * A full zone is handled by evicting records, and nothing may be
     * logged under the lock: the slab allocator stays quiet.
     */

    shpool->log_nomem = 0;

    shpool->data = sh;

    ngx_http_momo_shm_settings(shm_zone, sh);

    /* momo_zone state=: what the last nginx left */

    return ngx_http_momo_state_load(shm_zone, sh, shpool);

failed:

    ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                  "momo zone \"%V\" of %uz bytes is too small",
                  &shm_zone->shm.name, shm_zone->shm.size);

    return NGX_ERROR;
}


/*
 * The zone asks Linux for 2 MB pages (transparent huge pages): a payment
 * reads a bucket and writes a record wherever they are in a zone of up to
 * gigabytes, and with 4 kB pages nearly each of those touches misses the
 * CPU's TLB, which covers a few megabytes of them, and walks the page
 * tables.  Linux gives shared memory huge pages only where
 * /sys/kernel/mm/transparent_hugepage/shmem_enabled allows them: "advise"
 * (to mappings that ask, as this one), "within_size" or "always".  With
 * "never", Debian's default, or without THP in the kernel, the zone keeps
 * 4 kB pages.  The master asks once, when it makes the zone and before
 * it writes the zone's index: the request belongs to the mapping, which
 * every worker inherits, so the first one to map the zone (below) takes
 * 2 MB pages and the others map those.  A zone kept by a reload keeps
 * the pages it has.
 */

static void
ngx_http_momo_shm_hugepages(ngx_shm_t *shm, ngx_log_t *log)
{
#if (NGX_LINUX && defined MADV_HUGEPAGE)

    if (madvise((void *) shm->addr, shm->size, MADV_HUGEPAGE) == -1) {
        ngx_log_error(NGX_LOG_INFO, log, ngx_errno,
                      "momo zone \"%V\": madvise(MADV_HUGEPAGE) failed, "
                      "it keeps 4 kB pages", &shm->name);
    }
#endif
}


/*
 * The zone's memory is taken at start: each worker maps all of it before
 * it serves (ngx_http_momo_init_process), the first one allocating the
 * pages.  The master has only what it wrote: a daemon's master is a child
 * of the process that created the zone, and a fork copies none of the
 * page table of shared memory.  Otherwise every worker takes a page fault
 * the first time it touches each page of the zone, for as long as the
 * zone fills: one payment in eight makes its record on a new page, with
 * the zone's lock held.  And memory the machine does not have is found
 * missing at start, not in the middle of a payment.  Without
 * MADV_POPULATE_WRITE (Linux before 5.14, other systems) the pages come
 * at first use, as in any shared zone of nginx.
 */

void
ngx_http_momo_shm_populate(ngx_shm_t *shm, ngx_log_t *log)
{
#if (NGX_LINUX && defined MADV_POPULATE_WRITE)

    ngx_err_t   err;
    ngx_uint_t  level;

    if (madvise((void *) shm->addr, shm->size, MADV_POPULATE_WRITE) == 0) {
        return;
    }

    err = ngx_errno;
    level = (err == NGX_EINVAL) ? NGX_LOG_INFO : NGX_LOG_WARN;

    ngx_log_error(level, log, err,
                  "momo zone \"%V\": madvise(MADV_POPULATE_WRITE) failed, "
                  "its memory is taken as it is used", &shm->name);
#endif
}


/*
 * momo_notify_retry's backoff is applied under the zone's lock, by the
 * worker (or request) that saw a delivery fail: its two times live here.
 */

static void
ngx_http_momo_shm_settings(ngx_shm_zone_t *shm_zone, ngx_http_momo_shctx_t *sh)
{
    ngx_http_momo_main_conf_t  *mmcf;

    mmcf = shm_zone->data;

    sh->notify_first = mmcf->notify_first;
    sh->notify_max = mmcf->notify_max;
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


ngx_http_momo_shctx_t *
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

void *
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


/*
 * A lease (token refresh, status query) is live until its time runs out,
 * or until its holder's process is gone (killed, crashed): the others
 * must not wait for a dead worker.  kill(pid, 0) sends nothing.
 */

ngx_uint_t
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
