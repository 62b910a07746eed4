# momo_zone state=PATH: the zone's payments and their schedules survive a
# stop (QUIT) and a crash (KILL of the master and the workers).  The blocks
# go on from one another: MTN (the emulator) keeps its payments, nginx is
# restarted between blocks.  A truncated file and one from another version
# are set aside and the zone starts without them.  The refund ledger (each
# payment's refunds and reservations) survives both restarts too.  Counts,
# never times.

use t::MomoTest;
use t::MomoFlow;
use JSON::PP;
use POSIX qw(SIGKILL);
use Compress::Zlib ();

$t::MomoTest::KeepMtn = 1;

# what is shown is a restart: never a reload, even under TEST_NGINX_USE_HUP
$Test::Nginx::Util::UseHup = 0;

plan 'no_plan';

our $State = "$ENV{TEST_NGINX_SERVROOT}-momo.state";
our $Trunc = "$ENV{TEST_NGINX_SERVROOT}-momo-trunc.state";
our $Other = "$ENV{TEST_NGINX_SERVROOT}-momo-other.state";
our $Ledger = "$ENV{TEST_NGINX_SERVROOT}-momo-ledger.state";
our $Big = "$ENV{TEST_NGINX_SERVROOT}-momo-big.state";
our $BigGrown = "$ENV{TEST_NGINX_SERVROOT}-momo-big-grown.state";
our $BigWalk = "$ENV{TEST_NGINX_SERVROOT}-momo-big-walk.state";

unlink glob("$ENV{TEST_NGINX_SERVROOT}-momo*.state*");

END { unlink glob("$ENV{TEST_NGINX_SERVROOT}-momo*.state*") }

# a file of a future version of the module
open my $fh, '>', $Other or die "$Other: $!";
print $fh pack('a8 L L Q Q L L', 'MOMOSTAT', 999, 400, 0, 0, 0, 0);
close $fh;

# a file of version 1 (before the ledger was kept), empty and valid then
open $fh, '>', $Ledger or die "$Ledger: $!";
print $fh pack('a8 L L Q Q L L', 'MOMOSTAT', 1, 400, 0, 0, 0, 0);
close $fh;

sub main::http_config {
    my ($path, $extra) = @_;
    my $c = $t::MomoTest::Account
            . "    momo_reconcile 1s 2s 5s 60s;\n"
            . "    momo_notify_retry 300ms 1s 1h;\n" . ($extra // '');
    $c =~ s/momo_zone 1m;/momo_zone 1m state=$path;/;
    return $c;
}

our $Config = <<'_EOC_';
    location = /api/payments/mtn-momo {
        momo_pay;
    }

    location = /metrics {
        momo_metrics;
    }

    location ~ ^/_app/notify/(\w+)$ {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOMO_EMU_PORT/_emu/sink/$1;
    }
_EOC_

# two fail, two succeed at once (after final_delay_ms); the fifth stays
# pending for pending_seconds
our @Pay = map {
    "POST /api/payments/mtn-momo\n"
    . t::MomoTest::pay_json(external_id => "order-180-$_",
                            phone => ('46733123451', '56733123453',
                                      '46733123451', '56733123453',
                                      '46733123453')[$_])
} 0 .. 4;

our $Json = "Content-Type: application/json";

sub main::headers {
    my ($key, $n) = @_;
    return ["$Json\nIdempotency-Key: $key", ($Json) x 4, ('') x $n];
}

# what the sink got, per payment: "REF1 2 successful" (deliveries, status);
# the idempotent payment of the first block is called SAME
sub main::sink {
    my $body = shift;
    my $rows = eval { decode_json($body) };
    return t::MomoFlow::canon($body) unless ref $rows eq 'ARRAY';
    my (%n, %st);
    for my $e (@$rows) {
        my $p = eval { decode_json($e->{body}) } || {};
        $n{$p->{reference_id}}++;
        $st{$p->{reference_id}} = $p->{status};
    }
    my ($max) = sort { $b <=> $a } values %n;
    my %kinds;
    $kinds{$st{$_}}++ for keys %st;
    return scalar(keys %n) . " payments, at most $max each: "
           . join(', ', map { "$kinds{$_} $_" } sort keys %kinds) . "\n";
}

# the most status queries MTN saw for one payment, all blocks together
sub main::queries {
    my $body = shift;
    my $rows = eval { decode_json($body) };
    return t::MomoFlow::canon($body) unless ref $rows eq 'ARRAY';
    my %n;
    $n{$_->{path}}++ for @$rows;
    my ($max) = sort { $b <=> $a } values %n;
    return scalar(keys %n) . " payments queried, at most $max times\n";
}

sub main::same_ref {
    my $body = shift;
    my $ref = t::MomoFlow::prev_ref(1);
    $body =~ s/\Q$ref\E/SAME/g;
    return t::MomoFlow::canon($body);
}

# nginx's momo_state_writes_total{result="ok"}
sub main::writes {
    return main::get('/metrics') =~ /momo_state_writes_total\{result="ok"\} (\d+)/ ? $1 : -1;
}

# nginx's /metrics, polled until a state write newer than the first look
sub main::state_written {
    my $first = main::writes();
    for (1 .. 200) {
        last if main::writes() > $first;
        select undef, undef, undef, 0.05;
    }
    return main::writes() > $first ? "written\n" : "not written\n";
}

# the crash: SIGKILL to the master and its workers, nothing at exit
sub main::crash {
    my $body = shift;
    my $pid = t::MomoHttp::master_pid();
    my @kids = t::MomoHttp::worker_pids($pid);
    kill SIGKILL, $pid, @kids;
    return $body;
}

# a copy of the state file, cut in the middle
sub main::truncate_copy {
    my $body = shift;
    open my $in, '<:raw', $main::State or return "no state file\n";
    local $/;
    my $data = <$in>;
    close $in;
    open my $out, '>:raw', $main::Trunc or die "$main::Trunc: $!";
    print $out substr($data, 0, int(length($data) / 2));
    close $out;
    return $body;
}

our $Refunds = <<'_EOC_';
    location /api/payments/mtn-momo/status/ {
        momo_status;
    }

    location = /api/refunds/mtn-momo {
        momo_refund;
    }

    location /api/refunds/mtn-momo/status/ {
        momo_refund_status;
    }
_EOC_

# the ledger blocks' payments and refund: P1, P2, the refund of P2
our @L;

sub main::refund {
    my ($key, $ref, $amount) = @_;
    return [t::MomoFlow::post_json('/api/refunds/mtn-momo', $key,
        encode_json({ reference_id => $ref, amount => $amount,
                      payer_message => 'Refund', payee_note => 'Refund' }))];
}

sub main::pay {
    my ($st, $body) = t::MomoFlow::post_json('/api/payments/mtn-momo', undef,
                                             t::MomoTest::pay_json(@_));
    return $body =~ /"reference_id": "([0-9a-f-]{36})"/ ? $1 : die "payment: $st $body\n";
}

sub main::get {
    my (undef, $body) = t::MomoFlow::http($ENV{TEST_NGINX_SERVER_PORT}, 'GET', $_[0]);
    return $body;
}

# the state file written twice since the first look, zone changes (a
# refused refund) going on meanwhile: the second write's snapshot is
# newer than everything before the first look
sub main::ledger_written {
    my $body = shift;
    my $first = main::writes();
    for (1 .. 100) {
        main::refund('l-poke', $main::L[0], '1000');
        return "written\n" if main::writes() >= $first + 2;
        select undef, undef, undef, 0.1;
    }
    return "not written\n";
}

our $StatusLoc = <<'_EOC_';
    location /api/payments/mtn-momo/status/ {
        momo_status;
    }
_EOC_

# a zone of 256m, and its file
sub main::big_config {
    my ($path, $size) = @_;
    $size //= '256m';
    return main::http_config($path) =~ s/momo_zone 1m /momo_zone $size /r;
}

our $BigRef = t::MomoFlow::key_ref('big-1');
our $BigN = 0;      # the payments added to the file
our $BigLast = 0x18fffff;   # the last one's fixed_ref

# the file of TEST 10 (one settled payment, $BigRef) grown past 64 MB, as
# $out: copies of its entry, each with a reference id of its own, a new
# count and crc; what nginx wrote before them is kept.  Made before the
# block's nginx starts (the previous block's still runs: it leaves $Big as
# it is)
sub main::grow_big {
    my $to = shift;
    open my $in, '<:raw', $main::Big or die "$main::Big: $!";
    my $data = do { local $/; <$in> };
    close $in;
    my ($magic, $version, $esize, $count, $at, $crc, $lsize, $lcount)
        = unpack 'a8 L L Q Q L L Q', $data;
    my $entries = 48 + $lcount * $lsize;
    my $at_ref = index($data, $main::BigRef, $entries);
    die "$main::BigRef not in $main::Big\n" if $at_ref < 0;
    my $i = int(($at_ref - $entries) / $esize);
    my $entry = substr($data, $entries + $i * $esize, $esize);
    my $off = $at_ref - $entries - $i * $esize;
    $main::BigN = int(64 * 1024 * 1024 / $esize) + 1000;
    my $more = '';
    for my $n (1 .. $main::BigN) {
        substr($entry, $off, 36) = t::MomoFlow::fixed_ref(
            $n == $main::BigN ? $main::BigLast : 0x1800000 + $n);
        $more .= $entry;
    }
    my $body = substr($data, 48) . $more;
    open my $out, '>:raw', $to or die "$to: $!";
    print $out pack('a8 L L Q Q L L Q', $magic, $version, $esize,
                    $count + $main::BigN, $at, Compress::Zlib::crc32($body),
                    $lsize, $lcount), $body;
    close $out;
    Test::More::cmp_ok(length($body) + 48, '>', 64 * 1024 * 1024,
                       "$0 TEST 12: the file is over 64 MB");
}

add_block_preprocessor(sub {
    main::grow_big($main::BigGrown) if $_[0]->name =~ /^TEST 12:/;
    main::grow_big($main::BigWalk) if $_[0]->name =~ /^TEST 14:/;
});

# two writes of the file after this point (the second one's walk began
# after the first look), the oldest payments polled meanwhile: each poll
# moves its payment to the newest end of its queue, and a walk that had
# copied it copies it again; then the crash
sub main::walked {
    my $body = shift;
    my $first = main::writes();
    my $n = 0;
    my $ok = t::MomoHttp::wait_for(sub {
        for (1 .. 20) {
            $n = $n % 300 + 1;
            main::get('/api/payments/mtn-momo/status/'
                      . t::MomoFlow::fixed_ref(0x1800000 + $n));
        }
        return main::writes() >= $first + 2;
    }, 60);
    main::crash($body);
    return $ok ? "written twice\n" : "not written\n";
}

run_tests();

__DATA__

=== TEST 1: payments pending, outcomes undelivered (the application fails), then nginx stops with QUIT
--- http_config eval
main::http_config($main::State)
--- init
t::MomoTest::emu_post('/_emu/reset', '{}');
t::MomoTest::emu_post('/_emu/config', '{"drop_callbacks": true, "final_delay_ms": 1500, "pending_seconds": 4}');
t::MomoTest::emu_post('/_emu/faults', '{"path": "/_emu/sink/before", "status": 500}');
--- config eval
"    momo_notify /_app/notify/before;\n" . $main::Config
--- more_headers eval
main::headers('booking-180-quit', 2)
--- request eval
[@main::Pay,
 "GET /emu/wait?path=/_emu/sink/before&count=4&timeout_ms=20000",
 "GET /metrics"]
--- timeout: 25
--- response_body_filters eval
\&t::MomoFlow::canon
--- response_body_like eval
[qr/"reference_id": "REF1", "status": "pending"/,
 qr/"reference_id": "REF2", "status": "pending"/,
 qr/"reference_id": "REF3", "status": "pending"/,
 qr/"reference_id": "REF4", "status": "pending"/,
 qr/"reference_id": "REF5", "status": "pending"/,
 qr/^([4-9]|\d\d)$/,
 qr/momo_pending_payments\{age="0-1m"\} [1-5]\n.*momo_state_loads_total\{result="none"\} 1\n/s]



=== TEST 2: started again: the outcome is delivered, the idempotent retry gets the same reference id, nothing is queried again
--- http_config eval
main::http_config($main::State)
--- init
t::MomoTest::emu_delete('/_emu/faults');
t::MomoFlow::sleep_fault(300);
--- config eval
"    momo_notify /_app/notify/after_quit;\n" . $main::Config
--- more_headers eval
["$main::Json\nIdempotency-Key: booking-180-quit", ('') x 5]
--- request eval
[$main::Pay[0],
 "GET /emu/wait?path=/_emu/sink/after_quit&count=5&timeout_ms=20000",
 "GET /emu/sink/sleep/300",
 "GET /emu/requests?path=/_emu/sink/after_quit",
 "GET /emu/requests?path=/collection/v1_0/requesttopay/&method=GET",
 "GET /metrics"]
--- timeout: 25
--- response_body_filters eval
[[\&main::same_ref], [\&main::same_ref], [\&main::same_ref], [\&main::sink], [\&main::queries], [\&main::same_ref]]
--- response_body_like eval
[qr/"reference_id": "SAME", "status": "(?:pending|failed)"/,
 qr/^5$/,
 qr/^\{"ok":true\}$/,
 qr/^5 payments, at most 1 each: 2 failed, 3 successful$/,
 qr/^5 payments queried, at most [1-4] times$/,
 qr/momo_pending_payments\{age="0-1m"\} 0\n.*momo_notify_pending 0\n.*momo_state_loads_total\{result="loaded"\} 1\n.*momo_state_records_loaded 5\n/s]




=== TEST 3: payments pending, outcomes undelivered, the state written, then the master and the workers are killed
--- http_config eval
main::http_config($main::State)
--- init
t::MomoTest::emu_post('/_emu/faults', '{"path": "/_emu/sink/before_kill", "status": 500}');
--- config eval
"    momo_notify /_app/notify/before_kill;\n" . $main::Config
--- more_headers eval
main::headers('booking-180-kill', 2)
--- request eval
[@main::Pay,
 "GET /emu/wait?path=/_emu/sink/before_kill&count=4&timeout_ms=20000",
 "GET /metrics"]
--- timeout: 25
--- response_body_filters eval
[([\&t::MomoFlow::canon]) x 6, [\&main::state_written, \&main::crash]]
--- response_body_like eval
[qr/"reference_id": "REF1", "status": "pending"/,
 qr/"reference_id": "REF2", "status": "pending"/,
 qr/"reference_id": "REF3", "status": "pending"/,
 qr/"reference_id": "REF4", "status": "pending"/,
 qr/"reference_id": "REF5", "status": "pending"/,
 qr/^([4-9]|\d\d)$/,
 qr/^written$/]



=== TEST 4: started again after the crash: every outcome is delivered once, the idempotent retry gets the same reference id
--- http_config eval
main::http_config($main::State)
--- init
t::MomoTest::emu_delete('/_emu/faults');
t::MomoFlow::sleep_fault(300);
--- config eval
"    momo_notify /_app/notify/after_kill;\n" . $main::Config
--- more_headers eval
["$main::Json\nIdempotency-Key: booking-180-kill", ('') x 5]
--- request eval
[$main::Pay[0],
 "GET /emu/wait?path=/_emu/sink/after_kill&count=5&timeout_ms=20000",
 "GET /emu/sink/sleep/300",
 "GET /emu/requests?path=/_emu/sink/after_kill",
 "GET /metrics",
 "GET /emu/health"]
--- timeout: 25
--- response_body_filters eval
[[\&main::same_ref], [\&main::same_ref], [\&main::same_ref], [\&main::sink], [\&main::same_ref], [\&main::truncate_copy]]
--- response_body_like eval
[qr/"reference_id": "SAME", "status": "(?:pending|failed)"/,
 qr/^5$/,
 qr/^\{"ok":true\}$/,
 qr/^5 payments, at most 1 each: 2 failed, 3 successful$/,
 qr/momo_pending_payments\{age="0-1m"\} 0\n.*momo_notify_pending 0\n.*momo_state_loads_total\{result="loaded"\} 1\n.*momo_state_records_loaded 10\n/s,
 qr/ok/]



=== TEST 5: a truncated state file: nginx starts, says so, keeps the file aside, the zone starts empty
--- http_config eval
main::http_config($main::Trunc)
--- config eval
"    momo_notify /_app/notify/truncated;\n" . $main::Config
--- request eval
["GET /metrics"]
--- response_body_filters eval
sub { $_[0] . (glob("$main::Trunc.bad-*") && !-e $main::Trunc ? "set aside\n" : "not set aside\n") }
--- response_body_like eval
qr/momo_state_loads_total\{result="corrupt"\} 1\n.*momo_state_records_loaded 0\n.*set aside\n$/s
--- error_log eval
qr/\[error\] .*momo: state file ".*-momo-trunc\.state" is truncated or damaged: kept as ".*-momo-trunc\.state\.bad-\d+", the momo zone starts without it/



=== TEST 6: a state file of another version: nginx starts, says so, keeps the file aside
--- http_config eval
main::http_config($main::Other)
--- config eval
"    momo_notify /_app/notify/other;\n" . $main::Config
--- request eval
["GET /metrics"]
--- response_body_filters eval
sub { $_[0] . (glob("$main::Other.bad-*") && !-e $main::Other ? "set aside\n" : "not set aside\n") }
--- response_body_like eval
qr/momo_state_loads_total\{result="version"\} 1\n.*set aside\n$/s
--- error_log eval
qr/\[error\] .*momo: state file ".*-momo-other\.state" is written by another version of ngx_http_momo_module: kept as/



=== TEST 7: refunds taken: one of 60 of a payment of 100, one of 70 still pending at MTN; a version 1 file (no ledger) is set aside; then QUIT
--- http_config eval
main::http_config($main::Ledger) . $t::MomoTest::Disbursement
--- init
t::MomoTest::emu_post('/_emu/reset', '{}');
t::MomoTest::emu_post('/_emu/config', '{"drop_callbacks": true, "pending_seconds": 1}');
my $p1 = main::pay(amount => '100', phone => '56733123453');
my $p2 = main::pay(amount => '100', phone => '46733123453');
t::MomoFlow::check('TEST 7: 60 of P1', main::refund('l-1', $p1, '60'), 200,
                   qr/"status": "pending", "amount": "60"/);
for (1 .. 100) {
    last if main::get("/api/payments/mtn-momo/status/$p2") =~ /"status": "successful"/;
    select undef, undef, undef, 0.2;
}
my $r = main::refund('l-2', $p2, '70');
t::MomoFlow::check('TEST 7: 70 of P2, pending at MTN', $r, 200,
                   qr/"status": "pending", "amount": "70"/);
my ($r2) = $r->[1] =~ /"refund_id": "([0-9a-f-]{36})"/;
@main::L = ($p1, $p2, $r2);
Test::More::like(main::get("/api/refunds/mtn-momo/status/$r2"), qr/"status": "pending"/,
                 "$0 TEST 7: MTN keeps the refund of P2 pending");
--- config eval
$main::Config . $main::Refunds
--- request
GET /metrics
--- response_body_like eval
qr/momo_state_loads_total\{result="version"\} 1\n/
--- error_log eval
qr/\[error\] .*momo: state file ".*-momo-ledger\.state" is written by another version of ngx_http_momo_module: kept as/



=== TEST 8: after the QUIT: what was refunded and what is reserved are known; a refund taken now, then the state written and the master and workers killed
--- http_config eval
main::http_config($main::Ledger) . $t::MomoTest::Disbursement
--- init
my ($p1, $p2) = @main::L;
t::MomoFlow::check('TEST 8: 50 more of P1', main::refund('l-3', $p1, '50'), 422,
                   qr/"code": "REFUND_EXCEEDS_PAYMENT", "message": "the refunds of this payment would exceed it: 40.00 EUR at most can still be refunded"/);
t::MomoFlow::check('TEST 8: the 60 again, same key', main::refund('l-1', $p1, '60'), 200,
                   qr/"amount": "60", "currency": "EUR", "message": "Refund request was already sent for this Idempotency-Key"/);
t::MomoFlow::check('TEST 8: 40 of P2 (70 reserved)', main::refund('l-4', $p2, '40'), 422,
                   qr/30.00 EUR at most can still be refunded/);
t::MomoFlow::check('TEST 8: the last 40 of P1', main::refund('l-5', $p1, '40'), 200,
                   qr/"status": "pending", "amount": "40"/);
--- config eval
$main::Config . $main::Refunds
--- request
GET /metrics
--- response_body_filters eval
[\&main::ledger_written, \&main::crash]
--- response_body_like eval
qr/^written$/



=== TEST 9: after the crash: P1 is refunded in full, P2's pending 70 still reserved until MTN fails it; MTN saw only the refunds allowed, and the reconciler's queries of refunds as refunds
--- http_config eval
main::http_config($main::Ledger) . $t::MomoTest::Disbursement
--- init
my ($p1, $p2, $r2) = @main::L;
t::MomoFlow::check('TEST 9: 0.01 more of P1', main::refund('l-6', $p1, '0.01'), 422,
                   qr/0.00 EUR at most can still be refunded/);
t::MomoFlow::check('TEST 9: 40 of P2 (70 reserved)', main::refund('l-4', $p2, '40'), 422,
                   qr/30.00 EUR at most can still be refunded/);
t::MomoTest::emu_post("/_emu/refunds/$r2/status",
                      '{"status": "FAILED", "reason": "INTERNAL_PROCESSING_ERROR", "callback": false}');
# polled: a query of the last second (the reconciler's) is answered
# from the zone
my $st = '';
for (1 .. 100) {
    $st = main::get("/api/refunds/mtn-momo/status/$r2");
    last if $st =~ /"status": "failed"/;
    select undef, undef, undef, 0.2;
}
Test::More::like($st, qr/"status": "failed"/, "$0 TEST 9: MTN failed the refund of P2");
t::MomoFlow::check('TEST 9: then all of P2', main::refund('l-7', $p2, '100'), 200,
                   qr/"status": "pending", "amount": "100"/);
# the reconciler asks MTN for refunds through the Disbursement product only
my %refund = map { $_->{referenceId} => 1 }
             @{ JSON::PP::decode_json(t::MomoTest::emu_get('/_emu/refunds')) };
my @wrong = grep { m{/requesttopay/([0-9a-f-]{36})} && $refund{$1} }
            map { $_->{path} } @{ JSON::PP::decode_json(t::MomoTest::emu_get(
                '/_emu/requests?path=/collection/v1_0/requesttopay/&method=GET')) };
Test::More::is(scalar @wrong, 0, "$0 TEST 9: no refund was asked for as a payment (TEST 7 to 9)");
--- config eval
$main::Config . $main::Refunds
--- request
GET /emu/requests?path=/disbursement/v1_0/refund&method=POST
--- response_body_filters eval
\&t::MomoFlow::canon
--- response_body_like eval
qr{^POST /disbursement/v1_0/refund ref=REF1
POST /disbursement/v1_0/refund ref=REF2
POST /disbursement/v1_0/refund ref=REF3
POST /disbursement/v1_0/refund ref=REF4
$}



=== TEST 10: a zone of 256m: a payment settled, then QUIT writes the file
--- http_config eval
main::big_config($main::Big)
--- init
t::MomoFlow::check('TEST 10: the payment', [t::MomoFlow::post_json(
    '/api/payments/mtn-momo', 'big-1',
    t::MomoTest::pay_json(external_id => 'order-180-big', phone => '56733123453'))],
    200, qr/"status": "pending"/);
--- config eval
$main::Config . $main::StatusLoc
--- request eval
"GET /api/payments/mtn-momo/status/$main::BigRef"
--- response_body_like: "status": "successful"



=== TEST 11: started again: the settled payment is served from the zone (MTN is not asked again)
--- http_config eval
main::big_config($main::Big)
--- config eval
$main::Config . $main::StatusLoc
--- request eval
["GET /api/payments/mtn-momo/status/$main::BigRef",
 "GET /emu/count?path=/collection/v1_0/requesttopay/$main::BigRef&method=GET"]
--- response_body_like eval
[qr/"status": "successful", "amount": "100", "currency": "EUR", "external_id": "order-180-big"/,
 qr/^1$/]



=== TEST 12: that file grown past 64 MB (150,000 payments and more): loaded whole, each payment served from the zone
--- http_config eval
main::big_config($main::BigGrown)
--- config eval
$main::Config . $main::StatusLoc
--- request eval
["GET /metrics",
 "GET /api/payments/mtn-momo/status/" . t::MomoFlow::fixed_ref($main::BigLast),
 "GET /api/payments/mtn-momo/status/" . t::MomoFlow::fixed_ref(0x1800001),
 "GET /api/payments/mtn-momo/status/$main::BigRef",
 "GET /emu/count?path=/collection/v1_0/requesttopay/" . t::MomoFlow::fixed_ref(0x1800001)]
--- response_body_filters eval
[[sub { $_[0] =~ /momo_state_loads_total\{result="loaded"\} (\d+)\n(?:.*\n)*?momo_state_records_loaded (\d+)\n/
        ? "loaded $1, " . ($2 - $main::BigN) . " more than were added\n" : $_[0] }],
 [], [], [], []]
--- response_body_like eval
[qr/^loaded 1, 1 more than were added\n$/,
 qr/"status": "successful", "amount": "100", "currency": "EUR", "external_id": "order-180-big"/,
 qr/"status": "successful", "amount": "100", "currency": "EUR", "external_id": "order-180-big"/,
 qr/"status": "successful", "amount": "100", "currency": "EUR", "external_id": "order-180-big"/,
 qr/^0$/]



=== TEST 13: that file, as TEST 12's nginx left it, in a zone of 16m: nginx starts with what fits, the last payments of the file
The payments TEST 12 queried are the file's last; the first added, never
queried, made room for them.
--- http_config eval
main::big_config($main::BigGrown, '16m')
--- config eval
$main::Config . $main::StatusLoc
--- request eval
["GET /metrics",
 "GET /api/payments/mtn-momo/status/" . t::MomoFlow::fixed_ref($main::BigLast),
 "GET /api/payments/mtn-momo/status/" . t::MomoFlow::fixed_ref(0x1800002)]
--- response_body_like eval
[qr/momo_state_loads_total\{result="loaded"\} 1\n/,
 qr/"status": "successful", "amount": "100", "currency": "EUR", "external_id": "order-180-big"/,
 qr/"code": "NOT_FOUND"/]
--- error_code eval
[200, 200, 404]



=== TEST 14: 20 payments taken in a zone of 190,000: the file is written twice, in chunks, while the oldest payments are polled, then nginx crashes
--- http_config eval
main::big_config($main::BigWalk)
--- init
for my $i (1 .. 20) {
    t::MomoFlow::check("TEST 14: payment $i", [t::MomoFlow::post_json(
        '/api/payments/mtn-momo', "walk-$i",
        t::MomoTest::pay_json(external_id => "order-180-walk-$i", phone => '46733123453'))],
        200, qr/"status": "pending"/);
}
--- config eval
$main::Config . $main::StatusLoc
--- request
GET /emu/health
--- response_body_filters eval
\&main::walked
--- response_body_like: ^written twice$
--- timeout: 90



=== TEST 15: started again after the crash: each payment of the file once, the 20 new ones with them
--- http_config eval
main::big_config($main::BigWalk)
--- config eval
$main::Config . $main::StatusLoc
--- request
GET /metrics
--- response_body_filters eval
sub { $_[0] =~ /momo_state_loads_total\{result="loaded"\} (\d+)\n(?:.*\n)*?momo_state_records_loaded (\d+)\n/
      ? "loaded $1, " . ($2 - $main::BigN) . " more than were added\n" : $_[0] }
--- response_body_like: ^loaded 1, 21 more than were added$
