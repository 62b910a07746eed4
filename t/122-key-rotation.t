# Rotating the API key keeps reference ids and callback URLs: both are
# keyed with the callback secret (here MTN_MOMO_CALLBACK_SECRET in the
# .env, as in production), never with the API key.  The blocks reload
# nginx with HUP, so the zone is kept; the second one gets a new API key
# from MTN (the emulator's apikey call), which makes the old one invalid,
# and a .env that differs from the first in MTN_MOMO_API_KEY only.

use t::MomoTest;
use t::MomoFlow;
use JSON::PP qw(decode_json);

use_hup();
$t::MomoTest::KeepZone = 1;

plan 'no_plan';

our $CallbackUrl;

# the reference id of Idempotency-Key rotate-1
our $Ref = t::MomoFlow::key_ref('rotate-1');

sub env_text ($) {
    my ($key) = @_;
    return <<"_EOE_";
MTN_MOMO_API_USER_ID="$t::MomoTest::ApiUser"
MTN_MOMO_API_KEY="$key"
MTN_MOMO_SUBSCRIPTION_KEY="$t::MomoTest::SubscriptionKey"
MTN_MOMO_BASE_URL="http://127.0.0.1:\$TEST_NGINX_MOMO_EMU_PORT"
MTN_MOMO_CALLBACK_URL="http://127.0.0.1:\$TEST_NGINX_SERVER_PORT/api/payments/mtn-momo/callback"
MTN_MOMO_CALLBACK_SECRET="$t::MomoTest::CallbackSecret"
_EOE_
}

# the X-Callback-Url the gateway gave MTN, from MTN's request log
sub remember_callback_url {
    my ($body) = @_;
    if (defined $body && $body =~ /^\s*\[/) {
        for my $e (@{ decode_json($body) }) {
            my $u = t::MomoFlow::header($e->{headers}, 'X-Callback-Url');
            $CallbackUrl = $u if defined $u;
        }
    }
    return t::MomoFlow::canon($body);
}

# MTN still has the payment of the first block (the emulator was reset:
# it is put back through MTN's API, with its reference id and callback
# URL), then the API key is rotated; the .env with the new key
sub rotate () {
    t::MomoFlow::mtn_pay(ref => $Ref,
                         phone => '46733123453',
                         callback_url => $CallbackUrl);

    my ($st, $res) = t::MomoFlow::http($t::MomoTest::EmuPort, 'POST',
        "/v1_0/apiuser/$t::MomoTest::ApiUser/apikey",
        { 'Ocp-Apim-Subscription-Key' => $t::MomoTest::SubscriptionKey }, '');
    die "emulator apikey: $st $res\n" unless $st == 201;

    my $key = decode_json($res)->{apiKey};
    die "the new API key is the old one\n" if $key eq $t::MomoTest::ApiKey;

    return [["../conf/momo.env", env_text($key)]];
}

# the rotation happens when the second block starts, after the emulator's
# reset (sections are evaluated before any block runs), so this runs after
# the other preprocessors
our $Blocks = 0;

push @Test::Nginx::Util::BlockPreprocessors, sub {
    my $block = shift;
    $block->set_value('user_files', rotate()) if ++$Blocks == 2;
};

run_tests();

__DATA__

=== TEST 1: a payment with an Idempotency-Key, its callback URL given to MTN
The payer's number stays pending at MTN.
--- user_files eval
[["../conf/momo.env", ::env_text($t::MomoTest::ApiKey)]]
--- http_config
    momo_zone 1m;
    momo_env_file momo.env;
--- config
    location = /api/payments/mtn-momo {
        momo_pay;
    }

    location /api/payments/mtn-momo/callback/ {
        momo_callback;
    }
--- more_headers
Content-Type: application/json
Idempotency-Key: rotate-1
--- request eval
["POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(phone => '46733123453'),
 "GET /emu/requests?path=/collection/v1_0/requesttopay"]
--- response_body_filters eval
\&::remember_callback_url
--- response_body_like eval
[qr/^\{"success": true, "payment_id": "REF1", "reference_id": "REF1", "status": "pending", /,
 qr{^POST /collection/v1_0/requesttopay ref=REF1\n$}]



=== TEST 2: after the API key is rotated and nginx reloaded, a retry keeps its reference id and MTN's callback for the payment in flight is accepted
The .env with the new key is written by rotate().  MTN's log shows the
test's own copy of the payment, then only status queries and the token
fetched with the new key: no second payment.
--- http_config
    momo_zone 1m;
    momo_env_file momo.env;
--- config
    location = /api/payments/mtn-momo {
        momo_pay;
    }

    location /api/payments/mtn-momo/callback/ {
        momo_callback;
    }
--- init
t::MomoFlow::sleep_fault(1000);
--- more_headers
Content-Type: application/json
Idempotency-Key: rotate-1
--- request eval
["POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(phone => '46733123453'),
 "POST /emu/payments/$::Ref/status\n"
     . '{"status": "SUCCESSFUL", "callback": true}',
 "GET /emu/sink/sleep/1000",
 "GET /emu/callbacks",
 "POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(phone => '46733123453'),
 "GET /emu/requests?path=/collection/"]
--- response_body_filters eval
\&t::MomoFlow::canon
--- response_body_like eval
[qr/^\{"success": true, "payment_id": "REF1", "reference_id": "REF1", "status": "pending", "message": "Payment request was already sent for this Idempotency-Key"\}\n$/,
 qr/"status": ?"SUCCESSFUL"/,
 qr/^\{"ok":true\}$/,
 qr/^callback POST -> 200 \{"success":true\}\n$/,
 qr/^\{"success": true, "payment_id": "REF1", "reference_id": "REF1", "status": "successful", /,
 qr{^POST /collection/token/
POST /collection/v1_0/requesttopay ref=REF1
(?:(?:GET /collection/v1_0/requesttopay/REF1|POST /collection/token/)\n)+$}]
