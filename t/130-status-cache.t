# The payment cache in the shared zone: final statuses are served without
# calling MTN, a pending one reaches MTN at most once a second per
# reference whatever the number of workers and clients, and a full zone
# evicts its least recently used records and keeps answering.  Payments are
# created at the emulator through MTN's API with reference ids the tests
# choose (t::MomoFlow::mtn_pay, fixed_ref: 00000130-0000-4000-8000-... here).

use t::MomoTest;
use t::MomoFlow;

plan 'no_plan';

# TEST 6's 16 clients, 1000 callbacks and their notifies at once: more than
# Test::Nginx's 64 connections a worker
worker_connections(1024);

our $Final = t::MomoFlow::fixed_ref(0x130);
our $Pending = t::MomoFlow::fixed_ref(0x131);
our $Old = t::MomoFlow::fixed_ref(0x132);
our $New = t::MomoFlow::fixed_ref(0x133);

our $SmallZone = $t::MomoTest::Account;
$SmallZone =~ s/momo_zone 1m;/momo_zone 256k;/ or die "no momo_zone in the account";

run_tests();

__DATA__

=== TEST 1: a final status polled 100 times from 2 workers reaches MTN once
--- init
t::MomoFlow::mtn_pay(ref => $main::Final);
--- config
    location /api/payments/mtn-momo/status/ {
        momo_status;
    }
--- request eval
[("GET /api/payments/mtn-momo/status/$main::Final") x 100,
 "GET /emu/count?path=/collection/v1_0/requesttopay/&method=GET"]
--- response_body_like eval
[(qr/^\{"success": true, "reference_id": "$main::Final", "status": "successful", "amount": "100", "currency": "EUR", "external_id": "order-1", "financial_transaction_id": "\d+", "reason": null\}\n$/) x 100,
 qr/^1$/]



=== TEST 2: a pending status polled 50 times back to back reaches MTN at most 3 times
The 50 requests are pipelined on one connection: nginx serves them as
fast as it can.
--- init
t::MomoFlow::mtn_pay(ref => $main::Pending, phone => '46733123454');
--- config
    location /api/payments/mtn-momo/status/ {
        momo_status;
    }
--- pipelined_requests eval
[("GET /api/payments/mtn-momo/status/$main::Pending") x 50,
 "GET /emu/count?path=/collection/v1_0/requesttopay/&method=GET"]
--- response_body_like eval
[(qr/^\{"success": true, "reference_id": "$main::Pending", "status": "pending", "amount": "100", "currency": "EUR", "external_id": "order-1", "financial_transaction_id": null, "reason": null\}\n$/) x 50,
 qr/^[1-3]$/]



=== TEST 3: clients polling a pending status at once wait for the one query in flight
20 clients at once on parallel connections while MTN takes 0.5 s to
answer the first status query: one query reaches MTN, the 20 get its
answer.
--- init
t::MomoFlow::mtn_pay(ref => $main::Pending, phone => '46733123454');
t::MomoTest::emu_post('/_emu/faults', '{"method": "GET", "path": "/collection/v1_0/requesttopay/", "delay_ms": 500, "times": 1}');
my $res = t::MomoFlow::burst(20, 20, sub {
    "GET /api/payments/mtn-momo/status/$main::Pending HTTP/1.1\r\nHost: localhost\r\n\r\n"
});
Test::More::is(scalar(grep { $_ && $_->[0] == 200 && $_->[1] =~ /"status": "pending"/ } @$res),
               20, "$0 TEST 3: 20 clients polling at once get pending");
--- config
    location /api/payments/mtn-momo/status/ {
        momo_status;
    }
--- request
GET /emu/count?path=/collection/v1_0/requesttopay/&method=GET
--- response_body: 1



=== TEST 4: a pending status is queried again after one second, not before
--- init
t::MomoFlow::mtn_pay(ref => $main::Pending, phone => '46733123454');
t::MomoFlow::sleep_fault(1200);
--- config
    location /api/payments/mtn-momo/status/ {
        momo_status;
    }
--- request eval
["GET /api/payments/mtn-momo/status/$main::Pending",
 "GET /api/payments/mtn-momo/status/$main::Pending",
 "GET /emu/count?path=/collection/v1_0/requesttopay/&method=GET",
 "GET /emu/sink/sleep/1200",
 "GET /api/payments/mtn-momo/status/$main::Pending",
 "GET /api/payments/mtn-momo/status/$main::Pending",
 "GET /emu/count?path=/collection/v1_0/requesttopay/&method=GET"]
--- response_body_like eval
[qr/"status": "pending"/,
 qr/"status": "pending"/,
 qr/^1$/,
 qr/^\{"ok":true\}$/,
 qr/"status": "pending"/,
 qr/"status": "pending"/,
 qr/^2$/]



=== TEST 5: a zone filled past capacity evicts the oldest payments and keeps answering
A 256k zone holds a few hundred payments: 1000 payments from 8 clients at
once fill it.  The payment polled before them is evicted and answers via
MTN again; one polled after them is served from the zone.
--- http_config eval
$main::SmallZone
--- init
t::MomoFlow::mtn_pay(ref => $main::Old);
t::MomoFlow::mtn_pay(ref => $main::New);
my $res = t::MomoFlow::burst(1, 1, sub {
    "GET /api/payments/mtn-momo/status/$main::Old HTTP/1.1\r\nHost: localhost\r\n\r\n"
});
Test::More::like($res->[0][1], qr/"status": "successful"/,
                 "$0 TEST 5: the old payment is successful");
$res = t::MomoFlow::burst(1000, 8, sub {
    my $body = t::MomoTest::pay_json(phone => '46733123454',
                                     external_id => "fill-$_[0]");
    "POST /api/payments/mtn-momo HTTP/1.1\r\nHost: localhost\r\n"
    . "Content-Type: application/json\r\n"
    . "Content-Length: " . length($body) . "\r\n\r\n$body"
});
Test::More::is(scalar(grep { $_ && $_->[0] == 200 && $_->[1] =~ /"status": "pending"/ } @$res),
               1000, "$0 TEST 5: 1000 payments answered 200 pending");
--- config
    location = /api/payments/mtn-momo {
        momo_pay;
    }

    location /api/payments/mtn-momo/status/ {
        momo_status;
    }

    location = /metrics {
        momo_metrics;
    }
--- request eval
["GET /api/payments/mtn-momo/status/$main::Old",
 "GET /api/payments/mtn-momo/status/$main::New",
 "GET /api/payments/mtn-momo/status/$main::New",
 "GET /emu/count?path=/collection/v1_0/requesttopay/$main::Old&method=GET",
 "GET /emu/count?path=/collection/v1_0/requesttopay/$main::New&method=GET",
 "GET /metrics"]
--- response_body_like eval
[qr/^\{"success": true, "reference_id": "$main::Old", "status": "successful", /,
 qr/^\{"success": true, "reference_id": "$main::New", "status": "successful", /,
 qr/^\{"success": true, "reference_id": "$main::New", "status": "successful", /,
 qr/^2$/,
 qr/^1$/,
 qr/\nmomo_payments_total\{result="accepted"\} 1000\n.*\nmomo_status_cache_evictions_total [1-9]\d*\n/s]
--- no_error_log
no memory
could not be recorded



=== TEST 6: a full zone still answers 1000 callbacks and notifies each payment exactly once
1000 payments from 16 clients at once, each called back by the emulator
0.1 s after it; the zone holds a few hundred of them.  The status budget
is raised: at MTN's 10 per second, verifying 1000 callbacks takes 100 s.
The MTN legs keep the shipped timeouts (15 s for a payment), not the
suite's 3 s: on a loaded machine the emulator answers some of 1000
payments in more than 3 s, and this block is about the zone, not about
timeouts.  The notifies are awaited by count (nginx's own), with a bound.
--- http_config eval
$main::SmallZone
--- init
my $res = t::MomoFlow::burst(1000, 16, sub {
    my $body = t::MomoTest::pay_json(external_id => "order-$_[0]");
    "POST /api/payments/mtn-momo HTTP/1.1\r\nHost: localhost\r\n"
    . "Content-Type: application/json\r\n"
    . "Content-Length: " . length($body) . "\r\n\r\n$body"
});
Test::More::is(scalar(grep { $_ && $_->[0] == 200 } @$res), 1000,
               "$0 TEST 6: 1000 payments answered 200");
t::MomoHttp::wait_for(sub {
    t::MomoHttp::request('GET', '/metrics')->{body}
        =~ /^momo_notify_total\{result="ok"\} (\d+)$/m && $1 >= 1000
}, 120);
Time::HiRes::sleep(0.3);
my $rows = JSON::PP::decode_json(t::MomoTest::emu_get('/_emu/requests?path=/_emu/sink/notify'));
my %n;
$n{JSON::PP::decode_json($_->{body})->{reference_id}}++ for @$rows;
Test::More::is(scalar(keys %n), 1000, "$0 TEST 6: 1000 payments notified");
Test::More::is(scalar(grep { $_ != 1 } values %n), 0,
               "$0 TEST 6: each payment notified once");
--- config
    include $TEST_NGINX_MOMO_ROOT/conf/momo_locations.conf;

    momo_notify /_app/notify;
    momo_status_rate 1000;

    location = /api/payments/mtn-momo {
        momo_pay;
    }

    location /api/payments/mtn-momo/callback/ {
        momo_callback;
    }

    location = /metrics {
        momo_metrics;
    }
--- request eval
["GET /emu/callbacks/count",
 "GET /metrics"]
--- response_body_like eval
[qr/^1000$/,
 qr/\nmomo_callbacks_total\{result="accepted"\} 1000\nmomo_callbacks_total\{result="duplicate"\} 0\nmomo_callbacks_total\{result="forbidden"\} 0\nmomo_callbacks_total\{result="invalid"\} 0\n.*\nmomo_status_cache_evictions_total [1-9]\d*\n.*\nmomo_notify_total\{result="ok"\} 1000\nmomo_notify_total\{result="failed"\} 0\n/s]
--- no_error_log
no memory
could not be recorded
