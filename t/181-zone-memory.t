# momo_zone's memory is taken when nginx starts (Linux 5.14 and later):
# each worker maps the whole zone before it serves, also after a reload
# that keeps the zone.  So no payment takes a page fault in the zone, with
# the zone's lock held, the first time its worker touches a page.  Shown
# by what each worker has mapped of shared memory (RssShmem in
# /proc/PID/status) against the zone's size; nginx's other shared memory
# is a few pages.

use t::MomoTest;
use t::MomoHttp;

plan 'no_plan';

our $ZoneMb = 64;

our $Pay = "POST /api/payments/mtn-momo\n" . t::MomoTest::pay_json();

# the shared memory a process has mapped, in kB
sub rss_shmem ($) {
    my $pid = shift;
    open my $fh, '<', "/proc/$pid/status" or return -1;
    while (<$fh>) {
        return $1 if /^RssShmem:\s+(\d+) kB/;
    }
    return -1;
}

sub of_zone ($) {
    my $kb = shift;
    return $kb >= $ZoneMb * 1024 ? 'the whole zone' : "$kb kB of $ZoneMb MB";
}

# "pending; 2 workers: the whole zone, the whole zone"
sub main::mapped {
    my $body = shift;
    my $paid = $body =~ /"status": "pending"/ ? 'pending' : "not taken: $body";
    my $master = t::MomoHttp::master_pid();
    my $seen;
    # a worker shows as one once it has set its title, after its
    # init_process; under valgrind, from its start: wait for both
    t::MomoHttp::wait_for(sub {
        my @workers = t::MomoHttp::worker_pids($master);
        $seen = scalar(@workers) . " workers: "
                . join(', ', map { of_zone(rss_shmem($_)) } @workers);
        return $seen eq '2 workers: the whole zone, the whole zone';
    }, 10);
    return "$paid; $seen\n";
}

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value('http_config',
        $t::MomoTest::Account =~ s/momo_zone 1m;/momo_zone ${ZoneMb}m;/r);
    $block->set_value('config', <<'_EOC_');
    location = /api/payments/mtn-momo {
        momo_pay;
    }
_EOC_
    $block->set_value('more_headers', "Content-Type: application/json\n");
    $block->set_value('request', $::Pay);
    $block->set_value('response_body_filters', \&main::mapped);
});

die "no momo_zone 1m in the account" unless $t::MomoTest::Account =~ /momo_zone 1m;/;

run_tests();

__DATA__

=== TEST 1: a zone of 64m: both workers have all of it mapped, and a payment is taken
--- response_body_like: ^pending; 2 workers: the whole zone, the whole zone$



=== TEST 2: nginx -s reload keeps the zone: the new workers map all of it before they serve
--- init
Test::More::ok(t::MomoHttp::replace_workers('HUP'),
               'new workers replaced the old ones after HUP');
--- response_body_like: ^pending; 2 workers: the whole zone, the whole zone$
--- error_log
reconfiguring
