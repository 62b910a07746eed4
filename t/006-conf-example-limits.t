# The production example rate-limits every location a client (or anyone
# replaying a callback URL) can reach with a momo handler: each location
# with momo_pay, momo_status or momo_callback has a limit_req.
use strict;
use warnings;
use Test::More;

open my $fh, '<', 'conf-examples/production-cameroon.conf' or die $!;
my $text = do { local $/; <$fh> };

my $n = 0;

while ($text =~ /location\s+([^{]+?)\s*\{((?:[^{}]|\{[^{}]*\})*)\}/g) {
    my ($name, $body) = ($1, $2);
    my ($handler) = $body =~ /\b(momo_pay|momo_status|momo_callback);/
        or next;
    $n++;
    like($body, qr/^\s*limit_req zone=\w+/m,
         "production-cameroon.conf: $handler in location $name is rate-limited");
}

is($n, 3, 'production-cameroon.conf has the three client-facing handlers');

done_testing();
