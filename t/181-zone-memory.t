# momo_zone's memory is taken when nginx starts (Linux 5.14 and later):
# each worker maps the whole zone before it serves, also after a reload
# that keeps the zone.  So no payment takes a page fault in the zone, with
# the zone's lock held, the first time its worker touches a page.  Shown
# by what each worker has mapped of shared memory (RssShmem in
# /proc/PID/status) against the zone's size; nginx's other shared memory
# is a few pages.

use t::MomoTest;
use t::MomoZone;

plan 'no_plan';

our $ZoneMb = 64;

sub of_zone ($) {
    my $kb = t::MomoZone::proc_kb(shift, 'status', 'RssShmem');
    return $kb >= $ZoneMb * 1024 ? 'the whole zone' : "$kb kB of $ZoneMb MB";
}

t::MomoZone::blocks($ZoneMb, \&of_zone, 'the whole zone');

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
