# momo_metrics' gauges of the zone, counted at each scrape: the payments
# MTN accepted without a final status, by age, and the final outcomes the
# application has not acknowledged.  Settled payments count in neither;
# without momo_notify nothing is waiting to be acknowledged.  Counts are
# asserted, never times.

use t::MomoTest;
use t::MomoFlow;

plan 'no_plan';

# two payments MTN keeps pending, one it settles as successful, one as
# failed; each with its Idempotency-Key, so its reference id is known
our %Phone = (a => '46733123453', b => '46733123454',
              c => '56733123453', d => '46733123450');

# the reference id of payment $k of block $n
sub main::ref_of { t::MomoFlow::key_ref("order-172-$_[0]-$_[1]") }

sub main::pay_all {
    my $n = shift;
    for my $k (sort keys %Phone) {
        my @r = t::MomoFlow::post_json('/api/payments/mtn-momo',
            "order-172-$n-$k",
            t::MomoTest::pay_json(external_id => "order-172-$n-$k",
                                  phone => $Phone{$k}));
        t::MomoFlow::check("$k is taken", \@r, 200, qr/"status": "pending"/);
    }
}

# the gauges as "pending P, unacknowledged N, oldest S s" (P: the payments
# of under a minute; of every other age there must be none)
sub main::gauges {
    my $m = shift;
    my @p = $m =~ /^momo_pending_payments\{age="[^"]+"\} (\d+)$/mg;
    my ($n) = $m =~ /^momo_notify_pending (\d+)$/m;
    my ($s) = $m =~ /^momo_notify_oldest_undelivered_seconds (\d+)$/m;
    return "no gauges in:\n$m" unless @p == 6 && defined $n && defined $s;
    return "older pending: @p\n" if grep { $_ != 0 } @p[1 .. 5];
    return "pending $p[0], unacknowledged $n, oldest $s s\n";
}

our $Locations = <<'_EOC_';
    location = /api/payments/mtn-momo {
        momo_pay;
    }

    location /api/payments/mtn-momo/status/ {
        momo_status;
    }

    location = /metrics {
        momo_metrics;
    }
_EOC_

t::MomoFlow::defaults(http_config => $t::MomoTest::Account
    . "    momo_reconcile off;\n    momo_notify_retry 1h 1h 2h;\n");

run_tests();

__DATA__

=== TEST 1: with momo_notify: two pending, one outcome whose delivery failed, one delivered
The first delivery fails (500) and is next tried an hour later: that outcome
waits for the application; the second is delivered and counts no more.
--- init
main::pay_all(1);
t::MomoTest::emu_post('/_emu/faults', '{"path": "/_emu/sink/notify", "status": 500, "times": 1}');
--- config eval
"    momo_notify /_app/notify;\n" . $main::Locations
--- request eval
["GET /metrics",
 "GET /api/payments/mtn-momo/status/" . main::ref_of(1, 'c'),
 "GET /emu/wait?path=/_emu/sink/notify&count=1&timeout_ms=10000",
 "GET /api/payments/mtn-momo/status/" . main::ref_of(1, 'd'),
 "GET /emu/wait?path=/_emu/sink/notify&count=2&timeout_ms=10000",
 "GET /api/payments/mtn-momo/status/" . main::ref_of(1, 'a'),
 "GET /metrics"]
--- timeout: 15
--- response_body_filters eval
[[\&main::gauges], [], [], [], [],  [],
 [sub { main::gauges(t::MomoFlow::poll_metrics(qr/momo_notify_pending 1\n/, 10)) }]]
--- response_body_like eval
[qr/^pending 4, unacknowledged 0, oldest 0 s\n$/,
 qr/"status": "successful"/,
 qr/^1$/,
 qr/"status": "failed"/,
 qr/^2$/,
 qr/"status": "pending"/,
 qr/^pending 2, unacknowledged 1, oldest 0 s\n$/]



=== TEST 2: without momo_notify: two pending, two settled, nothing waits for the application
--- init
main::pay_all(2);
--- config eval
$main::Locations
--- request eval
["GET /api/payments/mtn-momo/status/" . main::ref_of(2, 'c'),
 "GET /api/payments/mtn-momo/status/" . main::ref_of(2, 'd'),
 "GET /api/payments/mtn-momo/status/" . main::ref_of(2, 'b'),
 "GET /metrics",
 "GET /emu/count?path=/_emu/sink/notify"]
--- response_body_filters eval
[[], [], [], [\&main::gauges], []]
--- response_body_like eval
[qr/"status": "successful"/,
 qr/"status": "failed"/,
 qr/"status": "pending"/,
 qr/^pending 2, unacknowledged 0, oldest 0 s\n$/,
 qr/^0$/]
