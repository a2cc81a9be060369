#!/usr/bin/env bash
# mount_passthrough.sh: complete objects are served by FUSE passthrough (the kernel reads the
# cache file itself), and everything around it stays correct:
#   1. a cold read goes through FUSE; once complete, cat, pread at every boundary, mmap,
#      sendfile and splice through a second mount are byte-exact, the daemon pinned the object,
#      and that mount answered no read itself (its unmount line counts 0 hits, 0 misses and
#      every open as a passthrough open);
#   2. a file opened while it is being fetched (a mount with --open-wait 0) keeps its ordinary
#      handle; once complete, a new
#      open of the same path gets a new inode in passthrough mode; both read right;
#   2b. two mounts opening one cold file at once both wait while the daemon fetches it whole
#      (--open-wait), then read it by passthrough: one download, no read through FUSE;
#   2c. 8 threads of one mount opening one cold file at the same moment all read it right (an
#      inode has one backing file: a second object for it would fail the open with EIO);
#   3. 8 threads x 250 open/pread/close of one passthrough file: no EIO, no wrong byte;
#   4. evict --force and verify while a passthrough open is held: the daemon refuses to revoke
#      (revokes_refused), the held file keeps reading the right bytes, and the object goes at
#      its last close;
#   5. --no-passthrough falls back to ordinary reads, byte-exact;
#   6. a mount without CAP_SYS_ADMIN (root of a user namespace) gets passthrough through the
#      daemon (which registers the file it opened itself, read-only): 0 reads reach it;
#   7. a hostile FUSE server (tool_hostilefuse) answers write opens with passthrough and a
#      backing id the daemon registered for it: the writes fail, the cache files are unchanged.
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
mkdata "$D/k.bin" $((20 * MiB + 3))
mkdata "$D/t.bin" $((12 * MiB + 1))
s3_put "$B" dir/f.bin "$D/f.bin"
s3_put "$B" g.bin "$D/g.bin"
s3_put "$B" h.bin "$D/h.bin"
s3_put "$B" k.bin "$D/k.bin"
s3_put "$B" t.bin "$D/t.bin"

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
# mount a never waits at open (--open-wait 0): its cold opens are ordinary FUSE opens
MPA=$(mnt_point a)
hoardfs_mount "$MPA" --socket "$SOCK" --no-autostart --open-wait 0 \
	--endpoint "$HOARDFS_S3_ENDPOINT" "s3://$B" "$MPA"
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

step "2b. two mounts open one cold file at once: both wait, one download, both passthrough"
MPE=$(mnt_point e)
hoardfs_mount "$MPE" --socket "$SOCK" --no-autostart --endpoint "$HOARDFS_S3_ENDPOINT" \
	"s3://$B" "$MPE"
E_PID=$MOUNT_PID
E_LOG=$MOUNT_LOG
MPF=$(mnt_point f)
hoardfs_mount "$MPF" --socket "$SOCK" --no-autostart --endpoint "$HOARDFS_S3_ENDPOINT" \
	"s3://$B" "$MPF"
F_PID=$MOUNT_PID
F_LOG=$MOUNT_LOG
waits0=$(stat_of open_waits)
store0=$(stat_of bytes_from_store)
(mt cmp "$MPE/k.bin" "$D/k.bin" >"$TEST_TMP/e.cmp" 2>&1) &
ce=$!
(mt cmp "$MPF/k.bin" "$D/k.bin" >"$TEST_TMP/f.cmp" 2>&1) &
cf=$!
wait "$ce" || fail "mount e read k.bin wrong: $(cat "$TEST_TMP/e.cmp")"
wait "$cf" || fail "mount f read k.bin wrong: $(cat "$TEST_TMP/f.cmp")"
[ "$(stat_of open_waits)" -gt "$waits0" ] || fail "no open waited for k.bin"
store=$(($(stat_of bytes_from_store) - store0))
[ "$store" -le $((20 * MiB + 3 + 65536)) ] || fail "the store sent $store bytes for a 20 MiB file"
step "2c. 8 threads of one mount open one cold file at the same moment"
mt python3 "$READ" together "$MPE/t.bin" "$D/t.bin" --threads 8 ||
	fail "concurrent first opens of one cold file"
mt python3 "$READ" together "$MPE/t.bin" "$D/t.bin" --threads 8 ||
	fail "concurrent opens of one complete file"
for x in "$MPE $E_PID $E_LOG" "$MPF $F_PID $F_LOG"; do
	# shellcheck disable=SC2086
	line=$(unmount_line $x)
	echo "$line"
	grep -q 'reads through FUSE: 0 hits, 0 misses' <<<"$line" ||
		fail "a waiting open still read through FUSE: $line"
done

step "4. evict --force and verify while a passthrough open is held"
mt cmp "$MPA/h.bin" "$D/h.bin" || fail "cold read of h.bin"
coproc HOLD2 { exec timeout -k 5 120 python3 "$READ" holder "$MPA/h.bin"; }
read -r -t 30 w ino size <&"${HOLD2[0]}" || fail "the holder did not open h.bin"
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
# the held open was a passthrough open: nothing punched, the object goes at its last close
grep -q 'passthrough' <<<"$ctl_out" || fail "evict --force did not treat h.bin as pinned"
used_less() { [ "$(ctl_get status j.bytes_used)" -lt "$used_before" ]; }
wait_for 20 used_less || fail "h.bin was not evicted at its last close"
mt cmp "$MPA/h.bin" "$D/h.bin" || fail "h.bin after its eviction"

step "5. --no-passthrough reads through FUSE"
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

step "6. a mount without CAP_SYS_ADMIN (root of a user namespace) gets passthrough through the daemon"
MPU=$(mnt_point u)
ULOG="$TEST_TMP/userns-mount.log"
with_timeout 60 unshare -Urm bash -c '
	"$1" --foreground --socket "$2" --no-autostart --endpoint "$3" "s3://$4" "$5" >"$6" 2>&1 &
	pid=$!
	for i in $(seq 1 100); do grep -q " $5 fuse" /proc/self/mounts && break; sleep 0.1; done
	cmp "$5/dir/f.bin" "$7" || { echo "userns: cmp failed"; kill $pid; exit 1; }
	python3 "$8" mmap "$5/dir/f.bin" "$7" || { echo "userns: mmap failed"; kill $pid; exit 1; }
	fusermount3 -u "$5" || umount "$5"
	wait $pid' _ "$HOARDFS_BIN" "$SOCK" "$HOARDFS_S3_ENDPOINT" "$B" "$MPU" "$ULOG" "$D/f.bin" \
	"$READ" || fail "the user-namespace mount: $(cat "$ULOG")"
cat "$ULOG"
grep -q 'the daemon registers them' "$ULOG" ||
	fail "the unprivileged mount did not ask the daemon to register its backing files"
line=$(grep -E 'unmounting .*passthrough' "$ULOG")
grep -q 'reads through FUSE: 0 hits, 0 misses' <<<"$line" ||
	fail "the unprivileged mount answered reads itself: $line"
grep -q 'passthrough: 0 opens' <<<"$line" && fail "the unprivileged mount got no passthrough open"
[ "$(stat_of backing_registered)" -ge 1 ] || fail "the daemon registered no backing file"

step "7. a hostile FUSE server answers write opens with a backing file the daemon registered"
before=$(cat "$CACHE"/objects/* | openssl dgst -sha256 -r)
MPH=$(mnt_point h)
"$(tool hostilefuse)" --socket "$SOCK" --endpoint "$HOARDFS_S3_ENDPOINT" "s3://$B" dir/f.bin \
	"$MPH" >"$TEST_TMP/hostile.out" 2>"$TEST_TMP/hostile.err" &
HOST_PID=$!
on_exit _kill_prog "$HOST_PID" tool_hostilefuse
on_exit bash -c "fusermount3 -u '$MPH' 2>/dev/null || true"
hostile_ready() { grep -q '^ready' "$TEST_TMP/hostile.out"; }
wait_for 20 hostile_ready || fail "the hostile server did not start: $(cat "$TEST_TMP/hostile.err")"
mt cmp "$MPH/f" "$D/f.bin" || fail "reading through the hostile server's passthrough"
if mt python3 -c 'import os,sys; fd=os.open(sys.argv[1], os.O_RDWR); os.pwrite(fd, b"EVIL" * 1024, 0)' \
	"$MPH/f" 2>"$TEST_TMP/write.err"; then
	fail "a write open through a daemon-registered backing file succeeded"
fi
echo "write through the hostile mount: $(tail -n 1 "$TEST_TMP/write.err")"
! mt dd if=/dev/zero of="$MPH/f" bs=4096 count=1 conv=notrunc 2>/dev/null ||
	fail "dd wrote through a daemon-registered backing file"
[ "$(cat "$CACHE"/objects/* | openssl dgst -sha256 -r)" = "$before" ] || fail "the cache files changed"
with_timeout 15 fusermount3 -u "$MPH" || fail "unmounting the hostile server"
wait_gone "$HOST_PID" 15 || fail "the hostile server did not exit"

mnt_finish
echo PASS
