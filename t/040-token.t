# The MTN access token: one per account in the shared zone, fetched by one
# worker at a time, refreshed when it expires or when MTN refuses it,
# kept across "nginx -s reload"; refused credentials end in 502 with the
# cause in the error log.  Counts come from the emulator's request log.

use t::MomoTest;
use t::MomoHttp;

plan 'no_plan';

# error_log patterns are looked for in the whole log of a block, not in
# what each request of a request array added
check_accum_error_log();

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

our $Pay = "POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json();
our $Tokens = "GET /emu/count?path=/collection/token/";
our $Payments = "GET /emu/count?path=/collection/v1_0/requesttopay";
our $Pending = '"status": "pending"';

# the account with one directive replaced
sub account_with ($$) {
    my ($directive, $value) = @_;
    return $t::MomoTest::Account =~ s/^(\s*$directive) \S+;/$1 $value;/mr;
}

# a port for a server of a block's own
our $SpreadPort = t::MomoTest::free_port();

# a server on it that listens with reuseport: one socket per worker, so
# that the kernel spreads the connections over both workers whatever the
# event method does; pay.log names the worker of each payment
our $SpreadServer = $t::MomoTest::Account . <<"_EOC_";
    log_format pay '\$pid \$status \$momo_token';

    server {
        listen 127.0.0.1:$SpreadPort reuseport;
        include \$TEST_NGINX_MOMO_LOCATIONS;

        location = /api/payments/mtn-momo {
            momo_pay;
            access_log logs/pay.log pay;
        }
    }
_EOC_

run_tests();

__DATA__

=== TEST 1: 50 payments across 2 workers make one token request
--- request eval
[($::Pay) x 50, $::Tokens, $::Payments]
--- error_code eval
[(200) x 52]
--- response_body_like eval
[($::Pending) x 50, '^1$', '^50$']



=== TEST 2: 40 concurrent payments on both workers while the token call is slow make one token request
They go to a server of their own that listens with reuseport: one socket
per worker, so that the kernel spreads the connections over both workers
whatever the event method does.
--- http_config eval
$::SpreadServer
--- init
t::MomoTest::emu_post('/_emu/faults',
                      '{"path": "/collection/token/", "delay_ms": 500}');
local $t::MomoHttp::Port = $::SpreadPort;
my @socks = map { t::MomoHttp::start_pay() } 1 .. 40;
my @res = map { t::MomoHttp::finish($_, 10) } @socks;
Test::More::is(scalar(grep { $_->{status} == 200 } @res), 40,
               'all 40 concurrent payments are accepted');
my $log = "$Test::Nginx::Util::LogDir/pay.log";
my @lines;
t::MomoHttp::wait_for(sub {
    open my $fh, '<', $log or return 0;
    @lines = <$fh>;
    return @lines >= 40;
}, 5);
my %pids = map { /^(\d+) / ? ($1 => 1) : () } @lines;
Test::More::is(scalar(keys %pids), 2, 'both workers took payments');
Test::More::is(scalar(grep { / 200 MISS$/ } @lines), 1,
               'one payment fetched the token ($momo_token MISS)');
Test::More::is(scalar(grep { / 200 HIT$/ } @lines), 39,
               'the others used it ($momo_token HIT)');
--- request eval
[$::Tokens, $::Payments]
--- response_body eval
["1", "40"]



=== TEST 3: an expired token is replaced by the next payment
--- init
t::MomoTest::emu_post('/_emu/config', '{"token_ttl": 1}');
t::MomoTest::emu_post('/_emu/faults',
                      '{"path": "/_emu/sink/wait", "delay_ms": 1100}');
--- request eval
[$::Pay, "GET /emu/sink/wait", $::Pay, $::Tokens, $::Payments]
--- response_body_like eval
[$::Pending, '"ok": ?true', $::Pending, '^2$', '^2$']



=== TEST 4: a 401 without statusCode drops the token; the payment is retried once with a new one
--- init
Test::More::is(t::MomoHttp::pay()->{status}, 200, 'a first payment gets a token');
t::MomoTest::emu_post('/_emu/expire-tokens', '');
--- request eval
[$::Pay, $::Tokens, $::Payments]
--- response_body_like eval
[$::Pending, '^2$', '^3$']
--- error_log
MTN refused the access token, refreshing it



=== TEST 5: a second 401 with a fresh token is UPSTREAM_AUTH_FAILED, not a loop
--- init
t::MomoTest::emu_post('/_emu/faults',
    '{"method": "POST", "path": "/collection/v1_0/requesttopay", "status": 401, '
    . '"body": {"message": "Access token is invalid or expired", "code": "UNAUTHORIZED"}}');
--- request eval
[$::Pay, $::Tokens, $::Payments]
--- error_code eval
[502, 200, 200]
--- response_body_like eval
['"code": "UPSTREAM_AUTH_FAILED"', '^2$', '^2$']
--- error_log
MTN refused a fresh access token



=== TEST 6: the token survives nginx -s reload
--- init
my $r = t::MomoHttp::pay();
Test::More::is($r->{status}, 200, 'the payment before the reload is accepted');
Test::More::ok(t::MomoHttp::replace_workers('HUP'),
               'new workers replaced the old ones after HUP');
--- request eval
[$::Pay, $::Tokens, $::Payments]
--- response_body_like eval
[$::Pending, '^1$', '^2$']
--- error_log
reconfiguring



=== TEST 7: a wrong API key is 502 UPSTREAM_AUTH_FAILED, with the cause in the error log
--- http_config eval
::account_with('momo_api_key', '00000000000000000000000000000000')
--- request eval
[$::Pay, $::Tokens, $::Payments]
--- error_code eval
[502, 200, 200]
--- response_body_like eval
[qr/\{"success": false, "error": \{"code": "UPSTREAM_AUTH_FAILED", "message": "[^"]+", "retryable": false\}/,
 '^1$', '^0$']
--- error_log eval
[qr/\[error\] .*MTN refused the credentials of API user "6f1c3a52-8d4e-4b7a-9c21-3e5f7a9b0d14" for environment "sandbox" \(HTTP 500, error "login_failed"\): check momo_api_user, momo_api_key/]



=== TEST 8: an unknown API user is 502 UPSTREAM_AUTH_FAILED
--- http_config eval
::account_with('momo_api_user', '0f1c3a52-8d4e-4b7a-9c21-3e5f7a9b0d14')
--- request eval
[$::Pay, $::Payments]
--- error_code eval
[502, 200]
--- response_body_like eval
['"code": "UPSTREAM_AUTH_FAILED"', '^0$']
--- error_log
MTN refused the credentials of API user "0f1c3a52-8d4e-4b7a-9c21-3e5f7a9b0d14"



=== TEST 9: a wrong subscription key is 502, and the error log names the subscription key
--- http_config eval
::account_with('momo_subscription_key', 'ffffffffffffffffffffffffffffffff')
--- request eval
[$::Pay, $::Tokens, $::Payments]
--- error_code eval
[502, 200, 200]
--- response_body_like eval
['"code": "UPSTREAM_AUTH_FAILED"', '^1$', '^0$']
--- error_log eval
[qr/\[error\] .*MTN refused the subscription key .*check momo_subscription_key/]



=== TEST 10: a token endpoint that drops the connection is 503 with Retry-After, nothing charged
--- init
t::MomoTest::emu_post('/_emu/faults', '{"path": "/collection/token/", "drop": true}');
--- request eval
[$::Pay, $::Tokens, $::Payments]
--- error_code eval
[503, 200, 200]
--- response_headers eval
["Retry-After: 1", "", ""]
--- response_body_like eval
['"code": "UPSTREAM_UNAVAILABLE"', '^1$', '^0$']
--- error_log
MTN's token endpoint did not answer



=== TEST 11: while one worker waits on a slow token call, another payment gives up after momo_token_wait with 503
--- http_config eval
$t::MomoTest::Account . "    momo_token_wait 300ms;\n"
--- init
t::MomoTest::emu_post('/_emu/faults',
                      '{"path": "/collection/token/", "delay_ms": 1500}');
my $first = t::MomoHttp::start_pay();
Test::More::ok(t::MomoHttp::wait_for(sub {
    t::MomoTest::emu_get('/_emu/count?path=/collection/token/') eq '1'
}, 5), 'the first payment asked MTN for a token');
my $second = t::MomoHttp::pay();
Test::More::is($second->{status}, 503, 'the second payment gets 503');
Test::More::like($second->{body}, qr/"code": "TOKEN_UNAVAILABLE"/,
                 'with TOKEN_UNAVAILABLE');
Test::More::is($second->{headers}{'retry-after'}, '1', 'and Retry-After: 1');
Test::More::ok(!t::MomoHttp::answered($first),
               'the first payment is still waiting for its token');
my $r = t::MomoHttp::finish($first, 5);
Test::More::is($r->{status}, 200, 'the first payment is then accepted');
--- request eval
[$::Tokens, $::Payments]
--- response_body eval
["1", "1"]
--- error_log
no access token after waiting 300ms



=== TEST 12: a worker that dies while it fetches the token does not block the others
Both workers are killed while one of them waits on the token call; the
payment after that gets a token at once instead of waiting for the dead
worker's lease.
--- init
t::MomoTest::emu_post('/_emu/faults',
    '{"path": "/collection/token/", "delay_ms": 3000, "times": 1}');
my $first = t::MomoHttp::start_pay();
Test::More::ok(t::MomoHttp::wait_for(sub {
    t::MomoTest::emu_get('/_emu/count?path=/collection/token/') eq '1'
}, 5), 'a worker is fetching the token');
Test::More::ok(t::MomoHttp::replace_workers('KILL'),
               'the master started new workers');
t::MomoHttp::finish($first, 1);
--- request eval
[$::Pay, $::Tokens, $::Payments]
--- response_body_like eval
[$::Pending, '^2$', '^1$']
--- error_log eval
[qr/\[alert\] .* exited on signal 9/]
--- no_error_log eval
["[crit]", "[emerg]"]



=== TEST 13: a token close to its expiry is refreshed ahead by one request, and the new one is used after
With a 16 s token, the zone stops using it 1 s before MTN does (a tenth of
its life, at most 30 s) and asks for a refresh 4 s before that (a quarter,
at most 10 minutes): a window of 3 s.  The test waits for the window on
nginx's own clock, by polling the token's seconds left in momo_metrics
(a sleep would miss it on a loaded machine); then one payment refreshes
the token and the next one uses the new token.
--- init
t::MomoTest::emu_post('/_emu/config', '{"token_ttl": 16}');
my @pay = map { t::MomoHttp::pay() } 1 .. 2;
Test::More::is(join(' ', map { $_->{headers}{'x-token'} // '-' } @pay),
               'MISS HIT', "$0 TEST 13: the first payment fetched the token, the second used it");
Test::More::is(scalar(grep { $_->{body} =~ $::Pending } @pay), 2,
               "$0 TEST 13: both payments pending");
t::MomoHttp::wait_for(sub {
    t::MomoHttp::request('GET', '/metrics')->{body}
        =~ /^momo_token_expires_in_seconds [1-3]$/m
}, 30);
--- config
    location = /api/payments/mtn-momo {
        momo_pay;
        add_header X-Token $momo_token always;
    }

    location = /metrics {
        momo_metrics;
    }
--- request eval
[$::Pay, $::Pay, $::Tokens]
--- response_headers eval
["X-Token: REFRESH", "X-Token: HIT", ""]
--- response_body_like eval
[$::Pending, $::Pending, '^2$']
--- timeout: 10



=== TEST 14: a token MTN refused in one worker is not used again by the other
Each worker keeps its own copy of the zone's fresh token, so that a
payment takes it without the zone's lock.  Twenty payments, one connection
each, to a server that listens with reuseport, go to both workers: each
holds a copy.  MTN then refuses that token: the first payment after it
gets a 401, drops the token and fetches a new one; every later payment,
in either worker, goes to MTN once, with the new token.  A worker that
kept using its copy would get a 401 of its own: a third token and more
than one payment retried.
--- http_config eval
$::SpreadServer
--- init
local $t::MomoHttp::Port = $::SpreadPort;
my $log = "$Test::Nginx::Util::LogDir/pay.log";
my @lines;
my $logged = sub {
    my ($n) = @_;
    t::MomoHttp::wait_for(sub {
        open my $fh, '<', $log or return 0;
        @lines = <$fh>;
        return @lines >= $n;
    }, 5);
};
my $pids = sub { my %p = map { /^(\d+) / ? ($1 => 1) : () } @_; scalar keys %p };

my @res = map { t::MomoHttp::pay() } 1 .. 20;
Test::More::is(scalar(grep { $_->{status} == 200 } @res), 20,
               "$0 TEST 14: 20 payments accepted with the first token");
$logged->(20);
Test::More::is($pids->(@lines), 2, "$0 TEST 14: both workers took payments");

t::MomoTest::emu_post('/_emu/expire-tokens', '');

@res = map { t::MomoHttp::pay() } 1 .. 20;
Test::More::is(scalar(grep { $_->{status} == 200 } @res), 20,
               "$0 TEST 14: 20 payments accepted after MTN refused it");
$logged->(40);
Test::More::is($pids->(@lines[20 .. 39]), 2,
               "$0 TEST 14: both workers took payments after it");
Test::More::is(scalar(grep { / 200 MISS$/ } @lines[20 .. 39]), 1,
               "$0 TEST 14: one payment fetched the new token (\$momo_token MISS)");
Test::More::is(scalar(grep { / 200 HIT$/ } @lines[20 .. 39]), 19,
               "$0 TEST 14: the others used it (\$momo_token HIT)");
--- request eval
[$::Tokens, $::Payments]
--- response_body eval
["2", "41"]
--- error_log
MTN refused the access token, refreshing it
