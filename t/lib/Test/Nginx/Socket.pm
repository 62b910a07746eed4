package Test::Nginx::Socket;

# Project-local stand-in for openresty's Test::Nginx::Socket (not packaged in
# Debian).  Test files written for this module run unchanged under the real
# one.  All logic lives in Test::Nginx::Util; see t/README.md for the
# supported sections and the known differences.

use Test::Base -Base;

our $VERSION = '0.29-momo';

use Test::Nginx::Util;

# Everything here goes through Spiffy's source filter (because of -Base), so
# any sub defined in this file must carry a prototype.

our @EXPORT = qw(
    env_to_nginx is_str plan run_tests run_test
    repeat_each config_preamble worker_connections
    master_process_enabled
    no_long_string workers master_on master_off
    log_level no_shuffle no_root_location use_hup
    server_name
    server_addr server_root html_dir server_port server_port_for_client
    timeout no_nginx_manager check_accum_error_log
    add_block_preprocessor bail_out add_cleanup_handler
    add_response_body_check
    $ServerPort $ServerPortForClient $ServRoot $HtmlDir
);

1;
