# A zone no client can flood: status queries to MTN stay within each
# account's budget (momo_status_rate) across all workers, whoever asks
# (status polls, callback verification); over budget the answer comes from
# the zone with its age, or is a retryable 503.  References this gateway
# never issued do not push issued payments out of the zone.

use t::MomoTest;
use t::MomoFlow;
use JSON::PP;

plan 'no_plan';

our $SmallZone = $t::MomoTest::Account;
$SmallZone =~ s/momo_zone 1m;/momo_zone 256k;/ or die "no momo_zone in the account";

our $Pending = t::MomoFlow::fixed_ref(0x160);

# the most status queries MTN saw within any 0.8 s (the gateway counts
# them in 1.1 s windows; 0.3 s for delays on the way), and their number
sub max_per_second {
    my $rows = JSON::PP::decode_json(t::MomoTest::emu_get(
        '/_emu/requests?path=/collection/v1_0/requesttopay/&method=GET'));
    my @t = sort { $a <=> $b } map { $_->{time} } @$rows;
    my ($max, $j) = (0, 0);
    for my $i (0 .. $#t) {
        $j++ while $t[$i] - $t[$j] >= 0.8;
        $max = $i - $j + 1 if $i - $j + 1 > $max;
    }
    return ($max, scalar @t);
}

sub random_ref {
    return sprintf '%08x-%04x-4%03x-a%03x-%012x', int(rand(2**32)),
        int(rand(2**16)), int(rand(2**12)), int(rand(2**12)),
        int(rand(2**48));
}

sub pay_request {
    my $body = t::MomoTest::pay_json(phone => '46733123454', @_);
    return "POST /api/payments/mtn-momo HTTP/1.1\r\nHost: localhost\r\n"
           . "Content-Type: application/json\r\n"
           . "Content-Length: " . length($body) . "\r\n\r\n$body";
}

run_tests();

__DATA__

=== TEST 1: 1000 random status probes stay within the budget and evict no issued payment
40 payments issued, then 1000 probes of references nobody issued, 50 at
once, on a zone of a few hundred records: MTN sees at most 5 status
queries in any second, no probe is answered 200, and the zone evicts
nothing.
--- http_config eval
$main::SmallZone . "    momo_status_rate 5;\n"
--- init
my $res = t::MomoFlow::burst(40, 8, sub { main::pay_request(external_id => "issued-$_[0]") });
Test::More::is(scalar(grep { $_ && $_->[0] == 200 } @$res), 40,
               "$0 TEST 1: 40 payments issued");
$res = t::MomoFlow::burst(1000, 50, sub {
    "GET /api/payments/mtn-momo/status/" . main::random_ref() . " HTTP/1.1\r\nHost: localhost\r\n\r\n"
});
Test::More::is(scalar(grep { $_ && ($_->[0] == 404 || ($_->[0] == 503 && $_->[1] =~ /"retryable": true/)) } @$res),
               1000, "$0 TEST 1: each probe is answered 404 or a retryable 503");
my ($max, $n) = main::max_per_second();
Test::More::cmp_ok($max, '<=', 5, "$0 TEST 1: at most 5 status queries a second ($n in all)");
Test::More::cmp_ok($n, '>=', 1, "$0 TEST 1: some probes reached MTN");
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
--- response_body_like eval
qr/\nmomo_status_cache_evictions_total 0\n.*\nmomo_status_budget_total\{result="granted"\} [1-9]\d*\nmomo_status_budget_total\{result="refused"\} [1-9]\d*\n/s



=== TEST 2: over budget, a pending payment is answered from the zone with its age, without MTN
momo_status_rate 1: of two polls of two payments at once, one asks MTN,
the other gets the zone's status with "checked_at", "age" and an Age
header; after a second, MTN is asked again.
--- init
my @ref = map {
    my $r = t::MomoHttp::request('POST', '/api/payments/mtn-momo',
        t::MomoTest::pay_json(phone => '46733123454', external_id => "x$_"),
        'Content-Type' => 'application/json');
    JSON::PP::decode_json($r->{body})->{reference_id}
} 1 .. 2;
Time::HiRes::sleep(1.1);
# both polls at once: one is MTN's answer, the other the zone's
my @res = map { t::MomoHttp::finish($_, 10) }
          map { t::MomoHttp::start('GET', "/api/payments/mtn-momo/status/$_") } @ref;
my @fresh = grep { !defined $_->{headers}{age} } @res;
my @stale = grep { defined $_->{headers}{age} } @res;
Test::More::is(scalar @fresh, 1, "$0 TEST 2: one poll is MTN's answer, without Age");
Test::More::like($fresh[0]{body} // '', qr/^\{"success": true, "reference_id": "[0-9a-f-]{36}", "status": "pending", "amount": "100", "currency": "EUR", "external_id": "x[12]", "financial_transaction_id": null, "reason": null\}\n$/,
                 "$0 TEST 2: ... the usual answer");
Test::More::is(scalar @stale, 1, "$0 TEST 2: the other is the zone's, with an Age header");
Test::More::is($stale[0]{status} // 0, 200, "$0 TEST 2: ... answered 200");
Test::More::like($stale[0]{body} // '', qr/^\{"success": true, "reference_id": "[0-9a-f-]{36}", "status": "pending", "amount": "100", "currency": "EUR", "external_id": "x[12]", "financial_transaction_id": null, "reason": null, "checked_at": "\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "age": [1-9]\d*\}\n$/,
                 "$0 TEST 2: ... with checked_at and age");
Test::More::like($stale[0]{headers}{age} // '', qr/^[1-9]\d*$/, "$0 TEST 2: ... and Age in seconds");
Test::More::is(t::MomoTest::emu_get('/_emu/count?path=/collection/v1_0/requesttopay/&method=GET'),
               1, "$0 TEST 2: MTN saw one status query");
Time::HiRes::sleep(1.3);
my $b = t::MomoHttp::request('GET', "/api/payments/mtn-momo/status/$ref[1]");
Test::More::unlike($b->{body}, qr/"age"/, "$0 TEST 2: a second later, MTN is asked");
--- config
    momo_status_rate 1;

    location = /api/payments/mtn-momo {
        momo_pay;
    }

    location /api/payments/mtn-momo/status/ {
        momo_status;
    }
--- request
GET /emu/count?path=/collection/v1_0/requesttopay/&method=GET
--- response_body: 2



=== TEST 3: over budget, a reference the zone knows nothing of gets a retryable 503
--- config
    momo_status_rate 1;

    location /api/payments/mtn-momo/status/ {
        momo_status;
    }
--- pipelined_requests eval
["GET /api/payments/mtn-momo/status/00000161-0000-4000-8000-000000000161",
 "GET /api/payments/mtn-momo/status/00000162-0000-4000-8000-000000000162",
 "GET /emu/count?path=/collection/v1_0/requesttopay/&method=GET"]
--- error_code eval
[404, 503, 200]
--- response_body_like eval
[qr/"code": "NOT_FOUND"/,
 qr/^\{"success": false, "error": \{"code": "STATUS_RATE_LIMITED", "message": "[^"]+", "retryable": true\}, "reference_id": "00000162-0000-4000-8000-000000000162"\}\n$/,
 qr/^1$/]



=== TEST 4: replaying one valid callback URL 40 times at once makes at most a query a second for its reference
--- init
my $r = t::MomoHttp::request('POST', '/api/payments/mtn-momo',
    t::MomoTest::pay_json(phone => '46733123454'),
    'Content-Type' => 'application/json');
my $ref = JSON::PP::decode_json($r->{body})->{reference_id};
my ($p) = grep { lc $_->{referenceId} eq lc $ref }
          @{ JSON::PP::decode_json(t::MomoTest::emu_get('/_emu/payments')) };
my ($path) = $p->{callbackUrl} =~ m{^https?://[^/]+(/.*)$};
my $body = '{"status": "SUCCESSFUL"}';
# all at once: each connection stays open until its verification is over
# (40: the test nginx has 64 connections a worker)
my $res = t::MomoFlow::burst(40, 40, sub {
    "POST $path HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
    . "Content-Length: " . length($body) . "\r\n\r\n$body"
});
Test::More::is(scalar(grep { $_ && $_->[0] == 200 } @$res), 40,
               "$0 TEST 4: 40 callbacks answered 200");
# their verifications (and rechecks, 2 s apart) run after the answers
Time::HiRes::sleep(0.5);
my ($max, $n) = main::max_per_second();
Test::More::cmp_ok($max, '<=', 2, "$0 TEST 4: at most a status query a second ($n in all)");
--- config
    location = /api/payments/mtn-momo {
        momo_pay;
    }

    location /api/payments/mtn-momo/callback/ {
        momo_callback;
    }
--- request
GET /emu/health
--- response_body_like: ok
