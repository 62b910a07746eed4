# Payouts end to end (momo_payout, MTN's /disbursement/v1_0/transfer):
# an Idempotency-Key is required; each sandbox number's final status
# reaches momo_notify once, with "kind": "payout", through MTN's
# callback verified by a status query; momo_check_payer refuses an
# inactive account holder before anything is sent, for payouts and
# payments.

use t::MomoTest;
use t::MomoFlow;
use JSON::PP ();

plan 'no_plan';

our $Both = $t::MomoTest::Account . $t::MomoTest::Disbursement
            . "    momo_notify /_app/notify;\n";

t::MomoFlow::defaults(http_config => $Both, config => <<'_EOC_');
    location = /api/payments/mtn-momo {
        momo_pay;
    }

    location /api/payments/mtn-momo/callback/ {
        momo_callback;
    }

    location = /api/payouts/mtn-momo {
        momo_payout;
    }

    location /api/payouts/mtn-momo/status/ {
        momo_payout_status;
    }
_EOC_

sub port () { $ENV{TEST_NGINX_SERVER_PORT} }

# POST a payout: (status, body); key undef: no Idempotency-Key
sub payout ($@) {
    my ($key, %f) = @_;
    return t::MomoFlow::post_json('/api/payouts/mtn-momo', $key, t::MomoTest::pay_json(%f));
}

sub check { t::MomoFlow::check(@_) }

run_tests();

__DATA__

=== TEST 1: a payout to each sandbox number: its final status reaches momo_notify once, as a payout
MTN calls back twice for each final payout (callback_duplicate); the
notifies are sorted by phone number.  46733123453 stays pending: no notify.
--- init
t::MomoTest::emu_post('/_emu/config', '{"pending_seconds": 1, "callback_duplicate": true}');
my @phones = qw(46733123450 46733123451 46733123452 46733123453 46733123454 56733123453);
for my $p (@phones) {
    ::check("TEST 1: payout to $p", [::payout("payout-$p", phone => $p, external_id => "payee-$p")], 200,
            qr/^\{"success": true, "payout_id": "([0-9a-f-]{36})", "reference_id": "\1", "status": "pending", "amount": "100", "currency": "EUR", "message": "Payout request sent to MTN"\}\n$/);
}
t::MomoHttp::wait_for(sub {
    t::MomoTest::emu_get('/_emu/callbacks/count') >= 10
    && t::MomoTest::emu_get('/_emu/count?path=/_emu/sink/notify') >= 5
}, 30);
sleep 1;
--- request
GET /emu/requests?path=/_emu/sink/notify
--- response_body_filters eval
sub {
    my $rows = JSON::PP::decode_json(shift);
    my @b = map { JSON::PP::decode_json($_->{body}) } @$rows;
    CORE::join '', map {
        my $n = $_;
        $n->{reference_id} = $n->{reference_id} =~ /^[0-9a-f-]{36}$/ ? 'REF' : 'BAD';
        $n->{financial_transaction_id} = 'FIN' if defined $n->{financial_transaction_id};
        JSON::PP->new->canonical->encode($n) . "\n"
    } sort { $a->{external_id} cmp $b->{external_id} } @b;
}
--- response_body
{"amount":"100","currency":"EUR","external_id":"payee-46733123450","financial_transaction_id":null,"kind":"payout","reason":"INTERNAL_PROCESSING_ERROR","reference_id":"REF","status":"failed"}
{"amount":"100","currency":"EUR","external_id":"payee-46733123451","financial_transaction_id":null,"kind":"payout","reason":"APPROVAL_REJECTED","reference_id":"REF","status":"failed"}
{"amount":"100","currency":"EUR","external_id":"payee-46733123452","financial_transaction_id":null,"kind":"payout","reason":"EXPIRED","reference_id":"REF","status":"failed"}
{"amount":"100","currency":"EUR","external_id":"payee-46733123454","financial_transaction_id":"FIN","kind":"payout","reason":null,"reference_id":"REF","status":"successful"}
{"amount":"100","currency":"EUR","external_id":"payee-56733123453","financial_transaction_id":"FIN","kind":"payout","reason":null,"reference_id":"REF","status":"successful"}
--- timeout: 40



=== TEST 2: a payout needs an Idempotency-Key; a key reused for another phone is refused; a retry is answered from the zone
--- init
::check('TEST 2: no key', [::payout(undef)], 400, qr/"code": "IDEMPOTENCY_KEY_REQUIRED"/);
::check('TEST 2: not JSON', [t::MomoFlow::http(::port(), 'POST', '/api/payouts/mtn-momo',
                                               { 'Content-Type' => 'application/jsonp', 'Idempotency-Key' => 'k2' },
                                               t::MomoTest::pay_json())], 415,
        qr/"code": "UNSUPPORTED_MEDIA_TYPE"/);
::check('TEST 2: JSON with a charset', [t::MomoFlow::http(::port(), 'POST', '/api/payouts/mtn-momo',
                                                          { 'Content-Type' => 'Application/JSON; charset=utf-8', 'Idempotency-Key' => 'k2-charset' },
                                                          t::MomoTest::pay_json())], 200,
        qr/"status": "pending"/);
::check('TEST 2: bad phone', [::payout('k2', phone => '12')], 400, qr/"code": "INVALID_PHONE"/);
my ($st, $body) = ::payout('k2');
::check('TEST 2: first', [$st, $body], 200, qr/"status": "pending"/);
my ($ref) = $body =~ /"reference_id": "([^"]+)"/;
::check('TEST 2: again', [::payout('k2')], 200,
        qr/^\{"success": true, "payout_id": "$ref", "reference_id": "$ref", "status": "(pending|successful)", "amount": "100", "currency": "EUR", "message": "Payout request was already sent for this Idempotency-Key"\}\n$/);
::check('TEST 2: other phone', [::payout('k2', phone => '46733123450')], 422,
        qr/"code": "IDEMPOTENCY_KEY_REUSED"/);
::check('TEST 2: status', [t::MomoFlow::http(::port(), 'GET', "/api/payouts/mtn-momo/status/$ref")], 200,
        qr/^\{"success": true, "reference_id": "$ref", "status": "successful", "amount": "100", "currency": "EUR", "external_id": "order-1", "financial_transaction_id": "\d+", "reason": null, "kind": "payout"\}\n$/);
--- request
GET /emu/requests?path=/disbursement/v1_0/transfer&method=POST
--- response_body_filters eval
\&t::MomoFlow::canon
--- response_body_like eval
qr{^POST /disbursement/v1_0/transfer ref=REF1
POST /disbursement/v1_0/transfer ref=REF2
$}



=== TEST 3: momo_check_payer refuses a payout to an inactive account holder before the transfer
--- http_config eval: $::Both . "    momo_check_payer on;\n"
--- init
::check('TEST 3: inactive', [::payout('k3', phone => '46733123455')], 422,
        qr/^\{"success": false, "error": \{"code": "ACCOUNT_HOLDER_NOT_ACTIVE", "message": "MTN has no active Mobile Money account for this phone number; nothing was sent", "retryable": false\}/);
::check('TEST 3: active', [::payout('k3b', phone => '56733123453')], 200, qr/"status": "pending"/);
--- request
GET /emu/requests?path=/disbursement/v1_0/&method=POST
--- response_body_filters eval
\&t::MomoFlow::canon
--- response_body
POST /disbursement/v1_0/transfer ref=REF1
--- error_log eval
[qr{momo: MTN says the account holder of the payee is not active}]



=== TEST 4: momo_check_payer refuses a payment from an inactive account holder before any payment is requested
On a loaded machine the payment's callback may have come and been
verified (a status query of REF1) before MTN's log is read.
--- http_config eval: $::Both . "    momo_check_payer on;\n"
--- more_headers
Content-Type: application/json
--- request eval
["POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(phone => '46733123455'),
 "POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(),
 "GET /emu/requests?path=/collection/"]
--- error_code eval
[422, 200, 200]
--- response_body_filters eval
[[], [], [\&t::MomoFlow::canon]]
--- response_body_like eval
[qr/^\{"success": false, "error": \{"code": "ACCOUNT_HOLDER_NOT_ACTIVE", /,
 qr/"status": "pending"/,
 qr{^POST /collection/token/
GET /collection/v1_0/accountholder/msisdn/46733123455/active
GET /collection/v1_0/accountholder/msisdn/56733123453/active
POST /collection/v1_0/requesttopay ref=REF1
(?:GET /collection/v1_0/requesttopay/REF1
)*$}]



=== TEST 9: payouts MTN has already (its 409) are checked within momo_status_rate: over it, a retryable 503 with the reference id, and the payout stays unknown, asked first on the next try
MTN has four payouts made with four keys (by another gateway, or by this
one before a restart); their four retries come at once with
momo_status_rate 1.  One of the refused keys, a second later, gets its
payout, through MTN's status.
--- init
my @keys = map { "po-rate-$_" } 1 .. 4;
my @refs = map { t::MomoFlow::key_ref($_, undef, 'payout') } @keys;
t::MomoFlow::mtn_transfer(ref => $_) for @refs;
my $res = t::MomoFlow::burst_post('/api/payouts/mtn-momo', \@keys,
                                   t::MomoTest::pay_json());
my (@ok, @limited);
for my $i (0 .. 3) {
    my ($st, $b) = @{ $res->[$i] || [0, ''] };
    if ($st == 200 && $b =~ /"reference_id": "$refs[$i]", .*"Payout request was already sent/) {
        push @ok, $i;
    } elsif ($st == 503 && $b =~ /^\{"success": false, "error": \{"code": "STATUS_RATE_LIMITED", "message": "[^"]+", "retryable": true\}, "reference_id": "$refs[$i]", "status": "unknown"\}\n$/) {
        push @limited, $i;
    } else {
        Test::More::diag("retry $i: $st $b");
    }
}
Test::More::is(@ok + @limited, 4, "$0 TEST 9: each retry is its payout or STATUS_RATE_LIMITED");
Test::More::cmp_ok(scalar @limited, '>=', 1, "$0 TEST 9: some retries were over the budget");
Test::More::is(t::MomoTest::emu_get('/_emu/count?path=/disbursement/v1_0/transfer/&method=GET'),
               scalar @ok, "$0 TEST 9: MTN was asked the status of the payouts answered only");
Time::HiRes::sleep(1.2);
::check('TEST 9: a second later, a refused retry', [::payout($keys[$limited[0] // 0])], 200,
        qr/"Payout request was already sent for this Idempotency-Key"/);
--- config
    momo_status_rate 1;

    location = /api/payouts/mtn-momo {
        momo_payout;
    }
--- request
GET /emu/rate?path=/disbursement/v1_0/transfer/&method=GET&window_ms=1000
--- response_body: 1
