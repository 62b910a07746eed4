
/*
 * Copyright (C) The ngx_http_momo_module developers
 *
 * Reference ids, callback tokens and Basic credentials.  Everything
 * derived from a secret goes through HMAC-SHA256, so the same inputs give
 * the same output on every worker and every machine.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "ngx_http_momo_module.h"


#define NGX_HTTP_MOMO_SHA256_LEN  32

#define NGX_HTTP_MOMO_CB_LABEL      "callback:"


static ngx_int_t ngx_http_momo_hmac(ngx_str_t *key, u_char *d1, size_t l1,
    u_char *d2, size_t l2, u_char *md);
static void ngx_http_momo_uuid_format(u_char *b, u_char *out);


ngx_int_t
ngx_http_momo_uuid_random(u_char *out)
{
    u_char  b[16];

    if (RAND_bytes(b, sizeof(b)) != 1) {
        return NGX_ERROR;
    }

    ngx_http_momo_uuid_format(b, out);

    return NGX_OK;
}


/* a failed HMAC (out of memory) fails the request: never a stand-in id */

ngx_int_t
ngx_http_momo_uuid_derive(ngx_str_t *secret, ngx_str_t *material,
    u_char *out)
{
    u_char  md[NGX_HTTP_MOMO_SHA256_LEN];

    if (ngx_http_momo_hmac(secret, material->data, material->len, NULL, 0,
                           md)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_http_momo_uuid_format(md, out);

    return NGX_OK;
}


ngx_int_t
ngx_http_momo_is_uuid(ngx_str_t *s)
{
    u_char      c;
    ngx_uint_t  i;

    if (s->len != NGX_HTTP_MOMO_UUID_LEN) {
        return NGX_DECLINED;
    }

    for (i = 0; i < NGX_HTTP_MOMO_UUID_LEN; i++) {
        c = s->data[i];

        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-') {
                return NGX_DECLINED;
            }

            continue;
        }

        if ((c >= '0' && c <= '9')
            || (c >= 'a' && c <= 'f')
            || (c >= 'A' && c <= 'F'))
        {
            continue;
        }

        return NGX_DECLINED;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_momo_callback_token(ngx_str_t *secret, ngx_str_t *ref, u_char *out)
{
    u_char  md[NGX_HTTP_MOMO_SHA256_LEN];

    if (ngx_http_momo_hmac(secret, (u_char *) NGX_HTTP_MOMO_CB_LABEL,
                           sizeof(NGX_HTTP_MOMO_CB_LABEL) - 1,
                           ref->data, ref->len, md)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    (void) ngx_hex_dump(out, md, NGX_HTTP_MOMO_CB_TOKEN_LEN / 2);

    return NGX_OK;
}


ngx_int_t
ngx_http_momo_token_equal(u_char *a, u_char *b, size_t len)
{
    return CRYPTO_memcmp(a, b, len) == 0 ? NGX_OK : NGX_DECLINED;
}


ngx_int_t
ngx_http_momo_basic_auth(ngx_pool_t *pool, ngx_str_t *user, ngx_str_t *key,
    ngx_str_t *out)
{
    u_char     *p;
    ngx_str_t   plain, encoded;

    plain.len = user->len + 1 + key->len;
    plain.data = ngx_pnalloc(pool, plain.len);
    if (plain.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(plain.data, user->data, user->len);
    *p++ = ':';
    ngx_memcpy(p, key->data, key->len);

    out->data = ngx_pnalloc(pool, sizeof("Basic ") - 1
                                  + ngx_base64_encoded_length(plain.len));
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    /* MTN wants the credentials raw, never URL-encoded */

    p = ngx_cpymem(out->data, "Basic ", sizeof("Basic ") - 1);

    encoded.data = p;
    ngx_encode_base64(&encoded, &plain);

    out->len = sizeof("Basic ") - 1 + encoded.len;

    /* the plain key is not left behind in the pool */

    ngx_explicit_memzero(plain.data, plain.len);

    return NGX_OK;
}


static void
ngx_http_momo_uuid_format(u_char *b, u_char *out)
{
    u_char  *p;

    b[6] = (b[6] & 0x0f) | 0x40;                /* version 4 */
    b[8] = (b[8] & 0x3f) | 0x80;                /* variant 10xx */

    p = ngx_hex_dump(out, b, 4);
    *p++ = '-';
    p = ngx_hex_dump(p, b + 4, 2);
    *p++ = '-';
    p = ngx_hex_dump(p, b + 6, 2);
    *p++ = '-';
    p = ngx_hex_dump(p, b + 8, 2);
    *p++ = '-';
    (void) ngx_hex_dump(p, b + 10, 6);
}


static ngx_int_t
ngx_http_momo_hmac(ngx_str_t *key, u_char *d1, size_t l1, u_char *d2,
    size_t l2, u_char *md)
{
    size_t        len;
    EVP_MAC      *mac;
    ngx_int_t     rc;
    OSSL_PARAM    params[2];
    EVP_MAC_CTX  *ctx;

    mac = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL);
    if (mac == NULL) {
        return NGX_ERROR;
    }

    rc = NGX_ERROR;

    ctx = EVP_MAC_CTX_new(mac);
    if (ctx == NULL) {
        goto failed;
    }

    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                 (char *) "SHA256", 0);
    params[1] = OSSL_PARAM_construct_end();

    /* a NULL key means "keep the previous one" to EVP_MAC_init() */

    if (EVP_MAC_init(ctx, key->len ? key->data : (u_char *) "", key->len,
                     params)
        != 1)
    {
        goto failed;
    }

    if (l1 && EVP_MAC_update(ctx, d1, l1) != 1) {
        goto failed;
    }

    if (l2 && EVP_MAC_update(ctx, d2, l2) != 1) {
        goto failed;
    }

    if (EVP_MAC_final(ctx, md, &len, NGX_HTTP_MOMO_SHA256_LEN) != 1
        || len != NGX_HTTP_MOMO_SHA256_LEN)
    {
        goto failed;
    }

    rc = NGX_OK;

failed:

    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);

    return rc;
}
