#!/usr/bin/env bash
# setup.sh: the one command that sets hoardfs up on a fresh Debian 12 machine.
#
#   scripts/setup.sh                          install what is missing, build build/, say what next
#   scripts/setup.sh URL MOUNTPOINT [OPTS...]  the same, then mount URL (gs://bucket[/prefix] or
#                                             s3://...) at MOUNTPOINT: build/mountd/hoardfs OPTS URL
#                                             MOUNTPOINT
#   scripts/setup.sh --deps-only              install what is missing, nothing else (test.sh)
#
# Installs the Debian packages in scripts/packages.txt that are not installed yet (apt-get update
# only then), and Debian's nodejs/npm only when `node`/`npm` are missing; uses sudo only when not
# root. A fresh build/ is configured as a Release tree (an existing one keeps its build type).
# Idempotent; prints only a short summary on success and the failing step's log on failure.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOG=$(mktemp "${TMPDIR:-/tmp}/hoardfs-setup.XXXXXX")
trap 'rm -f "$LOG"' EXIT

die() {
	echo "setup.sh: $*" >&2
	exit 1
}

# quietly WHAT CMD...: runs CMD with its output in the log; on failure shows the log's end.
quietly() {
	local what=$1
	shift
	: >"$LOG"
	if ! "$@" >>"$LOG" 2>&1; then
		tail -n 40 "$LOG" >&2
		die "$what failed"
	fi
}

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null || die "not root and no sudo: run me as root"
	SUDO=(sudo)
fi

# Prints the packages of scripts/packages.txt (plus nodejs/npm when missing) not installed yet.
missing_packages() {
	local p
	while read -r p; do
		p=${p%%#*}
		p=${p//[[:space:]]/}
		[ -n "$p" ] || continue
		if [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" != installed ]; then
			echo "$p"
		fi
	done <"$root/scripts/packages.txt"
	command -v node >/dev/null || echo nodejs
	command -v npm >/dev/null || echo npm
}

install_deps() {
	local missing
	command -v dpkg-query >/dev/null && command -v apt-get >/dev/null ||
		die "this script needs Debian (apt-get, dpkg-query)"
	mapfile -t missing < <(missing_packages)
	[ ${#missing[@]} -gt 0 ] || return 0
	echo "setup.sh: installing ${missing[*]}" >&2
	quietly "apt-get update" "${SUDO[@]}" apt-get update -q
	quietly "apt-get install" "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -q "${missing[@]}"
	mapfile -t missing < <(missing_packages)
	[ ${#missing[@]} -eq 0 ] || die "still missing after apt-get install: ${missing[*]}"
}

build() {
	local args=(-S "$root" -B "$root/build")
	[ -f "$root/build/CMakeCache.txt" ] || args+=(-DCMAKE_BUILD_TYPE=Release)
	quietly "cmake configure" cmake "${args[@]}"
	quietly "build" cmake --build "$root/build" -j "$(nproc)"
}

if [ "${1:-}" = --deps-only ]; then
	install_deps
	exit 0
fi
if [ $# -eq 1 ] || [[ "${1:-}" == -* ]]; then
	echo "usage: $0 [URL MOUNTPOINT [mount options...]] | --deps-only" >&2
	exit 2
fi

install_deps
build

if [ $# -eq 0 ]; then
	cat <<EON
hoardfs is built in $root/build.
Next:
  scripts/test.sh                                   run the whole test suite
  scripts/setup.sh gs://BUCKET[/PREFIX] /mnt/DIR    mount a bucket (also s3://BUCKET)
EON
	exit 0
fi

url=$1
mnt=$2
shift 2
bin="$root/build/mountd/hoardfs"
[ -x "$bin" ] || die "$bin was not built (the mount program is not in this tree yet)"
mkdir -p "$mnt"
exec "$bin" "$@" "$url" "$mnt"
