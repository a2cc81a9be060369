#!/usr/bin/env bash
# mount_dedup.sh: one daemon fetches each byte once for every mount. Four mounts of the same
# s3rver bucket (the first starts the daemon, the other three find it) read the same 512 MiB file
# at the same time, cold. Each reader's SHA-256 must be the source's; the counting proxy in front
# of s3rver must have sent exactly the object's size for it (every byte once: no GET repeated,
# none overlapping), and the daemon's own bytes_from_store counter must agree with the proxy.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_mount.sh"

N=4
SIZE=$((512 * MiB))
D=$(tmpdir data)
B=$(uniq_bucket mdedup)

step "uploading a 512 MiB object"
s3_mkbucket "$B"
mkdata "$D/big.bin" "$SIZE"
WANT=$(fsha "$D/big.bin")
s3_put "$B" models/big.bin "$D/big.bin"
rm -f "$D/big.bin" # only its hash is needed from here on
P=$(start_proxy "$HOARDFS_S3_ENDPOINT")

mnt_cache dedup
MPS=()
for i in $(seq 1 $N); do
	MPS[i]=$(mnt_point "m$i")
	hoardfs_mount "${MPS[i]}" --cache-dir "$CACHE" --socket "$SOCK" --endpoint "$P" \
		"s3://$B" "${MPS[i]}"
done
DPID=$(daemon_pid "$CACHE")
[ -n "$DPID" ] || fail "no daemon"
[ "$(daemon_mounts)" = $N ] || fail "the daemon lists $(daemon_mounts) mounts, want $N"
for i in $(seq 1 $N); do
	mt stat "${MPS[i]}/models/big.bin" >/dev/null || fail "stat through mount $i"
done
base_store=$(ctl_get stats j.bytes_from_store)
proxy_reset "$P"

step "$N mounts read the same file at once"
t0=${EPOCHREALTIME/./}
pids=()
for i in $(seq 1 $N); do
	(timeout -k 5 120 openssl dgst -sha256 -r "${MPS[i]}/models/big.bin" | cut -d' ' -f1 \
		>"$D/sha.$i") &
	pids[i]=$!
done
for i in $(seq 1 $N); do
	wait "${pids[i]}" || fail "reader $i failed"
done
ms=$(((${EPOCHREALTIME/./} - t0) / 1000))
for i in $(seq 1 $N); do
	[ "$(cat "$D/sha.$i")" = "$WANT" ] || fail "reader $i read wrong bytes ($(cat "$D/sha.$i"))"
done

obj_bytes=$(proxy_stats "$P" | json_get "(j.paths['/$B/models/big.bin'] || {bytes_out: 0}).bytes_out")
obj_gets=$(proxy_stats "$P" | json_get "(j.paths['/$B/models/big.bin'] || {requests: 0}).requests")
all_bytes=$(proxy_stats "$P" | json_get j.bytes_out)
store=$(($(ctl_get stats j.bytes_from_store) - base_store))
dedup=$(ctl_get stats j.dedup_waits)
step "read 4 x 512 MiB in $ms ms: store sent $obj_bytes bytes of the object in $obj_gets GETs" \
	"($all_bytes bytes in all); daemon: bytes_from_store +$store, dedup_waits $dedup"
[ "$obj_bytes" = "$SIZE" ] || fail "the store sent $obj_bytes bytes of a $SIZE-byte object"
[ "$store" = "$all_bytes" ] ||
	fail "daemon counted $store bytes from the store, the proxy sent $all_bytes"
mnt_finish
