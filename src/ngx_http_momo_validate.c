
/*
 * Copyright (C) The ngx_http_momo_module developers
 *
 * The checks a payment passes before MTN sees it.  MTN answers some
 * client mistakes late (a FAILED status) or as a 500 that retry logic
 * loops on, so whatever can be refused here is refused here.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_momo_module.h"


#define NGX_HTTP_MOMO_AMOUNT_DIGITS     15
#define NGX_HTTP_MOMO_AMOUNT_DECIMALS   2
#define NGX_HTTP_MOMO_PHONE_MIN         8
#define NGX_HTTP_MOMO_PHONE_MAX         15
#define NGX_HTTP_MOMO_TEXT_MAX          160
#define NGX_HTTP_MOMO_EXTERNAL_ID_MAX   64
#define NGX_HTTP_MOMO_IDEMPOTENCY_MAX   255


/* what a free text field is checked for */

typedef struct {
    char                       *code;
    char                       *missing;
    char                       *invalid_utf8;
    char                       *too_long;
    char                       *too_long_bytes;
    char                       *control;
    char                       *forbidden;
    ngx_uint_t                  max;            /* code points */
    ngx_uint_t                  max_bytes;      /* 0: no limit */
    unsigned                    markup:1;       /* refuse ' & < > " */
} ngx_http_momo_text_rule_t;


static ngx_int_t ngx_http_momo_validate_amount(ngx_pool_t *pool,
    ngx_http_momo_payment_t *p, ngx_str_t *currency,
    ngx_http_momo_error_t *err);
static ngx_uint_t ngx_http_momo_currency_decimals(ngx_str_t *currency);
static ngx_int_t ngx_http_momo_validate_currency(ngx_pool_t *pool,
    ngx_http_momo_payment_t *p, ngx_str_t *currency,
    ngx_http_momo_error_t *err);
static ngx_int_t ngx_http_momo_validate_phone(ngx_pool_t *pool,
    ngx_http_momo_payment_t *p, ngx_http_momo_error_t *err);
static ngx_int_t ngx_http_momo_validate_texts(ngx_http_momo_payment_t *p,
    ngx_http_momo_error_t *err);
static ngx_int_t ngx_http_momo_validate_text(ngx_str_t *s,
    ngx_http_momo_text_rule_t *rule, ngx_http_momo_error_t *err);
static uint32_t ngx_http_momo_utf8_next(u_char **p, u_char *last);


static ngx_http_momo_text_rule_t  ngx_http_momo_external_id_rule = {
    "INVALID_EXTERNAL_ID",
    "external_id is required and must not be empty",
    "external_id must be valid UTF-8",
    "external_id must be at most 64 characters long",
    "external_id must be at most 64 bytes long in UTF-8",
    "external_id must not contain control characters",
    NULL,
    NGX_HTTP_MOMO_EXTERNAL_ID_MAX,
    NGX_HTTP_MOMO_EXTERNAL_ID_MAX,
    0
};


static ngx_http_momo_text_rule_t  ngx_http_momo_payer_message_rule = {
    "INVALID_PAYER_MESSAGE",
    "payer_message is required and must not be empty",
    "payer_message must be valid UTF-8",
    "payer_message must be at most 160 characters long",
    NULL,
    "payer_message must not contain control characters",
    "payer_message must not contain any of the characters ' & < > \"",
    NGX_HTTP_MOMO_TEXT_MAX,
    0,
    1
};


static ngx_http_momo_text_rule_t  ngx_http_momo_payee_note_rule = {
    "INVALID_PAYEE_NOTE",
    "payee_note is required and must not be empty",
    "payee_note must be valid UTF-8",
    "payee_note must be at most 160 characters long",
    NULL,
    "payee_note must not contain control characters",
    "payee_note must not contain any of the characters ' & < > \"",
    NGX_HTTP_MOMO_TEXT_MAX,
    0,
    1
};


/*
 * ISO 4217 currencies without a minor unit; XAF (Cameroon, Congo) and
 * XOF, UGX, RWF, GNF are MTN markets
 */

static ngx_str_t  ngx_http_momo_whole_currencies[] = {
    ngx_string("BIF"), ngx_string("CLP"), ngx_string("DJF"),
    ngx_string("GNF"), ngx_string("ISK"), ngx_string("JPY"),
    ngx_string("KMF"), ngx_string("KRW"), ngx_string("PYG"),
    ngx_string("RWF"), ngx_string("UGX"), ngx_string("UYI"),
    ngx_string("VND"), ngx_string("VUV"), ngx_string("XAF"),
    ngx_string("XOF"), ngx_string("XPF"),
    ngx_null_string
};


void
ngx_http_momo_error_set(ngx_http_momo_error_t *err, ngx_uint_t status,
    char *code, char *message)
{
    err->status = status;
    err->code.len = ngx_strlen(code);
    err->code.data = (u_char *) code;
    err->message.len = ngx_strlen(message);
    err->message.data = (u_char *) message;
    err->retryable = 0;
}


ngx_int_t
ngx_http_momo_validate_payment(ngx_pool_t *pool, ngx_http_momo_payment_t *p,
    ngx_str_t *currency, ngx_http_momo_error_t *err)
{
    ngx_int_t  rc;

    rc = ngx_http_momo_validate_amount(pool, p, currency, err);
    if (rc != NGX_OK) {
        return rc;
    }

    rc = ngx_http_momo_validate_currency(pool, p, currency, err);
    if (rc != NGX_OK) {
        return rc;
    }

    rc = ngx_http_momo_validate_phone(pool, p, err);
    if (rc != NGX_OK) {
        return rc;
    }

    return ngx_http_momo_validate_texts(p, err);
}


/*
 * A refund: the payment's reference id instead of a phone, the rest as
 * for a payment.  The caller gives an empty currency or external_id
 * their defaults first.
 */

ngx_int_t
ngx_http_momo_validate_refund(ngx_pool_t *pool, ngx_http_momo_payment_t *p,
    ngx_str_t *currency, ngx_http_momo_error_t *err)
{
    ngx_int_t  rc;

    if (ngx_http_momo_is_uuid(&p->reference_id) != NGX_OK) {
        ngx_http_momo_error_set(err, NGX_HTTP_BAD_REQUEST,
                                "INVALID_REFERENCE_ID",
                                "reference_id must be the reference id of "
                                "the payment to refund");
        return NGX_DECLINED;
    }

    rc = ngx_http_momo_validate_amount(pool, p, currency, err);
    if (rc != NGX_OK) {
        return rc;
    }

    rc = ngx_http_momo_validate_currency(pool, p, currency, err);
    if (rc != NGX_OK) {
        return rc;
    }

    return ngx_http_momo_validate_texts(p, err);
}


static ngx_int_t
ngx_http_momo_validate_texts(ngx_http_momo_payment_t *p,
    ngx_http_momo_error_t *err)
{
    ngx_int_t  rc;

    rc = ngx_http_momo_validate_text(&p->external_id,
                                     &ngx_http_momo_external_id_rule, err);
    if (rc != NGX_OK) {
        return rc;
    }

    rc = ngx_http_momo_validate_text(&p->payer_message,
                                     &ngx_http_momo_payer_message_rule, err);
    if (rc != NGX_OK) {
        return rc;
    }

    return ngx_http_momo_validate_text(&p->payee_note,
                                       &ngx_http_momo_payee_note_rule, err);
}


/* a validated amount ("100", "0.5", "12.34") in hundredths */

int64_t
ngx_http_momo_amount_hundredths(ngx_str_t *amount)
{
    u_char      *p, *last;
    int64_t      n;
    ngx_uint_t   decimals, dot;

    n = 0;
    dot = 0;
    decimals = 0;
    last = amount->data + amount->len;

    for (p = amount->data; p < last; p++) {
        if (*p == '.') {
            dot = 1;
            continue;
        }

        n = n * 10 + (*p - '0');
        decimals += dot;
    }

    for ( /* void */ ; decimals < NGX_HTTP_MOMO_AMOUNT_DECIMALS; decimals++) {
        n *= 10;
    }

    return n;
}


static ngx_int_t
ngx_http_momo_validate_amount(ngx_pool_t *pool, ngx_http_momo_payment_t *p,
    ngx_str_t *currency, ngx_http_momo_error_t *err)
{
    u_char      *s, *last, *dot, *msg;
    ngx_uint_t   nonzero, decimals;

    if (p->amount.len == 0) {
        goto missing;
    }

    s = p->amount.data;
    last = s + p->amount.len;

    while (s < last && (*s == ' ' || *s == '\t' || *s == CR || *s == LF)) {
        s++;
    }

    while (last > s
           && (last[-1] == ' ' || last[-1] == '\t' || last[-1] == CR
               || last[-1] == LF))
    {
        last--;
    }

    if (s == last) {
        goto missing;
    }

    /* [0-9]+(\.[0-9]+)?, nothing else: no sign, exponent or grouping */

    dot = NULL;
    nonzero = 0;

    for (p->amount.data = s; s < last; s++) {

        if (*s >= '0' && *s <= '9') {
            nonzero |= (*s != '0');
            continue;
        }

        if (*s == '.' && dot == NULL && s != p->amount.data && s + 1 < last) {
            dot = s;
            continue;
        }

        ngx_http_momo_error_set(err, NGX_HTTP_BAD_REQUEST, "INVALID_AMOUNT",
                                "amount must be a positive decimal number "
                                "such as \"100\" or \"100.50\", without "
                                "sign, exponent or separators");
        return NGX_DECLINED;
    }

    if (!nonzero) {
        ngx_http_momo_error_set(err, NGX_HTTP_BAD_REQUEST, "INVALID_AMOUNT",
                                "amount must be greater than zero");
        return NGX_DECLINED;
    }

    /* "0100.50" is "100.50", "000" cannot be here, "0.5" stays */

    s = p->amount.data;

    while (s + 1 < last && *s == '0' && s[1] != '.') {
        s++;
    }

    p->amount.data = s;
    p->amount.len = last - s;

    if ((size_t) ((dot ? dot : last) - s) > NGX_HTTP_MOMO_AMOUNT_DIGITS) {
        ngx_http_momo_error_set(err, NGX_HTTP_BAD_REQUEST, "INVALID_AMOUNT",
                                "amount must have at most 15 digits "
                                "before the decimal point");
        return NGX_DECLINED;
    }

    if (dot == NULL) {
        return NGX_OK;
    }

    decimals = last - dot - 1;

    if (ngx_http_momo_currency_decimals(currency) == 0) {
        ngx_http_momo_error_set(err, NGX_HTTP_BAD_REQUEST, "INVALID_AMOUNT",
                                "");

        msg = ngx_pnalloc(pool, sizeof("amount must be a whole number for "
                                       ", without a decimal point") - 1
                                + currency->len);
        if (msg == NULL) {
            return NGX_ERROR;
        }

        err->message.data = msg;
        err->message.len = ngx_sprintf(msg, "amount must be a whole number "
                                       "for %V, without a decimal point",
                                       currency)
                           - msg;

        return NGX_DECLINED;
    }

    if (decimals > NGX_HTTP_MOMO_AMOUNT_DECIMALS) {
        ngx_http_momo_error_set(err, NGX_HTTP_BAD_REQUEST, "INVALID_AMOUNT",
                                "amount must have at most 2 digits "
                                "after the decimal point");
        return NGX_DECLINED;
    }

    return NGX_OK;

missing:

    ngx_http_momo_error_set(err, NGX_HTTP_BAD_REQUEST, "INVALID_AMOUNT",
                            "amount is required and must not be empty");
    return NGX_DECLINED;
}


static ngx_uint_t
ngx_http_momo_currency_decimals(ngx_str_t *currency)
{
    ngx_str_t  *c;

    for (c = ngx_http_momo_whole_currencies; c->len; c++) {
        if (currency->len == c->len
            && ngx_strncmp(currency->data, c->data, c->len) == 0)
        {
            return 0;
        }
    }

    return NGX_HTTP_MOMO_AMOUNT_DECIMALS;
}


static ngx_int_t
ngx_http_momo_validate_currency(ngx_pool_t *pool, ngx_http_momo_payment_t *p,
    ngx_str_t *currency, ngx_http_momo_error_t *err)
{
    u_char  *msg;

    if (p->currency.len != 0
        && p->currency.len == currency->len
        && ngx_strncmp(p->currency.data, currency->data, currency->len) == 0)
    {
        return NGX_OK;
    }

    ngx_http_momo_error_set(err, NGX_HTTP_BAD_REQUEST, "INVALID_CURRENCY",
                            "");

    msg = ngx_pnalloc(pool, sizeof("currency is required and must be ") - 1
                            + currency->len);
    if (msg == NULL) {
        return NGX_ERROR;
    }

    err->message.data = msg;

    if (p->currency.len == 0) {
        err->message.len = ngx_sprintf(msg, "currency is required and must "
                                       "be %V", currency)
                           - msg;

    } else {
        err->message.len = ngx_sprintf(msg, "currency must be %V", currency)
                           - msg;
    }

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_momo_validate_phone(ngx_pool_t *pool, ngx_http_momo_payment_t *p,
    ngx_http_momo_error_t *err)
{
    u_char  *s, *last, *d, *digits;

    if (p->phone.len == 0) {
        goto missing;
    }

    s = p->phone.data;
    last = s + p->phone.len;

    while (s < last && *s == ' ') {
        s++;
    }

    if (s == last) {
        goto missing;
    }

    if (*s == '+') {
        s++;
    }

    digits = ngx_pnalloc(pool, NGX_HTTP_MOMO_PHONE_MAX);
    if (digits == NULL) {
        return NGX_ERROR;
    }

    for (d = digits; s < last; s++) {

        if (*s == ' ' || *s == '-') {
            continue;
        }

        if (*s < '0' || *s > '9' || d == digits + NGX_HTTP_MOMO_PHONE_MAX) {
            goto invalid;
        }

        *d++ = *s;
    }

    if (d - digits < NGX_HTTP_MOMO_PHONE_MIN) {
        goto invalid;
    }

    if (digits[0] == '0') {
        ngx_http_momo_error_set(err, NGX_HTTP_BAD_REQUEST, "INVALID_PHONE",
                                "phone must start with the country code, "
                                "not with 0, such as 237677123456");
        return NGX_DECLINED;
    }

    p->phone.data = digits;
    p->phone.len = d - digits;

    return NGX_OK;

invalid:

    ngx_http_momo_error_set(err, NGX_HTTP_BAD_REQUEST, "INVALID_PHONE",
                            "phone must be 8 to 15 digits in international "
                            "format, country code first, such as "
                            "237677123456 or +237 677 12 34 56");
    return NGX_DECLINED;

missing:

    ngx_http_momo_error_set(err, NGX_HTTP_BAD_REQUEST, "INVALID_PHONE",
                            "phone is required and must not be empty");
    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_momo_validate_text(ngx_str_t *s, ngx_http_momo_text_rule_t *rule,
    ngx_http_momo_error_t *err)
{
    u_char      *p, *last;
    uint32_t     c;
    ngx_uint_t   n;

    if (s->len == 0) {
        ngx_http_momo_error_set(err, NGX_HTTP_BAD_REQUEST, rule->code,
                                rule->missing);
        return NGX_DECLINED;
    }

    if (rule->max_bytes && s->len > rule->max_bytes) {

        /* still count the characters, to say the right thing */

        p = s->data;
        last = p + s->len;

        for (n = 0; p < last; n++) {
            (void) ngx_http_momo_utf8_next(&p, last);
        }

        ngx_http_momo_error_set(err, NGX_HTTP_BAD_REQUEST, rule->code,
                                n > rule->max ? rule->too_long
                                              : rule->too_long_bytes);
        return NGX_DECLINED;
    }

    p = s->data;
    last = p + s->len;

    for (n = 0; p < last; n++) {

        if (n == rule->max) {
            ngx_http_momo_error_set(err, NGX_HTTP_BAD_REQUEST, rule->code,
                                    rule->too_long);
            return NGX_DECLINED;
        }

        c = ngx_http_momo_utf8_next(&p, last);

        if (c == 0xffffffff) {
            ngx_http_momo_error_set(err, NGX_HTTP_BAD_REQUEST, rule->code,
                                    rule->invalid_utf8);
            return NGX_DECLINED;
        }

        /* C0, DEL and C1 controls; \u0000 arrives here as a NUL byte */

        if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) {
            ngx_http_momo_error_set(err, NGX_HTTP_BAD_REQUEST, rule->code,
                                    rule->control);
            return NGX_DECLINED;
        }

        if (rule->markup
            && (c == '\'' || c == '&' || c == '<' || c == '>' || c == '"'))
        {
            ngx_http_momo_error_set(err, NGX_HTTP_BAD_REQUEST, rule->code,
                                    rule->forbidden);
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


/*
 * One code point of strict UTF-8 (RFC 3629): no overlong forms, no
 * surrogates, nothing above U+10FFFF; 0xffffffff and one byte consumed
 * on error.  ngx_utf8_decode() is more lenient than this.
 */

static uint32_t
ngx_http_momo_utf8_next(u_char **p, u_char *last)
{
    u_char      *s;
    uint32_t     c, min;
    ngx_uint_t   n;

    s = *p;
    c = *s++;

    if (c < 0x80) {
        *p = s;
        return c;
    }

    if (c >= 0xc2 && c <= 0xdf) {
        c &= 0x1f;
        min = 0x80;
        n = 1;

    } else if (c >= 0xe0 && c <= 0xef) {
        c &= 0x0f;
        min = 0x800;
        n = 2;

    } else if (c >= 0xf0 && c <= 0xf4) {
        c &= 0x07;
        min = 0x10000;
        n = 3;

    } else {
        (*p)++;
        return 0xffffffff;
    }

    if ((size_t) (last - s) < n) {
        (*p)++;
        return 0xffffffff;
    }

    while (n--) {
        if ((*s & 0xc0) != 0x80) {
            (*p)++;
            return 0xffffffff;
        }

        c = (c << 6) | (*s++ & 0x3f);
    }

    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
        (*p)++;
        return 0xffffffff;
    }

    *p = s;

    return c;
}


ngx_int_t
ngx_http_momo_validate_idempotency_key(ngx_str_t *key)
{
    u_char  *p, *last;

    if (key->len == 0 || key->len > NGX_HTTP_MOMO_IDEMPOTENCY_MAX) {
        return NGX_DECLINED;
    }

    last = key->data + key->len;

    for (p = key->data; p < last; p++) {
        if (*p < 0x21 || *p > 0x7e) {
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}
