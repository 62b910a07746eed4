# How MTN's failures reach the client: no answer (timeout, dropped or
# reset connection) is 504 with the reference id and "status": "unknown";
# MTN's error bodies map to codes the client can act on; client mistakes
# that MTN reports as 500 are not retried.  The payment POST is sent once.

use t::MomoTest;
use JSON::PP ();

plan 'no_plan';

check_accum_error_log();

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
_EOC_
    }

    if (!defined $block->more_headers) {
        $block->set_value('more_headers', "Content-Type: application/json\n");
    }
});

our $Pay = "POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json();
our $Calls = "GET /emu/requests?path=/collection/v1_0/requesttopay";
our $Ref;

# requesttopay answers with this status and body, once
sub mtn_answers ($;$$) {
    my ($status, $body, $type) = @_;
    my $f = { method => 'POST', path => '/collection/v1_0/requesttopay',
              status => $status, times => 1 };
    $f->{body} = $body if defined $body;
    $f->{content_type} = $type if defined $type;
    t::MomoTest::emu_post('/_emu/faults', JSON::PP::encode_json($f));
}

sub mtn_error ($$$) {
    my ($status, $code, $message) = @_;
    mtn_answers($status, { message => $message, code => $code });
}

# the client's error answer; $tail: what follows "error"
sub error_json ($$;$) {
    my ($code, $retryable, $tail) = @_;
    $tail //= qr/, "reference_id": "[0-9a-f-]{36}"/;
    return qr/\A\{"success": false, "error": \{"code": "\Q$code\E", "message": "(?:[^"\\]|\\.)+", "retryable": $retryable\}$tail\}\n\z/;
}

# a filter for the payment's answer: remembers its reference id
sub capture_ref ($) {
    my $body = shift;
    ($Ref) = $body =~ /"reference_id": "([0-9a-f-]{36})"/;
    return $body;
}

# a filter for the emulator's log of requesttopay calls
sub calls ($) {
    my $rows = JSON::PP::decode_json(shift);
    my $same = grep { defined $Ref && $_->{headers}{'X-Reference-Id'} eq $Ref }
                    @$rows;
    return scalar(@$rows) . " call(s), $same with the reference id answered";
}

run_tests();

__DATA__

=== TEST 1: MTN slower than the read timeout: 504, "status": "unknown", the reference id MTN got
--- timeout: 6
--- init
t::MomoTest::emu_post('/_emu/faults', '{"method": "POST", "path": "/collection/v1_0/requesttopay", "delay_ms": 4000, "times": 1}');
--- request eval
[$::Pay, $::Calls]
--- error_code eval
[504, 200]
--- response_body_filters eval
[[\&::capture_ref], [\&::calls]]
--- response_body_like eval
[::error_json('UPSTREAM_TIMEOUT', 'true', qr/, "reference_id": "[0-9a-f-]{36}", "status": "unknown"/),
 '^1 call\(s\), 1 with the reference id answered$']
--- error_log eval
[qr/upstream timed out/, qr/no answer from MTN for payment "[0-9a-f-]{36}" .*outcome unknown/]



=== TEST 2: MTN drops the connection: 504 unknown, sent once
--- init
t::MomoTest::emu_post('/_emu/faults', '{"method": "POST", "path": "/collection/v1_0/requesttopay", "drop": true}');
--- request eval
[$::Pay, $::Calls]
--- error_code eval
[504, 200]
--- response_body_filters eval
[[\&::capture_ref], [\&::calls]]
--- response_body_like eval
[::error_json('UPSTREAM_TIMEOUT', 'true', qr/, "reference_id": "[0-9a-f-]{36}", "status": "unknown"/),
 '^1 call\(s\), 1 with the reference id answered$']
--- error_log
upstream prematurely closed connection



=== TEST 3: MTN resets the connection: 504 unknown, sent once
--- init
t::MomoTest::emu_post('/_emu/faults', '{"method": "POST", "path": "/collection/v1_0/requesttopay", "reset": true}');
--- request eval
[$::Pay, $::Calls]
--- error_code eval
[504, 200]
--- response_body_filters eval
[[\&::capture_ref], [\&::calls]]
--- response_body_like eval
[::error_json('UPSTREAM_TIMEOUT', 'true', qr/, "reference_id": "[0-9a-f-]{36}", "status": "unknown"/),
 '^1 call\(s\), 1 with the reference id answered$']



=== TEST 4: a currency MTN refuses (500 INVALID_CURRENCY from the emulator) is final: not retried
--- init
t::MomoTest::emu_post('/_emu/config', '{"currency": "XAF"}');
--- request eval
[$::Pay, $::Calls]
--- error_code eval
[502, 200]
--- response_body_filters eval
[[\&::capture_ref], [\&::calls]]
--- response_body_like eval
[::error_json('INVALID_CURRENCY', 'false'),
 '^1 call\(s\), 1 with the reference id answered$']
--- error_log
"INVALID_CURRENCY": the account does not take this currency



=== TEST 5: a callback host MTN refuses (500 INVALID_CALLBACK_URL_HOST from the emulator) is final: not retried
--- http_config eval
$t::MomoTest::Account =~ s{momo_callback_url http://127\.0\.0\.1:}{momo_callback_url http://localhost:}r
--- request eval
[$::Pay, $::Calls]
--- error_code eval
[502, 200]
--- response_body_filters eval
[[\&::capture_ref], [\&::calls]]
--- response_body_like eval
[::error_json('INVALID_CALLBACK_URL_HOST', 'false'),
 '^1 call\(s\), 1 with the reference id answered$']
--- error_log
momo_callback_url's host is not the providerCallbackHost



=== TEST 6: 500 NOT_ALLOWED_TARGET_ENVIRONMENT is final: not retried
--- init
::mtn_error(500, 'NOT_ALLOWED_TARGET_ENVIRONMENT', 'Target environment not allowed');
--- request eval
[$::Pay, $::Calls]
--- error_code eval
[502, 200]
--- response_body_filters eval
[[\&::capture_ref], [\&::calls]]
--- response_body_like eval
[::error_json('NOT_ALLOWED_TARGET_ENVIRONMENT', 'false'),
 '^1 call\(s\), 1 with the reference id answered$']
--- error_log
momo_target_environment does not match these credentials



=== TEST 7: 500 NOT_ALLOWED is final: not retried
--- init
::mtn_error(500, 'NOT_ALLOWED', 'Authorization failed. User does not have permission.');
--- request eval
[$::Pay, $::Calls]
--- error_code eval
[502, 200]
--- response_body_filters eval
[[\&::capture_ref], [\&::calls]]
--- response_body_like eval
[::error_json('NOT_ALLOWED', 'false'),
 '^1 call\(s\), 1 with the reference id answered$']



=== TEST 8: another 500 NOT_ALLOWED* code is final too, with MTN's code
--- init
::mtn_error(500, 'NOT_ALLOWED_FOR_THIS_ACCOUNT', 'Not allowed.');
--- request eval
[$::Pay, $::Calls]
--- error_code eval
[502, 200]
--- response_body_filters eval
[[\&::capture_ref], [\&::calls]]
--- response_body_like eval
[::error_json('NOT_ALLOWED_FOR_THIS_ACCOUNT', 'false'),
 '^1 call\(s\), 1 with the reference id answered$']
--- error_log
"NOT_ALLOWED_FOR_THIS_ACCOUNT": the API user is not allowed this operation



=== TEST 9: 500 PAYER_NOT_FOUND is the payer's problem: 422, not retryable
--- init
::mtn_error(500, 'PAYER_NOT_FOUND', 'Payer not found');
--- request eval
[$::Pay, $::Calls]
--- error_code eval
[422, 200]
--- response_body_filters eval
[[\&::capture_ref], [\&::calls]]
--- response_body_like eval
[::error_json('PAYER_NOT_FOUND', 'false'),
 '^1 call\(s\), 1 with the reference id answered$']



=== TEST 10: an HTML 500 page is 502 UPSTREAM_ERROR
--- init
::mtn_answers(500, "<html><body><h1>500 Internal Server Error</h1></body></html>",
              'text/html');
--- request eval
[$::Pay, $::Calls]
--- error_code eval
[502, 200]
--- response_body_filters eval
[[\&::capture_ref], [\&::calls]]
--- response_body_like eval
[::error_json('UPSTREAM_ERROR', 'true'),
 '^1 call\(s\), 1 with the reference id answered$']
--- error_log
MTN answered HTTP 500



=== TEST 11: 503 without a body is 503 with Retry-After
--- init
::mtn_answers(503);
--- request eval
[$::Pay, $::Calls]
--- error_code eval
[503, 200]
--- response_headers eval
["Retry-After: 1", ""]
--- response_body_filters eval
[[\&::capture_ref], [\&::calls]]
--- response_body_like eval
[::error_json('UPSTREAM_ERROR', 'true'),
 '^1 call\(s\), 1 with the reference id answered$']



=== TEST 12: 503 SERVICE_UNAVAILABLE is 503 with Retry-After and MTN's code
--- init
::mtn_error(503, 'SERVICE_UNAVAILABLE', 'Service temporary unavailable, try again later');
--- request eval
[$::Pay, $::Calls]
--- error_code eval
[503, 200]
--- response_headers eval
["Retry-After: 1", ""]
--- response_body_filters eval
[[\&::capture_ref], [\&::calls]]
--- response_body_like eval
[::error_json('SERVICE_UNAVAILABLE', 'true'),
 '^1 call\(s\), 1 with the reference id answered$']



=== TEST 13: a token call slower than the read timeout is 503, and no payment is sent
--- timeout: 6
--- init
t::MomoTest::emu_post('/_emu/faults', '{"path": "/collection/token/", "delay_ms": 4000, "times": 1}');
--- request eval
[$::Pay, $::Calls]
--- error_code eval
[503, 200]
--- response_headers eval
["Retry-After: 1", ""]
--- response_body_filters eval
[[], [\&::calls]]
--- response_body_like eval
[::error_json('UPSTREAM_UNAVAILABLE', 'true'),
 '^0 call\(s\), 0 with the reference id answered$']
--- error_log
MTN's token endpoint did not answer



=== TEST 14: a status query MTN does not answer is 504, asked once
--- init
t::MomoTest::emu_post('/_emu/faults', '{"method": "GET", "path": "/collection/v1_0/requesttopay/", "drop": true}');
--- request eval
["GET /api/payments/mtn-momo/status/0b9c5149-7721-4507-ab78-3ac9271b2b81",
 "GET /emu/count?path=/collection/v1_0/requesttopay/"]
--- error_code eval
[504, 200]
--- response_body_like eval
[::error_json('UPSTREAM_TIMEOUT', 'true', qr/, "reference_id": "0b9c5149-7721-4507-ab78-3ac9271b2b81"/),
 '^1$']
