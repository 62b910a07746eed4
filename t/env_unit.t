#!/bin/sh
# Unit test of src/momo_env.c (the .env dialect shared by the CLI and the
# module): compiles a small C program into a temp dir and runs it; TAP.

set -e

cd "$(dirname "$0")/.."

tmp=$(mktemp -d "${TMPDIR:-/tmp}/momo_env_unit.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

cat > "$tmp/env_unit.c" <<'CEOF'
#include <stdio.h>
#include <string.h>

#include "momo_env.h"


static int  test_no;
static int  failed;


/*
 * Parses the whole input and renders it as "KEY=value@line;" for pairs
 * and "!line:first-words;" for errors, so each case is one comparison.
 */
static void
render(const char *in, size_t len, char *out, size_t size)
{
    int                   rc;
    size_t                n;
    unsigned              line;
    const char           *err;
    momo_env_pair_t       pair;
    const unsigned char  *pos, *end;

    pos = (const unsigned char *) in;
    end = pos + len;
    line = 0;
    n = 0;
    out[0] = '\0';

    for ( ;; ) {
        err = NULL;
        rc = momo_env_next(&pos, end, &pair, &line, &err);

        if (rc == 0) {
            break;
        }

        if (rc == 1) {
            n += snprintf(out + n, size - n, "%.*s=%.*s@%u;",
                          (int) pair.key_len, (const char *) pair.key,
                          (int) pair.value_len, (const char *) pair.value,
                          line);
        } else {
            /* the first 12 characters identify the sentence */
            n += snprintf(out + n, size - n, "!%u:%.12s;", line,
                          err ? err : "(null)");
        }

        if (n >= size) {
            break;
        }
    }
}


static void
check(const char *name, const char *in, const char *expect)
{
    char  got[2048];

    render(in, strlen(in), got, sizeof(got));
    test_no++;

    if (strcmp(got, expect) == 0) {
        printf("ok %d - %s\n", test_no, name);
        return;
    }

    failed++;
    printf("not ok %d - %s\n#   got:      %s\n#   expected: %s\n",
           test_no, name, got, expect);
}


static void
check_true(const char *name, int cond)
{
    test_no++;

    if (cond) {
        printf("ok %d - %s\n", test_no, name);
        return;
    }

    failed++;
    printf("not ok %d - %s\n", test_no, name);
}


int
main(void)
{
    char  out[256];

    printf("1..46\n");

    check("plain pair", "KEY=value\n", "KEY=value@1;");
    check("no trailing newline", "KEY=value", "KEY=value@1;");
    check("empty input", "", "");
    check("only blank lines and comments", "\n   \n# c\n\t# c2\n", "");
    check("double quotes removed", "K=\"a b c\"\n", "K=a b c@1;");
    check("single quotes removed", "K='a b'\n", "K=a b@1;");
    check("other quote kind kept inside", "K=\"it's\"\nL='say \"hi\"'\n",
          "K=it's@1;L=say \"hi\"@2;");
    check("no escape processing", "K=\"a\\nb\"\n", "K=a\\nb@1;");
    check("hash inside quotes is data", "K=\"a#b\" # comment\n",
          "K=a#b@1;");
    check("comment right after closing quote", "K=\"v\"#c\n", "K=v@1;");
    check("blanks after closing quote", "K='v'  \t\n", "K=v@1;");
    check("unquoted trailing comment", "K=abc # note\n", "K=abc@1;");
    check("unquoted hash without blank is data", "K=abc#def\n",
          "K=abc#def@1;");
    check("unquoted value trimmed", "K=  abc  \n", "K=abc@1;");
    check("blanks around =", "K = v\nL\t=\t\"w\"\n", "K=v@1;L=w@2;");
    check("empty unquoted value", "K=\n", "K=@1;");
    check("empty quoted value", "K=\"\"\nL=''\n", "K=@1;L=@2;");
    check("empty value then comment", "K= # nothing\n", "K=@1;");
    check("value starting with hash", "K=#x\n", "K=#x@1;");
    check("export prefix", "export K=\"v\"\nexport\tL=w\n",
          "K=v@1;L=w@2;");
    check("key named export", "export=1\n", "export=1@1;");
    check("key starting with export", "exported=1\n", "exported=1@1;");
    check("leading blanks before key", "   K=v\n", "K=v@1;");
    check("CRLF line ends", "A=\"x\"\r\nB=y\r\n\r\n# c\r\nC='z' # c\r\n",
          "A=x@1;B=y@2;C=z@5;");
    check("lone CR at end of input", "A=x\r", "A=x@1;");
    check("UTF-8 byte order mark", "\xef\xbb\xbf" "A=x\n", "A=x@1;");
    check("line numbers count skipped lines",
          "# head\n\nA=1\n# mid\n\n\nB=2\n", "A=1@3;B=2@7;");
    check("underscore and digits in key", "_A1_b2=v\n", "_A1_b2=v@1;");
    check("seed file",
          "# MTN MoMo sandbox\n"
          "MTN_MOMO_API_USER_ID=\"6f1c3a52-8d4e-4b7a-9c21-3e5f7a9b0d14\"\n"
          "MTN_MOMO_API_KEY=\"2f9d8c7b6a5e4d3c2b1a0f9e8d7c6b5a\"\n"
          "MTN_MOMO_TARGET_ENVIRONMENT=\"sandbox\"  # or mtncameroon\n",
          "MTN_MOMO_API_USER_ID=6f1c3a52-8d4e-4b7a-9c21-3e5f7a9b0d14@2;"
          "MTN_MOMO_API_KEY=2f9d8c7b6a5e4d3c2b1a0f9e8d7c6b5a@3;"
          "MTN_MOMO_TARGET_ENVIRONMENT=sandbox@4;");

    check("error: missing closing double quote", "K=\"abc\n",
          "!1:the closing ;");
    check("error: missing closing single quote", "K='abc\n",
          "!1:the closing ;");
    check("error: quote does not span lines", "K=\"a\nb\"\n",
          "!1:the closing ;!2:expected \"=\";");
    check("error: text after closing quote", "K=\"a\" b\n",
          "!1:unexpected t;");
    check("error: blank inside unquoted value", "K=a b\n",
          "!1:an unquoted ;");
    check("error: quote inside unquoted value", "K=a\"b\n",
          "!1:an unquoted ;");
    check("error: key starts with a digit", "1K=v\n", "!1:the line doe;");
    check("error: missing =", "JUSTAKEY\n", "!1:expected \"=\";");
    check("error: key with dash", "MY-KEY=v\n", "!1:expected \"=\";");
    check("error: control character in value", "K=\"a\x01" "b\"\n",
          "!1:the value co;");
    check("parsing goes on after an error",
          "A=1\nB=\"x\nC=3\n", "A=1@1;!2:the closing ;C=3@3;");

    check_true("known key MTN_MOMO_API_KEY",
               momo_env_known_key((const unsigned char *) "MTN_MOMO_API_KEY",
                                  16));
    check_true("known key MTN_MOMO_CALLBACK_URL",
               momo_env_known_key(
                   (const unsigned char *) "MTN_MOMO_CALLBACK_URL", 21));
    check_true("known key MTN_MOMO_DISBURSEMENT_SUBSCRIPTION_KEY",
               momo_env_known_key((const unsigned char *)
                                  "MTN_MOMO_DISBURSEMENT_SUBSCRIPTION_KEY",
                                  38));
    check_true("known key MTN_MOMO_DISBURSEMENT_API_USER_ID",
               momo_env_known_key((const unsigned char *)
                                  "MTN_MOMO_DISBURSEMENT_API_USER_ID", 33));
    check_true("prefix of a known key is unknown",
               !momo_env_known_key((const unsigned char *) "MTN_MOMO_API",
                                   12));

    render("K=\"v\"", 3, out, sizeof(out));
    check_true("end pointer respected (input cut inside quotes)",
               strcmp(out, "!1:the closing ;") == 0);

    return failed ? 1 : 0;
}
CEOF

if ! gcc -std=c99 -Wall -Wextra -Werror -Isrc -o "$tmp/env_unit" \
        "$tmp/env_unit.c" src/momo_env.c 2> "$tmp/cc.log"
then
    echo "1..1"
    echo "not ok 1 - env_unit.c compiles"
    sed 's/^/# /' "$tmp/cc.log"
    exit 1
fi

"$tmp/env_unit"
