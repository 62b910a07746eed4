#!/usr/bin/perl

# The momo CLI against the MTN sandbox emulator: provisioning, check and
# its diagnoses (both products), pay/status with every sandbox test
# number, refund, payout and balance (Disbursement), --json, and no
# secret in any output.  TAP; run from anywhere, takes ~25 s.
#
# Uses $MOMO_CLI, else objs/momo when newer than its sources, else builds
# one into a temp dir.

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use HTTP::Tiny;
use JSON::PP;
use POSIX ();
use Test::More;
use Time::HiRes qw(time sleep);

my $root = abs_path(dirname(abs_path($0)) . '/..');
chdir $root or die "cannot chdir to $root: $!";

my $tmp = tempdir('momo_cli_t.XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $json = JSON::PP->new->utf8;
my $http = HTTP::Tiny->new(timeout => 10);

my $API_USER = '6f1c3a52-8d4e-4b7a-9c21-3e5f7a9b0d14';
my $API_KEY  = '2f9d8c7b6a5e4d3c2b1a0f9e8d7c6b5a';
my $SUB_KEY  = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';
my $OTHER    = 'f' x 32;
my $D_USER   = '3d7b9e15-6a2c-4f48-8b90-c1e5a7d3f260';
my $D_KEY    = '9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b';
my $D_SUB    = 'f0e1d2c3b4a5968778695a4b3c2d1e0f';
my $UUID4    = qr/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-
                  [0-9a-f]{12}$/x;

my (@outputs, $emu_pid, $tls_pid, $emu, %pipes);


# -- the emulator, stopped whatever happens ---------------------------------

sub stop_children {
    for my $pid (grep { defined } $emu_pid, $tls_pid) {
        kill 'TERM', $pid;
        close delete $pipes{$pid};     # waits for it
    }
    ($emu_pid, $tls_pid) = (undef, undef);
}

END { stop_children() }
$SIG{INT} = $SIG{TERM} = sub { stop_children(); exit 1 };

# runs CMD, returns (pid, port) once it printed "listening ... PORT"
sub start_server {
    my ($what, @cmd) = @_;

    my $pid = open(my $fh, '-|') // die "fork: $!";

    if ($pid == 0) {
        # no END blocks in the child: they would stop the parent's servers
        open STDERR, '>', "$tmp/$what.err";
        { exec @cmd }
        POSIX::_exit(127);
    }

    my $port;
    eval {
        local $SIG{ALRM} = sub { die "timeout\n" };
        alarm 60;        # python starts slowly on a loaded machine
        while (my $line = <$fh>) {
            if ($line =~ /listening on \S*?:?(\d+)\s*$/) {
                $port = $1;
                last;
            }
        }
        alarm 0;
    };

    # closing a piped open waits for the child: keep it until the end
    $pipes{$pid} = $fh;

    return ($pid, $port);
}

sub emu_post {
    my ($path, $doc) = @_;
    my $r = $http->post("$emu$path", {
        content => defined $doc ? $json->encode($doc) : '',
        headers => { 'Content-Type' => 'application/json' } });
    die "emulator $path: $r->{status} $r->{content}\n" unless $r->{success};
    return $r->{content};
}

sub emu_get {
    my ($path) = @_;
    my $r = $http->get("$emu$path");
    die "emulator $path: $r->{status}\n" unless $r->{success};
    return $r->{content};
}

sub emu_clear_faults { $http->request('DELETE', "$emu/_emu/faults") }


# -- running momo ------------------------------------------------------------

sub shell_quote {
    my ($s) = @_;
    $s =~ s/'/'\\''/g;
    return "'$s'";
}

sub slurp {
    my ($file) = @_;
    open my $fh, '<', $file or return '';
    local $/;
    return scalar <$fh>;
}

my $momo;

# momo(ARGS...) -> { rc, out, err, secs, json }; every output is kept for
# the secret scan unless the call passes exempt => 1 first
sub momo {
    my %o = ref $_[0] eq 'HASH' ? %{ shift() } : ();
    my @args = @_;

    my $cmd = join ' ', map { shell_quote($_) } $momo, @args;
    my $t0 = time;
    system("$cmd </dev/null >$tmp/out 2>$tmp/err");
    my $r = {
        rc   => $? == -1 ? -1 : $? >> 8,
        out  => slurp("$tmp/out"),
        err  => slurp("$tmp/err"),
        secs => time - $t0,
        cmd  => join(' ', @args),
    };

    if (grep { $_ eq '--json' } @args) {
        $r->{json} = eval { $json->decode($r->{out}) };
        ok(ref $r->{json} eq 'HASH', "--json output parses: $r->{cmd}")
            or diag("stdout: $r->{out}\nstderr: $r->{err}");
    }

    push @outputs, $r unless $o{exempt};
    return $r;
}

sub write_env {
    my ($name, %kv) = @_;
    my $file = "$tmp/$name.env";
    open my $fh, '>', $file or die "$file: $!";
    print $fh "# written by t/cli.t\n";
    for my $k (sort keys %kv) {
        print $fh qq{$k="$kv{$k}"\n} if defined $kv{$k};
    }
    close $fh;
    return $file;
}

sub step {
    my ($r, $name) = @_;
    return unless $r->{json} && ref $r->{json}{steps} eq 'ARRAY';
    my ($s) = grep { $_->{step} eq $name } @{ $r->{json}{steps} };
    return $s || {};
}

sub error_code {
    my ($r, $name) = @_;
    my $s = step($r, $name) || {};
    return $s->{error} ? $s->{error}{code} // '' : '';
}

# the step of check --json for one product
sub pstep {
    my ($r, $product, $name) = @_;
    return {} unless $r->{json} && ref $r->{json}{steps} eq 'ARRAY';
    my ($s) = grep { $_->{step} eq $name && ($_->{product} // '') eq $product }
              @{ $r->{json}{steps} };
    return $s || {};
}


# -- the binary --------------------------------------------------------------

sub newest_source {
    my $newest = 0;
    for my $f (glob('cli/*.c cli/*.h src/momo_env.c src/momo_env.h')) {
        my $m = (stat $f)[9];
        $newest = $m if $m > $newest;
    }
    return $newest;
}

if ($ENV{MOMO_CLI}) {
    $momo = $ENV{MOMO_CLI};
} elsif (-x 'objs/momo' && (stat 'objs/momo')[9] >= newest_source()) {
    $momo = "$root/objs/momo";
} else {
    $momo = "$tmp/momo";
    my $cc = "gcc -std=c99 -D_POSIX_C_SOURCE=200809L -O2 -Wall -Wextra "
           . "-Werror -Isrc -Icli -o $momo cli/*.c src/momo_env.c "
           . "-lcurl -lyajl -lcrypto";
    if (system("$cc 2>$tmp/cc.log") != 0) {
        fail('momo builds');
        diag(slurp("$tmp/cc.log"));
        done_testing();
        exit 1;
    }
}

ok(-x $momo, "momo binary: $momo");


# -- start the emulator ------------------------------------------------------

if (!-f 'emulator/momo_emulator.py') {
    plan skip_all => 'emulator/momo_emulator.py not there';
}

my $emu_port;
($emu_pid, $emu_port) = start_server('emulator', 'python3',
    'emulator/momo_emulator.py', '--listen', '127.0.0.1:0');

if (!ok($emu_port, 'emulator listening')) {
    diag(slurp("$tmp/emulator.err"));
    done_testing();
    exit 1;
}

$emu = "http://127.0.0.1:$emu_port";
emu_post('/_emu/reset');

my %seed = (
    MTN_MOMO_API_USER_ID        => $API_USER,
    MTN_MOMO_API_KEY            => $API_KEY,
    MTN_MOMO_SUBSCRIPTION_KEY   => $SUB_KEY,
    MTN_MOMO_TARGET_ENVIRONMENT => 'sandbox',
    MTN_MOMO_BASE_URL           => $emu,
    MTN_MOMO_CALLBACK_URL       =>
        'https://127.0.0.1/api/payments/mtn-momo/callback',
);
my $seed_env = write_env('seed', %seed);


# -- help and usage ----------------------------------------------------------

{
    my $r = momo('--help');
    is($r->{rc}, 0, 'momo --help exits 0');
    like($r->{out}, qr/provision.*check.*pay.*status.*refund.*payout.*balance/s,
         'global help lists the commands');

    for my $cmd (qw(provision check pay status refund payout balance)) {
        $r = momo($cmd, '--help');
        ok($r->{rc} == 0 && $r->{out} =~ /^usage: momo $cmd/,
           "momo $cmd --help");
    }

    $r = momo('frobnicate');
    is($r->{rc}, 2, 'unknown command: exit 2');

    $r = momo('check', '--no-such-option');
    is($r->{rc}, 2, 'unknown option: exit 2');

    $r = momo('pay', '--phone', '46733123450', '--env-file', $seed_env,
              '--json');
    is($r->{rc}, 2, 'pay without --amount: exit 2');
    is($r->{json}{error}{code}, 'USAGE', 'usage error as JSON');
}


# -- provision, then check with what it printed ------------------------------

my ($prov_env, $prov_key);
{
    my $r = momo({ exempt => 1 }, 'provision', '--subscription-key', $SUB_KEY,
                 '--callback-host', '127.0.0.1', '--base-url', $emu);
    is($r->{rc}, 0, 'provision exits 0') or diag($r->{err});

    my %env;
    for (split /\n/, $r->{out}) {
        $env{$1} = $2 if /^(MTN_MOMO_\w+)="([^"]*)"$/;
    }

    is(scalar(keys %env), 7, 'provision prints the seven .env lines');
    like($env{MTN_MOMO_CALLBACK_SECRET} // '', qr/^[0-9a-f]{64}$/,
         'provision prints a new random callback secret');
    like($env{MTN_MOMO_API_USER_ID} // '', $UUID4,
         'API user id is a UUID v4');
    like($env{MTN_MOMO_API_KEY} // '', qr/^[0-9a-f]{32}$/, 'API key printed');
    is($env{MTN_MOMO_TARGET_ENVIRONMENT}, 'sandbox', 'target environment');
    is($env{MTN_MOMO_BASE_URL}, $emu, 'base URL is the one given');
    is($env{MTN_MOMO_CALLBACK_URL},
       'https://127.0.0.1/api/payments/mtn-momo/callback', 'callback URL');
    unlike($r->{out} . $r->{err}, qr/Bearer|Basic /,
           'provision prints no header');

    $prov_key = $env{MTN_MOMO_API_KEY};
    $prov_env = "$tmp/provisioned.env";
    open my $fh, '>', $prov_env or die;
    print $fh $r->{out};
    close $fh;

    my $calls = $json->decode(emu_get('/_emu/requests?path=/v1_0/apiuser'));
    my ($key_call) = grep { $_->{path} =~ m{/apikey$} } @$calls;
    is($key_call && $key_call->{headers}{'Content-Length'}, '0',
       'apikey POST carries Content-Length: 0');

    $r = momo('check', '--env-file', $prov_env);
    is($r->{rc}, 0, 'check with the provisioned .env: exit 0')
        or diag($r->{out}, $r->{err});
    like($r->{out}, qr/^ok\s+token.*^ok\s+balance\s+1000 EUR.*^ok\s+account/ms,
         'check: token, balance and account lines');
    like($r->{out}, qr/MTN_MOMO_API_KEY\s+\w{4}\x{e2}\x{80}\x{a6}\w{4}$/m,
         'check shows the API key masked');
    like($r->{out}, qr/MTN_MOMO_CALLBACK_SECRET\s+\w{4}\x{e2}\x{80}\x{a6}\w{4}$/m,
         'check shows the callback secret masked');

    my $file = "$tmp/out.env";
    $r = momo('provision', '--subscription-key', $SUB_KEY, '--callback-host',
              '127.0.0.1', '--base-url', $emu, '--output', $file, '--json');
    is($r->{rc}, 0, 'provision --output --json: exit 0');
    is((stat $file)[2] & 0777, 0600, '--output file is mode 0600');
    unlike($r->{json}{env}{MTN_MOMO_API_KEY} // '', qr/^[0-9a-f]{32}$/,
           '--output: the JSON masks the API key');
    unlike($r->{json}{env}{MTN_MOMO_CALLBACK_SECRET} // '',
           qr/^[0-9a-f]{64}$/, '--output: the JSON masks the callback secret');

    $r = momo('provision', '--subscription-key', $SUB_KEY, '--callback-host',
              '127.0.0.1', '--base-url', $emu, '--output', $file);
    is($r->{rc}, 2, 'provision does not overwrite an existing file');

    $r = momo('check', '--env-file', $file, '--json');
    ok($r->{rc} == 0 && $r->{json}{ok}, 'check --json: ok') or diag($r->{out});
    is(join(',', map { "$_->{step}=$_->{status}" } @{ $r->{json}{steps} }),
       'config=ok,token=ok,balance=ok,account=ok', 'check --json: all steps');

    $r = momo('provision', '--subscription-key', $OTHER, '--callback-host',
              '127.0.0.1', '--base-url', $emu, '--json');
    ok($r->{rc} == 4 && $r->{json}{error}{code} eq 'SUBSCRIPTION_KEY_REFUSED',
       'provision with a bad subscription key: exit 4, diagnosed');

    $r = momo('provision', '--subscription-key', $SUB_KEY, '--callback-host',
              'https://example.com/cb', '--base-url', $emu);
    is($r->{rc}, 2, 'provision refuses a URL as callback host');
}


# -- check: every diagnosis --------------------------------------------------

{
    my $env = write_env('badkey', %seed,
                        MTN_MOMO_API_KEY => $OTHER);
    my $r = momo('check', '--env-file', $env, '--json');
    is($r->{rc}, 4, 'bad API key: exit 4');
    is(error_code($r, 'token'), 'LOGIN_FAILED', 'bad API key: LOGIN_FAILED');
    $r = momo('check', '--env-file', $env);
    like($r->{out}, qr/refused the API user or the API key.*login_failed/,
         'bad API key: text names the cause');
    like($r->{out}, qr/another environment or base URL/,
         'bad API key: text mentions the other-environment case');

    $env = write_env('badsub', %seed,
                     MTN_MOMO_SUBSCRIPTION_KEY => $OTHER);
    $r = momo('check', '--env-file', $env, '--json');
    is($r->{rc}, 4, 'bad subscription key: exit 4');
    is(error_code($r, 'token'), 'SUBSCRIPTION_KEY_REFUSED',
       'bad subscription key: SUBSCRIPTION_KEY_REFUSED');
    $r = momo('check', '--env-file', $env);
    like($r->{out}, qr/Collections.*secondary key/s,
         'bad subscription key: suggests the Collections and secondary key');

    emu_post('/_emu/faults', { method => 'POST', path => '/collection/token/',
        status => 411, content_type => 'text/html',
        body => '<html><head><title>Length Required</title></head>'
              . '<body>HTTP Error 411</body></html>', times => 1 });
    $r = momo('check', '--env-file', $seed_env, '--json');
    is($r->{rc}, 4, '411: exit 4');
    is(error_code($r, 'token'), 'LENGTH_REQUIRED', '411: LENGTH_REQUIRED');
    like(step($r, 'token')->{error}{hint} // '', qr/client bug/,
         '411: called a client bug');
    emu_clear_faults();

    $env = write_env('closed', %seed,
                     MTN_MOMO_BASE_URL => 'http://127.0.0.1:1');
    $r = momo('check', '--env-file', $env, '--json');
    is($r->{rc}, 4, 'connection refused: exit 4');
    is(error_code($r, 'token'), 'CONNECTION_REFUSED',
       'connection refused: CONNECTION_REFUSED');

    emu_post('/_emu/faults', { method => 'POST', path => '/collection/token/',
                               delay_ms => 3000, times => 1 });
    $r = momo('check', '--env-file', $seed_env, '--timeout', '1', '--json');
    is($r->{rc}, 4, 'timeout: exit 4');
    is(error_code($r, 'token'), 'TIMEOUT', 'timeout: TIMEOUT');
    ok($r->{secs} < 2.5, sprintf('timeout: gave up after %.1f s', $r->{secs}));
    emu_clear_faults();

    $env = write_env('cameroon', %seed,
                     MTN_MOMO_TARGET_ENVIRONMENT => 'mtncameroon');
    $r = momo('check', '--env-file', $env, '--json');
    is($r->{rc}, 4, 'other target environment: exit 4');
    is(error_code($r, 'token'), 'NOT_ALLOWED_TARGET_ENVIRONMENT',
       'other target environment: token step says so');
    is(error_code($r, 'balance'), 'NOT_ALLOWED_TARGET_ENVIRONMENT',
       "other target environment: MTN's own answer on balance");
    $r = momo('check', '--env-file', $env);
    like($r->{out}, qr/MTN_MOMO_TARGET_ENVIRONMENT/,
         'other target environment: names the key to fix');

    $env = write_env('tls', %seed,
                     MTN_MOMO_BASE_URL => "https://127.0.0.1:$emu_port");
    $r = momo('check', '--env-file', $env, '--json');
    ok($r->{rc} == 4 && error_code($r, 'token') eq 'TLS_FAILURE',
       'https to a plain-http port: exit 4, TLS_FAILURE');

    $env = write_env('dns', %seed,
                     MTN_MOMO_BASE_URL => 'https://momo-cli-test.invalid');
    $r = momo('check', '--env-file', $env, '--timeout', '5', '--json');
    ok($r->{rc} == 4 && error_code($r, 'token') eq 'DNS_FAILURE',
       'unknown host: exit 4, DNS_FAILURE');

    emu_post('/_emu/config', { currency => 'XAF' });
    $r = momo('check', '--env-file', $seed_env, '--json');
    ok($r->{rc} == 3 && step($r, 'balance')->{status} eq 'warn',
       'balance in XAF for sandbox: currency warning, exit 3');
    emu_post('/_emu/config', { currency => 'EUR' });

    emu_post('/_emu/faults', { method => 'GET',
        path => '/collection/v1_0/account/balance', status => 401,
        body => '{"message":"Access token is invalid or expired",'
              . '"code":"UNAUTHORIZED"}', times => 1 });
    my $before = emu_get('/_emu/count?path=/collection/token/');
    $r = momo('check', '--env-file', $seed_env);
    my $after = emu_get('/_emu/count?path=/collection/token/');
    ok($r->{rc} == 0 && $after - $before == 2,
       'a 401 without statusCode: one new token, one retry, check passes');
    emu_clear_faults();

    $r = momo('check', '--env-file', $seed_env, '--msisdn', '0123456789',
              '--json');
    ok($r->{rc} == 0 && step($r, 'account')->{status} eq 'warn'
       && !step($r, 'account')->{active},
       'an inactive account holder: a warning, exit 0');

    $r = momo('check', '--env-file', "$tmp/none.env", '--json');
    is($r->{rc}, 3, 'missing .env: exit 3');

    open my $fh, '>', "$tmp/broken.env" or die;
    print $fh "MTN_MOMO_API_USER_ID=not-a-uuid\nMTN_MOMO_API_KEY=\"open\n"
            . "MTN_MOMO_BASE_URL=ftp://x\n";
    close $fh;
    $r = momo('check', '--env-file', "$tmp/broken.env", '--json');
    is($r->{rc}, 3, 'broken .env: exit 3');
    my %keys = map { $_->{key} => $_ } @{ step($r, 'config')->{keys} || [] };
    ok($keys{MTN_MOMO_API_USER_ID}{status} eq 'invalid'
       && $keys{MTN_MOMO_SUBSCRIPTION_KEY}{status} eq 'missing'
       && $keys{MTN_MOMO_BASE_URL}{status} eq 'invalid'
       && @{ step($r, 'config')->{syntax_errors} } == 1,
       'broken .env: each problem reported');
    is(step($r, 'token')->{status}, 'skip', 'broken .env: token skipped');

    $r = momo('pay', '--phone', '46733123450', '--amount', '1', '--env-file',
              "$tmp/broken.env");
    is($r->{rc}, 3, 'pay with a broken .env: exit 3');
}


# -- a certificate that does not verify ---------------------------------------

SKIP: {
    skip 'no openssl command', 1
        if system('command -v openssl >/dev/null') != 0;

    system("openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost "
         . "-days 1 -keyout $tmp/key.pem -out $tmp/cert.pem >/dev/null 2>&1");
    open my $fh, '>', "$tmp/tls.py" or die;
    print $fh <<'EOF';
import http.server, ssl, sys
s = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
c.load_cert_chain(sys.argv[1], sys.argv[2])
s.socket = c.wrap_socket(s.socket, server_side=True)
print("listening on 127.0.0.1:%d" % s.server_address[1], flush=True)
s.serve_forever()
EOF
    close $fh;

    my $port;
    ($tls_pid, $port) = start_server('tls', 'python3', "$tmp/tls.py",
                                     "$tmp/cert.pem", "$tmp/key.pem");
    skip 'no TLS test server', 1 unless $port;

    my $env = write_env('cert', %seed,
                        MTN_MOMO_BASE_URL => "https://127.0.0.1:$port");
    my $r = momo('check', '--env-file', $env, '--timeout', '5', '--json');
    ok($r->{rc} == 4 && error_code($r, 'token') eq 'TLS_CERTIFICATE',
       'self-signed certificate: exit 4, TLS_CERTIFICATE');
}


# -- pay and status with the sandbox test numbers -----------------------------

emu_post('/_emu/config', { pending_seconds => 2 });

my %expect = (
    46733123450 => [5, 'failed', 'INTERNAL_PROCESSING_ERROR'],
    46733123451 => [5, 'failed', 'APPROVAL_REJECTED'],
    46733123452 => [5, 'failed', 'EXPIRED'],
    46733123453 => [0, 'successful', undef],
    46733123459 => [0, 'successful', undef],
);

my %refs;
for my $phone (sort keys %expect) {
    my ($rc, $status, $reason) = @{ $expect{$phone} };
    my $r = momo('pay', '--phone', $phone, '--amount', '100', '--wait',
                 '--env-file', $seed_env, '--json');
    my $j = $r->{json} || {};
    ok($r->{rc} == $rc && ($j->{status} // '') eq $status
       && ($j->{reason} // '') eq ($reason // ''),
       "pay --wait $phone: $status" . ($reason ? " $reason" : '')
       . ", exit $rc") or diag($r->{out}, $r->{err});
    $refs{$phone} = $j->{reference_id};
}

{
    my $j = momo('status', $refs{46733123459}, '--env-file', $seed_env,
                 '--json')->{json};
    like($j->{financial_transaction_id} // '', qr/^\d+$/,
         'successful payment has a financial transaction id');

    my $r = momo('pay', '--phone', '46733123454', '--amount', '100', '--wait',
                 '--timeout', '2', '--env-file', $seed_env, '--json');
    ok($r->{rc} == 6 && $r->{json}{status} eq 'pending'
       && $r->{json}{mtn_status} eq 'CREATED',
       'pay --wait 46733123454: still CREATED at --timeout, exit 6');
    ok($r->{secs} < 4, sprintf('... gave up after %.1f s', $r->{secs}));

    $r = momo('pay', '--phone', '+46 733-123-451', '--amount', '100',
              '--wait', '--env-file', $seed_env);
    is($r->{rc}, 5, 'pay --wait (text): exit 5');
    like($r->{out}, qr/^reference id: [0-9a-f-]{36}$/m,
         'text output: the reference id');
    like($r->{out}, qr/^status:\s+failed \(MTN: FAILED\)$/m,
         'text output: the status');
    like($r->{out}, qr/^reason:\s+APPROVAL_REJECTED$/m, 'text output: reason');
    unlike($r->{out}, qr/\r|\e\[/, 'not a terminal: plain lines');

    $r = momo('pay', '--phone', '46733123459', '--amount', '12.50',
              '--external-id', 'order-42', '--message', 'Booking 42',
              '--note', 'Thanks', '--env-file', $seed_env, '--json');
    ok($r->{rc} == 0 && $r->{json}{status} eq 'pending',
       'pay without --wait: exit 0, pending');
    my $ref = $r->{json}{reference_id} // '';
    my $calls = $json->decode(emu_get(
        '/_emu/requests?path=/collection/v1_0/requesttopay&method=POST'));
    my $call = $calls->[-1] || {};
    is($call->{headers}{'X-Reference-Id'}, $ref,
       'X-Reference-Id is the printed reference id');
    like($ref, $UUID4, 'reference id is a UUID v4');
    is($call->{headers}{'User-Agent'}, 'momo-cli/0.1', 'User-Agent');
    is_deeply(eval { $json->decode($call->{body}) }, {
        amount => '12.50', currency => 'EUR', externalId => 'order-42',
        payer => { partyIdType => 'MSISDN', partyId => '46733123459' },
        payerMessage => 'Booking 42', payeeNote => 'Thanks' },
        'requesttopay body');
    ok(!exists $call->{headers}{'X-Callback-Url'},
       'no X-Callback-Url unless asked');

    my $tok = $json->decode(
        emu_get('/_emu/requests?path=/collection/token/'))->[-1] || {};
    ok($tok->{headers}{'Content-Length'} eq '0' && $tok->{body} eq ''
       && !exists $tok->{headers}{'Content-Type'}
       && $tok->{headers}{'X-Target-Environment'} eq 'sandbox',
       'token call: Content-Length 0, no body, X-Target-Environment');

    $r = momo('status', $ref, '--wait', '--env-file', $seed_env, '--json');
    ok($r->{rc} == 0 && $r->{json}{status} eq 'successful'
       && $r->{json}{amount} eq '12.50', 'status --wait: successful');

    $r = momo('status', $refs{46733123452}, '--env-file', $seed_env);
    ok($r->{rc} == 5 && $r->{out} =~ /reason:\s+EXPIRED/,
       'status of a failed payment: exit 5, reason');

    emu_post('/_emu/config', { reason_format => 'object' });
    $r = momo('status', $refs{46733123451}, '--env-file', $seed_env, '--json');
    is($r->{json}{reason}, 'APPROVAL_REJECTED', 'reason as {code, message}');
    emu_post('/_emu/config', { reason_format => 'string' });

    $r = momo('status', '0b3c3e0e-6c1a-4d2b-9f4e-2a1b3c4d5e6f', '--env-file',
              $seed_env, '--json');
    ok($r->{rc} == 4 && $r->{json}{error}{code} eq 'NOT_FOUND',
       'status of an unknown id: exit 4, NOT_FOUND');

    $r = momo('status', 'not-a-uuid', '--env-file', $seed_env);
    is($r->{rc}, 2, 'status with a malformed id: exit 2');

    for my $bad (['--phone', '12'], ['--amount', '1.234'],
                 ['--amount', '0'], ['--message', "it's"],
                 ['--note', 'a & b'])
    {
        my %a = ('--phone' => '46733123459', '--amount' => '10', @$bad);
        $r = momo('pay', %a, '--env-file', $seed_env);
        is($r->{rc}, 2, "pay @$bad: exit 2");
    }

    $r = momo('pay', '--phone', '46733123459', '--amount', '1',
              '--callback-url', 'https://127.0.0.1/cb', '--env-file',
              $seed_env);
    is($r->{rc}, 0, 'pay with a callback URL on the registered host');

    $r = momo('pay', '--phone', '46733123459', '--amount', '1',
              '--callback-url', 'https://example.com/cb', '--env-file',
              $seed_env, '--json');
    ok($r->{rc} == 4
       && $r->{json}{error}{code} eq 'INVALID_CALLBACK_URL_HOST',
       'pay with a foreign callback host: exit 4, diagnosed');

    $r = momo('pay', '--phone', '46733123459', '--amount', '100',
              '--currency', 'XAF', '--env-file', $seed_env, '--json');
    ok($r->{rc} == 4 && $r->{json}{error}{code} eq 'INVALID_CURRENCY',
       'pay in XAF on the sandbox: exit 4, INVALID_CURRENCY');
}



# -- Disbursement: provision, check, payout, refund, balance ------------------

my $d_prov_key;
{
    my $r = momo({ exempt => 1 }, 'provision', '--product', 'disbursement',
                 '--subscription-key', $D_SUB, '--callback-host', '127.0.0.1',
                 '--base-url', $emu);
    my %env;
    for (split /\n/, $r->{out}) {
        $env{$1} = $2 if /^(MTN_MOMO_\w+)="([^"]*)"$/;
    }
    ok($r->{rc} == 0 && join(',', sort keys %env) eq
       'MTN_MOMO_DISBURSEMENT_API_KEY,MTN_MOMO_DISBURSEMENT_API_USER_ID,'
       . 'MTN_MOMO_DISBURSEMENT_SUBSCRIPTION_KEY',
       'provision --product disbursement: the three Disbursement lines')
        or diag($r->{out}, $r->{err});
    like($env{MTN_MOMO_DISBURSEMENT_API_USER_ID} // '', $UUID4,
         'Disbursement API user id is a UUID v4');
    is($env{MTN_MOMO_DISBURSEMENT_SUBSCRIPTION_KEY}, $D_SUB,
       'Disbursement subscription key printed');
    $d_prov_key = $env{MTN_MOMO_DISBURSEMENT_API_KEY};

    my $both = "$tmp/both.env";
    open my $fh, '>', $both or die;
    print $fh slurp($prov_env), $r->{out};
    close $fh;
    $r = momo('check', '--env-file', $both, '--json');
    is(join(',', map { join '=', grep { defined } $_->{product}, $_->{step},
                       $_->{status} } @{ $r->{json}{steps} || [] }),
       'config=ok,collection=token=ok,collection=balance=ok,'
       . 'collection=account=ok,disbursement=token=ok,'
       . 'disbursement=balance=ok,disbursement=account=ok',
       'check: the provisioned .env works for both products');
    $r = momo('check', '--env-file', $both);
    like($r->{out},
         qr/^Disbursement .*\n^ok\s+token.*\n^ok\s+balance\s+1000000 EUR/m,
         'check (text): the Disbursement steps');
    like($r->{out},
         qr/MTN_MOMO_DISBURSEMENT_API_KEY\s+\w{4}\x{e2}\x{80}\x{a6}\w{4}$/m,
         'check shows the Disbursement API key masked');

    $r = momo('provision', '--product', 'disbursement', '--subscription-key',
              $SUB_KEY, '--callback-host', '127.0.0.1', '--base-url', $emu,
              '--json');
    ok($r->{rc} == 4 && $r->{json}{error}{code} eq 'SUBSCRIPTION_KEY_REFUSED'
       && $r->{json}{error}{hint} =~ /Disbursement primary/,
       'provision --product disbursement with a Collections key: exit 4');

    $r = momo('provision', '--product', 'remittance', '--subscription-key',
              $D_SUB, '--callback-host', '127.0.0.1', '--base-url', $emu);
    is($r->{rc}, 2, 'provision --product remittance: exit 2');
}

my %dseed = (%seed,
    MTN_MOMO_DISBURSEMENT_API_USER_ID      => $D_USER,
    MTN_MOMO_DISBURSEMENT_API_KEY          => $D_KEY,
    MTN_MOMO_DISBURSEMENT_SUBSCRIPTION_KEY => $D_SUB,
);
my $d_env = write_env('disb', %dseed);

{
    my $env = write_env('dbadkey', %dseed,
                        MTN_MOMO_DISBURSEMENT_API_KEY => $OTHER);
    my $r = momo('check', '--env-file', $env, '--json');
    ok($r->{rc} == 4 && pstep($r, 'collection', 'token')->{status} eq 'ok'
       && pstep($r, 'disbursement', 'token')->{error}{code} eq 'LOGIN_FAILED',
       'wrong Disbursement API key: Collections ok, Disbursement '
       . 'LOGIN_FAILED, exit 4');
    $r = momo('check', '--env-file', $env);
    my $keys = 'MTN_MOMO_DISBURSEMENT_API_USER_ID and '
             . 'MTN_MOMO_DISBURSEMENT_API_KEY';
    like($r->{out}, qr/API key of Disbursement.*\n.*Check \Q$keys\E/,
         'wrong Disbursement API key: names the Disbursement keys');

    $env = write_env('dcolluser', %dseed,
                     MTN_MOMO_DISBURSEMENT_API_USER_ID => $API_USER,
                     MTN_MOMO_DISBURSEMENT_API_KEY     => $API_KEY);
    $r = momo('check', '--env-file', $env, '--json');
    my $t = pstep($r, 'disbursement', 'token');
    ok($r->{rc} == 4 && $t->{error}{code} eq 'LOGIN_FAILED'
       && $t->{error}{hint} =~ /Collections API user is refused here/,
       'a Collections API user as the Disbursement one: said so');
    my %keys = map { $_->{key} => $_ } @{ step($r, 'config')->{keys} || [] };
    like($keys{MTN_MOMO_DISBURSEMENT_API_USER_ID}{note} // '',
         qr/same as MTN_MOMO_API_USER_ID/, '... and noted in config');

    $env = write_env('dcollkey', %dseed,
                     MTN_MOMO_DISBURSEMENT_SUBSCRIPTION_KEY => $SUB_KEY);
    $r = momo('check', '--env-file', $env, '--json');
    $t = pstep($r, 'disbursement', 'token');
    ok($r->{rc} == 4 && $t->{error}{code} eq 'SUBSCRIPTION_KEY_REFUSED'
       && $t->{error}{hint}
          =~ /MTN_MOMO_DISBURSEMENT_SUBSCRIPTION_KEY.*Disbursement product's/,
       'the Collections key as the Disbursement one: SUBSCRIPTION_KEY_REFUSED');

    $env = write_env('donly',
                     map { $_ => $dseed{$_} } grep { !/^MTN_MOMO_(API|SUB)/ }
                     keys %dseed);
    $r = momo('check', '--env-file', $env, '--json');
    ok($r->{rc} == 0 && !grep({ ($_->{product} // '') eq 'collection' }
                              @{ $r->{json}{steps} }),
       'a Disbursement-only .env: checked, no Collections steps');

    $r = momo('payout', '--phone', '46733123459', '--amount', '5',
              '--idempotency-key', 'x', '--env-file', $seed_env, '--json');
    ok($r->{rc} == 3 && $r->{json}{error}{message}
       =~ /MTN_MOMO_DISBURSEMENT_API_USER_ID: missing/,
       'payout without Disbursement credentials: exit 3, names the key');

    $r = momo('payout', '--phone', '46733123459', '--amount', '5',
              '--env-file', $d_env);
    is($r->{rc}, 2, 'payout without --idempotency-key: exit 2');
}

my %d_expect = (
    46733123450 => [5, 'failed', 'INTERNAL_PROCESSING_ERROR'],
    46733123451 => [5, 'failed', 'APPROVAL_REJECTED'],
    46733123452 => [5, 'failed', 'EXPIRED'],
    46733123454 => [0, 'successful', undef],
    46733123459 => [0, 'successful', undef],
);

for my $phone (sort keys %d_expect) {
    my ($rc, $status, $reason) = @{ $d_expect{$phone} };
    my $r = momo('payout', '--phone', $phone, '--amount', '10', '--wait',
                 '--idempotency-key', "payout-$phone", '--env-file', $d_env,
                 '--json');
    my $j = $r->{json} || {};
    ok($r->{rc} == $rc && ($j->{status} // '') eq $status
       && ($j->{reason} // '') eq ($reason // '')
       && ($j->{payee} // '') eq $phone && $j->{operation} eq 'payout',
       "payout --wait $phone: $status" . ($reason ? " $reason" : '')
       . ", exit $rc") or diag($r->{out}, $r->{err});
}

{
    my $r = momo('payout', '--phone', '46733123453', '--amount', '10',
                 '--wait', '--timeout', '2', '--idempotency-key', 'p-453',
                 '--env-file', $d_env, '--json');
    ok($r->{rc} == 6 && $r->{json}{status} eq 'pending',
       'payout --wait 46733123453: still pending at --timeout, exit 6');

    my $ref = $r->{json}{reference_id};
    $r = momo('payout', '--phone', '46733123453', '--amount', '10',
              '--idempotency-key', 'p-453', '--env-file', $d_env, '--json');
    ok($r->{rc} == 0 && $r->{json}{reference_id} eq $ref
       && $r->{json}{accepted_before},
       'payout again with the same key: same reference id, accepted before');
    my $calls = $json->decode(emu_get(
        '/_emu/requests?path=/disbursement/v1_0/transfer&method=POST'));
    is(scalar(grep { $_->{headers}{'X-Reference-Id'} eq $ref } @$calls), 2,
       '... sent twice, with the same X-Reference-Id');
    is(scalar(grep { $_->{referenceId} eq $ref }
              @{ $json->decode(emu_get('/_emu/transfers')) }), 1,
       '... one transfer at MTN');
    is_deeply($json->decode($calls->[-1]{body}), {
        amount => '10', currency => 'EUR', externalId => 'p-453',
        payee => { partyIdType => 'MSISDN', partyId => '46733123453' },
        payerMessage => 'momo-cli payout', payeeNote => 'momo-cli payout' },
        'transfer body: payee, the key as externalId');

    $r = momo('payout', '--phone', '46733123453', '--amount', '11',
              '--idempotency-key', 'p-453', '--env-file', $d_env, '--json');
    ok($r->{rc} == 2 && $r->{json}{error}{code} eq 'IDEMPOTENCY_KEY_REUSED',
       'the same key for another amount: exit 2, IDEMPOTENCY_KEY_REUSED');

    emu_post("/_emu/transfers/$ref/status", { status => 'SUCCESSFUL' });
    $r = momo('status', $ref, '--payout', '--env-file', $d_env, '--json');
    ok($r->{rc} == 0 && $r->{json}{status} eq 'successful',
       'status --payout: the forced outcome');
}

{
    my $pay = momo('pay', '--phone', '46733123459', '--amount', '100',
                   '--wait', '--env-file', $d_env, '--json')->{json};
    my $p = $pay->{reference_id};

    my $r = momo('refund', $p, '--amount', '30', '--idempotency-key',
                 'refund-1', '--wait', '--env-file', $d_env, '--json');
    ok($r->{rc} == 0 && $r->{json}{status} eq 'successful'
       && $r->{json}{operation} eq 'refund' && $r->{json}{amount} eq '30'
       && $r->{json}{payee} eq '46733123459',
       'refund --wait: partial refund successful, to the payer')
        or diag($r->{out}, $r->{err});
    my $call = $json->decode(emu_get(
        '/_emu/requests?path=/disbursement/v1_0/refund&method=POST'))->[-1];
    is_deeply($json->decode($call->{body}), {
        amount => '30', currency => 'EUR', externalId => 'refund-1',
        payerMessage => 'momo-cli refund', payeeNote => 'momo-cli refund',
        referenceIdToRefund => $p }, 'refund body: referenceIdToRefund');
    is($call->{headers}{'Ocp-Apim-Subscription-Key'}, $D_SUB,
       'refund: with the Disbursement subscription key');

    $r = momo('refund', $p, '--amount', '70', '--idempotency-key',
              'refund-2', '--env-file', $d_env);
    like($r->{out}, qr/^status:\s+pending.*
                       ^see\ how\ it\ ends\ with:\ momo\ status\ \S+
                       \ --refund\ --wait/msx,
         'refund (text): pending, says how to follow it');
    ok($r->{rc} == 0, 'refund of the rest: exit 0');

    my $n = emu_get('/_emu/count?path=/disbursement/v1_0/refund&method=POST');
    $r = momo('refund', $refs{46733123450}, '--amount', '1',
              '--idempotency-key', 'refund-3', '--env-file', $d_env, '--json');
    ok($r->{rc} == 2 && $r->{json}{error}{code} eq 'PAYMENT_NOT_SUCCESSFUL',
       'refund of a failed payment: refused, exit 2');
    $r = momo('refund', $p, '--amount', '100.01', '--idempotency-key',
              'refund-4', '--env-file', $d_env, '--json');
    ok($r->{rc} == 2 && $r->{json}{error}{code} eq 'AMOUNT_TOO_LARGE',
       'refund larger than the payment: refused, exit 2');
    is(emu_get('/_emu/count?path=/disbursement/v1_0/refund&method=POST'), $n,
       '... neither reached MTN');

    my $donly = write_env('donly2', map { $_ => $dseed{$_} }
                          grep { !/^MTN_MOMO_(API|SUB)/ } keys %dseed);
    $r = momo('refund', $refs{46733123450}, '--amount', '1',
              '--idempotency-key', 'refund-5', '--wait', '--env-file',
              $donly, '--json');
    ok($r->{rc} == 5 && $r->{json}{reason} eq 'NOT_ALLOWED',
       'without Collections credentials MTN decides: FAILED NOT_ALLOWED');

    my $bal = $json->decode(emu_get('/_emu/balances'));
    for my $product (qw(collection disbursement)) {
        $r = momo('balance', '--product', $product, '--env-file', $d_env,
                  '--json');
        ok($r->{rc} == 0 && $r->{json}{available_balance} eq $bal->{$product}
           && $r->{json}{currency} eq 'EUR' && $r->{json}{product} eq $product,
           "balance --product $product: $bal->{$product} EUR");
    }
    $r = momo('balance', '--env-file', $d_env);
    like($r->{out}, qr/^Collections account: [\d.]+ EUR$/m,
         'balance (text): the Collections account by default');
    $r = momo('balance', '--product', 'remittance', '--env-file', $d_env);
    is($r->{rc}, 2, 'balance --product remittance: exit 2');
}


# -- no secret anywhere ------------------------------------------------------

{
    my %secret = (
        'seed API key'       => $API_KEY,
        'subscription key'   => $SUB_KEY,
        'provisioned key'    => $prov_key,
        'Disbursement key'   => $D_KEY,
        'Disbursement subscription key' => $D_SUB,
        'provisioned Disbursement key'  => $d_prov_key,
    );

    my $n = 0;
    for my $req (@{ $json->decode(emu_get('/_emu/requests?path=/')) }) {
        my $auth = $req->{headers}{Authorization} // '';
        $secret{'token ' . ++$n} = $1 if $auth =~ /^Bearer (\S+)/;
    }

    my @leaks;
    for my $r (@outputs) {
        for my $name (sort keys %secret) {
            next unless defined $secret{$name} && length $secret{$name};
            push @leaks, "$name in: $r->{cmd}"
                if index($r->{out} . $r->{err}, $secret{$name}) >= 0;
        }
    }

    ok($n > 10, "tokens collected from the emulator: $n");

    my @reports = grep { $_->{err} =~ /Sanitizer|runtime error:/ } @outputs;
    ok(!@reports, 'no sanitizer report in any run')
        or diag(map { "$_->{cmd}:\n$_->{err}" } @reports);
    ok(!@leaks, sprintf('no secret in the output of %d runs', scalar @outputs))
        or diag(join "\n", @leaks);
}

stop_children();
done_testing();
