
/*
 * Copyright (C) The ngx_http_momo_module developers
 *
 * Calls to MTN as subrequests to the internal locations marked
 * "momo_leg" (or to the momo_notify location), the way the nginx
 * development guide prescribes for a client request: every TLS, timeout
 * and keepalive setting stays an ordinary proxy_* directive.  The answer
 * is captured by the module's own header and body filters (as
 * lua-nginx-module's capture filter does), up to the location's
 * subrequest_output_buffer_size: a larger answer is read and dropped and
 * the call ends as one without an answer, where nginx's in-memory
 * subrequests would fail the client's connection.  One call at
 * a time per request; when it ends, the parent's write handler runs the
 * step stored in ctx->next.  Each call has a deadline: its location's
 * connect, send and read timeouts plus a margin, so that an MTN that
 * drips its answer a byte at a time cannot hold a request longer than
 * the timeouts say.
 */


#include "ngx_http_momo_module.h"


static ngx_int_t ngx_http_momo_call_done(ngx_http_request_t *sr, void *data,
    ngx_int_t rc);
static ngx_int_t ngx_http_momo_call_body(ngx_http_request_t *sr,
    ngx_http_momo_call_t *call);
static ngx_int_t ngx_http_momo_call_headers(ngx_http_request_t *sr,
    ngx_http_momo_call_t *call);
static ngx_http_momo_call_t *ngx_http_momo_call_of(ngx_http_request_t *r);
static ngx_int_t ngx_http_momo_capture_header(ngx_http_request_t *r);
static ngx_int_t ngx_http_momo_capture_body(ngx_http_request_t *r,
    ngx_chain_t *in);
static void ngx_http_momo_call_direct(ngx_http_request_t *r,
    ngx_http_request_t *sr, ngx_http_momo_call_t *call);
static void ngx_http_momo_call_enter(ngx_http_request_t *sr);
static void ngx_http_momo_call_mapped(ngx_http_request_t *sr,
    ngx_http_momo_call_t *call);
static void ngx_http_momo_call_deadline(ngx_event_t *ev);
static ngx_int_t ngx_http_momo_call_limit(ngx_http_momo_call_t *call);
static void ngx_http_momo_call_expire(ngx_http_momo_call_t *call);
static void ngx_http_momo_call_abort(ngx_http_momo_call_t *call);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


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
    call->product = ctx->product;
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
                            NGX_HTTP_SUBREQUEST_WAITED)
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

    ngx_http_momo_call_direct(r, sr, call);

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
    call->sr = sr;
    ctx->call = call;
    ctx->next = next;
    ctx->state = NGX_HTTP_MOMO_CALLING;

    /* the location's timeouts are known once its upstream exists */

    call->deadline.handler = ngx_http_momo_call_deadline;
    call->deadline.data = call;
    call->deadline.log = r->connection->log;

    ngx_add_timer(&call->deadline, NGX_HTTP_MOMO_CALL_MARGIN);

    return NGX_HTTP_MOMO_SUSPENDED;
}


/*
 * A leg's location is an exact-match location, so its URI always maps to
 * it.  Once nginx has mapped it in this worker (ngx_http_momo_call_mapped,
 * with the location nginx chose), later calls enter that location the way
 * ngx_http_named_location() enters a named one: from its rewrite phase,
 * without the server's rewrite phase and the lookup of a URI whose
 * location cannot change.  A body over the location's client_max_body_size
 * takes nginx's own path, and its 413.  A server-level rewrite that sends
 * the leg's URI elsewhere keeps the leg unmapped (t/166); one that does so
 * only on a condition of the client's request is decided at the first call.
 */

static void
ngx_http_momo_call_direct(ngx_http_request_t *r, ngx_http_request_t *sr,
    ngx_http_momo_call_t *call)
{
    ngx_http_core_loc_conf_t  *clcf;
    ngx_http_momo_srv_conf_t  *mscf;

    if (call->leg == NGX_HTTP_MOMO_LEG_NOTIFY) {
        return;
    }

    mscf = ngx_http_get_module_srv_conf(r, ngx_http_momo_module);

    if (!(mscf->leg_mapped & (1 << call->leg))) {
        return;
    }

    clcf = mscf->leg_clcf[call->leg];

    if (clcf->client_max_body_size
        && (off_t) call->body.len > clcf->client_max_body_size)
    {
        return;
    }

    call->loc_conf = clcf->loc_conf;
    sr->write_event_handler = ngx_http_momo_call_enter;
}


/* what ngx_http_handler() does for a subrequest, in the leg's location */

static void
ngx_http_momo_call_enter(ngx_http_request_t *sr)
{
    ngx_http_momo_call_t       *call;
    ngx_http_core_main_conf_t  *cmcf;

    call = ngx_http_momo_call_of(sr);

    sr->connection->log->action = NULL;
    sr->loc_conf = call->loc_conf;
    ngx_http_update_location_config(sr);

    cmcf = ngx_http_get_module_main_conf(sr, ngx_http_core_module);

    sr->phase_handler = cmcf->phase_engine.location_rewrite_index;
    sr->valid_location = 1;
#if (NGX_HTTP_GZIP)
    sr->gzip_tested = 0;
    sr->gzip_ok = 0;
    sr->gzip_vary = 0;
#endif

    sr->write_event_handler = ngx_http_core_run_phases;
    ngx_http_core_run_phases(sr);
}


/* the call's answer came from the leg's location: nginx mapped its URI */

static void
ngx_http_momo_call_mapped(ngx_http_request_t *sr, ngx_http_momo_call_t *call)
{
    ngx_http_momo_srv_conf_t  *mscf;

    if (call->leg == NGX_HTTP_MOMO_LEG_NOTIFY || call->loc_conf) {
        return;
    }

    mscf = ngx_http_get_module_srv_conf(sr, ngx_http_momo_module);

    if (mscf->leg_clcf[call->leg]->exact_match
        && sr->loc_conf == mscf->leg_clcf[call->leg]->loc_conf)
    {
        mscf->leg_mapped |= 1 << call->leg;
    }
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

    if (ngx_http_momo_call_headers(sr, call) != NGX_OK) {
        return NGX_ERROR;
    }

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


/* the call's own headers (the notify's event id and signature) */

static ngx_int_t
ngx_http_momo_call_headers(ngx_http_request_t *sr, ngx_http_momo_call_t *call)
{
    ngx_uint_t        i;
    ngx_table_elt_t  *h, *src;

    if (call->headers == NULL) {
        return NGX_OK;
    }

    src = call->headers->elts;

    for (i = 0; i < call->headers->nelts; i++) {
        h = ngx_list_push(&sr->headers_in.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        *h = src[i];
    }

    return NGX_OK;
}


/*
 * Runs when the subrequest is finalized, possibly twice on a failure
 * (first with nginx's error code, then after its error page).  Only the
 * first call counts.  An error code is turned into NGX_OK so that nginx
 * does not render its HTML error page into our buffer, and so is
 * NGX_ERROR (an answer larger than subrequest_output_buffer_size, a
 * failed upstream), which would terminate the client's request without
 * an answer: the step sees call->status 0 and answers JSON.  Must not
 * start anything: the parent is woken by nginx and resumes in its write
 * handler, unless the client has gone, so what must not be lost (the
 * token, the notify's outcome) is settled here.
 */

static ngx_int_t
ngx_http_momo_call_done(ngx_http_request_t *sr, void *data, ngx_int_t rc)
{
    ngx_http_momo_call_t *call = data;

    ngx_http_momo_ctx_t        *ctx;
    ngx_http_core_loc_conf_t   *clcf;
    ngx_http_momo_main_conf_t  *mmcf;

    if (call->done) {
        return (rc == NGX_ERROR || rc >= NGX_HTTP_SPECIAL_RESPONSE)
               ? NGX_OK : rc;
    }

    call->done = 1;
    call->rc = rc;

    ngx_http_momo_call_cancel(call);

    /* the log level of the main request's location again */

    clcf = ngx_http_get_module_loc_conf(sr->main, ngx_http_core_module);
    ngx_set_connection_log(sr->connection, clcf->error_log);

    /*
     * An answer cut short (a timeout or a close while its body was read)
     * ends with a flush, not with the last buffer: no answer either.
     */

    if ((rc == NGX_OK || rc == NGX_DONE) && !call->too_big
        && (call->complete || sr->header_only))
    {
        call->status = sr->headers_out.status;

    } else {
        call->response.len = 0;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, sr->connection->log, 0,
                   "momo call done \"%V\" rc:%i status:%ui",
                   &call->uri, rc, call->status);

    if (call->too_big) {
        ngx_log_error(NGX_LOG_ERR, sr->connection->log, 0,
                      "momo: the answer (HTTP %ui) to the call to \"%V\" "
                      "is larger than its subrequest_output_buffer_size "
                      "(%uz); it is treated as no answer",
                      sr->headers_out.status, &call->uri, call->max);

    } else if (call->status == 0 && sr->headers_out.status) {
        ngx_log_error(NGX_LOG_ERR, sr->connection->log, 0,
                      "momo: the answer (HTTP %ui) to the call to \"%V\" "
                      "was cut short; it is treated as no answer",
                      sr->headers_out.status, &call->uri);
    }

    ctx = ngx_http_get_module_ctx(sr->main, ngx_http_momo_module);

    if (call->leg == NGX_HTTP_MOMO_LEG_TOKEN) {
        ngx_http_momo_token_settle(sr, call);
        ctx->token_lease = 0;

    } else if (call->leg == NGX_HTTP_MOMO_LEG_NOTIFY) {
        ngx_http_momo_notify_settle(sr, call);
        ctx->notify_lease = 0;
    }

    mmcf = ngx_http_get_module_main_conf(sr, ngx_http_momo_module);

    ngx_http_momo_count_call(mmcf->shm_zone, call->leg, call->status,
                             ngx_current_msec - call->start);

    return (rc == NGX_ERROR || rc >= NGX_HTTP_SPECIAL_RESPONSE) ? NGX_OK : rc;
}


ngx_int_t
ngx_http_momo_call_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_momo_capture_header;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_momo_capture_body;

    return NGX_OK;
}


/* the call a subrequest makes; internal redirects keep post_subrequest */

static ngx_http_momo_call_t *
ngx_http_momo_call_of(ngx_http_request_t *r)
{
    if (r == r->main
        || r->post_subrequest == NULL
        || r->post_subrequest->handler != ngx_http_momo_call_done)
    {
        return NULL;
    }

    return r->post_subrequest->data;
}


static ngx_int_t
ngx_http_momo_capture_header(ngx_http_request_t *r)
{
    ngx_http_momo_call_t      *call;
    ngx_http_core_loc_conf_t  *clcf;

    call = ngx_http_momo_call_of(r);

    if (call == NULL) {
        return ngx_http_next_header_filter(r);
    }

    ngx_http_momo_call_mapped(r, call);

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    call->max = clcf->subrequest_output_buffer_size;
    call->response.len = 0;

    if (r->headers_out.content_length_n > (off_t) call->max) {
        /* the upstream ends the call at once, with no answer */
        call->too_big = 1;
        return NGX_ERROR;
    }

    /* nothing of it goes to the client */

    r->header_sent = 1;
    r->filter_need_in_memory = 1;

    return NGX_OK;
}


static ngx_int_t
ngx_http_momo_capture_body(ngx_http_request_t *r, ngx_chain_t *in)
{
    size_t                 len;
    ngx_buf_t             *b;
    ngx_chain_t           *cl;
    ngx_http_momo_call_t  *call;

    call = ngx_http_momo_call_of(r);

    if (call == NULL) {
        return ngx_http_next_body_filter(r, in);
    }

    for (cl = in; cl; cl = cl->next) {
        b = cl->buf;

        if (b->last_buf || b->last_in_chain) {
            call->complete = 1;
        }

        if (!ngx_buf_in_memory(b)) {
            if (ngx_buf_size(b)) {
                call->too_big = 1;
            }

            b->file_pos = b->file_last;
            continue;
        }

        len = b->last - b->pos;

        if (!call->too_big && len) {
            if (call->response.data == NULL) {
                call->response.data = ngx_pnalloc(r->pool, call->max);
                if (call->response.data == NULL) {
                    return NGX_ERROR;
                }
            }

            if (len > call->max - call->response.len) {
                call->too_big = 1;
                ngx_http_momo_call_abort(call);

            } else {
                ngx_memcpy(call->response.data + call->response.len,
                           b->pos, len);
                call->response.len += len;
            }
        }

        b->pos = b->last;
    }

    return NGX_OK;
}


void
ngx_http_momo_call_cancel(ngx_http_momo_call_t *call)
{
    if (call->deadline.timer_set) {
        ngx_del_timer(&call->deadline);
    }
}


/*
 * The call's time is up when its location's connect, send and read
 * timeouts and a margin have passed, the most a well-behaved MTN could
 * take; a read timeout alone restarts with every byte.  The upstream is
 * made to time out as if its own timer had fired: nginx then ends the
 * call with 504 the usual way (and may try the next server, whose
 * attempt gets one more margin).
 */

static void
ngx_http_momo_call_deadline(ngx_event_t *ev)
{
    ngx_http_momo_call_t *call = ev->data;

    if (call->done) {
        return;
    }

    if (!call->limit_known) {
        if (ngx_http_momo_call_limit(call) == NGX_AGAIN) {
            return;
        }
    }

    ngx_http_momo_call_expire(call);
}


static ngx_int_t
ngx_http_momo_call_limit(ngx_http_momo_call_t *call)
{
    ngx_msec_t                 limit, elapsed;
    ngx_http_upstream_t       *u;
    ngx_http_upstream_conf_t  *conf;

    u = call->sr->upstream;

    if (u == NULL || u->conf == NULL) {
        /* not (yet) a proxied call: look again later */
        ngx_add_timer(&call->deadline, NGX_HTTP_MOMO_CALL_MARGIN);
        return NGX_AGAIN;
    }

    conf = u->conf;
    call->limit_known = 1;

    limit = ngx_http_momo_upstream_time(conf);
    elapsed = ngx_current_msec - call->start;

    if (elapsed < limit) {
        ngx_add_timer(&call->deadline, limit - elapsed);
        return NGX_AGAIN;
    }

    return NGX_OK;
}


static void
ngx_http_momo_call_expire(ngx_http_momo_call_t *call)
{
    ngx_add_timer(&call->deadline, NGX_HTTP_MOMO_CALL_MARGIN);

    if (call->sr->upstream->peer.connection == NULL) {
        return;
    }

    ngx_log_error(NGX_LOG_ERR, call->sr->connection->log, 0,
                  "momo: the call to \"%V\" took longer than its "
                  "location's timeouts allow (%M ms); it is ended",
                  &call->uri, ngx_current_msec - call->start);

    ngx_http_momo_call_abort(call);
}


/*
 * Ends the call's upstream as if its own timer had fired.  The event is
 * posted, not handled here, so that nothing freed by it is touched
 * afterwards.
 */

static void
ngx_http_momo_call_abort(ngx_http_momo_call_t *call)
{
    ngx_event_t          *ev;
    ngx_connection_t     *c;
    ngx_http_upstream_t  *u;

    u = call->sr->upstream;

    if (u == NULL || u->peer.connection == NULL) {
        return;
    }

    c = u->peer.connection;
    ev = c->write->timer_set ? c->write : c->read;

    if (ev->timer_set) {
        ngx_del_timer(ev);
    }

    ev->timedout = 1;

    ngx_post_event(ev, &ngx_posted_events);
}


/* the longest a proxied call may take: its timeouts and the margin */

ngx_msec_t
ngx_http_momo_upstream_time(ngx_http_upstream_conf_t *conf)
{
    return conf->connect_timeout + conf->send_timeout + conf->read_timeout
           + NGX_HTTP_MOMO_CALL_MARGIN;
}
