# Notifications until delivered: a final outcome the application does not
# acknowledge with a 2xx is posted again by the sweeping worker's timer,
# with exponential backoff (momo_notify_retry FIRST MAX TOTAL), the same
# X-Momo-Event-Id every time, and an X-Momo-Signature the application can
# verify with momo_notify_secret.  Schedules are short; counts are asserted,
# never times.

use t::MomoTest;
use t::MomoFlow;
use Digest::SHA qw(hmac_sha256_hex);
use JSON::PP;

check_accum_error_log();

plan 'no_plan';

our $Ref = t::MomoFlow::fixed_ref(0x160);
our $Ref2 = t::MomoFlow::fixed_ref(0x161);
our $Ref3 = t::MomoFlow::fixed_ref(0x162);

our $Retry = "    momo_reconcile off;\n    momo_notify_retry 200ms 400ms 1h;\n";

# the sink's requests as "notify EVENT status sig=valid|invalid|none"; the
# signature is checked with the right secret and with a wrong one
sub main::deliveries {
    my $body = shift;
    my $rows = eval { decode_json($body) };
    return t::MomoFlow::canon($body) unless ref $rows eq 'ARRAY';

    my (%ids, $out);
    for my $e (@$rows) {
        my $id = t::MomoFlow::header($e->{headers}, 'X-Momo-Event-Id') // 'none';
        if ($id ne 'none') {
            my $n = keys %ids;
            $id = $ids{$id} //= 'EVENT' . ($n + 1);
        }
        my $sig = t::MomoFlow::header($e->{headers}, 'X-Momo-Signature');
        my $check = 'none';
        if (defined $sig) {
            my ($t, $v1) = $sig =~ /^t=(\d+),v1=([0-9a-f]{64})$/;
            $check = !defined $t ? 'malformed'
                   : hmac_sha256_hex("$t.$e->{body}", 'whsec_test') ne $v1 ? 'invalid'
                   : hmac_sha256_hex("$t.$e->{body}", 'whsec_wrong') eq $v1 ? 'wrong-secret-verifies'
                   : 'valid';
        }
        my $status = (eval { decode_json($e->{body}) } || {})->{status} // '?';
        $out .= "notify $id $status sig=$check\n";
    }
    return $out;
}

# a short momo_notify_retry schedule, as long as the tries it makes take
# (10 times longer under valgrind, so that the same number fits in it)
sub main::retry_schedule (@) {
    return "    momo_notify_retry "
           . join(' ', map { t::MomoHttp::slow($_) . 'ms' } @_) . ";\n";
}

run_tests();

__DATA__

=== TEST 1: the application fails 3 times, then answers 200: the 4th try delivers, one event id, a signature that verifies
--- http_config eval
$t::MomoTest::Account . $main::Retry
--- init
# the first delivery is made by the status request or, when the sweeper's
# tick comes first (seen under valgrind), by the sweeper: 3 or 4 "sent";
# --- wait: the failed first delivery is logged before the log is read
t::MomoFlow::mtn_pay(ref => $main::Ref, external_id => 'order-160');
t::MomoTest::emu_post('/_emu/faults', '{"path": "/_emu/sink/notify", "status": 500, "times": 3}');
--- config
    momo_notify /_app/notify;
    momo_notify_secret whsec_test;

    location /api/payments/mtn-momo/status/ {
        momo_status;
    }

    location = /metrics {
        momo_metrics;
    }
--- request eval
["GET /api/payments/mtn-momo/status/$main::Ref",
 "GET /emu/wait?path=/_emu/sink/notify&count=4&timeout_ms=20000",
 "GET /emu/requests?path=/_emu/sink/notify",
 "GET /metrics"]
--- timeout: 25
--- wait: 0.3
--- response_body_filters eval
\&main::deliveries
--- response_body_like eval
[qr/"status": "successful"/,
 qr/^4$/,
 qr/^notify EVENT1 successful sig=valid
notify EVENT1 successful sig=valid
notify EVENT1 successful sig=valid
notify EVENT1 successful sig=valid
$/,
 qr/momo_notify_total\{result="ok"\} 1\nmomo_notify_total\{result="failed"\} 3\n.*momo_notify_pending 0\n.*momo_notify_retries_total\{result="sent"\} [34]\n/s]
--- error_log eval
qr/momo: notify "\/_app\/notify" of payment "00000160-0000-4000-8000-000000000160" failed \(HTTP 500\b/



=== TEST 2: without momo_notify_secret: an event id per outcome, no signature
--- http_config eval
$t::MomoTest::Account . $main::Retry
--- init
t::MomoFlow::mtn_pay(ref => $main::Ref2, external_id => 'order-161');
t::MomoFlow::mtn_pay(ref => $main::Ref3, phone => '46733123450', external_id => 'order-162');
--- config
    momo_notify /_app/notify;

    location /api/payments/mtn-momo/status/ {
        momo_status;
    }
--- request eval
["GET /api/payments/mtn-momo/status/$main::Ref2",
 "GET /api/payments/mtn-momo/status/$main::Ref3",
 "GET /emu/wait?path=/_emu/sink/notify&count=2&timeout_ms=10000",
 "GET /emu/requests?path=/_emu/sink/notify"]
--- timeout: 12
--- response_body_filters eval
\&main::deliveries
--- response_body_like eval
[qr/"status": "successful"/,
 qr/"status": "failed"/,
 qr/^2$/,
 qr/^notify EVENT1 successful sig=none
notify EVENT2 failed sig=none
$/]



=== TEST 3: an application that never acknowledges: retried with backoff, then given up after momo_notify_retry's total, logged and counted
--- http_config eval
$t::MomoTest::Account . "    momo_reconcile off;\n"
    . main::retry_schedule(100, 200, 1000)
--- init
t::MomoFlow::mtn_pay(ref => $main::Ref, external_id => 'order-160');
t::MomoTest::emu_post('/_emu/faults', '{"path": "/_emu/sink/notify", "status": 503}');
--- config
    momo_notify /_app/notify;

    location /api/payments/mtn-momo/status/ {
        momo_status;
    }

    location = /metrics {
        momo_metrics;
    }
--- request eval
["GET /api/payments/mtn-momo/status/$main::Ref",
 "GET /emu/count?path=/_emu/sink/notify",
 "GET /metrics"]
--- timeout: 30
--- response_body_filters eval
[[sub { t::MomoFlow::poll_metrics(qr/result="given_up"\} 1\n/); $_[0] }], [], []]
--- response_body_like eval
[qr/"status": "successful"/,
 qr/^[3-9]$/,
 qr/momo_notify_total\{result="ok"\} 0\n.*momo_notify_pending 0\n.*momo_notify_retries_total\{result="given_up"\} 1\n/s]
--- error_log eval
qr/\[error\] .*momo: the outcome of payment "00000160-0000-4000-8000-000000000160" was not acknowledged by momo_notify in \d+s: no more deliveries/
