# The payment cache survives "nginx -s reload": these blocks reload nginx
# with HUP (use_hup) instead of restarting it, so the zone, and what it
# knows, is kept from one block to the next.  The emulator is still reset
# before each block: MTN forgets the payments, a query to it would get 404.

use t::MomoTest;
use t::MomoFlow;

use_hup();
$t::MomoTest::KeepZone = 1;

plan 'no_plan';

our $Ref = t::MomoFlow::fixed_ref(0x131);

run_tests();

__DATA__

=== TEST 1: a final status is read once from MTN
--- init
t::MomoFlow::mtn_pay(ref => $main::Ref, phone => '46733123451');
--- config
    location /api/payments/mtn-momo/status/ {
        momo_status;
    }

    location = /metrics {
        momo_metrics;
    }
--- request eval
["GET /api/payments/mtn-momo/status/$main::Ref",
 "GET /api/payments/mtn-momo/status/$main::Ref",
 "GET /emu/count?path=/collection/v1_0/requesttopay/&method=GET"]
--- response_body_like eval
[qr/^\{"success": true, "reference_id": "$main::Ref", "status": "failed", "amount": "100", "currency": "EUR", "external_id": "order-1", "financial_transaction_id": null, "reason": "APPROVAL_REJECTED"\}\n$/,
 qr/^\{"success": true, "reference_id": "$main::Ref", "status": "failed", /,
 qr/^1$/]



=== TEST 2: after a reload the final status is still served from the zone, without MTN
More than a second after the query of the previous block, so that the
answer does not come from the one-second window of pending statuses.
--- init
t::MomoFlow::sleep_fault(1100);
--- config
    location /api/payments/mtn-momo/status/ {
        momo_status;
    }

    location = /metrics {
        momo_metrics;
    }
--- request eval
["GET /emu/sink/sleep/1100",
 "GET /api/payments/mtn-momo/status/$main::Ref",
 "GET /emu/count?path=/collection/v1_0/requesttopay/",
 "GET /metrics"]
--- response_body_like eval
[qr/^\{"ok":true\}$/,
 qr/^\{"success": true, "reference_id": "$main::Ref", "status": "failed", "amount": "100", "currency": "EUR", "external_id": "order-1", "financial_transaction_id": null, "reason": "APPROVAL_REJECTED"\}\n$/,
 qr/^0$/,
 qr/\nmomo_status_cache_total\{result="hit"\} 2\nmomo_status_cache_total\{result="miss"\} 1\n/]



=== TEST 3: a reload with another zone size starts a new zone: the payment is asked from MTN again
MTN, reset, does not know it any more.
--- http_config eval
(my $a = $t::MomoTest::Account) =~ s/momo_zone 1m;/momo_zone 2m;/;
$a
--- config
    location /api/payments/mtn-momo/status/ {
        momo_status;
    }
--- request eval
["GET /api/payments/mtn-momo/status/$main::Ref",
 "GET /emu/count?path=/collection/v1_0/requesttopay/"]
--- error_code eval
[404, 200]
--- response_body_like eval
[qr/^\{"success": false, "error": \{"code": "NOT_FOUND", /,
 qr/^1$/]
