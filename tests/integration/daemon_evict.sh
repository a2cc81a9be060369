#!/usr/bin/env bash
# daemon_evict.sh: eviction keeps hoardfs-cached under --cache-size and never removes what a mount
# has open. The daemon runs with --cache-size 48M; the test reads 32 MiB objects in turn (more
# than the limit in all) through a counting proxy, while a sampler measures the bytes allocated
# by the files in the cache dir's objects/ (st_blocks x 512) every 20 ms.
#
# The bounds asserted, and why:
#   - before each read, once the daemon is idle: disk <= LIMIT + FS_SLACK. Eviction runs when
#     blocks are added and every second, and removes closed objects until the cached bytes are at
#     or below the limit; at rest only closed objects and the held one remain, and the held one
#     (32 MiB) fits the limit alone.
#   - at every sample: disk <= LIMIT + OBJ + FS_SLACK. Each read starts from the state above and
#     adds at most one object (OBJ = 32 MiB, the object being read, which is open and so cannot be
#     evicted, plus its GETs' bytes not yet verified, which lie inside the same object).
#   FS_SLACK (1 MiB) covers file system metadata counted in st_blocks (extent tree blocks of files
#   written out of order); the cached bytes themselves are exact.
# Phases:
#   1. four objects read in turn: the bounds hold, older objects are evicted, reads are correct;
#   2. object X read, then held open by a `tool_client hold`; three more objects read: X is never
#      evicted (no GET for X again, its re-reads by another client correct), and the cache goes
#      past the limit (the limit yields to open objects) but within the bounds;
#   3. the hold ends (CLOSE): the next read evicts X (least recently closed), and reading X again
#      fetches it again, correctly.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_daemon.sh"

MiB=$((1024 * 1024))
OBJ=$((32 * MiB))
LIMIT=$((48 * MiB))
FS_SLACK=$MiB
REST_BOUND=$((LIMIT + FS_SLACK))
READ_BOUND=$((LIMIT + OBJ + FS_SLACK))

b=$(uniq_bucket evict)
s3_mkbucket "$b"
step "uploading 6 objects of 32 MiB"
for k in y1 y2 y3 y4 y5 x; do
	mkdata_fast "$TEST_TMP/$k" "$OBJ"
	s3_put_large "$b" "$k" "$TEST_TMP/$k"
done
P=$(start_proxy "$HOARDFS_S3_ENDPOINT")
daemon_start "$TEST_TMP/cache" --cache-size 48M
CACHE=$DAEMON_DIR
[ "$(daemon_status | json_get j.bytes_limit)" = "$LIMIT" ] ||
	fail "the daemon's limit is $(daemon_status | json_get j.bytes_limit), want $LIMIT"

# The sampler: "PHASE BYTES" lines in $TEST_TMP/samples while $TEST_TMP/sampling exists.
echo start >"$TEST_TMP/phase"
touch "$TEST_TMP/sampling"
(
	while [ -e "$TEST_TMP/sampling" ]; do
		echo "$(cat "$TEST_TMP/phase" 2>/dev/null) $(objects_disk_bytes "$CACHE")"
		sleep 0.02
	done >"$TEST_TMP/samples"
) &
SAMPLER=$!
on_exit _daemon_kill "$SAMPLER"
on_exit rm -f "$TEST_TMP/sampling"

# at_rest: waits (bounded) until the cache is back within REST_BOUND.
at_rest() {
	local i n
	for i in $(seq 1 100); do
		n=$(objects_disk_bytes "$CACHE")
		[ "$n" -le "$REST_BOUND" ] && return 0
		sleep 0.1
	done
	ls -ls "$CACHE/objects" >&2
	fail "the cache holds $n bytes on disk 10 s after a read, over the limit $LIMIT (+$FS_SLACK)"
}

# read_check KEY PHASE: at rest first, then a cat of KEY (sha256 checked) during PHASE.
read_check() {
	local k=$1 got
	at_rest
	echo "$2" >"$TEST_TMP/phase"
	got=$(client --endpoint "$P" "s3://$b" cat "$k" | sha256) ||
		fail "reading $k failed"
	[ "$got" = "$(sha256 "$TEST_TMP/$k")" ] || fail "reading $k returned other bytes"
}

gets_of() { proxy_path_gets "$P" "/$b/$1"; }
bytes_of() { proxy_path_bytes "$P" "/$b/$1"; }

step "phase 1: four 32 MiB objects in turn under a 48 MiB limit"
for k in y1 y2 y3 y4; do
	read_check "$k" p1
done
at_rest
ev1=$(daemon_stat evicted_objects)
[ "$ev1" -ge 2 ] || fail "only $ev1 objects were evicted in phase 1"
for k in y1 y2 y3 y4; do
	[ "$(bytes_of "$k")" = "$OBJ" ] || fail "$k: $(bytes_of "$k") bytes fetched, want $OBJ"
done

step "phase 2: X held open by another client while three more objects are read"
read_check x p2
x_gets=$(gets_of x)
x_bytes=$(bytes_of x)
[ "$x_bytes" = "$OBJ" ] || fail "x: $x_bytes bytes fetched, want $OBJ"
# (tool_client itself, not through client(): SIGUSR1 must reach it; the hold bounds itself.)
"$TOOL_CLIENT" --socket "$DAEMON_SOCK" --endpoint "$P" "s3://$b" hold x 120000 \
	>"$TEST_TMP/hold.out" 2>"$TEST_TMP/hold.err" &
HOLD=$!
on_exit _daemon_kill "$HOLD"
wait_for 20 grep -qx holding "$TEST_TMP/hold.out" || fail "the hold client did not open x"
for k in y5 y1 y2; do
	read_check "$k" p2
	# X is still cached and correct: another client reads it without any GET.
	read_check x p2
	[ "$(gets_of x)" = "$x_gets" ] || fail "x was fetched again while held open (evicted?)"
	kill -0 "$HOLD" 2>/dev/null || fail "the hold client ended early: $(cat "$TEST_TMP/hold.err")"
done

step "phase 3: the hold ends; X becomes evictable"
kill -USR1 "$HOLD"
wait "$HOLD" || fail "the hold client failed: $(cat "$TEST_TMP/hold.err")"
grep -qx closed "$TEST_TMP/hold.out" || fail "the hold client did not close x"
ev2=$(daemon_stat evicted_objects)
read_check y3 p3
at_rest
[ "$(daemon_stat evicted_objects)" -gt "$ev2" ] || fail "nothing was evicted after the hold ended"
read_check x p3
[ "$(bytes_of x)" = $((2 * OBJ)) ] ||
	fail "x was not fetched again after the hold ended ($(bytes_of x) bytes in all): not evicted?"
at_rest
rm -f "$TEST_TMP/sampling"
wait "$SAMPLER" || true

# The bounds over every sample.
n=$(wc -l <"$TEST_TMP/samples")
[ "$n" -gt 50 ] || fail "only $n samples"
read -r max1 max2 max3 < <(awk '{ if ($2 > m[$1]) m[$1] = $2 } END { print m["p1"] + 0, m["p2"] + 0, m["p3"] + 0 }' \
	"$TEST_TMP/samples")
echo "MEASURED: peak bytes on disk in objects/: phase 1 $((max1 / MiB)) MiB, phase 2 (X held)" \
	"$((max2 / MiB)) MiB, phase 3 $((max3 / MiB)) MiB; limit $((LIMIT / MiB)) MiB, $n samples"
awk -v bound="$READ_BOUND" '$2 > bound { print "sample over the bound: " $0; bad = 1 } END { exit bad }' \
	"$TEST_TMP/samples" || fail "bytes on disk went over LIMIT + one object ($READ_BOUND)"
[ "$max2" -gt "$LIMIT" ] || fail "phase 2 never went past the limit: the test did not test the hold"
daemon_stats
daemon_stop
