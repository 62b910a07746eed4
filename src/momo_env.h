
/*
 * The .env dialect shared by the momo CLI and the momo_env_file directive.
 *
 * Pure C99, no nginx headers, no allocation: values point into the
 * caller's buffer, so both sides parse the same bytes by the same rules.
 */

#ifndef _MOMO_ENV_H_INCLUDED_
#define _MOMO_ENV_H_INCLUDED_


#include <stddef.h>


typedef struct {
    const unsigned char  *key;
    size_t                key_len;
    const unsigned char  *value;
    size_t                value_len;
} momo_env_pair_t;


/*
 * Reads the next KEY=value pair from [*pos, end), advancing *pos and
 * *line (1-based line number of the pair or of the error).  Set *line
 * to 0 before the first call.
 *
 * Returns 1 with *pair set (value points into the input, quotes removed),
 * 0 at end of input, -1 on a malformed line with *err set to a static
 * English sentence saying what is wrong.  After -1, *pos is past the bad
 * line, so a caller may go on to report the next error too.
 *
 * Dialect: blank lines and "#" comment lines are skipped; an optional
 * "export " prefix; KEY is [A-Za-z_][A-Za-z0-9_]*; blanks around "=" are
 * tolerated; the value is "double-quoted", 'single-quoted' (no escapes,
 * only blanks and a "# comment" may follow the closing quote) or
 * unquoted (trimmed, ends at " #" or end of line, no blanks or quotes
 * inside); CRLF line ends and a UTF-8 byte order mark are accepted;
 * control characters in values are refused.
 */
int momo_env_next(const unsigned char **pos, const unsigned char *end,
    momo_env_pair_t *pair, unsigned *line, const char **err);

/*
 * 1 when key is one of the MTN_MOMO_* keys: the six of Collections,
 * MTN_MOMO_CALLBACK_SECRET and
 * MTN_MOMO_DISBURSEMENT_{API_USER_ID,API_KEY,SUBSCRIPTION_KEY}
 */
int momo_env_known_key(const unsigned char *key, size_t len);


#endif /* _MOMO_ENV_H_INCLUDED_ */
