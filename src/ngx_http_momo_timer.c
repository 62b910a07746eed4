
/*
 * Copyright (C) The ngx_http_momo_module developers
 *
 * A request without a client, so that a timer can call MTN and the
 * application through the same internal locations as a client request:
 * the way lua-nginx-module's ngx.timer does (ngx_http_lua_timer.c with
 * ngx_http_lua_create_fake_connection and _request in ngx_http_lua_util.c),
 * completed with what subrequests need (variables, header lists, a log
 * context).  Its connection has no socket (fd -1): it is never read,
 * written or closed by nginx, only by ngx_http_momo_fake_close().
 *
 * The request gets the main, server and location configurations of a
 * momo handler's location: its account, the server's momo_leg
 * locations, its error_log.  Everything lives in the connection's pool,
 * subrequests included, and goes with it.
 */


#include "ngx_http_momo_module.h"


typedef struct {
    ngx_http_log_ctx_t          ctx;
    ngx_connection_t           *connection;
} ngx_http_momo_fake_log_t;


static ngx_connection_t *ngx_http_momo_fake_connection(ngx_log_t *log);
static ngx_int_t ngx_http_momo_fake_init(ngx_http_request_t *r,
    ngx_http_conf_ctx_t *conf);
static void ngx_http_momo_fake_free(ngx_connection_t *c);
static u_char *ngx_http_momo_fake_log_error(ngx_log_t *log, u_char *buf,
    size_t len);


static struct sockaddr_in  ngx_http_momo_fake_sin;


ngx_http_request_t *
ngx_http_momo_fake_request(ngx_http_conf_ctx_t *conf, ngx_log_t *log)
{
    ngx_connection_t           *c;
    ngx_http_request_t         *r;
    ngx_http_momo_fake_log_t   *lctx;
    ngx_http_core_loc_conf_t   *clcf;

    c = ngx_http_momo_fake_connection(log);
    if (c == NULL) {
        return NULL;
    }

    r = ngx_pcalloc(c->pool, sizeof(ngx_http_request_t));
    if (r == NULL) {
        goto failed;
    }

    c->data = r;
    c->requests++;

    r->pool = c->pool;
    r->connection = c;
    r->signature = NGX_HTTP_MODULE;
    r->main = r;
    r->count = 1;

    /* ngx_http_run_posted_requests() sets the log's current request */

    lctx = ngx_pcalloc(c->pool, sizeof(ngx_http_momo_fake_log_t));
    if (lctx == NULL) {
        goto failed;
    }

    lctx->ctx.connection = c;
    lctx->ctx.request = r;
    lctx->ctx.current_request = r;

    c->log->data = lctx;
    c->log->handler = ngx_http_momo_fake_log_error;

    if (ngx_http_momo_fake_init(r, conf) != NGX_OK) {
        goto failed;
    }

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);
    ngx_set_connection_log(c, clcf->error_log);

    return r;

failed:

    ngx_http_momo_fake_free(c);

    return NULL;
}


static ngx_connection_t *
ngx_http_momo_fake_connection(ngx_log_t *log)
{
    ngx_log_t         *clog;
    ngx_pool_t        *pool;
    ngx_connection_t  *c, *saved;

    pool = ngx_create_pool(4096, log);
    if (pool == NULL) {
        return NULL;
    }

    clog = ngx_palloc(pool, sizeof(ngx_log_t));
    if (clog == NULL) {
        ngx_destroy_pool(pool);
        return NULL;
    }

    *clog = *log;

    /*
     * ngx_get_connection() wants a descriptor and records the connection
     * in cycle->files[fd]: give it 0 and put back what was there.
     */

    saved = ngx_cycle->files ? ngx_cycle->files[0] : NULL;

    c = ngx_get_connection(0, log);

    if (ngx_cycle->files) {
        ngx_cycle->files[0] = saved;
    }

    if (c == NULL) {
        ngx_destroy_pool(pool);
        return NULL;
    }

    c->fd = (ngx_socket_t) -1;
    c->number = ngx_atomic_fetch_add(ngx_connection_counter, 1);
    c->pool = pool;
    c->log = clog;
    c->log->connection = c->number;
    c->log->action = NULL;
    c->log_error = NGX_ERROR_INFO;
    c->read->log = clog;
    c->write->log = clog;

    /*
     * The upstream module adds the client connection's events to epoll
     * when it starts (ngx_http_upstream_init, and _init_request to see a
     * client go away); there is no socket to add.  Marked active (and not
     * ready), they are never added, deleted, or posted.
     */

    c->read->active = 1;
    c->write->active = 1;

    /* $remote_addr and friends: the gateway itself */

    ngx_http_momo_fake_sin.sin_family = AF_INET;
    ngx_http_momo_fake_sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    c->sockaddr = (struct sockaddr *) &ngx_http_momo_fake_sin;
    c->socklen = sizeof(struct sockaddr_in);
    ngx_str_set(&c->addr_text, "127.0.0.1");

    return c;
}


static ngx_int_t
ngx_http_momo_fake_init(ngx_http_request_t *r, ngx_http_conf_ctx_t *conf)
{
    ngx_time_t                 *tp;
    ngx_http_connection_t      *hc;
    ngx_http_core_main_conf_t  *cmcf;

    r->main_conf = conf->main_conf;
    r->srv_conf = conf->srv_conf;
    r->loc_conf = conf->loc_conf;

    hc = ngx_pcalloc(r->pool, sizeof(ngx_http_connection_t));
    if (hc == NULL) {
        return NGX_ERROR;
    }

    hc->conf_ctx = conf;
    r->http_connection = hc;

    r->ctx = ngx_pcalloc(r->pool, sizeof(void *) * ngx_http_max_module);
    if (r->ctx == NULL) {
        return NGX_ERROR;
    }

    cmcf = ngx_http_get_module_main_conf(r, ngx_http_core_module);

    r->variables = ngx_pcalloc(r->pool, cmcf->variables.nelts
                                        * sizeof(ngx_http_variable_value_t));
    if (r->variables == NULL) {
        return NGX_ERROR;
    }

    if (ngx_list_init(&r->headers_out.headers, r->pool, 4,
                      sizeof(ngx_table_elt_t))
        != NGX_OK
        || ngx_list_init(&r->headers_out.trailers, r->pool, 1,
                         sizeof(ngx_table_elt_t))
           != NGX_OK
        || ngx_list_init(&r->headers_in.headers, r->pool, 1,
                         sizeof(ngx_table_elt_t))
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    r->headers_in.content_length_n = 0;
    r->headers_in.keep_alive_n = -1;
    r->headers_out.content_length_n = -1;
    r->headers_out.last_modified_time = -1;

    r->method = NGX_HTTP_GET;
    ngx_str_set(&r->method_name, "GET");
    r->http_version = NGX_HTTP_VERSION_11;
    ngx_str_set(&r->http_protocol, "HTTP/1.1");
    ngx_str_set(&r->uri, "/_momo/sweep");
    r->unparsed_uri = r->uri;
    r->request_line.len = 0;

    tp = ngx_timeofday();
    r->start_sec = tp->sec;
    r->start_msec = tp->msec;

    r->uri_changes = NGX_HTTP_MAX_URI_CHANGES + 1;
    r->subrequests = NGX_HTTP_MAX_SUBREQUESTS + 1;
    r->http_state = NGX_HTTP_PROCESS_REQUEST_STATE;
    r->internal = 1;

    r->read_event_handler = ngx_http_block_reading;
    r->write_event_handler = ngx_http_request_empty_handler;

    return NGX_OK;
}


/*
 * The end of a request without a client: its cleanups, then its pool
 * (subrequests and their upstream leftovers included), then the
 * connection slot.  The connection is marked destroyed first, so that
 * ngx_http_run_posted_requests() up the stack stops looking at it.
 */

void
ngx_http_momo_fake_close(ngx_http_request_t *r)
{
    ngx_http_cleanup_t  *cln;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "momo fake request close, count:%d", r->count);

    cln = r->cleanup;
    r->cleanup = NULL;

    while (cln) {
        if (cln->handler) {
            cln->handler(cln->data);
        }

        cln = cln->next;
    }

    ngx_http_momo_fake_free(r->connection);
}


static void
ngx_http_momo_fake_free(ngx_connection_t *c)
{
    ngx_pool_t        *pool;
    ngx_connection_t  *saved;

    c->destroyed = 1;

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    c->read->closed = 1;
    c->write->closed = 1;

    pool = c->pool;
    c->pool = NULL;

    /* the log lives in the pool: the slot must not point at it */

    c->log = ngx_cycle->log;
    c->read->log = ngx_cycle->log;
    c->write->log = ngx_cycle->log;

    ngx_destroy_pool(pool);

    saved = ngx_cycle->files ? ngx_cycle->files[0] : NULL;

    c->fd = 0;
    ngx_free_connection(c);
    c->fd = (ngx_socket_t) -1;

    if (ngx_cycle->files) {
        ngx_cycle->files[0] = saved;
    }
}


static u_char *
ngx_http_momo_fake_log_error(ngx_log_t *log, u_char *buf, size_t len)
{
    u_char  *p;

    p = buf;

    if (log->action) {
        p = ngx_snprintf(buf, len, " while %s", log->action);
        len -= p - buf;
        buf = p;
    }

    return ngx_snprintf(buf, len, ", momo sweep (no client)");
}
