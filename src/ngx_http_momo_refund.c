
/*
 * Copyright (C) The ngx_http_momo_module developers
 *
 * momo_refund: POST {reference_id, amount, currency, external_id,
 * payer_message, payee_note} with an Idempotency-Key.  The payment must
 * be known successful (from the zone, else from MTN's status), in the
 * refund's currency and at least its amount; the ledger then reserves
 * the amount against the payment's other refunds, and the refund goes to
 * MTN's Disbursement product: POST /disbursement/v1_0/refund with
 * referenceIdToRefund.  ngx_http_momo_disb.c does the rest.
 */


#include "ngx_http_momo_module.h"


static ngx_int_t ngx_http_momo_refund_payment(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
static ngx_int_t ngx_http_momo_refund_checked(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx);
static ngx_int_t ngx_http_momo_refund_body(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx, ngx_str_t *out);


ngx_int_t
ngx_http_momo_refund_handler(ngx_http_request_t *r)
{
    return ngx_http_momo_disb_handler(r, ngx_http_momo_refund_start);
}


ngx_int_t
ngx_http_momo_refund_start(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    ngx_int_t                 rc;
    ngx_http_momo_error_t     err;
    ngx_http_momo_payment_t  *p;

    p = &ctx->payment;

    /* the payment's currency, and its reference id as MTN's externalId */

    if (p->currency.len == 0) {
        p->currency = ctx->mlcf->currency;
    }

    if (p->external_id.len == 0) {
        p->external_id = p->reference_id;
    }

    rc = ngx_http_momo_validate_refund(r->pool, p, &ctx->mlcf->currency,
                                       &err);

    if (rc == NGX_DECLINED) {
        return ngx_http_momo_fail(r, ctx, &err, NGX_HTTP_MOMO_PAY_INVALID);
    }

    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_strlow(p->reference_id.data, p->reference_id.data,
               p->reference_id.len);

    if (ngx_http_momo_disb_reference(r, ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    ctx->disb->payment_ref = p->reference_id;

    return ngx_http_momo_refund_payment(r, ctx);
}


/* the payment, as the zone knows it, or else as MTN says now */

static ngx_int_t
ngx_http_momo_refund_payment(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    ngx_http_momo_main_conf_t  *mmcf;

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_momo_module);

    ngx_http_momo_op_kind(ctx, NGX_HTTP_MOMO_KIND_PAYMENT);
    ctx->reference_id = ctx->disb->payment_ref;

    if (ngx_http_momo_record_get(mmcf->shm_zone, ctx->reference_id.data,
                                 &ctx->rec)
        == NGX_OK
        && ctx->rec.state == NGX_HTTP_MOMO_ST_SUCCESSFUL
        && ctx->rec.amount_len)
    {
        return ngx_http_momo_refund_checked(r, ctx);
    }

    ctx->query_interval = 0;

    return ngx_http_momo_query(r, ctx, ngx_http_momo_refund_checked);
}


static ngx_int_t
ngx_http_momo_refund_checked(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    u_char                   phone_len;
    ngx_str_t                amount;
    ngx_http_momo_op_t      *op;
    ngx_http_momo_record_t  *rec;
    u_char                   phone[sizeof(ctx->rec.phone)];

    rec = &ctx->rec;
    op = &ctx->disb->op;

    ctx->reference_id = ctx->disb->ref;

    if (rec->state == NGX_HTTP_MOMO_ST_NOT_FOUND) {
        return ngx_http_momo_disb_refuse(r, ctx, NGX_HTTP_NOT_FOUND,
                                         "PAYMENT_NOT_FOUND",
                                         "MTN has no payment with this "
                                         "reference_id");
    }

    if (rec->state != NGX_HTTP_MOMO_ST_SUCCESSFUL || rec->amount_len == 0) {
        return ngx_http_momo_disb_refuse(r, ctx, NGX_HTTP_CONFLICT,
                                         "PAYMENT_NOT_SUCCESSFUL",
                                         rec->state == NGX_HTTP_MOMO_ST_FAILED
                                         ? "the payment failed: there is "
                                           "nothing to refund"
                                         : "the payment is not successful "
                                           "(yet): only a successful "
                                           "payment can be refunded");
    }

    if (rec->currency_len != ctx->payment.currency.len
        || ngx_strncmp(rec->currency, ctx->payment.currency.data,
                       rec->currency_len) != 0)
    {
        return ngx_http_momo_disb_refuse(r, ctx, NGX_HTTP_BAD_REQUEST,
                                         "INVALID_CURRENCY",
                                         "a refund is in the currency of "
                                         "its payment");
    }

    amount.data = rec->amount;
    amount.len = rec->amount_len;

    op->parent = ctx->disb->payment_ref.data;
    op->amount = ngx_http_momo_amount_hundredths(&ctx->payment.amount);
    op->total = ngx_http_momo_amount_hundredths(&amount);
    op->currency = ctx->payment.currency;

    if (op->amount > op->total) {
        op->refunded = 0;
        return ngx_http_momo_disb_refuse(r, ctx, NGX_HTTP_MOMO_UNPROCESSABLE,
                                         "REFUND_EXCEEDS_PAYMENT",
                                         "the refund is larger than the "
                                         "payment");
    }

    /* the refund in the zone: to the payer, in the payment's currency */

    phone_len = rec->phone_len;
    ngx_memcpy(phone, rec->phone, sizeof(phone));

    ngx_memzero(rec, sizeof(ngx_http_momo_record_t));
    ngx_memcpy(rec->reference_id, ctx->disb->ref.data,
               NGX_HTTP_MOMO_UUID_LEN);

    rec->phone_len = phone_len;
    ngx_memcpy(rec->phone, phone, sizeof(phone));
    rec->kind = NGX_HTTP_MOMO_KIND_REFUND;
    rec->amount_len = (u_char) ngx_min(ctx->payment.amount.len,
                                       sizeof(rec->amount));
    ngx_memcpy(rec->amount, ctx->payment.amount.data, rec->amount_len);
    rec->currency_len = (u_char) ngx_min(op->currency.len,
                                         sizeof(rec->currency));
    ngx_memcpy(rec->currency, op->currency.data, rec->currency_len);
    rec->external_id_len = (u_char) ngx_min(ctx->payment.external_id.len,
                                            sizeof(rec->external_id));
    ngx_memcpy(rec->external_id, ctx->payment.external_id.data,
               rec->external_id_len);

    if (ngx_http_momo_refund_body(r, ctx, &ctx->disb->body) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_momo_disb_begin(r, ctx);
}


static ngx_int_t
ngx_http_momo_refund_body(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx,
    ngx_str_t *out)
{
    ngx_http_momo_payment_t     *p;
    ngx_http_momo_json_field_t   f[6];

    p = &ctx->payment;

    ngx_str_set(&f[0].key, "amount");
    f[0].value = p->amount;
    ngx_str_set(&f[1].key, "currency");
    f[1].value = p->currency;
    ngx_str_set(&f[2].key, "externalId");
    f[2].value = p->external_id;
    ngx_str_set(&f[3].key, "payerMessage");
    f[3].value = p->payer_message;
    ngx_str_set(&f[4].key, "payeeNote");
    f[4].value = p->payee_note;
    ngx_str_set(&f[5].key, "referenceIdToRefund");
    f[5].value = ctx->disb->payment_ref;

    f[0].type = f[1].type = f[2].type = f[3].type = f[4].type = f[5].type
        = NGX_HTTP_MOMO_JSON_STRING;

    return ngx_http_momo_json_render(r->pool, f, 6, out);
}
