
/*
 * Copyright (C) The ngx_http_momo_module developers
 *
 * What the fuzz targets share: the little of nginx's core that the pure
 * files need, an input's pool and copy, and a comparison of two strings.
 */


#ifndef _FUZZ_NGX_H_INCLUDED_
#define _FUZZ_NGX_H_INCLUDED_


/* what nginx's core would provide; the pure files need only these */

static ngx_log_t      ngx_fuzz_log;
static ngx_cycle_t    ngx_fuzz_cycle;
volatile ngx_cycle_t  *ngx_cycle = &ngx_fuzz_cycle;
ngx_pid_t              ngx_pid;


void
ngx_log_error_core(ngx_uint_t level, ngx_log_t *log, ngx_err_t err,
    const char *fmt, ...)
{
}


static ngx_uint_t
ngx_fuzz_same(ngx_str_t *a, ngx_str_t *b)
{
    return a->len == b->len
           && (a->len == 0 || ngx_memcmp(a->data, b->data, a->len) == 0);
}


/*
 * An input's pool and its exact copy (parsers must not read past the
 * end).  The pool has no room of its own: every allocation becomes a
 * separate malloc(), so AddressSanitizer sees any overflow of one.
 */

static ngx_int_t
ngx_fuzz_input(const uint8_t *data, size_t size, ngx_pool_t **pool,
    u_char **buf)
{
    ngx_fuzz_log.log_level = NGX_LOG_ERR;
    ngx_fuzz_cycle.log = &ngx_fuzz_log;

    *pool = ngx_create_pool(sizeof(ngx_pool_t), &ngx_fuzz_log);
    if (*pool == NULL) {
        return NGX_ERROR;
    }

    *buf = malloc(size ? size : 1);
    if (*buf == NULL) {
        ngx_destroy_pool(*pool);
        return NGX_ERROR;
    }

    ngx_memcpy(*buf, data, size);

    return NGX_OK;
}


#endif /* _FUZZ_NGX_H_INCLUDED_ */
