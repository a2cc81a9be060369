#!/usr/bin/env bash
# run.sh: the hoardfs benchmark, in one command (see bench/README.md).
#
#   bench/run.sh [--quick | --smoke] [bench.py options...]     (as root)
#
# Installs what is missing (the Debian packages of scripts/packages.txt, s3rver), builds hoardfs
# in a Release tree (build-bench/, or --build DIR; --no-build uses DIR as it is), then runs
# bench/bench.py: data generation (reused from bench/work/), servers, limits, every scenario, and
# the report in bench/results/DATE[-quick]/ (report.md, results.json, chart.png).
# `bench/run.sh --help` lists bench.py's options.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)

die() {
	echo "run.sh: $*" >&2
	exit 1
}

build=$root/build-bench
do_build=1
args=()
while [ $# -gt 0 ]; do
	case $1 in
	--build)
		build=${2:?--build needs a directory}
		shift 2
		;;
	--build=*)
		build=${1#--build=}
		shift
		;;
	--no-build)
		do_build=
		shift
		;;
	-h | --help)
		exec python3 "$here/bench.py" --help
		;;
	*)
		args+=("$1")
		shift
		;;
	esac
done

[ "$(id -u)" = 0 ] || die "run me as root (FUSE mounts, drop_caches)"

# Debian packages (peers, nginx and its modules, gnuplot, build tools): setup.sh installs the
# ones of scripts/packages.txt that are missing, and does nothing when all are there.
need=(nginx s3fs rclone gnuplot curl openssl fusermount3 python3 cmake cc node)
missing=
for c in "${need[@]}"; do
	command -v "$c" >/dev/null || missing=1
done
for m in ngx_http_echo_module ngx_http_headers_more_filter_module; do
	[ -f "/usr/lib/nginx/modules/$m.so" ] || missing=1
done
if [ -n "$missing" ]; then
	echo "run.sh: installing missing packages (scripts/setup.sh --deps-only)" >&2
	bash "$root/scripts/setup.sh" --deps-only
fi
bash "$root/tests/servers/install.sh" >/dev/null

if [ -n "$do_build" ]; then
	echo "run.sh: building hoardfs in $build (Release)" >&2
	log=$(mktemp)
	if ! { [ -f "$build/CMakeCache.txt" ] || cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release; } \
		>"$log" 2>&1 ||
		! cmake --build "$build" -j "$(nproc)" --target hoardfs hoardfs-cached >>"$log" 2>&1; then
		tail -n 30 "$log" >&2
		rm -f "$log"
		die "build failed"
	fi
	# hoardfs-inspect gives the daemon's counters in the report; optional
	cmake --build "$build" -j "$(nproc)" --target hoardfs-inspect >>"$log" 2>&1 ||
		echo "run.sh: hoardfs-inspect did not build; the report goes without daemon counters" >&2
	rm -f "$log"
fi
[ -x "$build/mountd/hoardfs" ] && [ -x "$build/cached/hoardfs-cached" ] ||
	die "no hoardfs binaries in $build"

exec python3 "$here/bench.py" --build "$build" "${args[@]}"
