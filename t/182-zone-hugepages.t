# momo_zone asks Linux for 2 MB pages (transparent huge pages), which Linux
# gives shared memory where /sys/kernel/mm/transparent_hugepage/shmem_enabled
# allows it ("advise", "within_size", "always"; Debian's default is
# "never").  A payment touches a bucket and a record wherever they are in
# the zone; with 2 MB pages the CPU finds their addresses in fewer page
# table steps and misses its TLB less (README, "Huge pages for the zone").
#
# This file sets shmem_enabled to "advise" for its run, as the README tells
# a production machine to, and puts the old value back at its end: "advise"
# gives huge pages only to the memory that asks for them.  Shown by what
# each worker maps of shared memory in 2 MB pages (ShmemPmdMapped in
# /proc/PID/smaps_rollup) against the zone's size.  The zone's size is its
# own (not t/181's), so a run that reloads one nginx from file to file
# (TEST_NGINX_USE_HUP) makes a new zone here.

use t::MomoTest;
use t::MomoZone;

our $ZoneMb = 48;

our $Knob = '/sys/kernel/mm/transparent_hugepage/shmem_enabled';
our $Was;

sub knob () {
    open my $fh, '<', $Knob or return undef;
    my $v = <$fh>;
    return $v =~ /\[(\S+)\]/ ? $1 : undef;
}

sub set_knob ($) {
    open my $fh, '>', $Knob or return 0;
    print $fh shift;
    return close $fh;
}

$Was = knob();
if (($ENV{TEST_NGINX_USE_VALGRIND} // '') !~ /^0?$/) {
    # valgrind makes nginx's mappings itself: 0 kB in 2 MB pages
    plan skip_all => 'under valgrind no mapping has 2 MB pages';
} elsif (!defined $Was) {
    plan skip_all => "no $Knob: no transparent huge pages";
} elsif ($Was !~ /^(advise|within_size|always|force)$/
         && !set_knob('advise'))
{
    plan skip_all => "$Knob is \"$Was\" and cannot be set here ($!)";
}

END {
    set_knob($Was) if defined $Was && (knob() // '') ne $Was;
}

plan 'no_plan';

# Here all 48 MB come in 2 MB pages.  Elsewhere a kernel may keep the
# first pages, which nginx writes (its slab allocator's list of pages)
# before the module can ask, in 4 kB pages, and give 4 kB pages where it
# finds no free 2 MB: at least half the zone, where the module before
# this change had none at all.
sub in_2mb ($) {
    my $kb = t::MomoZone::proc_kb(shift, 'smaps_rollup', 'ShmemPmdMapped');
    return $kb >= $ZoneMb * 1024 / 2
           ? 'the zone in 2 MB pages' : "$kb kB of $ZoneMb MB in 2 MB pages";
}

t::MomoZone::blocks($ZoneMb, \&in_2mb, 'the zone in 2 MB pages');

run_tests();

__DATA__

=== TEST 1: shmem_enabled "advise": both workers map the zone in 2 MB pages, and a payment is taken
--- response_body_like: ^pending; 2 workers: the zone in 2 MB pages, the zone in 2 MB pages$



=== TEST 2: nginx -s reload keeps the zone: the new workers map it in 2 MB pages too
--- init
Test::More::ok(t::MomoHttp::replace_workers('HUP'),
               'new workers replaced the old ones after HUP');
--- response_body_like: ^pending; 2 workers: the zone in 2 MB pages, the zone in 2 MB pages$
--- error_log
reconfiguring
