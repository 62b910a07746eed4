package Test::Nginx::Util;

# Project-local implementation of the subset of openresty's Test::Nginx
# (Test::Nginx::Util + Test::Nginx::Socket) that ngx_http_momo_module's
# test suite uses.  An independent re-implementation that mirrors upstream's
# documented behaviour (section semantics, assertion names and counts).
#
# This module holds all the logic; Test::Nginx::Socket (which is a
# Test::Base subclass and therefore goes through Spiffy's source filter) is a
# thin shell that re-exports the user-facing functions.

use strict;
use warnings;

use base 'Exporter';

use POSIX qw(SIGQUIT SIGKILL SIGTERM SIGHUP SIGUSR1 WNOHANG EAGAIN EINTR);
use File::Spec ();
use File::Path qw(make_path remove_tree);
use File::Find ();
use Time::HiRes qw(sleep time);
use IO::Socket::INET ();
use IO::Socket::UNIX ();
use IO::Select ();
use Socket qw(SOCK_STREAM);
use HTTP::Response ();
use Scalar::Util qw(looks_like_number);
use List::Util qw(min);
use Digest::MD5 ();
use Digest::SHA ();
use Carp qw(croak);
use Test::More ();
use Test::LongString ();

our $VERSION = '0.29-momo';

# ---------------------------------------------------------------------------
# settings (same names and environment variables as upstream)
# ---------------------------------------------------------------------------

our $Verbose        = $ENV{TEST_NGINX_VERBOSE};
our $UseHup         = $ENV{TEST_NGINX_USE_HUP};
our $UseValgrind    = $ENV{TEST_NGINX_USE_VALGRIND};
our $LoadModules    = $ENV{TEST_NGINX_LOAD_MODULES};
our $NoShuffle      = $ENV{TEST_NGINX_NO_SHUFFLE} || 0;   # accepted; order is always file order
our $CheckAccumErrLog = $ENV{TEST_NGINX_CHECK_ACCUM_ERR_LOG};
our $Timeout        = $ENV{TEST_NGINX_TIMEOUT} || 3;
our $EventType      = $ENV{TEST_NGINX_EVENT_TYPE};
our $ReusePort      = $ENV{TEST_NGINX_REUSE_PORT};
our $WorkerUser     = $ENV{TEST_NGINX_WORKER_USER};
our $TestNginxSleep = $ENV{TEST_NGINX_SLEEP} || 0.015;
# how long error_log / access_log / grep_error_log checks keep re-reading the
# log for lines that have not shown up yet; 0, like upstream, reads the logs
# once after the response (a block waits for late lines with --- wait)
our $LogWait        = $ENV{TEST_NGINX_LOG_WAIT} // 0;

our $NginxBinary = $ENV{TEST_NGINX_BINARY}
    || (-x '/usr/sbin/nginx' ? '/usr/sbin/nginx' : 'nginx');

our $Workers              = 1;
our $WorkerConnections    = 64;      # upstream's default
our $LogLevel             = $ENV{TEST_NGINX_LOG_LEVEL} || 'debug';
our $MasterProcessEnabled = $ENV{TEST_NGINX_MASTER_PROCESS} || 'off';
our $DaemonEnabled        = 'on';
our $ServerPort           = $ENV{TEST_NGINX_SERVER_PORT} || $ENV{TEST_NGINX_PORT} || 1984;
our $ServerPortForClient  = $ENV{TEST_NGINX_CLIENT_PORT} || $ServerPort;
our $ServerAddr           = '127.0.0.1';
our $ServerName           = 'localhost';
our $NoRootLocation       = 0;
our $NoLongString;
our $RepeatEach           = 1;
our $ConfigPreamble       = '';
our $NoNginxManager       = $ENV{TEST_NGINX_NO_NGINX_MANAGER} || 0;

if (defined $WorkerUser && $WorkerUser !~ /^\w+(?:\s+\w+)?$/) {
    die "Bad value in the env TEST_NGINX_WORKER_USER: $WorkerUser\n";
}

if ($UseValgrind) {
    $DaemonEnabled = 'off';
}

our $ServRoot = $ENV{TEST_NGINX_SERVROOT} || File::Spec->rel2abs('t/servroot');
$ServRoot =~ s{/+$}{};
our $LogDir     = File::Spec->catfile($ServRoot, 'logs');
our $ErrLogFile = File::Spec->catfile($LogDir, 'error.log');
our $AccLogFile = File::Spec->catfile($LogDir, 'access.log');
our $StderrFile = File::Spec->catfile($LogDir, 'nginx.stderr');
our $HtmlDir    = File::Spec->catfile($ServRoot, 'html');
our $ConfDir    = File::Spec->catfile($ServRoot, 'conf');
our $ConfFile   = File::Spec->catfile($ConfDir, 'nginx.conf');
our $PidFile    = File::Spec->catfile($LogDir, 'nginx.pid');

$ENV{TEST_NGINX_SERVER_ROOT} = $ServRoot;
$ENV{TEST_NGINX_SERVROOT}  //= $ServRoot;
# like upstream, no TEST_NGINX_HTML_DIR: html_dir() or
# $TEST_NGINX_SERVER_ROOT/html

our @EnvToNginx;
our @BlockPreprocessors;
our @CleanupHandlers;
our @ResponseBodyChecks;

our ($NginxVersion, $NginxRawVersion, $OpenSSLVersion);
our $PrevConfig;
our $PrevBlock;
our $FirstTime = 1;
our $ErrLogFilePos = 0;
our $ChildPid;          # nginx run in the foreground (valgrind mode)
our $TcpServerPid;
our $ConfigVersion;
our $InSubprocess;
our $MustDieStderr;     # set while checking a --- must_die block
our $TotalConnectingTimeouts = 0;

sub value_contains ($$);
sub nginx_listens ($$);

our @EXPORT = qw(
    run_tests run_test repeat_each no_shuffle master_on master_off
    master_process_enabled workers worker_connections log_level
    no_long_string no_root_location add_block_preprocessor
    add_cleanup_handler add_response_body_check env_to_nginx
    check_accum_error_log server_port server_port_for_client server_addr
    server_name server_root html_dir bail_out timeout config_preamble
    use_hup no_nginx_manager is_str is_running sleep_time verbose
    parse_time parse_headers trim show_all_chars error_log_data
    access_log_data get_nginx_version get_canon_version
    get_pid_from_pidfile gen_rand_port setup_server_root write_config_file
    $ServerPort $ServerPortForClient $ServerAddr $ServerName $ServRoot
    $HtmlDir $ErrLogFile $AccLogFile $PidFile $ConfFile $NginxBinary
    $NginxVersion $RepeatEach $NoLongString $UseValgrind $UseHup
);

# ---------------------------------------------------------------------------
# small public API
# ---------------------------------------------------------------------------

sub repeat_each (@) {
    $RepeatEach = shift if @_;
    return $RepeatEach;
}

sub no_shuffle ()      { $NoShuffle = 1 }
sub use_hup ()         { $UseHup = 1 }
sub no_nginx_manager () { $NoNginxManager = 1 }
sub no_long_string ()  { $NoLongString = 1 }
sub no_root_location () { $NoRootLocation = 1 }
sub check_accum_error_log () { $CheckAccumErrLog = 1 }
sub master_on ()       { $MasterProcessEnabled = 'on' }
sub master_off ()      { $MasterProcessEnabled = 'off' }
sub sleep_time ()      { $TestNginxSleep }
sub verbose ()         { $Verbose }
sub html_dir ()        { $HtmlDir }
sub server_root ()     { $ServRoot }
sub config_preamble ($) { $ConfigPreamble = shift }

sub master_process_enabled (@) {
    if (@_) {
        $MasterProcessEnabled = shift() ? 'on' : 'off';
    }
    return $MasterProcessEnabled;
}

sub workers (@) {
    $Workers = shift if @_;
    return $Workers;
}

sub worker_connections (@) {
    $WorkerConnections = shift if @_;
    return $WorkerConnections;
}

sub log_level (@) {
    $LogLevel = shift if @_;
    return $LogLevel;
}

sub timeout (@) {
    $Timeout = shift if @_;
    return $Timeout;
}

sub server_port (@) {
    $ServerPort = shift if @_;
    return $ServerPort;
}

sub server_port_for_client (@) {
    $ServerPortForClient = shift if @_;
    return $ServerPortForClient;
}

sub server_addr (@) {
    $ServerAddr = shift if @_;
    return $ServerAddr;
}

sub server_name (@) {
    $ServerName = shift if @_;
    return $ServerName;
}

sub env_to_nginx (@) {
    croak "env_to_nginx: no arguments specified" if !@_;
    for my $v (@_) {
        if ($v !~ /^[A-Za-z_]/ || $v =~ /\n/) {
            croak "env_to_nginx: bad argument value: $v\n";
        }
        push @EnvToNginx, $v;
    }
}

# like upstream: the last registered preprocessor runs first
sub add_block_preprocessor (&) {
    unshift @BlockPreprocessors, shift;
}

sub add_cleanup_handler ($) {
    unshift @CleanupHandlers, shift;
}

sub add_response_body_check ($) {
    push @ResponseBodyChecks, shift;
}

sub is_running ($) {
    my $pid = shift;
    return 0 if !$pid;
    return 0 if !kill(0, $pid);
    # a daemonised nginx is reparented to PID 1, which may reap it late:
    # a zombie has exited as far as we are concerned
    if (open my $fh, '<', "/proc/$pid/stat") {
        my $stat = <$fh>;
        close $fh;
        return 0 if defined $stat && $stat =~ /\)\s+Z\s/;
    }
    return 1;
}

sub parse_time ($) {
    my $tm = shift;
    if (defined $tm) {
        $tm =~ s/^\s+|\s+$//g;
        if ($tm =~ s/([^_a-zA-Z])ms$/$1/) {
            $tm = $tm / 1000;
        } else {
            $tm =~ s/([^_a-zA-Z])s$/$1/;
        }
    }
    return $tm;
}

sub trim ($) {
    my $s = shift;
    return undef if !defined $s;
    $s =~ s/^\s+|\s+$//g;
    $s =~ s/\n/ /gs;
    $s =~ s/\s{2,}/ /gs;
    return $s;
}

sub show_all_chars ($) {
    my $s = shift;
    $s =~ s/\n/\\n/gs;
    $s =~ s/\r/\\r/gs;
    $s =~ s/\t/\\t/gs;
    return $s;
}

sub fmt_str ($) {
    my $str = shift;
    $str = "$str";
    chomp $str;
    $str =~ s/"/\\"/g;
    $str =~ s/\r/\\r/g;
    $str =~ s/\n/\\n/g;
    return $str;
}

sub is_str (@) {
    my ($got, $expected, $desc) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    if (ref $expected && ref $expected eq 'Regexp') {
        return Test::More::like($got, $expected, $desc);
    }
    if ($NoLongString) {
        return Test::More::is($got, $expected, $desc);
    }
    return Test::LongString::is_string($got, $expected, $desc);
}

sub parse_headers ($) {
    my $s = shift;
    my %headers;
    my @order;
    return \%headers if !defined $s;
    open my $in, '<', \$s;
    while (<$in>) {
        s/^\s+|\s+$//g;
        next if $_ eq '';
        my $neg = ($_ =~ s/^!\s*//);
        if ($neg) {
            push @order, $_ if !exists $headers{$_};
            $headers{$_} = undef;
        } else {
            my ($key, $val) = split /\s*:\s*/, $_, 2;
            $val = '' if !defined $val;
            push @order, $key if !exists $headers{$key};
            $headers{$key} = $val;
        }
    }
    close $in;
    # keep the order of the section for readable output
    return wantarray ? (\%headers, \@order) : \%headers;
}

sub bail_out (@) {
    cleanup();
    Test::More::BAIL_OUT(join '', @_);
}

sub gen_rand_port (;$$) {
    my ($tries, $used_ports) = @_;
    $tries //= 1000;
    $used_ports //= {};
    for (my $i = 0; $i < $tries; $i++) {
        my $port = int(rand 63550) + 1985;
        next if $used_ports->{$port};
        my $sock = IO::Socket::INET->new(
            LocalAddr => $ServerAddr,
            LocalPort => $port,
            Proto     => 'tcp',
            Listen    => 1,
        );
        if (defined $sock) {
            $sock->close;
            return $port;
        }
    }
    return undef;
}

sub get_canon_version (@) {
    sprintf "%d.%03d%03d", $_[0], $_[1], $_[2];
}

sub get_canon_version_for_openssl (@) {
    if (defined $_[3]) {
        return sprintf "%d.%03d%03d%03d", $_[0], $_[1], $_[2], ord($_[3]) - ord('a');
    }
    return get_canon_version(@_);
}

sub get_nginx_version () {
    my $out = `$NginxBinary -V 2>&1`;
    if (!defined $out || $? != 0) {
        $out //= '';
        bail_out("Failed to get the version of the nginx binary \"$NginxBinary\": $out");
    }
    if ($out =~ m{built with OpenSSL (\d+)\.(\d+)\.(\d+)([a-z])?}s) {
        $OpenSSLVersion = get_canon_version_for_openssl($1, $2, $3, $4);
    }
    if ($out =~ m{(?:nginx|openresty)[^/]*/(\d+)\.(\d+)\.(\d+)}s
        || $out =~ m{\w+/(\d+)\.(\d+)\.(\d+)}s)
    {
        $NginxRawVersion = "$1.$2.$3";
        return get_canon_version($1, $2, $3);
    }
    bail_out("Failed to parse the output of \"nginx -V\": $out\n");
}

sub get_pid_from_pidfile ($) {
    my ($name) = @_;
    open my $in, '<', $PidFile or return undef;
    my $pid = do { local $/; <$in> };
    close $in;
    return undef if !defined $pid;
    $pid =~ s/\s+//g;
    return $pid =~ /^\d+$/ ? $pid : undef;
}

# ---------------------------------------------------------------------------
# server root, config file
# ---------------------------------------------------------------------------

sub setup_server_root ($) {
    my $first_time = shift;

    if (-d $ServRoot) {
        # only remove what we create, so that a mis-set TEST_NGINX_SERVROOT
        # cannot wipe real data
        remove_tree($ConfDir, glob("$ServRoot/*_cache"), glob("$ServRoot/*_temp"));
        if ($UseHup && !$first_time) {
            # keep the pid file (and sockets/certs) of the running nginx
            for my $dir ($HtmlDir, $LogDir) {
                next if !-d $dir;
                File::Find::find({ bydepth => 1, no_chdir => 1, wanted => sub {
                    if (-d $_) {
                        rmdir $_ if $_ ne $dir;
                        return;
                    }
                    return if /(?:\bnginx\.pid|\.sock|\.crt|\.key)$/;
                    unlink $_;
                }}, $dir);
            }
        } else {
            remove_tree($HtmlDir, $LogDir);
            if (!rmdir $ServRoot) {
                bail_out("Can't remove $ServRoot (not empty?): $!");
            }
        }
    }

    for my $dir ($ServRoot, $LogDir, $HtmlDir, $ConfDir) {
        next if -d $dir;
        make_path($dir) or bail_out("Failed to do mkdir $dir: $!");
    }

    my $index_file = "$HtmlDir/index.html";
    open my $out, '>', $index_file
        or bail_out("Can't open $index_file for writing: $!");
    print $out '<html><head><title>It works!</title></head><body>It works!</body></html>';
    close $out;
}

sub expand_env_in_text ($$$) {
    my ($text, $name, $rand_ports) = @_;
    return undef if !defined $text;

    my $used_ports = { $ServerPort => 1, map { $_ => 1 } values %$rand_ports };

    $text =~ s/\$(TEST_NGINX_[_A-Z0-9]+)/
        my $var = $1;
        my $val;
        if ($var =~ m{^TEST_NGINX_RAND_PORT_[0-9]+$}) {
            if (!defined $rand_ports->{$var}) {
                my $port = gen_rand_port(1000, $used_ports);
                if (!defined $port) {
                    bail_out("$name - Cannot find an available listening port number for $var.\n");
                }
                $rand_ports->{$var} = $port;
                $used_ports->{$port} = 1;
            }
            $val = $rand_ports->{$var};
        } else {
            if (!defined $ENV{$var}) {
                bail_out("$name - No environment $var defined.\n");
            }
            $val = $ENV{$var};
        }
        $val;
    /eg;

    return $text;
}

sub write_user_files ($$) {
    my ($block, $rand_ports) = @_;
    my $name = $block->name;
    my $files = $block->user_files;
    return if !$files;

    if (!ref $files) {
        my $raw = $files;
        open my $in, '<', \$raw;
        $files = [];
        my ($fname, $body, $date);
        while (<$in>) {
            if (/^>>> (\S+)(?:\s+(.+))?/) {
                push @$files, [$fname, $body, $date] if $fname;
                ($fname, $date) = ($1, $2);
                undef $body;
            } else {
                $body .= $_;
            }
        }
        push @$files, [$fname, $body, $date] if $fname;
        close $in;

    } elsif (ref $files ne 'ARRAY') {
        bail_out("$name - wrong value type for --- user_files: ", ref $files,
                 ", only scalar or ARRAY are accepted");
    }

    for my $file (@$files) {
        my ($fname, $body, $date) = @$file;
        $body //= '';
        my $path = $fname =~ m{^/} ? $fname : "$HtmlDir/$fname";
        if ($path =~ m{(.*)/}) {
            my $dir = $1;
            if (!-d $dir) {
                make_path($dir) or bail_out("$name - Cannot create directory $dir");
            }
        }
        $body = expand_env_in_text($body, $name, $rand_ports);
        open my $out, '>', $path
            or bail_out("$name - Cannot open $path for writing: $!");
        binmode $out;
        print $out $body;
        close $out;
        if ($date) {
            my $cmd = "TZ=GMT touch -t '$date' '$path'";
            system($cmd) == 0 or bail_out("Failed to run shell command: $cmd");
        }
    }
}

sub write_config_file ($$$) {
    my ($block, $config, $rand_ports) = @_;

    my $name = $block->name;
    my $http_config = expand_env_in_text($block->http_config, $name, $rand_ports) // '';
    my $main_config = expand_env_in_text($block->main_config, $name, $rand_ports) // '';
    my $post_main_config = expand_env_in_text($block->post_main_config, $name, $rand_ports) // '';
    my $err_log_file = $block->error_log_file || $ErrLogFile;
    my $server_name = $block->server_name // $ServerName;
    $config //= '';

    my $master = $UseHup ? 'on' : $MasterProcessEnabled;

    my $load_modules = '';
    if ($LoadModules) {
        $load_modules = join '', map { "load_module $_;\n" } grep { length } split /\s+/, $LoadModules;
    }

    my $env = '';
    for my $v (qw(MOCKEAGAIN_VERBOSE MOCKEAGAIN MOCKEAGAIN_WRITE_TIMEOUT_PATTERN
                  LD_PRELOAD LD_LIBRARY_PATH ASAN_OPTIONS), @EnvToNginx)
    {
        my $e = $v;
        $e = "'$e'" if $e =~ /\s/;
        $env .= "env $e;\n";
    }

    my $user = '';
    if (defined $WorkerUser) {
        $user = "user $WorkerUser;\n";
    } elsif ($> == 0) {
        $user = "user root;\n";
    }

    my $listen_opts = $ReusePort ? ' reuseport' : '';
    my $use = $EventType ? "    use $EventType;\n" : '';

    my $root_location = '';
    if (!$NoRootLocation) {
        $root_location = <<_EOC_;
        location / {
            root $HtmlDir;
            index index.html index.htm;
        }
_EOC_
    }

    my $hup_server = '';
    if ($UseHup) {
        # like upstream: on the test port, so the probes show in the logs
        $hup_server = <<_EOC_;
    server {
        listen          $ServerPort$listen_opts;
        server_name     'Test-Nginx';

        location = /ver {
            return 200 '$ConfigVersion';
        }
    }
_EOC_
    }

    (my $quoted_server_name = $server_name) =~ s/\\/\\\\/g;
    $quoted_server_name =~ s/'/\\'/g;

    open my $out, '>', $ConfFile or bail_out("Can't open $ConfFile for writing: $!");
    print $out <<_EOC_;
$load_modules$main_config

worker_processes  $Workers;
daemon $DaemonEnabled;
master_process $master;
error_log $err_log_file $LogLevel;
pid       $PidFile;
$env$user
events {
    accept_mutex off;
    worker_connections  $WorkerConnections;
$use}

$post_main_config

http {
    access_log $AccLogFile;

    default_type text/plain;
    keepalive_timeout  68;

    client_body_temp_path $ServRoot/client_body_temp;
    proxy_temp_path       $ServRoot/proxy_temp;
    fastcgi_temp_path     $ServRoot/fastcgi_temp;
    uwsgi_temp_path       $ServRoot/uwsgi_temp;
    scgi_temp_path        $ServRoot/scgi_temp;

$http_config

    server {
        listen          $ServerPort$listen_opts;
        server_name     '$quoted_server_name';

        client_max_body_size 30M;

        # Begin preamble config...
$ConfigPreamble
        # End preamble config...

        # Begin test case config...
$config
        # End test case config.

$root_location    }

$hup_server}
_EOC_
    close $out;
}

# ---------------------------------------------------------------------------
# nginx process management
# ---------------------------------------------------------------------------

# not upstream's: private, so that no .t file can come to rely on it
sub _child_pids_of ($) {
    my $ppid = shift;
    my @kids;
    opendir my $dh, '/proc' or return ();
    for my $p (grep { /^\d+$/ } readdir $dh) {
        open my $fh, '<', "/proc/$p/stat" or next;
        my $stat = <$fh>;
        close $fh;
        next if !defined $stat;
        # pid (comm) state ppid ...
        if ($stat =~ /\)\s+\S+\s+(\d+)/ && $1 == $ppid) {
            push @kids, $p;
        }
    }
    closedir $dh;
    return @kids;
}

sub reap ($) {
    my $pid = shift;
    if (defined $ChildPid && $pid == $ChildPid) {
        if (waitpid($pid, WNOHANG) == $pid) {
            undef $ChildPid;
            return 1;
        }
    }
    return 0;
}

# QUIT, wait up to $wait seconds, then KILL (workers too)
sub kill_process ($$$) {
    my ($pid, $wait, $name) = @_;
    return if !$pid;
    my @kids = _child_pids_of($pid);

    kill(SIGQUIT, $pid);
    my $deadline = time + $wait;
    while (time < $deadline) {
        reap($pid);
        last if !is_running($pid);
        sleep 0.02;
    }

    if (is_running($pid)) {
        warn "WARNING: $name - timeout when waiting for nginx process $pid to exit; killing it\n";
        push @kids, _child_pids_of($pid);
        kill(SIGKILL, $pid);
        for my $kid (@kids) {
            kill(SIGKILL, $kid) if is_running($kid);
        }
        my $deadline2 = time + 2;
        while (time < $deadline2) {
            reap($pid);
            last if !is_running($pid);
            sleep 0.02;
        }
    }

    # workers of a master killed hard, or leftovers of a master that exited
    for my $kid (@kids) {
        my $d = time + 1;
        while (is_running($kid) && time < $d) { sleep 0.02 }
        kill(SIGKILL, $kid) if is_running($kid);
    }
}

# a stale pid file may name a pid that now belongs to something else
sub looks_like_nginx ($) {
    my $pid = shift;
    open my $fh, '<', "/proc/$pid/cmdline" or return 1;   # no /proc: trust it
    my $cmd = do { local $/; <$fh> } // '';
    close $fh;
    return $cmd =~ /nginx/;
}

sub stop_nginx ($) {
    my $name = shift;
    my $pid = get_pid_from_pidfile($name);
    # under valgrind each process checks for leaks as it exits, which takes
    # seconds; killed, it would report nothing
    my $wait = $UseValgrind ? 60 : 5;
    if ($pid && is_running($pid) && looks_like_nginx($pid)) {
        kill_process($pid, $wait, $name);
    }
    if (defined $ChildPid) {
        if (is_running($ChildPid)) {
            kill_process($ChildPid, $wait, $name);
        }
        waitpid($ChildPid, WNOHANG) if defined $ChildPid;
        undef $ChildPid;
    }
    unlink $PidFile if -f $PidFile;
}

sub port_accepts ($$) {
    my ($addr, $port) = @_;
    my $sock = IO::Socket::INET->new(
        PeerAddr => $addr,
        PeerPort => $port,
        Proto    => 'tcp',
        Timeout  => 0.5,
    );
    if ($sock) {
        close $sock;
        return 1;
    }
    return 0;
}

sub read_file ($) {
    my $file = shift;
    open my $in, '<', $file or return '';
    local $/;
    my $s = <$in>;
    close $in;
    return $s // '';
}

sub nginx_command () {
    my @cmd = ($NginxBinary, '-p', "$ServRoot/", '-c', $ConfFile);
    if (defined $NginxVersion && $NginxVersion >= 1.019005) {
        # startup messages (e.g. [emerg] on a bad config) go to the error
        # log like with a stock build; Debian's binary defaults to stderr
        push @cmd, '-e', $ErrLogFile;
    }
    return @cmd;
}

sub valgrind_command () {
    # upstream's command line: workers are forked, not executed, so they
    # are traced without --trace-children
    if ($UseValgrind !~ /^\d+$/) {
        return ('valgrind', '-q', split(/\s+/, $UseValgrind));
    }
    my @vg = ('valgrind', '--num-callers=100', '-q', '--tool=memcheck',
              '--leak-check=full', '--keep-debuginfo=yes',
              '--show-possibly-lost=no', '--gen-suppressions=all');
    # like upstream: ./valgrind.suppress only
    push @vg, '--suppressions=valgrind.suppress' if -f 'valgrind.suppress';
    return @vg;
}

# Runs nginx. Returns (status, stderr); status is the exit status of the
# command for daemonised nginx (0 = started), or 0 when started in the
# foreground under valgrind.
sub exec_nginx ($) {
    my ($foreground) = @_;
    my @cmd = nginx_command();
    @cmd = (valgrind_command(), @cmd) if $foreground;

    if ($Verbose) {
        warn "starting: @cmd\n";
    }

    unlink $StderrFile;
    my $pid = fork();
    if (!defined $pid) {
        bail_out("fork() failed: $!");
    }
    if ($pid == 0) {
        $InSubprocess = 1;
        setpgrp(0, 0) if $foreground;
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', '/dev/null';
        if (!$foreground) {
            open STDERR, '>', $StderrFile;
        }
        exec { $cmd[0] } @cmd or do {
            print STDERR "failed to exec $cmd[0]: $!\n";
            POSIX::_exit(127);
        };
    }

    if ($foreground) {
        $ChildPid = $pid;
        return (0, '');
    }

    # the daemonising parent exits as soon as the listening sockets are open
    my $deadline = time + 30;
    my $status;
    while (1) {
        my $r = waitpid($pid, WNOHANG);
        if ($r == $pid) {
            $status = $?;
            last;
        }
        if (time > $deadline) {
            kill(SIGKILL, $pid);
            waitpid($pid, 0);
            $status = -1;
            last;
        }
        sleep 0.005;
    }
    return ($status, read_file($StderrFile));
}

sub wait_for_nginx ($$) {
    my ($name, $max) = @_;
    my $deadline = time + $max;
    my $pid;
    while (time < $deadline) {
        $pid //= get_pid_from_pidfile($name);
        if (defined $ChildPid) {
            reap($ChildPid);
            if (!defined $ChildPid) {
                return (0, "nginx exited early");
            }
        } elsif ($pid && !is_running($pid)) {
            return (0, "nginx (pid $pid) exited right after starting");
        }
        if ($pid && port_accepts($ServerAddr, $ServerPortForClient)) {
            return (1, '');
        }
        sleep 0.01;
    }
    return (0, "nginx did not accept connections on $ServerAddr:$ServerPortForClient within $max s");
}

sub start_nginx ($$) {
    my ($block, $name) = @_;

    my $foreground = $UseValgrind ? 1 : 0;
    my ($status, $stderr);
    my $deadline = time + 5;

    while (1) {
        ($status, $stderr) = exec_nginx($foreground);
        last if $status == 0;
        # a previous instance may still be releasing the port
        if ($stderr =~ /Address already in use/ && time < $deadline) {
            sleep 0.2;
            next;
        }
        last;
    }

    if ($status != 0) {
        Test::More::fail("$name - nginx failed to start (exit status "
                         . ($status == -1 ? 'unknown' : $status >> 8) . ")");
        Test::More::diag("nginx stderr:\n" . ($stderr eq '' ? "(empty)\n" : $stderr));
        diag_error_log_tail(20);
        return 0;
    }

    # like upstream, under valgrind the block goes on (--- init runs)
    # before nginx listens; requests wait for it (nginx_listens)
    return $foreground ? 2 : nginx_listens($name, 10);
}

sub nginx_listens ($$) {
    my ($name, $max) = @_;

    my ($ok, $err) = wait_for_nginx($name, $max);
    if (!$ok) {
        Test::More::fail("$name - nginx failed to start: $err");
        my $se = read_file($StderrFile);
        Test::More::diag("nginx stderr:\n$se") if $se ne '';
        diag_error_log_tail(20);
        stop_nginx($name);
        return 0;
    }

    if ($UseValgrind) {
        warn "$name\n";    # like upstream: name each block in valgrind output
    }

    sleep $TestNginxSleep;
    return 1;
}

sub gen_rand_str ($) {
    my $len = shift;
    my @a = ('A' .. 'Z', 'a' .. 'z', '0' .. '9');
    return join '', map { $a[int rand @a] } 1 .. $len;
}

# HUP-reload a running nginx with the new config; returns true on success
sub reload_nginx ($$$$) {
    my ($block, $name, $config, $rand_ports) = @_;
    my $pid = get_pid_from_pidfile($name);
    return 0 if !$pid || !is_running($pid);

    setup_server_root(0);
    write_user_files($block, $rand_ports);
    write_config_file($block, $config, $rand_ports);

    kill(SIGUSR1, $pid) or return 0;     # reopen the (removed) log files
    sleep $TestNginxSleep;
    my @old = old_workers($pid);
    kill(SIGHUP, $pid) or return 0;
    sleep $TestNginxSleep * 3;

    if (defined $block->reload_fails) {
        sleep 0.3;
        return 1;
    }

    # wait until every worker serves the new configuration
    my $nsucc = 0;
    my $deadline = time + 15;
    while (time < $deadline) {
        my $raw = simple_http_get($ServerPort, '/ver', 1);
        my $ver = defined $raw && $raw =~ /\r\n\r\n(.*)\z/s ? $1 : undef;
        if (defined $ver && $ver eq $ConfigVersion) {
            if (++$nsucc >= 10) {
                wait_old_workers(\@old, $deadline);
                return 1;
            }
            next;
        }
        $nsucc = 0;
        sleep 0.02;
    }

    Test::More::fail("$name - failed to reload the configuration (HUP)");
    return 1;
}

# the workers of the configuration a reload replaces
sub old_workers ($) {
    my $master = shift;
    open my $in, '<', "/proc/$master/task/$master/children" or return ();
    my @pids = split ' ', (<$in> // '');
    close $in;
    return @pids;
}

# until the deadline, until each of them has stopped accepting (its title
# says "is shutting down": it has closed its listening sockets) or exited.
# A new worker answering /ver does not prove it: an old one that had not
# run yet since the HUP still accepts when it does.
sub wait_old_workers ($$) {
    my ($old, $deadline) = @_;
    for my $w (@$old) {
        while (time < $deadline) {
            open my $in, '<', "/proc/$w/cmdline" or last;
            my $title = do { local $/; <$in> } // '';
            close $in;
            last if $title eq '' || $title =~ /shutting down/;
            sleep 0.02;
        }
    }
}

sub simple_http_get ($$$) {
    my ($port, $uri, $timeout) = @_;
    my $sock = IO::Socket::INET->new(
        PeerAddr => $ServerAddr, PeerPort => $port,
        Proto => 'tcp', Timeout => $timeout,
    ) or return undef;
    print $sock "GET $uri HTTP/1.0\r\nHost: Test-Nginx\r\n\r\n";
    my $resp = '';
    my $sel = IO::Select->new($sock);
    while ($sel->can_read($timeout)) {
        my $n = sysread($sock, my $buf, 4096);
        last if !$n;
        $resp .= $buf;
    }
    close $sock;
    return $resp;
}

# ---------------------------------------------------------------------------
# embedded TCP server (--- tcp_listen): accepts exactly one connection
# ---------------------------------------------------------------------------

sub start_tcp_server ($) {
    my ($block) = @_;
    my $name = $block->name;
    my $target = $block->tcp_listen;
    my $reply = $block->tcp_reply;
    if (!defined $reply && !defined $block->tcp_shutdown) {
        bail_out("$name - no --- tcp_reply specified but --- tcp_listen is specified");
    }

    my $req_len = $block->tcp_query_len;
    my $query_file;
    if (defined $block->tcp_query || defined $req_len) {
        $req_len //= length($block->tcp_query);
        $query_file = File::Spec->catfile($ServRoot, "tcp_query.$$");
        unlink $query_file;
    }

    my $sock;
    for (1 .. 30) {
        if ($target =~ /^\d+$/) {
            $sock = IO::Socket::INET->new(
                LocalHost => '127.0.0.1', LocalPort => $target, Proto => 'tcp',
                ReuseAddr => 1, Listen => 5,
            );
        } elsif ($target =~ m{\S+\.sock$}) {
            unlink $target if -e $target;
            $sock = IO::Socket::UNIX->new(Local => $target, Type => SOCK_STREAM, Listen => 5);
        } else {
            bail_out("$name - bad tcp_listen target: $target");
        }
        last if $sock;
        last if $! !~ /in use/i;
        sleep 0.2;
    }
    bail_out("$name - failed to create the tcp listening socket: $!") if !$sock;

    my $pid = fork();
    bail_out("$name - fork() failed: $!") if !defined $pid;

    if ($pid == 0) {
        $InSubprocess = 1;
        Test::More->builder->no_ending(1);
        my $client;
        while (!($client = $sock->accept)) { sleep $TestNginxSleep }

        my ($no_read, $no_write);
        if (defined $block->tcp_shutdown) {
            my $how = $block->tcp_shutdown;
            sleep $block->tcp_shutdown_delay if $block->tcp_shutdown_delay;
            $client->shutdown($how);
            if ($how == 0 || $how == 2) { $no_read = 1 } else { $no_write = 1 }
        }

        my $buf = '';
        if (!$no_read) {
            while (1) {
                my $b;
                my $ret = $client->recv($b, 4096);
                last if !defined $ret || !defined $b || $b eq '';
                $buf .= $b;
                if ($query_file) {
                    if (open my $out, '>', $query_file) { print $out $buf; close $out }
                }
                last if !$req_len || length($buf) >= $req_len;
            }
        }

        my $delay = parse_time($block->tcp_reply_delay);
        sleep $delay if $delay;

        if (!$no_write && defined $reply) {
            $reply = $reply->($buf) if ref $reply eq 'CODE';
            for my $r (ref $reply eq 'ARRAY' ? @$reply : ($reply)) {
                $client->send($r);
            }
        }

        if (defined $block->tcp_no_close) {
            sleep 1 while 1;
        }
        $client->close;
        $sock->close;
        POSIX::_exit(0);
    }

    $TcpServerPid = $pid;
    return ($sock, $query_file);
}

sub stop_tcp_server ($$) {
    my ($sock, $query_file) = @_;
    if (defined $TcpServerPid) {
        kill(SIGKILL, $TcpServerPid) if is_running($TcpServerPid);
        waitpid($TcpServerPid, 0);
        undef $TcpServerPid;
    }
    $sock->close if $sock;
    unlink $query_file if $query_file;
}

sub run_tcp_server_tests ($$$) {
    my ($block, $sock, $query_file) = @_;
    return if !defined $sock;
    my $name = $block->name;
    my $buf = '';
    if ($query_file) {
        # give the server a moment to flush what it received
        my $deadline = time + 0.5;
        while (time < $deadline) {
            $buf = read_file($query_file);
            last if defined $block->tcp_query_len ? length($buf) >= $block->tcp_query_len
                  : defined $block->tcp_query ? length($buf) >= length($block->tcp_query)
                  : 1;
            sleep 0.02;
        }
    }
    if (defined $block->tcp_query) {
        is_str($buf, $block->tcp_query, "$name - tcp_query ok");
    }
    if (defined $block->tcp_query_len) {
        Test::More::is(length($buf), $block->tcp_query_len, "$name - TCP query length ok");
    }
}

# ---------------------------------------------------------------------------
# run_tests / run_test
# ---------------------------------------------------------------------------

sub run_tests () {
    $NginxVersion = get_nginx_version();

    $ENV{TEST_NGINX_SERVER_PORT} //= $ServerPort;

    for my $block (Test::Base::blocks()) {
        for my $hdl (@BlockPreprocessors) {
            $hdl->($block);
        }
        $block->set_value("name", $0 . " " . $block->name);
        run_test($block);
        $PrevBlock = $block;
    }

    cleanup();
    if (!$ENV{TEST_NGINX_NO_CLEAN}) {
        stop_nginx("END");
    }
}

sub cleanup () {
    for my $hdl (@CleanupHandlers) {
        $hdl->();
    }
    if (defined $TcpServerPid) {
        kill(SIGKILL, $TcpServerPid);
        waitpid($TcpServerPid, 0);
        undef $TcpServerPid;
    }
}

END {
    if (!$InSubprocess) {
        local $?;
        cleanup();
        if ((!$ENV{TEST_NGINX_NO_CLEAN} || defined $ChildPid) && -d $ServRoot) {
            stop_nginx("END");
        }
    }
}

sub parse_skip_spec ($$) {
    my ($block, $name) = @_;
    my ($tests_to_skip, $should_skip, $skip_reason);

    if (defined(my $skip_eval = $block->skip_eval)) {
        if ($skip_eval =~ m{^\s*(\d+)\s*:\s*(.*)}s) {
            $tests_to_skip = $1;
            $skip_reason = "skip_eval";
            my $code = $2;
            $should_skip = eval $code;
            if ($@) {
                bail_out("$name - skip_eval - failed to eval the Perl code \"$code\": $@");
            }
        }
    }

    if (defined(my $skip_nginx = $block->skip_nginx)) {
        if ($skip_nginx =~ m{^\s*(\d+)\s*:\s*([<>]=?)\s*(\d+)\.(\d+)\.(\d+)(?:\s*:\s*(.*))?\s*$}) {
            $tests_to_skip = $1;
            my ($op, $ver) = ($2, get_canon_version($3, $4, $5));
            $skip_reason = $6 || "nginx version $op $3.$4.$5";
            $should_skip = 1 if eval "$NginxVersion $op $ver";
        } else {
            bail_out("$name - Invalid --- skip_nginx spec: $skip_nginx");
        }
    } elsif (defined(my $skip_nginx2 = $block->skip_nginx2)) {
        if ($skip_nginx2 =~ m{^\s*(\d+)\s*:\s*([<>]=?)\s*(\d+)\.(\d+)\.(\d+)\s*(or|and)\s*([<>]=?)\s*(\d+)\.(\d+)\.(\d+)(?:\s*:\s*(.*))?\s*$}) {
            $tests_to_skip = $1;
            my ($opa, $vera) = ($2, get_canon_version($3, $4, $5));
            my $opx = $6;
            my ($opb, $verb) = ($7, get_canon_version($8, $9, $10));
            $skip_reason = $11;
            my $a = eval "$NginxVersion $opa $vera";
            my $b = eval "$NginxVersion $opb $verb";
            $should_skip = 1 if ($opx eq 'or' ? ($a || $b) : ($a && $b));
        } else {
            bail_out("$name - Invalid --- skip_nginx2 spec: $skip_nginx2");
        }
    }

    if (defined(my $skip_openssl = $block->skip_openssl)) {
        if ($skip_openssl =~ m{^\s*(\d+)\s*:\s*([<>]=?)\s*(\d+)\.(\d+)\.(\d+)([a-z])?(?:\s*:\s*(.*))?\s*$}) {
            $tests_to_skip = $1;
            my ($op, $ver) = ($2, get_canon_version_for_openssl($3, $4, $5, $6));
            $skip_reason = $7 || "OpenSSL version $op $3.$4.$5" . ($6 // '');
            $should_skip = 1 if !defined $OpenSSLVersion || eval "$OpenSSLVersion $op $ver";
        } else {
            bail_out("$name - Invalid --- skip_openssl spec: $skip_openssl");
        }
    }

    $skip_reason //= "various reasons";

    my ($should_todo, $todo_reason);
    if (defined(my $todo = $block->todo)) {
        if ($todo =~ m{^\s*(\d+)\s*:\s*(.*)}s) {
            $should_todo = 1;
            $tests_to_skip = $1;
            $todo_reason = $2;
        } else {
            bail_out("$name - Invalid --- todo spec: $todo");
        }
    }
    $todo_reason //= "various reasons";

    return ($tests_to_skip, $should_skip, $skip_reason, $should_todo, $todo_reason);
}

sub run_test ($) {
    my $block = shift;

    return if defined $block->SKIP;

    my $name = $block->name;

    my $first_time;
    if ($FirstTime) {
        $first_time = 1;
        undef $FirstTime;
    }

    my $rand_ports = {};
    my $config = expand_env_in_text($block->config, $name, $rand_ports);

    local $LogLevel = $LogLevel;
    $LogLevel = $block->log_level if $block->log_level;

    local $UseValgrind = $UseValgrind;
    local $UseHup = $UseHup;
    local $DaemonEnabled = $DaemonEnabled;

    my $must_die;
    if (defined $block->must_die) {
        $must_die = $block->must_die;
        undef $UseValgrind;
        undef $UseHup;
        $DaemonEnabled = 'on';
    }

    my ($tests_to_skip, $should_skip, $skip_reason, $should_todo, $todo_reason)
        = parse_skip_spec($block, $name);

    my $started = 0;
    my $should_restart = 1;
    if (!defined $config) {
        if (!$NoNginxManager && !defined $PrevConfig) {
            bail_out("$name - No '--- config' section specified and could not get previous one.");
        }
        # upstream keeps the nginx of the previous block running in this case
        $should_restart = 0;
    } elsif ($NoNginxManager) {
        $should_restart = 0;
    }

    if (!$should_skip && $should_restart) {
        $PrevConfig = $config;
        $ConfigVersion = gen_rand_str(10) if $UseHup;

        my $reloaded;
        if ($UseHup && !$first_time) {
            $reloaded = reload_nginx($block, $name, $config, $rand_ports);
        }

        if (!$reloaded) {
            stop_nginx($name);
            setup_server_root(1);
            write_user_files($block, $rand_ports);
            write_config_file($block, $config, $rand_ports);

            if (!-x $NginxBinary && $NginxBinary =~ m{/}) {
                bail_out("$name - Cannot find the nginx executable $NginxBinary");
            }

            if (defined $must_die) {
                run_must_die($block, $name, $must_die);
                return;
            }

            $ErrLogFilePos = 0;
            $started = start_nginx($block, $name) or return;
        }
    }

    if (defined $block->init) {
        eval $block->init;
        if ($@) {
            bail_out("$name - init failed: $@");
        }
    }

    if ($started == 2) {
        nginx_listens($name, 60) or return;
    }

    my $i = 0;
    $ErrLogFilePos = 0;
    while ($i++ < $RepeatEach) {
        write_user_files($block, $rand_ports) if $i > 1;

        my ($tcp_socket, $tcp_query_file);
        if (defined $block->tcp_listen && !$should_skip) {
            ($tcp_socket, $tcp_query_file) = start_tcp_server($block);
        }

        if ($should_skip && defined $tests_to_skip) {
            SKIP: {
                Test::More::skip("$name - $skip_reason", $tests_to_skip);
            }
        } elsif ($should_todo) {
            TODO: {
                Test::More::todo_skip("$name - $todo_reason", $tests_to_skip);
            }
        } else {
            run_test_helper($block, 0, $i - 1);
            run_tcp_server_tests($block, $tcp_socket, $tcp_query_file);
        }

        stop_tcp_server($tcp_socket, $tcp_query_file) if defined $tcp_socket;
    }

    if ($UseValgrind && !$UseHup) {
        # like upstream: stop the foreground nginx after each block so that
        # valgrind reports are attributed to it
        stop_nginx($name);
    }
}

sub run_must_die ($$$) {
    my ($block, $name, $must_die) = @_;

    for my $i (0 .. $RepeatEach - 1) {
        $ErrLogFilePos = 0;
        unlink $ErrLogFile if $i > 0;
        my ($status, $stderr) = exec_nginx(0);
        my $exit_code = $status == -1 ? undef : $status >> 8;

        if ($status == -1) {
            Test::More::fail("$name - failed to execute the nginx command line");
        } elsif ($status & 128) {
            Test::More::fail("$name - nginx core dumped");
        } elsif (looks_like_number($must_die)) {
            Test::More::is($exit_code, $must_die, "$name - die with the expected exit code");
        } else {
            Test::More::isnt($status, 0, "$name - die as expected");
        }

        {
            local $MustDieStderr = $stderr;
            check_error_log($block, undef, 0, $i, 0);
        }

        if ($status == 0) {
            warn "WARNING: $name - nginx must die but it does not; killing it (req $i)\n";
            my $d = time + 1;
            sleep 0.01 while !-f $PidFile && time < $d;
            stop_nginx($name);
        }
    }
}

# ---------------------------------------------------------------------------
# requests
# ---------------------------------------------------------------------------

sub parse_request ($$) {
    my ($name, $rrequest) = @_;
    open my $in, '<', $rrequest;
    my $first = <$in>;
    if (!defined $first || $first eq '') {
        bail_out("$name - Request line should be non-empty");
    }
    my ($meth, $url, $ver);
    if ($first =~ /^\s*(\S+)(?:[ \t]+(\S+))?(?:[ \t]+(\S+))?[ \t]*\r?\n?$/) {
        ($meth, $url, $ver) = ($1, $2, $3);
    } else {
        bail_out("$name - Request line is not valid. Should be 'meth [url [version]]' but got \"$first\".");
    }
    $url //= '/';
    $ver //= 'HTTP/1.1';
    my $content = do { local $/; <$in> };
    $content //= '';
    close $in;
    return { method => $meth, url => $url, http_ver => $ver, content => $content };
}

sub parse_more_headers ($) {
    my ($in) = @_;
    my $out = '';
    my $is_chunked;
    for my $header (split /\n+/, $in // '') {
        next if $header =~ /^\s*\#/;
        next if $header !~ /\S/;
        my ($key, $val) = split /:\s*/, $header, 2;
        $val //= '';
        $val =~ s/\r$//;
        if (lc($key) eq 'transfer-encoding' && $val eq 'chunked') {
            $is_chunked = 1;
        }
        $out .= "$key: $val\r\n";
    }
    return ($out, $is_chunked);
}

# Builds the wire form of a "--- request" string (possibly given as several
# packets) and returns a list of packets ({value, delay_before}).  Packet
# boundaries that fall inside the body are kept at the same body offsets;
# boundaries inside the request line end up after the generated headers.
sub build_request_packets ($$$$$) {
    my ($name, $more_headers, $is_chunked, $conn_header, $packets) = @_;

    my @vals = map { ref $_ eq 'HASH' ? ($_->{value} // '') : $_ } @$packets;
    my $req = join '', @vals;
    my $parsed = parse_request($name, \$req);

    my $content = $parsed->{content};
    my $lead = 0;
    my $len_header = '';
    if (!$is_chunked && $content ne '' && $more_headers !~ /(?:^|\n)Content-Length:/i) {
        $lead = $content =~ /\A(\s*)/ ? length($1) : 0;
        $content =~ s/^\s+|\s+$//gs;
        $len_header = "Content-Length: " . length($content) . "\r\n";
    }

    my $headers = '';
    if ($more_headers !~ /(?:^|\n)Host:/msi) {
        $headers .= "Host: $ServerName\r\n";
    }
    if ($more_headers !~ /(?:^|\n)Connection/msi) {
        $headers .= "Connection: $conn_header\r\n";
    }
    $headers .= "$more_headers$len_header\r\n";

    my $head = "$parsed->{method} $parsed->{url} $parsed->{http_ver}\r\n$headers";
    my $full = $head . $content;

    my $body_start = length($req) - length($parsed->{content});
    my @out;
    my ($orig_pos, $final_pos) = (0, 0);
    for my $i (0 .. $#$packets) {
        my $pkt = $packets->[$i];
        $orig_pos += length $vals[$i];
        my $cut;
        if ($i == $#$packets) {
            $cut = length $full;
        } elsif ($orig_pos <= $body_start + $lead) {
            $cut = length $head;
        } else {
            $cut = length($head) + $orig_pos - $body_start - $lead;
            $cut = length $full if $cut > length $full;
        }
        $cut = $final_pos if $cut < $final_pos;
        my %p = ref $pkt eq 'HASH' ? %$pkt : ();
        $p{value} = substr($full, $final_pos, $cut - $final_pos);
        $final_pos = $cut;
        push @out, \%p;
    }
    return \@out;
}

sub get_req_from_block ($) {
    my ($block) = @_;
    my $name = $block->name;
    my @req_list;

    if (defined $block->raw_request) {
        my $raw = $block->raw_request;
        if (ref $raw && ref $raw eq 'ARRAY') {
            push @req_list, [map { ref $_ eq 'HASH' ? {%$_} : { value => $_ } } @$raw];
        } else {
            push @req_list, [{ value => $raw }];
        }
        return \@req_list;
    }

    my $request = $block->request;
    if (defined $request && !ref $request) {
        while ($request =~ s/^\s*\#[^\n]+\s+|^\s+//gs) { }
    }

    my $more_headers = $block->more_headers // '';

    my $hdr_for = sub {
        my ($i) = @_;
        if (ref $more_headers eq 'ARRAY') {
            my $h = $more_headers->[$i];
            if (!defined $h) {
                bail_out("$name - --- more_headers lacks data for the ${i}th request");
            }
            return parse_more_headers($h);
        }
        return parse_more_headers($more_headers);
    };

    if ($block->pipelined_requests) {
        my $reqs = $block->pipelined_requests;
        if (!ref $reqs || ref $reqs ne 'ARRAY') {
            bail_out("$name - invalid entries in --- pipelined_requests");
        }
        my $prq = '';
        for my $i (0 .. $#$reqs) {
            my $conn = $i == $#$reqs ? 'close' : 'keep-alive';
            my ($hdr, $chunked) = $hdr_for->($i);
            my $pk = build_request_packets($name, $hdr, $chunked, $conn, [$reqs->[$i]]);
            $prq .= $pk->[0]{value};
        }
        push @req_list, [{ value => $prq }];
        return \@req_list;
    }

    if (!defined $request) {
        return \@req_list;
    }

    if (!ref $request) {
        my ($hdr, $chunked) = $hdr_for->(0);
        push @req_list, build_request_packets($name, $hdr, $chunked, 'close', [$request]);

    } elsif (ref $request eq 'ARRAY') {
        my $i = 0;
        for my $one (@$request) {
            my ($hdr, $chunked) = $hdr_for->($i);
            if (!ref $one) {
                push @req_list, build_request_packets($name, $hdr, $chunked, 'close', [$one]);
            } elsif (ref $one eq 'ARRAY') {
                for my $p (@$one) {
                    if (ref $p && ref $p ne 'HASH') {
                        bail_out("$name - Invalid syntax. $p should be a string or hash with value.");
                    }
                }
                push @req_list, build_request_packets($name, $hdr, $chunked, 'close', $one);
            } else {
                bail_out("$name - Invalid syntax. $one should be a string or an array of packets.");
            }
            $i++;
        }
    } else {
        bail_out("$name - invalid ---request : MUST be string or array of requests");
    }

    return \@req_list;
}

sub connect_to_server ($$$) {
    my ($block, $name, $timeout) = @_;
    my $addr = $block->server_addr_for_client // $ServerAddr;
    my $err;
    my $deadline = time + ($UseValgrind ? 10 : 2);
    my $try = 0;
    while (1) {
        my $sock = IO::Socket::INET->new(
            PeerAddr => $addr,
            PeerPort => $ServerPortForClient,
            Proto    => 'tcp',
            Timeout  => $timeout,
        );
        if ($sock) {
            $sock->blocking(0);
            return $sock;
        }
        $err = $!;
        last if time >= $deadline;
        if (defined $ChildPid) {
            reap($ChildPid);
            last if !defined $ChildPid;
        }
        $try++;
        my $wait = $TestNginxSleep * $try;
        $wait = 0.2 if $wait > 0.2;
        sleep $wait;
    }
    my $msg = "$name - Can't connect to $addr:$ServerPortForClient: $err (aborted)\n";
    if (++$TotalConnectingTimeouts < 3) {
        Test::More->builder->no_ending(1);
        Test::More::fail($msg);
    } else {
        bail_out($msg);
    }
    return undef;
}

sub send_request ($$$$) {
    my ($packets, $middle_delay, $timeout, $block) = @_;
    my $name = $block->name;

    my @bits = @$packets;
    my $joined = join '', map { $_->{value} } @bits;
    my $head_req = $joined =~ /^\s*HEAD\s+/ ? 1 : 0;

    my $sock = connect_to_server($block, $name, $timeout) or return (undef, $head_req, 0);

    my $first = shift @bits;
    my $ctx = {
        resp => '', write_buf => $first ? $first->{value} : '', write_offset => 0,
        bits => \@bits, middle_delay => $middle_delay,
    };

    my $sel_r = IO::Select->new($sock);
    my $sel_w = IO::Select->new($sock);
    my $timed_out = 0;

    while ($sel_r->count || $sel_w->count) {
        my ($r, $w) = IO::Select->select($sel_r->count ? $sel_r : undef,
                                         $sel_w->count ? $sel_w : undef,
                                         undef, $timeout);
        if (!$r && !$w) {
            if ($! == EINTR) { next }
            $timed_out = 1;
            last;
        }

        if ($w && @$w) {
            my $res = write_some($ctx, $sock);
            if (!defined $res) {
                $sel_w->remove($sock);
            } elsif ($res == 2) {
                $sel_w->remove($sock);
                my $shutdown = $block->shutdown;
                if (defined $shutdown) {
                    $shutdown = 1 if $shutdown !~ /\S/;
                    shutdown($sock, $shutdown);
                }
            }
        }

        if ($r && @$r) {
            my $res = read_some($ctx, $sock, $name);
            if (!$res) {
                $sel_r->remove($sock);
                $sel_w->remove($sock);
            }
        }
    }

    close $sock;

    if ($timed_out) {
        if (!defined $block->abort) {
            Test::More->builder->no_ending(1);
            Test::More::fail("ERROR: client socket timed out - $name\n");
        } else {
            sleep 0.005;
        }
    }

    return ($ctx->{resp}, $head_req, $timed_out);
}

sub write_some ($$) {
    my ($ctx, $sock) = @_;
    while (1) {
        my $rest = length($ctx->{write_buf}) - $ctx->{write_offset};
        if ($rest > 0) {
            my $n = syswrite($sock, $ctx->{write_buf}, $rest, $ctx->{write_offset});
            if (!defined $n) {
                return 1 if $! == EAGAIN || $! == EINTR;
                my $err = "write failed: $!";
                warn "$err\n";
                $ctx->{resp} = $err if $ctx->{resp} eq '';
                return undef;
            }
            $ctx->{write_offset} += $n;
            next;
        }
        my $next = shift @{ $ctx->{bits} };
        return 2 if !defined $next;
        $ctx->{write_buf} = $next->{value};
        $ctx->{write_offset} = 0;
        my $wait = defined $next->{delay_before} ? $next->{delay_before} : $ctx->{middle_delay};
        sleep $wait if $wait;
    }
}

sub read_some ($$$) {
    my ($ctx, $sock, $name) = @_;
    while (1) {
        my $n = sysread($sock, my $buf, 16384);
        if (!defined $n) {
            return 1 if $! == EAGAIN || $! == EINTR;
            # a reset after nginx sent its response (e.g. lingering close
            # of an unread body) is not worth a warning
            warn "WARNING: $name - HTTP response read failure: $!\n"
                if !$!{ECONNRESET};
            return undef;
        }
        return undef if $n == 0;
        $ctx->{resp} .= $buf;
    }
}

sub parse_response ($$$) {
    my ($name, $raw_resp, $head_req) = @_;
    my $left;
    my $raw_headers = '';
    if ($raw_resp =~ /(.*?\r\n)\r\n/s) {
        $raw_headers = $1;
    }

    my $res = HTTP::Response->parse($raw_resp);
    my $code = $res->code;
    if (defined $code && $code !~ /^\d+$/) {
        $res->code(undef);
        undef $code;
    }
    if ($code && ($code == 304 || $code == 101 || $code == 204)) {
        if ($code == 204 || $code == 304) {
            my $c = $res->content;
            if (defined $c && $c ne '') {
                $left = $c;
                $res->content('');
            }
        }
        return ($res, $raw_headers, $left);
    }

    if ($head_req) {
        my $c = $res->content;
        if (defined $c && $c ne '') {
            $left = $c;
            $res->content('');
        }
        return ($res, $raw_headers, $left);
    }

    my $enc = $res->header('Transfer-Encoding');
    my $len = $res->header('Content-Length');

    if (defined $enc && $enc eq 'chunked') {
        my $raw = $res->content // '';
        my $decoded = '';
        while (1) {
            if ($raw =~ /\G 0 [\ \t]* \r\n \r\n /gcsx) {
                if ($raw =~ /\G (.+) /gcsx) {
                    $left = $1;
                }
                last;
            }
            if ($raw =~ m{ \G [\ \t]* ( [A-Fa-f0-9]+ ) [\ \t]* \r\n }gcsx) {
                my $size = hex($1);
                my $pos = pos($raw);
                if (length($raw) - $pos < $size) {
                    Test::More->builder->no_ending(1);
                    Test::More::fail("$name - invalid chunked data received "
                                     . "(not enough octets for the data section)");
                    return;
                }
                $decoded .= substr($raw, $pos, $size);
                pos($raw) = $pos + $size;
                if ($raw !~ /\G\r\n/gcs) {
                    Test::More->builder->no_ending(1);
                    Test::More::fail("$name - invalid chunked data received (expected CRLF).");
                    return;
                }
            } elsif ($raw =~ /\G.+/gcs) {
                Test::More->builder->no_ending(1);
                Test::More::fail("$name - invalid chunked body received: $&");
                return;
            } else {
                Test::More->builder->no_ending(1);
                Test::More::fail("$name - no last chunk found - $raw");
                return;
            }
        }
        $res->content($decoded);

    } elsif (defined $len && $len ne '' && $len =~ /^\d+$/) {
        my $raw = $res->content // '';
        if (length $raw < $len) {
            warn "WARNING: $name - response body truncated: $len expected, but got ",
                 length $raw, "\n";
        } elsif (length $raw > $len) {
            $left = substr($raw, $len);
            $res->content(substr($raw, 0, $len));
        }
    }

    return ($res, $raw_headers, $left);
}

# ---------------------------------------------------------------------------
# the per-block test driver
# ---------------------------------------------------------------------------

sub failures_so_far () {
    my @s = Test::More->builder->summary;
    return scalar grep { !$_ } @s;
}

sub diag_error_log_tail ($) {
    my $n = shift;
    return if !-f $ErrLogFile;
    open my $in, '<', $ErrLogFile or return;
    # [debug] lines drown everything else; show the last non-debug ones
    my @lines = grep { !/^\S+ \S+ \[debug\]/ } <$in>;
    close $in;
    my @tail = @lines > $n ? @lines[-$n .. -1] : @lines;
    Test::More::diag("--- last non-debug lines of $ErrLogFile:\n"
                     . (@tail ? join('', @tail) : "(none)\n"));
}

sub diag_responses ($) {
    my $resps = shift;
    my $i = 0;
    for my $raw (@$resps) {
        my $s = defined $raw ? $raw : '(no response)';
        if (length $s > 4000) {
            $s = substr($s, 0, 4000) . "\n... (" . (length($s) - 4000) . " more bytes)";
        }
        $s =~ s/\r\n/\n/g;
        Test::More::diag("--- raw response" . (@$resps > 1 ? " $i" : '') . ":\n$s");
        $i++;
    }
}

sub run_test_helper ($$$) {
    my ($block, $dry_run, $repeated_req_idx) = @_;
    my $name = $block->name;

    my $failures_before = failures_so_far();
    my @raw_resps;

    my $r_req_list = get_req_from_block($block);
    if (!@$r_req_list) {
        bail_out("$name - request empty");
    }

    my $timeout = parse_time($block->timeout);
    $timeout = timeout() if !defined $timeout;

    my ($res, $n, $need_array);
    my $req_idx = 0;

    for my $one_req (@$r_req_list) {
        my ($raw_resp, $head_req) = send_request($one_req, $block->raw_request_middle_delay,
                                                 $timeout, $block);
        push @raw_resps, $raw_resp;

        if ($block->pipelined_requests) {
            $n = @{ $block->pipelined_requests };
            $need_array = 1;
        } else {
            $need_array = @$r_req_list > 1;
        }

      again:
        $raw_resp //= '';

        my ($raw_headers, $left);
        if (!defined $block->ignore_response) {
            if (defined $block->http09) {
                $res = HTTP::Response->new(200, "OK", [], $raw_resp);
                $raw_headers = '';
            } else {
                ($res, $raw_headers, $left) = parse_response($name, $raw_resp, $head_req);
            }
        }

        if (!$n) {
            if (defined $left && $left ne '') {
                (my $l = $left) =~ s/([\0-\037\200-\377])/sprintf('\x{%02x}', ord $1)/eg;
                warn "WARNING: $name - unexpected extra bytes after last chunk in response: \"$l\"\n";
            }
        } else {
            $raw_resp = $left;
            $n--;
        }

        if (!defined $block->ignore_response) {
            check_error_code($block, $res, $dry_run, $req_idx, $need_array);
            check_raw_response_headers($block, $raw_headers, $dry_run, $req_idx, $need_array);
            check_response_headers($block, $res, $raw_headers, $dry_run, $req_idx, $need_array);
            transform_response_body($block, $res, $req_idx);
            check_response_body($block, $res, $dry_run, $req_idx, $repeated_req_idx, $need_array);
        }

        if ($n || $req_idx < @$r_req_list - 1) {
            sleep parse_time($block->wait) if $block->wait;
            check_error_log($block, $res, $dry_run, $repeated_req_idx, $need_array);
            check_access_log($block, $dry_run, $repeated_req_idx) if !defined $block->ignore_response;
        }

        $req_idx++;
        goto again if $n;
    }

    sleep parse_time($block->wait) if $block->wait;

    check_error_log($block, $res, $dry_run, $repeated_req_idx, $need_array);
    check_access_log($block, $dry_run, $repeated_req_idx) if !defined $block->ignore_response;

    if (failures_so_far() > $failures_before) {
        diag_responses(\@raw_resps);
        diag_error_log_tail(30);
    }
}

sub get_indexed_value ($$$$) {
    my ($name, $value, $req_idx, $need_array) = @_;
    if ($need_array) {
        if (ref $value && ref $value eq 'ARRAY') {
            return $value->[$req_idx];
        }
        # upstream bails out here; we fail the assertion instead so the rest
        # of the suite still runs
        Test::More::diag("$name - You asked for many requests, the expected results should be arrays as well.");
        return \"__TEST_NGINX_NEED_ARRAY__";
    }
    if (ref $value && ref $value eq 'ARRAY') {
        return $value->[0];
    }
    return $value;
}

sub need_array_error ($) {
    my $v = shift;
    return ref $v && ref $v eq 'SCALAR' && $$v eq '__TEST_NGINX_NEED_ARRAY__';
}

sub check_error_code ($$$$$) {
    my ($block, $res, $dry_run, $req_idx, $need_array) = @_;
    my $name = $block->name;
    my $code = ($res && $res->code) || '';
    SKIP: {
        Test::More::skip("$name - tests skipped due to $dry_run", 1) if $dry_run;
        if (defined $block->error_code_like) {
            my $val = get_indexed_value($name, $block->error_code_like, $req_idx, $need_array);
            if (need_array_error($val)) {
                Test::More::fail("$name - status code ok");
            } else {
                Test::More::like($code, qr/$val/sm, "$name - status code ok");
            }
        } elsif (defined $block->error_code) {
            my $val = get_indexed_value($name, $block->error_code, $req_idx, $need_array);
            if (need_array_error($val)) {
                Test::More::fail("$name - status code ok");
            } else {
                Test::More::is($code, $val, "$name - status code ok");
            }
        } else {
            Test::More::is($code, 200, "$name - status code ok");
        }
    }
}

sub check_raw_response_headers ($$$$$) {
    my ($block, $raw_headers, $dry_run, $req_idx, $need_array) = @_;
    my $name = $block->name;
    $raw_headers //= '';
    if (defined $block->raw_response_headers_like) {
        my $expected = get_indexed_value($name, $block->raw_response_headers_like, $req_idx, $need_array);
        if (need_array_error($expected)) {
            Test::More::fail("$name - raw resp headers like");
        } else {
            Test::More::like($raw_headers, qr/$expected/s, "$name - raw resp headers like");
        }
    }
    if (defined $block->raw_response_headers_unlike) {
        my $expected = get_indexed_value($name, $block->raw_response_headers_unlike, $req_idx, $need_array);
        if (need_array_error($expected)) {
            Test::More::fail("$name - raw resp headers unlike");
        } else {
            Test::More::unlike($raw_headers, qr/$expected/s, "$name - raw resp headers unlike");
        }
    }
}

sub check_response_headers ($$$$$$) {
    my ($block, $res, $raw_headers, $dry_run, $req_idx, $need_array) = @_;
    my $name = $block->name;
    $raw_headers //= '';

    if (defined $block->response_headers) {
        my $spec = get_indexed_value($name, $block->response_headers, $req_idx, $need_array);
        if (need_array_error($spec)) {
            Test::More::fail("$name - response_headers");
            return;
        }
        my ($headers, $order) = parse_headers($spec);
        for my $key (@$order) {
            my $val = $headers->{$key};
            if (!defined $val) {
                Test::More::unlike($raw_headers, qr/^\s*\Q$key\E\s*:/ms,
                                   "$name - header $key not present in the raw headers");
                next;
            }
            $val =~ s/\$ServerPort\b/$ServerPort/g;
            $val =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;
            my $actual = $res ? $res->header($key) : undef;
            $actual //= '';
            Test::More::is($actual, $val, "$name - header $key ok");
        }

    } elsif (defined $block->response_headers_like) {
        my $spec = get_indexed_value($name, $block->response_headers_like, $req_idx, $need_array);
        if (need_array_error($spec)) {
            Test::More::fail("$name - response_headers_like");
            return;
        }
        my ($headers, $order) = parse_headers($spec);
        for my $key (@$order) {
            my $val = $headers->{$key} // '';
            my $actual = $res ? $res->header($key) : undef;
            $actual //= '';
            Test::More::like($actual, qr/^$val$/, "$name - header $key like ok");
        }
    }
}

sub run_filter_helper ($$$) {
    my ($block, $filter, $content) = @_;
    my $name = $block->name;
    if (ref $filter && ref $filter eq 'CODE') {
        return $filter->($content);
    }
    if (ref $filter) {
        bail_out("$name - the --- response_body_filters section only supports "
                 . "subroutine reference values and string values");
    }
    return Digest::MD5::md5_hex($content) if $filter eq 'md5_hex';
    return Digest::SHA::sha1_hex($content) if $filter eq 'sha1_hex';
    return uc($content) if $filter eq 'uc';
    return lc($content) if $filter eq 'lc';
    return ucfirst($content) if $filter eq 'ucfirst';
    return lcfirst($content) if $filter eq 'lcfirst';
    return length($content) if $filter eq 'length';
    bail_out("$name - unknown filter, \"$filter\", specified in the --- response_body_filters section");
}

sub transform_response_body ($$$) {
    my ($block, $res, $req_idx) = @_;
    return if !defined $res;
    my $content = $res->content;
    return if !defined $content;
    my $filters = $block->response_body_filters;
    return if !defined $filters;

    if (!ref $filters) {
        $filters =~ s/^\s+|\s+$//gs;
        $filters = [split /\s+/, $filters];
    } elsif (ref $filters ne 'ARRAY') {
        $filters = [$filters];
    }

    my $filter = $filters;
    if (ref $filters->[0] eq 'ARRAY') {
        # as upstream: every element of a two-dimensional list is a list
        for my $elem (@$filters) {
            bail_out($block->name . " - the --- response_body_filters "
                     . "two-dimensional array only be like [[uc], [lc]] "
                     . "not [[uc], lc]") if ref $elem ne 'ARRAY';
        }
        $filter = $filters->[$req_idx];
        bail_out($block->name . " - the --- response_body_filters two-dimensional array "
                 . "does not match the request ($req_idx)") if !defined $filter;
    }

    my $new = $content;
    for my $f (ref $filter eq 'ARRAY' ? @$filter : ($filter)) {
        $new = run_filter_helper($block, $f, $new);
    }
    $res->content($new);
}

sub check_response_body ($$$$$$) {
    my ($block, $res, $dry_run, $req_idx, $repeated_req_idx, $need_array) = @_;
    my $name = $block->name;

    if (defined $block->response_body || defined $block->response_body_eval) {
        my $content = $res ? $res->content : undef;
        my $expected;
        if ($block->response_body_eval) {
            Test::More::diag("$name - response_body_eval is DEPRECATED. Use response_body eval instead.");
            my $code = get_indexed_value($name, $block->response_body_eval, $req_idx, $need_array);
            $expected = eval $code;
            warn $@ if $@;
        } else {
            $expected = get_indexed_value($name, $block->response_body, $req_idx, $need_array);
        }

        if (need_array_error($expected)) {
            Test::More::fail("$name - response_body - response is expected "
                             . "(repeated req $repeated_req_idx, req $req_idx)");
            return;
        }

        if ($block->charset && defined $expected && !ref $expected) {
            require Encode;
            Encode::from_to($expected, 'UTF-8', $block->charset);
        }

        if (defined $expected && !ref $expected) {
            $expected =~ s/\$ServerPort\b/$ServerPort/g;
            $expected =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;
        }

        if (ref $expected) {
            Test::More::like($content, $expected,
                "$name - response_body - like (repeated req $repeated_req_idx, req $req_idx)");
        } elsif ($NoLongString) {
            Test::More::is($content, $expected,
                "$name - response_body - response is expected (repeated req $repeated_req_idx, req $req_idx)");
        } else {
            Test::LongString::is_string($content, $expected,
                "$name - response_body - response is expected (repeated req $repeated_req_idx, req $req_idx)");
        }

    } elsif (defined $block->response_body_like || defined $block->response_body_unlike) {
        my ($patterns, $type, $cmp);
        if (defined $block->response_body_like) {
            ($patterns, $type, $cmp) = ($block->response_body_like, 'like', \&Test::More::like);
        } else {
            ($patterns, $type, $cmp) = ($block->response_body_unlike, 'unlike', \&Test::More::unlike);
        }
        my $content = $res ? $res->content : undef;
        my $pat = get_indexed_value($name, $patterns, $req_idx, $need_array);
        my $summary = trim($content) // '';
        if (length $summary > 200) {
            $summary = substr($summary, 0, 200) . '...';
        }
        if (need_array_error($pat)) {
            Test::More::fail("$name - response_body_$type - response is expected ($summary)");
            return;
        }
        if (!ref $pat) {
            $pat =~ s/\$ServerPort\b/$ServerPort/g;
            $pat =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;
        }
        $cmp->($content, qr/$pat/s, "$name - response_body_$type - response is expected ($summary)");
    }

    for my $check (@ResponseBodyChecks) {
        $check->($block, $res ? $res->content : undef, $req_idx, $repeated_req_idx, $dry_run);
    }
}

# ---------------------------------------------------------------------------
# logs
# ---------------------------------------------------------------------------

# Returns the lines of error.log from $from (byte offset) and the end offset.
sub read_log_from ($$) {
    my ($file, $from) = @_;
    open my $in, '<', $file or return ([], $from);
    if ($from > 0) {
        seek $in, $from, 0;
    }
    my @lines = <$in>;
    my $end = tell($in);
    close $in;
    return (\@lines, $end);
}

sub error_log_data () {
    sleep $TestNginxSleep * 3;
    my ($lines, $end) = read_log_from($ErrLogFile, $CheckAccumErrLog ? 0 : $ErrLogFilePos);
    $ErrLogFilePos = $end if !$CheckAccumErrLog;
    return $lines;
}

sub access_log_data () {
    sleep $TestNginxSleep * 3;
    my ($lines) = read_log_from($AccLogFile, 0);
    return $lines;
}

sub to_pattern_list ($) {
    my $pats = shift;
    if (!ref $pats) {
        chomp $pats;
        return [split /\n+/, $pats];
    }
    if (ref $pats eq 'Regexp') {
        return [$pats];
    }
    return [@$pats];
}

sub line_matches ($$) {
    my ($line, $pat) = @_;
    return ref $pat ? $line =~ /$pat/ : index($line, $pat) >= 0;
}

sub grep_log_lines ($$) {
    my ($lines, $pat) = @_;
    my $out = '';
    for my $line (@$lines) {
        if (ref $pat ? $line =~ /$pat/ : $line =~ /\Q$pat\E/) {
            my $m = $&;
            $out .= "$m\n" if $m !~ /\n/;
        }
    }
    return $out;
}

# Reads the error log lines for one check.  With $want (a code ref taking the
# lines and returning true when satisfied) it re-reads the log for up to
# $LogWait seconds until $want is happy, since workers log asynchronously.
sub collect_error_log ($) {
    my ($want) = @_;

    if (defined $MustDieStderr) {
        my ($lines) = read_log_from($ErrLogFile, 0);
        if (!grep { /\S/ } @$lines) {
            # no error.log (e.g. nginx died before opening it): use stderr
            $lines = [map { "$_\n" } split /\n/, $MustDieStderr];
        }
        return $lines;
    }

    sleep $TestNginxSleep * 3;
    my $from = $CheckAccumErrLog ? 0 : $ErrLogFilePos;
    my ($lines, $end) = read_log_from($ErrLogFile, $from);
    if ($want && !$want->($lines)) {
        my $wait = $LogWait * ($UseValgrind ? 5 : 1);
        my $deadline = time + $wait;
        while (time < $deadline) {
            sleep 0.05;
            ($lines, $end) = read_log_from($ErrLogFile, $from);
            last if $want->($lines);
        }
    }
    $ErrLogFilePos = $end if !$CheckAccumErrLog;
    return $lines;
}

sub check_error_log ($$$$$) {
    my ($block, $res, $dry_run, $repeated_req_idx, $need_array) = @_;
    my $name = $block->name;

    my $grep_pat;
    my $grep_pats = $block->grep_error_log;
    my $grep_expected;
    if (defined $grep_pats) {
        $grep_pat = (ref $grep_pats && ref $grep_pats eq 'ARRAY')
                  ? $grep_pats->[$repeated_req_idx] : $grep_pats;
    } elsif (defined $block->grep_error_log_out) {
        bail_out("$name - No --- grep_error_log defined but --- grep_error_log_out is defined");
    }
    if (defined $grep_pat) {
        $grep_expected = $block->grep_error_log_out;
        if (!defined $grep_expected) {
            bail_out("$name - No --- grep_error_log_out defined but --- grep_error_log is defined");
        }
        if (ref $grep_expected && ref $grep_expected eq 'ARRAY') {
            $grep_expected = $grep_expected->[$repeated_req_idx];
        }
    }

    my $err_pats = defined $block->error_log ? to_pattern_list($block->error_log) : undef;
    my $no_err_pats = defined $block->no_error_log ? to_pattern_list($block->no_error_log) : undef;

    my $want = sub {
        my $lines = shift;
        if ($err_pats) {
            for my $pat (@$err_pats) {
                next if !defined $pat;
                return 0 if !grep { line_matches($_, $pat) } @$lines;
            }
        }
        if (defined $grep_pat) {
            my $got = grep_log_lines($lines, $grep_pat);
            if (ref $grep_expected eq 'Regexp') {
                return 0 if $got !~ $grep_expected;
            } else {
                return 0 if !defined $grep_expected || $got ne $grep_expected;
            }
        }
        return 1;
    };

    my $lines = collect_error_log(($err_pats || defined $grep_pat) ? $want : undef);

    if (defined $grep_pat) {
        my $got = grep_log_lines($lines, $grep_pat);
        if (ref $grep_expected eq 'Regexp') {
            Test::More::like($got, $grep_expected, "$name - grep_error_log_out (req $repeated_req_idx)");
        } elsif ($NoLongString) {
            Test::More::is($got, $grep_expected, "$name - grep_error_log_out (req $repeated_req_idx)");
        } else {
            Test::LongString::is_string($got, $grep_expected,
                                        "$name - grep_error_log_out (req $repeated_req_idx)");
        }
    }

    my ($check_alert, $check_crit, $check_emerg) = (1, 1, 1);
    for my $p (grep { defined } ($block->error_log, $block->no_error_log)) {
        undef $check_alert if value_contains($p, '[alert');
        undef $check_crit  if value_contains($p, '[crit');
        undef $check_emerg if value_contains($p, '[emerg');
    }

    if ($err_pats) {
        my @pats = @$err_pats;
        for my $line (@$lines) {
            for my $pat (@pats) {
                next if !defined $pat;
                if (line_matches($line, $pat)) {
                    Test::More::pass("$name - pattern \"$pat\" matches a line in error.log (req $repeated_req_idx)");
                    undef $pat;
                }
            }
        }
        for my $pat (@pats) {
            next if !defined $pat;
            Test::More::fail("$name - pattern \"$pat\" should match a line in error.log (req $repeated_req_idx)");
        }
    }

    if ($no_err_pats) {
        my @pats = @$no_err_pats;
        my %found;
        my $i = 0;
        for my $line (@$lines) {
            for my $pat (@pats) {
                next if !defined $pat;
                if (line_matches($line, $pat)) {
                    if ($found{$pat}) {
                        Test::More->builder->no_ending(1);
                    } else {
                        $found{$pat} = 1;
                    }
                    my $ln = fmt_str($line);
                    my $p = fmt_str($pat);
                    my @more;
                    for (my $j = $i + 1; $j < min($i + 10, @$lines - 1); $j++) {
                        push @more, $lines->[$j];
                    }
                    Test::More::fail("$name - pattern \"$p\" should not match any line in error.log "
                                     . "but matches line \"$ln\" (req $repeated_req_idx)\n"
                                     . join('', @more));
                }
            }
            $i++;
        }
        for my $pat (@pats) {
            next if !defined $pat || $found{$pat};
            my $p = fmt_str($pat);
            Test::More::pass("$name - pattern \"$p\" does not match a line in error.log (req $repeated_req_idx)");
        }
    }

    if (!$dry_run) {
        for my $line (@$lines) {
            if (($check_alert && $line =~ /\[alert\]/)
                || ($check_crit && $line =~ /\[crit\]/)
                || ($check_emerg && $line =~ /\[emerg\]/))
            {
                warn "WARNING: $name - " . fmt_str($line) . "\n";
            }
        }
    }

    for my $line (@$lines) {
        if ($line =~ /\bAssertion .*?failed\b/) {
            Test::More->builder->no_ending(1);
            chomp(my $l = $line);
            Test::More::fail("$name - $l\n");
        }
    }
}

sub value_contains ($$) {
    my ($val, $pat) = @_;
    if (!ref $val || ref $val eq 'Regexp') {
        return $val =~ /\Q$pat\E/;
    }
    if (ref $val eq 'ARRAY') {
        for my $v (@$val) {
            return 1 if value_contains($v, $pat);
        }
    }
    return undef;
}

sub check_access_log ($$$) {
    my ($block, $dry_run, $repeated_req_idx) = @_;
    my $name = $block->name;

    my $pats = defined $block->access_log ? to_pattern_list($block->access_log) : undef;
    my $no_pats = defined $block->no_access_log ? to_pattern_list($block->no_access_log) : undef;
    return if !$pats && !$no_pats;

    my $lines = access_log_data();
    if ($pats) {
        my $deadline = time + $LogWait;
        while (time < $deadline) {
            my $all = 1;
            for my $pat (@$pats) {
                next if !defined $pat;
                if (!grep { line_matches($_, $pat) } @$lines) { $all = 0; last }
            }
            last if $all;
            sleep 0.05;
            ($lines) = read_log_from($AccLogFile, 0);
        }

        my @pats = @$pats;
        for my $line (@$lines) {
            for my $pat (@pats) {
                next if !defined $pat;
                if (line_matches($line, $pat)) {
                    Test::More::pass("$name - pattern \"$pat\" matches a line in access.log (req $repeated_req_idx)");
                    undef $pat;
                }
            }
        }
        for my $pat (@pats) {
            next if !defined $pat;
            Test::More::fail("$name - pattern \"$pat\" should match a line in access.log (req $repeated_req_idx)");
        }
    }

    if ($no_pats) {
        my @pats = @$no_pats;
        my %found;
        for my $line (@$lines) {
            for my $pat (@pats) {
                next if !defined $pat;
                if (line_matches($line, $pat)) {
                    $found{$pat} = 1;
                    my $ln = fmt_str($line);
                    my $p = fmt_str($pat);
                    Test::More::fail("$name - pattern \"$p\" should not match any line in access.log "
                                     . "but matches line \"$ln\" (req $repeated_req_idx)");
                }
            }
        }
        for my $pat (@pats) {
            next if !defined $pat || $found{$pat};
            my $p = fmt_str($pat);
            Test::More::pass("$name - pattern \"$p\" does not match a line in access.log (req $repeated_req_idx)");
        }
    }
}

1;
