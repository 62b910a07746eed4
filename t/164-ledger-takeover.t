# A refund's or a payout's ledger entry is a lease stamped (pid, serial),
# as long as its sender can take (the deadlines of its calls).  Here the
# sender A is frozen (SIGSTOP of its worker) while it asks for a
# Disbursement token, longer than its lease; meanwhile MTN gets the same
# operation (same Idempotency-Key, so the same reference id: another
# gateway's try) and B, a retry with A's key, takes the entry over and
# learns from MTN's status that MTN has it.  A, resumed, gets MTN's 500
# for its token and ends having sent nothing: its end must leave B's
# outcome as it is, and a refund's reservation with it.  And a refund
# cancelled by its client (HTTP/2 RST_STREAM, t/h2client.py) while MTN
# has its POST, or while its status is asked after MTN's 409, gives its
# entry back with its request, as unknown: its reservation stays.

use t::MomoTest;
use t::MomoHttp;
use t::MomoFlow;
use JSON::PP qw(decode_json encode_json);
use Time::HiRes qw(sleep);

plan 'no_plan';

# every call's deadline is 0.1 + 0.1 + 1 + 1 = 2.2 s; the ledger lease of
# a refund or payout (a token, a status query, the POST, a status query)
# 8.8 s
$ENV{TEST_NGINX_SHORT_LOCATIONS} = t::MomoFlow::locations(
    connect => '100ms', send => '100ms', read => '1s');

our $Tokens = 'path=/disbursement/token/&method=POST';

$ENV{TEST_NGINX_H2_PORT} = t::MomoTest::free_port();

t::MomoFlow::defaults(
    http_config => $t::MomoTest::Account . $t::MomoTest::Disbursement,
    config => <<'_EOC_');
    include $TEST_NGINX_SHORT_LOCATIONS;  # no momo_locations: short ones
    listen 127.0.0.1:$TEST_NGINX_H2_PORT http2;

    location = /api/payments/mtn-momo {
        momo_pay;
    }

    location /api/payments/mtn-momo/status/ {
        momo_status;
    }

    location = /api/refunds/mtn-momo {
        momo_refund;
    }

    location = /api/payouts/mtn-momo {
        momo_payout;
    }
_EOC_

sub start_op {
    my ($path, $key, $body) = @_;
    return t::MomoHttp::start('POST', $path, $body,
                              'Content-Type' => 'application/json',
                              'Idempotency-Key' => $key);
}

sub op {
    return t::MomoHttp::finish(start_op(@_), 10);
}

# a payment of 100 through momo_pay, its reference id
sub paid {
    my $pay = t::MomoHttp::pay(amount => '100');
    return decode_json($pay->{body})->{reference_id};
}

sub refund_json {
    my ($ref, $amount) = @_;
    return JSON::PP->new->canonical->encode({
        reference_id => $ref, amount => $amount,
        payer_message => 'Refund 1', payee_note => 'Refund 1' });
}

sub check {
    my ($name, $res, $status, $like) = @_;
    t::MomoFlow::check($name, [$res->{status}, $res->{body}], $status, $like);
}

# A sends; at_mtn gives MTN the operation while A is frozen; B retries
sub takeover {
    my ($name, $path, $key, $body, $at_mtn) = @_;

    t::MomoTest::emu_post('/_emu/faults', encode_json([
        { method => 'POST', path => '/disbursement/token/',
          delay_ms => 300, status => 500, times => 1 }]));

    my $a = start_op($path, $key, $body);
    Test::More::is(t::MomoTest::emu_get("/_emu/wait?$Tokens&count=1&timeout_ms=10000"),
                   1, "$0 $name: A asks for a token");
    my $rows = decode_json(t::MomoTest::emu_get("/_emu/requests?$Tokens"));
    my $pid = t::MomoFlow::header($rows->[0]{headers}, 'X-Momo-Worker');

    kill 'STOP', $pid;
    my $rb;
    eval {
        $at_mtn->();
        sleep 9.3;      # A's lease has expired
        $rb = op($path, $key, $body);
    };
    kill 'CONT', $pid;
    die $@ if $@;

    my $ra = t::MomoHttp::finish($a, 10);

    check("$name: B takes A's entry over, MTN has it", $rb, 200,
          qr/"message": "\w+ request was already sent for this Idempotency-Key"/);
    Test::More::like($ra->{status}, qr/^5\d\d$/, "$0 $name: A, late, fails");
    Test::More::like($ra->{body}, qr/^\{"success": false, /,
                     "$0 $name: ... with a JSON error");
}

run_tests();

__DATA__

=== TEST 1: a refund's late sender neither changes the outcome nor frees the reservation of the one that took it over
A reserved 60 of a payment of 100; after A's late end, another refund of
60 would exceed the payment: refused before MTN sees it.
--- init
my $ref = ::paid();
my $body = ::refund_json($ref, '60');
::takeover('TEST 1', '/api/refunds/mtn-momo', 'late-1', $body, sub {
    t::MomoFlow::mtn_refund(ref => t::MomoFlow::key_ref('late-1', undef, 'refund'),
                            to_refund => $ref, amount => '60');
});
::check('TEST 1: 60 more, another key', ::op('/api/refunds/mtn-momo', 'late-2',
        ::refund_json($ref, '60')), 422,
        qr/"code": "REFUND_EXCEEDS_PAYMENT", "message": "[^"]+: 40.00 EUR at most can still be refunded"/);
::check('TEST 1: A\'s key again', ::op('/api/refunds/mtn-momo', 'late-1', $body), 200,
        qr/"amount": "60", "currency": "EUR", "message": "Refund request was already sent for this Idempotency-Key"/);
--- request
GET /emu/count?path=/disbursement/v1_0/refund&method=POST
--- response_body: 1
--- timeout: 60



=== TEST 2: a payout's late sender does not undo the outcome of the one that took it over: no second POST
--- init
my $body = t::MomoTest::pay_json();
::takeover('TEST 2', '/api/payouts/mtn-momo', 'late-p', $body, sub {
    t::MomoFlow::mtn_transfer(ref => t::MomoFlow::key_ref('late-p', undef, 'payout'));
});
::check('TEST 2: A\'s key again', ::op('/api/payouts/mtn-momo', 'late-p', $body), 200,
        qr/"amount": "100", "currency": "EUR", "message": "Payout request was already sent for this Idempotency-Key"/);
--- request
GET /emu/count?path=/disbursement/v1_0/transfer&method=POST
--- response_body: 1
--- timeout: 60



=== TEST 3: a refund cancelled by RST_STREAM while MTN has its POST leaves no lease: the retry asks MTN at once, the reservation stays
--- init
my $ref = ::paid();
my $body = ::refund_json($ref, '60');
t::MomoTest::emu_post('/_emu/faults', JSON::PP::encode_json(
    { method => 'POST', path => '/disbursement/v1_0/refund', delay_ms => 500, times => 1 }));
my $emu = "http://127.0.0.1:$t::MomoTest::EmuPort/_emu/count?path=/disbursement/v1_0/refund&method=POST";
my $got = t::MomoFlow::h2("--cancel-when '$emu=1' --linger 1 --header Idempotency-Key:rst-3",
               t::MomoFlow::shq("POST /api/refunds/mtn-momo $body"));
Test::More::is($got->[0]{ended}, 'cancelled', "$0 TEST 3: the stream was cancelled");
Test::More::ok(t::MomoHttp::wait_for(sub {
    grep { m{"POST /api/refunds/mtn-momo HTTP/2.0"} } @{ Test::Nginx::Util::access_log_data() }
}, 10), "$0 TEST 3: the cancelled request has ended");
t::MomoHttp::wait_for(sub { t::MomoTest::emu_get('/_emu/refunds') =~ /referenceId/ }, 10);
::check('TEST 3: the retry', ::op('/api/refunds/mtn-momo', 'rst-3', $body), 200,
        qr/"amount": "60", "currency": "EUR", "message": "Refund request was already sent for this Idempotency-Key"/);
::check('TEST 3: 60 more, another key', ::op('/api/refunds/mtn-momo', 'rst-3b',
        ::refund_json($ref, '60')), 422, qr/"code": "REFUND_EXCEEDS_PAYMENT"/);
--- request
GET /emu/count?path=/disbursement/v1_0/refund&method=POST
--- response_body: 1
--- timeout: 30



=== TEST 4: a refund cancelled by RST_STREAM while it asks MTN's status after MTN's 409 keeps its reservation
MTN has the refund already (another gateway's try with the same key):
the POST gets 409, and the status query that checks it is cancelled.
--- init
my $ref = ::paid();
t::MomoFlow::mtn_refund(ref => t::MomoFlow::key_ref('c409', undef, 'refund'),
                        to_refund => $ref, amount => '60');
t::MomoTest::emu_post('/_emu/faults', JSON::PP::encode_json(
    { method => 'GET', path => '/disbursement/v1_0/refund/', delay_ms => 500, times => 1 }));
my $emu = "http://127.0.0.1:$t::MomoTest::EmuPort/_emu/count?path=/disbursement/v1_0/refund/&method=GET";
my $got = t::MomoFlow::h2("--cancel-when '$emu=1' --linger 1 --header Idempotency-Key:c409",
               t::MomoFlow::shq("POST /api/refunds/mtn-momo " . ::refund_json($ref, '60')));
Test::More::is($got->[0]{ended}, 'cancelled', "$0 TEST 4: the stream was cancelled");
::check('TEST 4: 60 more, another key', ::op('/api/refunds/mtn-momo', 'c409b',
        ::refund_json($ref, '60')), 422, qr/"code": "REFUND_EXCEEDS_PAYMENT"/);
--- request
GET /emu/count?path=/disbursement/v1_0/refund&method=POST
--- response_body: 2
--- timeout: 30
