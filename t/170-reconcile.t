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

# what every block has, unless it says otherwise
t::MomoFlow::defaults(config => <<'_EOC_', more_headers => "Content-Type: application/json\n");
    momo_notify /_app/notify;

    location = /api/payments/mtn-momo {
        momo_pay;
    }

    location = /metrics {
        momo_metrics;
    }
_EOC_

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

# SIGKILL to the worker that sweeps (the last one the error log names)
sub main::kill_sweeper {
    my $body = shift;
    my $log = "$ENV{TEST_NGINX_SERVROOT}/logs/error.log";
    open my $fh, '<', $log or return "no error log\n";
    my $pid;
    while (<$fh>) {
        $pid = $1 if /momo: worker (\d+) sweeps the momo zone/;
    }
    close $fh;
    return "no sweeper\n" unless $pid;
    kill 'KILL', $pid;
    return "killed\n";
}

# $n payments at once (16 at a time, each with its own key), as "N x status"
sub main::pay_burst {
    my $n = shift;
    my $res = t::MomoFlow::burst($n, 16, sub {
        my $i = shift;
        my $body = t::MomoTest::pay_json(external_id => "order-170-b$i",
                                         phone => '56733123453');
        "POST /api/payments/mtn-momo HTTP/1.1\r\nHost: localhost\r\n"
        . "Content-Type: application/json\r\nIdempotency-Key: key-170-$i\r\n"
        . "Content-Length: " . length($body) . "\r\n\r\n$body"
    });
    my %st;
    $st{$_->[0]}++ for @$res;
    return join '', map { "$st{$_} x $_\n" } sort keys %st;
}

run_tests();

__DATA__

=== TEST 1: callbacks lost, no client poll: 20 payments of the sandbox numbers each reach the application once, with MTN's final status
--- http_config eval
$t::MomoTest::Account . $main::Sweep
--- init
t::MomoTest::emu_post('/_emu/config', '{"drop_callbacks": true, "final_delay_ms": 700}');
t::MomoFlow::sleep_fault(500);
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




=== TEST 2: the sweeping worker is killed in the middle of a sweep: the other worker takes over, every outcome arrives once
MTN's status answers take 2 s, so the sweep is in the middle of its
queries when its worker is killed.
--- http_config eval
$t::MomoTest::Account . $main::Sweep
--- init
t::MomoTest::emu_post('/_emu/config', '{"drop_callbacks": true}');
t::MomoTest::emu_post('/_emu/faults', '{"method": "GET", "path": "/collection/v1_0/requesttopay/", "delay_ms": 2000, "times": 4}');
--- request eval
[@main::Pay[0 .. 3],
 "GET /emu/wait?path=/collection/v1_0/requesttopay/&method=GET&count=1&timeout_ms=20000",
 "GET /emu/health",
 "GET /emu/wait?path=/_emu/sink/notify&count=4&timeout_ms=20000",
 "GET /emu/requests?path=/_emu/sink/notify",
 "GET /metrics"]
--- timeout: 25
--- response_body_filters eval
[([\&main::summary]) x 5, [\&main::kill_sweeper], [\&main::summary], [\&main::summary],
 [sub { t::MomoFlow::poll_metrics(qr/momo_notify_pending 0\n/) }]]
--- response_body_like eval
[(qr/"status": "pending"/) x 4,
 qr/^[1-4]$/,
 qr/^killed$/,
 qr/^4$/,
 qr/^1 failed APPROVAL_REJECTED
1 failed EXPIRED
1 failed INTERNAL_PROCESSING_ERROR
1 successful null
4 payments, at most 1 each
$/,
 qr/momo_reconcile_takeovers_total [1-9]\n.*momo_notify_pending 0\n/s]
--- no_error_log eval
["[emerg]", "[crit]"]



=== TEST 3: a payment still pending at the last momo_reconcile age is logged, counted and left alone
46733123454 stays CREATED at MTN forever.
--- http_config eval
$t::MomoTest::Account . "    momo_reconcile 200ms 400ms;\n"
--- init
t::MomoTest::emu_post('/_emu/config', '{"drop_callbacks": true}');
--- request eval
["POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(phone => '46733123454'),
 "GET /metrics",
 "GET /emu/requests?path=/collection/v1_0/requesttopay/&method=GET",
 "GET /emu/count?path=/_emu/sink/notify"]
--- timeout: 25
--- response_body_filters eval
[[\&main::summary, sub { t::MomoFlow::poll_metrics(qr/result="given_up"\} 1\n/); $_[0] }],
 [\&main::summary], [\&main::summary], [\&main::summary]]
--- response_body_like eval
[qr/"status": "pending"/,
 qr/momo_pending_payments\{age="0-1m"\} 1\n.*momo_reconcile_queries_total\{result="pending"\} [12]\n.*momo_reconcile_queries_total\{result="given_up"\} 1\n/s,
 qr/^1 payments queried, at most [12] times$/,
 qr/^0$/]
--- error_log eval
qr/\[warn\] .*momo: payment "[0-9a-f-]{36}" is still pending \d+s after MTN accepted it: the reconciler stops asking/



=== TEST 4: 300 payments due at once, more than one sweep round takes (256): each is asked once and reaches the application once, and so does a payment taken after them
The sweep goes on where its previous round stopped, and starts again at
the oldest payment once it has been through them all.
--- http_config eval
$t::MomoTest::Account . "    momo_reconcile 1s 1h;\n    momo_status_rate 1000;\n"
--- init
t::MomoTest::emu_post('/_emu/config', '{"drop_callbacks": true, "final_delay_ms": 700}');
--- request eval
["GET /emu/health",
 "GET /emu/wait?path=/_emu/sink/notify&count=300&timeout_ms=60000",
 "POST /api/payments/mtn-momo\n"
 . t::MomoTest::pay_json(external_id => 'order-170-last', phone => '56733123453'),
 "GET /emu/wait?path=/_emu/sink/notify&count=301&timeout_ms=20000",
 "GET /emu/requests?path=/_emu/sink/notify",
 "GET /emu/requests?path=/collection/v1_0/requesttopay/&method=GET"]
--- timeout: 90
--- response_body_filters eval
[[sub { main::pay_burst(300) }], ([\&main::summary]) x 5]
--- response_body_like eval
[qr/^300 x 200\n$/,
 qr/^300$/,
 qr/"status": "pending"/,
 qr/^301$/,
 qr/^301 successful null\n301 payments, at most 1 each\n$/,
 qr/^301 payments queried, at most 1 times$/]
