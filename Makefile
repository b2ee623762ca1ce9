# cpm — `make run` starts cpm, `make test` runs every test.
# Both install what a fresh Debian machine lacks (when run as root).

GO      ?= go
BIN     := bin
DATA    ?= ./cpm-data
# Debian packages cpm needs at run or test time, keyed by the command that
# shows whether each is present.
# The tests also drive other ssh clients (dropbear, PuTTY, libgit2 through
# Debian's python3-pygit2, and JSch, which must fail as the README says),
# audit the server with ssh-audit, and run the README's recipes in
# namespaces of their own (unshare, ip, useradd). The store and end-to-end
# tests start a throwaway PostgreSQL (Debian keeps initdb off PATH, under
# /usr/lib/postgresql/VERSION/bin).
NEEDS   := git:git rsync:rsync ssh:openssh-client /usr/sbin/sshd:openssh-server gcc:gcc cc:libc6-dev \
	ssh-audit:ssh-audit dbclient:dropbear-bin plink:putty-tools \
	/usr/lib/python3/dist-packages/pygit2:python3-pygit2 \
	java:default-jre-headless /usr/share/maven-repo/com/jcraft/jsch:libjsch-java \
	git-lfs:git-lfs haproxy:haproxy \
	ip:iproute2 unshare:util-linux flock:util-linux useradd:passwd openssl:openssl \
	$(firstword $(wildcard /usr/lib/postgresql/*/bin/initdb) initdb):postgresql

.PHONY: all build test run deps bench clean

all: build

deps:
	@missing=""; \
	for need in $(NEEDS); do \
		cmd=$${need%%:*}; pkg=$${need#*:}; \
		if ! command -v $$cmd >/dev/null 2>&1 && [ ! -x "$$cmd" ]; then missing="$$missing $$pkg"; fi; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing:$$missing"; \
			apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
		else \
			echo "cpm: missing packages:$$missing (as root: apt-get install -y$$missing)" >&2; exit 1; \
		fi; \
	fi

build: deps
	CGO_ENABLED=1 $(GO) build -o $(BIN)/ ./cmd/...

test: deps
	./scripts/no-binaries.sh
	CGO_ENABLED=1 $(GO) vet ./...
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 30m ./...

run: build
	DATA=$(DATA) ./scripts/run-demo.sh

bench: deps
	./bench/hotpath.sh

clean:
	rm -rf $(BIN)
