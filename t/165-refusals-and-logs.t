# What "nginx -t" refuses because it could only fail at run time (more MTN
# accounts than the zone holds, a momo_notify a client could reach), a
# status nothing proves that is never "success", and the callback URL's
# token kept out of nginx's logs.

use t::MomoTest;
use t::MomoFlow;
use JSON::PP;

plan 'no_plan';

# n handler locations, each with its own API user: n MTN accounts
sub accounts {
    my $n = shift;
    return join '', map {
        my $user = sprintf '%08x-8d4e-4b7a-9c21-3e5f7a9b0d14', $_;
        "    location = /status$_ {\n        momo_api_user $user;\n"
        . "        momo_status;\n    }\n"
    } 1 .. $n;
}

# the non-debug lines of a log file
sub log_lines {
    my $file = shift;
    open my $fh, '<', $file or die "$file: $!";
    return grep { !/\[debug\]/ } <$fh>;
}

run_tests();

__DATA__

=== TEST 1: 17 MTN accounts in one configuration fail nginx -t
--- config eval
main::accounts(17)
--- must_die
--- error_log
[emerg]
uses MTN account number 17 (API user, environment, base URL and product); one momo zone holds at most 16



=== TEST 2: 16 MTN accounts start
--- config eval
main::accounts(16)
--- request
GET /emu/health
--- response_body_like: ok



=== TEST 3: momo_notify pointing at a location clients can reach fails nginx -t
--- config
    momo_notify /app/final;

    location = /app/final {
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOMO_EMU_PORT/_emu/sink/notify;
    }

    location /api/payments/mtn-momo/status/ {
        momo_status;
    }
--- must_die
--- error_log
[emerg]
momo_notify "/app/final" of the momo handler at
is not an internal location



=== TEST 4: a status MTN's answer did not settle is a retryable 503, never 200 "unknown"
MTN answers the first status query 500; the poll right after it, within
the once-a-second limit, has nothing MTN said to show.
--- init
t::MomoTest::emu_post('/_emu/faults', '{"method": "GET", "path": "/collection/v1_0/requesttopay/", "status": 500, "times": 1}');
--- config
    location /api/payments/mtn-momo/status/ {
        momo_status;
    }
--- pipelined_requests eval
["GET /api/payments/mtn-momo/status/00000165-0000-4000-8000-000000000165",
 "GET /api/payments/mtn-momo/status/00000165-0000-4000-8000-000000000165"]
--- error_code eval
[502, 503]
--- response_body_like eval
[qr/"success": false/,
 qr/^\{"success": false, "error": \{"code": "STATUS_UNKNOWN", "message": "[^"]+", "retryable": true\}, "reference_id": "00000165-0000-4000-8000-000000000165"\}\n$/]



=== TEST 5: with momo_callback_verify off, no error-log or access-log line carries a valid callback token
The notify after the callback fails, so that nginx logs an error with the
callback's request line.
--- init
t::MomoTest::emu_post('/_emu/faults', '{"path": "/_emu/sink/notify", "status": 500, "times": 1}');
my $r = t::MomoHttp::request('POST', '/api/payments/mtn-momo',
    t::MomoTest::pay_json(phone => '46733123454'),
    'Content-Type' => 'application/json');
my $ref = JSON::PP::decode_json($r->{body})->{reference_id};
my ($p) = grep { lc $_->{referenceId} eq lc $ref }
          @{ JSON::PP::decode_json(t::MomoTest::emu_get('/_emu/payments')) };
my ($path) = $p->{callbackUrl} =~ m{^https?://[^/]+(/.*)$};
my ($token) = $path =~ m{/([^/]+)$};
$r = t::MomoHttp::request('POST', $path, '{"status": "SUCCESSFUL", "financialTransactionId": "123456789"}',
                          'Content-Type' => 'application/json');
Test::More::is($r->{status}, 200, "$0 TEST 5: the callback is accepted");
my $failed = qr{notify .* failed.*request: "POST /api/payments/mtn-momo/callback/$ref/\*\*\* HTTP/1.1"};
my $logged = qr{"POST /api/payments/mtn-momo/callback/$ref/\*\*\* HTTP/1.1" 200 };
# the notify's failure is logged once its answer is read, and the
# callback's access-log line only after that, when the request that
# carried the notify is freed (the client has had its 200 long before):
# wait for both lines (bounded, longer under valgrind), not a fixed pause
t::MomoHttp::wait_for(sub {
    (grep { /$failed/ } main::log_lines($Test::Nginx::Util::ErrLogFile))
    && (grep { /$logged/ } main::log_lines($Test::Nginx::Util::AccLogFile))
}, 10);
my @err = main::log_lines($Test::Nginx::Util::ErrLogFile);
my @acc = main::log_lines($Test::Nginx::Util::AccLogFile);
Test::More::ok((grep { /$failed/ } @err),
               "$0 TEST 5: the failed notify is logged with the masked request line");
Test::More::ok((grep { /$logged/ } @acc),
               "$0 TEST 5: the access log shows the masked request line");
Test::More::is(scalar(grep { index($_, $token) >= 0 } @err, @acc), 0,
               "$0 TEST 5: no log line carries the token");
--- config
    momo_callback_verify off;
    momo_notify /_app/notify;

    location = /api/payments/mtn-momo {
        momo_pay;
    }

    location /api/payments/mtn-momo/callback/ {
        momo_callback;
    }
--- request
GET /emu/health
--- response_body_like: ok
