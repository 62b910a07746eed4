# momo_notify: the application (the emulator's sink) learns each final
# outcome once.  A failed notify (non-2xx or timeout) is logged, counted
# and sent again after the momo_notify_retry backoff (by the sweeping
# worker's timer, or the payment's next event once the backoff is over),
# and never again once it succeeded.  The error log is checked as a whole
# after each request of a block (check_accum_error_log).

use t::MomoTest;
use t::MomoFlow;

check_accum_error_log();

plan 'no_plan';

our $Ref = t::MomoFlow::fixed_ref(0x150);
our $Ref2 = t::MomoFlow::fixed_ref(0x151);
our $Retry = "    momo_notify_retry 200ms 1s 1h;\n";

run_tests();

__DATA__

=== TEST 1: a notify answered 500 is logged, counted, sent again after the backoff, then never again
--- http_config eval
$t::MomoTest::Account . $main::Retry
--- init
t::MomoFlow::mtn_pay(ref => $main::Ref, external_id => 'order-150');
t::MomoTest::emu_post('/_emu/faults', '{"path": "/_emu/sink/notify", "status": 500, "times": 1}');
--- config
    momo_notify /_app/notify;

    location /api/payments/mtn-momo/status/ {
        momo_status;
    }

    location = /metrics {
        momo_metrics;
    }
--- request eval
["GET /api/payments/mtn-momo/status/$main::Ref",
 "GET /emu/wait?path=/_emu/sink/notify&count=2&timeout_ms=10000",
 "GET /api/payments/mtn-momo/status/$main::Ref",
 "GET /api/payments/mtn-momo/status/$main::Ref",
 "GET /api/payments/mtn-momo/status/$main::Ref",
 "GET /emu/requests?path=/_emu/sink/notify",
 "GET /metrics"]
--- wait: 0.3
--- timeout: 12
--- response_body_filters eval
\&t::MomoFlow::canon
--- response_body_like eval
[qr/"status": "successful"/,
 qr/^2$/,
 qr/"status": "successful"/,
 qr/"status": "successful"/,
 qr/"status": "successful"/,
 qr{^POST /_emu/sink/notify \{"amount":"100","currency":"EUR","external_id":"order-150","financial_transaction_id":"FIN","kind":"payment","reason":null,"reference_id":"00000150-0000-4000-8000-000000000150","status":"successful"\}
POST /_emu/sink/notify \{"amount":"100","currency":"EUR","external_id":"order-150","financial_transaction_id":"FIN","kind":"payment","reason":null,"reference_id":"00000150-0000-4000-8000-000000000150","status":"successful"\}
$},
 qr/\nmomo_notify_total\{result="ok"\} 1\nmomo_notify_total\{result="failed"\} 1\n/]
--- error_log eval
qr/\[error\] .*momo: notify "\/_app\/notify" of payment "00000150-0000-4000-8000-000000000150" failed \(HTTP 500\b/



=== TEST 2: a notify that times out is logged, counted, and sent again after the backoff
The application answers after 1.5 s; the notify location waits 1 s.
--- http_config eval
$t::MomoTest::Account . $main::Retry
--- init
t::MomoFlow::mtn_pay(ref => $main::Ref2, phone => '46733123452', external_id => 'order-151');
t::MomoTest::emu_post('/_emu/faults', '{"path": "/_emu/sink/notify", "delay_ms": 1500, "times": 1}');
t::MomoFlow::sleep_fault(300);
--- config
    momo_notify /_app/notify_1s;

    location = /_app/notify_1s {
        internal;
        proxy_read_timeout 1s;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOMO_EMU_PORT/_emu/sink/notify;
    }

    location /api/payments/mtn-momo/status/ {
        momo_status;
    }

    location = /metrics {
        momo_metrics;
    }
--- request eval
["GET /api/payments/mtn-momo/status/$main::Ref2",
 "GET /emu/wait?path=/_emu/sink/notify&count=2&timeout_ms=10000",
 "GET /emu/sink/sleep/300",
 "GET /api/payments/mtn-momo/status/$main::Ref2",
 "GET /api/payments/mtn-momo/status/$main::Ref2",
 "GET /emu/requests?path=/_emu/sink/notify",
 "GET /metrics"]
--- wait: 0.2
--- timeout: 12
--- response_body_filters eval
\&t::MomoFlow::canon
--- response_body_like eval
[qr/"status": "failed", .*"reason": "EXPIRED"/,
 qr/^2$/,
 qr/^\{"ok":true\}$/,
 qr/"status": "failed"/,
 qr/"status": "failed"/,
 qr{^POST /_emu/sink/notify \{"amount":"100","currency":"EUR","external_id":"order-151","financial_transaction_id":null,"kind":"payment","reason":"EXPIRED","reference_id":"00000151-0000-4000-8000-000000000151","status":"failed"\}
POST /_emu/sink/notify \{"amount":"100","currency":"EUR","external_id":"order-151","financial_transaction_id":null,"kind":"payment","reason":"EXPIRED","reference_id":"00000151-0000-4000-8000-000000000151","status":"failed"\}
$},
 qr/\nmomo_notify_total\{result="ok"\} 1\nmomo_notify_total\{result="failed"\} 1\n/]
--- error_log eval
qr/\[error\] .*momo: notify "\/_app\/notify_1s" of payment "00000151-0000-4000-8000-000000000151" failed \(HTTP 0, nginx code 504\)/



=== TEST 3: a notify that failed after a callback is sent again once, not once per duplicate callback
--- http_config eval
$t::MomoTest::Account . $main::Retry
--- init
t::MomoTest::emu_post('/_emu/config', '{"callback_duplicate": true}');
t::MomoTest::emu_post('/_emu/faults', '{"path": "/_emu/sink/notify", "status": 503, "times": 1}');
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
["POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(external_id => 'order-152'),
 "GET /emu/wait?path=/_emu/sink/notify&count=2&timeout_ms=10000",
 "GET /emu/callbacks",
 "GET /emu/requests",
 "GET /metrics"]
--- wait: 0.6
--- timeout: 12
--- response_body_filters eval
\&t::MomoFlow::canon
--- response_body_like eval
[qr/"reference_id": "REF1", "status": "pending"/,
 qr/^2$/,
 qr/^callback POST -> 200 \{"success":true\}\ncallback POST -> 200 \{"success":true\}\n$/,
 qr{^POST /collection/token/
POST /collection/v1_0/requesttopay ref=REF1
GET /collection/v1_0/requesttopay/REF1
POST /_emu/sink/notify \{"amount":"100","currency":"EUR","external_id":"order-152","financial_transaction_id":"FIN","kind":"payment","reason":null,"reference_id":"REF1","status":"successful"\}
POST /_emu/sink/notify \{"amount":"100","currency":"EUR","external_id":"order-152","financial_transaction_id":"FIN","kind":"payment","reason":null,"reference_id":"REF1","status":"successful"\}
$},
 qr/\nmomo_notify_total\{result="ok"\} 1\nmomo_notify_total\{result="failed"\} 1\n/]
--- error_log eval
qr/\[error\] .*momo: notify "\/_app\/notify" of payment "[0-9a-f-]{36}" failed \(HTTP 503\b/
