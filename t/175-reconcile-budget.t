# The reconciler draws on the same per-account status budget as the
# clients' polls (momo_status_rate), across all workers, and uses only
# what the clients leave: over a 20 s run with 2 workers, 500 payments
# pending and clients polling hard, MTN never sees more status queries per
# second than the budget (counted in the emulator's request log), and the
# sweep still makes progress without querying a payment twice.

use t::MomoTest;
use t::MomoFlow;
use JSON::PP;
use Time::HiRes ();

plan 'no_plan';

our $Rate = 10;
our $Polled = 5;        # the payments the clients poll
our $Run = 20;          # seconds, from the first payment to the last poll

our (@Refs, $Start);

sub pay_request {
    my $body = t::MomoTest::pay_json(phone => '46733123454',
                                     external_id => "order-175-$_[0]");
    return "POST /api/payments/mtn-momo HTTP/1.1\r\nHost: localhost\r\n"
           . "Content-Type: application/json\r\n"
           . "Content-Length: " . length($body) . "\r\n\r\n$body";
}

sub poll_request {
    return "GET /api/payments/mtn-momo/status/$Refs[$_[0] % $Polled]"
           . " HTTP/1.1\r\nHost: localhost\r\n\r\n";
}

# MTN's status queries (emulator time, reference id), in time order
sub status_queries {
    my $rows = decode_json(t::MomoTest::emu_get(
        '/_emu/requests?path=/collection/v1_0/requesttopay/&method=GET'));
    return sort { $a->[0] <=> $b->[0] }
           map { [$_->{time}, $_->{path} =~ m{/([0-9a-f-]{36})}i ? lc $1 : '?'] }
           @$rows;
}

# the most queries in one second of the emulator's clock, and the most
# within any 0.8 s (the gateway keeps any 1.1 s of grants within the rate:
# 0.3 s are left for the queries' way to the emulator's log)
sub per_second {
    my @t = map { $_->[0] } @_;
    my (%sec, $max_sec, $max_win);
    $sec{int $_}++ for @t;
    ($max_sec) = sort { $b <=> $a } values %sec;
    my $j = 0;
    $max_win = 0;
    for my $i (0 .. $#t) {
        $j++ while $t[$i] - $t[$j] >= 0.8;
        $max_win = $i - $j + 1 if $i - $j + 1 > $max_win;
    }
    return ($max_sec // 0, $max_win, scalar keys %sec);
}

run_tests();

__DATA__

=== TEST 1: 500 pending payments swept while clients poll hard: MTN sees at most momo_status_rate status queries a second
The clients poll 5 of the payments as fast as 20 connections allow; the
sweep queries the others once each (one age in the run: 1 s, then the
age limit at 10 min), with what the clients leave of the budget.
--- http_config eval
$t::MomoTest::Account
. "    momo_status_rate $main::Rate;\n"
. "    momo_reconcile 1s 10m;\n"
--- init
t::MomoTest::emu_post('/_emu/config', '{"drop_callbacks": true}');
$main::Start = Time::HiRes::time();
my $res = t::MomoFlow::burst(500, 20, \&main::pay_request);
@main::Refs = map { $_ && $_->[1] =~ /"reference_id": "([0-9a-f-]{36})"/ ? $1 : () } @$res;
Test::More::is(scalar @main::Refs, 500, "$0 TEST 1: 500 payments pending");

my ($polls, $answered, $stale) = (0, 0, 0);
while (Time::HiRes::time() - $main::Start < $main::Run) {
    my $res = t::MomoFlow::burst(200, 20, \&main::poll_request);
    $polls += 200;
    for (@$res) {
        next unless $_;
        $answered++ if $_->[0] == 200 && $_->[1] =~ /"status": "pending"/;
        $stale++ if $_->[1] =~ /"age": \d+/;
    }
}
Test::More::is($answered, $polls, "$0 TEST 1: every poll answered 200, pending ($polls)");
Test::More::cmp_ok($stale, '>', 0, "$0 TEST 1: ... some from the zone, over budget");

my @q = main::status_queries();
my ($max_sec, $max_win, $secs) = main::per_second(@q);
Test::More::cmp_ok($max_sec, '<=', $main::Rate,
                   "$0 TEST 1: at most $main::Rate status queries in any second of MTN's clock (" . scalar(@q) . " in $secs s)");
Test::More::cmp_ok($max_win, '<=', $main::Rate,
                   "$0 TEST 1: ... and in any 0.8 s");
Test::More::cmp_ok(scalar @q, '<=', $main::Rate * ($q[-1][0] - $q[0][0] + 1.1),
                   "$0 TEST 1: ... and in all, at most $main::Rate a second from the first to the last");

my %polled = map { $_ => 1 } @main::Refs[0 .. $main::Polled - 1];
my %swept;
$swept{$_->[1]}++ for grep { !$polled{$_->[1]} } @q;
my @twice = grep { $swept{$_} > 1 } keys %swept;
Test::More::cmp_ok(scalar keys %swept, '>=', 10,
                   "$0 TEST 1: the sweep queried unpolled payments (" . scalar(keys %swept) . ")");
Test::More::is(scalar @twice, 0, "$0 TEST 1: ... none twice");
Test::More::cmp_ok(scalar(@q) - scalar(keys %swept), '>=', 2 * $main::Polled,
                   "$0 TEST 1: the clients' polls reached MTN too");
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
--- request
GET /metrics
--- timeout: 60
--- response_body_like eval
qr/\nmomo_status_cache_evictions_total 0\n.*\nmomo_status_budget_total\{result="granted"\} [1-9]\d*\nmomo_status_budget_total\{result="refused"\} [1-9]\d*\n.*\nmomo_reconcile_queries_total\{result="pending"\} (?:[2-9]\d|\d{3,})\n.*\nmomo_reconcile_queries_total\{result="deferred"\} [1-9]\d*\n/s
