# ngx_http_momo_module: MTN Mobile Money at the nginx edge.
#
#   make          install what is missing, build the module and the momo CLI
#   make run      ... and start the sandbox emulator and nginx on loopback
#   make stop     stop what "make run" started
#   make test     ... and run every test (last line: "N passed, N failed")
#   make asan     the suite on nginx and the module built with AddressSanitizer
#   make test-upstream  t/ under openresty's own Test::Nginx (../shared)
#   make compat   nginx 1.22 ... 1.29 built with the module, the suite on each
#   make deb      Debian packages libnginx-mod-http-momo and momo-cli
#   make test-deb install, use, remove and purge them (root; changes the system)
#   make bench    the module against a bare proxy_pass, on a mock MTN
#   make install  the module, its conf files and the CLI into the system

SHELL      := /bin/bash
NGX_SRC    ?= /usr/share/nginx/src
NGINX      ?= /usr/sbin/nginx
BUILD      := build
NGX_BUILD  := $(BUILD)/nginx
MODULE     := objs/ngx_http_momo_module.so
CLI        := objs/momo
RUN        := run
PREFIX     ?= /usr/local
RUN_PORT   ?= 8080
EMU_PORT   ?= 8099

DEBS := nginx nginx-dev libyajl-dev libssl-dev libcurl4-openssl-dev \
        gcc make curl python3 perl libtest-base-perl libtext-diff-perl \
        libtest-longstring-perl liblist-moreutils-perl libipc-run-perl \
        liburi-perl libhttp-message-perl ca-certificates openssl python3-h2

# make bench only: the load generators (wrk; h2load, nghttp2-client, for a
# fixed rate), echo_sleep for the mock MTN, and valgrind (BENCH_CALLGRIND)
BENCH_DEBS := wrk nghttp2-client libnginx-mod-http-echo valgrind

SHARED     ?= ../shared
UP_DEBS    := iproute2 util-linux
DEB_DEBS   := debhelper dpkg-dev lintian

MODULE_SRCS := config $(wildcard src/*.c src/*.h)

.PHONY: all deps build run stop test asan bench install clean \
        test-upstream compat deb test-deb

all: build

# install-debs LIST: the Debian packages of LIST that are missing
define install-debs
	@missing=$$(for p in $(1); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
	    | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "installing: $$missing"; \
	    if [ "$$(id -u)" = 0 ]; then \
	        export DEBIAN_FRONTEND=noninteractive; \
	        apt-get update -qq && apt-get install -y -qq $$missing >/dev/null; \
	    else \
	        echo "run as root, or: sudo apt-get install -y $$missing"; \
	        exit 1; \
	    fi; \
	fi
endef

deps:
	$(call install-debs,$(DEBS))

build: deps $(MODULE) $(CLI)

# nginx-dev ships headers and configure only: configure a private copy
# with Debian's own flags so that the module is binary compatible.
$(NGX_BUILD)/objs/Makefile: config
	@rm -rf $(NGX_BUILD) && mkdir -p $(BUILD)
	cp -r $(NGX_SRC) $(NGX_BUILD)
	cd $(NGX_BUILD) && source ./conf_flags && \
	    ./configure "$${NGX_CONF_FLAGS[@]}" \
	        --add-dynamic-module=$(CURDIR) > ../configure.log

$(MODULE): $(NGX_BUILD)/objs/Makefile $(MODULE_SRCS)
	$(MAKE) -s -C $(NGX_BUILD) -f objs/Makefile modules
	@mkdir -p objs
	@# a new file, not an overwrite: a running nginx has the old one mapped
	cp $(NGX_BUILD)/objs/ngx_http_momo_module.so $@.tmp && mv -f $@.tmp $@

include cli/Makefile.inc

run: build stop
	@mkdir -p $(RUN)/logs $(RUN)/tmp
	@sed -e 's|@MODULE@|$(CURDIR)/$(MODULE)|' \
	     -e 's|@CONF@|$(CURDIR)/conf|' \
	     -e 's|@ENV@|$(CURDIR)/conf-examples/emulator.env|' \
	     -e 's|@PORT@|$(RUN_PORT)|' \
	     -e 's|@RUN@|$(CURDIR)/$(RUN)|' \
	     conf-examples/sandbox-emulator.conf > $(RUN)/nginx.conf
	@python3 emulator/momo_emulator.py --listen 127.0.0.1:$(EMU_PORT) \
	    --pending-seconds 10 > $(RUN)/logs/emulator.log 2>&1 & \
	    echo $$! > $(RUN)/emulator.pid
	@for i in $$(seq 50); do \
	    grep -q listening $(RUN)/logs/emulator.log && break; sleep 0.1; done
	$(NGINX) -p $(CURDIR)/$(RUN) -c $(CURDIR)/$(RUN)/nginx.conf
	@scripts/run-banner $(RUN_PORT)

stop:
	@if [ -f $(RUN)/logs/nginx.pid ]; then \
	    $(NGINX) -p $(CURDIR)/$(RUN) -c $(CURDIR)/$(RUN)/nginx.conf \
	        -s quit 2>/dev/null || true; \
	    sleep 0.3; fi
	@if [ -f $(RUN)/emulator.pid ]; then \
	    kill $$(cat $(RUN)/emulator.pid) 2>/dev/null || true; \
	    rm -f $(RUN)/emulator.pid; fi

test: build
	TEST_NGINX_BINARY=$(NGINX) \
	TEST_NGINX_LOAD_MODULES=$(CURDIR)/$(MODULE) \
	MOMO_CLI=$(CURDIR)/$(CLI) \
	    perl t/run

asan: build
	scripts/asan

test-upstream: build
	$(call install-debs,$(UP_DEBS))
	SHARED=$(SHARED) scripts/test-upstream $(FILES)

compat: build
	SHARED=$(SHARED) scripts/compat $(VERSIONS)

deb: deps
	$(call install-debs,$(DEB_DEBS))
	scripts/deb

test-deb: deb
	scripts/test-deb

bench: build
	$(call install-debs,$(BENCH_DEBS))
	@scripts/bench

install: build
	install -m 644 $(MODULE) /usr/lib/nginx/modules/
	install -d /etc/nginx/momo
	install -m 644 conf/momo_locations.conf conf/momo_upstreams.conf \
	    /etc/nginx/momo/
	install -m 755 $(CLI) $(PREFIX)/bin/momo

clean: stop
	rm -rf $(BUILD) objs $(RUN) t/servroot*
