package t::MomoZone;

# What t/181 and t/182 share: every block takes a payment in a momo_zone of
# the file's own size, then shows what each of the two workers has mapped
# of it, read from /proc, once both show what the file expects (or after
# 10 s).  The response body becomes
#   "pending; 2 workers: FIGURE, FIGURE"
# so that a block's response_body_like says what it shows.

use strict;
use warnings;

use t::MomoTest;
use t::MomoHttp;

# a "NAME: N kB" line of /proc/PID/FILE, in kB (-1: none)
sub proc_kb ($$$) {
    my ($pid, $file, $name) = @_;
    open my $fh, '<', "/proc/$pid/$file" or return -1;
    while (<$fh>) {
        return $1 if /^\Q$name\E:\s+(\d+) kB/;
    }
    return -1;
}

# blocks(MB, FIGURE, WANT): FIGURE->(PID) says what one worker has mapped;
# the wait ends when both workers say WANT
sub blocks ($$$) {
    my ($mb, $figure, $want) = @_;
    my $pay = "POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json();

    die "no momo_zone 1m in the account"
        unless $t::MomoTest::Account =~ /momo_zone 1m;/;

    my $mapped = sub {
        my $body = shift;
        my $paid = $body =~ /"status": "pending"/
                   ? 'pending' : "not taken: $body";
        my $master = t::MomoHttp::master_pid();
        my $seen;
        # a worker shows as one once it has set its title, after its
        # init_process; under valgrind, from its start: wait for both
        t::MomoHttp::wait_for(sub {
            my @workers = t::MomoHttp::worker_pids($master);
            $seen = scalar(@workers) . " workers: "
                    . join(', ', map { $figure->($_) } @workers);
            return $seen eq "2 workers: $want, $want";
        }, 10);
        return "$paid; $seen\n";
    };

    main::add_block_preprocessor(sub {
        my $block = shift;

        $block->set_value('http_config',
            $t::MomoTest::Account =~ s/momo_zone 1m;/momo_zone ${mb}m;/r);
        $block->set_value('config', <<'_EOC_');
    location = /api/payments/mtn-momo {
        momo_pay;
    }
_EOC_
        $block->set_value('more_headers', "Content-Type: application/json\n");
        $block->set_value('request', $pay);
        $block->set_value('response_body_filters', $mapped);
    });
}

1;
