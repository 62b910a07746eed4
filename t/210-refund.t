# Refunds end to end (momo_refund, MTN's /disbursement/v1_0/refund): a
# refund needs an Idempotency-Key and a payment known to be successful
# (from the zone, or else from MTN's status); the refunds of a payment
# never add up to more than it, even when sent at once to two workers;
# a refund is never sent twice, nor while an earlier try's outcome is
# unknown.  The steps run in "--- init" with the answers checked as they
# come; each block's last request shows MTN's side.

use t::MomoTest;
use t::MomoFlow;
use JSON::PP ();

plan 'no_plan';

our $Both = $t::MomoTest::Account . $t::MomoTest::Disbursement;

# TEST 6's server of its own
our $SpreadPort = t::MomoTest::free_port();

t::MomoFlow::defaults(http_config => $Both, config => <<'_EOC_');
    location = /api/payments/mtn-momo {
        momo_pay;
    }

    location /api/payments/mtn-momo/status/ {
        momo_status;
    }

    location = /api/refunds/mtn-momo {
        momo_refund;
        add_header X-Worker $pid always;
    }

    location /api/refunds/mtn-momo/status/ {
        momo_refund_status;
    }
_EOC_

sub port () { $ENV{TEST_NGINX_SERVER_PORT} }

sub refund_json (@) {
    my %f = (amount => '100', payer_message => 'Refund 1',
             payee_note => 'Refund 1', @_);
    return JSON::PP->new->canonical->encode(\%f);
}

# POST a refund: (status, body); key undef: no Idempotency-Key
sub refund ($@) {
    my ($key, %f) = @_;
    return t::MomoFlow::post_json('/api/refunds/mtn-momo', $key, refund_json(%f));
}

# a payment through momo_pay, its reference id
sub pay (@) {
    my ($st, $body) = t::MomoFlow::http(port(), 'POST',
        '/api/payments/mtn-momo', { 'Content-Type' => 'application/json' },
        t::MomoTest::pay_json(@_));
    die "payment: $st $body\n" unless $st == 200;
    return $body =~ /"reference_id": "([^"]+)"/ ? $1 : die "no ref: $body\n";
}

sub check { t::MomoFlow::check(@_) }

run_tests();

__DATA__

=== TEST 1: a full refund of a successful payment: MTN gets referenceIdToRefund, the refund becomes successful
--- init
my $ref = ::pay(amount => '100');
::check('TEST 1: full refund', [::refund('cancel-1', reference_id => $ref)], 200,
        qr/^\{"success": true, "refund_id": "([0-9a-f-]{36})", "reference_id": "\1", "payment_reference_id": "$ref", "status": "pending", "amount": "100", "currency": "EUR", "message": "Refund request sent to MTN"\}\n$/);
my ($st, $body) = t::MomoFlow::http(::port(), 'GET', '/emu/refunds');
my $rows = JSON::PP::decode_json($body);
Test::More::is(scalar @$rows, 1, "$0 TEST 1: MTN has one refund");
Test::More::is($rows->[0]{referenceIdToRefund}, $ref, "$0 TEST 1: of the payment");
($st, $body) = t::MomoFlow::http(::port(), 'GET', "/api/refunds/mtn-momo/status/$rows->[0]{referenceId}");
Test::More::like($body, qr/^\{"success": true, "reference_id": "$rows->[0]{referenceId}", "status": "successful", "amount": "100", "currency": "EUR", "external_id": "$ref", "financial_transaction_id": "\d+", "reason": null, "kind": "refund"\}\n$/,
                 "$0 TEST 1: the refund's status");
--- request
GET /emu/requests?path=/disbursement/
--- response_body_filters eval
\&t::MomoFlow::canon
--- response_body_like eval
qr{^POST /disbursement/token/
POST /disbursement/v1_0/refund ref=REF\d
GET /disbursement/v1_0/refund/REF\d
$}



=== TEST 2: partial refunds up to the payment; the one that would exceed it is refused before MTN sees it
--- init
my $ref = ::pay(amount => '100');
::check('TEST 2: 40 of 100', [::refund('part-1', reference_id => $ref, amount => '40')], 200, qr/"status": "pending", "amount": "40"/);
::check('TEST 2: 60 more', [::refund('part-2', reference_id => $ref, amount => '60')], 200, qr/"status": "pending", "amount": "60"/);
::check('TEST 2: 0.01 more', [::refund('part-3', reference_id => $ref, amount => '0.01')], 422,
        qr/^\{"success": false, "error": \{"code": "REFUND_EXCEEDS_PAYMENT", "message": "the refunds of this payment would exceed it: 0.00 EUR at most can still be refunded", "retryable": false\}, "reference_id": "[0-9a-f-]{36}"\}\n$/);
::check('TEST 2: the first again, same key', [::refund('part-1', reference_id => $ref, amount => '40')], 200,
        qr/"amount": "40", "currency": "EUR", "message": "Refund request was already sent for this Idempotency-Key"/);
--- request
GET /emu/requests?path=/disbursement/v1_0/refund&method=POST
--- response_body_filters eval
\&t::MomoFlow::canon
--- response_body_like eval
qr{^POST /disbursement/v1_0/refund ref=REF1
POST /disbursement/v1_0/refund ref=REF2
$}



=== TEST 3: a refund of a pending or a failed payment is refused; MTN sees no refund
--- init
my $pending = ::pay(phone => '46733123454');
my $failed = ::pay(phone => '46733123450');
::check('TEST 3: pending', [::refund('r-pending', reference_id => $pending)], 409,
        qr/^\{"success": false, "error": \{"code": "PAYMENT_NOT_SUCCESSFUL", "message": "the payment is not successful \(yet\): only a successful payment can be refunded", "retryable": false\}/);
::check('TEST 3: failed', [::refund('r-failed', reference_id => $failed)], 409,
        qr/"code": "PAYMENT_NOT_SUCCESSFUL", "message": "the payment failed: there is nothing to refund"/);
::check('TEST 3: unknown payment', [::refund('r-none', reference_id => t::MomoFlow::fixed_ref(3))], 404,
        qr/"code": "PAYMENT_NOT_FOUND"/);
--- request
GET /emu/count?path=/disbursement/v1_0/refund
--- response_body: 0



=== TEST 4: a payment the zone does not know is checked with MTN's status first
--- init
t::MomoFlow::mtn_pay(ref => t::MomoFlow::fixed_ref(4), amount => '250');
::check('TEST 4: refund', [::refund('other-gw', reference_id => t::MomoFlow::fixed_ref(4), amount => '250')], 200,
        qr/"payment_reference_id": "00000004-0000-4000-8000-000000000004", "status": "pending", "amount": "250"/);
::check('TEST 4: more', [::refund('other-gw-2', reference_id => t::MomoFlow::fixed_ref(4), amount => '1')], 422,
        qr/"REFUND_EXCEEDS_PAYMENT"/);
--- request
GET /emu/requests
--- response_body_filters eval
\&t::MomoFlow::canon
--- response_body_like eval
qr{^POST /collection/token/
POST /collection/v1_0/requesttopay ref=00000004-0000-4000-8000-000000000004
POST /collection/token/
GET /collection/v1_0/requesttopay/00000004-0000-4000-8000-000000000004
POST /disbursement/token/
POST /disbursement/v1_0/refund ref=REF1
$}



=== TEST 5: no Idempotency-Key, another currency, a bad reference id: 400; a key reused for another amount: 422
--- init
my $ref = ::pay(amount => '100');
::check('TEST 5: no key', [::refund(undef, reference_id => $ref)], 400,
        qr/^\{"success": false, "error": \{"code": "IDEMPOTENCY_KEY_REQUIRED", /);
::check('TEST 5: currency', [::refund('k5', reference_id => $ref, currency => 'XAF')], 400,
        qr/"code": "INVALID_CURRENCY", "message": "currency must be EUR"/);
::check('TEST 5: reference', [::refund('k5', reference_id => 'order-1')], 400,
        qr/"code": "INVALID_REFERENCE_ID"/);
::check('TEST 5: first', [::refund('k5', reference_id => $ref, amount => '10')], 200, qr/"status": "pending"/);
::check('TEST 5: reused', [::refund('k5', reference_id => $ref, amount => '20')], 422,
        qr/"code": "IDEMPOTENCY_KEY_REUSED"/);
--- request
GET /emu/count?path=/disbursement/v1_0/refund
--- response_body: 1



=== TEST 6: two partial refunds that would exceed the payment, sent at once to two workers: one goes to MTN, the other is refused
MTN takes 1 s to answer each refund, so that both requests are in flight
together.  They go to a server of their own that listens with reuseport:
one socket per worker, so that the kernel spreads the connections over
both workers whatever the event method does.  The rounds go on until the
two answers came from two worker processes (X-Worker), at most 20 rounds
(each round has even odds).
--- http_config eval
$::Both . <<"_EOC_";
    server {
        listen 127.0.0.1:$::SpreadPort reuseport;
        include \$TEST_NGINX_MOMO_LOCATIONS;

        location = /api/refunds/mtn-momo {
            momo_refund;
            add_header X-Worker \$pid always;
        }
    }
_EOC_
--- init
t::MomoTest::emu_post('/_emu/faults', '{"method": "POST", "path": "/disbursement/v1_0/refund", "delay_ms": 1000}');
my ($rounds, $two, @got) = (0, 0);
while ($rounds < 20 && !$two) {
    $rounds++;
    my $ref = ::pay(amount => '100');
    local $t::MomoHttp::Port = $::SpreadPort;
    my @socks = map {
        t::MomoHttp::start('POST', '/api/refunds/mtn-momo',
                           ::refund_json(reference_id => $ref, amount => '60'),
                           'Content-Type' => 'application/json',
                           'Idempotency-Key' => "race-$rounds-$_")
    } 1 .. 2;
    my @res = map { t::MomoHttp::finish($_, 10) } @socks;
    push @got, join ' ', sort map { $_->{status} } @res;
    Test::More::diag(join "\n", map { $_->{body} } @res)
        if $got[-1] ne '200 422';
    $two = ($res[0]{headers}{'x-worker'} // 0) != ($res[1]{headers}{'x-worker'} // 0);
}
Test::More::is(join(', ', @got), join(', ', ('200 422') x $rounds),
               "$0 TEST 6: every round took one refund of 60 and refused the other");
Test::More::ok($two, "$0 TEST 6: two workers answered ($rounds rounds)");
my ($st, $n) = t::MomoFlow::http(::port(), 'GET', '/emu/count?path=/disbursement/v1_0/refund&method=POST');
Test::More::is($n, $rounds, "$0 TEST 6: MTN got one refund per round");
--- request
GET /emu/refunds
--- response_body_unlike: "amount":"120"
--- timeout: 30



=== TEST 7: the same refund retried 5 times with one key after a timeout makes one MTN refund
MTN answers the first try after 4 s (the read timeout is 3 s): 504, the
outcome unknown.  The retries ask MTN's status first and never POST
again: the one at once finds nothing yet (503 OUTCOME_UNKNOWN), those
after MTN took the refund are answered from its status.
--- init
t::MomoTest::emu_post('/_emu/faults', '{"method": "POST", "path": "/disbursement/v1_0/refund", "delay_ms": 4000, "times": 1}');
my $ref = ::pay(amount => '100');
::check('TEST 7: first try', [::refund('retry-7', reference_id => $ref, amount => '30')], 504,
        qr/^\{"success": false, "error": \{"code": "UPSTREAM_TIMEOUT", "message": "[^"]+", "retryable": true\}, "reference_id": "[0-9a-f-]{36}", "status": "unknown"\}\n$/);
::check('TEST 7: retry 1', [::refund('retry-7', reference_id => $ref, amount => '30')], 503,
        qr/"code": "OUTCOME_UNKNOWN", "message": "[^"]+", "retryable": true\}, "reference_id": "[0-9a-f-]{36}", "status": "unknown"\}/);
t::MomoHttp::wait_for(sub { t::MomoTest::emu_get('/_emu/refunds') =~ /referenceId/ }, 10);
for my $i (2 .. 5) {
    ::check("TEST 7: retry $i", [::refund('retry-7', reference_id => $ref, amount => '30')], 200,
            qr/"status": "successful", "amount": "30", "currency": "EUR", "message": "Refund request was already sent for this Idempotency-Key"/);
}
--- request eval
["GET /emu/count?path=/disbursement/v1_0/refund&method=POST",
 "GET /emu/refunds"]
--- response_body_filters eval
[[], [\&t::MomoFlow::canon]]
--- response_body_like eval
['^1$', qr/^payment REF1 SUCCESSFUL 30 EUR *\n$/]
--- timeout: 20



=== TEST 8: a refund MTN refuses at once gives its amount back: the same key then goes through
--- init
t::MomoTest::emu_post('/_emu/faults', '{"method": "POST", "path": "/disbursement/v1_0/refund", "status": 400, "body": "{\"message\":\"bad\",\"code\":\"BAD_REQUEST\"}", "times": 1}');
my $ref = ::pay(amount => '100');
::check('TEST 8: refused', [::refund('k8', reference_id => $ref, amount => '100')], 400, qr/"code": "MTN_BAD_REQUEST"/);
::check('TEST 8: again', [::refund('k8', reference_id => $ref, amount => '100')], 200, qr/"status": "pending", "amount": "100"/);
--- request
GET /emu/requests?path=/disbursement/v1_0/refund&method=POST
--- response_body_filters eval
\&t::MomoFlow::canon
--- response_body_like eval
qr{^POST /disbursement/v1_0/refund ref=REF1
POST /disbursement/v1_0/refund ref=REF1
$}



=== TEST 9: a refund MTN reports failed gives its amount back to the payment
The disbursement account holds 50 at first: MTN takes the refund of 100,
then fails it (NOT_ENOUGH_FUNDS); the status query that learns it frees
the amount, and a new refund with another key goes through.
--- init
t::MomoTest::emu_post('/_emu/config', '{"disbursement_balance": "50"}');
my $ref = ::pay(amount => '100');
my ($st, $body) = ::refund('k9a', reference_id => $ref, amount => '100');
::check('TEST 9: first', [$st, $body], 200, qr/"status": "pending"/);
my ($rid) = $body =~ /"refund_id": "([^"]+)"/;
::check('TEST 9: its status', [t::MomoFlow::http(::port(), 'GET', "/api/refunds/mtn-momo/status/$rid")], 200,
        qr/"status": "failed", .*"reason": "NOT_ENOUGH_FUNDS", "kind": "refund"/);
t::MomoTest::emu_post('/_emu/config', '{"disbursement_balance": "1000000"}');
::check('TEST 9: another', [::refund('k9b', reference_id => $ref, amount => '100')], 200, qr/"status": "pending"/);
--- request
GET /emu/count?path=/disbursement/v1_0/refund&method=POST
--- response_body: 2



=== TEST 10: $momo_kind and the other $momo_* variables describe a refund in the access log
--- http_config eval
$::Both . "    log_format kinds '\$momo_kind \$momo_status \$momo_amount \$momo_error';\n"
--- config
    access_log logs/access.log kinds;

    location = /api/refunds/mtn-momo {
        momo_refund;
    }
--- more_headers
Content-Type: application/json
--- request eval
"POST /api/refunds/mtn-momo\n" . ::refund_json(reference_id => t::MomoFlow::fixed_ref(10))
--- error_code: 400
--- response_body_like: "IDEMPOTENCY_KEY_REQUIRED"
--- access_log
refund - - IDEMPOTENCY_KEY_REQUIRED



=== TEST 11: a refund's callback is verified with MTN's refund status and reaches momo_notify once, as a refund
MTN calls back twice for the payment and twice for the refund
(callback_duplicate): the application hears of each once.
--- http_config eval: $::Both . "    momo_notify /_app/notify;\n"
--- config
    location = /api/payments/mtn-momo {
        momo_pay;
    }

    location /api/payments/mtn-momo/callback/ {
        momo_callback;
    }

    location = /api/refunds/mtn-momo {
        momo_refund;
    }
--- init
t::MomoTest::emu_post('/_emu/config', '{"callback_duplicate": true}');
my $ref = ::pay(amount => '100');
::check('TEST 11: refund', [::refund('cb-11', reference_id => $ref, amount => '25')], 200, qr/"status": "pending"/);
t::MomoHttp::wait_for(sub {
    t::MomoTest::emu_get('/_emu/callbacks/count') >= 4
    && t::MomoTest::emu_get('/_emu/count?path=/_emu/sink/notify') >= 2
}, 20);
sleep 1;
--- request eval
["GET /emu/requests?path=/_emu/sink/notify",
 "GET /emu/count?path=/disbursement/v1_0/refund/&method=GET"]
--- response_body_filters eval
[[sub {
    my $rows = JSON::PP::decode_json(shift);
    CORE::join '', sort map {
        my $n = JSON::PP::decode_json($_->{body});
        for my $k (qw(reference_id external_id)) {
            $n->{$k} = 'REF' if $n->{$k} =~ /^[0-9a-f-]{36}$/;
        }
        $n->{financial_transaction_id} = 'FIN' if defined $n->{financial_transaction_id};
        JSON::PP->new->canonical->encode($n) . "\n"
    } @$rows;
}], []]
--- response_body eval
[<<'_EOC_', "1"]
{"amount":"100","currency":"EUR","external_id":"order-1","financial_transaction_id":"FIN","kind":"payment","reason":null,"reference_id":"REF","status":"successful"}
{"amount":"25","currency":"EUR","external_id":"REF","financial_transaction_id":"FIN","kind":"refund","reason":null,"reference_id":"REF","status":"successful"}
_EOC_
--- timeout: 30



=== TEST 12: the same key sent twice at once: one try goes to MTN, the other is told it is in flight
--- init
t::MomoTest::emu_post('/_emu/faults', '{"method": "POST", "path": "/disbursement/v1_0/refund", "delay_ms": 1000, "times": 1}');
my $ref = ::pay(amount => '100');
my @socks = map {
    t::MomoHttp::start('POST', '/api/refunds/mtn-momo',
                       ::refund_json(reference_id => $ref, amount => '10'),
                       'Content-Type' => 'application/json',
                       'Idempotency-Key' => 'twice-12')
} 1 .. 2;
my @res = sort { $a->{status} <=> $b->{status} } map { t::MomoHttp::finish($_, 10) } @socks;
::check('TEST 12: sent', [$res[0]{status}, $res[0]{body}], 200, qr/"status": "pending", "amount": "10"/);
::check('TEST 12: in flight', [$res[1]{status}, $res[1]{body}], 409,
        qr/"code": "IDEMPOTENCY_KEY_IN_FLIGHT", "message": "[^"]+", "retryable": true\}/);
--- request
GET /emu/count?path=/disbursement/v1_0/refund&method=POST
--- response_body: 1
