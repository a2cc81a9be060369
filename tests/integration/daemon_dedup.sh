#!/usr/bin/env bash
# daemon_dedup.sh: hoardfs-cached fetches each byte once for any number of readers. Eight
# tool_client processes (mounts without FUSE) read the same 256 MiB object at the same time, cold,
# through a private counting proxy in front of s3rver:
#   - every reader gets the source's bytes (sha256);
#   - the proxy sent exactly the object's size for it, and the GETs' ranges tile the object with
#     no overlap (so no byte was fetched twice);
#   - the daemon's counters agree: bytes_fetched (verified blocks) = the object's size,
#     bytes_from_store = every body byte the proxy sent (object + listing), GETs started = GETs
#     the proxy saw, no retries;
#   - a second round of readers is served from the cache with no GET at all;
#   - the daemon exits 0 on SIGTERM without a sanitizer report.
# Prints (never asserts) the wall time, the daemon's peak RSS (VmHWM) and the group commit cost.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_daemon.sh"

MiB=$((1024 * 1024))
SIZE=$((256 * MiB))
READERS=8

b=$(uniq_bucket dedup)
s3_mkbucket "$b"
step "uploading a 256 MiB object"
mkdata_fast "$TEST_TMP/src" "$SIZE"
SRC_SHA=$(sha256 "$TEST_TMP/src")
s3_put_large "$b" "model/shard.bin" "$TEST_TMP/src"
rm -f "$TEST_TMP/src" # only its sha256 is needed from here on
OBJ_PATH="/$b/model/shard.bin"

P=$(start_proxy "$HOARDFS_S3_ENDPOINT")
daemon_start "$TEST_TMP/cache"

# readers N TAG: starts N concurrent cats of the object; waits for all (bounded by client());
# each one's sha256 lands in $TEST_TMP/TAG.N, its status in $TEST_TMP/TAG.N.rc.
readers() {
	local n=$1 tag=$2 i pids=()
	for i in $(seq 1 "$n"); do
		(
			rc=0
			client --endpoint "$P" "s3://$b" cat model/shard.bin --depth 8 |
				sha256 >"$TEST_TMP/$tag.$i" || rc=$?
			echo "$rc" >"$TEST_TMP/$tag.$i.rc"
		) &
		pids+=($!)
	done
	for i in "${pids[@]}"; do
		wait "$i" || true
	done
	for i in $(seq 1 "$n"); do
		[ "$(cat "$TEST_TMP/$tag.$i.rc")" = 0 ] || fail "$tag reader $i failed"
		[ "$(cat "$TEST_TMP/$tag.$i")" = "$SRC_SHA" ] ||
			fail "$tag reader $i read other bytes than the source's"
	done
}

step "$READERS readers of the same object at once, cold cache"
t0=${EPOCHREALTIME/./}
readers "$READERS" cold
t1=${EPOCHREALTIME/./}
HWM=$(vm_hwm)
# The last group commits land up to ~100 ms after the last byte: count them all.
blocks_committed() { [ "$(daemon_stat commit_blocks)" -ge "$1" ]; }
wait_for 10 blocks_committed $((SIZE / MiB)) || fail "not every block was committed"
proxy_stats "$P" >"$TEST_TMP/proxy.json"
daemon_stats >"$TEST_TMP/stats.json"
pj() { json_get "$1" <"$TEST_TMP/proxy.json"; }
sj() { json_get "j[\"$1\"]" <"$TEST_TMP/stats.json"; }

obj_bytes=$(pj "j.paths[\"$OBJ_PATH\"].bytes_out")
obj_gets=$(pj "j.paths[\"$OBJ_PATH\"].requests")
all_bytes=$(pj 'Object.values(j.paths).reduce((s, p) => s + p.bytes_out, 0)')
echo "proxy: $obj_gets GETs, $obj_bytes bytes for the object; $all_bytes body bytes in all"
echo "daemon: $(cat "$TEST_TMP/stats.json")"
[ "$obj_bytes" = "$SIZE" ] || fail "the server sent $obj_bytes bytes of the object, want $SIZE"
[ "$(sj store_retries)" = 0 ] || fail "the daemon retried GETs (a retry may fetch bytes twice)"
[ "$(sj bytes_fetched)" = "$SIZE" ] ||
	fail "daemon bytes_fetched $(sj bytes_fetched), want $SIZE"
[ "$(sj bytes_from_store)" = "$all_bytes" ] ||
	fail "daemon bytes_from_store $(sj bytes_from_store) != bytes the proxy sent ($all_bytes)"
[ "$(sj gets_started)" = "$obj_gets" ] ||
	fail "daemon started $(sj gets_started) GETs, the proxy saw $obj_gets"
[ "$(sj gets_failed)" = 0 ] || fail "$(sj gets_failed) GETs failed"
[ "$(sj fetch_requests)" -gt 0 ] || fail "no FETCH reached the daemon"
# The GETs' ranges, sorted, must tile [0, SIZE) exactly: no byte asked twice.
tiling=$(proxy_tiling "$OBJ_PATH" "$SIZE" <"$TEST_TMP/proxy.json")
[ "$tiling" = ok ] || fail "the GETs' ranges do not tile the object: $tiling"

secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1e6 }')
step "a second round is served from the cache"
readers "$READERS" warm
obj_gets2=$(proxy_path_gets "$P" "$OBJ_PATH")
[ "$obj_gets2" = "$obj_gets" ] || fail "warm readers caused $((obj_gets2 - obj_gets)) more GETs"

commits=$(sj commits)
commit_ns=$(sj commit_ns)
commit_blocks=$(sj commit_blocks)
echo "MEASURED: $READERS readers x 256 MiB, cold, each piped into sha256: ${secs} s wall" \
	"($obj_gets GETs, dedup_waits $(sj dedup_waits); hashing 2 GiB dominates on 2 CPUs)"
echo "MEASURED: daemon peak RSS (VmHWM) after the $READERS-reader round: $HWM KiB" \
	"($((HWM / 1024)) MiB)"
echo "MEASURED: group commit: $commits commits, $commit_blocks blocks, total" \
	"$(awk -v n="$commit_ns" 'BEGIN { printf "%.1f", n / 1e6 }') ms," \
	"$(awk -v n="$commit_ns" -v c="$commits" 'BEGIN { printf "%.2f", c ? n / c / 1e6 : 0 }') ms/commit," \
	"$(awk -v n="$commit_ns" -v c="$commit_blocks" 'BEGIN { printf "%.0f", c ? n / c / 1e3 : 0 }') us/block"
daemon_stop
