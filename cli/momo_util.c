
/*
 * Small pure helpers: UUID v4, base64, time, body excerpts.
 */


#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "momo_cli.h"


static void momo_uuid_format(unsigned char *b, char *out);


/* out: MOMO_UUID_LEN + 1 bytes */

int
momo_uuid_v4(char *out)
{
    unsigned char  b[16];

    if (RAND_bytes(b, sizeof(b)) != 1) {
        return -1;
    }

    momo_uuid_format(b, out);

    return 0;
}


/*
 * The same material, the same UUID v4-shaped id (SHA-256): how a retry
 * with the same idempotency key reaches MTN with the same reference id.
 */

int
momo_uuid_derive(const char *material, char *out)
{
    unsigned int   len;
    unsigned char  md[EVP_MAX_MD_SIZE];

    if (EVP_Digest(material, strlen(material), md, &len, EVP_sha256(), NULL)
        != 1)
    {
        return -1;
    }

    momo_uuid_format(md, out);

    return 0;
}


/* 16 bytes b (changed) to version 4, variant 1, 8-4-4-4-12 */

static void
momo_uuid_format(unsigned char *b, char *out)
{
    int                i, n;
    static const char  hex[] = "0123456789abcdef";

    b[6] = (unsigned char) ((b[6] & 0x0f) | 0x40);    /* version 4 */
    b[8] = (unsigned char) ((b[8] & 0x3f) | 0x80);    /* RFC 4122 variant */

    n = 0;

    for (i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            out[n++] = '-';
        }

        out[n++] = hex[b[i] >> 4];
        out[n++] = hex[b[i] & 0x0f];
    }

    out[n] = '\0';
}


/* len random hex digits (len even) and a NUL: a new momo_callback_secret */

int
momo_random_hex(char *out, size_t len)
{
    size_t          i;
    unsigned char   b[64];
    static const char  hex[] = "0123456789abcdef";

    if (len / 2 > sizeof(b) || RAND_bytes(b, (int) (len / 2)) != 1) {
        return -1;
    }

    for (i = 0; i < len / 2; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 0x0f];
    }

    out[len] = '\0';

    return 0;
}


/* 8-4-4-4-12 hex digits; the version is not checked, MTN does not either */

int
momo_is_uuid(const char *s)
{
    size_t  i;

    if (strlen(s) != MOMO_UUID_LEN) {
        return 0;
    }

    for (i = 0; i < MOMO_UUID_LEN; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-') {
                return 0;
            }

        } else if (!isxdigit((unsigned char) s[i])) {
            return 0;
        }
    }

    return 1;
}


char *
momo_base64(const char *in, size_t len)
{
    char  *out;

    out = momo_alloc(4 * ((len + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *) out, (const unsigned char *) in,
                    (int) len);

    return out;
}


long
momo_now_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


void
momo_sleep_ms(long ms)
{
    struct timespec  ts;

    if (ms <= 0) {
        return;
    }

    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000;

    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
        /* void */
    }
}


/* a CLI has nothing better to do on ENOMEM than to say so and stop */

void *
momo_alloc(size_t size)
{
    void  *p;

    p = malloc(size);
    if (p == NULL) {
        fputs("momo: out of memory\n", stderr);
        exit(MOMO_EXIT_MTN);
    }

    return p;
}


char *
momo_strdup(const char *s)
{
    size_t  len;

    len = strlen(s) + 1;

    return memcpy(momo_alloc(len), s, len);
}


/*
 * One printable line out of a response body: blanks squeezed, control
 * characters dropped, cut with "..." when long.  HTML pages are named
 * by their <title>, since their markup helps nobody.
 */

void
momo_excerpt(const char *body, size_t len, char *out, size_t size)
{
    size_t       n;
    const char  *p, *t, *e;

    n = 0;
    out[0] = '\0';

    if (body == NULL || len == 0) {
        snprintf(out, size, "(empty body)");
        return;
    }

    p = body;

    while (p < body + len && isspace((unsigned char) *p)) {
        p++;
    }

    if (*p == '<') {
        t = strstr(p, "<title>");
        e = (t != NULL) ? strstr(t, "</title>") : NULL;

        if (t != NULL && e != NULL) {
            t += 7;
            snprintf(out, size, "an HTML page \"%.*s\"",
                     (int) (e - t < 80 ? e - t : 80), t);
        } else {
            snprintf(out, size, "an HTML page");
        }

        return;
    }

    for ( /* void */ ; p < body + len && n + 4 < size; p++) {

        if (isspace((unsigned char) *p)) {
            if (n > 0 && out[n - 1] != ' ') {
                out[n++] = ' ';
            }
            continue;
        }

        if ((unsigned char) *p < 0x20 || *p == 0x7f) {
            continue;
        }

        out[n++] = *p;
    }

    if (p < body + len) {
        n = (n > 3) ? n - 3 : n;
        memcpy(out + n, "...", 3);
        n += 3;
    }

    out[n] = '\0';
}


int
momo_is_digits(const char *s, size_t min, size_t max)
{
    size_t  n;

    for (n = 0; s[n] != '\0'; n++) {
        if (s[n] < '0' || s[n] > '9') {
            return 0;
        }
    }

    return n >= min && n <= max;
}
