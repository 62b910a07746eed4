
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

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "ngx_http_momo_module.h"


#define NGX_HTTP_MOMO_SHA256_LEN  32

#define NGX_HTTP_MOMO_CB_LABEL      "callback:"

#define NGX_HTTP_MOMO_HMAC_KEYS     8


typedef struct {
    ngx_str_t                   key;
    SHA256_CTX                  inner;      /* after key ^ ipad */
    SHA256_CTX                  outer;      /* after key ^ opad */
} ngx_http_momo_hmac_key_t;


static ngx_int_t ngx_http_momo_hmac(ngx_str_t *key, u_char *d1, size_t l1,
    u_char *d2, size_t l2, u_char *md);
static ngx_http_momo_hmac_key_t *ngx_http_momo_hmac_key(ngx_str_t *key);
static void ngx_http_momo_hmac_key_free(ngx_http_momo_hmac_key_t *k);
static ngx_int_t ngx_http_momo_hmac_new(ngx_http_momo_hmac_key_t *k,
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
 * HMAC-SHA256 (RFC 2104).  Each process keeps, per secret (a few: one
 * momo_callback_secret per configuration level), the SHA-256 states
 * after the key's inner and outer pad blocks, and a MAC starts from a
 * copy of them: two compressions of the data and nothing else.
 * OpenSSL's EVP_MAC does the same but duplicates each state with a
 * malloc and runs its provider dispatch, three times the MAC itself.
 * A secret is told by its bytes, never by its address, which a reload
 * may give to another one.
 */

static ngx_int_t
ngx_http_momo_hmac(ngx_str_t *key, u_char *d1, size_t l1, u_char *d2,
    size_t l2, u_char *md)
{
    SHA256_CTX                 c;
    ngx_http_momo_hmac_key_t  *k;

    k = ngx_http_momo_hmac_key(key);
    if (k == NULL) {
        return NGX_ERROR;
    }

    c = k->inner;

    if (SHA256_Update(&c, d1, l1) != 1
        || SHA256_Update(&c, d2, l2) != 1
        || SHA256_Final(md, &c) != 1)
    {
        goto failed;
    }

    c = k->outer;

    if (SHA256_Update(&c, md, NGX_HTTP_MOMO_SHA256_LEN) != 1
        || SHA256_Final(md, &c) != 1)
    {
        goto failed;
    }

    ngx_explicit_memzero(&c, sizeof(SHA256_CTX));

    return NGX_OK;

failed:

    ngx_explicit_memzero(&c, sizeof(SHA256_CTX));

    return NGX_ERROR;
}


/*
 * At process exit: the pad states and the copies of the secrets go, so
 * that neither stays in memory nor shows as lost under valgrind.
 */

void
ngx_http_momo_hmac_free(void)
{
    ngx_uint_t                 i;
    ngx_http_momo_hmac_key_t  *k;

    for (i = 0; i < NGX_HTTP_MOMO_HMAC_KEYS; i++) {
        k = &ngx_http_momo_hmac_keys[i];

        if (k->key.data == NULL) {
            continue;
        }

        ngx_http_momo_hmac_key_free(k);
    }
}


static void
ngx_http_momo_hmac_key_free(ngx_http_momo_hmac_key_t *k)
{
    ngx_explicit_memzero(k->key.data, k->key.len);
    ngx_free(k->key.data);
    ngx_explicit_memzero(k, sizeof(ngx_http_momo_hmac_key_t));
}


/* the pad states of key, computed once per process */

static ngx_http_momo_hmac_key_t *
ngx_http_momo_hmac_key(ngx_str_t *key)
{
    ngx_uint_t                 i;
    ngx_http_momo_hmac_key_t  *k;

    for (i = 0; i < NGX_HTTP_MOMO_HMAC_KEYS; i++) {
        k = &ngx_http_momo_hmac_keys[i];

        /* both are configured secrets: nothing a client sends is compared */

        if (k->key.data != NULL
            && k->key.len == key->len
            && ngx_memcmp(k->key.data, key->data, key->len) == 0)
        {
            return k;
        }
    }

    /* a new secret takes the place of the oldest one */

    k = &ngx_http_momo_hmac_keys[ngx_http_momo_hmac_next++
                                 % NGX_HTTP_MOMO_HMAC_KEYS];

    if (k->key.data != NULL) {
        ngx_http_momo_hmac_key_free(k);
    }

    return ngx_http_momo_hmac_new(k, key) == NGX_OK ? k : NULL;
}


static ngx_int_t
ngx_http_momo_hmac_new(ngx_http_momo_hmac_key_t *k, ngx_str_t *key)
{
    u_char      block[SHA256_CBLOCK], ipad[SHA256_CBLOCK];
    ngx_int_t   rc;
    ngx_uint_t  i;

    /* one more byte: the data of an empty key is never NULL */

    k->key.data = ngx_alloc(key->len + 1, ngx_cycle->log);
    if (k->key.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(k->key.data, key->data, key->len);
    k->key.len = key->len;

    /* a key longer than a block is hashed first, shorter ones padded */

    ngx_memzero(block, SHA256_CBLOCK);

    if (key->len > SHA256_CBLOCK) {
        if (SHA256(key->data, key->len, block) == NULL) {
            rc = NGX_ERROR;
            goto done;
        }

    } else {
        ngx_memcpy(block, key->data, key->len);
    }

    for (i = 0; i < SHA256_CBLOCK; i++) {
        ipad[i] = block[i] ^ 0x36;
        block[i] ^= 0x5c;
    }

    rc = (SHA256_Init(&k->inner) == 1
          && SHA256_Update(&k->inner, ipad, SHA256_CBLOCK) == 1
          && SHA256_Init(&k->outer) == 1
          && SHA256_Update(&k->outer, block, SHA256_CBLOCK) == 1)
         ? NGX_OK : NGX_ERROR;

done:

    ngx_explicit_memzero(block, SHA256_CBLOCK);
    ngx_explicit_memzero(ipad, SHA256_CBLOCK);

    if (rc != NGX_OK) {
        ngx_http_momo_hmac_key_free(k);
    }

    return rc;
}
