# No worker ever waits on MTN: with a single worker, while MTN holds one
# payment for 2 s (or the token call for 2 s), other requests to that
# worker are answered first, and the slow payment still ends with 200.
# The order is what is asserted, not durations: the fast requests are
# sent once the slow call has reached the emulator, and the slow answer
# must still be missing when they are done.

use t::MomoTest;
use t::MomoHttp;

plan 'no_plan';

workers(1);

our $Slow;

add_block_preprocessor(sub {
    my $block = shift;

    if (!defined $block->config) {
        $block->set_value('config', <<'_EOC_');
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
    }
});

# after the last fast request: the slow payment is still unanswered, then
# it completes with 200
add_response_body_check(sub {
    my ($block, $body, $req_idx) = @_;
    my $last = ref $block->request ? @{ $block->request } - 1 : 0;

    return if !defined $Slow || $req_idx != $last;

    Test::More::ok(!t::MomoHttp::answered($Slow),
                   $block->name . " - the slow payment is not answered yet");

    my $r = t::MomoHttp::finish($Slow, 5);
    undef $Slow;

    Test::More::is($r->{status}, 200,
                   $block->name . " - the slow payment then gets 200");
    Test::More::like($r->{body}, qr/"status": "pending"/,
                     $block->name . " - and is pending");
});

# starts a payment and waits until MTN (the emulator) has received $path
sub start_slow_payment ($) {
    my $path = shift;

    $Slow = t::MomoHttp::start_pay();

    Test::More::ok(t::MomoHttp::wait_for(sub {
        t::MomoTest::emu_get("/_emu/count?path=$path") eq '1'
    }, 5), "the slow call to $path has reached MTN");
}

run_tests();

__DATA__

=== TEST 1: while MTN takes 2 s on a payment, the same worker answers a status query and the metrics
--- init
t::MomoTest::emu_post('/_emu/faults',
    '{"method": "POST", "path": "/collection/v1_0/requesttopay", "delay_ms": 2000}');
::start_slow_payment('/collection/v1_0/requesttopay');
--- request eval
["GET /api/payments/mtn-momo/status/0b9c5149-7721-4507-ab78-3ac9271b2b81",
 "GET /metrics"]
--- error_code eval
[404, 200]
--- response_body_like eval
['"code": "NOT_FOUND"', 'momo_']



=== TEST 2: while MTN takes 2 s on the token call, the same worker answers another payment's validation error
--- init
t::MomoTest::emu_post('/_emu/faults',
    '{"path": "/collection/token/", "delay_ms": 2000}');
::start_slow_payment('/collection/token/');
--- more_headers
Content-Type: application/json
--- request eval
["POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(amount => '0'),
 "GET /metrics"]
--- error_code eval
[400, 200]
--- response_body_like eval
['"code": "INVALID_AMOUNT"', 'momo_']



=== TEST 3: while MTN takes 2 s on a payment, a second payment on the same worker is accepted first
--- init
t::MomoTest::emu_post('/_emu/faults',
    '{"method": "POST", "path": "/collection/v1_0/requesttopay", "delay_ms": 2000, "times": 1}');
::start_slow_payment('/collection/v1_0/requesttopay');
--- more_headers
Content-Type: application/json
--- request eval
"POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(external_id => 'order-2')
--- response_body_like: "status": "pending"
