# The reconciler: with MTN's callbacks lost and no client polling, nginx
# itself asks MTN for the status of the payments it accepted, at the
# momo_reconcile ages, within the status budget, one worker at a time, and
# the application learns every final outcome exactly once.  Schedules are
# short; counts are asserted, never times.

use t::MomoTest;
use t::MomoFlow;
use JSON::PP;

check_accum_error_log();

plan 'no_plan';

our $Sweep = "    momo_reconcile 300ms 600ms 1s 2s 10s;\n"
           . "    momo_notify_retry 200ms 1s 1h;\n";

our @Phones = ('46733123450', '46733123451', '46733123452', '56733123453');

our @Pay = map {
    "POST /api/payments/mtn-momo\n"
    . t::MomoTest::pay_json(external_id => "order-170-$_",
                            phone => $Phones[$_ % 4])
} 0 .. 19;

# the application's deliveries as "N status reason", one line per outcome
# kind, then how many payments and the most deliveries one payment got
sub main::summary {
    my $body = shift;
    my $rows = eval { decode_json($body) };
    return t::MomoFlow::canon($body) unless ref $rows eq 'ARRAY' && @$rows;
    return main::queries($rows) if $rows->[0]{path} =~ m{^/collection/};

    my (%kinds, %refs);
    for my $e (@$rows) {
        my $p = eval { decode_json($e->{body}) } || {};
        $kinds{"$p->{status} " . ($p->{reason} // 'null')}++;
        $refs{$p->{reference_id} // '?'}++;
    }
    my ($max) = sort { $b <=> $a } values %refs;
    return join('', map { "$kinds{$_} $_\n" } sort keys %kinds)
           . scalar(keys %refs) . " payments, at most $max each\n";
}

# the most status queries MTN saw for one payment
sub main::queries {
    my $rows = shift;
    my %n;
    $n{$_->{path}}++ for @$rows;
    my ($max) = sort { $b <=> $a } values %n;
    return scalar(keys %n) . " payments queried, at most " . ($max // 0) . " times\n";
}

run_tests();

__DATA__

=== TEST 1: callbacks lost, no client poll: 20 payments of the sandbox numbers each reach the application once, with MTN's final status
--- http_config eval
$t::MomoTest::Account . $main::Sweep
--- init
t::MomoTest::emu_post('/_emu/config', '{"drop_callbacks": true, "final_delay_ms": 700}');
t::MomoFlow::sleep_fault(500);
--- config
    momo_notify /_app/notify;

    location = /api/payments/mtn-momo {
        momo_pay;
    }

    location = /metrics {
        momo_metrics;
    }
--- more_headers
Content-Type: application/json
--- request eval
[@main::Pay,
 "GET /emu/wait?path=/_emu/sink/notify&count=20&timeout_ms=20000",
 "GET /emu/sink/sleep/500",
 "GET /emu/requests?path=/_emu/sink/notify",
 "GET /emu/requests?path=/collection/v1_0/requesttopay/&method=GET",
 "GET /emu/dropped",
 "GET /metrics"]
--- timeout: 25
--- response_body_filters eval
\&main::summary
--- response_body_like eval
[(qr/"status": "pending"/) x 20,
 qr/^20$/,
 qr/^\{"ok":true\}$/,
 qr/^5 failed APPROVAL_REJECTED
5 failed EXPIRED
5 failed INTERNAL_PROCESSING_ERROR
5 successful null
20 payments, at most 1 each
$/,
 qr/^20 payments queried, at most [123] times$/,
 qr/^20$/,
 qr/momo_pending_payments\{age="0-1m"\} 0\n.*momo_reconcile_queries_total\{result="final"\} 20\n.*momo_reconcile_queries_total\{result="given_up"\} 0\n.*momo_notify_pending 0\n/s]
