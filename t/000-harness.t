# Self-test of the project's Test::Nginx::Socket (t/lib) using only stock
# nginx features: no momo module is loaded here.
use Test::Nginx::Socket;

master_on();
workers(2);
repeat_each(1);
no_shuffle();

# the client's wait for an answer is a bound: nginx under valgrind is slow
timeout(timeout() * 10) if ($ENV{TEST_NGINX_USE_VALGRIND} // '') !~ /^0?$/;

# a block without a request gets a default one
add_block_preprocessor(sub {
    my $block = shift;
    if (!defined $block->request && !defined $block->raw_request
        && !defined $block->must_die)
    {
        $block->set_value("request", "GET /t");
    }
});

plan tests => 39;

run_tests();

__DATA__

=== TEST 1: fixed body via return, default request from the preprocessor
--- config
    location = /t {
        return 200 "hello\n";
    }
--- response_body
hello
--- no_error_log
[error]



=== TEST 2: POST body reaches an upstream server from http_config
--- http_config
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        location = /back {
            add_header X-Backend yes;
            return 200 "method=$request_method body=$http_x_body len=$http_content_length\n";
        }
    }
--- config
    location = /echo {
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/back;
        proxy_set_header X-Body $request_body;
    }
--- more_headers
Content-Type: application/json
--- request
POST /echo
{"amount":"100"}
--- response_headers
X-Backend: yes
!X-Nope
Content-Type: text/plain
--- response_body
method=POST body={"amount":"100"} len=16
--- no_error_log
[error]



=== TEST 3: status code, body regex and a line in error.log
--- config
--- request
GET /nothere
--- error_code: 404
--- response_body_like: <title>404 Not Found</title>
--- error_log
No such file or directory



=== TEST 4: several requests with per-request expectations
--- config
    location = /a { return 200 "A\n"; }
    location = /b { return 201 "B\n"; }
    location = /c { return 302 /a; }
--- request eval
["GET /a", "GET /b", "GET /c"]
--- error_code eval
[200, 201, 302]
--- response_body_like eval
["^A\$", "^B\$", "302 Found"]
--- no_error_log
[error]



=== TEST 5: grep_error_log collects debug lines
--- config
    location = /g {
        return 200 "g\n";
    }
--- request
GET /g?x=1
--- response_body
g
--- grep_error_log eval
qr{http request line: "GET /g[^"]*"}
--- grep_error_log_out
http request line: "GET /g?x=1 HTTP/1.1"



=== TEST 6: raw request; chunked response is decoded
--- config
    location = /chunked {
        sub_filter_types text/plain;
        sub_filter 'world' 'momo';
        return 200 "hello world\n";
    }
--- raw_request eval
"GET /chunked HTTP/1.1\r
Host: localhost\r
Connection: close\r
\r
"
--- response_headers
Transfer-Encoding: chunked
--- response_body
hello momo



=== TEST 7: an unknown directive makes nginx die at startup
--- config
    location = /t {
        momo_no_such_directive on;
    }
--- must_die
--- error_log eval
["[emerg]", 'unknown directive "momo_no_such_directive"']



=== TEST 8: user_files and $TEST_NGINX_* expansion in the config
--- user_files
>>> static/hello.txt
static file
--- config
    location /static/ {
        root $TEST_NGINX_SERVER_ROOT/html;
    }
--- request
GET /static/hello.txt
--- response_body
static file
--- access_log
GET /static/hello.txt



=== TEST 9: master process with two workers
--- config
    location = /pid {
        return 200 "$pid\n";
    }
--- request
GET /pid
--- response_body_like: ^\d+$
--- grep_error_log eval
qr/start worker process(?= \d)/
--- grep_error_log_out
start worker process
start worker process



=== TEST 10: --- init runs after nginx started, --- wait before log checks
--- config
--- init
open my $fh, '>', html_dir() . "/from-init.txt" or die $!;
print $fh "made by init\n";
close $fh;
--- request
GET /from-init.txt
--- wait: 0.1
--- response_body
made by init
--- no_error_log
[error]
