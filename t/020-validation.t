# momo_pay refuses every malformed payment before MTN sees it: its own
# HTTP status and error code, a JSON answer, and no call to MTN at all
# (the last request of each block counts what the emulator received).

use t::MomoTest;

plan 'no_plan';

# the payment location and a JSON content type, unless a block says else
add_block_preprocessor(sub {
    my $block = shift;

    if (!defined $block->config) {
        $block->set_value('config', <<'_EOC_');
    location = /api/payments/mtn-momo {
        momo_pay;
    }
_EOC_
    }

    if (!defined $block->more_headers) {
        $block->set_value('more_headers', "Content-Type: application/json\n");
    }
});

run_tests();

# a payment, then what MTN received under /collection (token included)
sub refused ($) {
    return ["POST /api/payments/mtn-momo\n$_[0]",
            "GET /emu/count?path=/collection"];
}

# the error answer, exactly: {"success": false, "error": {...}}
sub error_json ($) {
    my $code = shift;
    return qr/\A\{"success": false, "error": \{"code": "\Q$code\E", "message": "(?:[^"\\]|\\.)+", "retryable": false\}\}\n\z/;
}

sub pay (@) { t::MomoTest::pay_json(@_) }

# a payment body whose amount is a raw JSON value (number, true, ...)
sub pay_raw_amount ($) {
    my $v = shift;
    return pay(amount => 'RAW') =~ s/"RAW"/$v/r;
}

__DATA__

=== TEST 1: amount zero is refused
--- request eval
::refused(::pay(amount => '0'))
--- error_code eval
[400, 200]
--- response_body_like eval
[::error_json('INVALID_AMOUNT'), '^0$']
--- response_headers eval
["Content-Type: application/json", "Content-Type: text/plain"]



=== TEST 2: amount zero with decimals is refused
--- request eval
::refused(::pay(amount => '0.00'))
--- error_code eval
[400, 200]
--- response_body_like eval
[::error_json('INVALID_AMOUNT'), '^0$']



=== TEST 3: negative amount as a string is refused
--- request eval
::refused(::pay(amount => '-5'))
--- error_code eval
[400, 200]
--- response_body_like eval
[::error_json('INVALID_AMOUNT'), '^0$']



=== TEST 4: negative amount as a JSON number is refused
--- request eval
::refused(::pay_raw_amount('-5'))
--- error_code eval
[400, 200]
--- response_body_like eval
[::error_json('INVALID_AMOUNT'), '^0$']



=== TEST 5: amount with three decimals is refused
--- request eval
::refused(::pay(amount => '10.505'))
--- error_code eval
[400, 200]
--- response_body_like eval
[::error_json('INVALID_AMOUNT'), '^0$']



=== TEST 6: amount with an exponent in a string is refused
--- request eval
::refused(::pay(amount => '1e3'))
--- error_code eval
[400, 200]
--- response_body_like eval
[::error_json('INVALID_AMOUNT'), '^0$']



=== TEST 7: amount with an exponent as a JSON number is refused
--- request eval
::refused(::pay_raw_amount('1e3'))
--- error_code eval
[400, 200]
--- response_body_like eval
[::error_json('INVALID_AMOUNT'), '^0$']



=== TEST 8: amount that is not a number is refused
--- request eval
::refused(::pay(amount => 'abc'))
--- error_code eval
[400, 200]
--- response_body_like eval
[::error_json('INVALID_AMOUNT'), '^0$']



=== TEST 9: amount with a thousands separator is refused
--- request eval
::refused(::pay(amount => '1,000'))
--- error_code eval
[400, 200]
--- response_body_like eval
[::error_json('INVALID_AMOUNT'), '^0$']



=== TEST 10: empty amount is refused
--- request eval
::refused(::pay(amount => ''))
--- error_code eval
[400, 200]
--- response_body_like eval
[::error_json('INVALID_AMOUNT'), '^0$']



=== TEST 11: missing amount is refused
--- request eval
::refused(::pay(amount => undef))
--- error_code eval
[400, 200]
--- response_body_like eval
[::error_json('INVALID_AMOUNT'), '^0$']



=== TEST 12: amount given as true is refused
--- request eval
::refused(::pay_raw_amount('true'))
--- error_code eval
[400, 200]
--- response_body_like eval
[::error_json('INVALID_AMOUNT'), '^0$']



=== TEST 13: amount with more than 15 digits is refused
--- request eval
::refused(::pay(amount => '1234567890123456'))
--- error_code eval
[400, 200]
--- response_body_like eval
[::error_json('INVALID_AMOUNT'), '^0$']



=== TEST 14: a fraction of XAF is refused with momo_currency XAF
--- http_config eval
$t::MomoTest::Account . "    momo_target_environment mtncameroon;\n    momo_currency XAF;\n"
--- request eval
::refused(::pay(amount => '100.5', currency => 'XAF', phone => '237677123456'))
--- error_code eval
[400, 200]
--- response_body_like eval
[::error_json('INVALID_AMOUNT'), '^0$']



=== TEST 15: a fraction of XAF is refused with mtncameroon's default currency
--- http_config eval
$t::MomoTest::Account . "    momo_target_environment mtncameroon;\n"
--- request eval
::refused(::pay(amount => '100.50', currency => 'XAF', phone => '237677123456'))
--- error_code eval
[400, 200]
--- response_body_like eval
[::error_json('INVALID_AMOUNT'), '^0$']



=== TEST 16: a whole XAF amount in mtncameroon reaches MTN
--- http_config eval
$t::MomoTest::Account . "    momo_target_environment mtncameroon;\n"
--- init
t::MomoTest::emu_post('/_emu/config',
    '{"target_environment": "mtncameroon", "currency": "XAF"}');
--- request eval
["POST /api/payments/mtn-momo\n"
     . ::pay(amount => '5000', currency => 'XAF', phone => '237677123456'),
 "GET /emu/count?path=/collection/v1_0/requesttopay"]
--- error_code eval
[200, 200]
--- response_body_like eval
['"status": "pending"', '^1$']



=== TEST 17: EUR in sandbox takes two decimals
--- request eval
["POST /api/payments/mtn-momo\n" . ::pay(amount => '10.50'),
 "GET /emu/count?path=/collection/v1_0/requesttopay"]
--- error_code eval
[200, 200]
--- response_body_like eval
['"status": "pending"', '^1$']



=== TEST 18: another currency than the configured one is refused
--- request eval
::refused(::pay(currency => 'USD'))
--- error_code eval
[400, 200]
--- response_body_like eval
[::error_json('INVALID_CURRENCY'), '^0$']



=== TEST 19: XAF is refused in sandbox, whose currency is EUR
--- request eval
::refused(::pay(currency => 'XAF'))
--- error_code eval
[400, 200]
--- response_body_like eval
[::error_json('INVALID_CURRENCY'), '^0$']



=== TEST 20: missing currency is refused
--- request eval
::refused(::pay(currency => undef))
--- error_code eval
[400, 200]
--- response_body_like eval
[::error_json('INVALID_CURRENCY'), '^0$']



=== TEST 21: currency as a number is refused
--- request eval
::refused(::pay(currency => 'RAW') =~ s/"RAW"/978/r)
--- error_code eval
[400, 200]
--- response_body_like eval
[::error_json('INVALID_CURRENCY'), '^0$']



=== TEST 22: phone with 7 digits is refused
--- request eval
::refused(::pay(phone => '4673312'))
--- error_code eval
[400, 200]
--- response_body_like eval
[::error_json('INVALID_PHONE'), '^0$']



=== TEST 23: phone with 16 digits is refused
--- request eval
::refused(::pay(phone => '4673312345012345'))
--- error_code eval
[400, 200]
--- response_body_like eval
[::error_json('INVALID_PHONE'), '^0$']



=== TEST 24: phone with a letter is refused
--- request eval
::refused(::pay(phone => '4673312345a'))
--- error_code eval
[400, 200]
--- response_body_like eval
[::error_json('INVALID_PHONE'), '^0$']



=== TEST 25: phone in national form (leading 0) is refused
--- request eval
::refused(::pay(phone => '0677123456'))
--- error_code eval
[400, 200]
--- response_body_like eval
[::error_json('INVALID_PHONE'), '^0$']



=== TEST 26: missing phone is refused
--- request eval
::refused(::pay(phone => undef))
--- error_code eval
[400, 200]
--- response_body_like eval
[::error_json('INVALID_PHONE'), '^0$']



=== TEST 27: phone with a plus inside is refused
--- request eval
::refused(::pay(phone => '46+733123453'))
--- error_code eval
[400, 200]
--- response_body_like eval
[::error_json('INVALID_PHONE'), '^0$']



=== TEST 28: a leading plus, spaces and dashes are stripped from the phone
--- request eval
["POST /api/payments/mtn-momo\n" . ::pay(phone => '+56 733-123 453'),
 "GET /emu/requests?path=/collection/v1_0/requesttopay"]
--- error_code eval
[200, 200]
--- response_body_like eval
['"status": "pending"',
 qr/\\"partyId\\": ?\\"56733123453\\"/]



=== TEST 29: empty payer_message is refused
--- request eval
::refused(::pay(payer_message => ''))
--- error_code eval
[400, 200]
--- response_body_like eval
[::error_json('INVALID_PAYER_MESSAGE'), '^0$']



=== TEST 30: missing payer_message is refused
--- request eval
::refused(::pay(payer_message => undef))
--- error_code eval
[400, 200]
--- response_body_like eval
[::error_json('INVALID_PAYER_MESSAGE'), '^0$']



=== TEST 31: payer_message of 161 characters is refused
--- request eval
::refused(::pay(payer_message => 'a' x 161))
--- error_code eval
[400, 200]
--- response_body_like eval
[::error_json('INVALID_PAYER_MESSAGE'), '^0$']



=== TEST 32: each of ' & < > " in payer_message is refused
--- request eval
[(map { "POST /api/payments/mtn-momo\n" . ::pay(payer_message => "Booking $_ 1") }
     "'", '&', '<', '>', '\\"'),
 "GET /emu/count?path=/collection"]
--- error_code eval
[400, 400, 400, 400, 400, 200]
--- response_body_like eval
[(::error_json('INVALID_PAYER_MESSAGE')) x 5, '^0$']



=== TEST 33: empty payee_note is refused
--- request eval
::refused(::pay(payee_note => ''))
--- error_code eval
[400, 200]
--- response_body_like eval
[::error_json('INVALID_PAYEE_NOTE'), '^0$']



=== TEST 34: payee_note of 161 characters is refused
--- request eval
::refused(::pay(payee_note => 'b' x 161))
--- error_code eval
[400, 200]
--- response_body_like eval
[::error_json('INVALID_PAYEE_NOTE'), '^0$']



=== TEST 35: each of ' & < > " in payee_note is refused
--- request eval
[(map { "POST /api/payments/mtn-momo\n" . ::pay(payee_note => "Note $_ 1") }
     "'", '&', '<', '>', '\\"'),
 "GET /emu/count?path=/collection"]
--- error_code eval
[400, 400, 400, 400, 400, 200]
--- response_body_like eval
[(::error_json('INVALID_PAYEE_NOTE')) x 5, '^0$']



=== TEST 36: texts of exactly 160 characters, accented ones too, reach MTN
--- request eval
["POST /api/payments/mtn-momo\n"
     . ::pay(payer_message => 'a' x 160, payee_note => "\xc3\xa9" x 160),
 "GET /emu/count?path=/collection/v1_0/requesttopay"]
--- error_code eval
[200, 200]
--- response_body_like eval
['"status": "pending"', '^1$']



=== TEST 37: empty external_id is refused
--- request eval
::refused(::pay(external_id => ''))
--- error_code eval
[400, 200]
--- response_body_like eval
[::error_json('INVALID_EXTERNAL_ID'), '^0$']



=== TEST 38: missing external_id is refused
--- request eval
::refused(::pay(external_id => undef))
--- error_code eval
[400, 200]
--- response_body_like eval
[::error_json('INVALID_EXTERNAL_ID'), '^0$']



=== TEST 39: external_id of 65 characters is refused
--- request eval
::refused(::pay(external_id => 'x' x 65))
--- error_code eval
[400, 200]
--- response_body_like eval
[::error_json('INVALID_EXTERNAL_ID'), '^0$']



=== TEST 40: external_id of 64 characters reaches MTN
--- request eval
["POST /api/payments/mtn-momo\n" . ::pay(external_id => 'x' x 64),
 "GET /emu/count?path=/collection/v1_0/requesttopay"]
--- error_code eval
[200, 200]
--- response_body_like eval
['"status": "pending"', '^1$']



=== TEST 41: a body that is not JSON is refused
--- request eval
::refused('amount=100&currency=EUR&phone=56733123453')
--- error_code eval
[400, 200]
--- response_body_like eval
[::error_json('INVALID_JSON'), '^0$']



=== TEST 42: a JSON array is refused
--- request eval
::refused('[' . ::pay() . ']')
--- error_code eval
[400, 200]
--- response_body_like eval
[::error_json('INVALID_JSON'), '^0$']



=== TEST 43: a JSON string is refused
--- request eval
::refused('"100"')
--- error_code eval
[400, 200]
--- response_body_like eval
[::error_json('INVALID_JSON'), '^0$']



=== TEST 44: a duplicate key is refused
--- request eval
::refused(::pay() =~ s/^\{/{"amount": "1", /r)
--- error_code eval
[400, 200]
--- response_body_like eval
[::error_json('INVALID_JSON'), '^0$']



=== TEST 45: text after the JSON object is refused
--- request eval
::refused(::pay() . ' {}')
--- error_code eval
[400, 200]
--- response_body_like eval
[::error_json('INVALID_JSON'), '^0$']



=== TEST 46: a truncated JSON object is refused
--- request eval
::refused(::pay() =~ s/\}$//r)
--- error_code eval
[400, 200]
--- response_body_like eval
[::error_json('INVALID_JSON'), '^0$']



=== TEST 47: an empty body is refused
--- request eval
::refused('')
--- error_code eval
[400, 200]
--- response_body_like eval
[::error_json('INVALID_JSON'), '^0$']



=== TEST 48: Content-Type text/plain gets 415
--- more_headers
Content-Type: text/plain
--- request eval
::refused(::pay())
--- error_code eval
[415, 200]
--- response_body_like eval
[::error_json('UNSUPPORTED_MEDIA_TYPE'), '^0$']



=== TEST 49: no Content-Type gets 415
--- more_headers
X-Nothing: 1
--- request eval
::refused(::pay())
--- error_code eval
[415, 200]
--- response_body_like eval
[::error_json('UNSUPPORTED_MEDIA_TYPE'), '^0$']



=== TEST 50: a type that only starts like application/json gets 415
--- more_headers
Content-Type: application/jsonp
--- request eval
::refused(::pay())
--- error_code eval
[415, 200]
--- response_body_like eval
[::error_json('UNSUPPORTED_MEDIA_TYPE'), '^0$']



=== TEST 51: application/json with a charset is accepted
--- more_headers
Content-Type: application/json; charset=utf-8
--- request eval
["POST /api/payments/mtn-momo\n" . ::pay(),
 "GET /emu/count?path=/collection/v1_0/requesttopay"]
--- error_code eval
[200, 200]
--- response_body_like eval
['"status": "pending"', '^1$']



=== TEST 52: GET gets 405 with Allow: POST
--- request eval
["GET /api/payments/mtn-momo", "GET /emu/count?path=/collection"]
--- error_code eval
[405, 200]
--- response_headers eval
["Allow: POST\nContent-Type: application/json", ""]
--- response_body_like eval
[::error_json('METHOD_NOT_ALLOWED'), '^0$']



=== TEST 53: PUT with a valid payment gets 405 with Allow: POST
--- request eval
["PUT /api/payments/mtn-momo\n" . ::pay(), "GET /emu/count?path=/collection"]
--- error_code eval
[405, 200]
--- response_headers eval
["Allow: POST", ""]
--- response_body_like eval
[::error_json('METHOD_NOT_ALLOWED'), '^0$']



=== TEST 54: a body over 16k gets 413
--- request eval
::refused(::pay(payee_note => 'x' x 17000))
--- error_code eval
[413, 200]
--- response_body_like eval
[::error_json('BODY_TOO_LARGE'), '^0$']



=== TEST 55: a chunked body over 16k gets 413
--- more_headers eval
["Content-Type: application/json\nTransfer-Encoding: chunked\n", ""]
--- request eval
my $body = ::pay(payee_note => 'x' x 17000);
my $chunked = CORE::join '', map { sprintf("%x\r\n%s\r\n", length $_, $_) }
                       $body =~ /(.{1,4000})/gs;
["POST /api/payments/mtn-momo\n${chunked}0\r\n\r\n",
 "GET /emu/count?path=/collection"]
--- error_code eval
[413, 200]
--- response_body_like eval
[::error_json('BODY_TOO_LARGE'), '^0$']



=== TEST 56: an Idempotency-Key with a space is refused
--- more_headers
Content-Type: application/json
Idempotency-Key: order 1
--- request eval
::refused(::pay())
--- error_code eval
[400, 200]
--- response_body_like eval
[::error_json('INVALID_IDEMPOTENCY_KEY'), '^0$']



=== TEST 57: an Idempotency-Key of 256 characters is refused
--- more_headers eval
"Content-Type: application/json\nIdempotency-Key: " . ('k' x 256) . "\n"
--- request eval
::refused(::pay())
--- error_code eval
[400, 200]
--- response_body_like eval
[::error_json('INVALID_IDEMPOTENCY_KEY'), '^0$']



=== TEST 58: an Idempotency-Key with a non-ASCII byte is refused
--- more_headers eval
"Content-Type: application/json\nIdempotency-Key: commande-\xc3\xa9\n"
--- request eval
::refused(::pay())
--- error_code eval
[400, 200]
--- response_body_like eval
[::error_json('INVALID_IDEMPOTENCY_KEY'), '^0$']



=== TEST 59: an Idempotency-Key of 255 characters is accepted
--- more_headers eval
"Content-Type: application/json\nIdempotency-Key: " . ('k' x 255) . "\n"
--- request eval
["POST /api/payments/mtn-momo\n" . ::pay(),
 "GET /emu/count?path=/collection/v1_0/requesttopay"]
--- error_code eval
[200, 200]
--- response_body_like eval
['"status": "pending"', '^1$']



=== TEST 60: a body over client_max_body_size, refused by nginx itself, is answered as JSON with the shipped error_page
--- config
    location = /api/payments/mtn-momo {
        client_max_body_size 32k;
        error_page 413 @momo_body_too_large;
        momo_pay;
    }
--- request eval
::refused(::pay(payee_note => 'x' x 40000))
--- error_code eval
[413, 200]
--- response_headers eval
["Content-Type: application/json", ""]
--- response_body_like eval
[::error_json('BODY_TOO_LARGE'), '^0$']
