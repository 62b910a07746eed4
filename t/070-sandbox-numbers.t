# Every sandbox test number, paid through momo_pay and then read through
# momo_status: MTN's final status, its reason as a string (whether MTN
# sends a string or {code, message}), CREATED and PENDING as "pending".
#
# The status request must name the payment's reference id before the
# payment is made, so the payments carry an Idempotency-Key: the module
# derives the reference id from it (SPEC: "HMAC with the callback
# secret, UUID v4 format"), here HMAC-SHA256(momo_callback_secret,
# "API user|key"), first 16 bytes as a UUID v4.  TEST 1 checks that
# derivation on its own, so that a change to it shows there first.

use t::MomoTest;
use Digest::SHA qw(hmac_sha256);

plan 'no_plan';

our $Secret = $t::MomoTest::CallbackSecret;

add_block_preprocessor(sub {
    my $block = shift;

    if (!defined $block->http_config) {
        $block->set_value('http_config', $t::MomoTest::Account);
    }

    if (!defined $block->config) {
        $block->set_value('config', <<'_EOC_');
    location = /api/payments/mtn-momo {
        momo_pay;
    }

    location /api/payments/mtn-momo/status/ {
        momo_status;
    }
_EOC_
    }
});

our $Pending = qr/^\{"success": true, "payment_id": "[0-9a-f-]{36}", "reference_id": "[0-9a-f-]{36}", "status": "pending"/;

sub ref_of ($) {
    my $key = shift;
    my @b = unpack 'C16',
            hmac_sha256("$t::MomoTest::ApiUser|$key", $Secret);

    $b[6] = ($b[6] & 0x0f) | 0x40;
    $b[8] = ($b[8] & 0x3f) | 0x80;

    my $h = unpack 'H*', pack 'C16', @b;

    return join '-', substr($h, 0, 8), substr($h, 8, 4), substr($h, 12, 4),
                     substr($h, 16, 4), substr($h, 20, 12);
}

# the payment to $phone with Idempotency-Key "pay-$phone", then its status
sub pay_then_status ($) {
    my $phone = shift;
    return ["POST /api/payments/mtn-momo\n"
                . t::MomoTest::pay_json(phone => $phone),
            "GET /api/payments/mtn-momo/status/" . ref_of("pay-$phone")];
}

sub headers_for ($) {
    my $phone = shift;
    return ["Content-Type: application/json\nIdempotency-Key: pay-$phone\n",
            ""];
}

# the status answer, exactly
sub status_json ($$;$$) {
    my ($phone, $status, $reason, $fin) = @_;
    my $ref = ref_of("pay-$phone");

    $reason = defined $reason ? qq{"$reason"} : 'null';
    $fin = defined $fin ? $fin : 'null';

    return qr/\A\{"success": true, "reference_id": "$ref", "status": "$status", "amount": "100", "currency": "EUR", "external_id": "order-1", "financial_transaction_id": $fin, "reason": $reason\}\n\z/;
}

run_tests();

__DATA__

=== TEST 1: with an Idempotency-Key the reference id is HMAC(secret, user|key) as a UUID v4
--- more_headers
Content-Type: application/json
Idempotency-Key: pay-56733123453
--- request eval
"POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json()
--- response_body_like eval
my $ref = ::ref_of('pay-56733123453');
qr/^\{"success": true, "payment_id": "$ref", "reference_id": "$ref", "status": "pending"/



=== TEST 2: 46733123450 ends failed with INTERNAL_PROCESSING_ERROR
--- more_headers eval
::headers_for('46733123450')
--- request eval
::pay_then_status('46733123450')
--- response_body_like eval
[$::Pending, ::status_json('46733123450', 'failed', 'INTERNAL_PROCESSING_ERROR')]



=== TEST 3: 46733123451 ends failed with APPROVAL_REJECTED
--- more_headers eval
::headers_for('46733123451')
--- request eval
::pay_then_status('46733123451')
--- response_body_like eval
[$::Pending, ::status_json('46733123451', 'failed', 'APPROVAL_REJECTED')]



=== TEST 4: 46733123452 ends failed with EXPIRED
--- more_headers eval
::headers_for('46733123452')
--- request eval
::pay_then_status('46733123452')
--- response_body_like eval
[$::Pending, ::status_json('46733123452', 'failed', 'EXPIRED')]



=== TEST 5: 46733123453 stays pending while MTN says PENDING
--- init
t::MomoTest::emu_post('/_emu/config', '{"pending_seconds": 600}');
--- more_headers eval
::headers_for('46733123453')
--- request eval
::pay_then_status('46733123453')
--- response_body_like eval
[$::Pending, ::status_json('46733123453', 'pending')]



=== TEST 6: 46733123454, which MTN keeps CREATED, is pending
--- more_headers eval
::headers_for('46733123454')
--- request eval
::pay_then_status('46733123454')
--- response_body_like eval
[$::Pending, ::status_json('46733123454', 'pending')]



=== TEST 7: 56733123453 ends successful with MTN's financial transaction id
--- more_headers eval
::headers_for('56733123453')
--- request eval
::pay_then_status('56733123453')
--- response_body_like eval
[$::Pending, ::status_json('56733123453', 'successful', undef, '"\d{10}"')]



=== TEST 8: 46733123453 goes from pending to successful once MTN says so
--- init
t::MomoTest::emu_post('/_emu/config', '{"pending_seconds": 1}');
t::MomoTest::emu_post('/_emu/faults',
                      '{"path": "/_emu/sink/wait", "delay_ms": 1500}');
--- more_headers eval
[@{ ::headers_for('46733123453') }, "", ""]
--- request eval
[@{ ::pay_then_status('46733123453') }, "GET /emu/sink/wait",
 ::pay_then_status('46733123453')->[1]]
--- response_body_like eval
[$::Pending, ::status_json('46733123453', 'pending'), '"ok"',
 ::status_json('46733123453', 'successful', undef, '"\d{10}"')]



=== TEST 9: a reason MTN sends as {code, message} is answered as its code
--- init
t::MomoTest::emu_post('/_emu/config', '{"reason_format": "object"}');
--- more_headers eval
[@{ ::headers_for('46733123451') }, ""]
--- request eval
[@{ ::pay_then_status('46733123451') },
 "GET /emu/payments/" . ::ref_of('pay-46733123451')]
--- response_body_like eval
[$::Pending, ::status_json('46733123451', 'failed', 'APPROVAL_REJECTED'),
 qr/"reason":\{"code":"APPROVAL_REJECTED","message":"[^"]+"\}/]



=== TEST 10: a reference id MTN does not know is 404 NOT_FOUND
--- request eval
["GET /api/payments/mtn-momo/status/0b9c5149-7721-4507-ab78-3ac9271b2b81",
 "GET /emu/count?path=/collection/v1_0/requesttopay/"]
--- error_code eval
[404, 200]
--- response_body eval
[qq{{"success": false, "error": {"code": "NOT_FOUND", "message": "MTN has no payment with this reference id", "retryable": false}, "reference_id": "0b9c5149-7721-4507-ab78-3ac9271b2b81"}\n},
 "1"]



=== TEST 11: a reference id that is not a UUID is 400, and MTN is not asked
--- request eval
["GET /api/payments/mtn-momo/status/not-a-uuid",
 "GET /api/payments/mtn-momo/status/0b9c5149-7721-4507-ab78-3ac9271b2b8",
 "GET /api/payments/mtn-momo/status/0b9c5149x7721-4507-ab78-3ac9271b2b81",
 "GET /api/payments/mtn-momo/status/",
 "GET /emu/count?path=/collection"]
--- error_code eval
[400, 400, 400, 400, 200]
--- response_body_like eval
[('^\{"success": false, "error": \{"code": "INVALID_REFERENCE_ID", "message": "[^"]+", "retryable": false\}\}$') x 4, '^0$']



=== TEST 12: an uppercase reference id reads the same payment
--- more_headers eval
[@{ ::headers_for('46733123450') }]
--- request eval
my $r = ::pay_then_status('46733123450');
$r->[1] = uc($r->[1]) =~ s{^GET /API/PAYMENTS/MTN-MOMO/STATUS/}{GET /api/payments/mtn-momo/status/}r;
$r
--- response_body_like eval
[$::Pending, ::status_json('46733123450', 'failed', 'INTERNAL_PROCESSING_ERROR')]
