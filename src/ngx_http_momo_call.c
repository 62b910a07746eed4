
/*
 * Copyright (C) The ngx_http_momo_module developers
 *
 * Calls to MTN as in-memory subrequests to the internal locations marked
 * "momo_leg" (or to the momo_notify location), the way the nginx
 * development guide prescribes for a client request: every TLS, timeout
 * and keepalive setting stays an ordinary proxy_* directive.  One call at
 * a time per request; when it ends, the parent's write handler runs the
 * step stored in ctx->next.
 */


#include "ngx_http_momo_module.h"


static ngx_int_t ngx_http_momo_call_done(ngx_http_request_t *sr, void *data,
    ngx_int_t rc);
static ngx_int_t ngx_http_momo_call_body(ngx_http_request_t *sr,
    ngx_http_momo_call_t *call);
static void ngx_http_momo_wait_handler(ngx_event_t *ev);
static void ngx_http_momo_wait_cleanup(void *data);
static void ngx_http_momo_run(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx,
    ngx_http_momo_step_pt step);


static ngx_str_t  ngx_http_momo_get = ngx_string("GET ");
static ngx_str_t  ngx_http_momo_post = ngx_string("POST ");


ngx_http_momo_call_t *
ngx_http_momo_call_create(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx,
    ngx_http_momo_leg_e leg)
{
    ngx_http_momo_call_t      *call;
    ngx_http_momo_srv_conf_t  *mscf;

    call = ngx_pcalloc(r->pool, sizeof(ngx_http_momo_call_t));
    if (call == NULL) {
        return NULL;
    }

    call->leg = leg;
    call->mlcf = ctx->mlcf;
    call->method = NGX_HTTP_GET;

    if (leg == NGX_HTTP_MOMO_LEG_NOTIFY) {
        call->uri = ctx->mlcf->notify;

    } else {
        mscf = ngx_http_get_module_srv_conf(r, ngx_http_momo_module);
        call->uri = mscf->legs[leg];
    }

    return call;
}


ngx_int_t
ngx_http_momo_call(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx,
    ngx_http_momo_call_t *call, ngx_http_momo_step_pt next)
{
    ngx_http_request_t          *sr;
    ngx_http_post_subrequest_t  *ps;

    ps = ngx_palloc(r->pool, sizeof(ngx_http_post_subrequest_t));
    if (ps == NULL) {
        return NGX_ERROR;
    }

    ps->handler = ngx_http_momo_call_done;
    ps->data = call;

    if (ngx_http_subrequest(r, &call->uri, NULL, &sr, ps,
                            NGX_HTTP_SUBREQUEST_IN_MEMORY
                            |NGX_HTTP_SUBREQUEST_WAITED)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_http_set_ctx(sr, call, ngx_http_momo_module);

    if (call->method == NGX_HTTP_POST) {
        sr->method = NGX_HTTP_POST;
        sr->method_name.len = ngx_http_momo_post.len - 1;
        sr->method_name.data = ngx_http_momo_post.data;

    } else {
        sr->method = NGX_HTTP_GET;
        sr->method_name.len = ngx_http_momo_get.len - 1;
        sr->method_name.data = ngx_http_momo_get.data;
    }

    if (ngx_http_momo_call_body(sr, call) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "momo call \"%V\" %ui", &call->uri, call->method);

    /*
     * The call's location puts the Basic credentials, the subscription
     * key and the token into proxy_set_header lines, and nginx's script
     * and proxy code print them at debug level.  A subrequest shares the
     * client connection's log, whatever its location's error_log says:
     * no debug output until the call ends (ngx_http_momo_call_done).
     */

    if (call->leg != NGX_HTTP_MOMO_LEG_NOTIFY
        && (r->connection->log->log_level & ~NGX_LOG_DEBUG_CONNECTION)
           > NGX_LOG_INFO)
    {
        r->connection->log->log_level = NGX_LOG_INFO
            | (r->connection->log->log_level & NGX_LOG_DEBUG_CONNECTION);
    }

    call->start = ngx_current_msec;
    ctx->call = call;
    ctx->next = next;

    return NGX_AGAIN;
}


/*
 * The subrequest must carry nothing of the client's request: no header,
 * cookie or body.  Its headers_in is rebuilt empty, and its body is the
 * one the module built (none for GET; Content-Length: 0 for a bodyless
 * POST, which MTN requires).
 */

static ngx_int_t
ngx_http_momo_call_body(ngx_http_request_t *sr, ngx_http_momo_call_t *call)
{
    ngx_buf_t                *b;
    ngx_chain_t              *cl;
    ngx_table_elt_t          *h;
    ngx_http_request_body_t  *rb;

    ngx_memzero(&sr->headers_in, sizeof(ngx_http_headers_in_t));

    if (ngx_list_init(&sr->headers_in.headers, sr->pool, 2,
                      sizeof(ngx_table_elt_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    sr->headers_in.content_length_n = -1;
    sr->headers_in.keep_alive_n = -1;

    rb = ngx_pcalloc(sr->pool, sizeof(ngx_http_request_body_t));
    if (rb == NULL) {
        return NGX_ERROR;
    }

    sr->request_body = rb;

    if (call->method != NGX_HTTP_POST) {
        return NGX_OK;
    }

    sr->headers_in.content_length_n = call->body.len;

    if (call->body.len == 0) {
        return NGX_OK;
    }

    /* what the notify location passes on to the application */

    h = ngx_list_push(&sr->headers_in.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Content-Type");
    ngx_str_set(&h->value, "application/json");
    h->lowcase_key = (u_char *) "content-type";
    sr->headers_in.content_type = h;

    b = ngx_calloc_buf(sr->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->start = call->body.data;
    b->pos = b->start;
    b->last = b->start + call->body.len;
    b->end = b->last;
    b->memory = 1;
    b->last_buf = 1;
    b->last_in_chain = 1;

    cl = ngx_alloc_chain_link(sr->pool);
    if (cl == NULL) {
        return NGX_ERROR;
    }

    cl->buf = b;
    cl->next = NULL;

    rb->bufs = cl;
    rb->buf = b;

    return NGX_OK;
}


/*
 * Runs when the subrequest is finalized, possibly twice on a failure
 * (first with nginx's error code, then after its error page).  Only the
 * first call counts; an error code is turned into NGX_OK so that nginx
 * does not render its HTML error page into our buffer.  Must not start
 * anything: the parent is woken by nginx and resumes in its write handler,
 * unless the client has gone, so what must not be lost (the token) is
 * settled here.
 */

static ngx_int_t
ngx_http_momo_call_done(ngx_http_request_t *sr, void *data, ngx_int_t rc)
{
    ngx_http_momo_call_t *call = data;

    ngx_buf_t                  *b;
    ngx_http_core_loc_conf_t   *clcf;
    ngx_http_momo_main_conf_t  *mmcf;

    if (call->done) {
        return rc >= NGX_HTTP_SPECIAL_RESPONSE ? NGX_OK : rc;
    }

    call->done = 1;
    call->rc = rc;

    /* the log level of the main request's location again */

    clcf = ngx_http_get_module_loc_conf(sr->main, ngx_http_core_module);
    ngx_set_connection_log(sr->connection, clcf->error_log);

    if (rc == NGX_OK || rc == NGX_DONE) {
        call->status = sr->headers_out.status;

        if (sr->out && sr->out->buf) {
            b = sr->out->buf;
            call->response.data = b->pos;
            call->response.len = b->last - b->pos;
        }
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, sr->connection->log, 0,
                   "momo call done \"%V\" rc:%i status:%ui",
                   &call->uri, rc, call->status);

    if (call->leg == NGX_HTTP_MOMO_LEG_TOKEN) {
        ngx_http_momo_token_settle(sr, call);
    }

    mmcf = ngx_http_get_module_main_conf(sr, ngx_http_momo_module);

    ngx_http_momo_count_call(mmcf->shm_zone, call->leg, call->status,
                             ngx_current_msec - call->start);

    return rc >= NGX_HTTP_SPECIAL_RESPONSE ? NGX_OK : rc;
}


/* the parent's write handler: a call ended or a wait timer fired */

void
ngx_http_momo_resume(ngx_http_request_t *r)
{
    ngx_http_momo_ctx_t   *ctx;
    ngx_http_momo_step_pt  step;

    ctx = ngx_http_get_module_ctx(r, ngx_http_momo_module);

    if (ctx == NULL || ctx->finalized || ctx->waiting) {
        return;
    }

    if (ctx->call && !ctx->call->done) {
        return;
    }

    step = ctx->next;
    ctx->next = NULL;

    if (step == NULL) {
        return;
    }

    ngx_http_momo_run(r, ctx, step);
}


static void
ngx_http_momo_run(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx,
    ngx_http_momo_step_pt step)
{
    ngx_int_t  rc;

    rc = step(r, ctx);

    if (rc == NGX_AGAIN) {
        return;
    }

    ngx_http_momo_done(r, ctx, rc);
}


/* a bounded, non-blocking pause: the worker serves others meanwhile */

ngx_int_t
ngx_http_momo_wait(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx,
    ngx_msec_t delay, ngx_http_momo_step_pt next)
{
    ngx_pool_cleanup_t  *cln;

    if (ctx->wait.handler == NULL) {
        cln = ngx_pool_cleanup_add(r->pool, 0);
        if (cln == NULL) {
            return NGX_ERROR;
        }

        cln->handler = ngx_http_momo_wait_cleanup;
        cln->data = ctx;

        ctx->wait.handler = ngx_http_momo_wait_handler;
        ctx->wait.data = r;
        ctx->wait.log = r->connection->log;
    }

    ctx->next = next;
    ctx->call = NULL;
    ctx->waiting = 1;

    ngx_add_timer(&ctx->wait, delay);

    return NGX_AGAIN;
}


static void
ngx_http_momo_wait_handler(ngx_event_t *ev)
{
    ngx_connection_t      *c;
    ngx_http_request_t    *r;
    ngx_http_momo_ctx_t   *ctx;
    ngx_http_momo_step_pt  step;

    r = ev->data;
    c = r->connection;

    ctx = ngx_http_get_module_ctx(r, ngx_http_momo_module);

    ctx->waiting = 0;
    step = ctx->next;
    ctx->next = NULL;

    if (step && !ctx->finalized) {
        ngx_http_momo_run(r, ctx, step);
    }

    ngx_http_run_posted_requests(c);
}


static void
ngx_http_momo_wait_cleanup(void *data)
{
    ngx_http_momo_ctx_t *ctx = data;

    if (ctx->wait.timer_set) {
        ngx_del_timer(&ctx->wait);
    }
}
