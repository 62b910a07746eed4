# "nginx -t" refuses what could only fail later, with a message naming
# the directive; momo_env_file supplies the account, and explicit
# directives win over it.

use t::MomoTest;
use t::MomoFlow;

plan 'no_plan';

our $Pay = <<'_EOC_';
    location = /api/payments/mtn-momo {
        momo_pay;
    }
_EOC_

# the default account without one directive, or with one replaced
sub account_without ($) {
    my $d = shift;
    return $t::MomoTest::Account =~ s/^\s*$d .*\n//mr;
}

sub account_with ($$) {
    my ($d, $v) = @_;
    return $t::MomoTest::Account =~ s/^(\s*$d) .*;$/$1 $v;/mr;
}

# the .env of the default account (the emulator's)
sub env_file () {
    return <<"_EOE_";
# the emulator's account
MTN_MOMO_API_USER_ID="$t::MomoTest::ApiUser"
MTN_MOMO_API_KEY="$t::MomoTest::ApiKey"
MTN_MOMO_SUBSCRIPTION_KEY="$t::MomoTest::SubscriptionKey"
MTN_MOMO_TARGET_ENVIRONMENT="sandbox"
MTN_MOMO_BASE_URL="http://127.0.0.1:\$TEST_NGINX_MOMO_EMU_PORT"
MTN_MOMO_CALLBACK_URL="http://127.0.0.1:\$TEST_NGINX_SERVER_PORT/api/payments/mtn-momo/callback"
MTN_MOMO_CALLBACK_SECRET="$t::MomoTest::CallbackSecret"
_EOE_
}

add_block_preprocessor(sub {
    my $block = shift;

    if (!defined $block->config) {
        $block->set_value('config', $Pay);
    }
});

run_tests();

__DATA__

=== TEST 1: momo_pay without momo_api_key does not start, naming the directive
--- http_config eval
::account_without('momo_api_key')
--- must_die
--- error_log
[emerg]
needs "momo_api_key" (or MTN_MOMO_API_KEY in a momo_env_file)



=== TEST 2: momo_pay without momo_api_user does not start
--- http_config eval
::account_without('momo_api_user')
--- must_die
--- error_log
[emerg]
needs "momo_api_user" (or MTN_MOMO_API_USER_ID in a momo_env_file)



=== TEST 3: momo_status without momo_subscription_key does not start
--- http_config eval
::account_without('momo_subscription_key')
--- config
    location /api/payments/mtn-momo/status/ {
        momo_status;
    }
--- must_die
--- error_log
[emerg]
needs "momo_subscription_key" (or MTN_MOMO_SUBSCRIPTION_KEY in a momo_env_file)



=== TEST 4: an API user that is not a UUID does not start
--- http_config eval
::account_with('momo_api_user', 'my-api-user')
--- must_die
--- error_log
[emerg]
momo_api_user "my-api-user" is not a UUID



=== TEST 5: a base URL without http(s) does not start
--- http_config eval
::account_with('momo_base_url', 'ftp://sandbox.momodeveloper.mtn.com')
--- must_die
--- error_log
[emerg]
momo_base_url "ftp://sandbox.momodeveloper.mtn.com" is not a valid URL



=== TEST 6: a base URL without a host does not start
--- http_config eval
::account_with('momo_base_url', 'https:///collection')
--- must_die
--- error_log
[emerg]
momo_base_url "https:///collection" is not a valid URL



=== TEST 7: a callback URL with a query string does not start
--- http_config eval
::account_with('momo_callback_url', 'https://shop.example/cb?x=1')
--- must_die
--- error_log
[emerg]
momo_callback_url "https://shop.example/cb?x=1" is not a valid URL



=== TEST 8: an unknown momo_leg does not start
--- config
    # no momo_locations
    location = /_momo/balance {
        internal;
        momo_leg balance;
    }
--- must_die
--- error_log
[emerg]
momo_leg "balance" is unknown



=== TEST 9: momo_pay in a server without the shipped include does not start, naming the include
--- config
    # no momo_locations
    location = /api/payments/mtn-momo {
        momo_pay;
    }
--- must_die
--- error_log eval
[qr/a momo handler is used in a server that has no internal location with "momo_leg token": add "include \/etc\/nginx\/momo\/momo_locations\.conf;"/, '[emerg]']



=== TEST 10: a momo_zone size that is not a size does not start
--- http_config eval
::account_with('momo_zone', 'lots')
--- must_die
--- error_log
[emerg]
momo_zone "lots" is invalid



=== TEST 11: a momo_zone too small for the zone does not start
--- http_config eval
::account_with('momo_zone', '8k')
--- must_die
--- error_log
[emerg]
momo_zone "8k" is invalid



=== TEST 12: a missing momo_env_file does not start
--- http_config eval
::account_without('momo_api_key') . "    momo_env_file /nonexistent/momo.env;\n"
--- must_die
--- error_log
[emerg]
momo_env_file "/nonexistent/momo.env" cannot be opened



=== TEST 13: a malformed line in momo_env_file does not start, naming the line
--- user_files
>>> ../conf/momo.env
# comment
MTN_MOMO_API_KEY="2f9d8c7b6a5e4d3c2b1a0f9e8d7c6b5a"
MTN_MOMO_SUBSCRIPTION_KEY = a1b2 c3d4
--- http_config eval
::account_without('momo_api_key') . "    momo_env_file momo.env;\n"
--- must_die
--- error_log eval
[qr/momo_env_file ".*\/conf\/momo\.env", line 3: an unquoted value cannot contain blanks/, '[emerg]']



=== TEST 14: a value without its closing quote in momo_env_file does not start
--- user_files
>>> ../conf/momo.env
MTN_MOMO_API_KEY="2f9d8c7b6a5e4d3c2b1a0f9e8d7c6b5a
--- http_config eval
::account_without('momo_api_key') . "    momo_env_file momo.env;\n"
--- must_die
--- error_log eval
[qr/momo_env_file ".*\/conf\/momo\.env", line 1: the closing quote of the value is missing/, '[emerg]']



=== TEST 15: an environment without a known currency needs momo_currency
--- http_config eval
$t::MomoTest::Account . "    momo_target_environment mtnmars;\n"
--- must_die
--- error_log
[emerg]
momo_currency is needed for the target environment "mtnmars"



=== TEST 16: a currency that is not three letters does not start
--- http_config eval
$t::MomoTest::Account . "    momo_currency EURO;\n"
--- must_die
--- error_log
[emerg]
momo_currency "EURO" is invalid



=== TEST 17: a target environment with a space does not start
--- http_config eval
$t::MomoTest::Account . "    momo_target_environment \"mtn cameroon\";\n"
--- must_die
--- error_log
[emerg]
momo_target_environment "mtn cameroon" is invalid



=== TEST 18: two momo handlers in one location do not start
--- config
    location = /api/payments/mtn-momo {
        momo_pay;
        momo_status;
    }
--- must_die
--- error_log
[emerg]
"momo_status" directive is duplicate: one momo handler per location



=== TEST 19: momo_zone twice does not start
--- http_config eval
$t::MomoTest::Account . "    momo_zone 2m;\n"
--- must_die
--- error_log
[emerg]
"momo_zone" directive is duplicate



=== TEST 20: a momo_env_file alone supplies the whole account (path relative to the configuration directory)
--- user_files eval
[["../conf/momo.env", ::env_file()]]
--- http_config
    momo_env_file momo.env;
--- request eval
["POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(),
 "GET /emu/requests?path=/collection/token/"]
--- more_headers
Content-Type: application/json
--- response_body_like eval
['"status": "pending"',
 qr/"Ocp-Apim-Subscription-Key":"a1b2c3d4e5f60718293a4b5c6d7e8f90"/]



=== TEST 21: explicit directives win over momo_env_file
--- user_files eval
[["../conf/momo.env", ::env_file() =~ s/MTN_MOMO_API_KEY="\w+"/MTN_MOMO_API_KEY="00000000000000000000000000000000"/r
                                  =~ s/MTN_MOMO_BASE_URL="[^"]+"/MTN_MOMO_BASE_URL="http:\/\/127.0.0.1:1"/r]]
--- http_config eval
"    momo_env_file momo.env;\n"
. "    momo_api_key $t::MomoTest::ApiKey;\n"
. "    momo_base_url http://127.0.0.1:\$TEST_NGINX_MOMO_EMU_PORT;\n"
--- request eval
"POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json()
--- more_headers
Content-Type: application/json
--- response_body_like: "status": "pending"



=== TEST 22: a location's directive overrides the http level's momo_env_file
The location with the .env's wrong key goes first: a token fetched with the
right key would serve both, as they share API user and environment.
--- user_files eval
[["../conf/momo.env", ::env_file() =~ s/MTN_MOMO_API_KEY="\w+"/MTN_MOMO_API_KEY="00000000000000000000000000000000"/r]]
--- http_config
    momo_env_file momo.env;
--- config eval
"    location = /api/payments/mtn-momo {\n"
. "        momo_api_key $t::MomoTest::ApiKey;\n"
. "        momo_pay;\n"
. "    }\n"
. "    location = /api/payments/mtn-momo/http-level {\n"
. "        momo_pay;\n"
. "    }\n"
--- request eval
["POST /api/payments/mtn-momo/http-level\n" . t::MomoTest::pay_json(),
 "POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json()]
--- more_headers
Content-Type: application/json
--- error_code eval
[502, 200]
--- response_body_like eval
['"code": "UPSTREAM_AUTH_FAILED"', '"status": "pending"']



=== TEST 23: the .env's target environment and callback URL are used
--- user_files eval
[["../conf/momo.env", ::env_file() =~ s/MTN_MOMO_TARGET_ENVIRONMENT="sandbox"/MTN_MOMO_TARGET_ENVIRONMENT="mtncameroon"/r
                                  =~ s{/api/payments/mtn-momo/callback}{/momo/cb}r]]
--- http_config
    momo_env_file momo.env;
--- init
t::MomoTest::emu_post('/_emu/config',
    '{"target_environment": "mtncameroon", "currency": "XAF"}');
--- request eval
["POST /api/payments/mtn-momo\n"
     . t::MomoTest::pay_json(currency => 'XAF', phone => '237677123456'),
 "GET /emu/requests?path=/collection/v1_0/requesttopay"]
--- more_headers
Content-Type: application/json
--- response_body_like eval
['"status": "pending"',
 qr/"X-Target-Environment":"mtncameroon","X-Reference-Id":"[0-9a-f-]{36}","X-Callback-Url":"http:\/\/127\.0\.0\.1:\d+\/momo\/cb\//]



=== TEST 24: without momo_pay, momo_status or momo_callback no account is needed
--- http_config
    momo_zone 1m;
--- config
    location = /metrics {
        momo_metrics;
    }
--- request
GET /metrics
--- response_body_like: momo_payments_total



=== TEST 25: on MTN's 2026 platform (momo.africa) the base64 User ID of its system credentials is accepted
--- http_config eval
::account_with('momo_api_user', 'dXNlci1pZC1mcm9tLXBvcnRhbA==')
=~ s/momo_base_url \S+;/momo_base_url https:\/\/momoapi.momo.africa;/r
. "    resolver 127.0.0.1;\n"
--- config
    location = /api/payments/mtn-momo {
        momo_pay;
    }
--- request
GET /api/payments/mtn-momo
--- error_code: 405



=== TEST 26: elsewhere a base64 User ID is refused: MTN's legacy platforms take UUIDs
--- http_config eval
::account_with('momo_api_user', 'dXNlci1pZC1mcm9tLXBvcnRhbA==')
--- must_die
--- error_log
[emerg]
momo_api_user "dXNlci1pZC1mcm9tLXBvcnRhbA==" is not a UUID



=== TEST 27: an MTN host that is neither an upstream group nor resolvable does not start
Every call would fail at run time with "no resolver defined".
--- http_config eval
::account_with('momo_base_url', 'https://sandbox.momodeveloper.mtn.com')
--- config
    location = /api/payments/mtn-momo {
        momo_pay;
    }
--- must_die
--- error_log
[emerg]
momo_base_url "https://sandbox.momodeveloper.mtn.com" of the momo handler at
"include /etc/nginx/momo/momo_upstreams.conf;" to http{}, or a "resolver"



=== TEST 28: an upstream group named like the MTN host (momo_upstreams.conf) is enough
--- http_config eval
::account_with('momo_base_url', 'https://sandbox.momodeveloper.mtn.com')
. "    upstream sandbox.momodeveloper.mtn.com {\n"
. "        server 127.0.0.1:9;\n"
. "        keepalive 4;\n"
. "    }\n"
--- config
    location = /api/payments/mtn-momo {
        momo_pay;
    }
--- request
GET /api/payments/mtn-momo
--- error_code: 405



=== TEST 29: momo_pay without momo_callback_secret does not start, saying how to make one
The secret keys reference ids and callback URLs; derived from the API key,
it would change when the key is rotated.
--- http_config eval
::account_without('momo_callback_secret')
--- must_die
--- error_log
[emerg]
needs "momo_callback_secret" (or MTN_MOMO_CALLBACK_SECRET in a momo_env_file): it keys reference ids and callback URLs and must stay the same when the API key is rotated; make one with "openssl rand -hex 32"



=== TEST 30: momo_callback without momo_callback_secret does not start either
--- http_config eval
::account_without('momo_callback_secret')
--- config
    location /api/payments/mtn-momo/callback/ {
        momo_callback;
    }
--- must_die
--- error_log
[emerg]
needs "momo_callback_secret"



=== TEST 31: a callback secret shorter than 32 characters does not start
--- http_config eval
::account_with('momo_callback_secret', 'short-and-guessable')
--- must_die
--- error_log
[emerg]
momo_callback_secret is too short: give at least 32 characters



=== TEST 32: momo_status alone needs no callback secret
--- http_config eval
::account_without('momo_callback_secret')
--- config
    location /api/payments/mtn-momo/status/ {
        momo_status;
    }
--- request
GET /api/payments/mtn-momo/status/not-a-uuid
--- error_code: 400
--- response_body_like: "INVALID_REFERENCE_ID"



=== TEST 33: MTN_MOMO_CALLBACK_SECRET in the momo_env_file is the callback secret
The reference id of an Idempotency-Key is the HMAC of "user|key" with it.
--- user_files eval
[["../conf/momo.env", ::env_file() =~ s/MTN_MOMO_CALLBACK_SECRET="\w+"/MTN_MOMO_CALLBACK_SECRET="from-the-env-file-0123456789abcdef"/r]]
--- http_config
    momo_env_file momo.env;
--- more_headers
Content-Type: application/json
Idempotency-Key: env-secret-1
--- request eval
"POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json()
--- response_body_like eval
my $ref = t::MomoFlow::key_ref('env-secret-1',
                               'from-the-env-file-0123456789abcdef');
qr/"reference_id": "$ref"/
