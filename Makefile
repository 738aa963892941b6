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
            mmdebstrap python3-jsonschema python3-iniparse python3-tomli-w \
            squashfs-tools erofs-utils xorriso isomd5sum isolinux syslinux-common cpio ovmf

.PHONY: all build deps demo demo-boot demo-serve demo-update demo-tarball test test-e2e test-unit lint bench bench-compare bless fuzz clean

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
	@# upstream osbuild (the tests' oracle, ../shared/upstream) binds the host's /etc/containers
	mkdir -p /etc/containers
	@# QEMU for the boot test. Some machines carry a newer qemu-utils than their release
	@# (a backport) that qemu-system-x86 cannot go with: take both from the release itself.
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends --allow-downgrades \
	    qemu-system-x86 qemu-utils/$$(. /etc/os-release && echo $$VERSION_CODENAME)

# The IoT story (README, "The IoT story"): a Debian OSTree commit built from
# test-manifests/iot-commit.json, a qcow2 deployed from it (iot-qcow2.json) whose ostree
# remote is this machine's port $(IOT_PORT) as QEMU's user network shows it (10.0.2.2), and an
# update commit (iot-update.json). Packages are resolved by osbuild-depsolve-apt from the
# machine's apt sources (its lists kept in $(IOT_APT)).
IOT        := $(OUT)/iot
IOT_PORT   ?= 8765
IOT_APT    ?= $(CURDIR)/.osbuild-apt
IOT_REF    := osbuild-rs/x86_64/iot
IOT_PKGS    = $(shell sed -e 's/\#.*//' test-manifests/iot-packages.txt)
IOT_REPO   := $(IOT)/www/repo
IOT_IMAGE  := $(IOT)/image/qcow2/disk.qcow2
IOT_DEVICE := $(IOT)/device.qcow2
DEPSOLVE   := target/$(TARGET)/release/osbuild-depsolve-apt
# kvm:tcg uses KVM where it works; where KVM hangs (nested virtualization) say DEMO_ACCEL=tcg.
DEMO_ACCEL ?= kvm:tcg

# Build the IoT image end to end (commit, then a qcow2 deployed from it) and say how to boot it.
demo: build
	@rm -rf $(IOT)/commit $(IOT)/image $(IOT_DEVICE) && mkdir -p $(IOT)/www $(IOT_APT)
	$(DEPSOLVE) --state-dir $(IOT_APT) --template test-manifests/iot-commit.json --output $(IOT)/iot-commit.json $(IOT_PKGS)
	$(BIN) --store $(STORE) --output-directory $(IOT)/commit --export commit $(IOT)/iot-commit.json
	ln -sfn $(IOT)/commit/commit/repo $(IOT_REPO)
	sed -e "s|@COMMIT@|$$(ostree --repo=$(IOT_REPO) rev-parse $(IOT_REF))|g" -e "s|@URL@|file://$(IOT_REPO)|" \
	    -e "s|@REMOTE_URL@|http://10.0.2.2:$(IOT_PORT)/repo|" test-manifests/iot-qcow2.json > $(IOT)/iot-qcow2.json
	$(BIN) --store $(STORE) --output-directory $(IOT)/image --export qcow2 $(IOT)/iot-qcow2.json
	@echo
	@echo "demo result: $(IOT_IMAGE)"
	@echo "  commit $$(ostree --repo=$(IOT_REPO) rev-parse $(IOT_REF)) ($(IOT_REF), version 1) in $(IOT_REPO)"
	@echo "  boot it:   make demo-boot   (QEMU, serial console here; log in as test / password; Ctrl-a x quits)"
	@echo "  or by hand: qemu-system-x86_64 -machine accel=$(DEMO_ACCEL) -m 1024 -nographic \\"
	@echo "                -nic user,model=virtio-net-pci -drive file=$(IOT_IMAGE),if=virtio,format=qcow2 -snapshot"
	@echo "  updates:   make demo-serve (in another terminal), make demo-update, then in the guest"
	@echo "             sudo ostree admin upgrade && sudo systemctl reboot"

# Boot the demo image as a device: QEMU on this terminal (serial console), user-mode network
# (the host is 10.0.2.2), what the guest writes kept in $(IOT_DEVICE) until the next `make demo`.
demo-boot:
	@test -f $(IOT_IMAGE) || { echo "no $(IOT_IMAGE): run make demo first"; exit 1; }
	@test -f $(IOT_DEVICE) || qemu-img create -q -f qcow2 -b $(IOT_IMAGE) -F qcow2 $(IOT_DEVICE)
	qemu-system-x86_64 -machine accel=$(DEMO_ACCEL) -m 1024 -nographic \
	    -nic user,model=virtio-net-pci -drive file=$(IOT_DEVICE),if=virtio,format=qcow2

# Serve the demo's OSTree repository where the device looks for updates (foreground; Ctrl-C stops).
demo-serve:
	@test -d $(IOT_REPO)/objects || { echo "no $(IOT_REPO): run make demo first"; exit 1; }
	@echo "serving $(IOT)/www on http://127.0.0.1:$(IOT_PORT)/ (the device: http://10.0.2.2:$(IOT_PORT)/repo)"
	python3 -m http.server --bind 127.0.0.1 --directory $(IOT)/www $(IOT_PORT)

# Build the update (one more package, hello; parent = the served commit) and publish it.
demo-update: build
	@test -d $(IOT_REPO)/objects || { echo "no $(IOT_REPO): run make demo first"; exit 1; }
	@rm -rf $(IOT)/update
	$(DEPSOLVE) --state-dir $(IOT_APT) --template test-manifests/iot-update.json --output $(IOT)/iot-update.json \
	    $(IOT_PKGS) --then hello
	sed -i -e "s|@PARENT@|$$(ostree --repo=$(IOT_REPO) rev-parse $(IOT_REF))|" $(IOT)/iot-update.json
	$(BIN) --store $(STORE) --output-directory $(IOT)/update --export commit $(IOT)/iot-update.json
	ostree --repo=$(IOT_REPO) pull-local $(IOT)/update/commit/repo $(IOT_REF)
	@echo
	@echo "published $$(ostree --repo=$(IOT_REPO) rev-parse $(IOT_REF)) (version 2, parent $$(ostree --repo=$(IOT_REPO) rev-parse $(IOT_REF)^))"
	@echo "  in the guest: sudo ostree admin upgrade && sudo systemctl reboot"

# The first demo: test-manifests/demo.json (inline sources, the host as build root) to a tarball.
demo-tarball: build
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
	@# and the differential score against upstream osbuild (tests/differential.rs, already run above)
	@cat target/$(TARGET)/tmp/differential-score.txt
	$(MAKE) test-e2e

# The Debian image booted in QEMU, then the IoT story (an OSTree image that boots, upgrades over
# HTTP and rolls back; ~15 minutes); .debs cached in /var/cache/osbuild-rs-tests.
test-e2e:
	$(CARGO) test --test e2e -- --test-threads=1 --nocapture
	$(CARGO) test --test e2e_iot -- --test-threads=1 --nocapture

test-unit:
	$(CARGO) test --workspace --lib

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Benchmarks (wall time, peak memory) on manifests generated at run time (bench/*.sh say what each times).
bench: build
	bench/run.sh $(BIN)

# This build against an older one (OLD=path/to/osbuild-rs), interleaved, as new/old ratios.
bench-compare: build
	@test -n "$(OLD)" || { echo "usage: make bench-compare OLD=/path/to/older/osbuild-rs"; exit 1; }
	bench/compare.sh $(OLD) $(BIN)

# Re-record the expected tree differences of stage tests (tests/data/stages/); review the diff.
bless:
	OSBUILD_RS_BLESS=1 $(CARGO) test --test 'stage_*'

# A longer run of the loader property tests than `make test` does.
fuzz:
	PROPTEST_CASES=50000 $(CARGO) test --release --test fuzz_loader --test fuzz_numeric

clean:
	$(CARGO) clean
	rm -rf $(OUT)
