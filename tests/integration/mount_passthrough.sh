#!/usr/bin/env bash
# mount_passthrough.sh: complete objects are served by FUSE passthrough (the kernel reads the
# cache file itself), and everything around it stays correct:
#   1. a cold read goes through FUSE; once complete, cat, pread at every boundary, mmap,
#      sendfile and splice through a second mount are byte-exact, the daemon pinned the object,
#      and that mount answered no read itself (its unmount line counts 0 hits, 0 misses and
#      every open as a passthrough open);
#   2. a file opened while it is being fetched keeps its ordinary handle; once complete, a new
#      open of the same path gets a new inode in passthrough mode; both read right;
#   3. 8 threads x 250 open/pread/close of one passthrough file: no EIO, no wrong byte;
#   4. evict --force and verify while a passthrough open is held: the daemon refuses to revoke
#      (revokes_refused), the held file keeps reading the right bytes, and the object goes at
#      its last close;
#   5. --no-passthrough, and a mount without CAP_SYS_ADMIN (root of a user namespace), fall
#      back to ordinary reads with one log line, byte-exact.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_mount.sh"

D=$(tmpdir data)
B=$(uniq_bucket mpt)
READ="$HOARDFS_SRC/tests/integration/lib_read.py"
step "uploading three objects"
s3_mkbucket "$B"
mkdata "$D/f.bin" $((24 * MiB + 4097))
mkdata "$D/g.bin" $((12 * MiB + 5))
mkdata "$D/h.bin" $((6 * MiB))
s3_put "$B" dir/f.bin "$D/f.bin"
s3_put "$B" g.bin "$D/g.bin"
s3_put "$B" h.bin "$D/h.bin"

mnt_cache pt
start_daemon
stat_of() { ctl_get stats "j.$1"; }

# unmount_line MP PID LOG: unmounts a foreground mount and prints its closing log line.
unmount_line() {
	with_timeout 15 fusermount3 -u "$1" || fail "fusermount3 -u $1"
	wait_gone "$2" 15 || fail "hoardfs $2 did not exit after its unmount"
	grep -E 'unmounting .*passthrough' "$3" || fail "no closing line in $3: $(cat "$3")"
}

step "1. cold read through FUSE, then passthrough reads through a second mount"
MPA=$(mnt_point a)
hoardfs_mount "$MPA" --socket "$SOCK" --no-autostart --endpoint "$HOARDFS_S3_ENDPOINT" \
	"s3://$B" "$MPA"
mt cmp "$MPA/dir/f.bin" "$D/f.bin" || fail "cold read of f.bin"
pins0=$(stat_of pinned_opens)
MPB=$(mnt_point b)
hoardfs_mount "$MPB" --socket "$SOCK" --no-autostart --endpoint "$HOARDFS_S3_ENDPOINT" \
	"s3://$B" "$MPB"
B_PID=$MOUNT_PID
B_LOG=$MOUNT_LOG
mt cmp "$MPB/dir/f.bin" "$D/f.bin" || fail "cmp through passthrough"
mt python3 "$READ" preads "$MPB/dir/f.bin" "$D/f.bin" --random 200 || fail "preads"
mt python3 "$READ" mmap "$MPB/dir/f.bin" "$D/f.bin" || fail "mmap"
mt python3 "$READ" copies "$MPB/dir/f.bin" "$D/f.bin" || fail "sendfile/splice"
pins1=$(stat_of pinned_opens)
# (a passthrough object outlives its last release by 2 s: the opens above share one pin)
[ "$pins1" -gt "$pins0" ] || fail "the daemon pinned no open of f.bin for mount b"

step "3. 8 threads x 250 open/pread/close of one passthrough file"
mt python3 "$READ" churn "$MPB/dir/f.bin" "$D/f.bin" --threads 8 --rounds 250 ||
	fail "concurrent opens of a passthrough file"
line=$(unmount_line "$MPB" "$B_PID" "$B_LOG")
echo "mount b: $line"
grep -q 'reads through FUSE: 0 hits, 0 misses' <<<"$line" ||
	fail "the passthrough mount answered reads itself: $line"
n=$(sed -n 's/.*passthrough: \([0-9]*\) opens.*/\1/p' <<<"$line")
[ "$n" -ge 2004 ] || fail "only $n passthrough opens on mount b"

step "2. a file opened while it is fetched, completed, then opened again"
coproc HOLD { exec timeout -k 5 120 python3 "$READ" holder "$MPA/g.bin"; }
read -r -t 30 w ino1 size1 <&"${HOLD[0]}" || fail "the holder did not open g.bin"
[ "$w" = open ] || fail "holder: $w"
# read it whole through the ordinary handle: the object becomes complete
echo "read 0 $size1" >&"${HOLD[1]}"
read -r -t 60 ok n sha <&"${HOLD[0]}" || fail "the holder's read timed out"
[ "$ok $n $sha" = "ok $size1 $(fsha "$D/g.bin")" ] || fail "the ordinary handle read: $ok $n $sha"
# a new open of the path: a new inode, served by passthrough (wait for the entry to be
# invalidated: the switch happens when the completion arrives)
new_ino() { [ "$(stat -c %i "$MPA/g.bin")" != "$ino1" ]; }
wait_for 20 new_ino || fail "g.bin kept inode $ino1 after it became complete"
pins2=$(stat_of pinned_opens)
mt cmp "$MPA/g.bin" "$D/g.bin" || fail "the new handle of g.bin"
[ "$(stat_of pinned_opens)" -gt "$pins2" ] || fail "the new open of g.bin was not pinned"
echo "read 0 $size1" >&"${HOLD[1]}"
read -r -t 60 ok n sha <&"${HOLD[0]}" || fail "the holder's second read timed out"
[ "$ok $n $sha" = "ok $size1 $(fsha "$D/g.bin")" ] || fail "the old handle after the switch"
echo quit >&"${HOLD[1]}"
wait "$HOLD_PID" 2>/dev/null || true

step "4. evict --force and verify while a passthrough open is held"
mt cmp "$MPA/h.bin" "$D/h.bin" || fail "cold read of h.bin"
coproc HOLD2 { exec timeout -k 5 120 python3 "$READ" holder "$MPA/h.bin"; }
read -r -t 30 w ino size <&"${HOLD2[0]}" || fail "the holder did not open h.bin"
refused0=$(stat_of revokes_refused)
ctl_out=$(with_timeout 20 "$(tool client)" --socket "$SOCK" s3://ctl ctl \
	"{\"cmd\":\"evict\",\"url\":\"s3://$B/h.bin\",\"force\":true}") || fail "evict --force"
echo "evict: $ctl_out"
job=$(with_timeout 20 "$(tool client)" --socket "$SOCK" s3://ctl ctl \
	"{\"cmd\":\"verify\",\"url\":\"s3://$B/h.bin\"}" | json_get j.job) || fail "verify"
verify_done() {
	local s
	s=$(with_timeout 10 "$(tool client)" --socket "$SOCK" s3://ctl ctl \
		"{\"cmd\":\"job\",\"job\":$job}" | json_get j.state)
	[ "$s" = done ] || [ "$s" = failed ]
}
wait_for 60 verify_done || fail "verify did not finish"
echo "drop" >&"${HOLD2[1]}"
read -r -t 30 ok <&"${HOLD2[0]}"
echo "read 0 $size" >&"${HOLD2[1]}"
read -r -t 60 ok n sha <&"${HOLD2[0]}" || fail "the held read timed out"
[ "$ok $n $sha" = "ok $size $(fsha "$D/h.bin")" ] || fail "the held passthrough file after evict"
used_before=$(ctl_get status j.bytes_used)
echo quit >&"${HOLD2[1]}"
wait "$HOLD2_PID" 2>/dev/null || true
if [ "$(stat_of revokes_refused)" -gt "$refused0" ]; then
	# the held open was a passthrough open: the object goes at its last close
	used_less() { [ "$(ctl_get status j.bytes_used)" -lt "$used_before" ]; }
	wait_for 20 used_less || fail "h.bin was not evicted at its last close"
else
	fail "evict --force revoked blocks of an object held by passthrough"
fi
mt cmp "$MPA/h.bin" "$D/h.bin" || fail "h.bin after its eviction"

step "5. --no-passthrough, and a mount without CAP_SYS_ADMIN, read through FUSE"
MPC=$(mnt_point c)
hoardfs_mount "$MPC" --socket "$SOCK" --no-autostart --no-passthrough \
	--endpoint "$HOARDFS_S3_ENDPOINT" "s3://$B" "$MPC"
C_PID=$MOUNT_PID
C_LOG=$MOUNT_LOG
mt cmp "$MPC/dir/f.bin" "$D/f.bin" || fail "--no-passthrough read"
line=$(unmount_line "$MPC" "$C_PID" "$C_LOG")
echo "mount c: $line"
grep -q 'passthrough: 0 opens' <<<"$line" || fail "--no-passthrough opened in passthrough: $line"
grep -q 'reads through FUSE: 0 hits' <<<"$line" && fail "--no-passthrough answered no reads"

MPU=$(mnt_point u)
ULOG="$TEST_TMP/userns-mount.log"
with_timeout 60 unshare -Urm bash -c '
	"$1" --foreground --socket "$2" --no-autostart --endpoint "$3" "s3://$4" "$5" >"$6" 2>&1 &
	pid=$!
	for i in $(seq 1 100); do grep -q " $5 fuse" /proc/self/mounts && break; sleep 0.1; done
	cmp "$5/dir/f.bin" "$7" || { echo "userns: cmp failed"; kill $pid; exit 1; }
	fusermount3 -u "$5" || umount "$5"
	wait $pid' _ "$HOARDFS_BIN" "$SOCK" "$HOARDFS_S3_ENDPOINT" "$B" "$MPU" "$ULOG" "$D/f.bin" ||
	fail "the user-namespace mount: $(cat "$ULOG")"
cat "$ULOG"
grep -q 'FUSE passthrough is not available' "$ULOG" ||
	fail "the unprivileged mount did not say that passthrough is unavailable"

mnt_finish
echo PASS
