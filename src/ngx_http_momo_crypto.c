
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

#define NGX_HTTP_MOMO_HMAC_KEYS     8


typedef struct {
    ngx_str_t                   key;
    EVP_MAC_CTX                *ctx;
} ngx_http_momo_hmac_key_t;


static ngx_int_t ngx_http_momo_hmac(ngx_str_t *key, u_char *d1, size_t l1,
    u_char *d2, size_t l2, u_char *md);
static EVP_MAC_CTX *ngx_http_momo_hmac_ctx(ngx_str_t *key);
static void ngx_http_momo_hmac_key_free(ngx_http_momo_hmac_key_t *k);
static EVP_MAC_CTX *ngx_http_momo_hmac_new(ngx_http_momo_hmac_key_t *k,
    ngx_str_t *key);
static void ngx_http_momo_uuid_format(u_char *b, u_char *out);


/* per process, and keyed by the secret's bytes: a reload changes nothing */
static ngx_http_momo_hmac_key_t
    ngx_http_momo_hmac_keys[NGX_HTTP_MOMO_HMAC_KEYS];
static ngx_uint_t  ngx_http_momo_hmac_next;

static u_char      ngx_http_momo_rand[16 * 64];
static size_t      ngx_http_momo_rand_left;
static ngx_pid_t   ngx_http_momo_rand_pid;


/*
 * OpenSSL's generator checks for a fork on every call, with a system
 * call: the bytes of 64 ids are drawn at once.  A process forked with
 * bytes left draws its own (ngx_pid is the child's own).
 */

ngx_int_t
ngx_http_momo_uuid_random(u_char *out)
{
    u_char  *b;

    if (ngx_http_momo_rand_left < 16 || ngx_http_momo_rand_pid != ngx_pid) {
        if (RAND_bytes(ngx_http_momo_rand, sizeof(ngx_http_momo_rand)) != 1) {
            ngx_http_momo_rand_left = 0;
            return NGX_ERROR;
        }

        ngx_http_momo_rand_left = sizeof(ngx_http_momo_rand);
        ngx_http_momo_rand_pid = ngx_pid;
    }

    b = ngx_http_momo_rand + sizeof(ngx_http_momo_rand)
        - ngx_http_momo_rand_left;
    ngx_http_momo_rand_left -= 16;

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


/* lower-case hex HMAC-SHA256 of d1 then d2: the notify signature */

ngx_int_t
ngx_http_momo_hmac_hex(ngx_str_t *key, ngx_str_t *d1, ngx_str_t *d2,
    u_char *hex)
{
    u_char  md[NGX_HTTP_MOMO_SHA256_LEN];

    if (ngx_http_momo_hmac(key, d1->data, d1->len, d2->data, d2->len, md)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    (void) ngx_hex_dump(hex, md, NGX_HTTP_MOMO_SHA256_LEN);

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


/*
 * HMAC-SHA256.  Fetching the algorithm and keying a context cost more
 * than the MAC itself, so each process keeps a keyed context per secret
 * (a few: one momo_callback_secret per configuration level) and only
 * resets it; a secret is told by its bytes, never by its address, which
 * a reload may give to another one.
 */

static ngx_int_t
ngx_http_momo_hmac(ngx_str_t *key, u_char *d1, size_t l1, u_char *d2,
    size_t l2, u_char *md)
{
    size_t        len;
    EVP_MAC_CTX  *ctx;

    ctx = ngx_http_momo_hmac_ctx(key);
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    if ((l1 && EVP_MAC_update(ctx, d1, l1) != 1)
        || (l2 && EVP_MAC_update(ctx, d2, l2) != 1)
        || EVP_MAC_final(ctx, md, &len, NGX_HTTP_MOMO_SHA256_LEN) != 1
        || len != NGX_HTTP_MOMO_SHA256_LEN)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * At process exit: the keyed contexts and the copies of the secrets go,
 * so that neither stays in memory nor shows as lost under valgrind.
 */

void
ngx_http_momo_hmac_free(void)
{
    ngx_uint_t                 i;
    ngx_http_momo_hmac_key_t  *k;

    for (i = 0; i < NGX_HTTP_MOMO_HMAC_KEYS; i++) {
        k = &ngx_http_momo_hmac_keys[i];

        if (k->ctx == NULL) {
            continue;
        }

        ngx_http_momo_hmac_key_free(k);
    }
}


static void
ngx_http_momo_hmac_key_free(ngx_http_momo_hmac_key_t *k)
{
    EVP_MAC_CTX_free(k->ctx);
    ngx_explicit_memzero(k->key.data, k->key.len);
    ngx_free(k->key.data);
    k->ctx = NULL;
}


/* a context keyed with key and ready for EVP_MAC_update() */

static EVP_MAC_CTX *
ngx_http_momo_hmac_ctx(ngx_str_t *key)
{
    ngx_uint_t                 i;
    ngx_http_momo_hmac_key_t  *k;

    for (i = 0; i < NGX_HTTP_MOMO_HMAC_KEYS; i++) {
        k = &ngx_http_momo_hmac_keys[i];

        if (k->ctx != NULL
            && k->key.len == key->len
            && CRYPTO_memcmp(k->key.data, key->data, key->len) == 0)
        {
            /* a NULL key: start again with the one the context has */

            return EVP_MAC_init(k->ctx, NULL, 0, NULL) == 1 ? k->ctx : NULL;
        }
    }

    /* a new secret takes the place of the oldest one */

    k = &ngx_http_momo_hmac_keys[ngx_http_momo_hmac_next++
                                 % NGX_HTTP_MOMO_HMAC_KEYS];

    if (k->ctx != NULL) {
        ngx_http_momo_hmac_key_free(k);
    }

    return ngx_http_momo_hmac_new(k, key);
}


static EVP_MAC_CTX *
ngx_http_momo_hmac_new(ngx_http_momo_hmac_key_t *k, ngx_str_t *key)
{
    EVP_MAC      *mac;
    OSSL_PARAM    params[2];
    EVP_MAC_CTX  *ctx;

    /* one more byte: the data of an empty key is never NULL */

    k->key.data = ngx_alloc(key->len + 1, ngx_cycle->log);
    if (k->key.data == NULL) {
        return NULL;
    }

    ngx_memcpy(k->key.data, key->data, key->len);
    k->key.len = key->len;

    mac = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL);
    if (mac == NULL) {
        goto failed;
    }

    ctx = EVP_MAC_CTX_new(mac);
    EVP_MAC_free(mac);

    if (ctx == NULL) {
        goto failed;
    }

    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                 (char *) "SHA256", 0);
    params[1] = OSSL_PARAM_construct_end();

    if (EVP_MAC_init(ctx, k->key.data, k->key.len, params) != 1) {
        EVP_MAC_CTX_free(ctx);
        goto failed;
    }

    k->ctx = ctx;

    return ctx;

failed:

    ngx_explicit_memzero(k->key.data, k->key.len);
    ngx_free(k->key.data);
    k->key.len = 0;

    return NULL;
}
