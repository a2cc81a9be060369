#!/usr/bin/env bash
# daemon_throughput.sh: measures (never asserts on timing) how fast hoardfs-cached fetches a 1 GiB
# object from s3rver, against 8 parallel ranged curl GETs of the same object in the same run, both
# straight at s3rver (no proxy). Two alternating rounds of each, every daemon round on a fresh
# (cold) cache dir; the reader is tool_client cat --depth 32 to /dev/null. Also prints the group
# commit's cost from the daemon's counters (commits, commit_ns, commit_blocks), its peak RSS, and
# a warm read served from the cache. Asserts correctness (the warm read's sha256, every block
# counted once, no failed GET, a clean exit) and the daemon's memory bound (peak RSS at most 64 MiB
# plus its in-flight receive buffers).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_daemon.sh"

MiB=$((1024 * 1024))
SIZE=$((1024 * MiB))
PARTS=8
E=$HOARDFS_S3_ENDPOINT

b=$(uniq_bucket thru)
s3_mkbucket "$b"
step "uploading a 1 GiB object"
mkdata_fast "$TEST_TMP/src" "$SIZE"
SRC_SHA=$(sha256 "$TEST_TMP/src")
s3_put_large "$b" "big.bin" "$TEST_TMP/src"
rm -f "$TEST_TMP/src"

now_us() { echo "${EPOCHREALTIME/./}"; }
rate() { awk -v b="$1" -v us="$2" 'BEGIN { printf "%.0f MB/s (%.2f s)", b / us, us / 1e6 }'; }

# curl_parallel: 8 parallel ranged GETs covering the object; prints the microseconds taken.
curl_parallel() {
	local part=$((SIZE / PARTS)) i t0 pids=() rc=0
	t0=$(now_us)
	for i in $(seq 0 $((PARTS - 1))); do
		curl -sS --fail --max-time 120 --aws-sigv4 "aws:amz:us-east-1:s3" \
			--user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
			-H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
			-r "$((i * part))-$(((i + 1) * part - 1))" -o /dev/null \
			-w '%{size_download}\n' "$E/$b/big.bin" >"$TEST_TMP/curl.$i" &
		pids+=($!)
	done
	for i in "${pids[@]}"; do
		wait "$i" || rc=1
	done
	[ "$rc" = 0 ] || fail "a ranged curl GET failed"
	[ "$(awk '{ s += $1 } END { print s }' "$TEST_TMP"/curl.*)" = "$SIZE" ] ||
		fail "the curl GETs did not return $SIZE bytes"
	echo $(($(now_us) - t0))
}

# daemon_cold N: a fresh daemon on a fresh cache dir, one cold cat to /dev/null; sets D_US to the
# microseconds the cat took and leaves the daemon's stats in $TEST_TMP/stats.N.json. (Not in a
# $(...) subshell: the daemon must stay this shell's child.)
daemon_cold() {
	local n=$1 t0 us
	rm -rf "$TEST_TMP/cache$n"
	daemon_start "$TEST_TMP/cache$n"
	t0=$(now_us)
	client --endpoint "$E" "s3://$b" cat big.bin --depth 32 --out /dev/null ||
		fail "cold read $n through the daemon failed"
	us=$(($(now_us) - t0))
	# The last group commits land up to ~100 ms after the last byte: count them all.
	wait_for 10 blocks_committed $((SIZE / MiB)) || fail "not every block was committed"
	daemon_stats >"$TEST_TMP/stats.$n.json"
	vm_hwm >"$TEST_TMP/hwm.$n"
	D_US=$us
}

blocks_committed() { [ "$(daemon_stat commit_blocks)" -ge "$1" ]; }
sj() { json_get "j[\"$2\"]" <"$TEST_TMP/stats.$1.json"; }

step "round 1: curl x$PARTS, then the daemon (cold)"
c1=$(curl_parallel)
daemon_cold 1
d1=$D_US
[ "$(sj 1 bytes_fetched)" = "$SIZE" ] || fail "round 1 fetched $(sj 1 bytes_fetched) bytes"
[ "$(sj 1 gets_failed)" = 0 ] || fail "round 1: $(sj 1 gets_failed) GETs failed"
step "warm reads of the same object from round 1's cache: timed to /dev/null, then checked"
t0=$(now_us)
client --endpoint "$E" "s3://$b" cat big.bin --depth 32 --out /dev/null || fail "warm read failed"
w=$(($(now_us) - t0))
got=$(client --endpoint "$E" "s3://$b" cat big.bin --depth 32 | sha256) ||
	fail "checked warm read failed"
[ "$got" = "$SRC_SHA" ] || fail "the warm read returned other bytes than the source's"
[ "$(daemon_stat bytes_fetched)" = "$SIZE" ] || fail "the warm read fetched again"
daemon_stop

step "round 2: curl x$PARTS, then the daemon (cold, new cache dir)"
c2=$(curl_parallel)
daemon_cold 2
d2=$D_US
[ "$(sj 2 bytes_fetched)" = "$SIZE" ] || fail "round 2 fetched $(sj 2 bytes_fetched) bytes"
daemon_stop
rm -rf "$TEST_TMP/cache1" "$TEST_TMP/cache2"

for n in 1 2; do
	c=$(sj $n commits)
	ns=$(sj $n commit_ns)
	bl=$(sj $n commit_blocks)
	us=$([ $n = 1 ] && echo "$d1" || echo "$d2")
	echo "MEASURED: round $n group commit: $c commits, $bl blocks," \
		"$(awk -v n="$ns" 'BEGIN { printf "%.0f", n / 1e6 }') ms in all" \
		"($(awk -v n="$ns" -v c="$c" 'BEGIN { printf "%.1f", c ? n / c / 1e6 : 0 }') ms/commit," \
		"$(awk -v n="$ns" -v c="$bl" 'BEGIN { printf "%.0f", c ? n / c / 1e3 : 0 }') us/block," \
		"$(awk -v n="$ns" -v us="$us" 'BEGIN { printf "%.0f", n / 10 / us }')% of the read's wall time)"
	echo "MEASURED: round $n daemon peak RSS (VmHWM) after a 1 GiB cold read: $(cat "$TEST_TMP/hwm.$n") KiB"
done
# The daemon's memory bound (docs/design.md, "Memory"): 64 MiB plus the receive buffers of the
# GETs in flight (--max-inflight 32 x 1 MiB). Not under a sanitizer (shadow memory).
if ! grep -qa __asan_init "$CACHED" 2>/dev/null; then
	for n in 1 2; do
		[ "$(cat "$TEST_TMP/hwm.$n")" -le $(((64 + 32) * 1024)) ] ||
			fail "round $n: daemon peak RSS $(cat "$TEST_TMP/hwm.$n") KiB is over 64 MiB + 32 x 1 MiB"
	done
fi
echo "MEASURED: 1 GiB from s3rver, curl x$PARTS ranged:   round 1 $(rate "$SIZE" "$c1"), round 2 $(rate "$SIZE" "$c2")"
echo "MEASURED: 1 GiB from s3rver, daemon cold --depth 32: round 1 $(rate "$SIZE" "$d1"), round 2 $(rate "$SIZE" "$d2")"
echo "MEASURED: 1 GiB warm from the daemon's cache to /dev/null: $(rate "$SIZE" "$w")"
echo "MEASURED: daemon / curl: $(awk -v a="$c1" -v b="$c2" -v x="$d1" -v y="$d2" \
	'BEGIN { printf "%.2f (round 1), %.2f (round 2)", a / x, b / y }')"
