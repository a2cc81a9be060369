#!/usr/bin/env bash
# install.sh: installs the test servers' npm packages (tests/servers/package.json) into
# tests/servers/node_modules, unless an earlier install of the same package.json completed.
# Used by start.sh and scripts/test.sh. A lock keeps concurrent callers (two build trees) from
# installing into the same folder at once. Output goes to $1 (a log file) when given.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log=${1:-/dev/stderr}
NPM_TIMEOUT=${HOARDFS_NPM_TIMEOUT:-900} # seconds
marker="$here/node_modules/.hoardfs-installed"

die() {
	echo "install.sh: $*" >&2
	exit 1
}

want=$(sha256sum "$here/package.json" | cut -d' ' -f1)
if [ -f "$marker" ] && [ "$(cat "$marker")" = "$want" ]; then
	exit 0
fi
command -v node >/dev/null || die "node is not installed (run scripts/setup.sh)"
command -v npm >/dev/null || die "npm is not installed (run scripts/setup.sh)"
mkdir -p "$here/node_modules"
exec 9>"$here/node_modules/.hoardfs-install.lock"
flock -w "$NPM_TIMEOUT" 9 || die "timed out waiting for another npm install"
if [ -f "$marker" ] && [ "$(cat "$marker")" = "$want" ]; then
	exit 0
fi
echo "install.sh: installing the test servers with npm (takes a few minutes)" >&2
# --ignore-scripts: the only install scripts are re2's (an optional native module the emulator
# does not need; it would try to download or compile) and protobufjs' version notice.
if ! (cd "$here" && timeout -k 10 "$NPM_TIMEOUT" npm install --no-audit --no-fund \
	--ignore-scripts --loglevel=error) >>"$log" 2>&1; then
	[ "$log" = /dev/stderr ] || tail -n 30 "$log" >&2
	die "npm install failed${1:+ (log: $1)}"
fi
for pkg in s3rver firebase-tools; do
	[ -f "$here/node_modules/$pkg/package.json" ] || die "npm install completed without $pkg"
done
echo "$want" >"$marker"
