use t::MomoTest;

plan "no_plan";

run_tests();

__DATA__

=== TEST 1: a payment reaches MTN and is pending
--- config
    location = /api/payments/mtn-momo {
        momo_pay;
    }
--- request eval
"POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json()
--- more_headers
Content-Type: application/json
--- response_body_like: ^\{"success": true, "payment_id": "[0-9a-f-]{36}", "reference_id": "[0-9a-f-]{36}", "status": "pending", "message": "Payment request sent to customer's mobile phone"\}$
