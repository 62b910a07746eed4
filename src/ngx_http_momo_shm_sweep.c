
/*
 * Copyright (C) The ngx_http_momo_module developers
 *
 * The zone's side of the reconciler: one worker sweeps at a time under a
 * lease that dies with its holder; each payment carries its schedule
 * (when MTN took it, when its outcome became known, which reconcile ages
 * were queried, when the next delivery to the application may go), and a
 * sweep picks what is due under the lock, in one pass, then works on its
 * copy without the lock.  Times are wall-clock ms, as in the state file.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_momo_shm.h"


#define NGX_HTTP_MOMO_SWEEP_SCAN  4096  /* records looked at per call */


static ngx_uint_t ngx_http_momo_sweep_queue(ngx_http_momo_shctx_t *sh,
    ngx_uint_t i, ngx_http_momo_sweep_conf_t *conf, uint64_t now,
    ngx_http_momo_due_t *due, ngx_uint_t max);
static ngx_uint_t ngx_http_momo_sweep_pick(ngx_http_momo_shctx_t *sh,
    ngx_http_momo_node_t *mn, ngx_http_momo_sweep_conf_t *conf,
    uint64_t now, ngx_http_momo_due_t *due);
static ngx_uint_t ngx_http_momo_sweep_step(ngx_http_momo_sweep_conf_t *conf,
    uint64_t age);
static void ngx_http_momo_zone_stat(ngx_http_momo_node_t *mn, uint64_t now,
    ngx_http_momo_zone_stats_t *st);


static uint64_t  ngx_http_momo_age_bounds[NGX_HTTP_MOMO_AGE_BUCKETS - 1] = {
    60000, 300000, 900000, 3600000, 86400000
};


ngx_http_momo_sweep_counters_t *
ngx_http_momo_sweep_counters(ngx_shm_zone_t *zone)
{
    ngx_slab_pool_t        *shpool;
    ngx_http_momo_shctx_t  *sh;

    sh = ngx_http_momo_shm_ctx(zone, &shpool);
    if (sh == NULL) {
        return NULL;
    }

    return &sh->sweep;
}


/*
 * Called under the lock by every record update: the first time MTN took
 * the payment and the first time its outcome is known start the clocks
 * of the reconcile and notify schedules.
 */

void
ngx_http_momo_sched_stamp(ngx_http_momo_shctx_t *sh, ngx_http_momo_node_t *mn,
    ngx_http_momo_record_t *src)
{
    uint64_t  now;

    now = ngx_http_momo_wall_ms();

    if (src->accepted && mn->sched.accepted_at == 0) {
        mn->sched.accepted_at = now;
    }

    if (ngx_http_momo_state_final(src->state) && mn->sched.final_at == 0) {
        mn->sched.final_at = now;
    }

    if (src->account && mn->rec.account == 0) {
        mn->rec.account = src->account;
    }

    (void) ngx_atomic_fetch_add(&sh->changes, 1);
}


/* under the lock: may a delivery go now, from any worker or request? */

ngx_uint_t
ngx_http_momo_sched_notify_due(ngx_http_momo_shctx_t *sh,
    ngx_http_momo_node_t *mn)
{
    return !mn->sched.notify_dead
           && mn->sched.notify_next <= ngx_http_momo_wall_ms();
}


/*
 * Under the lock: after a failed delivery, the next waits FIRST * 2^n, at
 * most MAX (momo_notify_retry, copied into the zone when it is set up).
 */

void
ngx_http_momo_sched_notified(ngx_http_momo_shctx_t *sh,
    ngx_http_momo_node_t *mn, ngx_uint_t ok)
{
    uint64_t    delay;
    ngx_uint_t  n;

    (void) ngx_atomic_fetch_add(&sh->changes, 1);

    if (ok) {
        return;
    }

    delay = sh->notify_first;

    for (n = mn->sched.notify_attempts; n && delay < sh->notify_max; n--) {
        delay *= 2;
    }

    if (delay > sh->notify_max) {
        delay = sh->notify_max;
    }

    mn->sched.notify_attempts++;
    mn->sched.notify_next = ngx_http_momo_wall_ms() + delay;
}


/*
 * The sweep lease: kept by its holder, renewed on every tick, taken over
 * when it runs out or its holder's process is gone.
 */

ngx_int_t
ngx_http_momo_sweep_lease(ngx_shm_zone_t *zone, ngx_msec_t lease,
    ngx_uint_t *takeover)
{
    ngx_int_t               rc;
    ngx_msec_t              now;
    ngx_slab_pool_t        *shpool;
    ngx_http_momo_shctx_t  *sh;

    sh = ngx_http_momo_shm_ctx(zone, &shpool);
    if (sh == NULL) {
        return NGX_ERROR;
    }

    now = ngx_current_msec;
    *takeover = 0;

    ngx_shmtx_lock(&shpool->mutex);

    if (sh->sweep_pid == ngx_pid
        || !ngx_http_momo_lease_live(sh->sweep_pid, sh->sweep_until, now))
    {
        if (sh->sweep_pid != ngx_pid && sh->sweep_pid != 0) {
            *takeover = sh->sweep_pid;
        }

        sh->sweep_pid = ngx_pid;
        sh->sweep_until = now + lease;
        rc = NGX_OK;

    } else {
        rc = NGX_BUSY;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    if (*takeover) {
        (void) ngx_atomic_fetch_add(&sh->sweep.takeovers, 1);
    }

    return rc;
}


void
ngx_http_momo_sweep_release(ngx_shm_zone_t *zone)
{
    ngx_slab_pool_t        *shpool;
    ngx_http_momo_shctx_t  *sh;

    sh = ngx_http_momo_shm_ctx(zone, &shpool);
    if (sh == NULL) {
        return;
    }

    ngx_shmtx_lock(&shpool->mutex);

    if (sh->sweep_pid == ngx_pid) {
        sh->sweep_pid = 0;
    }

    ngx_shmtx_unlock(&shpool->mutex);
}


/*
 * What is due now, at most max entries.  A payment appears once per call,
 * so once per sweep round; one that a request or another call is working
 * on (a live query or notify lease) waits.  Each queue is walked from its
 * oldest record on, at most NGX_HTTP_MOMO_SWEEP_SCAN records per call, and
 * the next call goes on where this one stopped: with a million payments
 * pending, a call holds the zone's lock for a few thousand of them, not
 * for all.  A queue none of whose records can be due (the pending ones
 * without momo_reconcile, the unnotified ones without momo_notify) is not
 * walked at all.
 */

ngx_uint_t
ngx_http_momo_sweep_due(ngx_shm_zone_t *zone, ngx_http_momo_sweep_conf_t *conf,
    uint64_t now, ngx_http_momo_due_t *due, ngx_uint_t max)
{
    ngx_uint_t              n, i;
    ngx_slab_pool_t        *shpool;
    ngx_http_momo_shctx_t  *sh;

    sh = ngx_http_momo_shm_ctx(zone, &shpool);
    if (sh == NULL) {
        return 0;
    }

    n = 0;

    ngx_shmtx_lock(&shpool->mutex);

    /* only these queues hold payments with something still to do */

    for (i = NGX_HTTP_MOMO_LRU_UNNOTIFIED; i < NGX_HTTP_MOMO_LRU_MAX; i++) {

        if ((i == NGX_HTTP_MOMO_LRU_UNNOTIFIED && !conf->notify)
            || (i == NGX_HTTP_MOMO_LRU_PENDING && conf->nages == 0))
        {
            continue;
        }

        n += ngx_http_momo_sweep_queue(sh, i, conf, now, &due[n], max - n);
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return n;
}


static ngx_uint_t
ngx_http_momo_sweep_queue(ngx_http_momo_shctx_t *sh, ngx_uint_t i,
    ngx_http_momo_sweep_conf_t *conf, uint64_t now, ngx_http_momo_due_t *due,
    ngx_uint_t max)
{
    ngx_uint_t             n, seen;
    ngx_queue_t           *q, *end;
    ngx_http_momo_node_t  *mn;

    end = ngx_queue_sentinel(&sh->lru[i]);
    q = sh->sweep_at[i] ? sh->sweep_at[i] : ngx_queue_last(&sh->lru[i]);

    for (n = 0, seen = 0;
         q != end && n < max && seen < NGX_HTTP_MOMO_SWEEP_SCAN;
         q = ngx_queue_prev(q), seen++)
    {
        mn = ngx_queue_data(q, ngx_http_momo_node_t, queue);

        n += ngx_http_momo_sweep_pick(sh, mn, conf, now, &due[n]);
    }

    /* the next call starts here, or at the oldest record again */

    sh->sweep_at[i] = (q == end) ? NULL : q;

    return n;
}


/*
 * Under the lock, before a record leaves its place in its queue (touched,
 * or freed): a sweep, or the state file's walk, that was to go on at it
 * goes on at the next one.
 */

void
ngx_http_momo_sweep_unlink(ngx_http_momo_shctx_t *sh,
    ngx_http_momo_node_t *mn)
{
    ngx_uint_t    i;
    ngx_queue_t  *q;

    for (i = 0; i < NGX_HTTP_MOMO_LRU_MAX; i++) {

        if (sh->sweep_at[i] != &mn->queue) {
            continue;
        }

        q = ngx_queue_prev(&mn->queue);
        sh->sweep_at[i] = (q == ngx_queue_sentinel(&sh->lru[i])) ? NULL : q;
    }

    if (sh->snap_at == &mn->queue) {
        sh->snap_at = ngx_queue_prev(&mn->queue);
    }
}


static ngx_uint_t
ngx_http_momo_sweep_pick(ngx_http_momo_shctx_t *sh, ngx_http_momo_node_t *mn,
    ngx_http_momo_sweep_conf_t *conf, uint64_t now, ngx_http_momo_due_t *due)
{
    uint64_t                since;
    ngx_uint_t              step;
    ngx_http_momo_sched_t  *sc;

    sc = &mn->sched;

    if (!mn->rec.accepted || sc->accepted_at == 0) {
        return 0;
    }

    if (ngx_http_momo_state_final(mn->rec.state)) {

        if (!conf->notify || mn->rec.notified == 2 || sc->notify_dead
            || (mn->notifying
                && (ngx_msec_int_t) (mn->notify_until - ngx_current_msec)
                   > 0))
        {
            return 0;
        }

        since = (now > sc->final_at) ? now - sc->final_at : 0;

        if (conf->notify_total && since > conf->notify_total) {
            sc->notify_dead = 1;
            due->what = NGX_HTTP_MOMO_DUE_NOTIFY_DEAD;

        } else if (sc->notify_next > now) {
            return 0;

        } else {
            due->what = NGX_HTTP_MOMO_DUE_NOTIFY;
        }

        goto found;
    }

    if (mn->rec.state == NGX_HTTP_MOMO_ST_NOT_FOUND || sc->given_up
        || conf->nages == 0
        || ngx_http_momo_lease_live(mn->query_pid, mn->query_until,
                                    ngx_current_msec))
    {
        return 0;
    }

    since = (now > sc->accepted_at) ? now - sc->accepted_at : 0;

    if (sc->sweep_step >= conf->nages) {
        sc->given_up = 1;
        due->what = NGX_HTTP_MOMO_DUE_GIVEN_UP;
        goto found;
    }

    step = ngx_http_momo_sweep_step(conf, since);

    if (step == (ngx_uint_t) NGX_ERROR || step < sc->sweep_step) {
        return 0;
    }

    due->what = NGX_HTTP_MOMO_DUE_QUERY;
    due->step = step;

found:

    ngx_memcpy(due->ref, mn->rec.reference_id, NGX_HTTP_MOMO_UUID_LEN);
    due->account = mn->rec.account;
    due->kind = mn->rec.kind;
    due->age = since;

    if (due->what != NGX_HTTP_MOMO_DUE_QUERY
        && due->what != NGX_HTTP_MOMO_DUE_NOTIFY)
    {
        (void) ngx_atomic_fetch_add(&sh->changes, 1);
    }

    return 1;
}


/*
 * The last reconcile age the payment has reached: after a pause (a
 * restart, a busy budget) one query stands for the ages it missed.
 */

static ngx_uint_t
ngx_http_momo_sweep_step(ngx_http_momo_sweep_conf_t *conf, uint64_t age)
{
    ngx_uint_t  i;

    if (age < conf->ages[0]) {
        return (ngx_uint_t) NGX_ERROR;
    }

    for (i = 1; i < conf->nages && conf->ages[i] <= age; i++) {
        /* void */
    }

    return i - 1;
}


/* a sweep's query of that age is over, whatever its result */

void
ngx_http_momo_sweep_swept(ngx_shm_zone_t *zone, u_char *ref, ngx_uint_t step)
{
    ngx_slab_pool_t        *shpool;
    ngx_http_momo_node_t   *mn;
    ngx_http_momo_shctx_t  *sh;

    sh = ngx_http_momo_shm_ctx(zone, &shpool);
    if (sh == NULL) {
        return;
    }

    ngx_shmtx_lock(&shpool->mutex);

    mn = ngx_http_momo_record_lookup(sh, ref, ngx_http_momo_ref_hash(ref));

    if (mn != NULL && mn->sched.sweep_step < step + 1) {
        mn->sched.sweep_step = step + 1;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    (void) ngx_atomic_fetch_add(&sh->changes, 1);
}


/*
 * For momo_metrics: a walk under the lock of the queues whose records it
 * counts.  Settled and void records (the first queue, most of a busy
 * zone) count for nothing and are not walked, nor, without momo_notify,
 * the un-notified ones: a scrape holds the lock for the payments in
 * flight, not for the zone.
 */

void
ngx_http_momo_zone_stats(ngx_shm_zone_t *zone, uint64_t now,
    ngx_uint_t notify, ngx_http_momo_zone_stats_t *st)
{
    ngx_uint_t              lru;
    ngx_queue_t            *q;
    ngx_slab_pool_t        *shpool;
    ngx_http_momo_node_t   *mn;
    ngx_http_momo_shctx_t  *sh;

    ngx_memzero(st, sizeof(ngx_http_momo_zone_stats_t));

    sh = ngx_http_momo_shm_ctx(zone, &shpool);
    if (sh == NULL) {
        return;
    }

    ngx_shmtx_lock(&shpool->mutex);

    for (lru = NGX_HTTP_MOMO_LRU_UNNOTIFIED; lru < NGX_HTTP_MOMO_LRU_MAX;
         lru++)
    {
        if (lru == NGX_HTTP_MOMO_LRU_UNNOTIFIED && !notify) {
            continue;
        }

        for (q = ngx_queue_head(&sh->lru[lru]);
             q != ngx_queue_sentinel(&sh->lru[lru]);
             q = ngx_queue_next(q))
        {
            mn = ngx_queue_data(q, ngx_http_momo_node_t, queue);
            ngx_http_momo_zone_stat(mn, now, st);
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);
}


static void
ngx_http_momo_zone_stat(ngx_http_momo_node_t *mn, uint64_t now,
    ngx_http_momo_zone_stats_t *st)
{
    uint64_t    age;
    ngx_uint_t  i;

    if (!mn->rec.accepted || mn->sched.accepted_at == 0) {
        return;
    }

    if (ngx_http_momo_state_final(mn->rec.state)) {
        if (mn->rec.notified == 2 || mn->sched.notify_dead) {
            return;
        }

        st->notify_pending++;
        age = (now > mn->sched.final_at) ? now - mn->sched.final_at : 0;

        if (age > st->oldest_undelivered) {
            st->oldest_undelivered = age;
        }

        return;
    }

    if (mn->rec.state == NGX_HTTP_MOMO_ST_NOT_FOUND) {
        return;
    }

    age = (now > mn->sched.accepted_at) ? now - mn->sched.accepted_at : 0;

    for (i = 0; i < NGX_HTTP_MOMO_AGE_BUCKETS - 1; i++) {
        if (age < ngx_http_momo_age_bounds[i]) {
            break;
        }
    }

    st->pending[i]++;
}
