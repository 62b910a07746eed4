# Every answer is an answer, whatever MTN sends.  Answers over
# subrequest_output_buffer_size (10 MB, on the token and payment legs,
# a 202 included) and answers dripped a byte at a time end in the
# documented JSON error within the locations' timeouts plus a margin; an
# access_token with CR/LF never reaches a header; a token longer than the
# zone keeps is refused for every payment alike; expires_in of 2^63-1 is
# clamped, so the token is fetched once; a payment body that nginx kept
# in a temporary file (over client_body_buffer_size) is read.

use t::MomoTest;
use JSON::PP ();
use File::Basename ();

plan 'no_plan';

check_accum_error_log();

# the shipped locations with 1 s connect and send timeouts and 2 s read
# timeouts: a call's deadline is then 1 + 1 + 2 s and the margin


$ENV{TEST_NGINX_MOMO_FAST_LOCATIONS} =
    t::MomoTest::write_locations('momo_locations_fast.conf', sub {
        s/proxy_(connect|send)_timeout \d+s;/proxy_$1_timeout 1s;/g;
        s/proxy_read_timeout \d+s;/proxy_read_timeout 2s;/g;
    });

add_block_preprocessor(sub {
    my $block = shift;

    if (!defined $block->config) {
        $block->set_value('config', <<'_EOC_');
    include $TEST_NGINX_MOMO_FAST_LOCATIONS;  # momo_locations, fast

    location = /api/payments/mtn-momo {
        momo_pay;
    }

    location /api/payments/mtn-momo/status/ {
        momo_status;
    }
_EOC_
    }

    if (!defined $block->more_headers) {
        $block->set_value('more_headers', "Content-Type: application/json\n");
    }
});

our $Pay = "POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json();
our $Unknown = '7c1e9a44-2b6d-4f0e-9a3b-5d8c7e6f1a20';

sub fault ($) {
    t::MomoTest::emu_post('/_emu/faults', JSON::PP::encode_json(shift));
}

sub error_json ($$;$) {
    my ($code, $retryable, $tail) = @_;
    $tail //= qr/(?:, "reference_id": "[0-9a-f-]{36}")?/;
    return qr/\A\{"success": false, "error": \{"code": "\Q$code\E", "message": "(?:[^"\\]|\\.)+", "retryable": $retryable\}$tail\}\n\z/;
}

# a valid payment of $len bytes: JSON whitespace after the brace
sub padded ($) {
    my $len = shift;
    my $json = t::MomoTest::pay_json();
    return '{' . (' ' x ($len - length $json)) . substr($json, 1);
}

our $Unknown504 = error_json('UPSTREAM_TIMEOUT', 'true',
    qr/, "reference_id": "[0-9a-f-]{36}", "status": "unknown"/);

run_tests();

__DATA__

=== TEST 1: a 10 MB answer from the token endpoint: JSON 503, nothing charged
--- init
::fault({ path => '/collection/token/', hostile => 'big', times => 1 });
--- request eval
[$::Pay, "GET /emu/count?path=/collection/v1_0/requesttopay"]
--- error_code eval
[503, 200]
--- response_body_like eval
[::error_json('UPSTREAM_UNAVAILABLE', 'true'), '^0$']
--- error_log
is larger than its subrequest_output_buffer_size



=== TEST 2: a 10 MB 202 from requesttopay: JSON 504 with the reference id and "status": "unknown"
--- init
::fault({ method => 'POST', path => '/collection/v1_0/requesttopay',
          hostile => 'big', status => 202, times => 1 });
--- request eval
$::Pay
--- error_code: 504
--- response_body_like eval
$::Unknown504
--- error_log
is larger than its subrequest_output_buffer_size



=== TEST 3: a 10 MB chunked answer (no length) to the status query: JSON 504 in time
--- init
::fault({ method => 'GET', path => '/collection/v1_0/requesttopay/',
          hostile => 'big', chunked => JSON::PP::true, times => 1 });
--- request eval
"GET /api/payments/mtn-momo/status/$::Unknown"
--- error_code: 504
--- response_body_like eval
::error_json('UPSTREAM_TIMEOUT', 'true', qr/, "reference_id": "$::Unknown"/)
--- error_log
is larger than its subrequest_output_buffer_size



=== TEST 4: requesttopay drips its 202 a byte every 0.5 s: the call's deadline ends it with JSON 504
--- timeout: 15
--- init
::fault({ method => 'POST', path => '/collection/v1_0/requesttopay',
          hostile => 'drip', status => 202, times => 1 });
--- request eval
$::Pay
--- error_code: 504
--- response_body_like eval
$::Unknown504
--- error_log
took longer than its location's timeouts allow



=== TEST 5: the token endpoint drips its answer: JSON 503 in time, nothing charged
--- timeout: 15
--- init
::fault({ path => '/collection/token/', hostile => 'drip', times => 1 });
--- request eval
[$::Pay, "GET /emu/count?path=/collection/v1_0/requesttopay"]
--- error_code eval
[503, 200]
--- response_body_like eval
[::error_json('UPSTREAM_UNAVAILABLE', 'true'), '^0$']
--- error_log
took longer than its location's timeouts allow



=== TEST 6: the status query drips its answer: JSON 504 in time
--- timeout: 15
--- init
::fault({ method => 'GET', path => '/collection/v1_0/requesttopay/',
          hostile => 'drip', times => 1 });
--- request eval
"GET /api/payments/mtn-momo/status/$::Unknown"
--- error_code: 504
--- response_body_like eval
::error_json('UPSTREAM_TIMEOUT', 'true', qr/, "reference_id": "$::Unknown"/)
--- error_log
took longer than its location's timeouts allow



=== TEST 7: an access_token with CR/LF is refused and never sent; the next payment gets a clean token
--- init
::fault({ path => '/collection/token/', hostile => 'token_crlf', times => 1 });
--- request eval
[$::Pay, $::Pay, "GET /emu/requests?path=/collection/v1_0/requesttopay"]
--- error_code eval
[502, 200, 200]
--- response_body_like eval
[::error_json('UPSTREAM_ERROR', 'true'), '"status": "pending"',
 '^\[\{(?!.*X-Injected).*\}\]$']
--- error_log eval
qr/MTN's access token is refused: byte \d+ \(0x0d\) cannot be sent in a header/



=== TEST 8: expires_in of 2^63-1 is clamped: three payments, one token call
--- init
::fault({ path => '/collection/token/', hostile => 'token_huge_expiry', times => 1 });
--- request eval
[$::Pay, $::Pay, $::Pay, "GET /emu/count?path=/collection/token/"]
--- error_code eval
[200, 200, 200, 200]
--- response_body_like eval
['"status": "pending"', '"status": "pending"', '"status": "pending"', '^1$']



=== TEST 9: a 5000-byte token is refused for every payment alike, with a clear log line, and never sent
--- init
::fault({ path => '/collection/token/', hostile => 'token_long' });
--- request eval
[$::Pay, $::Pay, $::Pay, "GET /emu/count?path=/collection/v1_0/requesttopay"]
--- error_code eval
[502, 502, 502, 200]
--- response_body_like eval
[::error_json('UPSTREAM_ERROR', 'true'), ::error_json('UPSTREAM_ERROR', 'true'),
 ::error_json('UPSTREAM_ERROR', 'true'), '^0$']
--- error_log
MTN's access token of 5000 bytes is refused: the gateway keeps tokens of at most 4096 bytes



=== TEST 10: a 12 KB payment body, which nginx keeps in a temporary file, is read
--- config
    include $TEST_NGINX_MOMO_FAST_LOCATIONS;  # momo_locations, fast

    location = /api/payments/mtn-momo {
        client_body_buffer_size 8k;
        momo_pay;
    }
--- request eval
"POST /api/payments/mtn-momo\n" . ::padded(12 * 1024)
--- error_code: 200
--- response_body_like: "status": "pending"
--- error_log
a client request body is buffered to a temporary file



=== TEST 11: a 16 KB body kept in a file because client_body_in_file_only is on is read too
--- config
    include $TEST_NGINX_MOMO_FAST_LOCATIONS;  # momo_locations, fast

    location = /api/payments/mtn-momo {
        client_body_in_file_only clean;
        momo_pay;
    }
--- request eval
"POST /api/payments/mtn-momo\n" . ::padded(16384)
--- error_code: 200
--- response_body_like: "status": "pending"
