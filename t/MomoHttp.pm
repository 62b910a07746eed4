package t::MomoHttp;

# A small HTTP/1.1 client for the momo tests that need more than one
# request in flight (concurrency, order, reloads), used from "--- init"
# sections or add_response_body_check hooks: start a request, look
# whether its answer is there yet, finish it.  Talks to the nginx under
# test on Test::Nginx's port; Connection: close, so an answer ends at EOF.

use strict;
use warnings;

use IO::Socket::INET;
use IO::Select;
use Time::HiRes qw(time sleep);

# another port than the test server's: local $t::MomoHttp::Port = N
our $Port;

# how much longer everything takes with nginx under valgrind (a first
# answer took 25 s on a loaded machine): the waits and timeouts of the
# tests are bounds, not expectations, so they scale
our $Slow = ($ENV{TEST_NGINX_USE_VALGRIND} // '') =~ /^0?$/ ? 1 : 10;

sub slow ($) { return $_[0] * $Slow }

sub port () {
    return $Port // $Test::Nginx::Util::ServerPortForClient
           // $Test::Nginx::Util::ServerPort;
}

# under valgrind, until nginx accepts connections (300 s at most): both
# runners start the requests of a block once nginx is started, and
# upstream's Test::Nginx gives up after about 50 s, which a start under
# valgrind on a loaded machine can take
sub wait_listening () {
    return if $Slow == 1;
    wait_for(sub {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => port(), Timeout => 5);
        close $s if $s;
        return $s ? 1 : 0;
    }, 30);
}

# start(METHOD, URI, BODY, HEADER => VALUE, ...): the socket, request sent
sub start {
    my ($method, $uri, $body, %headers) = @_;

    # nginx may not listen yet: under valgrind, upstream's Test::Nginx runs
    # --- init right after starting it (its start took more than 60 s on a
    # loaded machine)
    my $sock;
    my $deadline = time + ($Slow > 1 ? 300 : 60);
    until ($sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                         PeerPort => port(), Timeout => 5))
    {
        die "cannot connect to nginx on port " . port() . ": $!\n"
            if !$!{ECONNREFUSED} || time > $deadline;
        sleep 0.05;
    }

    $body //= '';

    my $req = "$method $uri HTTP/1.1\r\nHost: localhost\r\n"
              . "Connection: close\r\n";
    $req .= "$_: $headers{$_}\r\n" for sort keys %headers;
    $req .= "Content-Length: " . length($body) . "\r\n"
        if length $body || $method eq 'POST';
    $req .= "\r\n$body";

    $sock->autoflush(1);
    print $sock $req;

    return $sock;
}

# a payment through momo_pay at /api/payments/mtn-momo
sub start_pay {
    my (%fields) = @_;
    my %headers = ('Content-Type' => 'application/json');

    if (exists $fields{idempotency_key}) {
        $headers{'Idempotency-Key'} = delete $fields{idempotency_key};
    }

    return start('POST', '/api/payments/mtn-momo',
                 t::MomoTest::pay_json(%fields), %headers);
}

# true when the server has written something (or closed) on this socket
sub answered {
    my ($sock) = @_;
    return IO::Select->new($sock)->can_read(0) ? 1 : 0;
}

# reads the whole answer: {status, headers (lowercase names), body}
sub finish {
    my ($sock, $timeout) = @_;
    my $deadline = time + slow($timeout // 10);
    my $sel = IO::Select->new($sock);
    my $raw = '';

    while (time < $deadline) {
        last if !$sel->can_read($deadline - time);
        my $n = sysread($sock, my $buf, 65536);
        last if !$n;
        $raw .= $buf;
    }

    close $sock;

    my ($head, $body) = split /\r\n\r\n/, $raw, 2;
    my %res = (status => 0, headers => {}, body => $body // '', raw => $raw);

    if (defined $head && $head =~ s{^HTTP/1\.[01] (\d{3})[^\r\n]*}{}) {
        $res{status} = $1;
        for my $line (split /\r\n/, $head) {
            my ($k, $v) = $line =~ /^([^:]+):\s*(.*)$/ or next;
            $res{headers}{lc $k} = $v;
        }
    }

    return \%res;
}

sub request {
    my $sock = start(@_);
    return finish($sock, 10);
}

sub pay {
    my $sock = start_pay(@_);
    return finish($sock, 10);
}

# the nginx master under test, and its worker processes
sub master_pid () {
    open my $fh, '<', $Test::Nginx::Util::PidFile or return undef;
    my $pid = <$fh>;
    close $fh;
    chomp $pid if defined $pid;
    return $pid;
}

sub worker_pids ($) {
    my ($master) = @_;
    my @pids;

    opendir my $dh, '/proc' or return ();

    for my $p (grep { /^\d+$/ } readdir $dh) {
        open my $st, '<', "/proc/$p/stat" or next;
        my $stat = <$st>;
        close $st;
        next if !defined $stat || $stat !~ /^\d+ \(.*\) \S+ (\d+)/;
        next if $1 != $master;

        open my $cl, '<', "/proc/$p/cmdline" or next;
        my $cmd = <$cl> // '';
        close $cl;
        # under valgrind every child keeps valgrind's command line
        push @pids, $p if $cmd =~ /worker process|valgrind/;
    }

    closedir $dh;

    return sort { $a <=> $b } @pids;
}

# sends $signal to the master (HUP) or to both workers (KILL) once both are
# up (under valgrind a block's --- init runs before nginx has started),
# and waits until two new workers have replaced them: true if so
sub replace_workers ($) {
    my ($signal) = @_;
    my $master;
    wait_for(sub {
        $master = master_pid();
        my @workers = defined $master ? worker_pids($master) : ();
        return @workers == 2;
    }, 10);
    my %old = map { $_ => 1 } worker_pids($master);
    kill $signal, $signal eq 'HUP' ? $master : keys %old;
    return wait_for(sub {
        my @now = worker_pids($master);
        return @now == 2 && !grep { $old{$_} } @now;
    }, 10);
}

# waits until $cond->() is true, for at most $timeout seconds
sub wait_for {
    my ($cond, $timeout) = @_;
    my $deadline = time + slow($timeout);

    while (time < $deadline) {
        return 1 if $cond->();
        sleep 0.02;
    }

    return $cond->() ? 1 : 0;
}

1;
