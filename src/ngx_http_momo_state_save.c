
/*
 * Copyright (C) The ngx_http_momo_module developers
 *
 * momo_zone ... state=PATH, the writing side: the sweeping worker writes
 * the zone when it changed (at most once per NGX_HTTP_MOMO_STATE_PERIOD),
 * the master when it exits.
 *
 * A worker copies the zone's payments in chunks of
 * NGX_HTTP_MOMO_STATE_CHUNK, one chunk under the lock per turn of its
 * event loop, so that neither the other workers nor its own requests wait
 * for a copy of the whole zone (a zone of 500,000 payments took the lock
 * for over half a second).  The walk goes through the pending payments,
 * then the un-notified ones, then the settled ones, each queue from its
 * oldest record to its newest; a record that moves while the walk is on
 * goes to the newest end of a queue not walked yet, or of the one being
 * walked, so it is copied again, the later copy being the newer (the
 * loader keeps the later).  What is missed is only what was created
 * after the walk began, which the next write has, and a probe record
 * (a status query of a reference nginx never issued) that MTN's answer
 * turned into a pending one.  The refund ledger is copied last, with the
 * last chunk: a refund taken during the walk has its reservation in the
 * file even when its record is not.  The crc and the write are done by a
 * thread of the default pool.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_http_momo_shm.h"
#include "ngx_http_momo_state.h"


#define NGX_HTTP_MOMO_STATE_CHUNK   512     /* payments per lock */


typedef struct {
    u_char                         *path;           /* null-terminated */
    ngx_http_momo_state_header_t   *header;
    ngx_http_momo_state_entry_t    *entries;
    ngx_http_momo_ledger_saved_t   *ledger;
    uint64_t                        max;            /* entries room */
    ngx_uint_t                      ledger_max;
    ngx_uint_t                      walk;           /* sh->snap_walk */
    uint64_t                        written_at;
    ngx_err_t                       err;
    char                           *failed;         /* the call that failed */
    ngx_pool_t                     *pool;
    ngx_shm_zone_t                 *zone;
    void                           *thread_pool;
    ngx_event_t                     next;           /* the next chunk */
} ngx_http_momo_state_job_t;


static ngx_http_momo_state_job_t *ngx_http_momo_state_start(
    ngx_shm_zone_t *zone, ngx_str_t *path, ngx_log_t *log);
static ngx_int_t ngx_http_momo_state_chunk(ngx_http_momo_state_job_t *job,
    uint64_t chunk);
static ngx_uint_t ngx_http_momo_state_copy(ngx_http_momo_shctx_t *sh,
    ngx_http_momo_state_job_t *job, uint64_t chunk);
static void ngx_http_momo_state_next(ngx_event_t *ev);
static ngx_int_t ngx_http_momo_state_dispatch(ngx_http_momo_state_job_t *job,
    ngx_log_t *log);
static void ngx_http_momo_state_write(ngx_http_momo_state_job_t *job);
static ngx_int_t ngx_http_momo_state_put(ngx_fd_t fd, void *data,
    size_t len);
static void ngx_http_momo_state_written(ngx_http_momo_state_job_t *job,
    ngx_log_t *log);
static void ngx_http_momo_state_free(ngx_http_momo_state_job_t *job);
#if (NGX_THREADS)
static void ngx_http_momo_state_thread(void *data, ngx_log_t *log);
static void ngx_http_momo_state_thread_done(ngx_event_t *ev);
#endif


/* one snapshot or write at a time per worker */

static ngx_uint_t  ngx_http_momo_state_busy;


/*
 * From the sweeping worker's timer.  NGX_OK: a snapshot has begun, the
 * rest follows by itself; NGX_DECLINED: the previous one is not over.
 */

ngx_int_t
ngx_http_momo_state_save(ngx_shm_zone_t *zone, ngx_str_t *path,
    void *thread_pool, ngx_log_t *log)
{
    ngx_http_momo_state_job_t  *job;

    if (ngx_http_momo_state_busy) {
        return NGX_DECLINED;
    }

    job = ngx_http_momo_state_start(zone, path, log);
    if (job == NULL) {
        return NGX_ERROR;
    }

    job->thread_pool = thread_pool;
    job->next.handler = ngx_http_momo_state_next;
    job->next.data = job;
    job->next.log = log;

    ngx_http_momo_state_busy = 1;

    ngx_http_momo_state_next(&job->next);

    return NGX_OK;
}


/* one chunk; then the next turn of the event loop, or the write */

static void
ngx_http_momo_state_next(ngx_event_t *ev)
{
    ngx_int_t                   rc;
    ngx_http_momo_state_job_t  *job;

    job = ev->data;

    rc = ngx_http_momo_state_chunk(job, NGX_HTTP_MOMO_STATE_CHUNK);

    if (rc == NGX_AGAIN) {
        ngx_post_event(ev, &ngx_posted_next_events);
        return;
    }

    if (rc == NGX_OK && ngx_http_momo_state_dispatch(job, ev->log) == NGX_OK)
    {
        return;
    }

    /* another walk began (a sweeper that took over), or no memory */

    ngx_log_error(NGX_LOG_INFO, ev->log, 0,
                  "momo: state file \"%s\" not written this time", job->path);

    ngx_http_momo_state_free(job);
    ngx_destroy_pool(job->pool);
    ngx_http_momo_state_busy = 0;
}


/* the write, in a thread of the pool if there is one */

static ngx_int_t
ngx_http_momo_state_dispatch(ngx_http_momo_state_job_t *job, ngx_log_t *log)
{
#if (NGX_THREADS)
    ngx_thread_task_t  *task;

    if (job->thread_pool) {
        task = ngx_thread_task_alloc(job->pool, 0);
        if (task == NULL) {
            return NGX_ERROR;
        }

        task->ctx = job;
        task->handler = ngx_http_momo_state_thread;
        task->event.handler = ngx_http_momo_state_thread_done;
        task->event.data = job;
        task->event.log = log;

        return ngx_thread_task_post(job->thread_pool, task);
    }

#endif

    ngx_http_momo_state_write(job);
    ngx_http_momo_state_written(job, log);
    ngx_http_momo_state_busy = 0;

    return NGX_OK;
}


/*
 * When the master exits (stop, quit, the end of a binary upgrade), its
 * workers are gone: the zone is final, and copied at once.  A file written
 * after this zone's last write comes from another nginx (the new binary
 * of an upgrade) and is newer: it stays.
 */

void
ngx_http_momo_state_exit(ngx_shm_zone_t *zone, ngx_str_t *path,
    ngx_log_t *log)
{
    ssize_t                        n;
    ngx_fd_t                       fd;
    ngx_slab_pool_t               *shpool;
    ngx_http_momo_shctx_t         *sh;
    ngx_http_momo_state_job_t     *job;
    ngx_http_momo_state_header_t   h;

    sh = ngx_http_momo_shm_ctx(zone, &shpool);
    if (sh == NULL || path->len == 0) {
        return;
    }

    fd = ngx_open_file(path->data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (fd != NGX_INVALID_FILE) {
        n = ngx_read_fd(fd, &h, sizeof(h));
        ngx_close_file(fd);

        if (n == sizeof(h)
            && ngx_memcmp(h.magic, NGX_HTTP_MOMO_STATE_MAGIC, 8) == 0
            && h.written_at > sh->state_written_at)
        {
            ngx_log_error(NGX_LOG_NOTICE, log, 0,
                          "momo: state file \"%V\" was written by another "
                          "nginx since: kept as it is", path);
            return;
        }
    }

    job = ngx_http_momo_state_start(zone, path, log);
    if (job == NULL) {
        return;
    }

    if (ngx_http_momo_state_chunk(job, (uint64_t) -1) != NGX_OK) {
        ngx_http_momo_state_free(job);
        ngx_destroy_pool(job->pool);
        return;
    }

    ngx_http_momo_state_write(job);
    ngx_http_momo_state_written(job, log);
}


/*
 * The job's memory, allocated before the walk: no count is needed first,
 * an entry in the file being smaller than a record in the zone, so the
 * zone's size holds what the zone holds, with room to spare for copies of
 * payments that moved during the walk; likewise for the ledger.
 */

static ngx_http_momo_state_job_t *
ngx_http_momo_state_start(ngx_shm_zone_t *zone, ngx_str_t *path,
    ngx_log_t *log)
{
    size_t                      size;
    ngx_pool_t                 *pool;
    ngx_slab_pool_t            *shpool;
    ngx_http_momo_shctx_t      *sh;
    ngx_http_momo_state_job_t  *job;

    sh = ngx_http_momo_shm_ctx(zone, &shpool);
    if (sh == NULL) {
        return NULL;
    }

    pool = ngx_create_pool(4096, log);
    if (pool == NULL) {
        return NULL;
    }

    job = ngx_pcalloc(pool, sizeof(ngx_http_momo_state_job_t));
    if (job == NULL) {
        goto failed;
    }

    job->pool = pool;
    job->zone = zone;
    job->max = zone->shm.size / sizeof(ngx_http_momo_state_entry_t);
    job->ledger_max = zone->shm.size / sizeof(ngx_http_momo_ledger_saved_t);

    size = sizeof(ngx_http_momo_state_header_t)
           + job->max * sizeof(ngx_http_momo_state_entry_t);

    /* not from the pool: the write frees them, in its thread */

    job->path = ngx_pnalloc(pool, path->len + 1);
    job->header = ngx_alloc(size, log);
    job->ledger = ngx_alloc(job->ledger_max
                            * sizeof(ngx_http_momo_ledger_saved_t), log);

    if (job->path == NULL || job->header == NULL || job->ledger == NULL) {
        goto failed;
    }

    ngx_memcpy(job->path, path->data, path->len + 1);
    ngx_memzero(job->header, sizeof(ngx_http_momo_state_header_t));
    job->entries = (ngx_http_momo_state_entry_t *) (job->header + 1);

    ngx_shmtx_lock(&shpool->mutex);

    job->walk = ++sh->snap_walk;
    sh->snap_lru = NGX_HTTP_MOMO_LRU_PENDING;
    sh->snap_at = ngx_queue_last(&sh->lru[NGX_HTTP_MOMO_LRU_PENDING]);

    ngx_shmtx_unlock(&shpool->mutex);

    return job;

failed:

    if (job) {
        ngx_http_momo_state_free(job);
    }

    ngx_destroy_pool(pool);

    return NULL;
}


/*
 * The copy's memory, up to the zone's size: freed by the thread that
 * wrote it, not in the event loop (returning hundreds of MB to the system
 * takes tens of ms).
 */

static void
ngx_http_momo_state_free(ngx_http_momo_state_job_t *job)
{
    if (job->header) {
        ngx_free(job->header);
        job->header = NULL;
    }

    if (job->ledger) {
        ngx_free(job->ledger);
        job->ledger = NULL;
    }
}


/*
 * Up to "chunk" payments under the lock.  NGX_OK: the walk is over, the
 * ledger copied and the header filled; NGX_AGAIN: more to copy;
 * NGX_DECLINED: another walk began; NGX_ERROR: no room for more copies.
 */

static ngx_int_t
ngx_http_momo_state_chunk(ngx_http_momo_state_job_t *job, uint64_t chunk)
{
    ngx_uint_t                     done;
    ngx_slab_pool_t               *shpool;
    ngx_http_momo_shctx_t         *sh;
    ngx_http_momo_state_header_t  *h;

    sh = ngx_http_momo_shm_ctx(job->zone, &shpool);
    if (sh == NULL) {
        return NGX_ERROR;
    }

    ngx_shmtx_lock(&shpool->mutex);

    if (sh->snap_walk != job->walk) {
        ngx_shmtx_unlock(&shpool->mutex);
        return NGX_DECLINED;
    }

    done = ngx_http_momo_state_copy(sh, job, chunk);

    h = job->header;

    if (done == 1) {
        h->ledger_count = ngx_http_momo_ledger_save_locked(sh, job->ledger,
                                                           job->ledger_max);
        sh->snap_at = NULL;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    if (done != 1) {
        return done ? NGX_ERROR : NGX_AGAIN;
    }

    ngx_memcpy(h->magic, NGX_HTTP_MOMO_STATE_MAGIC, 8);
    h->version = NGX_HTTP_MOMO_STATE_FORMAT;
    h->entry_size = sizeof(ngx_http_momo_state_entry_t);
    h->ledger_size = sizeof(ngx_http_momo_ledger_saved_t);
    h->written_at = ngx_http_momo_wall_ms();
    job->written_at = h->written_at;

    /* h->count: counted by the walk; h->crc: by the write */

    return NGX_OK;
}


/*
 * Under the lock: 0, the chunk is copied and more is left; 1, the walk is
 * over; 2, the entries' room is full.
 */

static ngx_uint_t
ngx_http_momo_state_copy(ngx_http_momo_shctx_t *sh,
    ngx_http_momo_state_job_t *job, uint64_t chunk)
{
    uint64_t                      k;
    ngx_queue_t                  *end;
    ngx_http_momo_node_t         *mn;
    ngx_http_momo_state_entry_t  *e;

    for (k = 0; k < chunk; /* void */) {

        end = ngx_queue_sentinel(&sh->lru[sh->snap_lru]);

        if (sh->snap_at == end) {
            if (sh->snap_lru == 0) {
                return 1;
            }

            sh->snap_lru--;
            sh->snap_at = ngx_queue_last(&sh->lru[sh->snap_lru]);
            continue;
        }

        if (job->header->count == job->max) {
            sh->snap_at = NULL;
            return 2;
        }

        mn = ngx_queue_data(sh->snap_at, ngx_http_momo_node_t, queue);

        e = &job->entries[job->header->count++];
        e->rec = mn->rec;
        e->sched = mn->sched;

        sh->snap_at = ngx_queue_prev(sh->snap_at);
        k++;
    }

    return 0;
}


/*
 * In a thread (or in the exiting master, or without a thread pool): the
 * crc of a zone's worth of payments, then system calls only: PATH.tmp.PID
 * (the header, the ledger, the payments), synced, renamed over PATH; then
 * the copy is freed.
 */

static void
ngx_http_momo_state_write(ngx_http_momo_state_job_t *job)
{
    u_char                         tmp[NGX_MAX_PATH];
    size_t                         ledger, entries;
    uint32_t                       crc;
    ngx_fd_t                       fd;
    ngx_http_momo_state_header_t  *h;

    job->err = 0;
    job->failed = NULL;

    h = job->header;
    ledger = h->ledger_count * sizeof(ngx_http_momo_ledger_saved_t);
    entries = h->count * sizeof(ngx_http_momo_state_entry_t);

    ngx_crc32_init(crc);
    ngx_crc32_update(&crc, (u_char *) job->ledger, ledger);
    ngx_crc32_update(&crc, (u_char *) job->entries, entries);
    ngx_crc32_final(crc);
    h->crc = crc;

    if (ngx_strlen(job->path) + sizeof(".tmp.") + NGX_INT64_LEN
        > NGX_MAX_PATH)
    {
        job->err = NGX_ENAMETOOLONG;
        job->failed = "open()";
        goto done;
    }

    ngx_sprintf(tmp, "%s.tmp.%P%Z", job->path, ngx_pid);

    fd = open((char *) tmp, O_WRONLY|O_CREAT|O_TRUNC, 0600);
    if (fd == -1) {
        job->err = ngx_errno;
        job->failed = "open()";
        goto done;
    }

    if (ngx_http_momo_state_put(fd, h, sizeof(*h)) != NGX_OK
        || ngx_http_momo_state_put(fd, job->ledger, ledger) != NGX_OK
        || ngx_http_momo_state_put(fd, job->entries, entries) != NGX_OK)
    {
        job->err = ngx_errno;
        job->failed = "write()";
        goto failed;
    }

    if (fsync(fd) == -1) {
        job->err = ngx_errno;
        job->failed = "fsync()";
        goto failed;
    }

    if (close(fd) == -1) {
        job->err = ngx_errno;
        job->failed = "close()";
        (void) unlink((char *) tmp);
        goto done;
    }

    if (rename((char *) tmp, (char *) job->path) == -1) {
        job->err = ngx_errno;
        job->failed = "rename()";
        (void) unlink((char *) tmp);
    }

    goto done;

failed:

    (void) close(fd);
    (void) unlink((char *) tmp);

done:

    ngx_http_momo_state_free(job);
}


static ngx_int_t
ngx_http_momo_state_put(ngx_fd_t fd, void *data, size_t len)
{
    u_char   *p;
    size_t    done;
    ssize_t   n;

    p = data;

    for (done = 0; done < len; done += n) {
        n = write(fd, p + done, len - done);

        if (n == -1) {
            if (ngx_errno == NGX_EINTR) {
                n = 0;
                continue;
            }

            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static void
ngx_http_momo_state_written(ngx_http_momo_state_job_t *job, ngx_log_t *log)
{
    ngx_slab_pool_t        *shpool;
    ngx_http_momo_shctx_t  *sh;

    sh = ngx_http_momo_shm_ctx(job->zone, &shpool);

    if (job->failed) {
        ngx_log_error(NGX_LOG_ALERT, log, job->err,
                      "momo: state file \"%s\" not written: %s failed; "
                      "the previous one stays", job->path, job->failed);

        if (sh) {
            (void) ngx_atomic_fetch_add(&sh->sweep.state_writes_failed, 1);
        }

    } else if (sh) {
        (void) ngx_atomic_fetch_add(&sh->sweep.state_writes_ok, 1);

        ngx_shmtx_lock(&shpool->mutex);

        if (job->written_at > sh->state_written_at) {
            sh->state_written_at = job->written_at;
        }

        ngx_shmtx_unlock(&shpool->mutex);
    }

    ngx_destroy_pool(job->pool);
}


#if (NGX_THREADS)

static void
ngx_http_momo_state_thread(void *data, ngx_log_t *log)
{
    ngx_http_momo_state_write(data);
}


static void
ngx_http_momo_state_thread_done(ngx_event_t *ev)
{
    ngx_http_momo_state_busy = 0;

    ngx_http_momo_state_written(ev->data, ev->log);
}

#endif
