# Every file in conf-examples/ is a working configuration: "nginx -t" accepts
# it with the module, once the machine-specific paths are pointed at this
# checkout (certificates made here, MTN's hosts stubbed to loopback since
# tests have no DNS).
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use Cwd qw(abs_path);

my $root = abs_path('.');
my $nginx = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
my $module = $ENV{TEST_NGINX_LOAD_MODULES} || "$root/objs/ngx_http_momo_module.so";
my $dir = tempdir(CLEANUP => 1);

mkdir "$dir/logs";
mkdir "$dir/tmp";
system("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=pay.example.com"
       . " -keyout $dir/key.pem -out $dir/cert.pem >/dev/null 2>&1") == 0
    or BAIL_OUT("openssl could not make a test certificate");

open my $up, '<', "$root/conf/momo_upstreams.conf" or die $!;
my $upstreams = do { local $/; <$up> };
$upstreams =~ s/server [\w.-]+:443;/server 127.0.0.1:443;/g;
write_file("$dir/momo_upstreams.conf", $upstreams);

for my $file (sort glob "$root/conf-examples/*.conf") {
    my $text = read_file($file);

    $text =~ s{load_module \S+;}{load_module $module;};
    $text =~ s{\@MODULE\@}{$module}g;
    $text =~ s{\@CONF\@}{$root/conf}g;
    $text =~ s{\@ENV\@|/etc/nginx/momo/\.env}{$root/conf-examples/emulator.env}g;
    $text =~ s{\@PORT\@}{18080}g;
    $text =~ s{\@RUN\@}{$dir}g;
    $text =~ s{/etc/nginx/momo/momo_locations\.conf}{$root/conf/momo_locations.conf}g;
    $text =~ s{/etc/nginx/momo/momo_upstreams\.conf}{$dir/momo_upstreams.conf}g;
    $text =~ s{ssl_certificate (\S+);}{ssl_certificate $dir/cert.pem;}g;
    $text =~ s{ssl_certificate_key (\S+);}{ssl_certificate_key $dir/key.pem;}g;
    $text =~ s{/var/log/nginx/}{$dir/logs/}g;

    my $conf = "$dir/" . (split m{/}, $file)[-1];
    write_file($conf, $text);

    my $out = `$nginx -t -p $dir/ -c $conf -e $dir/logs/error.log 2>&1`;
    like($out, qr/test is successful/, "conf-examples/" . (split m{/}, $file)[-1]
         . " passes nginx -t") or diag($out);
}

done_testing();

sub read_file {
    open my $fh, '<', $_[0] or die "$_[0]: $!";
    local $/;
    return <$fh>;
}

sub write_file {
    open my $fh, '>', $_[0] or die "$_[0]: $!";
    print $fh $_[1];
    close $fh;
}
