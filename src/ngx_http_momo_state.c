
/*
 * Copyright (C) The ngx_http_momo_module developers
 *
 * momo_zone ... state=PATH: the zone's payments (pending ones, final ones
 * the application has not acknowledged, idempotency records) and their
 * reconcile and notify schedules, kept in a file across restarts, the
 * way nginx's keyval_zone state= does.
 *
 * Written by ngx_http_momo_state_save.c; always to a temporary file
 * renamed over the old one, so a reader sees the old file or the new one,
 * never half of one.  Read here, by the master when it creates a zone.  A
 * file that is truncated, damaged, or written by another version of the
 * module is renamed aside, logged, and the zone starts without it.
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
#include "ngx_http_momo_state.h"


static u_char *ngx_http_momo_state_read(ngx_fd_t fd, size_t size,
    ngx_log_t *log);
static ngx_int_t ngx_http_momo_state_check(ngx_http_momo_state_header_t *h,
    size_t size);
static void ngx_http_momo_state_aside(ngx_str_t *path, char *why,
    ngx_log_t *log);
static void ngx_http_momo_state_insert(ngx_http_momo_shctx_t *sh,
    ngx_slab_pool_t *shpool, ngx_http_momo_state_header_t *h,
    ngx_str_t *path, ngx_log_t *log);
static uint64_t ngx_http_momo_state_records(ngx_http_momo_shctx_t *sh,
    ngx_slab_pool_t *shpool, ngx_http_momo_state_entry_t *e, uint64_t n,
    ngx_uint_t *loaded);


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
    uint64_t                       taken;
    ngx_uint_t                     loaded, ledger, level;
    ngx_http_momo_ledger_saved_t  *l;

    l = (ngx_http_momo_ledger_saved_t *) (h + 1);

    ledger = ngx_http_momo_ledger_load(sh, shpool, l, h->ledger_count);

    taken = ngx_http_momo_state_records(sh, shpool,
                      (ngx_http_momo_state_entry_t *) (l + h->ledger_count),
                      h->count, &loaded);

    sh->sweep.state_records = loaded;
    sh->state_written_at = h->written_at;

    if (taken == h->count && ledger == h->ledger_count) {
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


/* the entries taken (all of them, unless the zone is full of leases) */

static uint64_t
ngx_http_momo_state_records(ngx_http_momo_shctx_t *sh, ngx_slab_pool_t *shpool,
    ngx_http_momo_state_entry_t *e, uint64_t n, ngx_uint_t *loaded)
{
    uint32_t               hash;
    uint64_t               i;
    ngx_http_momo_node_t  *mn;

    *loaded = 0;

    for (i = 0; i < n; i++) {
        hash = ngx_http_momo_ref_hash(e[i].rec.reference_id);

        /*
         * A payment that changed while the file's snapshot was taken can
         * be in it twice (ngx_http_momo_state_save.c): the later is newer.
         */

        mn = ngx_http_momo_record_lookup(sh, e[i].rec.reference_id, hash);

        if (mn == NULL) {
            mn = ngx_http_momo_record_create(sh, shpool,
                                             e[i].rec.reference_id, hash);
            if (mn == NULL) {
                break;
            }

            (*loaded)++;
        }

        mn->rec = e[i].rec;
        mn->sched = e[i].sched;

        /* a delivery in flight when the file was written did not finish */

        if (mn->rec.notified == 1) {
            mn->rec.notified = 0;
        }

        /* into the eviction queue its state belongs to */

        ngx_http_momo_record_touch(sh, mn);
    }

    return i;
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
