#!/usr/bin/env bash
# mount_vs_curl.sh: the two numbers issue 4's "Done when" asks for, from one run on s3rver
# (printed, never asserted):
#   cold  MB/s of `dd bs=1M` of a 1 GiB object through a fresh hoardfs mount (empty cache,
#         autostarted daemon), vs 8 parallel ranged `curl`s of the same object;
#   warm  MB/s of `dd bs=1M` through the mount once the object is cached and the page cache is
#         dropped (echo 3 > /proc/sys/vm/drop_caches), vs `dd` of the daemon's cache file
#         itself (<cache-dir>/objects/<id>), page cache dropped too.
# Before each cold read s3rver's own copy of the object is read once, so that both cold runs are
# served from memory by the server and measure the path, not the disk.
#
#   bench/mount_vs_curl.sh [BUILD_DIR]     (as root; BUILD_DIR defaults to build/)
#   SIZE_MIB=1024 REPEAT=1 environment knobs; PERF_DIR=DIR also records a system-wide CPU profile
#   (perf record -a -g, cpu-clock) of each cold read into DIR/cold<run>.data and prints where the
#   CPU went, by process
# Starts its own servers (tests/servers/start.sh) and uses the test helpers (lib.sh,
# lib_mount.sh) for bounded waits and cleanup: everything is unmounted and stopped at the end.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
SIZE_MIB=${SIZE_MIB:-1024}
REPEAT=${REPEAT:-1}
[ "$(id -u)" = 0 ] || {
	echo "mount_vs_curl.sh: run as root (FUSE mounts, drop_caches)" >&2
	exit 1
}
servers="$build/bench-mount-vs-curl/servers"
mkdir -p "$servers"
bash "$root/tests/servers/start.sh" "$servers" >&2

export HOARDFS_SRC=$root HOARDFS_BUILD=$build HOARDFS_TEST_ENV=$servers/env
# shellcheck source=../tests/integration/lib.sh
source "$root/tests/integration/lib.sh"
on_exit rm -rf "$servers" # after the servers stopped (cleanups run last first)
on_exit bash "$root/tests/servers/stop.sh" "$servers"
# shellcheck source=../tests/integration/lib_mount.sh
source "$root/tests/integration/lib_mount.sh"

SIZE=$((SIZE_MIB * MiB))
E=$HOARDFS_S3_ENDPOINT
B=$(uniq_bucket bench)
D=$(tmpdir data)

# mbps BYTES START_US END_US
mbps() {
	awk -v b="$1" -v us="$(($3 - $2))" 'BEGIN { printf "%.0f", b / us }' # bytes/us = MB/s
}
now() {
	echo "${EPOCHREALTIME/./}"
}
drop_caches() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
}

step "uploading a $SIZE_MIB MiB object to s3rver"
s3_mkbucket "$B"
mkdata "$D/big.bin" "$SIZE"
# (streamed with -T: s3_put's --data-binary reads the whole file into memory first)
_s3_curl -X PUT -o /dev/null -T "$D/big.bin" "$E/$B/big.bin" || fail "upload failed"
on_exit s3_rm "$B" big.bin
SRV_FILE="$servers/s3/$B/big.bin._S3rver_object"
[ -f "$SRV_FILE" ] || fail "cannot find s3rver's copy of the object ($SRV_FILE)"
rm -f "$D/big.bin"

warm_server() {
	cat "$SRV_FILE" >/dev/null
}

# curl8: 8 parallel ranged GETs of the object; prints MB/s
curl8() {
	local i a b t0 t1 part=$(((SIZE + 7) / 8)) pids=()
	warm_server
	t0=$(now)
	for i in 0 1 2 3 4 5 6 7; do
		a=$((i * part))
		b=$((a + part - 1))
		[ "$b" -lt "$SIZE" ] || b=$((SIZE - 1))
		curl -sS --fail --max-time 300 --aws-sigv4 "aws:amz:us-east-1:s3" -u S3RVER:S3RVER \
			-H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -r "$a-$b" -o /dev/null "$E/$B/big.bin" &
		pids+=($!)
	done
	for i in "${pids[@]}"; do
		wait "$i" || fail "a curl failed"
	done
	t1=$(now)
	mbps "$SIZE" "$t0" "$t1"
}

# dd_mbps FILE: dd bs=1M of FILE to /dev/null (bounded); prints MB/s as measured here
dd_mbps() {
	local t0 t1
	t0=$(now)
	timeout -k 5 600 dd if="$1" of=/dev/null bs=1M status=none || fail "dd $1 failed"
	t1=$(now)
	mbps "$(stat -c %s "$1")" "$t0" "$t1"
}

# perf_start NAME / perf_stop: a system-wide profile around one measurement (PERF_DIR only).
perf_pid=
perf_start() {
	[ -n "${PERF_DIR:-}" ] || return 0
	mkdir -p "$PERF_DIR"
	perf record -q -a -g -F 999 -e cpu-clock -o "$PERF_DIR/$1.data" >/dev/null 2>&1 &
	perf_pid=$!
	on_exit _hoardfs_kill "$perf_pid"
	sleep 1 # perf has started sampling
}
perf_stop() {
	local i
	[ -n "$perf_pid" ] || return 0
	kill -INT "$perf_pid" 2>/dev/null || true
	for i in $(seq 1 100); do
		kill -0 "$perf_pid" 2>/dev/null || break
		sleep 0.1
	done
	perf_pid=
}

results=()
for r in $(seq 1 "$REPEAT"); do
	step "run $r: 8 parallel ranged curls"
	c=$(curl8)

	step "run $r: cold read through a fresh mount (empty cache, autostarted daemon)"
	mnt_cache "cold$r"
	MP=$(mnt_point "m$r")
	hoardfs_mount "$MP" --cache-dir "$CACHE" --socket "$SOCK" --endpoint "$E" "s3://$B" "$MP"
	mt stat "$MP/big.bin" >/dev/null || fail "stat through the mount"
	warm_server
	perf_start "cold$r"
	cold=$(dd_mbps "$MP/big.bin")
	perf_stop
	gets=$(ctl_get stats j.gets_started)

	step "run $r: warm read through the mount (page cache dropped) and dd of the cache file"
	obj=$(find "$CACHE/objects" -type f -size +$((SIZE / 1024 - 1))k | head -n 1)
	[ -n "$obj" ] || fail "no cache file of the object under $CACHE/objects"
	drop_caches
	warm=$(dd_mbps "$MP/big.bin")
	drop_caches
	file=$(dd_mbps "$obj")
	pc=$(dd_mbps "$obj") # again, now from the page cache: the ceiling
	results+=("$r $c $cold $warm $file $pc $gets")
	unmount "$MP"
	stop_daemon "$CACHE"
	rm -rf "$CACHE/objects"
done

echo
echo "hoardfs mount vs curl on s3rver: one $SIZE_MIB MiB object, dd bs=1M, MB/s (10^6 B/s)"
echo "$(nproc) CPUs, kernel $(uname -r), build $build, load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-4s %9s %11s %11s %11s %11s %11s %14s %6s\n' run "curl x8" "mount cold" "cold ratio" \
	"mount warm" "cache file" "warm ratio" "(page-cached)" GETs
for line in "${results[@]}"; do
	read -r r c cold warm file pc gets <<<"$line"
	printf '%-4s %9s %11s %11s %11s %11s %11s %14s %6s\n' "$r" "$c" "$cold" \
		"$(awk -v a="$cold" -v b="$c" 'BEGIN { printf "%.2f", a / b }')" "$warm" "$file" \
		"$(awk -v a="$warm" -v b="$file" 'BEGIN { printf "%.2f", a / b }')" "$pc" "$gets"
done
echo "cold ratio = mount cold / curl x8; warm ratio = mount warm / dd of the cache file (both" \
	"after drop_caches); GETs = the daemon's store GETs for the cold read"
if [ -n "${PERF_DIR:-}" ]; then
	for r in $(seq 1 "$REPEAT"); do
		echo
		echo "CPU during cold read $r, by process (perf, cpu-clock samples at 999 Hz per CPU," \
			"$(nproc) CPUs; the profile starts 1 s before the read):"
		timeout -k 5 120 perf report -i "$PERF_DIR/cold$r.data" --sort comm --stdio -g none \
			--no-children 2>/dev/null | grep -v '^#' | grep -v '^$' | head -n 12 || true
	done
fi
mnt_finish
