# The $momo_* variables in the JSON audit log of
# conf-examples/sandbox-emulator.conf (its log_format is read from that
# file, so the shipped example is what is tested): every field for a
# payment, a status, a callback and a refusal, and no secret in any line.
# Each pattern is a set of lookaheads, one per field, so that the order
# of the fields does not matter.

use t::MomoTest;
use t::MomoFlow;

plan 'no_plan';

our $Uuid = qr/[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}/;

# the example's log_format, and any map it uses
our $LogFormat = do {
    my $file = "$t::MomoTest::Root/conf-examples/sandbox-emulator.conf";
    open my $in, '<', $file or die "$file: $!";
    local $/;
    my $conf = <$in>;
    my @maps = $conf =~ /^(\s*map\s[^{]*\{.*?^\s*\})/gms;
    my ($format) = $conf =~ /^(\s*log_format\s+momo\s.*?;)\s*$/ms
        or die "no log_format momo in $file";
    join "\n", @maps, $format, '';
};

# the variables meant for the module's own subrequests to MTN, which carry
# the credentials: empty in any client request's log line
our $LegFormat = q{
    log_format legs escape=json '{"leg_url":"$momo_leg_url",'
        '"leg_authorization":"$momo_leg_authorization",'
        '"leg_reference_id":"$momo_leg_reference_id",'
        '"leg_callback_url":"$momo_leg_callback_url",'
        '"leg_target_environment":"$momo_leg_target_environment",'
        '"leg_subscription_key":"$momo_leg_subscription_key",'
        '"leg_content_type":"$momo_leg_content_type"}';
};

our $HttpConfig = $t::MomoTest::Account . $LogFormat . $LegFormat;

# what must never be in a log: the API key and the subscription key (32 hex
# digits, like the callback URL token and the callback secret, so any run
# of 32 hex digits), the Basic credentials and MTN's Bearer token (a JWT:
# "eyJ")
our $Secrets = [
    $t::MomoTest::ApiKey,
    $t::MomoTest::SubscriptionKey,
    qr/[0-9a-fA-F]{32}/,
    'Basic ',
    'Bearer',
    'eyJ',
];

sub fields {
    my %f = @_;
    my $re = join '', map { '(?=.*"' . $_ . '":' . $f{$_} . '[,}])' } sort keys %f;
    return qr/^$re/;
}

our $NoLeg = fields(map { ("leg_$_" => '""') }
                    qw(url authorization reference_id callback_url
                       target_environment subscription_key content_type));

run_tests();

__DATA__

=== TEST 1: a payment's audit line has every field, and no secret
--- http_config eval: $main::HttpConfig
--- config
    access_log logs/access.log momo;
    access_log logs/access.log legs;

    location = /api/payments/mtn-momo {
        momo_pay;
    }
--- more_headers
Content-Type: application/json
--- request eval
"POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json()
--- response_body_like: "status": "pending"
--- access_log eval
[main::fields(request => '"POST /api/payments/mtn-momo HTTP/1.1"',
              status => 200,
              reference_id => "\"$main::Uuid\"",
              external_id => '"order-1"',
              momo_status => '"pending"',
              amount => '"100"',
              currency => '"EUR"',
              financial_transaction_id => '""',
              error => '""',
              upstream_status => '"202"',
              token => '"MISS"'),
 $main::NoLeg]
--- no_access_log eval: $main::Secrets



=== TEST 2: a status's audit line has every field, and no secret
--- http_config eval: $main::HttpConfig
--- init
t::MomoFlow::mtn_pay(ref => t::MomoFlow::fixed_ref(0x140), external_id => 'order-140');
--- config
    access_log logs/access.log momo;
    access_log logs/access.log legs;

    location /api/payments/mtn-momo/status/ {
        momo_status;
    }
--- request
GET /api/payments/mtn-momo/status/00000140-0000-4000-8000-000000000140
--- response_body_like: "status": "successful"
--- access_log eval
[main::fields(request => '"GET /api/payments/mtn-momo/status/00000140-0000-4000-8000-000000000140 HTTP/1.1"',
              status => 200,
              reference_id => '"00000140-0000-4000-8000-000000000140"',
              external_id => '"order-140"',
              momo_status => '"successful"',
              amount => '"100"',
              currency => '"EUR"',
              financial_transaction_id => '"\d+"',
              error => '""',
              upstream_status => '"200"',
              token => '"MISS"'),
 $main::NoLeg]
--- no_access_log eval: $main::Secrets



=== TEST 3: a callback's audit line has every field, with the verified outcome, and no secret
The payment's line and the callback's: the emulator calls back 0.1 s
after the payment.
--- http_config eval: $main::HttpConfig
--- config
    access_log logs/access.log momo;
    access_log logs/access.log legs;

    momo_notify /_app/notify;

    location = /api/payments/mtn-momo {
        momo_pay;
    }

    location /api/payments/mtn-momo/callback/ {
        momo_callback;
    }
--- more_headers
Content-Type: application/json
--- request eval
"POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(phone => '46733123451', external_id => 'order-143')
--- response_body_like: "status": "pending"
--- access_log eval
[main::fields(request => '"POST /api/payments/mtn-momo HTTP/1.1"',
              status => 200,
              reference_id => "\"$main::Uuid\"",
              momo_status => '"pending"'),
 main::fields(request => "\"POST /api/payments/mtn-momo/callback/$main::Uuid/- HTTP/1.1\"",
              status => 200,
              reference_id => "\"$main::Uuid\"",
              external_id => '"order-143"',
              momo_status => '"failed"',
              amount => '"100"',
              currency => '"EUR"',
              financial_transaction_id => '""',
              error => '""',
              upstream_status => '"200"',
              token => '"HIT"'),
 $main::NoLeg]
--- no_access_log eval: $main::Secrets



=== TEST 4: a refused payment's audit line has the error code
--- http_config eval: $main::HttpConfig
--- config
    access_log logs/access.log momo;
    access_log logs/access.log legs;

    location = /api/payments/mtn-momo {
        momo_pay;
    }
--- more_headers
Content-Type: application/json
--- request eval
"POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(phone => '12', external_id => 'order-144')
--- error_code: 400
--- access_log eval
[main::fields(request => '"POST /api/payments/mtn-momo HTTP/1.1"',
              status => 400,
              reference_id => '""',
              external_id => '"order-144"',
              momo_status => '""',
              amount => '"100"',
              currency => '"EUR"',
              financial_transaction_id => '""',
              error => '"INVALID_PHONE"',
              upstream_status => '""',
              token => '""'),
 $main::NoLeg]
--- no_access_log eval: $main::Secrets



=== TEST 5: a forged callback's audit line shows the refusal and no token
--- http_config eval: $main::HttpConfig
--- config
    access_log logs/access.log momo;
    access_log logs/access.log legs;

    location /api/payments/mtn-momo/callback/ {
        momo_callback;
    }
--- more_headers
Content-Type: application/json
--- request
POST /api/payments/mtn-momo/callback/00000145-0000-4000-8000-000000000145/0123456789abcdef0123456789abcdef
{"status": "SUCCESSFUL"}
--- error_code: 403
--- access_log eval
[main::fields(request => '"POST /api/payments/mtn-momo/callback/00000145-0000-4000-8000-000000000145/- HTTP/1.1"',
              status => 403,
              reference_id => '""',
              momo_status => '""',
              error => '"FORBIDDEN"',
              upstream_status => '""',
              token => '""'),
 $main::NoLeg]
--- no_access_log eval: $main::Secrets



=== TEST 6: the variables are set in the request when the answer is sent
An add_header sees them, as any filter after the handler would.
--- config
    location = /api/payments/mtn-momo {
        add_header X-Momo-Reference $momo_reference_id always;
        add_header X-Momo-Status $momo_status always;
        add_header X-Momo-Error $momo_error always;
        momo_pay;
    }
--- more_headers
Content-Type: application/json
--- request eval
["POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(),
 "POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(amount => '-1')]
--- error_code eval
[200, 400]
--- raw_response_headers_like eval
[qr/\r\nX-Momo-Reference: $main::Uuid\r\nX-Momo-Status: pending\r\n/,
 qr/\r\nX-Momo-Error: INVALID_AMOUNT\r\n/]
--- response_body_like eval
[qr/"status": "pending"/,
 qr/"code": "INVALID_AMOUNT"/]
