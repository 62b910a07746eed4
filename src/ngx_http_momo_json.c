
/*
 * Copyright (C) The ngx_http_momo_module developers
 *
 * JSON in and out.  Parsing is yajl 2's event API with an allocator
 * backed by the caller's pool, so nothing here calls malloc and nothing
 * needs freeing: the pool goes away with the request.  yajl's string
 * buffers live only for the duration of a callback, so every value kept
 * is copied into the pool.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <yajl/yajl_parse.h>

#include "ngx_http_momo_module.h"


/*
 * Nesting allowed in a body.  The answers the module reads are flat or
 * one level deep; the limit keeps a hostile body of "[[[[..." from
 * growing yajl's state stack without bound.
 */
#define NGX_HTTP_MOMO_JSON_MAX_DEPTH  32


/* each pool block handed to yajl is prefixed with its capacity */
#define NGX_HTTP_MOMO_JSON_HDR        ngx_align(sizeof(size_t), NGX_ALIGNMENT)


typedef enum {
    NGX_HTTP_MOMO_PF_AMOUNT = 0,
    NGX_HTTP_MOMO_PF_CURRENCY,
    NGX_HTTP_MOMO_PF_EXTERNAL_ID,
    NGX_HTTP_MOMO_PF_PAYER_MESSAGE,
    NGX_HTTP_MOMO_PF_PAYEE_NOTE,
    NGX_HTTP_MOMO_PF_PHONE,
    NGX_HTTP_MOMO_PF_REFERENCE_ID,
    NGX_HTTP_MOMO_PF_MAX
} ngx_http_momo_pay_field_e;


typedef struct {
    ngx_str_t                   name;
    size_t                      offset;
    char                       *code;
    char                       *type_error;
} ngx_http_momo_pay_field_t;


typedef struct {
    ngx_pool_t                 *pool;
    ngx_http_momo_payment_t    *payment;
    ngx_http_momo_error_t      *err;
    ngx_uint_t                  depth;
    ngx_int_t                   field;          /* at depth 1, or -1 */
    ngx_uint_t                  seen;           /* bit per field */
    unsigned                    object:1;
    unsigned                    failed:1;       /* err is set */
    unsigned                    nomem:1;
} ngx_http_momo_pay_ctx_t;


typedef enum {
    NGX_HTTP_MOMO_MF_NONE = 0,
    NGX_HTTP_MOMO_MF_STATUS,
    NGX_HTTP_MOMO_MF_AMOUNT,
    NGX_HTTP_MOMO_MF_CURRENCY,
    NGX_HTTP_MOMO_MF_EXTERNAL_ID,
    NGX_HTTP_MOMO_MF_FIN_ID,
    NGX_HTTP_MOMO_MF_PAYER,
    NGX_HTTP_MOMO_MF_PARTY_ID,                  /* payer.partyId */
    NGX_HTTP_MOMO_MF_REASON,
    NGX_HTTP_MOMO_MF_REASON_CODE,               /* reason.code */
    NGX_HTTP_MOMO_MF_CODE,
    NGX_HTTP_MOMO_MF_ERROR,
    NGX_HTTP_MOMO_MF_MESSAGE,
    NGX_HTTP_MOMO_MF_STATUS_CODE,
    NGX_HTTP_MOMO_MF_ACCESS_TOKEN,
    NGX_HTTP_MOMO_MF_EXPIRES_IN,
    NGX_HTTP_MOMO_MF_BALANCE,
    NGX_HTTP_MOMO_MF_RESULT
} ngx_http_momo_mtn_field_e;


typedef struct {
    ngx_str_t                   name;
    ngx_http_momo_mtn_field_e   field;
} ngx_http_momo_mtn_key_t;


typedef struct {
    ngx_pool_t                 *pool;
    ngx_http_momo_mtn_body_t   *body;
    ngx_str_t                   error;          /* "error", if no "code" */
    ngx_uint_t                  depth;
    ngx_http_momo_mtn_field_e   key1;           /* current key, depth 1 */
    ngx_http_momo_mtn_field_e   key2;           /* current key, depth 2 */
    ngx_http_momo_mtn_field_e   parent;         /* the object at depth 2 */
    unsigned                    object:1;
    unsigned                    nomem:1;
} ngx_http_momo_mtn_ctx_t;


static void *ngx_http_momo_json_malloc(void *ctx, size_t size);
static void *ngx_http_momo_json_realloc(void *ctx, void *ptr, size_t size);
static void ngx_http_momo_json_free(void *ctx, void *ptr);
static ngx_int_t ngx_http_momo_json_print(ngx_pool_t *pool,
    ngx_http_momo_json_field_t *fields, ngx_uint_t n, ngx_uint_t newline,
    ngx_str_t *out);
static yajl_handle ngx_http_momo_json_parser(ngx_pool_t *pool,
    yajl_alloc_funcs *afs, const yajl_callbacks *callbacks, void *ctx);
static ngx_int_t ngx_http_momo_json_copy(ngx_pool_t *pool, ngx_str_t *dst,
    const u_char *src, size_t len);

static void ngx_http_momo_pay_fail(ngx_http_momo_pay_ctx_t *ctx,
    char *code, char *message);
static void ngx_http_momo_pay_cancel(ngx_http_momo_pay_ctx_t *ctx,
    char *message);
static int ngx_http_momo_pay_value(ngx_http_momo_pay_ctx_t *ctx,
    ngx_uint_t number, const u_char *s, size_t len);
static int ngx_http_momo_pay_null(void *data);
static int ngx_http_momo_pay_boolean(void *data, int value);
static int ngx_http_momo_pay_number(void *data, const char *s, size_t len);
static int ngx_http_momo_pay_string(void *data, const unsigned char *s,
    size_t len);
static int ngx_http_momo_pay_start_map(void *data);
static int ngx_http_momo_pay_start_array(void *data);
static int ngx_http_momo_pay_push(ngx_http_momo_pay_ctx_t *ctx);
static int ngx_http_momo_pay_key(void *data, const unsigned char *s,
    size_t len);
static int ngx_http_momo_pay_end(void *data);

static int ngx_http_momo_mtn_value(ngx_http_momo_mtn_ctx_t *ctx,
    ngx_uint_t number, const u_char *s, size_t len);
static int ngx_http_momo_mtn_null(void *data);
static int ngx_http_momo_mtn_boolean(void *data, int value);
static int ngx_http_momo_mtn_number(void *data, const char *s, size_t len);
static int ngx_http_momo_mtn_string(void *data, const unsigned char *s,
    size_t len);
static int ngx_http_momo_mtn_start_map(void *data);
static int ngx_http_momo_mtn_start_array(void *data);
static int ngx_http_momo_mtn_key(void *data, const unsigned char *s,
    size_t len);
static int ngx_http_momo_mtn_end(void *data);
static void ngx_http_momo_mtn_reset(ngx_http_momo_mtn_body_t *b);


static ngx_http_momo_pay_field_t  ngx_http_momo_pay_fields[] = {

    { ngx_string("amount"),
      offsetof(ngx_http_momo_payment_t, amount),
      "INVALID_AMOUNT",
      "amount must be a string or a number" },

    { ngx_string("currency"),
      offsetof(ngx_http_momo_payment_t, currency),
      "INVALID_CURRENCY",
      "currency must be a string" },

    { ngx_string("external_id"),
      offsetof(ngx_http_momo_payment_t, external_id),
      "INVALID_EXTERNAL_ID",
      "external_id must be a string" },

    { ngx_string("payer_message"),
      offsetof(ngx_http_momo_payment_t, payer_message),
      "INVALID_PAYER_MESSAGE",
      "payer_message must be a string" },

    { ngx_string("payee_note"),
      offsetof(ngx_http_momo_payment_t, payee_note),
      "INVALID_PAYEE_NOTE",
      "payee_note must be a string" },

    { ngx_string("phone"),
      offsetof(ngx_http_momo_payment_t, phone),
      "INVALID_PHONE",
      "phone must be a string" },

    { ngx_string("reference_id"),
      offsetof(ngx_http_momo_payment_t, reference_id),
      "INVALID_REFERENCE_ID",
      "reference_id must be a string" }
};


static ngx_http_momo_mtn_key_t  ngx_http_momo_mtn_keys[] = {
    { ngx_string("status"), NGX_HTTP_MOMO_MF_STATUS },
    { ngx_string("amount"), NGX_HTTP_MOMO_MF_AMOUNT },
    { ngx_string("currency"), NGX_HTTP_MOMO_MF_CURRENCY },
    { ngx_string("externalId"), NGX_HTTP_MOMO_MF_EXTERNAL_ID },
    { ngx_string("financialTransactionId"), NGX_HTTP_MOMO_MF_FIN_ID },
    { ngx_string("payer"), NGX_HTTP_MOMO_MF_PAYER },
    { ngx_string("payee"), NGX_HTTP_MOMO_MF_PAYER },    /* disbursements */
    { ngx_string("availableBalance"), NGX_HTTP_MOMO_MF_BALANCE },
    { ngx_string("result"), NGX_HTTP_MOMO_MF_RESULT },
    { ngx_string("reason"), NGX_HTTP_MOMO_MF_REASON },
    { ngx_string("code"), NGX_HTTP_MOMO_MF_CODE },
    { ngx_string("error"), NGX_HTTP_MOMO_MF_ERROR },
    { ngx_string("message"), NGX_HTTP_MOMO_MF_MESSAGE },
    { ngx_string("statusCode"), NGX_HTTP_MOMO_MF_STATUS_CODE },
    { ngx_string("access_token"), NGX_HTTP_MOMO_MF_ACCESS_TOKEN },
    { ngx_string("expires_in"), NGX_HTTP_MOMO_MF_EXPIRES_IN },
    { ngx_null_string, NGX_HTTP_MOMO_MF_NONE }
};


static yajl_callbacks  ngx_http_momo_pay_callbacks = {
    ngx_http_momo_pay_null,
    ngx_http_momo_pay_boolean,
    NULL,
    NULL,
    ngx_http_momo_pay_number,
    ngx_http_momo_pay_string,
    ngx_http_momo_pay_start_map,
    ngx_http_momo_pay_key,
    ngx_http_momo_pay_end,
    ngx_http_momo_pay_start_array,
    ngx_http_momo_pay_end
};


static yajl_callbacks  ngx_http_momo_mtn_callbacks = {
    ngx_http_momo_mtn_null,
    ngx_http_momo_mtn_boolean,
    NULL,
    NULL,
    ngx_http_momo_mtn_number,
    ngx_http_momo_mtn_string,
    ngx_http_momo_mtn_start_map,
    ngx_http_momo_mtn_key,
    ngx_http_momo_mtn_end,
    ngx_http_momo_mtn_start_array,
    ngx_http_momo_mtn_end
};


ngx_int_t
ngx_http_momo_json_payment(ngx_pool_t *pool, u_char *data, size_t len,
    ngx_http_momo_payment_t *p, ngx_http_momo_error_t *err)
{
    yajl_status               rc;
    yajl_handle               h;
    yajl_alloc_funcs          afs;
    ngx_http_momo_pay_ctx_t   ctx;

    ngx_memzero(p, sizeof(ngx_http_momo_payment_t));
    ngx_memzero(&ctx, sizeof(ngx_http_momo_pay_ctx_t));

    ctx.pool = pool;
    ctx.payment = p;
    ctx.err = err;
    ctx.field = -1;

    h = ngx_http_momo_json_parser(pool, &afs, &ngx_http_momo_pay_callbacks,
                                  &ctx);
    if (h == NULL) {
        return NGX_ERROR;
    }

    rc = yajl_parse(h, data, len);

    if (rc == yajl_status_ok) {
        rc = yajl_complete_parse(h);
    }

    yajl_free(h);

    if (ctx.nomem) {
        return NGX_ERROR;
    }

    if (rc == yajl_status_client_canceled && ctx.failed) {
        /* not an object, or nested too deep */
        return NGX_DECLINED;
    }

    if (rc != yajl_status_ok || !ctx.object) {
        ngx_http_momo_error_set(err, NGX_HTTP_BAD_REQUEST, "INVALID_JSON",
                                "the body is not valid JSON");
        return NGX_DECLINED;
    }

    if (ctx.failed) {
        /* a field of the wrong type, or a key given twice */
        return NGX_DECLINED;
    }

    return NGX_OK;
}


static void
ngx_http_momo_pay_fail(ngx_http_momo_pay_ctx_t *ctx, char *code,
    char *message)
{
    /* the first problem found is the one reported */

    if (ctx->failed) {
        return;
    }

    ngx_http_momo_error_set(ctx->err, NGX_HTTP_BAD_REQUEST, code, message);
    ctx->failed = 1;
}


static void
ngx_http_momo_pay_cancel(ngx_http_momo_pay_ctx_t *ctx, char *message)
{
    /* the parse stops here: this reason wins over a field's */

    ngx_http_momo_error_set(ctx->err, NGX_HTTP_BAD_REQUEST, "INVALID_JSON",
                            message);
    ctx->failed = 1;
}


static int
ngx_http_momo_pay_value(ngx_http_momo_pay_ctx_t *ctx, ngx_uint_t number,
    const u_char *s, size_t len)
{
    ngx_str_t                  *dst;
    ngx_http_momo_pay_field_t  *f;

    if (ctx->depth == 0) {
        ngx_http_momo_pay_cancel(ctx, "the body is not a JSON object");
        return 0;
    }

    if (ctx->depth > 1 || ctx->field < 0) {
        return 1;
    }

    f = &ngx_http_momo_pay_fields[ctx->field];

    if (s == NULL || (number && ctx->field != NGX_HTTP_MOMO_PF_AMOUNT)) {
        ngx_http_momo_pay_fail(ctx, f->code, f->type_error);
        return 1;
    }

    dst = (ngx_str_t *) ((u_char *) ctx->payment + f->offset);

    if (ngx_http_momo_json_copy(ctx->pool, dst, s, len) != NGX_OK) {
        ctx->nomem = 1;
        return 0;
    }

    return 1;
}


static int
ngx_http_momo_pay_null(void *data)
{
    return ngx_http_momo_pay_value(data, 0, NULL, 0);
}


static int
ngx_http_momo_pay_boolean(void *data, int value)
{
    return ngx_http_momo_pay_value(data, 0, NULL, 0);
}


static int
ngx_http_momo_pay_number(void *data, const char *s, size_t len)
{
    return ngx_http_momo_pay_value(data, 1, (const u_char *) s, len);
}


static int
ngx_http_momo_pay_string(void *data, const unsigned char *s, size_t len)
{
    return ngx_http_momo_pay_value(data, 0, s, len);
}


static int
ngx_http_momo_pay_start_map(void *data)
{
    ngx_http_momo_pay_ctx_t *ctx = data;

    if (ctx->depth == 0) {
        ctx->object = 1;

    } else if (ctx->depth == 1 && ctx->field >= 0) {
        /* an object where a known field wants a string */
        (void) ngx_http_momo_pay_value(ctx, 0, NULL, 0);
    }

    return ngx_http_momo_pay_push(ctx);
}


static int
ngx_http_momo_pay_start_array(void *data)
{
    ngx_http_momo_pay_ctx_t *ctx = data;

    if (ctx->depth == 0) {
        ngx_http_momo_pay_cancel(ctx, "the body is not a JSON object");
        return 0;
    }

    if (ctx->depth == 1 && ctx->field >= 0) {
        (void) ngx_http_momo_pay_value(ctx, 0, NULL, 0);
    }

    return ngx_http_momo_pay_push(ctx);
}


static int
ngx_http_momo_pay_push(ngx_http_momo_pay_ctx_t *ctx)
{
    if (ctx->depth >= NGX_HTTP_MOMO_JSON_MAX_DEPTH) {
        ngx_http_momo_pay_cancel(ctx,
                                 "the body nests objects or arrays too deep");
        return 0;
    }

    ctx->depth++;

    return 1;
}


static int
ngx_http_momo_pay_key(void *data, const unsigned char *s, size_t len)
{
    ngx_http_momo_pay_ctx_t *ctx = data;

    u_char      *msg;
    ngx_str_t   *name;
    ngx_uint_t   i;

    if (ctx->depth != 1) {
        return 1;
    }

    ctx->field = -1;

    for (i = 0; i < NGX_HTTP_MOMO_PF_MAX; i++) {
        name = &ngx_http_momo_pay_fields[i].name;

        if (len == name->len && ngx_strncmp(s, name->data, len) == 0) {
            break;
        }
    }

    if (i == NGX_HTTP_MOMO_PF_MAX) {
        return 1;
    }

    if (ctx->seen & (1 << i)) {

        /*
         * JSON leaves duplicate keys undefined and parsers disagree on
         * which one wins; a payment must mean one thing only
         */

        if (ctx->failed) {
            return 1;
        }

        msg = ngx_pnalloc(ctx->pool, sizeof("duplicate key \"\"") - 1 + len);
        if (msg == NULL) {
            ctx->nomem = 1;
            return 0;
        }

        ngx_http_momo_error_set(ctx->err, NGX_HTTP_BAD_REQUEST,
                                "INVALID_JSON", "");

        ctx->err->message.data = msg;
        ctx->err->message.len = ngx_sprintf(msg, "duplicate key \"%V\"", name)
                                - msg;
        ctx->failed = 1;

        return 1;
    }

    ctx->seen |= 1 << i;
    ctx->field = i;

    return 1;
}


static int
ngx_http_momo_pay_end(void *data)
{
    ngx_http_momo_pay_ctx_t *ctx = data;

    ctx->depth--;

    if (ctx->depth == 1) {
        ctx->field = -1;
    }

    return 1;
}


ngx_int_t
ngx_http_momo_json_mtn(ngx_pool_t *pool, u_char *data, size_t len,
    ngx_http_momo_mtn_body_t *b)
{
    yajl_status               rc;
    yajl_handle               h;
    yajl_alloc_funcs          afs;
    ngx_http_momo_mtn_ctx_t   ctx;

    ngx_http_momo_mtn_reset(b);

    ngx_memzero(&ctx, sizeof(ngx_http_momo_mtn_ctx_t));

    ctx.pool = pool;
    ctx.body = b;

    if (len == 0) {
        /* 202 and the like */
        return NGX_DECLINED;
    }

    h = ngx_http_momo_json_parser(pool, &afs, &ngx_http_momo_mtn_callbacks,
                                  &ctx);
    if (h == NULL) {
        return NGX_ERROR;
    }

    rc = yajl_parse(h, data, len);

    if (rc == yajl_status_ok) {
        rc = yajl_complete_parse(h);
    }

    yajl_free(h);

    if (ctx.nomem) {
        return NGX_ERROR;
    }

    if (rc != yajl_status_ok || !ctx.object) {
        /* MTN's gateways answer HTML pages too: trust nothing from it */
        ngx_http_momo_mtn_reset(b);
        return NGX_DECLINED;
    }

    if (b->code.len == 0) {
        b->code = ctx.error;
    }

    return NGX_OK;
}


static void
ngx_http_momo_mtn_reset(ngx_http_momo_mtn_body_t *b)
{
    ngx_memzero(b, sizeof(ngx_http_momo_mtn_body_t));

    b->status_code = -1;
    b->expires_in = -1;
    b->result = -1;
}


static int
ngx_http_momo_mtn_value(ngx_http_momo_mtn_ctx_t *ctx, ngx_uint_t number,
    const u_char *s, size_t len)
{
    ngx_int_t                   n;
    ngx_str_t                  *dst;
    ngx_http_momo_mtn_field_e   field;

    if (ctx->depth == 0) {
        /* a bare string or number is not an answer the module knows */
        return 0;
    }

    if (ctx->depth == 1) {
        field = ctx->key1;

    } else if (ctx->depth == 2) {
        field = ctx->key2;

    } else {
        return 1;
    }

    if (s == NULL) {
        /* null, true or false: leave the field as it was */
        return 1;
    }

    switch (field) {

    case NGX_HTTP_MOMO_MF_STATUS:
        dst = &ctx->body->status;
        break;

    case NGX_HTTP_MOMO_MF_AMOUNT:
        dst = &ctx->body->amount;
        break;

    case NGX_HTTP_MOMO_MF_CURRENCY:
        dst = &ctx->body->currency;
        break;

    case NGX_HTTP_MOMO_MF_EXTERNAL_ID:
        dst = &ctx->body->external_id;
        break;

    case NGX_HTTP_MOMO_MF_FIN_ID:
        dst = &ctx->body->financial_transaction_id;
        break;

    case NGX_HTTP_MOMO_MF_PARTY_ID:
        dst = &ctx->body->payer;
        break;

    case NGX_HTTP_MOMO_MF_REASON:
    case NGX_HTTP_MOMO_MF_REASON_CODE:
        dst = &ctx->body->reason;
        break;

    case NGX_HTTP_MOMO_MF_CODE:
        dst = &ctx->body->code;
        break;

    case NGX_HTTP_MOMO_MF_ERROR:
        dst = &ctx->error;
        break;

    case NGX_HTTP_MOMO_MF_MESSAGE:
        dst = &ctx->body->message;
        break;

    case NGX_HTTP_MOMO_MF_ACCESS_TOKEN:
        dst = &ctx->body->access_token;
        break;

    case NGX_HTTP_MOMO_MF_BALANCE:
        dst = &ctx->body->balance;
        break;

    case NGX_HTTP_MOMO_MF_STATUS_CODE:

        if (number) {
            n = ngx_atoi((u_char *) s, len);
            ctx->body->status_code = (n == NGX_ERROR) ? -1 : n;
        }

        return 1;

    case NGX_HTTP_MOMO_MF_EXPIRES_IN:

        /* an int in the swagger, a string in some stand-ins */

        n = ngx_atoi((u_char *) s, len);
        ctx->body->expires_in = (n == NGX_ERROR) ? -1 : n;

        return 1;

    default:
        return 1;
    }

    if (ngx_http_momo_json_copy(ctx->pool, dst, s, len) != NGX_OK) {
        ctx->nomem = 1;
        return 0;
    }

    return 1;
}


static int
ngx_http_momo_mtn_null(void *data)
{
    return ngx_http_momo_mtn_value(data, 0, NULL, 0);
}


static int
ngx_http_momo_mtn_boolean(void *data, int value)
{
    ngx_http_momo_mtn_ctx_t *ctx = data;

    /* accountholder/.../active: {"result": true} */

    if (ctx->depth == 1 && ctx->key1 == NGX_HTTP_MOMO_MF_RESULT) {
        ctx->body->result = value ? 1 : 0;
    }

    return ngx_http_momo_mtn_value(data, 0, NULL, 0);
}


static int
ngx_http_momo_mtn_number(void *data, const char *s, size_t len)
{
    return ngx_http_momo_mtn_value(data, 1, (const u_char *) s, len);
}


static int
ngx_http_momo_mtn_string(void *data, const unsigned char *s, size_t len)
{
    return ngx_http_momo_mtn_value(data, 0, s, len);
}


static int
ngx_http_momo_mtn_start_map(void *data)
{
    ngx_http_momo_mtn_ctx_t *ctx = data;

    if (ctx->depth == 0) {
        ctx->object = 1;

    } else if (ctx->depth == 1) {

        /* only "payer" and "reason" have members the module reads */

        ctx->parent = ctx->key1;
        ctx->key2 = NGX_HTTP_MOMO_MF_NONE;
    }

    if (ctx->depth >= NGX_HTTP_MOMO_JSON_MAX_DEPTH) {
        return 0;
    }

    ctx->depth++;

    return 1;
}


static int
ngx_http_momo_mtn_start_array(void *data)
{
    ngx_http_momo_mtn_ctx_t *ctx = data;

    if (ctx->depth == 0 || ctx->depth >= NGX_HTTP_MOMO_JSON_MAX_DEPTH) {
        return 0;
    }

    if (ctx->depth == 1) {
        /* nothing inside an array is read */
        ctx->parent = NGX_HTTP_MOMO_MF_NONE;
        ctx->key2 = NGX_HTTP_MOMO_MF_NONE;
    }

    ctx->depth++;

    return 1;
}


static int
ngx_http_momo_mtn_key(void *data, const unsigned char *s, size_t len)
{
    ngx_http_momo_mtn_ctx_t *ctx = data;

    ngx_http_momo_mtn_key_t  *k;

    if (ctx->depth == 1) {
        ctx->key1 = NGX_HTTP_MOMO_MF_NONE;

        for (k = ngx_http_momo_mtn_keys; k->name.len; k++) {
            if (len == k->name.len
                && ngx_strncmp(s, k->name.data, len) == 0)
            {
                ctx->key1 = k->field;
                break;
            }
        }

        return 1;
    }

    if (ctx->depth != 2) {
        return 1;
    }

    ctx->key2 = NGX_HTTP_MOMO_MF_NONE;

    if (ctx->parent == NGX_HTTP_MOMO_MF_PAYER
        && len == sizeof("partyId") - 1
        && ngx_strncmp(s, "partyId", len) == 0)
    {
        ctx->key2 = NGX_HTTP_MOMO_MF_PARTY_ID;

    } else if (ctx->parent == NGX_HTTP_MOMO_MF_REASON
               && len == sizeof("code") - 1
               && ngx_strncmp(s, "code", len) == 0)
    {
        /* the swagger's ErrorReason {code, message} */
        ctx->key2 = NGX_HTTP_MOMO_MF_REASON_CODE;
    }

    return 1;
}


static int
ngx_http_momo_mtn_end(void *data)
{
    ngx_http_momo_mtn_ctx_t *ctx = data;

    ctx->depth--;

    if (ctx->depth == 1) {
        ctx->parent = NGX_HTTP_MOMO_MF_NONE;
        ctx->key2 = NGX_HTTP_MOMO_MF_NONE;
    }

    return 1;
}


/*
 * Most values (ids, amounts, our own messages) need no escaping: the
 * first pass notes which do, and the others are copied as they are.
 */

ngx_int_t
ngx_http_momo_json_render(ngx_pool_t *pool,
    ngx_http_momo_json_field_t *fields, ngx_uint_t n, ngx_str_t *out)
{
    return ngx_http_momo_json_print(pool, fields, n, 0, out);
}


/* an answer's body: the object and a newline */

ngx_int_t
ngx_http_momo_json_render_line(ngx_pool_t *pool,
    ngx_http_momo_json_field_t *fields, ngx_uint_t n, ngx_str_t *out)
{
    return ngx_http_momo_json_print(pool, fields, n, 1, out);
}


static ngx_int_t
ngx_http_momo_json_print(ngx_pool_t *pool,
    ngx_http_momo_json_field_t *fields, ngx_uint_t n, ngx_uint_t newline,
    ngx_str_t *out)
{
    u_char                      *p;
    size_t                       len, esc;
    uint64_t                     escape;
    ngx_uint_t                   i;
    ngx_http_momo_json_field_t  *f;

    len = sizeof("{}") - 1 + newline;
    escape = 0;

    for (i = 0; i < n; i++) {
        f = &fields[i];

        if (i) {
            len += sizeof(", ") - 1;
        }

        len += sizeof("\"\": ") - 1 + f->key.len;

        if (f->value.len == 0 && f->type != NGX_HTTP_MOMO_JSON_STRING
            && f->type != NGX_HTTP_MOMO_JSON_PLAIN)
        {
            len += sizeof("null") - 1;
            continue;
        }

        if (f->type == NGX_HTTP_MOMO_JSON_RAW) {
            len += f->value.len;
            continue;
        }

        esc = (f->type == NGX_HTTP_MOMO_JSON_PLAIN)
              ? 0 : ngx_escape_json(NULL, f->value.data, f->value.len);

        if (esc || i >= 64) {
            escape |= (uint64_t) 1 << ngx_min(i, 63);
        }

        len += sizeof("\"\"") - 1 + f->value.len + esc;
    }

    p = ngx_pnalloc(pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    out->data = p;

    *p++ = '{';

    for (i = 0; i < n; i++) {
        f = &fields[i];

        if (i) {
            p = ngx_cpymem(p, ", ", sizeof(", ") - 1);
        }

        *p++ = '"';
        p = ngx_cpymem(p, f->key.data, f->key.len);
        p = ngx_cpymem(p, "\": ", sizeof("\": ") - 1);

        if (f->value.len == 0 && f->type != NGX_HTTP_MOMO_JSON_STRING
            && f->type != NGX_HTTP_MOMO_JSON_PLAIN)
        {
            /* an empty RAW value would not be JSON */
            p = ngx_cpymem(p, "null", sizeof("null") - 1);
            continue;
        }

        if (f->type == NGX_HTTP_MOMO_JSON_RAW) {
            p = ngx_cpymem(p, f->value.data, f->value.len);
            continue;
        }

        *p++ = '"';

        if (escape & ((uint64_t) 1 << ngx_min(i, 63))) {
            p = (u_char *) ngx_escape_json(p, f->value.data, f->value.len);

        } else if (f->value.len) {
            /* an empty string may have no data: memcpy() wants a pointer */
            p = ngx_cpymem(p, f->value.data, f->value.len);
        }

        *p++ = '"';
    }

    *p++ = '}';

    if (newline) {
        *p++ = LF;
    }

    out->len = p - out->data;

    return NGX_OK;
}


static yajl_handle
ngx_http_momo_json_parser(ngx_pool_t *pool, yajl_alloc_funcs *afs,
    const yajl_callbacks *callbacks, void *ctx)
{
    yajl_handle  h;

    afs->malloc = ngx_http_momo_json_malloc;
    afs->realloc = ngx_http_momo_json_realloc;
    afs->free = ngx_http_momo_json_free;
    afs->ctx = pool;

    h = yajl_alloc(callbacks, afs, ctx);
    if (h == NULL) {
        return NULL;
    }

    /*
     * yajl_alloc() starts with every yajl_option off, which is what a
     * payment needs: no comments, strings checked as UTF-8, no trailing
     * garbage, one value, no partial value.  No yajl_config() call turns
     * one on.
     */

    return h;
}


static void *
ngx_http_momo_json_malloc(void *ctx, size_t size)
{
    u_char  *p;

    p = ngx_palloc(ctx, NGX_HTTP_MOMO_JSON_HDR + size);
    if (p == NULL) {
        return NULL;
    }

    *(size_t *) p = size;

    return p + NGX_HTTP_MOMO_JSON_HDR;
}


static void *
ngx_http_momo_json_realloc(void *ctx, void *ptr, size_t size)
{
    u_char  *p;
    size_t   old;

    if (ptr == NULL) {
        return ngx_http_momo_json_malloc(ctx, size);
    }

    old = *(size_t *) ((u_char *) ptr - NGX_HTTP_MOMO_JSON_HDR);

    if (size <= old) {
        return ptr;
    }

    /*
     * yajl grows its stacks by a fixed step; since the pool never takes
     * memory back, grow at least twofold to keep the total linear
     */

    p = ngx_http_momo_json_malloc(ctx, ngx_max(size, 2 * old));
    if (p == NULL) {
        return NULL;
    }

    ngx_memcpy(p, ptr, old);

    return p;
}


static void
ngx_http_momo_json_free(void *ctx, void *ptr)
{
    /* the pool frees everything with the request */
}


static ngx_int_t
ngx_http_momo_json_copy(ngx_pool_t *pool, ngx_str_t *dst, const u_char *src,
    size_t len)
{
    dst->len = len;

    if (len == 0) {
        dst->data = (u_char *) "";
        return NGX_OK;
    }

    dst->data = ngx_pnalloc(pool, len);
    if (dst->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(dst->data, src, len);

    return NGX_OK;
}
