
/*
 * Everything the CLI prints goes through here: secrets registered with
 * momo_secret_add() are replaced by their mask wherever they appear.
 */


#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "momo_cli.h"


#define MOMO_MAX_SECRETS     16
#define MOMO_MIN_SECRET_LEN  6


static void momo_vprint(FILE *f, const char *fmt, va_list ap);
static char *momo_replace(const char *s, const char *secret);


static char  *momo_secrets[MOMO_MAX_SECRETS];
static int    momo_nsecrets;
static int    momo_progress_open;
static int    momo_stdout_tty = -1;


void
momo_secret_add(const char *secret)
{
    int  i;

    if (secret == NULL || strlen(secret) < MOMO_MIN_SECRET_LEN
        || momo_nsecrets == MOMO_MAX_SECRETS)
    {
        return;
    }

    for (i = 0; i < momo_nsecrets; i++) {
        if (strcmp(momo_secrets[i], secret) == 0) {
            return;
        }
    }

    momo_secrets[momo_nsecrets] = momo_strdup(secret);

    if (momo_secrets[momo_nsecrets] != NULL) {
        momo_nsecrets++;
    }
}


/* "2f9d…6b5a": enough to tell two keys apart, not enough to use one */

void
momo_mask(const char *secret, char *buf, size_t size)
{
    size_t  len;

    len = strlen(secret);

    if (len < 12) {
        snprintf(buf, size, "\xe2\x80\xa6 (%zu characters)", len);
        return;
    }

    snprintf(buf, size, "%.4s\xe2\x80\xa6%s", secret, secret + len - 4);
}


/* a malloc()ed copy of s with every registered secret masked */

char *
momo_redact(const char *s)
{
    int    i;
    char  *out, *next;

    out = momo_strdup(s);

    for (i = 0; out != NULL && i < momo_nsecrets; i++) {
        if (strstr(out, momo_secrets[i]) == NULL) {
            continue;
        }

        next = momo_replace(out, momo_secrets[i]);
        free(out);
        out = next;
    }

    return out;
}


static char *
momo_replace(const char *s, const char *secret)
{
    char         mask[64], *out, *o;
    size_t       slen, mlen, count;
    const char  *p, *hit;

    momo_mask(secret, mask, sizeof(mask));
    slen = strlen(secret);
    mlen = strlen(mask);

    count = 0;
    for (p = s; (hit = strstr(p, secret)) != NULL; p = hit + slen) {
        count++;
    }

    out = malloc(strlen(s) + count * mlen + 1);
    if (out == NULL) {
        return NULL;
    }

    o = out;

    for (p = s; (hit = strstr(p, secret)) != NULL; p = hit + slen) {
        memcpy(o, p, (size_t) (hit - p));
        o += hit - p;
        memcpy(o, mask, mlen);
        o += mlen;
    }

    strcpy(o, p);

    return out;
}


void
momo_printf(const char *fmt, ...)
{
    va_list  ap;

    momo_progress_done();

    va_start(ap, fmt);
    momo_vprint(stdout, fmt, ap);
    va_end(ap);
}


void
momo_eprintf(const char *fmt, ...)
{
    va_list  ap;

    momo_progress_done();
    fflush(stdout);

    va_start(ap, fmt);
    momo_vprint(stderr, fmt, ap);
    va_end(ap);
}


static void
momo_vprint(FILE *f, const char *fmt, va_list ap)
{
    char  buf[4096], *safe;

    vsnprintf(buf, sizeof(buf), fmt, ap);

    safe = momo_redact(buf);
    fputs(safe != NULL ? safe : "(out of memory)\n", f);
    free(safe);
}


int
momo_stdout_is_tty(void)
{
    if (momo_stdout_tty == -1) {
        momo_stdout_tty = isatty(STDOUT_FILENO);
    }

    return momo_stdout_tty;
}


/*
 * On a terminal the progress line rewrites itself; in a pipe or a log
 * every call is a line of its own.
 */

void
momo_progress(const char *fmt, ...)
{
    va_list  ap;

    if (momo_stdout_is_tty()) {
        fputs("\r\033[K", stdout);
    }

    va_start(ap, fmt);
    momo_vprint(stdout, fmt, ap);
    va_end(ap);

    if (momo_stdout_tty) {
        momo_progress_open = 1;
    } else {
        fputc('\n', stdout);
    }

    fflush(stdout);
}


void
momo_progress_done(void)
{
    if (momo_progress_open) {
        fputc('\n', stdout);
        momo_progress_open = 0;
    }
}


int
momo_fail(const momo_opts_t *o, int exit_code, const char *code,
    const char *fmt, ...)
{
    char      msg[1024];
    va_list   ap;
    yajl_gen  g;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    if (o == NULL || !o->json) {
        momo_eprintf("momo: %s\n", msg);
        return exit_code;
    }

    g = momo_json_begin();
    momo_json_kbool(g, "ok", 0);
    momo_json_kint(g, "exit_code", exit_code);
    momo_json_key(g, "error");
    yajl_gen_map_open(g);
    momo_json_kstr(g, "code", code);
    momo_json_kstr(g, "message", msg);
    yajl_gen_map_close(g);
    momo_json_end(g);

    return exit_code;
}


int
momo_fail_diag(const momo_opts_t *o, const momo_diag_t *d,
    const char *reference_id)
{
    yajl_gen  g;

    if (!o->json) {
        momo_eprintf("momo: %s\n", d->what);

        if (d->hint[0] != '\0') {
            momo_eprintf("      %s\n", d->hint);
        }

        if (reference_id != NULL) {
            momo_eprintf("      reference id %s\n", reference_id);
        }

        return d->exit_code;
    }

    g = momo_json_begin();
    momo_json_kbool(g, "ok", 0);
    momo_json_kint(g, "exit_code", d->exit_code);

    if (reference_id != NULL) {
        momo_json_kstr(g, "reference_id", reference_id);
    }

    momo_json_diag(g, d);
    momo_json_end(g);

    return d->exit_code;
}


void
momo_print_diag(const momo_diag_t *d, const char *indent)
{
    momo_printf("%s%s\n", indent, d->what);

    if (d->hint[0] != '\0') {
        momo_printf("%s%s\n", indent, d->hint);
    }
}
