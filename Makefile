# osbuild-rs — build, demo, tests, benchmarks.
CARGO   ?= cargo
TARGET  := x86_64-unknown-linux-gnu
BIN     := target/$(TARGET)/release/osbuild-rs
STORE   ?= $(CURDIR)/.osbuild
OUT     ?= $(CURDIR)/output

# Debian packages the build, the tests and the demo need (installed by `make deps`).
DEB_DEPS := bubblewrap curl ca-certificates python3 passwd tar xz-utils zstd gzip coreutils util-linux bsdutils \
            busybox-static time openssl rpm gnupg policycoreutils \
            fdisk gdisk parted e2fsprogs xfsprogs btrfs-progs dosfstools mtools grub-pc-bin grub-common qemu-utils cryptsetup-bin ostree nginx-light systemd \
            mmdebstrap

.PHONY: all build deps demo test test-e2e test-unit lint bench bless fuzz clean

all: build

build: $(BIN)
	@ln -sf osbuild-rs target/$(TARGET)/release/osbuild

$(BIN): FORCE
	$(CARGO) build --release

FORCE:

deps:
	@if [ "$$(id -u)" != 0 ]; then echo "make deps installs Debian packages: run it as root"; exit 1; fi
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEB_DEPS)
	@# QEMU for the boot test. Some machines carry a newer qemu-utils than their release
	@# (a backport) that qemu-system-x86 cannot go with: take both from the release itself.
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends --allow-downgrades \
	    qemu-system-x86 qemu-utils/$$(. /etc/os-release && echo $$VERSION_CODENAME)

# Build the built-in demo manifest end to end: inline sources, the host as build root.
demo: build
	$(BIN) --store $(STORE) --output-directory $(OUT) --export tree --export tarball test-manifests/demo.json
	@echo
	@echo "demo result:"
	@echo "  tree:    $(OUT)/tree/  (hostname: $$(cat $(OUT)/tree/etc/hostname))"
	@echo "  tarball: $(OUT)/tarball/demo.tar ($$(tar tf $(OUT)/tarball/demo.tar | wc -l) entries)"

# Everything CI runs: formatting, lints, unit tests, integration tests (root, bubblewrap).
test: lint
	$(CARGO) test --workspace --all-targets -- --test-threads=2 --skip e2e_
	@# Show the compatibility score (the passing test's output is otherwise captured).
	$(CARGO) test -q --test compat -- --nocapture
	$(MAKE) test-e2e

# The Debian image booted in QEMU (a few minutes; .debs cached in /var/cache/osbuild-rs-tests).
test-e2e:
	$(CARGO) test --test e2e -- --test-threads=1 --nocapture

test-unit:
	$(CARGO) test --workspace --lib

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Benchmarks (wall time, peak memory) on manifests generated at run time; see bench/README.md.
bench: build
	bench/run.sh $(BIN)

# Re-record the expected tree differences of stage tests (tests/data/stages/); review the diff.
bless:
	OSBUILD_RS_BLESS=1 $(CARGO) test --test 'stage_*'

# A longer run of the loader property tests than `make test` does.
fuzz:
	PROPTEST_CASES=50000 $(CARGO) test --release --test fuzz_loader --test fuzz_numeric

clean:
	$(CARGO) clean
	rm -rf $(OUT)
