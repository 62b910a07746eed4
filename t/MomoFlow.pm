package t::MomoFlow;

# Helpers for the end-to-end suites (t/1xx): what a block cannot say by
# itself.  Load it after t::MomoTest.
#
#   canon             a response_body_filters sub: every UUID becomes REF1,
#                     REF2... in order of first appearance in the block (so
#                     that answers, MTN's request log and the notifies can be
#                     compared), and the emulator's request and callback logs
#                     become one line per entry (see summary_line).  UUIDs
#                     chosen by a test (the "-0000-4000-8000-" ones, see
#                     fixed_ref) stay as they are.
#   mtn_pay           creates a payment at the emulator through MTN's own API,
#                     as another gateway (or MTN's side of a lost answer)
#                     would: the tests choose its reference id.
#   mtn_transfer      the same for a payout (a Disbursement transfer);
#                     mtn_refund for a refund (to_refund => the payment).
#   prev_ref          prev_ref(1) is the UUID that was REF1 in the previous
#                     block, for a block that goes on where it ended.
#   fixed_ref         such a reference id: fixed_ref(1) is
#                     00000001-0000-4000-8000-000000000001.
#   key_ref           the reference id the module derives from an
#                     Idempotency-Key: HMAC-SHA256 of "API user|key" with
#                     the callback secret, first 16 bytes as a UUID v4; a
#                     refund's or payout's: key_ref(KEY, undef, 'payout').
#   burst             many requests to nginx at once, on parallel connections;
#                     burst_post: JSON POSTs at once, each with its
#                     Idempotency-Key.
#   sleep_fault       makes GET /emu/sink/sleep/MS answer after MS ms: a pause
#                     inside a request array, where --- wait would pause
#                     after every request.
#   locations         a copy of conf/momo_locations.conf with other proxy
#                     timeouts (and so other call deadlines and leases).
#   defaults          the sections a file's blocks share (config,
#                     http_config, more_headers, ...), for each block that
#                     has none of its own: a file states them once.

use strict;
use warnings;

use IO::Socket::INET;
use t::MomoHttp;
use IO::Select;
use JSON::PP;
use MIME::Base64 qw(encode_base64);
use Digest::SHA qw(hmac_sha256);
use File::Temp ();
use Time::HiRes qw(time sleep);
use Test::Nginx::Util qw(add_block_preprocessor);


my (%Refs, %PrevRefs);
my $NRefs = 0;

add_block_preprocessor(sub {
    %PrevRefs = reverse %Refs;
    %Refs = ();
    $NRefs = 0;
});

# the real UUID that was REFn in the previous block
sub prev_ref {
    my $n = shift;
    return $PrevRefs{"REF$n"} // die "the previous block had no REF$n\n";
}

my $Uuid = qr/[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}/;

sub canon_refs {
    my $text = shift;
    return $text unless defined $text;
    # MTN's random financial transaction ids
    $text =~ s/("financial_?[tT]ransaction_?[iI]d": ?)"\d{6,}"/$1"FIN"/g;
    $text =~ s{($Uuid)}{
        my $u = lc $1;
        $u =~ /^[0-9a-f]{8}-0000-4000-8000-/ ? $u : ($Refs{$u} //= 'REF' . ++$NRefs)
    }ge;
    return $text;
}

sub header {
    my ($h, $name) = @_;
    for my $k (keys %{ $h || {} }) {
        return $h->{$k} if lc $k eq lc $name;
    }
    return undef;
}

my $Json = JSON::PP->new->canonical;

# a JSON object with sorted keys and no spaces, so that expected values do
# not depend on the order or the layout the module chose
sub json_line {
    my $text = shift // '';
    my $doc = eval { decode_json($text) };
    $text =~ s/\s+$//;
    return ref $doc ? $Json->encode($doc) : $text;
}

# one line per logged request ("POST /collection/v1_0/requesttopay
# ref=REF1"), callback delivery ("callback POST -> 200 {"success":true}")
# or payment ("payment REF1 SUCCESSFUL 100 EUR 56733123453"); a request to
# the application sink shows its body
sub summary_line {
    my $e = shift;

    if (exists $e->{referenceId}) {
        # a refund or a payout has no payer: the line ends at the currency
        my $payer = ref $e->{payer} ? $e->{payer}{partyId} // '' : '';
        return "payment $e->{referenceId} $e->{status} $e->{amount} "
               . "$e->{currency} $payer";
    }

    if (exists $e->{attempt}) {
        return "callback $e->{method} -> "
               . (defined $e->{status}
                  ? "$e->{status} " . json_line($e->{response_body})
                  : "error ($e->{error})");
    }

    my $line = "$e->{method} $e->{path}";
    my $ref = header($e->{headers}, 'X-Reference-Id');
    $line .= " ref=$ref" if defined $ref;
    if ($e->{path} =~ m{^/_emu/sink/} && ($e->{body} // '') ne '') {
        $line .= " " . json_line($e->{body});
    }
    return $line;
}

sub canon {
    my $body = shift;
    return $body unless defined $body;

    if ($body =~ /^\s*\[/) {
        my $rows = eval { decode_json($body) };
        if (ref $rows eq 'ARRAY') {
            return canon_refs(join '', map { summary_line($_) . "\n" } @$rows);
        }
    }

    return canon_refs($body);
}

sub fixed_ref {
    my $n = shift;
    return sprintf '%08x-0000-4000-8000-%012x', $n, $n;
}

sub key_ref {
    my ($key, $secret, $kind) = @_;
    my $material = defined $kind ? "$kind|$t::MomoTest::DisbApiUser|$key"
                                 : "$t::MomoTest::ApiUser|$key";
    my @b = unpack 'C16', hmac_sha256($material,
                                      $secret // $t::MomoTest::CallbackSecret);
    $b[6] = ($b[6] & 0x0f) | 0x40;
    $b[8] = ($b[8] & 0x3f) | 0x80;
    return join '-', unpack 'A8 A4 A4 A4 A12', unpack 'H*', pack 'C16', @b;
}

# one request on its own connection to any port: (status, body)
sub http {
    my ($port, $method, $path, $headers, $body) = @_;
    local $t::MomoHttp::Port = $port;
    my $res = t::MomoHttp::request($method, $path, $body, %{ $headers || {} });
    return ($res->{status}, $res->{body});
}

# an answer [status, body] checked in a "--- init" step
sub check {
    my ($name, $got, $status, $like) = @_;
    Test::More::is($got->[0], $status, "$0 $name - status")
        or Test::More::diag($got->[1]);
    Test::More::like($got->[1], $like, "$0 $name - body");
}

# runs t/h2client.py against nginx's HTTP/2 listener
# ($TEST_NGINX_H2_PORT) with these arguments; one hash per stream
sub h2 (@) {
    my @args = @_;
    my $out = `/usr/bin/python3 $t::MomoTest::Root/t/h2client.py --port $ENV{TEST_NGINX_H2_PORT} @args`;
    return [map { JSON::PP::decode_json($_) } grep { /^\{/ } split /\n/, $out];
}

# one argument for the shell
sub shq ($) { my $s = shift; $s =~ s/'/'\\''/g; return "'$s'" }

# nginx's /metrics, polled until it matches $re (at most $timeout s, 20 by
# default, longer under valgrind): the last scrape
sub poll_metrics {
    my ($re, $timeout) = @_;
    my $m = '';
    t::MomoHttp::wait_for(sub {
        (undef, $m) = http($ENV{TEST_NGINX_SERVER_PORT}, 'GET', '/metrics');
        return $m =~ $re;
    }, $timeout // 20);
    return $m;
}

# POST a JSON body to nginx, with an Idempotency-Key unless it is undef
sub post_json {
    my ($path, $key, $body) = @_;
    my %h = ('Content-Type' => 'application/json');
    $h{'Idempotency-Key'} = $key if defined $key;
    my $port = $ENV{TEST_NGINX_SERVER_PORT} || $ENV{TEST_NGINX_PORT} || 1984;
    return http($port, 'POST', $path, \%h, $body);
}

sub mtn_pay {
    return mtn_op('collection', 'requesttopay', 'payer', @_);
}

sub mtn_transfer {
    return mtn_op('disbursement', 'transfer', 'payee', @_);
}

# a refund of the payment "to_refund" (a refund names no party)
sub mtn_refund {
    return mtn_op('disbursement', 'refund', undef, @_);
}

# POST $product/v1_0/$op with a token of the product's account
sub mtn_op {
    my ($product, $op, $party, %p) = @_;
    %p = (phone => '56733123453', amount => '100', currency => 'EUR',
          external_id => 'order-1', %p);
    my $disb = $product eq 'disbursement';
    my $port = $t::MomoTest::EmuPort;
    my %auth = ('Ocp-Apim-Subscription-Key' => $disb
                    ? $t::MomoTest::DisbSubscriptionKey
                    : $t::MomoTest::SubscriptionKey,
                'X-Target-Environment' => 'sandbox');
    my $user = $disb ? "$t::MomoTest::DisbApiUser:$t::MomoTest::DisbApiKey"
                     : "$t::MomoTest::ApiUser:$t::MomoTest::ApiKey";

    my ($st, $res) = http($port, 'POST', "/$product/token/", {
        %auth, Authorization => 'Basic ' . encode_base64($user, ''),
    });
    die "emulator $product token: $st $res\n" unless $st == 200;
    my $token = decode_json($res)->{access_token};

    my %h = (%auth, Authorization => "Bearer $token",
             'X-Reference-Id' => $p{ref}, 'Content-Type' => 'application/json');
    $h{'X-Callback-Url'} = $p{callback_url} if defined $p{callback_url};

    ($st, $res) = http($port, 'POST', "/$product/v1_0/$op", \%h,
        encode_json({ amount => $p{amount}, currency => $p{currency},
                      externalId => $p{external_id},
                      (defined $party
                       ? ($party => { partyIdType => 'MSISDN',
                                      partyId => $p{phone} })
                       : (referenceIdToRefund => $p{to_refund})),
                      payerMessage => 'Booking 1', payeeNote => 'Booking 1' }));
    die "emulator $op: $st $res\n" unless $st == 202;
    return $st;
}

# POSTs of JSON to nginx at once, one per key (and body, when $bodies is
# a list): [[status, body], ...] in the order of @$keys
sub burst_post {
    my ($path, $keys, $bodies) = @_;
    my $n = @$keys;
    return burst($n, $n, sub {
        my $i = shift;
        my $body = ref $bodies ? $bodies->[$i] : $bodies;
        "POST $path HTTP/1.1\r\nHost: localhost\r\n"
        . "Content-Type: application/json\r\nIdempotency-Key: $keys->[$i]\r\n"
        . "Content-Length: " . length($body) . "\r\n\r\n$body"
    });
}

sub sleep_fault {
    for my $ms (@_) {
        t::MomoTest::emu_post('/_emu/faults', encode_json({
            path => "/_emu/sink/sleep/$ms", delay_ms => $ms + 0 }));
    }
}

# $n requests made by $make->($i) (a raw HTTP request without the
# Connection header), $conc at a time, each on its own connection; returns
# [[status, body], ...] in the order of $i
sub burst {
    my ($n, $conc, $make) = @_;
    my $port = $ENV{TEST_NGINX_SERVER_PORT} || $ENV{TEST_NGINX_PORT} || 1984;
    my (@out, %conn);
    my $next = 0;
    my $sel = IO::Select->new;
    # a bound for a machine under load, not a measure
    my $deadline = time + 300;

    while (($next < $n || $sel->count) && time < $deadline) {
        while ($next < $n && $sel->count < $conc) {
            my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                              PeerPort => $port, Timeout => 5)
                or die "connect: $!\n";
            my $req = $make->($next);
            $req =~ s/\r?\n\r?\n/\r\nConnection: close\r\n\r\n/;
            print $sock $req;
            $conn{fileno $sock} = { i => $next++, sock => $sock, res => '' };
            $sel->add($sock);
        }
        for my $sock ($sel->can_read(1)) {
            my $c = $conn{fileno $sock};
            my $got = sysread $sock, my $buf, 65536;
            if ($got) {
                $c->{res} .= $buf;
                next;
            }
            $sel->remove($sock);
            delete $conn{fileno $sock};
            close $sock;
            my ($status) = $c->{res} =~ m{^HTTP/1\.\d (\d+)};
            (my $body = $c->{res}) =~ s/^.*?\r\n\r\n//s;
            $out[$c->{i}] = [$status // 0, $body];
        }
    }

    return \@out;
}

# a copy of conf/momo_locations.conf with other proxy timeouts (connect =>
# '100ms', read => '2s', ...), which also bound the calls' leases, and the
# worker's pid in an X-Momo-Worker header to MTN; its path
sub locations {
    my (%timeout) = @_;
    my $src = "$t::MomoTest::Root/conf/momo_locations.conf";
    open my $in, '<', $src or die "$src: $!";
    my $text = do { local $/; <$in> };
    close $in;
    for my $k (keys %timeout) {
        $text =~ s/proxy_${k}_timeout \S+;/proxy_${k}_timeout $timeout{$k};/g;
    }
    $text =~ s/^(\s*)(proxy_pass \$momo_leg_url;)$/$1$2\n$1proxy_set_header X-Momo-Worker \$pid;/mg;
    my $dir = File::Temp::tempdir('momo-flow.XXXXXX', TMPDIR => 1,
                                  CLEANUP => !$ENV{TEST_NGINX_NO_CLEAN});
    open my $out, '>', "$dir/momo_locations.conf" or die "$dir: $!";
    print $out $text;
    close $out;
    return "$dir/momo_locations.conf";
}

sub defaults {
    my (%sections) = @_;
    add_block_preprocessor(sub {
        my $block = shift;
        for my $name (sort keys %sections) {
            my $has = $block->can($name) ? $block->$name : undef;
            $block->set_value($name, $sections{$name}) if !defined $has;
        }
    });
}

1;
