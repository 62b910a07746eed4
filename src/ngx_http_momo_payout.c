
/*
 * Copyright (C) The ngx_http_momo_module developers
 *
 * momo_payout: POST {amount, currency, external_id, payer_message,
 * payee_note, phone} with an Idempotency-Key: money from the
 * Disbursement account to a phone, MTN's POST /disbursement/v1_0/transfer.
 * The body is a payment's, checked the same way; with momo_check_payer
 * on, a payee MTN does not know as active is refused before the
 * transfer.  ngx_http_momo_disb.c does the rest.
 */


#include "ngx_http_momo_module.h"


static ngx_int_t ngx_http_momo_payout_body(ngx_http_request_t *r,
    ngx_http_momo_ctx_t *ctx, ngx_str_t *out);


ngx_int_t
ngx_http_momo_payout_handler(ngx_http_request_t *r)
{
    return ngx_http_momo_disb_handler(r, ngx_http_momo_payout_start);
}


ngx_int_t
ngx_http_momo_payout_start(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx)
{
    ngx_int_t                 rc;
    ngx_http_momo_op_t       *op;
    ngx_http_momo_error_t     err;
    ngx_http_momo_record_t   *rec;
    ngx_http_momo_payment_t  *p;

    p = &ctx->payment;

    rc = ngx_http_momo_validate_payment(r->pool, p, &ctx->mlcf->currency,
                                        &err);

    if (rc == NGX_DECLINED) {
        return ngx_http_momo_fail(r, ctx, &err, NGX_HTTP_MOMO_PAY_INVALID);
    }

    if (rc != NGX_OK || ngx_http_momo_disb_reference(r, ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    op = &ctx->disb->op;
    op->amount = ngx_http_momo_amount_hundredths(&p->amount);
    op->currency = p->currency;
    op->phone = p->phone;

    rec = &ctx->rec;

    ngx_memzero(rec, sizeof(ngx_http_momo_record_t));
    ngx_memcpy(rec->reference_id, ctx->disb->ref.data,
               NGX_HTTP_MOMO_UUID_LEN);

#define ngx_http_momo_set(field, len_field, src)                             \
    rec->len_field = (u_char) ngx_min((src).len, sizeof(rec->field));        \
    ngx_memcpy(rec->field, (src).data, rec->len_field)

    rec->kind = NGX_HTTP_MOMO_KIND_PAYOUT;
    ngx_http_momo_set(amount, amount_len, p->amount);
    ngx_http_momo_set(currency, currency_len, p->currency);
    ngx_http_momo_set(phone, phone_len, p->phone);
    ngx_http_momo_set(external_id, external_id_len, p->external_id);

#undef ngx_http_momo_set

    if (ngx_http_momo_payout_body(r, ctx, &ctx->disb->body) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_momo_disb_begin(r, ctx);
}


static ngx_int_t
ngx_http_momo_payout_body(ngx_http_request_t *r, ngx_http_momo_ctx_t *ctx,
    ngx_str_t *out)
{
    ngx_str_t                    payee;
    ngx_http_momo_payment_t     *p;
    ngx_http_momo_json_field_t   f[6];

    p = &ctx->payment;

    ngx_str_set(&f[0].key, "partyIdType");
    ngx_str_set(&f[0].value, "MSISDN");
    ngx_str_set(&f[1].key, "partyId");
    f[1].value = p->phone;
    f[0].type = f[1].type = NGX_HTTP_MOMO_JSON_STRING;

    if (ngx_http_momo_json_render(r->pool, f, 2, &payee) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_str_set(&f[0].key, "amount");
    f[0].value = p->amount;
    ngx_str_set(&f[1].key, "currency");
    f[1].value = p->currency;
    ngx_str_set(&f[2].key, "externalId");
    f[2].value = p->external_id;
    ngx_str_set(&f[3].key, "payee");
    f[3].value = payee;
    ngx_str_set(&f[4].key, "payerMessage");
    f[4].value = p->payer_message;
    ngx_str_set(&f[5].key, "payeeNote");
    f[5].value = p->payee_note;

    f[0].type = f[1].type = f[2].type = f[4].type = f[5].type
        = NGX_HTTP_MOMO_JSON_STRING;
    f[3].type = NGX_HTTP_MOMO_JSON_RAW;

    return ngx_http_momo_json_render(r->pool, f, 6, out);
}
