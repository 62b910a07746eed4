# MTN's Disbursement product: its own API user, API key and subscription
# key (directives or MTN_MOMO_DISBURSEMENT_* in the .env), its own token
# in the zone, its own internal locations, and "nginx -t" errors that
# name what is missing; momo_balance of each product.

use t::MomoTest;
use t::MomoFlow;

plan 'no_plan';

our $Both = $t::MomoTest::Account . $t::MomoTest::Disbursement;

run_tests();

__DATA__

=== TEST 1: momo_refund without the Disbursement API user does not start, naming the directive and the .env key
--- config
    location = /refunds {
        momo_refund;
    }
--- must_die
--- error_log eval
[qr/the momo handler at \S+:\d+ needs "momo_disbursement_api_user" \(or MTN_MOMO_DISBURSEMENT_API_USER_ID in a momo_env_file\)/, '[emerg]']



=== TEST 2: a missing Disbursement subscription key is named too
--- http_config eval
$t::MomoTest::Account . ($t::MomoTest::Disbursement =~ s/\s*momo_disbursement_subscription_key \w+;//r)
--- config
    location = /payouts {
        momo_payout;
    }
--- must_die
--- error_log eval
[qr/needs "momo_disbursement_subscription_key" \(or MTN_MOMO_DISBURSEMENT_SUBSCRIPTION_KEY in a momo_env_file\)/]



=== TEST 3: a payout in a server without the Disbursement internal locations does not start, naming the leg
--- http_config eval: $::Both
--- config
    # no momo_locations
    location = /_momo/token {
        internal;
        momo_leg token;
        proxy_pass $momo_leg_url;
    }

    location = /payouts {
        momo_payout;
    }
--- must_die
--- error_log eval
[qr/a momo handler is used in a server that has no internal location with "momo_leg disbursement": add "include \/etc\/nginx\/momo\/momo_locations\.conf;"/]



=== TEST 4: momo_balance takes a product name
--- http_config eval: $::Both
--- config
    location = /balance {
        momo_balance remittance;
    }
--- must_die
--- error_log eval
[qr/momo_balance "remittance" is unknown: use "collection" or "disbursement"/]



=== TEST 5: a Disbursement API user that is not a UUID does not start
--- http_config eval
$t::MomoTest::Account . ($t::MomoTest::Disbursement =~ s/momo_disbursement_api_user \S+;/momo_disbursement_api_user disb-user;/r)
--- config
    location = /payouts {
        momo_payout;
    }
--- must_die
--- error_log eval
[qr/momo_disbursement_api_user "disb-user" is not a UUID/]



=== TEST 6: the balance of each product, each with its own token, key and credentials
--- http_config eval: $::Both
--- config
    location = /balance/collection {
        momo_balance collection;
    }

    location = /balance/disbursement {
        momo_balance disbursement;
    }
--- request eval
["GET /balance/collection",
 "GET /balance/disbursement",
 "GET /balance/disbursement",
 "GET /balance/collection",
 "GET /emu/requests"]
--- response_body_filters eval
[[], [], [], [], [\&t::MomoFlow::canon]]
--- response_body eval
[qq{{"success": true, "product": "collection", "available_balance": "1000", "currency": "EUR"}\n},
 qq{{"success": true, "product": "disbursement", "available_balance": "1000000", "currency": "EUR"}\n},
 qq{{"success": true, "product": "disbursement", "available_balance": "1000000", "currency": "EUR"}\n},
 qq{{"success": true, "product": "collection", "available_balance": "1000", "currency": "EUR"}\n},
 "POST /collection/token/
GET /collection/v1_0/account/balance
POST /disbursement/token/
GET /disbursement/v1_0/account/balance
GET /disbursement/v1_0/account/balance
GET /collection/v1_0/account/balance
"]



=== TEST 7: each product's calls carry its own subscription key and Basic credentials
--- http_config eval: $::Both
--- config
    location = /balance/collection {
        momo_balance collection;
    }

    location = /balance/disbursement {
        momo_balance disbursement;
    }
--- request eval
["GET /balance/disbursement",
 "GET /balance/collection",
 "GET /emu/requests?path=/disbursement/token/",
 "GET /emu/requests?path=/collection/token/"]
--- response_body_like eval
['"available_balance": "1000000"',
 '"available_balance": "1000"',
 '"Authorization":"Basic M2Q3YjllMTUtNmEyYy00ZjQ4LThiOTAtYzFlNWE3ZDNmMjYwOjllOGQ3YzZiNWE0ZjNlMmQxYzBiOWE4ZjdlNmQ1YzRi".*"Ocp-Apim-Subscription-Key":"f0e1d2c3b4a5968778695a4b3c2d1e0f"',
 '"Authorization":"Basic NmYxYzNhNTItOGQ0ZS00YjdhLTljMjEtM2U1ZjdhOWIwZDE0OjJmOWQ4YzdiNmE1ZTRkM2MyYjFhMGY5ZThkN2M2YjVh".*"Ocp-Apim-Subscription-Key":"a1b2c3d4e5f60718293a4b5c6d7e8f90"']



=== TEST 8: the Disbursement keys from a momo_env_file
--- user_files
>>> ../conf/disb.env
# Disbursement, from momo provision
MTN_MOMO_DISBURSEMENT_API_USER_ID="3d7b9e15-6a2c-4f48-8b90-c1e5a7d3f260"
MTN_MOMO_DISBURSEMENT_API_KEY="9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b"
MTN_MOMO_DISBURSEMENT_SUBSCRIPTION_KEY='f0e1d2c3b4a5968778695a4b3c2d1e0f'
--- http_config eval
$t::MomoTest::Account . "    momo_env_file disb.env;\n"
--- config
    location = /balance/disbursement {
        momo_balance disbursement;
    }
--- request
GET /balance/disbursement
--- response_body
{"success": true, "product": "disbursement", "available_balance": "1000000", "currency": "EUR"}



=== TEST 9: a wrong Disbursement API key is 502 UPSTREAM_AUTH_FAILED, the error log naming the Disbursement directives
--- http_config eval
$t::MomoTest::Account . ($t::MomoTest::Disbursement =~ s/momo_disbursement_api_key \w+/momo_disbursement_api_key 0123456789abcdef0123456789abcdef/r)
--- config
    location = /balance/disbursement {
        momo_balance disbursement;
    }
--- request
GET /balance/disbursement
--- error_code: 502
--- response_body_like: ^\{"success": false, "error": \{"code": "UPSTREAM_AUTH_FAILED", "message": "MTN refused the gateway's credentials; nothing was charged", "retryable": false\}\}
--- error_log eval
[qr/\[error\] .*MTN refused the credentials of API user "3d7b9e15-6a2c-4f48-8b90-c1e5a7d3f260" for environment "sandbox" \(HTTP 500, error "login_failed"\): check momo_disbursement_api_user, momo_disbursement_api_key and momo_target_environment \(disbursement product\)/]



=== TEST 10: the Collections subscription key given as the Disbursement one is diagnosed as a subscription key problem
--- http_config eval
$t::MomoTest::Account . ($t::MomoTest::Disbursement =~ s/momo_disbursement_subscription_key \w+/momo_disbursement_subscription_key $t::MomoTest::SubscriptionKey/r)
--- config
    location = /balance/disbursement {
        momo_balance disbursement;
    }
--- request
GET /balance/disbursement
--- error_code: 502
--- response_body_like: "UPSTREAM_AUTH_FAILED"
--- error_log eval
[qr/\[error\] .*MTN refused the subscription key \(HTTP 401 with statusCode 401\): check momo_disbursement_subscription_key, it must be the disbursement product key/]
