
/*
 * momo: command-line companion of ngx_http_momo_module.
 *
 *     momo provision --subscription-key KEY --callback-host HOST
 *     momo check [--env-file .env]
 *     momo pay --phone N --amount A [--wait]
 *     momo status REF [--refund|--payout] [--wait]
 *     momo refund REF --amount A --idempotency-key K [--wait]
 *     momo payout --phone N --amount A --idempotency-key K [--wait]
 *     momo balance [--product collection|disbursement]
 *
 * This file: the command table, option parsing, help and dispatch.
 */


#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "momo_cli.h"


typedef enum {
    MOMO_OPT_FLAG = 0,
    MOMO_OPT_STR
} momo_opt_kind_e;


typedef struct {
    const char       *name;
    momo_opt_kind_e   kind;
    size_t            offset;
} momo_opt_t;


typedef struct {
    const char   *name;
    int         (*run)(momo_opts_t *o);
    int           max_args;
    const char   *options;           /* its own, besides the common ones */
    const char   *summary;
    const char   *help;
} momo_command_t;


static const momo_command_t *momo_find_command(const char *name);
static int momo_parse(const momo_command_t *cmd, int argc, char **argv,
    momo_opts_t *o);
static int momo_parse_option(const momo_command_t *cmd, char **argv,
    int argc, int *i, momo_opts_t *o);
static const momo_opt_t *momo_find_option(const momo_command_t *cmd,
    const char *name, size_t len);
static int momo_parse_timeout(momo_opts_t *o);
static void momo_help(FILE *f, const momo_command_t *cmd);


#define momo_opt(name, kind, field)                                         \
    { name, kind, offsetof(momo_opts_t, field) }

static const momo_opt_t  momo_options[] = {
    momo_opt("--env-file", MOMO_OPT_STR, env_file),
    momo_opt("--base-url", MOMO_OPT_STR, base_url),
    momo_opt("--subscription-key", MOMO_OPT_STR, subscription_key),
    momo_opt("--callback-host", MOMO_OPT_STR, callback_host),
    momo_opt("--callback-url", MOMO_OPT_STR, callback_url),
    momo_opt("--output", MOMO_OPT_STR, output),
    momo_opt("--phone", MOMO_OPT_STR, phone),
    momo_opt("--amount", MOMO_OPT_STR, amount),
    momo_opt("--currency", MOMO_OPT_STR, currency),
    momo_opt("--external-id", MOMO_OPT_STR, external_id),
    momo_opt("--message", MOMO_OPT_STR, message),
    momo_opt("--note", MOMO_OPT_STR, note),
    momo_opt("--msisdn", MOMO_OPT_STR, msisdn),
    momo_opt("--timeout", MOMO_OPT_STR, timeout),
    momo_opt("--product", MOMO_OPT_STR, product),
    momo_opt("--idempotency-key", MOMO_OPT_STR, idempotency_key),
    momo_opt("--refund", MOMO_OPT_FLAG, refund),
    momo_opt("--payout", MOMO_OPT_FLAG, payout),
    momo_opt("--json", MOMO_OPT_FLAG, json),
    momo_opt("--wait", MOMO_OPT_FLAG, wait),
    momo_opt("--force", MOMO_OPT_FLAG, force),
    momo_opt("--help", MOMO_OPT_FLAG, help),
    { NULL, MOMO_OPT_FLAG, 0 }
};

#define MOMO_COMMON_OPTIONS  " --json --timeout --help "


static const momo_command_t  momo_commands[] = {

    { "provision", momo_cmd_provision, 0,
      " --subscription-key --callback-host --base-url --output --force"
      " --product ",
      "create a sandbox API user and key, print the .env lines",
      "usage: momo provision --subscription-key KEY --callback-host HOST\n"
      "                      [--product collection|disbursement]\n"
      "                      [--base-url URL] [--output FILE [--force]]\n"
      "\n"
      "Creates an API user (a new UUID v4) and its API key on MTN's sandbox\n"
      "and prints the seven .env lines for them, with a new random\n"
      "MTN_MOMO_CALLBACK_SECRET. Sandbox only: production credentials come\n"
      "from MTN's partner portal.\n"
      "\n"
      "  --subscription-key KEY  your Collections primary key\n"
      "                          (momodeveloper.mtn.com, your profile), or\n"
      "                          the Disbursement one with --product\n"
      "  --product disbursement  a user for refunds and payouts: made with\n"
      "                          the Disbursement key, printed as the three\n"
      "                          MTN_MOMO_DISBURSEMENT_* lines to add to the\n"
      "                          .env (momo provision ... >> .env)\n"
      "  --callback-host HOST    the host MTN may call back, no scheme or\n"
      "                          path: example.com\n"
      "  --base-url URL          default " MOMO_SANDBOX_URL "\n"
      "  --output FILE           write the .env to FILE (mode 0600) and\n"
      "                          print no secret; --force overwrites\n"
      "\n"
      "Without --output the .env lines, secrets included, are the output:\n"
      "  momo provision --subscription-key KEY --callback-host example.com"
      " > .env\n" },

    { "check", momo_cmd_check, 0,
      " --env-file --msisdn ",
      "check the .env: token, balance, account holder",
      "usage: momo check [--env-file FILE] [--msisdn NUMBER]\n"
      "\n"
      "Reads the .env (default ./.env) by the nginx module's rules, then one\n"
      "line per step: config, token, balance, account, for Collections and,\n"
      "when the MTN_MOMO_DISBURSEMENT_* keys are set, for Disbursement. A\n"
      "failing step says what is wrong and what to do. Secrets are shown\n"
      "masked.\n"
      "\n"
      "  --env-file FILE   the .env file (default .env)\n"
      "  --msisdn NUMBER   the account holder to look up (default "
      "46733123450)\n"
      "\n"
      "Exit 0 when every step works, 3 for a configuration problem, 4 when\n"
      "MTN or the network fails.\n" },

    { "pay", momo_cmd_pay, 0,
      " --env-file --phone --amount --currency --external-id --message"
      " --note --callback-url --wait ",
      "send a RequestToPay straight to MTN (not through nginx)",
      "usage: momo pay --phone NUMBER --amount AMOUNT [--currency CODE]\n"
      "                [--external-id ID] [--message TEXT] [--note TEXT]\n"
      "                [--callback-url URL] [--wait] [--env-file FILE]\n"
      "\n"
      "Sends POST /collection/v1_0/requesttopay with a new random reference\n"
      "id and prints it. Sandbox test numbers: 46733123450 fails\n"
      "(INTERNAL_PROCESSING_ERROR), ...451 is rejected, ...452 expires,\n"
      "...453 stays pending a while, ...454 stays CREATED, others succeed.\n"
      "\n"
      "  --phone NUMBER      payer, international form (+, blanks, dashes\n"
      "                      allowed)\n"
      "  --amount AMOUNT     positive, at most 2 decimals (none for XAF)\n"
      "  --currency CODE     default EUR in sandbox, XAF for mtncameroon\n"
      "  --external-id ID    your reference (default momo-cli-TIME)\n"
      "  --message TEXT      payer message, --note TEXT payee note: at most\n"
      "                      160 characters, none of ' & < > \"\n"
      "  --callback-url URL  send X-Callback-Url (its host must be the API\n"
      "                      user's callback host); none by default\n"
      "  --wait              poll the status once a second until SUCCESSFUL\n"
      "                      or FAILED, at most --timeout seconds (120)\n"
      "\n"
      "Exit 0 when accepted (or SUCCESSFUL with --wait), 5 when FAILED, 6\n"
      "when still pending after --timeout, 4 when MTN refused it.\n" },

    { "status", momo_cmd_status, 1,
      " --env-file --wait --refund --payout ",
      "show a payment's status, or wait for its end",
      "usage: momo status REFERENCE_ID [--refund|--payout] [--wait]\n"
      "                   [--env-file FILE]\n"
      "\n"
      "Asks GET /collection/v1_0/requesttopay/REFERENCE_ID. CREATED and\n"
      "unknown statuses count as pending.\n"
      "\n"
      "  --refund  a refund's: GET /disbursement/v1_0/refund/REFERENCE_ID\n"
      "  --payout  a payout's: GET /disbursement/v1_0/transfer/REFERENCE_ID\n"
      "  --wait    poll once a second until SUCCESSFUL or FAILED, at most\n"
      "            --timeout seconds (default 120)\n"
      "\n"
      "Exit 0 for pending or SUCCESSFUL, 5 for FAILED, 6 when still pending\n"
      "after --wait, 4 when MTN does not know the id or fails.\n" },

    { "refund", momo_cmd_refund, 1,
      " --env-file --amount --currency --external-id --message --note"
      " --callback-url --idempotency-key --wait ",
      "refund a payment, whole or in part (Disbursement)",
      "usage: momo refund PAYMENT_REFERENCE_ID --amount AMOUNT\n"
      "                   --idempotency-key KEY [--currency CODE]\n"
      "                   [--external-id ID] [--message TEXT] [--note TEXT]\n"
      "                   [--callback-url URL] [--wait] [--env-file FILE]\n"
      "\n"
      "Sends POST /disbursement/v1_0/refund with referenceIdToRefund, using\n"
      "the MTN_MOMO_DISBURSEMENT_* credentials. When the .env also has the\n"
      "Collections ones, the payment is checked first: a payment that is\n"
      "not SUCCESSFUL, in another currency or smaller than the refund is\n"
      "refused before MTN sees anything.\n"
      "\n"
      "  --amount AMOUNT         the payment's amount for a full refund, less\n"
      "                          for a partial one\n"
      "  --idempotency-key KEY   your name for this refund (required): the\n"
      "                          reference id is derived from it, so the same\n"
      "                          command run again cannot refund twice; MTN's\n"
      "                          409 then shows the first one. The same key\n"
      "                          with another amount is refused. It is also\n"
      "                          the default --external-id.\n"
      "  --wait                  poll until SUCCESSFUL or FAILED, as pay does\n"
      "  other options           as for momo pay\n"
      "\n"
      "Exit 0 when accepted (or SUCCESSFUL with --wait), 5 when FAILED, 6\n"
      "when still pending after --timeout, 2 when refused before MTN, 4\n"
      "when MTN refused it.\n" },

    { "payout", momo_cmd_payout, 0,
      " --env-file --phone --amount --currency --external-id --message"
      " --note --callback-url --idempotency-key --wait ",
      "send money to a phone number (Disbursement transfer)",
      "usage: momo payout --phone NUMBER --amount AMOUNT\n"
      "                   --idempotency-key KEY [--currency CODE]\n"
      "                   [--external-id ID] [--message TEXT] [--note TEXT]\n"
      "                   [--callback-url URL] [--wait] [--env-file FILE]\n"
      "\n"
      "Sends POST /disbursement/v1_0/transfer to the payee NUMBER, using the\n"
      "MTN_MOMO_DISBURSEMENT_* credentials. Sandbox numbers: 46733123450\n"
      "fails, ...451 is rejected, ...452 expires, ...453 stays pending,\n"
      "...454 is pending a while, then succeeds; others succeed.\n"
      "\n"
      "  --idempotency-key KEY   your name for this payout (required), as\n"
      "                          for momo refund: the same command run again\n"
      "                          cannot pay out twice\n"
      "  other options           as for momo pay\n"
      "\n"
      "Exit codes as for momo refund.\n" },

    { "balance", momo_cmd_balance, 0,
      " --env-file --product ",
      "show the available balance of an account",
      "usage: momo balance [--product collection|disbursement]\n"
      "                    [--env-file FILE]\n"
      "\n"
      "Asks GET /{product}/v1_0/account/balance: the Collections account\n"
      "(default) holds what payments brought in, the Disbursement account\n"
      "what refunds and payouts can still send.\n"
      "\n"
      "Exit 0 with the balance, 3 for a configuration problem, 4 when MTN\n"
      "or the network fails.\n" },

    { NULL, NULL, 0, NULL, NULL, NULL }
};


static const char  momo_global_help[] =
    "momo " MOMO_CLI_VERSION " - MTN Mobile Money from the command line "
    "(companion of\nngx_http_momo_module)\n"
    "\n"
    "usage: momo COMMAND [options]\n"
    "\n"
    "commands:\n"
    "%s"
    "\n"
    "common options:\n"
    "  --json        print one JSON object for scripts instead of text\n"
    "  --timeout S   seconds for each HTTP call (default 30); with --wait\n"
    "                also the longest wait for a payment's end (default "
    "120)\n"
    "  --help        this help, or a command's with momo COMMAND --help\n"
    "\n"
    "exit codes: 0 ok, 2 usage error (or a refund or payout refused before\n"
    "MTN), 3 configuration error (.env), 4 MTN or network failure, 5 "
    "payment,\nrefund or payout FAILED, 6 still pending when --wait gave "
    "up.\n"
    "\n"
    "Secrets (API key, subscription key, tokens) are never printed, except\n"
    "the .env lines that momo provision exists to print.\n";


static const momo_command_t  *momo_current;


int
main(int argc, char **argv)
{
    int                    rc;
    momo_opts_t            o;
    const momo_command_t  *cmd;

    memset(&o, 0, sizeof(o));

    if (argc < 2 || strcmp(argv[1], "--help") == 0
        || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0)
    {
        cmd = (argc > 2) ? momo_find_command(argv[2]) : NULL;
        momo_help(argc < 2 ? stderr : stdout, cmd);
        return (argc < 2) ? MOMO_EXIT_USAGE : MOMO_EXIT_OK;
    }

    if (strcmp(argv[1], "--version") == 0) {
        printf("momo-cli %s\n", MOMO_CLI_VERSION);
        return MOMO_EXIT_OK;
    }

    cmd = momo_find_command(argv[1]);

    if (cmd == NULL) {
        o.json = (argc > 2 && strcmp(argv[argc - 1], "--json") == 0);
        return momo_usage(&o, "unknown command \"%s\"", argv[1]);
    }

    momo_current = cmd;

    rc = momo_parse(cmd, argc - 2, argv + 2, &o);
    if (rc != 0) {
        return rc;
    }

    if (o.help) {
        momo_help(stdout, cmd);
        return MOMO_EXIT_OK;
    }

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        return momo_fail(&o, MOMO_EXIT_MTN, "INTERNAL",
                         "cannot initialise libcurl");
    }

    rc = cmd->run(&o);

    curl_global_cleanup();

    return rc;
}


static const momo_command_t *
momo_find_command(const char *name)
{
    const momo_command_t  *cmd;

    for (cmd = momo_commands; cmd->name != NULL; cmd++) {
        if (strcmp(cmd->name, name) == 0) {
            return cmd;
        }
    }

    return NULL;
}


static int
momo_parse(const momo_command_t *cmd, int argc, char **argv, momo_opts_t *o)
{
    int  i, rc, options_done;

    o->env_file = ".env";
    options_done = 0;

    /* --json first, so that usage errors come out as JSON too */
    for (i = 0; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            o->json = 1;
        }
    }

    for (i = 0; i < argc; i++) {

        if (!options_done && strcmp(argv[i], "--") == 0) {
            options_done = 1;
            continue;
        }

        if (!options_done && argv[i][0] == '-' && argv[i][1] != '\0') {
            rc = momo_parse_option(cmd, argv, argc, &i, o);
            if (rc != 0) {
                return rc;
            }

            continue;
        }

        if (o->nargs >= cmd->max_args) {
            return momo_usage(o, "unexpected argument \"%s\"", argv[i]);
        }

        o->args[o->nargs++] = argv[i];
    }

    return o->help ? 0 : momo_parse_timeout(o);
}


/* --name value, --name=value, or a flag; -h for --help */

static int
momo_parse_option(const momo_command_t *cmd, char **argv, int argc, int *i,
    momo_opts_t *o)
{
    size_t             len;
    const char        *arg, *eq, *value;
    const momo_opt_t  *opt;

    arg = argv[*i];

    if (strcmp(arg, "-h") == 0) {
        o->help = 1;
        return 0;
    }

    eq = strchr(arg, '=');
    len = (eq != NULL) ? (size_t) (eq - arg) : strlen(arg);

    opt = momo_find_option(cmd, arg, len);
    if (opt == NULL) {
        return momo_usage(o, "unknown option \"%.*s\" for %s", (int) len,
                          arg, cmd->name);
    }

    if (opt->kind == MOMO_OPT_FLAG) {
        if (eq != NULL) {
            return momo_usage(o, "%s takes no value", opt->name);
        }

        *(int *) ((char *) o + opt->offset) = 1;
        return 0;
    }

    if (eq != NULL) {
        value = eq + 1;

    } else if (*i + 1 < argc) {
        value = argv[++*i];

    } else {
        return momo_usage(o, "%s needs a value", opt->name);
    }

    *(const char **) ((char *) o + opt->offset) = value;

    return 0;
}


static const momo_opt_t *
momo_find_option(const momo_command_t *cmd, const char *name, size_t len)
{
    char               word[64];
    const momo_opt_t  *opt;

    if (len + 3 > sizeof(word)) {
        return NULL;
    }

    snprintf(word, sizeof(word), " %.*s ", (int) len, name);

    if (strstr(cmd->options, word) == NULL
        && strstr(MOMO_COMMON_OPTIONS, word) == NULL)
    {
        return NULL;
    }

    for (opt = momo_options; opt->name != NULL; opt++) {
        if (strlen(opt->name) == len && memcmp(opt->name, name, len) == 0) {
            return opt;
        }
    }

    return NULL;
}


static int
momo_parse_timeout(momo_opts_t *o)
{
    char    *end;
    double   s;

    o->http_timeout_ms = MOMO_HTTP_TIMEOUT_MS;
    o->wait_timeout_ms = MOMO_WAIT_TIMEOUT_MS;

    if (o->timeout == NULL) {
        return 0;
    }

    s = strtod(o->timeout, &end);

    if (end == o->timeout || *end != '\0' || !(s >= 0.1 && s <= 86400)) {
        return momo_usage(o, "--timeout \"%s\" is not a number of seconds "
                          "(0.1 to 86400)", o->timeout);
    }

    o->http_timeout_ms = (long) (s * 1000);
    o->wait_timeout_ms = o->http_timeout_ms;

    return 0;
}


int
momo_usage(const momo_opts_t *o, const char *fmt, ...)
{
    char     msg[1024];
    va_list  ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    if (o->json) {
        return momo_fail(o, MOMO_EXIT_USAGE, "USAGE", "%s", msg);
    }

    momo_eprintf("momo: %s\n", msg);

    if (momo_current != NULL) {
        momo_eprintf("see: momo %s --help\n", momo_current->name);
    } else {
        momo_eprintf("see: momo --help\n");
    }

    return MOMO_EXIT_USAGE;
}


static void
momo_help(FILE *f, const momo_command_t *cmd)
{
    char                   list[1024];
    size_t                 n;
    const momo_command_t  *c;

    if (cmd != NULL) {
        fputs(cmd->help, f);
        fputs("\nAlso: --json (one JSON object), --timeout S, --help.\n", f);
        return;
    }

    n = 0;
    list[0] = '\0';

    for (c = momo_commands; c->name != NULL && n < sizeof(list); c++) {
        n += snprintf(list + n, sizeof(list) - n, "  %-11s %s\n", c->name,
                      c->summary);
    }

    fprintf(f, momo_global_help, list);
}
