# momo_zone state=PATH: the zone's payments and their schedules survive a
# stop (QUIT) and a crash (KILL of the master and the workers).  The blocks
# go on from one another: MTN (the emulator) keeps its payments, nginx is
# restarted between blocks.  A truncated file and one from another version
# are set aside and the zone starts without them.  Counts, never times.

use t::MomoTest;
use t::MomoFlow;
use JSON::PP;
use POSIX qw(SIGKILL);

$t::MomoTest::KeepMtn = 1;

# what is shown is a restart: never a reload, even under TEST_NGINX_USE_HUP
$Test::Nginx::Util::UseHup = 0;

plan 'no_plan';

our $State = "$ENV{TEST_NGINX_SERVROOT}-momo.state";
our $Trunc = "$ENV{TEST_NGINX_SERVROOT}-momo-trunc.state";
our $Other = "$ENV{TEST_NGINX_SERVROOT}-momo-other.state";

unlink glob("$ENV{TEST_NGINX_SERVROOT}-momo*.state*");

END { unlink glob("$ENV{TEST_NGINX_SERVROOT}-momo*.state*") }

# a file of a future version of the module
open my $fh, '>', $Other or die "$Other: $!";
print $fh pack('a8 L L Q Q L L', 'MOMOSTAT', 999, 400, 0, 0, 0, 0);
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

# nginx's /metrics, polled until a state write newer than the first look
sub main::state_written {
    my $port = $ENV{TEST_NGINX_SERVER_PORT};
    my $writes = sub {
        my (undef, $m) = t::MomoFlow::http($port, 'GET', '/metrics');
        return $m =~ /momo_state_writes_total\{result="ok"\} (\d+)/ ? $1 : -1;
    };
    my $first = $writes->();
    for (1 .. 200) {
        last if $writes->() > $first;
        select undef, undef, undef, 0.05;
    }
    return $writes->() > $first ? "written\n" : "not written\n";
}

# the crash: SIGKILL to the master and its workers, nothing at exit
sub main::crash {
    my $body = shift;
    my $pid = Test::Nginx::Util::get_pid_from_pidfile('crash');
    my @kids = Test::Nginx::Util::child_pids_of($pid);
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
