# A call to MTN enters its leg's internal location.  Once nginx has mapped
# the leg's URI to that location in a worker, later calls enter it without
# the lookup (as a named location is entered); these blocks make several
# calls in one worker and check that every one of them still gets what
# nginx's own lookup would give: the location's settings, a server-level
# rewrite of the leg's URI, and the location's client_max_body_size.

use t::MomoTest;
use t::MomoHttp;
use t::MomoFlow;
use JSON::PP ();

plan 'no_plan';

# one worker: what it learned from one call is what the next calls use
workers(1);
check_accum_error_log();

$ENV{TEST_NGINX_H2_PORT} = t::MomoTest::free_port();

# the shipped locations; requesttopay adds a header of its own
$ENV{TEST_NGINX_MOMO_MARKED_LOCATIONS} =
    t::MomoTest::write_locations('momo_locations_marked.conf', sub {
        s{(location = /_momo/requesttopay \{\n)}
         {$1    proxy_set_header X-Leg-Location requesttopay;\n};
    });

# the same, with a requesttopay location that takes no body over 300
# bytes: MTN's JSON of a payment with short texts is about 180
$ENV{TEST_NGINX_MOMO_SMALL_LOCATIONS} =
    t::MomoTest::write_locations('momo_locations_small.conf', sub {
        s{(location = /_momo/requesttopay \{.*?)client_max_body_size 0;}
         {${1}client_max_body_size 300;}s;
    });

add_block_preprocessor(sub {
    my $block = shift;

    if (!defined $block->more_headers) {
        $block->set_value('more_headers', "Content-Type: application/json\n");
    }
});

our $Pay = "POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json();
our $PayLong = "POST /api/payments/mtn-momo\n"
    . t::MomoTest::pay_json(payer_message => 'm' x 150, payee_note => 'n' x 150);
our $Calls = "GET /emu/requests?path=/collection/v1_0/requesttopay";

# the emulator's requesttopay calls: how many, and how many had the header
sub marked ($) {
    my $rows = JSON::PP::decode_json(shift);
    my $marked = grep { ($_->{headers}{'X-Leg-Location'} // '')
                        eq 'requesttopay' } @$rows;
    return scalar(@$rows) . " call(s), $marked from the requesttopay location";
}

run_tests();

__DATA__

=== TEST 1: four payments in one worker: each call carries the leg location's own header
--- config
    include $TEST_NGINX_MOMO_MARKED_LOCATIONS;  # momo_locations, marked

    location = /api/payments/mtn-momo {
        momo_pay;
    }
--- request eval
[$::Pay, $::Pay, $::Pay, $::Pay, $::Calls]
--- error_code eval
[200, 200, 200, 200, 200]
--- response_body_filters eval
[[], [], [], [], [\&::marked]]
--- response_body_like eval
['"status": "pending"', '"status": "pending"', '"status": "pending"',
 '"status": "pending"', '^4 call\(s\), 4 from the requesttopay location$']



=== TEST 2: a server-level rewrite of the leg's URI applies to every call, not only to the first
--- config
    rewrite ^/_momo/requesttopay$ /_leg_moved last;

    location = /_leg_moved {
        internal;
        default_type application/json;
        return 202 "{}";
    }

    location = /api/payments/mtn-momo {
        momo_pay;
    }
--- request eval
[$::Pay, $::Pay, $::Pay, $::Calls]
--- error_code eval
[200, 200, 200, 200]
--- response_body_filters eval
[[], [], [], [\&::marked]]
--- response_body_like eval
['"status": "pending"', '"status": "pending"', '"status": "pending"',
 '^0 call\(s\), 0 from the requesttopay location$']



=== TEST 3: a body over the leg location's client_max_body_size is refused on every call, after a smaller one went through
--- config
    include $TEST_NGINX_MOMO_SMALL_LOCATIONS;  # momo_locations, small bodies

    location = /api/payments/mtn-momo {
        momo_pay;
    }
--- request eval
[$::Pay, $::PayLong, $::PayLong, $::Pay, $::Calls]
--- error_code eval
[200, 504, 504, 200, 200]
--- response_body_filters eval
[[], [], [], [], [\&::marked]]
--- response_body_like eval
['"status": "pending"', '"status": "unknown"', '"status": "unknown"',
 '"status": "pending"', '^2 call\(s\), ']



=== TEST 4: a payment cancelled by RST_STREAM while MTN has its POST, after a first payment mapped the leg: the call ends; the retry, under the same reference id, gets the payment; MTN holds it once
The cancelled call leaves nothing proven: the retry sends the payment again
with the same reference id, MTN refuses the copy (409), and the gateway
answers with what MTN has.
--- init
my $key = 'rst-166';
my $ref = t::MomoFlow::key_ref($key);
my $emu = "http://127.0.0.1:$t::MomoTest::EmuPort/_emu/count?path=/collection/v1_0/requesttopay&method=POST";
t::MomoFlow::check('TEST 4: the first payment', [t::MomoFlow::post_json(
    '/api/payments/mtn-momo', undef, t::MomoTest::pay_json())], 200, qr/"status": "pending"/);
# MTN answers the POST 2 s after it has it: the client cancels well before
t::MomoTest::emu_post('/_emu/faults', JSON::PP::encode_json(
    { method => 'POST', path => '/collection/v1_0/requesttopay', delay_ms => 2000, times => 1 }));
my $got = t::MomoFlow::h2("--cancel-when '$emu=2' --linger 1 --header Idempotency-Key:$key",
    t::MomoFlow::shq("POST /api/payments/mtn-momo " . t::MomoTest::pay_json()));
Test::More::is($got->[0]{ended}, 'cancelled', "$0 TEST 4: the stream was cancelled");
Test::More::ok(t::MomoHttp::wait_for(sub {
    grep { m{"POST /api/payments/mtn-momo HTTP/2.0"} } @{ Test::Nginx::Util::access_log_data() }
}, 10), "$0 TEST 4: the cancelled request has ended");
t::MomoFlow::check('TEST 4: the retry', [t::MomoFlow::post_json(
    '/api/payments/mtn-momo', $key, t::MomoTest::pay_json())], 200,
    qr/"reference_id": "$ref", "status": "\w+", "message": "Payment request was already sent for this Idempotency-Key"/);
my $held = JSON::PP::decode_json(t::MomoTest::emu_get('/_emu/payments'));
Test::More::is(scalar(grep { lc $_->{referenceId} eq $ref } @$held), 1,
               "$0 TEST 4: MTN holds the payment once");
--- config
    listen 127.0.0.1:$TEST_NGINX_H2_PORT http2;

    location = /api/payments/mtn-momo {
        momo_pay;
    }
--- request
GET /emu/count?path=/collection/v1_0/requesttopay&method=POST
--- response_body: 3
--- timeout: 30
