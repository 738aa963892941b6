# Shared by bench/debian.sh and bench/debian-image.sh (sourced): a manifest depsolved from the
# machine's apt sources, a store whose source cache is the tests' .deb cache (warm after the
# first build), and the same .deb files as an apt archive for mmdebstrap.
#
# deb_prepare TEMPLATE NAME PACKAGE...: writes $WORK/NAME.json (the template depsolved) and
#   $WORK/NAME-packages.json, sets STORE, OUT, ARCHIVE, INCLUDE.
# deb_clean: empties the store but its source cache, and the output directory.
# mmdebstrap_into ROOT: the same package set into ROOT, docs and locales left out as the
#   manifests' `exclude` does.
CACHE=${OSBUILD_RS_DEB_CACHE:-/var/cache/osbuild-rs-tests}
DEPSOLVE=$(dirname "$BIN")/osbuild-depsolve-apt
[ "$(id -u)" = 0 ] || { echo "the Debian benchmarks need root (dpkg in a chroot, mmdebstrap --mode=root)"; exit 1; }
[ -x "$DEPSOLVE" ] || { echo "$DEPSOLVE missing: cargo build --release"; exit 1; }
command -v mmdebstrap >/dev/null || apt-get install -y mmdebstrap >/dev/null

deb_prepare() {
    local template=$1 name=$2; shift 2
    mkdir -p "$CACHE/debs" "$CACHE/apt-state"
    $M "osbuild-depsolve-apt ($name), $# packages + minbase" 1 -- \
        "$DEPSOLVE" --state-dir "$CACHE/apt-state" --template "$template" --output "$WORK/$name.json" "$@"
    "$DEPSOLVE" --state-dir "$CACHE/apt-state" --output "$WORK/$name-packages.json" "$@"
    STORE="$WORK/$name-store"
    OUT="$WORK/$name-out"
    mkdir -p "$STORE/sources"
    [ -e "$STORE/sources/org.osbuild.files" ] || ln -s "$CACHE/debs" "$STORE/sources/org.osbuild.files"
    ARCHIVE="$WORK/$name-archive"
    rm -rf "$ARCHIVE"; mkdir -p "$ARCHIVE"
    python3 - "$WORK/$name-packages.json" "$CACHE/debs" "$ARCHIVE" <<'PY'
import json, os, sys, urllib.parse
doc, cache, archive = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
for p in doc["packages"]:
    name = os.path.basename(urllib.parse.urlparse(p["url"]).path)
    src = os.path.join(cache, p["checksum"])
    if os.path.exists(src):
        os.link(src, os.path.join(archive, urllib.parse.unquote(name).replace(":", "%3a")))
print(f'{len(doc["packages"])} packages, {sum(p["size"] for p in doc["packages"]) >> 20} MiB')
PY
    INCLUDE=$(python3 -c 'import json,sys; print(",".join(p["name"] for p in json.load(open(sys.argv[1]))["packages"]))' "$WORK/$name-packages.json")
    export INCLUDE ARCHIVE
}

deb_clean() { rm -rf "$STORE/objects" "$STORE/refs" "$STORE/tmp" "$OUT"; }

mmdebstrap_into() {
    local sources=() f suite
    [ -s /etc/apt/sources.list ] && sources+=(/etc/apt/sources.list)
    for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do [ -e "$f" ] && sources+=("$f"); done
    suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
    mmdebstrap --quiet --mode=root --variant=essential --include="$INCLUDE" \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/info/*' --dpkgopt='path-exclude=/usr/share/lintian/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*' \
        --dpkgopt='path-include=/usr/share/locale/locale.alias' \
        --setup-hook="mkdir -p \"\$1/var/cache/apt/archives\" && cp -l $ARCHIVE/*.deb \"\$1/var/cache/apt/archives/\" 2>/dev/null || cp $ARCHIVE/*.deb \"\$1/var/cache/apt/archives/\"" \
        "$suite" "$1" "${sources[@]}"
}
# measure.py runs commands through bash: `bash -c "mmdebstrap_into DIR"`
export -f mmdebstrap_into
