# No Disbursement secret (API key, subscription key, the Basic credentials
# made of them, the tokens MTN issued for the product) in the debug error
# log, an access log printing every $momo_* variable, any answer (refund,
# payout, status, balance, errors) or the metrics.  The last request reads
# MTN's request log through leaks(), which names every secret it finds
# and where.

use t::MomoTest;
use t::MomoFlow;
use JSON::PP ();
use MIME::Base64 qw(encode_base64);

plan 'no_plan';

check_accum_error_log();

our @Answers;

sub remember ($) {
    push @Answers, $_[0];
    return $_[0];
}

sub read_log ($) {
    open my $fh, '<', shift or return '';
    local $/;
    my $text = <$fh>;
    return $text // '';
}

sub leaks ($) {
    my $rows = JSON::PP::decode_json(shift);
    my %secrets = (
        'API key' => $t::MomoTest::DisbApiKey,
        'subscription key' => $t::MomoTest::DisbSubscriptionKey,
        'Basic credentials' => encode_base64(
            "$t::MomoTest::DisbApiUser:$t::MomoTest::DisbApiKey", ''),
    );
    my %tokens;

    for my $r (@$rows) {
        next unless ($r->{product} // '') eq 'disbursement';
        my $auth = $r->{headers}{Authorization} // '';
        $tokens{$1} = 1 if $auth =~ /^Bearer (\S+)$/;
    }

    my $n = 0;

    for my $t (keys %tokens) {
        $n++;
        my ($h, $p, $s) = split /\./, $t;
        $secrets{"token $n header+payload"} = substr("$h.$p", -40);
        $secrets{"token $n signature"} = substr($s, 0, 40);
    }

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

=== TEST 1: a payment, its refund, a payout, their statuses, a refused refund, the balance, the metrics: no Disbursement secret anywhere
--- log_level: debug
--- http_config eval
$t::MomoTest::Account . $t::MomoTest::Disbursement . <<'_EOC_';
    log_format momo_all 'ref=$momo_reference_id ext=$momo_external_id '
                        'st=$momo_status amt=$momo_amount cur=$momo_currency '
                        'err=$momo_error up=$momo_upstream_status '
                        'tok=$momo_token auth=[$momo_leg_authorization] '
                        'key=[$momo_leg_subscription_key] url=[$momo_leg_url]';
_EOC_
--- config
    access_log logs/access.log momo_all;

    location = /api/payments/mtn-momo {
        momo_pay;
    }

    location = /api/refunds/mtn-momo {
        momo_refund;
    }

    location = /api/payouts/mtn-momo {
        momo_payout;
    }

    location /api/payouts/mtn-momo/status/ {
        momo_payout_status;
    }

    location = /balance {
        momo_balance disbursement;
    }

    location = /metrics {
        momo_metrics;
    }
--- more_headers eval
["Content-Type: application/json\n",
 "Content-Type: application/json\nIdempotency-Key: s-1\n",
 "Content-Type: application/json\nIdempotency-Key: s-2\n",
 "Content-Type: application/json\nIdempotency-Key: s-3\n",
 "", "", "", ""]
--- request eval
["POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json(external_id => 'pay-s'),
 "POST /api/refunds/mtn-momo\n" . '{"reference_id": "00000009-0000-4000-8000-000000000009", "amount": "1", "payer_message": "r", "payee_note": "r"}',
 "POST /api/payouts/mtn-momo\n" . t::MomoTest::pay_json(external_id => 'payout-s'),
 "POST /api/payouts/mtn-momo\n" . t::MomoTest::pay_json(phone => '46733123450'),
 "GET /api/payouts/mtn-momo/status/0b9c5149-7721-4507-ab78-3ac9271b2b81",
 "GET /balance",
 "GET /metrics",
 "GET /emu/requests"]
--- error_code eval
[200, 404, 200, 200, 404, 200, 200, 200]
--- response_body_filters eval
[[\&::remember], [\&::remember], [\&::remember], [\&::remember],
 [\&::remember], [\&::remember], [\&::remember], [\&::leaks]]
--- response_body_like eval
['"status": "pending"', '"PAYMENT_NOT_FOUND"', '"payout_id"', '"payout_id"',
 '"NOT_FOUND"', '"available_balance"', 'momo_payouts_total\{result="accepted"\} 2\n',
 '^1 token\(s\) issued\n$']



=== TEST 2: a refused Disbursement API key is logged without it
--- http_config eval
$t::MomoTest::Account . $t::MomoTest::Disbursement =~ s/momo_disbursement_api_key \w+/momo_disbursement_api_key 0123456789abcdef0123456789abcdef/r
--- config
    location = /balance {
        momo_balance disbursement;
    }
--- request
GET /balance
--- error_code: 502
--- response_body_like: "UPSTREAM_AUTH_FAILED"
--- no_error_log
0123456789abcdef0123456789abcdef
MzNkN2I5ZTE1
