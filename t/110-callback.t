# momo_callback end to end: the emulator (MTN) calls the X-Callback-Url the
# module gave it; the application learns the outcome once through
# momo_notify (the emulator's sink).  The answers, MTN's request log and the
# callback deliveries go through t::MomoFlow::canon: every UUID becomes
# REF1, REF2... in the order the block first shows it, logs become one line
# per entry, JSON objects get sorted keys.

use t::MomoTest;
use t::MomoFlow;

plan 'no_plan';

run_tests();

__DATA__

=== TEST 1: a callback from the emulator leads to exactly one notify with the final status
--- config
    momo_notify /_app/notify;

    location = /api/payments/mtn-momo {
        momo_pay;
    }

    location /api/payments/mtn-momo/status/ {
        momo_status;
    }

    location /api/payments/mtn-momo/callback/ {
        momo_callback;
    }
--- more_headers
Content-Type: application/json
--- request eval
["POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(),
 "GET /emu/callbacks",
 "GET /emu/requests"]
--- wait: 0.5
--- response_body_filters eval
\&t::MomoFlow::canon
--- response_body eval
[qq{{"success": true, "payment_id": "REF1", "reference_id": "REF1", "status": "pending", "message": "Payment request sent to customer's mobile phone"}\n},
qq{callback POST -> 200 {"success":true}\n},
qq{POST /collection/token/
POST /collection/v1_0/requesttopay ref=REF1
GET /collection/v1_0/requesttopay/REF1
POST /_emu/sink/notify {"amount":"100","currency":"EUR","external_id":"order-1","financial_transaction_id":"FIN","kind":"payment","reason":null,"reference_id":"REF1","status":"successful"}
}]



=== TEST 2: a callback delivered twice is answered 200 twice and notifies once
--- init
# the duplicate comes once the first is verified and notified (300 ms
# later; 3 s under valgrind, where that takes more than a second)
t::MomoTest::emu_post('/_emu/config', '{"callback_duplicate": true, '
    . '"callback_duplicate_delay_ms": ' . t::MomoHttp::slow(300) . '}');
--- config
    momo_notify /_app/notify;

    location = /api/payments/mtn-momo {
        momo_pay;
    }

    location /api/payments/mtn-momo/callback/ {
        momo_callback;
    }

    location = /metrics {
        momo_metrics;
    }
--- more_headers
Content-Type: application/json
--- request eval
["POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(phone => '46733123451'),
 "GET /emu/callbacks",
 "GET /emu/requests",
 "GET /metrics"]
--- wait: 0.8
--- response_body_filters eval
\&t::MomoFlow::canon
--- response_body_like eval
[qr/"reference_id": "REF1", "status": "pending"/,
qr/^callback POST -> 200 \{"success":true\}
callback POST -> 200 \{"success":true\}
$/,
qr{^POST /collection/token/
POST /collection/v1_0/requesttopay ref=REF1
GET /collection/v1_0/requesttopay/REF1
POST /_emu/sink/notify \{"amount":"100","currency":"EUR","external_id":"order-1","financial_transaction_id":null,"kind":"payment","reason":"APPROVAL_REJECTED","reference_id":"REF1","status":"failed"\}
$},
qr/\nmomo_callbacks_total\{result="accepted"\} 1\nmomo_callbacks_total\{result="duplicate"\} 1\n.*\nmomo_notify_total\{result="ok"\} 1\nmomo_notify_total\{result="failed"\} 0\n/s]



=== TEST 3: a callback by PUT is accepted like one by POST
--- init
t::MomoTest::emu_post('/_emu/config', '{"callback_method": "PUT"}');
--- config
    momo_notify /_app/notify;

    location = /api/payments/mtn-momo {
        momo_pay;
    }

    location /api/payments/mtn-momo/callback/ {
        momo_callback;
    }
--- more_headers
Content-Type: application/json
--- request eval
["POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(phone => '46733123452'),
 "GET /emu/callbacks",
 "GET /emu/requests"]
--- wait: 0.5
--- response_body_filters eval
\&t::MomoFlow::canon
--- response_body_like eval
[qr/"reference_id": "REF1", "status": "pending"/,
qr/^callback PUT -> 200 \{"success":true\}\n$/,
qr{^POST /collection/token/
POST /collection/v1_0/requesttopay ref=REF1
GET /collection/v1_0/requesttopay/REF1
POST /_emu/sink/notify \{"amount":"100","currency":"EUR","external_id":"order-1","financial_transaction_id":null,"kind":"payment","reason":"EXPIRED","reference_id":"REF1","status":"failed"\}
$}]



=== TEST 4: a callback with a tampered token is refused with 403: no status query, no notify
MTN calls /forge/{ref}/{token}, which passes the callback on with the
token replaced.
--- config
    momo_notify /_app/notify;
    momo_callback_url http://127.0.0.1:$TEST_NGINX_SERVER_PORT/forge;

    location = /api/payments/mtn-momo {
        momo_pay;
    }

    location /api/payments/mtn-momo/callback/ {
        momo_callback;
    }

    location ~ ^/forge/(?<ref>[^/]+)/(?<token>[^/]+)$ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/api/payments/mtn-momo/callback/$ref/0123456789abcdef0123456789abcdef;
    }
--- more_headers
Content-Type: application/json
--- request eval
["POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(),
 "GET /emu/callbacks",
 "GET /emu/requests"]
--- wait: 0.5
--- response_body_filters eval
\&t::MomoFlow::canon
--- response_body_like eval
[qr/"reference_id": "REF1", "status": "pending"/,
qr/^callback POST -> 403 \{"error":\{"code":"FORBIDDEN",[^\n]*\},"success":false\}\n$/,
qr{^POST /collection/token/
POST /collection/v1_0/requesttopay ref=REF1
$}]
--- no_error_log
[error]



=== TEST 5: a genuine token on another reference is refused with 403: no status query, no notify
The other payment is known to MTN and to the zone, pending there but
final at MTN, so that a callback believed for it would query and notify.
MTN calls /forge/{ref}/{token}, which passes the callback on for the other
reference with the genuine token.
--- init
t::MomoFlow::mtn_pay(ref => t::MomoFlow::fixed_ref(1), phone => '46733123454');
--- config
    momo_notify /_app/notify;
    momo_callback_url http://127.0.0.1:$TEST_NGINX_SERVER_PORT/forge;

    location = /api/payments/mtn-momo {
        momo_pay;
    }

    location /api/payments/mtn-momo/status/ {
        momo_status;
    }

    location /api/payments/mtn-momo/callback/ {
        momo_callback;
    }

    location ~ ^/forge/(?<ref>[^/]+)/(?<token>[^/]+)$ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/api/payments/mtn-momo/callback/00000001-0000-4000-8000-000000000001/$token;
    }
--- more_headers
Content-Type: application/json
--- request eval
["GET /api/payments/mtn-momo/status/00000001-0000-4000-8000-000000000001",
 qq{POST /emu/payments/00000001-0000-4000-8000-000000000001/status\n{"status": "SUCCESSFUL", "callback": false}},
 "POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(),
 "GET /emu/callbacks",
 "GET /emu/requests"]
--- wait: 0.5
--- response_body_filters eval
\&t::MomoFlow::canon
--- response_body_like eval
[qr/"reference_id": "00000001-0000-4000-8000-000000000001", "status": "pending"/,
qr/"status":"SUCCESSFUL"/,
qr/"reference_id": "REF1", "status": "pending"/,
qr/^callback POST -> 403 \{"error":\{"code":"FORBIDDEN",[^\n]*\},"success":false\}\n$/,
qr{^POST /collection/token/
POST /collection/v1_0/requesttopay ref=00000001-0000-4000-8000-000000000001
POST /collection/token/
GET /collection/v1_0/requesttopay/00000001-0000-4000-8000-000000000001
POST /collection/v1_0/requesttopay ref=REF1
$}]
--- no_error_log
[error]



=== TEST 6: a callback URL without a valid reference and token is refused with 403
--- config
    momo_notify /_app/notify;

    location /api/payments/mtn-momo/callback/ {
        momo_callback;
    }
--- more_headers
Content-Type: application/json
--- request eval
[qq{POST /api/payments/mtn-momo/callback/\n{"status": "SUCCESSFUL"}},
 qq{POST /api/payments/mtn-momo/callback/00000002-0000-4000-8000-000000000002\n{"status": "SUCCESSFUL"}},
 qq{PUT /api/payments/mtn-momo/callback/00000002-0000-4000-8000-000000000002/0123456789abcdef\n{"status": "SUCCESSFUL"}},
 qq{POST /api/payments/mtn-momo/callback/not-a-uuid/0123456789abcdef0123456789abcdef\n{"status": "SUCCESSFUL"}},
 qq{POST /api/payments/mtn-momo/callback/00000002-0000-4000-8000-000000000002/0123456789abcdef0123456789abcdef\n{"status": "SUCCESSFUL"}},
 "GET /emu/count?path=/"]
--- error_code eval
[403, 403, 403, 403, 403, 200]
--- response_body_like eval
[qr/^\{"success": false, "error": \{"code": "FORBIDDEN"/,
qr/^\{"success": false, "error": \{"code": "FORBIDDEN"/,
qr/^\{"success": false, "error": \{"code": "FORBIDDEN"/,
qr/^\{"success": false, "error": \{"code": "FORBIDDEN"/,
qr/^\{"success": false, "error": \{"code": "FORBIDDEN"/,
qr/^0$/]



=== TEST 7: a callback body that is not JSON is answered 400 and changes nothing
--- init
t::MomoTest::emu_post('/_emu/config', '{"callback_body": "status=SUCCESSFUL"}');
--- config
    momo_notify /_app/notify;

    location = /api/payments/mtn-momo {
        momo_pay;
    }

    location /api/payments/mtn-momo/callback/ {
        momo_callback;
    }
--- more_headers
Content-Type: application/json
--- request eval
["POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(),
 "GET /emu/callbacks",
 "GET /emu/requests"]
--- wait: 0.5
--- response_body_filters eval
\&t::MomoFlow::canon
--- response_body_like eval
[qr/"reference_id": "REF1", "status": "pending"/,
qr/^callback POST -> 400 \{"error":\{"code":"INVALID_JSON",[^\n]*\},"reference_id":"REF1","success":false\}\n$/,
qr{^POST /collection/token/
POST /collection/v1_0/requesttopay ref=REF1
$}]



=== TEST 8: with verification on, a callback body claiming SUCCESSFUL for a payment MTN reports FAILED notifies FAILED
--- init
t::MomoTest::emu_post('/_emu/config', '{"callback_body": {"externalId": "order-1", "amount": "100", "currency": "EUR", "financialTransactionId": "7777777777", "status": "SUCCESSFUL"}}');
--- config
    momo_notify /_app/notify;

    location = /api/payments/mtn-momo {
        momo_pay;
    }

    location /api/payments/mtn-momo/callback/ {
        momo_callback;
    }
--- more_headers
Content-Type: application/json
--- request eval
["POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(phone => '46733123450'),
 "GET /emu/callbacks",
 "GET /emu/requests"]
--- wait: 0.5
--- response_body_filters eval
\&t::MomoFlow::canon
--- response_body_like eval
[qr/"reference_id": "REF1", "status": "pending"/,
qr/^callback POST -> 200 \{"success":true\}\n$/,
qr{^POST /collection/token/
POST /collection/v1_0/requesttopay ref=REF1
GET /collection/v1_0/requesttopay/REF1
POST /_emu/sink/notify \{"amount":"100","currency":"EUR","external_id":"order-1","financial_transaction_id":null,"kind":"payment","reason":"INTERNAL_PROCESSING_ERROR","reference_id":"REF1","status":"failed"\}
$}]



=== TEST 9: with momo_callback_verify off, the callback body is the outcome
--- init
t::MomoTest::emu_post('/_emu/config', '{"callback_body": {"externalId": "order-1", "amount": "100", "currency": "EUR", "financialTransactionId": "7777777777", "status": "SUCCESSFUL"}}');
--- config
    momo_notify /_app/notify;

    location = /api/payments/mtn-momo {
        momo_pay;
    }

    location /api/payments/mtn-momo/callback/ {
        momo_callback_verify off;
        momo_callback;
    }
--- more_headers
Content-Type: application/json
--- request eval
["POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(phone => '46733123450'),
 "GET /emu/callbacks",
 "GET /emu/requests"]
--- wait: 0.5
--- response_body_filters eval
\&t::MomoFlow::canon
--- response_body_like eval
[qr/"reference_id": "REF1", "status": "pending"/,
qr/^callback POST -> 200 \{"success":true\}\n$/,
qr{^POST /collection/token/
POST /collection/v1_0/requesttopay ref=REF1
POST /_emu/sink/notify \{"amount":"100","currency":"EUR","external_id":"order-1","financial_transaction_id":"FIN","kind":"payment","reason":null,"reference_id":"REF1","status":"successful"\}
$}]



=== TEST 10: GET on the callback location is 405 with Allow: POST, PUT
--- config
    momo_notify /_app/notify;

    location /api/payments/mtn-momo/callback/ {
        momo_callback;
    }
--- request
GET /api/payments/mtn-momo/callback/00000002-0000-4000-8000-000000000002/0123456789abcdef0123456789abcdef
--- error_code: 405
--- response_headers
Allow: POST, PUT
Content-Type: application/json
--- response_body_like: ^\{"success": false, "error": \{"code": "METHOD_NOT_ALLOWED",



=== TEST 11: the callback is answered at once when the verification is slow, and the notify follows
MTN's status answer takes 2.5 s; the emulator gives up on a callback after
2 s (callback_timeout_ms), so a 200 means nginx answered first (under
valgrind it gives nginx 20 s: the block shows only the answer and the
notify that follows).
--- init
t::MomoTest::emu_post('/_emu/faults', '{"method": "GET", "path": "/collection/v1_0/requesttopay/", "delay_ms": 2500, "times": 1}');
--- config
    momo_notify /_app/notify;

    location = /api/payments/mtn-momo {
        momo_pay;
    }

    location /api/payments/mtn-momo/callback/ {
        momo_callback;
    }
--- more_headers
Content-Type: application/json
--- request eval
["POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(),
 "GET /emu/callbacks",
 "GET /emu/requests"]
--- wait: 1.6
--- timeout: 5
--- response_body_filters eval
\&t::MomoFlow::canon
--- response_body_like eval
[qr/"reference_id": "REF1", "status": "pending"/,
qr/^callback POST -> 200 \{"success":true\}\n$/,
qr{^POST /collection/token/
POST /collection/v1_0/requesttopay ref=REF1
GET /collection/v1_0/requesttopay/REF1
POST /_emu/sink/notify \{"amount":"100","currency":"EUR","external_id":"order-1","financial_transaction_id":"FIN","kind":"payment","reason":null,"reference_id":"REF1","status":"successful"\}
$}]



=== TEST 12: a callback that MTN's status does not confirm yet notifies nothing; the next one that it confirms notifies once
MTN has been seen to call back with a final status while its status
query still says PENDING (momo-api.md, section 5): the first
verification here gets PENDING; the duplicate callback's verification
obeys the once-a-second limit per reference, and the recheck two seconds
later gets the truth.
--- init
t::MomoTest::emu_post('/_emu/config', '{"callback_duplicate": true}');
t::MomoTest::emu_post('/_emu/faults', '{"method": "GET", "path": "/collection/v1_0/requesttopay/", "status": 200, "content_type": "application/json", "body": "{\"externalId\":\"order-1\",\"amount\":\"100\",\"currency\":\"EUR\",\"payer\":{\"partyIdType\":\"MSISDN\",\"partyId\":\"56733123453\"},\"status\":\"PENDING\"}", "times": 1}');
--- config
    momo_notify /_app/notify;

    location = /api/payments/mtn-momo {
        momo_pay;
    }

    location /api/payments/mtn-momo/callback/ {
        momo_callback;
    }
--- more_headers
Content-Type: application/json
--- request eval
["POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(),
 "GET /emu/callbacks",
 "GET /emu/requests"]
--- wait: 3
--- response_body_filters eval
\&t::MomoFlow::canon
--- response_body_like eval
[qr/"reference_id": "REF1", "status": "pending"/,
qr/^callback POST -> 200 \{"success":true\}\ncallback POST -> 200 \{"success":true\}\n$/,
qr{^POST /collection/token/
POST /collection/v1_0/requesttopay ref=REF1
GET /collection/v1_0/requesttopay/REF1
GET /collection/v1_0/requesttopay/REF1
POST /_emu/sink/notify \{"amount":"100","currency":"EUR","external_id":"order-1","financial_transaction_id":"FIN","kind":"payment","reason":null,"reference_id":"REF1","status":"successful"\}
$}]



=== TEST 13: a callback that MTN's status does not confirm yet is checked again, and the outcome notified without another callback
The first verification gets PENDING; with no second callback, the
module asks MTN again two seconds later and notifies the final status.
--- init
t::MomoTest::emu_post('/_emu/faults', '{"method": "GET", "path": "/collection/v1_0/requesttopay/", "status": 200, "content_type": "application/json", "body": "{\"externalId\":\"order-1\",\"amount\":\"100\",\"currency\":\"EUR\",\"payer\":{\"partyIdType\":\"MSISDN\",\"partyId\":\"56733123453\"},\"status\":\"PENDING\"}", "times": 1}');
--- config
    momo_notify /_app/notify;

    location = /api/payments/mtn-momo {
        momo_pay;
    }

    location /api/payments/mtn-momo/callback/ {
        momo_callback;
    }
--- more_headers
Content-Type: application/json
--- request eval
["POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(),
 "GET /emu/callbacks",
 "GET /emu/requests"]
--- wait: 1.5
--- response_body_filters eval
\&t::MomoFlow::canon
--- response_body_like eval
[qr/"reference_id": "REF1", "status": "pending"/,
qr/^callback POST -> 200 \{"success":true\}\n$/,
qr{^POST /collection/token/
POST /collection/v1_0/requesttopay ref=REF1
GET /collection/v1_0/requesttopay/REF1
GET /collection/v1_0/requesttopay/REF1
POST /_emu/sink/notify \{"amount":"100","currency":"EUR","external_id":"order-1","financial_transaction_id":"FIN","kind":"payment","reason":null,"reference_id":"REF1","status":"successful"\}
$}]
