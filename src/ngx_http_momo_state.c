
/*
 * Copyright (C) The ngx_http_momo_module developers
 *
 * momo_zone ... state=PATH: the zone's payments (pending ones, final ones
 * the application has not acknowledged, idempotency records) and their
 * reconcile and notify schedules, kept in a file across restarts, the
 * way nginx's keyval_zone state= does.
 *
 * Written by the sweeping worker when the zone changed (at most once per
 * NGX_HTTP_MOMO_STATE_PERIOD), in a thread pool task, and by the master
 * when it exits; always to a temporary file renamed over the old one, so
 * a reader sees the old file or the new one, never half of one.  Read by
 * the master when it creates a zone.  A file that is truncated, damaged,
 * or written by another version of the module is renamed aside, logged,
 * and the zone starts without it.
 *
 * The file: a header (magic, version, entry sizes and counts, time, crc32
 * of what follows), the refund ledger (ngx_http_momo_shm_ledger.c: each
 * refunded payment's total and reservations, each refund and payout),
 * then one fixed-size entry per payment.  Native byte order: the file
 * moves with the nginx that wrote it, not between machines.  Version 1
 * had no ledger.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_momo_shm.h"


#define NGX_HTTP_MOMO_STATE_MAGIC    "MOMOSTAT"
#define NGX_HTTP_MOMO_STATE_FORMAT   2       /* of the file */


typedef struct {
    u_char                      magic[8];
    uint32_t                    version;
    uint32_t                    entry_size;
    uint64_t                    count;
    uint64_t                    written_at;     /* wall-clock ms */
    uint32_t                    crc;            /* of all that follows */
    uint32_t                    ledger_size;    /* a ledger entry's */
    uint64_t                    ledger_count;
} ngx_http_momo_state_header_t;


/* as far as every version's header goes: magic and version */
#define NGX_HTTP_MOMO_STATE_VERSIONED                                        \
    offsetof(ngx_http_momo_state_header_t, entry_size)


typedef struct {
    ngx_http_momo_record_t      rec;
    ngx_http_momo_sched_t       sched;
} ngx_http_momo_state_entry_t;


typedef struct {
    u_char                     *path;           /* null-terminated */
    u_char                     *data;
    size_t                      len;
    uint64_t                    written_at;
    ngx_err_t                   err;
    char                       *failed;         /* the call that failed */
    ngx_pool_t                 *pool;
    ngx_shm_zone_t             *zone;
} ngx_http_momo_state_job_t;


static u_char *ngx_http_momo_state_read(ngx_fd_t fd, size_t size,
    ngx_log_t *log);
static ngx_int_t ngx_http_momo_state_check(ngx_http_momo_state_header_t *h,
    size_t size);
static void ngx_http_momo_state_aside(ngx_str_t *path, char *why,
    ngx_log_t *log);
static void ngx_http_momo_state_insert(ngx_http_momo_shctx_t *sh,
    ngx_slab_pool_t *shpool, ngx_http_momo_state_header_t *h,
    ngx_str_t *path, ngx_log_t *log);
static ngx_uint_t ngx_http_momo_state_records(ngx_http_momo_shctx_t *sh,
    ngx_slab_pool_t *shpool, ngx_http_momo_state_entry_t *e, uint64_t n);
static ngx_http_momo_state_job_t *ngx_http_momo_state_snapshot(
    ngx_shm_zone_t *zone, ngx_str_t *path, ngx_log_t *log);
static void ngx_http_momo_state_write(ngx_http_momo_state_job_t *job);
static void ngx_http_momo_state_written(ngx_http_momo_state_job_t *job,
    ngx_log_t *log);
#if (NGX_THREADS)
static void ngx_http_momo_state_thread(void *data, ngx_log_t *log);
static void ngx_http_momo_state_thread_done(ngx_event_t *ev);
#endif


/* one write at a time per worker */

static ngx_uint_t  ngx_http_momo_state_busy;


/*
 * In the master, for a zone it has just created (not for "nginx -t", and
 * not on a reload that keeps the zone, whose content is newer than any
 * file).  Nothing here may fail the start: a bad file is set aside.
 */

ngx_int_t
ngx_http_momo_state_load(ngx_shm_zone_t *zone, ngx_http_momo_shctx_t *sh,
    ngx_slab_pool_t *shpool)
{
    u_char                        *buf;
    size_t                         size;
    ngx_fd_t                       fd;
    ngx_err_t                      err;
    ngx_int_t                      rc;
    ngx_str_t                     *path;
    ngx_file_info_t                fi;
    ngx_http_momo_state_header_t  *h;
    ngx_http_momo_main_conf_t     *mmcf;

    mmcf = zone->data;
    path = &mmcf->state;

    if (path->len == 0 || ngx_test_config) {
        return NGX_OK;
    }

    fd = ngx_open_file(path->data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (fd == NGX_INVALID_FILE) {
        err = ngx_errno;

        if (err == NGX_ENOENT) {
            ngx_log_error(NGX_LOG_NOTICE, zone->shm.log, 0,
                          "momo: no state file \"%V\" yet: the momo zone "
                          "starts empty", path);
            sh->sweep.state_loads[NGX_HTTP_MOMO_STATE_NONE]++;
            return NGX_OK;
        }

        ngx_log_error(NGX_LOG_ALERT, zone->shm.log, err,
                      "momo: state file \"%V\" cannot be opened: the momo "
                      "zone starts empty", path);
        sh->sweep.state_loads[NGX_HTTP_MOMO_STATE_CORRUPT]++;
        return NGX_OK;
    }

    buf = NULL;
    rc = NGX_HTTP_MOMO_STATE_CORRUPT;

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        goto done;
    }

    size = ngx_file_size(&fi);

    buf = ngx_http_momo_state_read(fd, size, zone->shm.log);
    if (buf == NULL) {
        goto done;
    }

    h = (ngx_http_momo_state_header_t *) buf;

    rc = ngx_http_momo_state_check(h, size);

    if (rc != NGX_HTTP_MOMO_STATE_LOADED) {
        goto done;
    }

    ngx_http_momo_state_insert(sh, shpool, h, path, zone->shm.log);

done:

    ngx_close_file(fd);

    if (buf) {
        ngx_free(buf);
    }

    sh->sweep.state_loads[rc]++;

    if (rc == NGX_HTTP_MOMO_STATE_CORRUPT) {
        ngx_http_momo_state_aside(path, "truncated or damaged",
                                  zone->shm.log);

    } else if (rc == NGX_HTTP_MOMO_STATE_VERSION) {
        ngx_http_momo_state_aside(path, "written by another version of "
                                  "ngx_http_momo_module", zone->shm.log);
    }

    return NGX_OK;
}


/*
 * The whole file, however large: a zone of any size writes all it holds
 * (its entries are smaller than its records), and one read() returns at
 * most 2G.  NULL: out of memory, or the file shrank under us.
 */

static u_char *
ngx_http_momo_state_read(ngx_fd_t fd, size_t size, ngx_log_t *log)
{
    u_char   *buf;
    size_t    done;
    ssize_t   n;

    buf = ngx_alloc(size + 1, log);
    if (buf == NULL) {
        return NULL;
    }

    for (done = 0; done < size; done += n) {
        n = ngx_read_fd(fd, buf + done, size - done);

        if (n == -1 && ngx_errno == NGX_EINTR) {
            n = 0;
            continue;
        }

        if (n <= 0) {
            ngx_free(buf);
            return NULL;
        }
    }

    return buf;
}


static ngx_int_t
ngx_http_momo_state_check(ngx_http_momo_state_header_t *h, size_t size)
{
    uint64_t  len;

    if (size < NGX_HTTP_MOMO_STATE_VERSIONED
        || ngx_memcmp(h->magic, NGX_HTTP_MOMO_STATE_MAGIC, 8) != 0)
    {
        return NGX_HTTP_MOMO_STATE_CORRUPT;
    }

    if (h->version != NGX_HTTP_MOMO_STATE_FORMAT) {
        return NGX_HTTP_MOMO_STATE_VERSION;
    }

    if (size < sizeof(ngx_http_momo_state_header_t)) {
        return NGX_HTTP_MOMO_STATE_CORRUPT;
    }

    if (h->entry_size != sizeof(ngx_http_momo_state_entry_t)
        || h->ledger_size != sizeof(ngx_http_momo_ledger_saved_t))
    {
        return NGX_HTTP_MOMO_STATE_VERSION;
    }

    /* counts no file of this size can hold; and no overflow below */

    if (h->count > size / h->entry_size
        || h->ledger_count > size / h->ledger_size)
    {
        return NGX_HTTP_MOMO_STATE_CORRUPT;
    }

    len = h->ledger_count * h->ledger_size + h->count * h->entry_size;

    if (size != sizeof(ngx_http_momo_state_header_t) + len
        || ngx_crc32_long((u_char *) (h + 1), len) != h->crc)
    {
        return NGX_HTTP_MOMO_STATE_CORRUPT;
    }

    return NGX_HTTP_MOMO_STATE_LOADED;
}


/* PATH becomes PATH.bad-UNIXTIME; the zone starts without it */

static void
ngx_http_momo_state_aside(ngx_str_t *path, char *why, ngx_log_t *log)
{
    u_char  *aside;

    aside = ngx_alloc(path->len + sizeof(".bad-") + NGX_TIME_T_LEN, log);
    if (aside == NULL) {
        return;
    }

    ngx_sprintf(aside, "%V.bad-%T%Z", path, ngx_time());

    if (ngx_rename_file(path->data, aside) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, log, ngx_errno,
                      "momo: state file \"%V\" is %s and could not be "
                      "renamed to \"%s\"; the momo zone starts empty",
                      path, why, aside);

    } else {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "momo: state file \"%V\" is %s: kept as \"%s\", the "
                      "momo zone starts without it", path, why, aside);
    }

    ngx_free(aside);
}


/*
 * In the master, before any worker: no lock is needed yet.  The ledger
 * first: payment records make room for it, never the other way round.
 */

static void
ngx_http_momo_state_insert(ngx_http_momo_shctx_t *sh, ngx_slab_pool_t *shpool,
    ngx_http_momo_state_header_t *h, ngx_str_t *path, ngx_log_t *log)
{
    ngx_uint_t                     loaded, ledger, level;
    ngx_http_momo_ledger_saved_t  *l;

    l = (ngx_http_momo_ledger_saved_t *) (h + 1);

    ledger = ngx_http_momo_ledger_load(sh, shpool, l, h->ledger_count);

    loaded = ngx_http_momo_state_records(sh, shpool,
                      (ngx_http_momo_state_entry_t *) (l + h->ledger_count),
                      h->count);

    sh->sweep.state_records = loaded;
    sh->state_written_at = h->written_at;

    if (loaded == h->count && ledger == h->ledger_count) {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "momo: %ui payments and %ui ledger entries of state "
                      "file \"%V\" loaded", loaded, ledger, path);
        return;
    }

    /* a refund's total lost would let refunds exceed the payment */

    level = (ledger == h->ledger_count) ? NGX_LOG_ERR : NGX_LOG_ALERT;

    ngx_log_error(level, log, 0,
                  "momo: %ui of the %uL payments and %ui of the %uL ledger "
                  "entries of state file \"%V\" loaded; the momo zone is "
                  "too small for the others", loaded, h->count, ledger,
                  h->ledger_count, path);
}


static ngx_uint_t
ngx_http_momo_state_records(ngx_http_momo_shctx_t *sh, ngx_slab_pool_t *shpool,
    ngx_http_momo_state_entry_t *e, uint64_t n)
{
    uint32_t               hash;
    uint64_t               i;
    ngx_uint_t             loaded;
    ngx_http_momo_node_t  *mn;

    loaded = 0;

    for (i = 0; i < n; i++) {
        hash = ngx_http_momo_ref_hash(e[i].rec.reference_id);

        if (ngx_http_momo_record_lookup(sh, e[i].rec.reference_id, hash)
            != NULL)
        {
            continue;
        }

        mn = ngx_http_momo_record_create(sh, shpool, e[i].rec.reference_id,
                                         hash);
        if (mn == NULL) {
            break;
        }

        mn->rec = e[i].rec;
        mn->sched = e[i].sched;

        /* a delivery in flight when the file was written did not finish */

        if (mn->rec.notified == 1) {
            mn->rec.notified = 0;
        }

        /* into the eviction queue its state belongs to */

        ngx_http_momo_record_touch(sh, mn);

        loaded++;
    }

    return loaded;
}


/*
 * From the sweeping worker's timer: a snapshot of the zone taken under
 * the lock, written by a thread of the default pool.  NGX_DECLINED: the
 * previous write is not over.
 */

ngx_int_t
ngx_http_momo_state_save(ngx_shm_zone_t *zone, ngx_str_t *path,
    void *thread_pool, ngx_log_t *log)
{
    ngx_http_momo_state_job_t  *job;
#if (NGX_THREADS)
    ngx_thread_task_t          *task;
#endif

    if (ngx_http_momo_state_busy) {
        return NGX_DECLINED;
    }

    job = ngx_http_momo_state_snapshot(zone, path, log);
    if (job == NULL) {
        return NGX_ERROR;
    }

#if (NGX_THREADS)

    if (thread_pool) {
        task = ngx_thread_task_alloc(job->pool, 0);
        if (task == NULL) {
            ngx_destroy_pool(job->pool);
            return NGX_ERROR;
        }

        task->ctx = job;
        task->handler = ngx_http_momo_state_thread;
        task->event.handler = ngx_http_momo_state_thread_done;
        task->event.data = job;
        task->event.log = log;

        if (ngx_thread_task_post(thread_pool, task) != NGX_OK) {
            ngx_destroy_pool(job->pool);
            return NGX_ERROR;
        }

        ngx_http_momo_state_busy = 1;

        return NGX_OK;
    }

#endif

    ngx_http_momo_state_write(job);
    ngx_http_momo_state_written(job, log);

    return NGX_OK;
}


/* what the zone has seen: the sweeper writes when this moves */

ngx_atomic_uint_t
ngx_http_momo_state_changes(ngx_shm_zone_t *zone)
{
    ngx_slab_pool_t        *shpool;
    ngx_http_momo_shctx_t  *sh;

    sh = ngx_http_momo_shm_ctx(zone, &shpool);

    return sh ? sh->changes : 0;
}


/*
 * When the master exits (stop, quit, the end of a binary upgrade), its
 * workers are gone: the zone is final.  A file written after this zone's
 * last write comes from another nginx (the new binary of an upgrade) and
 * is newer: it stays.
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

    job = ngx_http_momo_state_snapshot(zone, path, log);
    if (job == NULL) {
        return;
    }

    ngx_http_momo_state_write(job);
    ngx_http_momo_state_written(job, log);
}


static ngx_http_momo_state_job_t *
ngx_http_momo_state_snapshot(ngx_shm_zone_t *zone, ngx_str_t *path,
    ngx_log_t *log)
{
    size_t                         size;
    uint64_t                       n, max;
    ngx_uint_t                     lru, nl;
    ngx_pool_t                    *pool;
    ngx_queue_t                   *q;
    ngx_slab_pool_t               *shpool;
    ngx_http_momo_node_t          *mn;
    ngx_http_momo_shctx_t         *sh;
    ngx_http_momo_state_job_t     *job;
    ngx_http_momo_state_entry_t   *e;
    ngx_http_momo_state_header_t  *h;
    ngx_http_momo_ledger_saved_t  *l;

    sh = ngx_http_momo_shm_ctx(zone, &shpool);
    if (sh == NULL) {
        return NULL;
    }

    /*
     * No count is needed first: an entry in the file is smaller than in
     * the zone, so what the zone holds fits in the zone's size.
     */

    size = sizeof(ngx_http_momo_state_header_t) + zone->shm.size;

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

    job->path = ngx_pnalloc(pool, path->len + 1);
    job->data = ngx_palloc(pool, size);

    if (job->path == NULL || job->data == NULL) {
        goto failed;
    }

    ngx_memcpy(job->path, path->data, path->len + 1);

    h = (ngx_http_momo_state_header_t *) job->data;
    l = (ngx_http_momo_ledger_saved_t *) (h + 1);
    n = 0;

    ngx_shmtx_lock(&shpool->mutex);

    nl = ngx_http_momo_ledger_save_locked(sh, l, zone->shm.size
                                       / sizeof(ngx_http_momo_ledger_saved_t));

    e = (ngx_http_momo_state_entry_t *) (l + nl);
    max = (zone->shm.size - nl * sizeof(ngx_http_momo_ledger_saved_t))
          / sizeof(ngx_http_momo_state_entry_t);

    for (lru = 0; lru < NGX_HTTP_MOMO_LRU_MAX; lru++) {

        for (q = ngx_queue_last(&sh->lru[lru]);
             q != ngx_queue_sentinel(&sh->lru[lru]) && n < max;
             q = ngx_queue_prev(q))
        {
            mn = ngx_queue_data(q, ngx_http_momo_node_t, queue);

            e[n].rec = mn->rec;
            e[n].sched = mn->sched;
            n++;
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    ngx_memzero(h, sizeof(ngx_http_momo_state_header_t));
    ngx_memcpy(h->magic, NGX_HTTP_MOMO_STATE_MAGIC, 8);
    h->version = NGX_HTTP_MOMO_STATE_FORMAT;
    h->entry_size = sizeof(ngx_http_momo_state_entry_t);
    h->count = n;
    h->ledger_size = sizeof(ngx_http_momo_ledger_saved_t);
    h->ledger_count = nl;
    h->written_at = ngx_http_momo_wall_ms();

    /* h->crc: by ngx_http_momo_state_write(), out of the event loop */

    size = nl * h->ledger_size + n * h->entry_size;

    job->len = sizeof(ngx_http_momo_state_header_t) + size;
    job->written_at = h->written_at;

    return job;

failed:

    ngx_destroy_pool(pool);

    return NULL;
}


/*
 * In a thread (or the exiting master): the crc of a zone's worth of
 * payments, then system calls only: PATH.tmp.PID, written, synced,
 * renamed over PATH.
 */

static void
ngx_http_momo_state_write(ngx_http_momo_state_job_t *job)
{
    u_char                         tmp[NGX_MAX_PATH];
    size_t                         done;
    ssize_t                        n;
    ngx_fd_t                       fd;
    ngx_http_momo_state_header_t  *h;

    job->err = 0;
    job->failed = NULL;

    h = (ngx_http_momo_state_header_t *) job->data;
    h->crc = ngx_crc32_long((u_char *) (h + 1),
                            job->len - sizeof(ngx_http_momo_state_header_t));

    if (ngx_strlen(job->path) + sizeof(".tmp.") + NGX_INT64_LEN
        > NGX_MAX_PATH)
    {
        job->err = NGX_ENAMETOOLONG;
        job->failed = "open()";
        return;
    }

    ngx_sprintf(tmp, "%s.tmp.%P%Z", job->path, ngx_pid);

    fd = open((char *) tmp, O_WRONLY|O_CREAT|O_TRUNC, 0600);
    if (fd == -1) {
        job->err = ngx_errno;
        job->failed = "open()";
        return;
    }

    for (done = 0; done < job->len; done += n) {
        n = write(fd, job->data + done, job->len - done);

        if (n == -1) {
            if (ngx_errno == NGX_EINTR) {
                n = 0;
                continue;
            }

            job->err = ngx_errno;
            job->failed = "write()";
            goto failed;
        }
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
        return;
    }

    if (rename((char *) tmp, (char *) job->path) == -1) {
        job->err = ngx_errno;
        job->failed = "rename()";
        (void) unlink((char *) tmp);
    }

    return;

failed:

    (void) close(fd);
    (void) unlink((char *) tmp);
}


static void
ngx_http_momo_state_written(ngx_http_momo_state_job_t *job, ngx_log_t *log)
{
    ngx_slab_pool_t                 *shpool;
    ngx_http_momo_shctx_t           *sh;

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
