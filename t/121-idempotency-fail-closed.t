# Idempotency that fails closed.  When nothing proves the payment an
# Idempotency-Key stands for (no record in the zone, MTN answers 409 and
# its status cannot be read), the answer is a retryable 503 and nothing is
# written; the honest retry then gets its payment.  A key whose first
# request is in flight is 409, a key reused with another payload 422 (the
# IETF Idempotency-Key draft); two requests of one key with two amounts
# never leave the loser's amount behind; a retry answers MTN's current
# status.  Answers and logs go through t::MomoFlow::canon (REF1...).

use t::MomoTest;
use t::MomoFlow;
use JSON::PP qw(decode_json);
use Time::HiRes qw(time sleep);

plan 'no_plan';

our $Pay = "POST /api/payments/mtn-momo\n";

# a payment's location, the key of the first blocks and canonical answers,
# for each block that has none of its own
t::MomoFlow::defaults(
    config => "    location = /api/payments/mtn-momo {\n        momo_pay;\n    }\n",
    more_headers => "Content-Type: application/json\n"
                    . "Idempotency-Key: booking-2001\n",
    response_body_filters => \&t::MomoFlow::canon);

# another amount, the honest payment, the other amount again, MTN's payments
our $FailOpenRequests = [
    $Pay . t::MomoTest::pay_json(amount => '250'),
    $Pay . t::MomoTest::pay_json(),
    $Pay . t::MomoTest::pay_json(amount => '250'),
    "GET /emu/payments"];

our $FailOpenAnswers = [
    qr/^\{"success": false, "error": \{"code": "IDEMPOTENCY_KEY_UNVERIFIED", "message": "[^"]+", "retryable": true\}, "reference_id": "REF1", "status": "unknown"\}\n$/,
    qr/^\{"success": true, "payment_id": "REF1", "reference_id": "REF1", "status": "successful", "message": "Payment request was already sent for this Idempotency-Key"\}\n$/,
    qr/^\{"success": false, "error": \{"code": "IDEMPOTENCY_KEY_REUSED", "message": "[^"]+", "retryable": false\}, "reference_id": "REF1"\}\n$/,
    qr/^payment REF1 SUCCESSFUL 100 EUR 56733123453\n$/];

# MTN has the payment another gateway (or this one before a restart) made
# with this key, for 100; its status query fails as the fault says
sub fail_open_init {
    my ($fault) = @_;
    t::MomoFlow::mtn_pay(ref => t::MomoFlow::prev_ref(1));
    t::MomoTest::emu_post('/_emu/faults', JSON::PP->new->encode({
        method => 'GET', path => '/collection/v1_0/requesttopay/',
        times => 1, %$fault }));
}

# two requests of one key at once, for 100 and 200, while no token is in
# the zone; '' when MTN's payment, the answers and the record agree
sub race_round {
    my ($i) = @_;
    my @amounts = ('100', '200');

    my $res = t::MomoFlow::burst_post('/api/payments/mtn-momo',
        ["race-$i", "race-$i"],
        [map { t::MomoTest::pay_json(amount => $_) } @amounts]);

    my @st = map { $_ ? $_->[0] : 0 } @$res[0, 1];
    my @won = grep { $st[$_] == 200 } 0, 1;

    return "round $i: answers @st" if @won != 1;

    my $w = $won[0];
    my $l = 1 - $w;
    my ($ref) = $res->[$w][1] =~ /"reference_id": "([^"]+)"/;

    return "round $i: the other request got $st[$l]"
        unless $st[$l] == 409 || $st[$l] == 422;

    my @mtn = grep { lc $_->{referenceId} eq lc $ref }
              @{ decode_json(t::MomoTest::emu_get('/_emu/payments')) };

    return "round $i: MTN has " . scalar(@mtn) . " payments" if @mtn != 1;
    return "round $i: MTN took $mtn[0]{amount}, the 200 was for $amounts[$w]"
        if $mtn[0]{amount} ne $amounts[$w];

    my $again = t::MomoHttp::pay(idempotency_key => "race-$i",
                                 amount => $amounts[$w]);
    return "round $i: the retry of the payment MTN took got $again->{status}"
        if $again->{status} != 200;

    $again = t::MomoHttp::pay(idempotency_key => "race-$i",
                              amount => $amounts[$l]);
    return "round $i: the retry of the other amount got $again->{status}"
        if $again->{status} != 422;

    return '';
}

run_tests();

__DATA__

=== TEST 1: a payment with an Idempotency-Key on one gateway
The next blocks go on from here with a new zone each (nginx restarts), as
another gateway with the same configuration, or this one after a restart.
--- request eval
["POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json()]
--- response_body_like eval
[qr/^\{"success": true, "payment_id": "REF1", "reference_id": "REF1", "status": "pending", /]



=== TEST 2: MTN's 409 and a status query answered 500: another amount is refused retryably and not recorded, the honest retry gets its payment
--- init
::fail_open_init({ status => 500, body => { code => 'INTERNAL_PROCESSING_ERROR', message => 'An internal error occurred while processing.' } });
--- request eval
$::FailOpenRequests
--- error_code eval
[503, 200, 422, 200]
--- response_headers eval
["Retry-After: 1", "", "", ""]
--- response_body_like eval
$::FailOpenAnswers



=== TEST 3: MTN's 409 and a status query answered 404: the same
--- init
::fail_open_init({ status => 404, body => { code => 'RESOURCE_NOT_FOUND', message => 'Requested resource was not found.' } });
--- request eval
$::FailOpenRequests
--- error_code eval
[503, 200, 422, 200]
--- response_body_like eval
$::FailOpenAnswers



=== TEST 4: MTN's 409 and a status query that times out: the same
The status answer takes 4 s, the read timeout is 3 s.
--- init
::fail_open_init({ delay_ms => 4000 });
--- request eval
$::FailOpenRequests
--- timeout: 8
--- error_code eval
[503, 200, 422, 200]
--- response_body_like eval
$::FailOpenAnswers



=== TEST 5: MTN's 409 and a status query whose connection is closed without an answer: the same
--- init
::fail_open_init({ drop => JSON::PP::true });
--- request eval
$::FailOpenRequests
--- error_code eval
[503, 200, 422, 200]
--- response_body_like eval
$::FailOpenAnswers



=== TEST 6: two requests of one key with two amounts at once, with no token in the zone, never leave the loser's amount in the record
Tokens live 1 s, so each round starts without one; 8 rounds, each with
its own key, on two workers.
--- init
t::MomoTest::emu_post('/_emu/config', '{"token_ttl": 1}');
my @bad;
for my $i (1 .. 8) {
    my $t = time;
    sleep(int($t) + 1.05 - $t);
    my $why = ::race_round($i);
    push @bad, $why if $why ne '';
}
Test::More::is(join('; ', @bad), '',
               "$0 TEST 6: 8 rounds of two amounts at once - the payment MTN took is the one answered 200 and the one the record keeps");
--- request eval
["GET /emu/count?path=/collection/v1_0/requesttopay&method=POST"]
--- response_body_like eval
[qr/^(?:[8-9]|1[0-6])$/]



=== TEST 7: a key whose first request is with MTN is 409 IDEMPOTENCY_KEY_IN_FLIGHT, whatever the payload; afterwards another payload is 422
MTN takes 1.5 s to answer the first request.
--- init
t::MomoTest::emu_post('/_emu/faults', '{"method": "POST", "path": "/collection/v1_0/requesttopay", "delay_ms": 1500, "times": 1}');
my $first = t::MomoHttp::start_pay(idempotency_key => 'booking-2007');
Test::More::ok(t::MomoHttp::wait_for(sub {
    (t::MomoTest::emu_get('/_emu/count?path=/collection/v1_0/requesttopay&method=POST') // '') eq '1'
}, 10), "$0 TEST 7: the first request reached MTN");
my $same = t::MomoHttp::pay(idempotency_key => 'booking-2007');
my $other = t::MomoHttp::pay(idempotency_key => 'booking-2007', amount => '300');
my $res = t::MomoHttp::finish($first, 10);
Test::More::is($res->{status}, 200, "$0 TEST 7: the first request gets its payment");
for ([$same, 'the same payment'], [$other, 'another amount']) {
    my ($r, $what) = @$_;
    Test::More::is($r->{status}, 409, "$0 TEST 7: $what while the first is in flight - 409");
    Test::More::like($r->{body}, qr/^\{"success": false, "error": \{"code": "IDEMPOTENCY_KEY_IN_FLIGHT", "message": "[^"]+", "retryable": true\}, "reference_id": "[0-9a-f-]{36}"\}\n$/,
                     "$0 TEST 7: $what while the first is in flight - IDEMPOTENCY_KEY_IN_FLIGHT");
    Test::More::is($r->{headers}{'retry-after'}, '1', "$0 TEST 7: $what while the first is in flight - Retry-After");
}
--- more_headers
Content-Type: application/json
Idempotency-Key: booking-2007
--- request eval
["POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(amount => '300'),
 "POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(),
 "GET /emu/requests?path=/collection/v1_0/requesttopay&method=POST"]
--- error_code eval
[422, 200, 200]
--- response_body_like eval
[qr/^\{"success": false, "error": \{"code": "IDEMPOTENCY_KEY_REUSED", "message": "[^"]+", "retryable": false\}, "reference_id": "REF1"\}\n$/,
 qr/^\{"success": true, "payment_id": "REF1", "reference_id": "REF1", "status": "successful", "message": "Payment request was already sent for this Idempotency-Key"\}\n$/,
 qr{^POST /collection/v1_0/requesttopay ref=REF1\n$}]



=== TEST 8: a retry answers MTN's current status: pending while it is, failed once MTN says FAILED, asked at most once a second
The payer's number stays pending at MTN until the test makes the payment
FAILED (without a callback); more than a second after the first retry's
query, the next retry asks MTN again, and the one after it is answered
from the zone, where the status is final.
--- init
t::MomoFlow::sleep_fault(1100);
--- more_headers
Content-Type: application/json
Idempotency-Key: booking-2008
--- request eval
["POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(phone => '46733123453'),
 "POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(phone => '46733123453'),
 "POST /emu/payments/" . t::MomoFlow::key_ref('booking-2008') . "/status\n"
     . '{"status": "FAILED", "reason": "APPROVAL_REJECTED", "callback": false}',
 "GET /emu/sink/sleep/1100",
 "POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(phone => '46733123453'),
 "POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(phone => '46733123453'),
 "GET /emu/requests?path=/collection/v1_0/requesttopay"]
--- response_body_like eval
[qr/^\{"success": true, "payment_id": "REF1", "reference_id": "REF1", "status": "pending", "message": "Payment request sent to customer's mobile phone"\}\n$/,
 qr/^\{"success": true, "payment_id": "REF1", "reference_id": "REF1", "status": "pending", "message": "Payment request was already sent for this Idempotency-Key"\}\n$/,
 qr/"status": ?"FAILED"/,
 qr/^\{"ok":true\}$/,
 qr/^\{"success": true, "payment_id": "REF1", "reference_id": "REF1", "status": "failed", "message": "Payment request was already sent for this Idempotency-Key"\}\n$/,
 qr/^\{"success": true, "payment_id": "REF1", "reference_id": "REF1", "status": "failed", "message": "Payment request was already sent for this Idempotency-Key"\}\n$/,
 qr{^POST /collection/v1_0/requesttopay ref=REF1
GET /collection/v1_0/requesttopay/REF1
GET /collection/v1_0/requesttopay/REF1
$}]



=== TEST 9: the status checks after MTN's 409 draw on momo_status_rate: over it, a retryable 503 with the reference id, and nothing is written
MTN has six payments made with six keys (by another gateway, or by this
one before a restart); their six retries come at once, with
momo_status_rate 1.  In any second MTN sees one status query; the retries
it was not asked for get STATUS_RATE_LIMITED, and one of them, a second
later, its payment.
--- init
my @keys = map { "rate-$_" } 1 .. 6;
t::MomoFlow::mtn_pay(ref => t::MomoFlow::key_ref($_)) for @keys;
my $res = t::MomoFlow::burst_post('/api/payments/mtn-momo', \@keys,
                                   t::MomoTest::pay_json());
my (@ok, @limited);
for my $i (0 .. 5) {
    my ($st, $body) = @{ $res->[$i] || [0, ''] };
    my $ref = t::MomoFlow::key_ref($keys[$i]);
    if ($st == 200 && $body =~ /"reference_id": "$ref", "status": "successful", "message": "Payment request was already sent/) {
        push @ok, $i;
    } elsif ($st == 503 && $body =~ /^\{"success": false, "error": \{"code": "STATUS_RATE_LIMITED", "message": "[^"]+", "retryable": true\}, "reference_id": "$ref", "status": "unknown"\}\n$/) {
        push @limited, $i;
    } else {
        Test::More::diag("retry $i: $st $body");
    }
}
Test::More::is(@ok + @limited, 6, "$0 TEST 9: each retry is its payment or STATUS_RATE_LIMITED");
Test::More::cmp_ok(scalar @limited, '>=', 1, "$0 TEST 9: some retries were over the budget");
Test::More::is(t::MomoTest::emu_get('/_emu/count?path=/collection/v1_0/requesttopay/&method=GET'),
               scalar @ok, "$0 TEST 9: MTN was asked the status of the payments answered only");
Time::HiRes::sleep(1.2);
my $again = t::MomoHttp::pay(idempotency_key => $keys[$limited[0] // 0]);
Test::More::is($again->{status}, 200, "$0 TEST 9: a second later, a refused retry gets its payment");
--- config
    momo_status_rate 1;

    location = /api/payments/mtn-momo {
        momo_pay;
    }
--- request
GET /emu/rate?path=/collection/v1_0/requesttopay/&method=GET&window_ms=1000
--- response_body: 1
