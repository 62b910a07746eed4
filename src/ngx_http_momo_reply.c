
/*
 * Copyright (C) The ngx_http_momo_module developers
 *
 * JSON answers to the client.  Errors are sent as our JSON with their
 * status, never returned to nginx, which would render its HTML error
 * page.  The output filter's result goes back to the step, and from
 * there to ngx_http_momo_finalize().
 */


#include "ngx_http_momo_module.h"


static ngx_int_t ngx_http_momo_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *json);
static ngx_int_t ngx_http_momo_read_file(ngx_http_request_t *r,
    ngx_buf_t *b, u_char *p);


static ngx_str_t  ngx_http_momo_true = ngx_string("true");
static ngx_str_t  ngx_http_momo_false = ngx_string("false");
static ngx_str_t  ngx_http_momo_retry_after = ngx_string("1");


ngx_int_t
ngx_http_momo_reply(ngx_http_request_t *r, ngx_uint_t status,
    ngx_http_momo_json_field_t *fields, ngx_uint_t n)
{
    ngx_str_t  json;

    if (ngx_http_momo_json_render_line(r->pool, fields, n, &json) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_momo_send(r, status, &json);
}


ngx_int_t
ngx_http_momo_reply_error(ngx_http_request_t *r, ngx_http_momo_error_t *err)
{
    ngx_str_t                   inner;
    ngx_uint_t                  n;
    ngx_http_momo_ctx_t        *ctx;
    ngx_http_momo_json_field_t  e[3], f[4];

    ctx = ngx_http_get_module_ctx(r, ngx_http_momo_module);

    ngx_str_set(&e[0].key, "code");
    e[0].value = err->code;
    e[0].type = NGX_HTTP_MOMO_JSON_STRING;
    ngx_str_set(&e[1].key, "message");
    e[1].value = err->message;
    e[1].type = NGX_HTTP_MOMO_JSON_STRING;
    ngx_str_set(&e[2].key, "retryable");
    e[2].value = err->retryable ? ngx_http_momo_true : ngx_http_momo_false;
    e[2].type = NGX_HTTP_MOMO_JSON_RAW;

    if (ngx_http_momo_json_render(r->pool, e, 3, &inner) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_str_set(&f[0].key, "success");
    f[0].value = ngx_http_momo_false;
    f[0].type = NGX_HTTP_MOMO_JSON_RAW;
    ngx_str_set(&f[1].key, "error");
    f[1].value = inner;
    f[1].type = NGX_HTTP_MOMO_JSON_RAW;

    n = 2;

    if (ctx && ctx->reference_id.len) {
        ngx_str_set(&f[n].key, "reference_id");
        f[n].value = ctx->reference_id;
        f[n++].type = NGX_HTTP_MOMO_JSON_STRING;
    }

    if (ctx && ctx->status.len) {
        ngx_str_set(&f[n].key, "status");
        f[n].value = ctx->status;
        f[n++].type = NGX_HTTP_MOMO_JSON_STRING;
    }

    return ngx_http_momo_reply(r, err->status, f, n);
}


/* an error answer; a payment's outcome is counted for momo_metrics */

ngx_int_t
ngx_http_momo_fail(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx,
    ngx_http_momo_error_t *err, ngx_uint_t result)
{
    ctx->error = err->code;

    if (ctx->pay) {
        ngx_http_momo_count_payment(r, result);

    } else if (ctx->disb) {
        ngx_http_momo_count_op(r, ctx->kind, result);
    }

    if (err->status == NGX_HTTP_SERVICE_UNAVAILABLE) {
        if (ngx_http_momo_header(r, "Retry-After", &ngx_http_momo_retry_after)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return ngx_http_momo_reply_error(r, err);
}


void
ngx_http_momo_count_payment(ngx_http_request_t *r, ngx_uint_t result)
{
    ngx_http_momo_counters_t   *counters;
    ngx_http_momo_main_conf_t  *mmcf;

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_momo_module);
    counters = ngx_http_momo_counters(mmcf->shm_zone);

    if (counters) {
        ngx_atomic_fetch_add(&counters->payments[result], 1);
    }
}


/* a payment as JSON fields, for the status answer and the notify body */

ngx_uint_t
ngx_http_momo_record_fields(ngx_http_momo_ctx_t *ctx,
    ngx_http_momo_json_field_t *f)
{
    ngx_http_momo_record_t  *rec;

    rec = &ctx->rec;

    ngx_str_set(&f[0].key, "reference_id");
    f[0].value = ctx->reference_id;
    f[0].type = NGX_HTTP_MOMO_JSON_STRING;

    ngx_str_set(&f[1].key, "status");
    f[1].value = *ngx_http_momo_state_name(rec->state);
    f[1].type = NGX_HTTP_MOMO_JSON_STRING;

#define ngx_http_momo_field(i, name, field, len_field)                       \
    ngx_str_set(&f[i].key, name);                                            \
    f[i].value.data = rec->field;                                            \
    f[i].value.len = rec->len_field;                                         \
    f[i].type = NGX_HTTP_MOMO_JSON_STRING_OR_NULL

    ngx_http_momo_field(2, "amount", amount, amount_len);
    ngx_http_momo_field(3, "currency", currency, currency_len);
    ngx_http_momo_field(4, "external_id", external_id, external_id_len);
    ngx_http_momo_field(5, "financial_transaction_id",
                        financial_transaction_id, fin_len);
    ngx_http_momo_field(6, "reason", reason, reason_len);

#undef ngx_http_momo_field

    return 7;
}


ngx_int_t
ngx_http_momo_reply_payment(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx,
    ngx_uint_t status)
{
    ngx_uint_t                  n;
    ngx_http_momo_json_field_t  f[9];

    ctx->status = *ngx_http_momo_state_name(ctx->rec.state);

    ngx_str_set(&f[0].key, "success");
    f[0].value = ngx_http_momo_true;
    f[0].type = NGX_HTTP_MOMO_JSON_RAW;

    n = 1 + ngx_http_momo_record_fields(ctx, &f[1]);

    if (ctx->kind != NGX_HTTP_MOMO_KIND_PAYMENT) {
        ngx_str_set(&f[n].key, "kind");
        f[n].value = *ngx_http_momo_kind_name(ctx->kind);
        f[n++].type = NGX_HTTP_MOMO_JSON_STRING;
    }

    return ngx_http_momo_reply(r, status, f, n);
}


/*
 * The request body in one piece, wherever nginx keeps it: in memory, or
 * in client_body_temp when it was larger than client_body_buffer_size.
 * NGX_DECLINED when over max.  A file part is at most max bytes on
 * local disk and is read the way nginx's own modules read such files.
 */

ngx_int_t
ngx_http_momo_read_body(ngx_http_request_t *r, size_t max, ngx_str_t *body)
{
    u_char       *p;
    off_t         len;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    ngx_str_null(body);

    if (r->request_body == NULL) {
        return NGX_OK;
    }

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        len += ngx_buf_size(cl->buf);
    }

    if (len > (off_t) max) {
        return NGX_DECLINED;
    }

    if (len == 0) {
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, (size_t) len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    body->data = p;
    body->len = (size_t) len;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (!b->in_file) {
            p = ngx_cpymem(p, b->pos, b->last - b->pos);
            continue;
        }

        if (ngx_http_momo_read_file(r, b, p) != NGX_OK) {
            return NGX_ERROR;
        }

        p += b->file_last - b->file_pos;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_momo_read_file(ngx_http_request_t *r, ngx_buf_t *b, u_char *p)
{
    ssize_t  n, size;

    size = (ssize_t) (b->file_last - b->file_pos);

    n = ngx_read_file(b->file, p, size, b->file_pos);

    if (n != size) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "momo: the request body file \"%V\" gave %z of %z "
                      "bytes", &b->file->name, n, size);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_momo_send(ngx_http_request_t *r, ngx_uint_t status, ngx_str_t *json)
{
    ngx_int_t             rc;
    ngx_buf_t            *b;
    ngx_chain_t           out;
    ngx_table_elt_t      *h;
    ngx_http_momo_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_momo_module);

    if (ctx) {
        if (ctx->responded) {
            return NGX_OK;
        }

        ctx->responded = 1;
        ctx->answer_status = status;
        ngx_http_momo_set_variables(r, ctx);

        if (ctx->headless) {
            ctx->out = NGX_OK;
            return NGX_OK;
        }
    }

    r->headers_out.status = status;
    r->headers_out.content_length_n = json->len;
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Cache-Control");
    ngx_str_set(&h->value, "no-store");

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    /* the answer is sent from where it was rendered */

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = json->data;
    b->last = json->data + json->len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    rc = ngx_http_output_filter(r, &out);

    if (ctx) {
        ctx->out = rc;
    }

    return rc;
}


ngx_int_t
ngx_http_momo_header(ngx_http_request_t *r, char *name, ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) name;
    h->key.len = ngx_strlen(name);
    h->value = *value;

    return NGX_OK;
}
