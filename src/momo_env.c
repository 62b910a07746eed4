
/*
 * The .env parser shared by the momo CLI and the nginx module.
 */


#include <string.h>

#include "momo_env.h"


static int momo_env_parse_line(const unsigned char *p,
    const unsigned char *last, momo_env_pair_t *pair, const char **err);
static int momo_env_quoted(const unsigned char *p, const unsigned char *last,
    momo_env_pair_t *pair, const char **err);
static int momo_env_unquoted(const unsigned char *p,
    const unsigned char *last, int after_blank, momo_env_pair_t *pair,
    const char **err);
static const unsigned char *momo_env_skip_blanks(const unsigned char *p,
    const unsigned char *last);
static int momo_env_has_control(const unsigned char *p,
    const unsigned char *last);


static const char  *momo_env_known[] = {
    "MTN_MOMO_API_USER_ID",
    "MTN_MOMO_API_KEY",
    "MTN_MOMO_SUBSCRIPTION_KEY",
    "MTN_MOMO_TARGET_ENVIRONMENT",
    "MTN_MOMO_BASE_URL",
    "MTN_MOMO_CALLBACK_URL",
    "MTN_MOMO_DISBURSEMENT_API_USER_ID",
    "MTN_MOMO_DISBURSEMENT_API_KEY",
    "MTN_MOMO_DISBURSEMENT_SUBSCRIPTION_KEY",
    "MTN_MOMO_CALLBACK_SECRET",
    NULL
};


#define momo_env_is_blank(c)      ((c) == ' ' || (c) == '\t')
#define momo_env_is_key_start(c)                                            \
    (((c) >= 'A' && (c) <= 'Z') || ((c) >= 'a' && (c) <= 'z') || (c) == '_')
#define momo_env_is_key_char(c)                                             \
    (momo_env_is_key_start(c) || ((c) >= '0' && (c) <= '9'))


int
momo_env_next(const unsigned char **pos, const unsigned char *end,
    momo_env_pair_t *pair, unsigned *line, const char **err)
{
    int                   rc;
    const unsigned char  *p, *eol, *last;

    p = *pos;

    while (p < end) {
        eol = memchr(p, '\n', (size_t) (end - p));
        last = (eol != NULL) ? eol : end;

        if (last > p && last[-1] == '\r') {
            last--;
        }

        (*line)++;
        *pos = (eol != NULL) ? eol + 1 : end;

        /* editors on Windows like to start the file with a BOM */
        if (*line == 1 && last - p >= 3
            && p[0] == 0xef && p[1] == 0xbb && p[2] == 0xbf)
        {
            p += 3;
        }

        rc = momo_env_parse_line(p, last, pair, err);
        if (rc != 0) {
            return rc;
        }

        p = *pos;
    }

    *pos = end;

    return 0;
}


int
momo_env_known_key(const unsigned char *key, size_t len)
{
    const char  **k;

    for (k = momo_env_known; *k != NULL; k++) {
        if (strlen(*k) == len && memcmp(*k, key, len) == 0) {
            return 1;
        }
    }

    return 0;
}


/* 1: a pair, 0: nothing on this line, -1: malformed */

static int
momo_env_parse_line(const unsigned char *p, const unsigned char *last,
    momo_env_pair_t *pair, const char **err)
{
    const unsigned char  *key, *v;

    p = momo_env_skip_blanks(p, last);

    if (p == last || *p == '#') {
        return 0;
    }

    if (last - p > 7 && memcmp(p, "export", 6) == 0
        && momo_env_is_blank(p[6]))
    {
        p = momo_env_skip_blanks(p + 7, last);
    }

    if (p == last || !momo_env_is_key_start(*p)) {
        *err = "the line does not start with a variable name (letters, "
               "digits and \"_\", not starting with a digit)";
        return -1;
    }

    key = p;

    while (p < last && momo_env_is_key_char(*p)) {
        p++;
    }

    pair->key = key;
    pair->key_len = (size_t) (p - key);

    p = momo_env_skip_blanks(p, last);

    if (p == last || *p != '=') {
        *err = "expected \"=\" after the variable name";
        return -1;
    }

    p++;
    v = momo_env_skip_blanks(p, last);

    if (v < last && (*v == '"' || *v == '\'')) {
        return momo_env_quoted(v, last, pair, err);
    }

    return momo_env_unquoted(v, last, v != p, pair, err);
}


static int
momo_env_quoted(const unsigned char *p, const unsigned char *last,
    momo_env_pair_t *pair, const char **err)
{
    const unsigned char  *start, *close, *rest;

    start = p + 1;
    close = memchr(start, *p, (size_t) (last - start));

    if (close == NULL) {
        *err = "the closing quote of the value is missing (a value cannot "
               "span lines)";
        return -1;
    }

    rest = momo_env_skip_blanks(close + 1, last);

    if (rest < last && *rest != '#') {
        *err = "unexpected text after the closing quote; only a "
               "\"# comment\" may follow it";
        return -1;
    }

    if (momo_env_has_control(start, close)) {
        *err = "the value contains a control character";
        return -1;
    }

    pair->value = start;
    pair->value_len = (size_t) (close - start);

    return 1;
}


static int
momo_env_unquoted(const unsigned char *p, const unsigned char *last,
    int after_blank, momo_env_pair_t *pair, const char **err)
{
    const unsigned char  *e, *rest;

    pair->value = p;
    pair->value_len = 0;

    /* "KEY= # comment" is an empty value, "KEY=#x" is the value "#x" */
    if (p == last || (*p == '#' && after_blank)) {
        return 1;
    }

    for (e = p; e < last; e++) {

        if (momo_env_is_blank(*e)) {
            rest = momo_env_skip_blanks(e, last);

            if (rest == last || *rest == '#') {
                break;
            }

            *err = "an unquoted value cannot contain blanks; put the value "
                   "in double quotes";
            return -1;
        }

        if (*e == '"' || *e == '\'') {
            *err = "an unquoted value cannot contain quotes; put the whole "
                   "value in quotes";
            return -1;
        }

        if (*e < 0x20 || *e == 0x7f) {
            *err = "the value contains a control character";
            return -1;
        }
    }

    pair->value_len = (size_t) (e - p);

    return 1;
}


static const unsigned char *
momo_env_skip_blanks(const unsigned char *p, const unsigned char *last)
{
    while (p < last && momo_env_is_blank(*p)) {
        p++;
    }

    return p;
}


static int
momo_env_has_control(const unsigned char *p, const unsigned char *last)
{
    for ( /* void */ ; p < last; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            return 1;
        }
    }

    return 0;
}
