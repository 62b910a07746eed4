# Every momo request is finalized with its answer, and every lease dies
# with its request.  HTTP/2 clients that hold the flow-control window at
# 0, or share a connection whose window another stream has filled, get
# every body once they read, and each request leaves an access-log line
# (a request never finalized has none).  A status query cancelled by
# RST_STREAM while MTN is asked, one whose token call fails, and one whose
# MTN answer is larger than subrequest_output_buffer_size leave no lease:
# the next poll of that reference asks MTN again at once, instead of
# waiting for a dead lease and answering a stale status.
#
# The HTTP/2 client is t/h2client.py (python3-h2); its results are
# checked in "--- init", the block's request is a plain probe.

use t::MomoTest;
use t::MomoHttp;
use t::MomoFlow;
use JSON::PP ();

plan 'no_plan';

workers(1);
check_accum_error_log();

$ENV{TEST_NGINX_H2_PORT} = t::MomoTest::free_port();

our $Ref = '4f6a1d2c-7b3e-4c5d-8e9f-0a1b2c3d4e5f';
our $StatusPath = "/collection/v1_0/requesttopay/$Ref";

add_block_preprocessor(sub {
    my $block = shift;

    if (!defined $block->config) {
        $block->set_value('config', <<'_EOC_');
    listen 127.0.0.1:$TEST_NGINX_H2_PORT http2;

    location = /api/payments/mtn-momo {
        momo_pay;
    }

    location /api/payments/mtn-momo/status/ {
        momo_status;
    }

    location = /big {
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOMO_EMU_PORT/_emu/sink/big;
    }
_EOC_
    }

    if (!defined $block->request) {
        $block->set_value('request', "GET /emu/health\n");
    }
});

# each stream ended with this status and a body matching this pattern
sub streams_ok ($$) {
    my ($got, $want) = @_;
    Test::More::is(scalar @$got, scalar @$want, "one result per stream");
    for my $i (0 .. $#$want) {
        my ($status, $like) = @{ $want->[$i] };
        my $s = $got->[$i] // {};
        Test::More::is($s->{ended}, JSON::PP::true,
                       "stream $s->{stream} ended");
        Test::More::is($s->{status}, $status, "stream $s->{stream} status");
        Test::More::like($s->{body}, $like, "stream $s->{stream} body");
    }
}

# a pending payment made at MTN (the emulator) under $Ref, as if by
# another gateway: nginx's zone knows nothing of it
sub mtn_payment () {
    t::MomoFlow::mtn_pay(ref => $Ref, phone => '46733123453');
}

sub status_calls () {
    return t::MomoTest::emu_get("/_emu/count?path=$StatusPath") + 0;
}

# the access log has a line matching $re, within 10 s
sub logged ($) {
    my $re = shift;
    return t::MomoHttp::wait_for(sub {
        grep { /$re/ } @{ Test::Nginx::Util::access_log_data() }
    }, 10);
}

run_tests();

__DATA__

=== TEST 1: HTTP/2 with the window held at 0: the payment's body arrives once the client reads, and the request is logged
--- init
my $got = t::MomoFlow::h2('--window 0 --hold 1',
               t::MomoFlow::shq("POST /api/payments/mtn-momo " . t::MomoTest::pay_json()));
::streams_ok($got, [[200, qr/"status": "pending"/]]);
Test::More::ok(::logged(qr{"POST /api/payments/mtn-momo HTTP/2.0" 200 }),
               "the payment has its access-log line");



=== TEST 2: HTTP/2 with the window at 0: a status answer and a refused payment arrive too, all logged
--- init
::mtn_payment();
my $got = t::MomoFlow::h2('--window 0 --hold 1',
               t::MomoFlow::shq("GET /api/payments/mtn-momo/status/$::Ref"),
               t::MomoFlow::shq("POST /api/payments/mtn-momo " . t::MomoTest::pay_json(amount => '0')));
::streams_ok($got, [[200, qr/"reference_id": "$::Ref", "status": "pending"/],
                    [400, qr/"code": "INVALID_AMOUNT"/]]);
Test::More::ok(::logged(qr{"GET /api/payments/mtn-momo/status/$::Ref HTTP/2.0" 200 }),
               "the status query has its access-log line");
Test::More::ok(::logged(qr{"POST /api/payments/mtn-momo HTTP/2.0" 400 }),
               "the refused payment has its access-log line");



=== TEST 3: a busy HTTP/2 connection (another stream fills its window): payment and status bodies arrive once it is read
--- init
t::MomoTest::emu_post('/_emu/faults',
    '{"path": "/_emu/sink/big", "hostile": "big", "size": 262144}');
::mtn_payment();
my $got = t::MomoFlow::h2('--busy --hold 1', t::MomoFlow::shq("GET /big"),
               t::MomoFlow::shq("POST /api/payments/mtn-momo " . t::MomoTest::pay_json()),
               t::MomoFlow::shq("GET /api/payments/mtn-momo/status/$::Ref"));
::streams_ok($got, [[200, qr/^\{"status": "PENDING", "pad": "x+"\}\z/],
                    [200, qr/"status": "pending"/],
                    [200, qr/"reference_id": "$::Ref"/]]);
Test::More::ok(::logged(qr{"POST /api/payments/mtn-momo HTTP/2.0" 200 }),
               "the payment has its access-log line");



=== TEST 4: a status query cancelled by RST_STREAM while MTN is asked leaves no lease: the next poll asks MTN at once
--- init
# the linger (4 s, under valgrind too) ends well within the lease a status
# query takes (its legs' timeouts): a lease left behind would still hold
# the next poll.  The payment stays pending until then, under valgrind too.
t::MomoTest::emu_post('/_emu/config',
    '{"pending_seconds": ' . t::MomoHttp::slow(30) . '}');
::mtn_payment();
t::MomoTest::emu_post('/_emu/faults', JSON::PP::encode_json(
    { path => $::StatusPath, delay_ms => 2000, times => 1 }));
my $emu = "http://127.0.0.1:$t::MomoTest::EmuPort/_emu/count?path=$::StatusPath";
my $got = t::MomoFlow::h2("--cancel-when '$emu=1' --linger 4",
               t::MomoFlow::shq("GET /api/payments/mtn-momo/status/$::Ref"));
Test::More::is($got->[0]{ended}, 'cancelled', "the stream was cancelled");
Test::More::ok(::logged(qr{"GET /api/payments/mtn-momo/status/$::Ref HTTP/2.0"}),
               "the cancelled request has ended");
my $r = t::MomoHttp::request('GET', "/api/payments/mtn-momo/status/$::Ref");
Test::More::like($r->{body}, qr/"status": "pending"/, "the next poll is answered");
Test::More::is(::status_calls(), 2, "and it asked MTN again");



=== TEST 5: a status query whose token call fails leaves no lease: the next poll asks MTN
--- init
::mtn_payment();
t::MomoTest::emu_post('/_emu/faults',
    '{"path": "/collection/token/", "status": 500, "times": 1}');
my $r = t::MomoHttp::request('GET', "/api/payments/mtn-momo/status/$::Ref");
Test::More::like($r->{status}, qr/^5\d\d$/, "the first poll gets an error");
Test::More::like($r->{body}, qr/^\{"success": false, "error": \{"code": "UPSTREAM_/,
                 "as JSON");
$r = t::MomoHttp::request('GET', "/api/payments/mtn-momo/status/$::Ref");
Test::More::is($r->{status}, 200, "the next poll gets 200");
Test::More::like($r->{body}, qr/"status": "pending"/, "with MTN's status");
Test::More::is(::status_calls(), 1, "which it asked MTN for");



=== TEST 6: an MTN status answer larger than subrequest_output_buffer_size: JSON 504, and the next poll asks MTN at once
--- init
::mtn_payment();
t::MomoTest::emu_post('/_emu/faults', JSON::PP::encode_json(
    { path => $::StatusPath, hostile => 'big', times => 1 }));
--- request eval
["GET /api/payments/mtn-momo/status/$::Ref",
 "GET /api/payments/mtn-momo/status/$::Ref",
 "GET /emu/count?path=$::StatusPath"]
--- error_code eval
[504, 200, 200]
--- response_body_like eval
['^\{"success": false, "error": \{"code": "UPSTREAM_TIMEOUT", "message": "[^"]+", "retryable": true\}, "reference_id": "4f6a1d2c-7b3e-4c5d-8e9f-0a1b2c3d4e5f"\}$',
 '"status": "pending"',
 '^2$']
--- error_log
is larger than its subrequest_output_buffer_size (16384); it is treated as no answer



=== TEST 7: HTTP/2 with the window at 0: a final status is answered, the application notified, then the body arrives and is logged
--- config
    listen 127.0.0.1:$TEST_NGINX_H2_PORT http2;
    momo_notify /_app/notify;

    location /api/payments/mtn-momo/status/ {
        momo_status;
    }
--- init
::mtn_payment();
t::MomoTest::emu_post("/_emu/payments/$::Ref/status",
                      '{"status": "SUCCESSFUL", "callback": false}');
my $got = t::MomoFlow::h2('--window 0 --hold 1',
               t::MomoFlow::shq("GET /api/payments/mtn-momo/status/$::Ref"));
::streams_ok($got, [[200, qr/"reference_id": "$::Ref", "status": "successful"/]]);
Test::More::ok(::logged(qr{"GET /api/payments/mtn-momo/status/$::Ref HTTP/2.0" 200 }),
               "the status query has its access-log line");
Test::More::is(t::MomoTest::emu_get('/_emu/count?path=/_emu/sink/notify'), '1',
               "the application was notified once");
