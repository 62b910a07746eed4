# What MTN receives, byte for byte, read back from the emulator's request
# log: the token call and requesttopay carry exactly the headers and body
# the module built, and nothing of the client's request.
#
# mtn_view() prints each logged request as "METHOD PATH", its headers
# sorted, and its body as canonical JSON; values that change on every run
# are replaced by a <name> only when they are what they must be (the
# reference id the client got, a UUID v4, a token the emulator issued).

use t::MomoTest;
use JSON::PP ();
use MIME::Base64 qw(encode_base64);

plan 'no_plan';

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

our $Ref;

our $UUID4 = qr/[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}/;

# a filter for the payment's answer: remembers its reference id
sub capture_ref ($) {
    my $body = shift;
    ($Ref) = $body =~ /"reference_id": "($UUID4)"/;
    $body =~ s/\Q$Ref\E/<ref>/g if defined $Ref;
    return $body;
}

sub mtn_view ($) {
    my $rows = JSON::PP::decode_json(shift);
    my $json = JSON::PP->new->canonical;
    my $port = $Test::Nginx::Util::ServerPort;
    my $out = '';

    for my $r (@$rows) {
        my ($h, $body) = ($r->{headers}, $r->{body});
        $out .= "$r->{method} $r->{path}\n";

        for my $k (sort keys %$h) {
            my $v = $h->{$k};

            $v =~ s{^Bearer eyJ0eXAiOiJKV1QiLCJhbGciOiJSMjU2In0\.[\w-]+\.[\w-]+$}
                   {Bearer <emulator token>};
            $v = '<ref>' if $k eq 'X-Reference-Id' && defined $Ref
                            && $v eq $Ref && $v =~ /^$UUID4$/;
            $v =~ s{^http://127\.0\.0\.1:$port/api/payments/mtn-momo/callback/\Q$Ref\E/[0-9a-f]{32}$}
                   {<callback url>/<ref>/<32 hex>} if defined $Ref;
            $v = '<body length>' if $k eq 'Content-Length' && $v ne '0'
                                    && $v == length $body;
            $out .= "$k: $v\n";
        }

        $out .= 'body: ' . ($body eq '' ? '(none)'
                            : $json->encode(JSON::PP::decode_json($body)))
                . "\n";
    }

    return $out;
}

sub basic () {
    return 'Basic ' . encode_base64("$t::MomoTest::ApiUser:$t::MomoTest::ApiKey", '');
}

sub token_call (;$) {
    my $env = shift // 'sandbox';
    my $emu = "127.0.0.1:$t::MomoTest::EmuPort";
    return <<"_EOT_";
POST /collection/token/
Authorization: @{[ basic() ]}
Content-Length: 0
Host: $emu
Ocp-Apim-Subscription-Key: $t::MomoTest::SubscriptionKey
User-Agent: ngx_http_momo_module/1.0
X-Target-Environment: $env
body: (none)
_EOT_
}

sub rtp_call (@) {
    my %o = (env => 'sandbox', amount => '100', currency => 'EUR',
             phone => '56733123453', callback => 1, @_);
    my $emu = "127.0.0.1:$t::MomoTest::EmuPort";
    my $rest = '"externalId":"order-1","payeeNote":"Booking 1",'
               . qq{"payer":{"partyId":"$o{phone}","partyIdType":"MSISDN"},}
               . '"payerMessage":"Booking 1"}';
    my $cb = $o{callback}
             ? "X-Callback-Url: <callback url>/<ref>/<32 hex>\n" : '';
    return <<"_EOT_";
POST /collection/v1_0/requesttopay
Authorization: Bearer <emulator token>
Content-Length: <body length>
Content-Type: application/json
Host: $emu
Ocp-Apim-Subscription-Key: $t::MomoTest::SubscriptionKey
User-Agent: ngx_http_momo_module/1.0
${cb}X-Reference-Id: <ref>
X-Target-Environment: $o{env}
body: {"amount":"$o{amount}","currency":"$o{currency}",$rest
_EOT_
}

sub pending () {
    return '{"success": true, "payment_id": "<ref>", "reference_id": "<ref>", '
           . '"status": "pending", "message": "Payment request sent to '
           . qq{customer's mobile phone"\}\n};
}

run_tests();

__DATA__

=== TEST 1: the token call: raw Basic credentials, subscription key, environment, Content-Length 0, no body
--- request eval
["POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(),
 "GET /emu/requests?path=/collection/token/"]
--- response_body_filters eval
[[\&::capture_ref], [\&::mtn_view]]
--- response_body eval
[::pending(), ::token_call()]



=== TEST 2: requesttopay: Bearer token, the client's reference id as a UUID v4, the callback URL, and the body MTN documents
--- request eval
["POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(),
 "GET /emu/requests?path=/collection/v1_0/requesttopay"]
--- response_body_filters eval
[[\&::capture_ref], [\&::mtn_view]]
--- response_body eval
[::pending(), ::rtp_call()]



=== TEST 3: only the token call and requesttopay reach MTN, in this order
--- request eval
["POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(),
 "GET /emu/requests"]
--- response_body_filters eval
[[\&::capture_ref], [\&::mtn_view]]
--- response_body eval
[::pending(), ::token_call() . ::rtp_call()]



=== TEST 4: no client header, cookie or extra body field reaches MTN
--- more_headers
Content-Type: application/json
Cookie: session=client-cookie-secret
Authorization: Bearer client-bearer-secret
Accept-Encoding: gzip, deflate
X-Forwarded-For: 203.0.113.7
X-Custom-Header: client-custom-secret
Idempotency-Key: client-idempotency-key
Referer: http://client.example/checkout
--- request eval
["POST /api/payments/mtn-momo\n"
     . (t::MomoTest::pay_json() =~ s/^\{/{"extra_field": "client-body-secret", "payer": {"partyId": "46733123450"}, "callback_url": "http:\/\/evil.example\/", "amount_override": "1", /r),
 "GET /emu/requests"]
--- response_body_filters eval
[[\&::capture_ref], [\&::mtn_view]]
--- response_body eval
[::pending(), ::token_call() . ::rtp_call()]



=== TEST 5: an amount given as a JSON number, with leading zeros, reaches MTN as a string
--- request eval
["POST /api/payments/mtn-momo\n"
     . (t::MomoTest::pay_json(amount => 'N') =~ s/"N"/250.5/r),
 "POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(amount => '00075'),
 "GET /emu/requests?path=/collection/v1_0/requesttopay"]
--- response_body_filters eval
[[], [\&::capture_ref], [\&::mtn_view]]
--- response_body_like eval
['"status": "pending"', '"status": "pending"',
 qr/body: \{"amount":"250.5",.*body: \{"amount":"75",/s]



=== TEST 6: without momo_callback_url no X-Callback-Url is sent
--- http_config eval
$t::MomoTest::Account =~ s/^.*momo_callback_url.*\n//mr
--- request eval
["POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(),
 "GET /emu/requests?path=/collection/v1_0/requesttopay"]
--- response_body_filters eval
[[\&::capture_ref], [\&::mtn_view]]
--- response_body eval
[::pending(), ::rtp_call(callback => 0)]



=== TEST 7: mtncameroon goes in X-Target-Environment, token call included
--- http_config eval
$t::MomoTest::Account . "    momo_target_environment mtncameroon;\n"
--- init
t::MomoTest::emu_post('/_emu/config',
    '{"target_environment": "mtncameroon", "currency": "XAF"}');
--- request eval
["POST /api/payments/mtn-momo\n"
     . t::MomoTest::pay_json(currency => 'XAF', amount => '5000',
                             phone => '237677123456'),
 "GET /emu/requests"]
--- response_body_filters eval
[[\&::capture_ref], [\&::mtn_view]]
--- response_body eval
[::pending(),
 ::token_call('mtncameroon')
 . ::rtp_call(env => 'mtncameroon', currency => 'XAF', amount => '5000',
              phone => '237677123456')]



=== TEST 8: the status query: GET with Bearer token, no body and no client header
--- more_headers
Cookie: session=client-cookie-secret
Authorization: Bearer client-bearer-secret
X-Custom-Header: client-custom-secret
--- request eval
["GET /api/payments/mtn-momo/status/0b9c5149-7721-4507-ab78-3ac9271b2b81",
 "GET /emu/requests?path=/collection/v1_0/requesttopay/"]
--- error_code eval
[404, 200]
--- response_body_filters eval
[[], [\&::mtn_view]]
--- response_body eval
[qq{{"success": false, "error": {"code": "NOT_FOUND", "message": "MTN has no payment with this reference id", "retryable": false}, "reference_id": "0b9c5149-7721-4507-ab78-3ac9271b2b81"}\n},
 "GET /collection/v1_0/requesttopay/0b9c5149-7721-4507-ab78-3ac9271b2b81
Authorization: Bearer <emulator token>
Host: 127.0.0.1:$t::MomoTest::EmuPort
Ocp-Apim-Subscription-Key: $t::MomoTest::SubscriptionKey
User-Agent: ngx_http_momo_module/1.0
X-Target-Environment: sandbox
body: (none)
"]
