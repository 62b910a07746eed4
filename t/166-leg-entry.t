# A call to MTN enters its leg's internal location.  Once nginx has mapped
# the leg's URI to that location in a worker, later calls enter it without
# the lookup (as a named location is entered); these blocks make several
# calls in one worker and check that every one of them still gets what
# nginx's own lookup would give: the location's settings, a server-level
# rewrite of the leg's URI, and the location's client_max_body_size.

use t::MomoTest;
use JSON::PP ();

plan 'no_plan';

# one worker: what it learned from one call is what the next calls use
workers(1);
check_accum_error_log();

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
