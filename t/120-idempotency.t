# Idempotent payments end to end: with an Idempotency-Key the reference id
# is derived from the key, so that a retry reaches MTN with the same
# X-Reference-Id and cannot charge twice.  Answers and MTN's request log go
# through t::MomoFlow::canon (REF1, REF2... for the UUIDs in the order the
# block first shows them; one line per logged request).

use t::MomoTest;
use t::MomoFlow;

plan 'no_plan';

run_tests();

__DATA__

=== TEST 1: a retried payment with the same Idempotency-Key gets the same reference id and MTN's current status, and MTN sees it once
The emulator's payment is final at once: the first retry asks MTN for its
status (the zone knew it pending), the second one is answered from the
zone, where the status is final.
--- config
    location = /api/payments/mtn-momo {
        momo_pay;
    }
--- more_headers
Content-Type: application/json
Idempotency-Key: booking-1001
--- request eval
["POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(),
 "POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(),
 "POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(),
 "GET /emu/requests?path=/collection/v1_0/requesttopay"]
--- response_body_filters eval
\&t::MomoFlow::canon
--- response_body eval
[qq{{"success": true, "payment_id": "REF1", "reference_id": "REF1", "status": "pending", "message": "Payment request sent to customer's mobile phone"}\n},
qq{{"success": true, "payment_id": "REF1", "reference_id": "REF1", "status": "successful", "message": "Payment request was already sent for this Idempotency-Key"}\n},
qq{{"success": true, "payment_id": "REF1", "reference_id": "REF1", "status": "successful", "message": "Payment request was already sent for this Idempotency-Key"}\n},
"POST /collection/v1_0/requesttopay ref=REF1\nGET /collection/v1_0/requesttopay/REF1\n"]



=== TEST 2: a retry after a timeout reaches MTN with the same reference id, and MTN has one payment
MTN takes 4 s to answer the first attempt (the test read timeout is 3 s):
the client gets 504 with the reference id and an unknown status, retries
at once and gets the payment; the first attempt reaches MTN's back end
after the retry and gets 409, too late for anyone to see.
--- init
t::MomoTest::emu_post('/_emu/faults', '{"method": "POST", "path": "/collection/v1_0/requesttopay", "delay_ms": 4000, "times": 1}');
t::MomoFlow::sleep_fault(1500);
--- config
    location = /api/payments/mtn-momo {
        momo_pay;
    }
--- more_headers
Content-Type: application/json
Idempotency-Key: booking-1002
--- request eval
["POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(),
 "POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(),
 "GET /emu/sink/sleep/1500",
 "GET /emu/requests?path=/collection/v1_0/requesttopay",
 "GET /emu/payments"]
--- timeout: 6
--- error_code eval
[504, 200, 200, 200, 200]
--- response_body_filters eval
\&t::MomoFlow::canon
--- response_body_like eval
[qr/^\{"success": false, "error": \{"code": "UPSTREAM_TIMEOUT", "message": "[^"]+", "retryable": true\}, "reference_id": "REF1", "status": "unknown"\}\n$/,
qr/^\{"success": true, "payment_id": "REF1", "reference_id": "REF1", "status": "pending", /,
qr/^\{"ok":true\}$/,
qr{^POST /collection/v1_0/requesttopay ref=REF1
POST /collection/v1_0/requesttopay ref=REF1
$},
qr/^payment REF1 SUCCESSFUL 100 EUR 56733123453\n$/]



=== TEST 3: a retry after MTN took the timed-out attempt gets MTN's 409 and is answered with MTN's status
--- init
t::MomoTest::emu_post('/_emu/faults', '{"method": "POST", "path": "/collection/v1_0/requesttopay", "delay_ms": 4000, "times": 1}');
t::MomoFlow::sleep_fault(1500);
--- config
    location = /api/payments/mtn-momo {
        momo_pay;
    }
--- more_headers
Content-Type: application/json
Idempotency-Key: booking-1003
--- request eval
["POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(),
 "GET /emu/sink/sleep/1500",
 "POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(),
 "GET /emu/requests?path=/collection/v1_0/requesttopay",
 "GET /emu/payments"]
--- timeout: 6
--- error_code eval
[504, 200, 200, 200, 200]
--- response_body_filters eval
\&t::MomoFlow::canon
--- response_body_like eval
[qr/^\{"success": false, "error": \{"code": "UPSTREAM_TIMEOUT", .*"reference_id": "REF1", "status": "unknown"\}\n$/,
qr/^\{"ok":true\}$/,
qr/^\{"success": true, "payment_id": "REF1", "reference_id": "REF1", "status": "successful", "message": "Payment request was already sent for this Idempotency-Key"\}\n$/,
qr{^POST /collection/v1_0/requesttopay ref=REF1
POST /collection/v1_0/requesttopay ref=REF1
GET /collection/v1_0/requesttopay/REF1
$},
qr/^payment REF1 SUCCESSFUL 100 EUR 56733123453\n$/]



=== TEST 4: the same Idempotency-Key with another amount or phone is 422 IDEMPOTENCY_KEY_REUSED
--- config
    location = /api/payments/mtn-momo {
        momo_pay;
    }
--- more_headers
Content-Type: application/json
Idempotency-Key: booking-1004
--- request eval
["POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(),
 "POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(amount => '200'),
 "POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(phone => '56733123499'),
 "POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(),
 "GET /emu/requests?path=/collection/v1_0/requesttopay"]
--- error_code eval
[200, 422, 422, 200, 200]
--- response_body_filters eval
\&t::MomoFlow::canon
--- response_body_like eval
[qr/^\{"success": true, "payment_id": "REF1", "reference_id": "REF1", "status": "pending", /,
qr/^\{"success": false, "error": \{"code": "IDEMPOTENCY_KEY_REUSED", "message": "[^"]+", "retryable": false\}, "reference_id": "REF1"\}\n$/,
qr/^\{"success": false, "error": \{"code": "IDEMPOTENCY_KEY_REUSED", "message": "[^"]+", "retryable": false\}, "reference_id": "REF1"\}\n$/,
qr/^\{"success": true, "payment_id": "REF1", "reference_id": "REF1", "status": "successful", /,
qr{^POST /collection/v1_0/requesttopay ref=REF1
GET /collection/v1_0/requesttopay/REF1
$}]



=== TEST 5: the same Idempotency-Key from 8 clients at once gets one reference id, and MTN one payment
While the first request is with MTN, the others are answered 409
IDEMPOTENCY_KEY_IN_FLIGHT (retryable), the IETF Idempotency-Key draft's
answer; those that come after it get the payment.
--- init
my $body = t::MomoTest::pay_json();
my $res = t::MomoFlow::burst(8, 8, sub {
    "POST /api/payments/mtn-momo HTTP/1.1\r\nHost: localhost\r\n"
    . "Content-Type: application/json\r\nIdempotency-Key: booking-1009\r\n"
    . "Content-Length: " . length($body) . "\r\n\r\n$body"
});
my %refs = map { $_ && $_->[1] =~ /"reference_id": "([^"]+)"/ ? ($1 => 1) : () } @$res;
my $ok = grep { $_ && $_->[0] == 200 } @$res;
my $busy = grep { $_ && $_->[0] == 409
                  && $_->[1] =~ /"code": "IDEMPOTENCY_KEY_IN_FLIGHT", "message": "[^"]+", "retryable": true/ } @$res;
Test::More::ok($ok >= 1 && $ok + $busy == 8,
               "$0 TEST 5: 8 clients at once with one key - 8 answers 200 or 409 in flight, one 200 at least ($ok, $busy)");
Test::More::is(scalar(keys %refs), 1,
               "$0 TEST 5: 8 clients at once with one key - one reference id in the 8 answers");
--- config
    location = /api/payments/mtn-momo {
        momo_pay;
    }
--- request eval
["GET /emu/requests?path=/collection/v1_0/requesttopay&method=POST",
 "GET /emu/payments"]
--- response_body_filters eval
\&t::MomoFlow::canon
--- response_body_like eval
[qr{^(POST /collection/v1_0/requesttopay ref=REF1\n)+$},
 qr/^payment REF1 SUCCESSFUL 100 EUR 56733123453\n$/]



=== TEST 6: a payment with an Idempotency-Key on one gateway
The next blocks go on from here: they restart nginx, so their zone is new,
as on another machine with the same configuration.
--- config
    location = /api/payments/mtn-momo {
        momo_pay;
    }
--- more_headers
Content-Type: application/json
Idempotency-Key: booking-1005
--- request eval
["POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(),
 "GET /emu/requests?path=/collection/v1_0/requesttopay"]
--- response_body_filters eval
\&t::MomoFlow::canon
--- response_body_like eval
[qr/^\{"success": true, "payment_id": "REF1", "reference_id": "REF1", "status": "pending", /,
qr{^POST /collection/v1_0/requesttopay ref=REF1
$}]



=== TEST 7: the same Idempotency-Key on another gateway reaches MTN with the same reference id and is answered from MTN's 409
MTN still has the payment of the previous block (the emulator is reset
before each block, so init puts it back through MTN's API, with the
reference id the first gateway derived).
--- init
t::MomoFlow::mtn_pay(ref => t::MomoFlow::prev_ref(1), phone => '46733123451');
--- config
    location = /api/payments/mtn-momo {
        momo_pay;
    }
--- more_headers
Content-Type: application/json
Idempotency-Key: booking-1005
--- request eval
["POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(phone => '46733123451'),
 "GET /emu/requests?path=/collection/v1_0/requesttopay",
 "GET /emu/payments"]
--- response_body_filters eval
\&t::MomoFlow::canon
--- response_body_like eval
[qr/^\{"success": true, "payment_id": "REF1", "reference_id": "REF1", "status": "failed", "message": "Payment request was already sent for this Idempotency-Key"\}\n$/,
qr{^POST /collection/v1_0/requesttopay ref=REF1
POST /collection/v1_0/requesttopay ref=REF1
GET /collection/v1_0/requesttopay/REF1
$},
qr/^payment REF1 FAILED 100 EUR 46733123451\n$/]



=== TEST 8: the same Idempotency-Key on another gateway with another amount is 422 IDEMPOTENCY_KEY_REUSED
MTN has the payment of the first gateway (for 100); this gateway learns
the amount from MTN's status after MTN's 409.
--- init
t::MomoFlow::mtn_pay(ref => t::MomoFlow::prev_ref(1), phone => '46733123451');
--- config
    location = /api/payments/mtn-momo {
        momo_pay;
    }
--- more_headers
Content-Type: application/json
Idempotency-Key: booking-1005
--- request eval
["POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(phone => '46733123451', amount => '250'),
 "GET /emu/requests?path=/collection/v1_0/requesttopay",
 "GET /emu/payments"]
--- error_code eval
[422, 200, 200]
--- response_body_filters eval
\&t::MomoFlow::canon
--- response_body_like eval
[qr/^\{"success": false, "error": \{"code": "IDEMPOTENCY_KEY_REUSED", "message": "[^"]+", "retryable": false\}, "reference_id": "REF1"\}\n$/,
qr{^POST /collection/v1_0/requesttopay ref=REF1
POST /collection/v1_0/requesttopay ref=REF1
GET /collection/v1_0/requesttopay/REF1
$},
qr/^payment REF1 FAILED 100 EUR 46733123451\n$/]



=== TEST 9: without an Idempotency-Key two identical payments get two reference ids
--- config
    location = /api/payments/mtn-momo {
        momo_pay;
    }
--- more_headers
Content-Type: application/json
--- request eval
["POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(),
 "POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(),
 "GET /emu/requests?path=/collection/v1_0/requesttopay"]
--- response_body_filters eval
\&t::MomoFlow::canon
--- response_body_like eval
[qr/^\{"success": true, "payment_id": "REF1", "reference_id": "REF1", "status": "pending", /,
qr/^\{"success": true, "payment_id": "REF2", "reference_id": "REF2", "status": "pending", /,
qr{^POST /collection/v1_0/requesttopay ref=REF1
POST /collection/v1_0/requesttopay ref=REF2
$}]
