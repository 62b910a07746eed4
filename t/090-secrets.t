# Secrets (API key, subscription key, the Basic credentials made of them,
# the callback secret, MTN's access tokens) never show in the error log,
# even at debug level (the harness' default), in any answer, in the
# metrics, or in an access log that prints every $momo_* variable.
#
# Each answer goes through the remember() filter; the last request of a
# block reads MTN's request log (where the tokens MTN issued show up as
# Bearer credentials) through leaks(), which looks for every secret in
# the answers, error.log and access.log, and reports where it found one.

use t::MomoTest;
use JSON::PP ();
use MIME::Base64 qw(encode_base64);

plan 'no_plan';

check_accum_error_log();

our $CallbackSecret = $t::MomoTest::CallbackSecret;
our @Answers;
our $Key;

add_block_preprocessor(sub {
    my $block = shift;

    @Answers = ();
    $Key = $t::MomoTest::ApiKey;

    if (!defined $block->http_config) {
        $block->set_value('http_config', $t::MomoTest::Account . <<'_EOC_');
    log_format momo_all 'ref=$momo_reference_id ext=$momo_external_id '
                        'st=$momo_status amt=$momo_amount cur=$momo_currency '
                        'fin=$momo_financial_transaction_id err=$momo_error '
                        'up=$momo_upstream_status tok=$momo_token '
                        'auth=[$momo_leg_authorization] '
                        'key=[$momo_leg_subscription_key] '
                        'url=[$momo_leg_url] cb=[$momo_leg_callback_url]';
_EOC_
    }

    if (!defined $block->config) {
        $block->set_value('config', <<'_EOC_');
    access_log logs/access.log momo_all;

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

    if (!defined $block->more_headers) {
        $block->set_value('more_headers', "Content-Type: application/json\n");
    }
});

sub remember ($) {
    push @Answers, $_[0];
    return $_[0];
}

sub read_log ($) {
    my $file = shift;
    open my $fh, '<', $file or return '';
    local $/;
    my $text = <$fh>;
    close $fh;
    return $text // '';
}

# $_[0]: the emulator's request log; the summary of where secrets showed
sub leaks ($) {
    my $rows = JSON::PP::decode_json(shift);
    my $key = $Key;
    my %secrets = (
        'API key' => $key,
        'subscription key' => $t::MomoTest::SubscriptionKey,
        'Basic credentials'
            => encode_base64("$t::MomoTest::ApiUser:$key", ''),
        'callback secret' => $CallbackSecret,
    );

    my $n = 0;
    my %tokens;

    for my $r (@$rows) {
        my $auth = $r->{headers}{Authorization} // '';
        $tokens{$1} = 1 if $auth =~ /^Bearer (\S+)$/;
    }

    for my $t (keys %tokens) {
        $n++;
        # any 40 characters of a token, wherever a log line cuts it
        my ($h, $p, $s) = split /\./, $t;
        $secrets{"token $n header+payload"} = substr("$h.$p", -40);
        $secrets{"token $n signature"} = substr($s, 0, 40);
    }

    # 0 tokens would make the test pass for the wrong reason
    my @found = ("$n token(s) issued");

    my %where = (
        'answers' => join("\n", @Answers),
        'error.log' => read_log($Test::Nginx::Util::ErrLogFile),
        'access.log' => read_log($Test::Nginx::Util::AccLogFile),
    );

    for my $w (sort keys %where) {
        for my $s (sort keys %secrets) {
            push @found, "$s in $w" if index($where{$w}, $secrets{$s}) >= 0;
        }
    }

    return join(', ', @found) . "\n";
}

run_tests();

__DATA__

=== TEST 1: a payment, its status, the metrics: no secret in the debug error log, the answers or the access log
--- log_level: debug
--- request eval
["POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(phone => '46733123450'),
 "GET /api/payments/mtn-momo/status/0b9c5149-7721-4507-ab78-3ac9271b2b81",
 "GET /metrics",
 "GET /emu/requests"]
--- error_code eval
[200, 404, 200, 200]
--- response_body_filters eval
[[\&::remember], [\&::remember], [\&::remember], [\&::leaks]]
--- response_body_like eval
['"status": "pending"', '"NOT_FOUND"', 'momo_mtn_requests_total', '^1 token\(s\) issued\n$']



=== TEST 2: a refused token (401) and its refresh leave no token in the logs
--- log_level: debug
--- request eval
["POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(),
 "POST /emu/expire-tokens",
 "POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(),
 "GET /emu/requests"]
--- response_body_filters eval
[[\&::remember], [], [\&::remember], [\&::leaks]]
--- response_body_like eval
['"status": "pending"', '"expired"', '"status": "pending"', '^2 token\(s\) issued\n$']



=== TEST 3: a refused API key is logged without the key
--- init
$::Key = '0123456789abcdef0123456789abcdef';
--- http_config eval
($t::MomoTest::Account =~ s/momo_api_key \w+/momo_api_key 0123456789abcdef0123456789abcdef/r)
. "    log_format momo_all '\$momo_error \$momo_token [\$momo_leg_authorization]';\n"
--- request eval
["POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(),
 "GET /emu/requests?path=/collection/"]
--- error_code eval
[502, 200]
--- response_body_filters eval
[[\&::remember], [\&::leaks]]
--- response_body_like eval
['"UPSTREAM_AUTH_FAILED"', '^0 token\(s\) issued\n$']
--- error_log
MTN refused the credentials of API user



=== TEST 4: $momo_leg_* are empty in the main request's access log; $momo_* show the payment
--- request eval
"POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(amount => '250')
--- response_body_like: "status": "pending"
--- access_log eval
[qr/^ref=[0-9a-f-]{36} ext=order-1 st=pending amt=250 cur=EUR fin=- err=- up=202 tok=MISS auth=\[-\] key=\[-\] url=\[-\] cb=\[-\]$/]
