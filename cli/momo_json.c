
/*
 * JSON through yajl: the tree API to read MTN's answers, the generator
 * to write --json output.  Strings written pass through momo_redact().
 */


#include <stdlib.h>
#include <string.h>

#include "momo_cli.h"


yajl_val
momo_json_parse(const char *text)
{
    if (text == NULL || text[0] == '\0') {
        return NULL;
    }

    return yajl_tree_parse(text, NULL, 0);
}


yajl_val
momo_json_get(yajl_val obj, const char *key)
{
    size_t  i;

    if (obj == NULL || !YAJL_IS_OBJECT(obj)) {
        return NULL;
    }

    for (i = 0; i < obj->u.object.len; i++) {
        if (strcmp(obj->u.object.keys[i], key) == 0) {
            return obj->u.object.values[i];
        }
    }

    return NULL;
}


/* a string member, or a number as MTN wrote it; NULL for anything else */

const char *
momo_json_str(yajl_val obj, const char *key)
{
    yajl_val  v;

    v = momo_json_get(obj, key);

    if (v == NULL) {
        return NULL;
    }

    if (YAJL_IS_STRING(v)) {
        return v->u.string;
    }

    if (YAJL_IS_NUMBER(v)) {
        return v->u.number.r;
    }

    return NULL;
}


yajl_gen
momo_json_begin(void)
{
    yajl_gen  g;

    g = yajl_gen_alloc(NULL);
    if (g == NULL) {
        fputs("momo: out of memory\n", stderr);
        exit(MOMO_EXIT_MTN);
    }

    yajl_gen_config(g, yajl_gen_validate_utf8, 1);
    yajl_gen_map_open(g);

    return g;
}


void
momo_json_key(yajl_gen g, const char *key)
{
    yajl_gen_string(g, (const unsigned char *) key, strlen(key));
}


void
momo_json_str_value(yajl_gen g, const char *value)
{
    char                 *safe;
    static const char     bad[] = "(invalid UTF-8)";

    if (value == NULL) {
        yajl_gen_null(g);
        return;
    }

    safe = momo_redact(value);

    if (safe == NULL
        || yajl_gen_string(g, (const unsigned char *) safe, strlen(safe))
           != yajl_gen_status_ok)
    {
        yajl_gen_string(g, (const unsigned char *) bad, sizeof(bad) - 1);
    }

    free(safe);
}


void
momo_json_kstr(yajl_gen g, const char *key, const char *value)
{
    momo_json_key(g, key);
    momo_json_str_value(g, value);
}


/*
 * Not masked: only for what a command exists to print, the .env lines
 * of "momo provision".
 */

void
momo_json_kstr_raw(yajl_gen g, const char *key, const char *value)
{
    momo_json_key(g, key);
    yajl_gen_string(g, (const unsigned char *) value, strlen(value));
}


void
momo_json_kint(yajl_gen g, const char *key, long value)
{
    momo_json_key(g, key);
    yajl_gen_integer(g, value);
}


void
momo_json_kbool(yajl_gen g, const char *key, int value)
{
    momo_json_key(g, key);
    yajl_gen_bool(g, value);
}


void
momo_json_end(yajl_gen g)
{
    size_t                len;
    const unsigned char  *buf;

    momo_progress_done();

    yajl_gen_map_close(g);

    if (yajl_gen_get_buf(g, &buf, &len) == yajl_gen_status_ok) {
        fwrite(buf, 1, len, stdout);
        fputc('\n', stdout);
    }

    fflush(stdout);
    yajl_gen_free(g);
}


void
momo_json_diag(yajl_gen g, const momo_diag_t *d)
{
    momo_json_key(g, "error");
    yajl_gen_map_open(g);

    momo_json_kstr(g, "code", d->code);
    momo_json_kstr(g, "message", d->what);
    momo_json_kstr(g, "hint", d->hint[0] ? d->hint : NULL);
    momo_json_kbool(g, "transient", d->transient);

    momo_json_kstr(g, "call", d->call);
    momo_json_key(g, "http_status");

    if (d->http_status > 0) {
        yajl_gen_integer(g, d->http_status);
    } else {
        yajl_gen_null(g);
    }

    yajl_gen_map_close(g);
}
