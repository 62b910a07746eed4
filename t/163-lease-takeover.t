# A lease lasts as long as its holder can: the deadlines of the calls it
# makes (its locations' proxy timeouts and a margin), no longer.  A holder
# that outlives it (here a worker frozen by SIGSTOP while its request asks
# MTN) loses it to another request, and when it finishes late and gives
# its lease back, the other's lease stays: a third poll waits for the
# second's answer instead of asking MTN a third time.

use t::MomoTest;
use t::MomoHttp;
use t::MomoFlow;
use JSON::PP qw(decode_json encode_json);
use Time::HiRes qw(sleep);

plan 'no_plan';

# every call's deadline is 0.1 + 0.1 + 2 + 1 = 3.2 s; a status query's
# lease (a token call, then the query) 6.4 s
$ENV{TEST_NGINX_SHORT_LOCATIONS} = t::MomoFlow::locations(
    connect => '100ms', send => '100ms', read => '2s');

our $Gets = 'path=/collection/v1_0/requesttopay/&method=GET';

sub status_poll {
    my ($ref) = @_;
    return t::MomoHttp::start('GET', "/api/payments/mtn-momo/status/$ref");
}

sub mtn_gets {
    my ($n) = @_;
    return t::MomoTest::emu_get("/_emu/wait?$Gets&count=$n&timeout_ms=10000");
}

# A's query: MTN answers 500 after 0.3 s, while A's worker is stopped for
# longer than A's lease; B's: 1.8 s, within the read timeout
sub takeover {
    my ($name) = @_;
    my $pay = t::MomoHttp::pay(phone => '46733123453');
    my $ref = decode_json($pay->{body})->{reference_id};
    sleep 1.1;      # the zone's pending status is a second old: MTN is asked

    t::MomoTest::emu_post('/_emu/faults', encode_json([
        { method => 'GET', path => '/collection/v1_0/requesttopay/',
          delay_ms => 300, status => 500, times => 1 },
        { method => 'GET', path => '/collection/v1_0/requesttopay/',
          delay_ms => 1800, times => 1 }]));

    my $a = status_poll($ref);
    Test::More::is(mtn_gets(1), 1, "$name: A asks MTN");
    my $rows = decode_json(t::MomoTest::emu_get("/_emu/requests?$Gets"));
    my $pid = t::MomoFlow::header($rows->[0]{headers}, 'X-Momo-Worker');

    kill 'STOP', $pid;
    my ($b, $rb, $ra, $c, $b_busy);
    eval {
        sleep 6.8;
        $b = status_poll($ref);
        Test::More::is(mtn_gets(2), 2, "$name: B takes the lease over and asks MTN");
    };
    kill 'CONT', $pid;
    die $@ if $@;

    $ra = t::MomoHttp::finish($a, 10);
    $c = status_poll($ref);
    $b_busy = !t::MomoHttp::answered($b);
    $rb = t::MomoHttp::finish($b, 10);
    my $rc = t::MomoHttp::finish($c, 10);

    Test::More::ok($b_busy, "$name: C comes while B's query is with MTN");
    Test::More::like($ra->{status}, qr/^50[24]$/, "$name: A, late, gets an error (MTN's, or its timeout)");
    Test::More::like($rb->{body}, qr/^\{"success": true, "reference_id": "$ref", "status": "pending", /,
                     "$name: B gets MTN's status");
    Test::More::is($rc->{status}, 200, "$name: C gets B's answer");
    Test::More::ok(!defined $rc->{headers}{age}, "$name: ... a fresh one, not the zone's over budget");
}

run_tests();

__DATA__

=== TEST 1: a request that outlives its status-query lease does not release the one that took it over
--- init
::takeover("$0 TEST 1");
--- config
    include $TEST_NGINX_SHORT_LOCATIONS;  # no momo_locations: short ones

    location = /api/payments/mtn-momo {
        momo_pay;
    }

    location /api/payments/mtn-momo/status/ {
        momo_status;
    }
--- request
GET /emu/count?path=/collection/v1_0/requesttopay/&method=GET
--- response_body: 2
