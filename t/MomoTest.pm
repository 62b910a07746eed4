package t::MomoTest;

# What every momo test block shares, injected so that each block shows only
# what it is about (the lua-resty-core t/TestCore.pm pattern):
#   - the module's load_module line (TEST_NGINX_LOAD_MODULES, set by make test);
#   - the sandbox emulator, started once per test file if nothing listens on
#     TEST_NGINX_MOMO_EMU_PORT, and reset before every block;
#   - the default account (http_config) when a block has none;
#   - the shipped conf/momo_locations.conf, with 3 s read timeouts so that
#     MTN timeouts are testable and one CA certificate (the emulator is
#     plain HTTP), included in every server using momo_*;
#   - /emu/ (the emulator's control API, for counts in request arrays) and
#     /_app/notify (the application, i.e. the emulator's sink);
#   - no [alert], [crit] or [emerg] in any block's error log;
#   - before a block's logs are read (once, right after its last answer, as
#     upstream's Test::Nginx does), a wait of at most 10 s until every line
#     its error_log and access_log sections expect is there: lines written
#     after the answer (a callback from the emulator, a notify) are awaited,
#     not guessed with --- wait.

use Test::Nginx::Socket -Base;
use IO::Socket::INET;
use t::MomoHttp;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use POSIX qw(:sys_wait_h);
use File::Temp qw(tempdir);

our $Root = abs_path(dirname(__FILE__) . '/..');
our $EmuPort = $ENV{TEST_NGINX_MOMO_EMU_PORT} ||= free_port();
our $ApiUser = '6f1c3a52-8d4e-4b7a-9c21-3e5f7a9b0d14';
our $ApiKey = '2f9d8c7b6a5e4d3c2b1a0f9e8d7c6b5a';
our $SubscriptionKey = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';
our $CallbackSecret =
    '5d41402abc4b2a76b9719d911017c5920f1c3a528d4e4b7a9c213e5f7a9b0d14';

$ENV{TEST_NGINX_LOAD_MODULES} ||= "$Root/objs/ngx_http_momo_module.so";
sub write_locations (;$$);

$ENV{TEST_NGINX_MOMO_LOCATIONS} = write_locations(undef, sub {
    s/proxy_read_timeout \d+s;/proxy_read_timeout 3s;/g;
});
$ENV{TEST_NGINX_MOMO_ROOT} = $Root;

our $Account = <<"_EOC_";
    momo_zone 1m;
    momo_api_user $ApiUser;
    momo_api_key $ApiKey;
    momo_subscription_key $SubscriptionKey;
    momo_callback_secret $CallbackSecret;
    momo_base_url http://127.0.0.1:\$TEST_NGINX_MOMO_EMU_PORT;
    momo_callback_url http://127.0.0.1:\$TEST_NGINX_SERVER_PORT/api/payments/mtn-momo/callback;
_EOC_

our $Helpers = <<'_EOC_';
    location /emu/ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOMO_EMU_PORT/_emu/;
    }

    location = /_app/notify {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOMO_EMU_PORT/_emu/sink/notify;
    }
_EOC_

# the emulator's preseeded Disbursement account, for refunds and payouts
our $DisbApiUser = '3d7b9e15-6a2c-4f48-8b90-c1e5a7d3f260';
our $DisbApiKey = '9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b';
our $DisbSubscriptionKey = 'f0e1d2c3b4a5968778695a4b3c2d1e0f';

our $Disbursement = <<"_EOC_";
    momo_disbursement_api_user $DisbApiUser;
    momo_disbursement_api_key $DisbApiKey;
    momo_disbursement_subscription_key $DisbSubscriptionKey;
_EOC_

our @EXPORT = qw(emu_get emu_post emu_delete pay_json $Account);

my $emu_pid;
my $Blocks = 0;

# set by a file whose blocks share the zone across reloads on purpose
our $KeepZone = 0;

# set by a file whose blocks go on with the payments MTN (the emulator)
# has from the previous block, across a restart of nginx
our $KeepMtn = 0;

start_emulator();

master_on();
workers(2);
no_shuffle();

# a client's wait for an answer is a bound, not an expectation: longer
# under valgrind (t::MomoHttp::slow), as every other wait of the tests
timeout(t::MomoHttp::slow(timeout()));

my $LogWaitHooked;

# blocks started: a file that stops early without dying (upstream's
# Test::Nginx once ended t/180 after its third block with exit status 0,
# its plan matching what had run) fails instead of passing with fewer
# assertions
my $Started = 0;

END {
    my $all = () = Test::Base::blocks();
    Test::More::fail("$0: $Started of $all blocks ran")
        if $Started && $Started < $all;
}

add_block_preprocessor(sub {
    my $block = shift;

    # registered now, after the file's own checks: it runs last
    add_response_body_check(\&wait_for_log_lines) if !$LogWaitHooked++;

    $Started++;

    emu_post('/_emu/reset', '{}') unless $KeepMtn;

    if (!defined $block->http_config) {
        $block->set_value('http_config', $Account);
    }

    # and so is the time given to what follows an answer (a callback)
    for my $sec ('timeout', 'wait') {
        next if !defined $block->$sec;
        my $t = Test::Nginx::Util::parse_time($block->$sec);
        $block->set_value($sec, t::MomoHttp::slow($t));
    }

    # blocks expect a fresh zone, as after a restart; when blocks follow
    # each other by "nginx -s reload" (TEST_NGINX_USE_HUP), a zone of
    # another size is a new zone: 4k more every other block, whatever
    # size the block asks for (a block that must not start keeps its own)
    if ($ENV{TEST_NGINX_USE_HUP} && !$KeepZone && !defined $block->must_die) {
        my $more = 4 * ($Blocks++ % 2);
        $block->set_value('http_config', $block->http_config
            =~ s/momo_zone (\d+)([km])\b/
                 "momo_zone " . ($1 * ($2 eq 'm' ? 1024 : 1) + $more) . "k"/er);
    }

    my $config = $block->config // '';

    if ($config =~ /momo_/ && $config !~ /momo_leg|momo_locations|# no momo_locations/) {
        $config = "    include \$TEST_NGINX_MOMO_LOCATIONS;\n$config";
    }

    if (!defined $block->must_die) {
        $config .= $Helpers;

        # under valgrind, the block starts once nginx listens
        $block->set_value('init', "t::MomoHttp::wait_listening();\n"
                                  . ($block->init // ''));

        my $nel = $block->no_error_log;
        if (!defined $nel) {
            $block->set_value('no_error_log', "[alert]\n[crit]\n[emerg]\n");

        } elsif (!ref $nel) {
            $block->set_value('no_error_log', "$nel\n[alert]\n[crit]\n[emerg]\n");
        }
    }

    $block->set_value('config', $config);
});

# a response body check without an assertion of its own
sub wait_for_log_lines ($$$) {
    my ($block, $body, $req_idx) = @_;
    my $last = ref $block->request eq 'ARRAY' ? $#{ $block->request } : 0;

    return if $req_idx != $last;

    my @want;

    for my $sec (['error_log', $Test::Nginx::Util::ErrLogFile],
                 ['access_log', $Test::Nginx::Util::AccLogFile])
    {
        my $pats = $block->can($sec->[0]) ? $block->${\ $sec->[0]} : undef;
        next if !defined $pats;
        $pats = ref $pats eq 'ARRAY' ? $pats
                : ref $pats ? [$pats] : [grep { length } split /\n+/, $pats];
        push @want, map { [$sec->[1], $_] } @$pats;
    }

    return if !@want;

    t::MomoHttp::wait_for(sub {
        my %lines;
        for my $w (@want) {
            my ($file, $pat) = @$w;
            $lines{$file} //= do {
                open my $fh, '<', $file or return 0;
                [<$fh>];
            };
            return 0 if !grep { ref $pat ? $_ =~ $pat : index($_, $pat) >= 0 }
                              @{ $lines{$file} };
        }
        return 1;
    }, 10);
}

# written aside, then renamed: a running nginx never reads half a file
sub write_aside ($$) {
    my ($path, $text) = @_;
    open my $out, '>', "$path.$$" or die "$path: $!";
    print $out $text;
    close $out;
    rename "$path.$$", $path or die "$path: $!";
}

# this file's own copy of the shipped conf/momo_locations.conf (the tests'
# MTN is the emulator, on plain HTTP), edited by $edit (on $_), in a
# temporary directory, so that parallel runs never share it: MTN's CA is
# one certificate of the system's bundle, not all of it, which nginx would
# read again for each location (seconds for each start under valgrind)
our $LocationsDir;

sub write_locations (;$$) {
    my ($name, $edit) = @_;
    $name //= 'momo_locations.conf';
    $LocationsDir //= tempdir('momo-test.XXXXXX', TMPDIR => 1,
                              CLEANUP => !$ENV{TEST_NGINX_NO_CLEAN});
    my $dir = $LocationsDir;
    my $ca = "$dir/ca.crt";

    if (!-f $ca) {
        my $bundle = '/etc/ssl/certs/ca-certificates.crt';
        open my $in, '<', $bundle or die "$bundle: $!";
        local $/ = "-----END CERTIFICATE-----\n";
        my $first = <$in>;
        close $in;
        write_aside($ca, $first);
    }

    my $src = "$Root/conf/momo_locations.conf";
    open my $in, '<', $src or die "$src: $!";
    local $_ = do { local $/; <$in> };
    close $in;
    s/proxy_ssl_trusted_certificate \S+;/proxy_ssl_trusted_certificate $ca;/g;
    $edit->() if $edit;
    write_aside("$dir/$name", $_);
    return "$dir/$name";
}

# a free loopback port for a server a file or a block starts later
# (t/run sets TEST_NGINX_MOMO_EMU_PORT for a whole run): as t/run's, below
# the kernel's ephemeral range, so that no outgoing connection of this run
# or of another one on the machine takes it before it is listened on
my %Taken;

sub free_port () {
    $Taken{$_} = 1 for grep { $_ } @ENV{qw(TEST_NGINX_SERVER_PORT
                                          TEST_NGINX_MOMO_EMU_PORT)};

    for (1 .. 1000) {
        my $port = 10000 + int rand 22000;
        next if $Taken{$port};
        my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                      LocalPort => $port, Proto => 'tcp',
                                      Listen => 1)
            or next;
        close $s;
        $Taken{$port} = 1;
        return $port;
    }

    die "no free port\n";
}

sub emu_request ($$$) {
    my ($method, $path, $body) = @_;
    local $t::MomoHttp::Port = $EmuPort;
    my $res = eval {
        t::MomoHttp::request($method, $path, $body,
                             'Content-Type' => 'application/json')
    };
    return $res ? $res->{body} : undef;
}

sub emu_get ($) { emu_request('GET', $_[0], undef) }
sub emu_post ($$) { emu_request('POST', $_[0], $_[1]) }
sub emu_delete ($) { emu_request('DELETE', $_[0], undef) }

# a payment body, with fields overridden: pay_json(phone => '46733123450')
sub pay_json (@) {
    my %f = (amount => '100', currency => 'EUR', external_id => 'order-1',
             payer_message => 'Booking 1', payee_note => 'Booking 1',
             phone => '56733123453', @_);
    return '{' . join(', ', map {
        defined $f{$_} ? qq{"$_": "$f{$_}"} : ()
    } sort keys %f) . '}';
}

sub start_emulator () {
    return if IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                    PeerPort => $EmuPort, Timeout => 1);

    $emu_pid = fork;
    die "fork: $!" unless defined $emu_pid;

    if ($emu_pid == 0) {
        open STDOUT, '>', '/dev/null';
        # MTN gives up on a callback after 2 s: more with nginx under
        # valgrind, which answers as promptly but runs slower
        exec 'python3', "$Root/emulator/momo_emulator.py",
             '--listen', "127.0.0.1:$EmuPort",
             '--callback-timeout-ms', t::MomoHttp::slow(2000);
        exit 1;
    }

    # generous: python starts slowly on a loaded machine
    for (1 .. 600) {
        return if IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                        PeerPort => $EmuPort, Timeout => 1);
        if (waitpid($emu_pid, WNOHANG) == $emu_pid) {
            undef $emu_pid;
            last;
        }
        select undef, undef, undef, 0.05;
    }

    die "the emulator did not start on port $EmuPort\n";
}

END {
    if ($emu_pid) {
        kill 'TERM', $emu_pid;
        waitpid $emu_pid, 0;
    }
}

1;
