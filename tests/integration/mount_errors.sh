#!/usr/bin/env bash
# mount_errors.sh: what goes wrong is said clearly, and nothing is left behind.
#  1. Errors before mounting (nonexistent bucket on S3 and GCS, a wrong endpoint (a closed port),
#     a missing mount point, a file as mount point, a mount point already mounted, bad options,
#     bad URLs, missing arguments; in the default background mode and with --foreground): exit
#     status != 0, exactly one line on stderr saying what is wrong (plus the "Try 'hoardfs
#     --help'." hint for usage errors), within a bounded time, nothing mounted, no hoardfs
#     process left, no mount left registered in the daemon. An autostarting mount with a bad
#     bucket gives the same error line (the other lines there are the daemon's and the mount's
#     timestamped info logs).
#  2. The mount is read-only: touch, echo >, mkdir, rm, rmdir, mv, ln, chmod, truncate -> EROFS.
#  3. A file deleted from the bucket while open (--metadata-ttl 1): the open handle keeps reading
#     the bytes already cached (with its page cache dropped, so the reads reach the mount),
#     uncached ranges fail with EIO within a bounded time, and a new lookup sees ENOENT after
#     the TTL.
#  4. A file overwritten (same size) while open, on S3 and on GCS: the open handle reads only
#     the old version's bytes (cached ranges) or EIO (uncached ones: that version is gone), never
#     the new version's; after the TTL a new open reads the new version, with a new inode number.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_mount.sh"

D=$(tmpdir data)
ERR="$TEST_TMP/err"

# expect_fail SECS RC REGEX ARGS...: hoardfs ARGS must exit with RC (1 runtime, 2 usage) within
# SECS, printing one line matching "^hoardfs: .*REGEX" (and at most the usage hint) on stderr,
# leaving nothing mounted at $MPF and no process behind.
expect_fail() {
	local secs=$1 want=$2 re=$3 rc=0 t0 ms lines
	shift 3
	t0=${EPOCHREALTIME/./}
	timeout -k 5 "$secs" "$HOARDFS_BIN" "$@" </dev/null >"$TEST_TMP/out" 2>"$ERR" || rc=$?
	ms=$(((${EPOCHREALTIME/./} - t0) / 1000))
	if [ -z "${BUSY_PID:-}" ] && mounted "$MPF"; then # it should not have: undo it
		on_exit _mnt_cleanup "$MPF" "$(_mount_pid_of "$MPF")"
	fi
	[ "$rc" != 124 ] && [ "$rc" != 137 ] || fail "hoardfs $* did not finish within ${secs}s"
	if [ "$rc" != "$want" ]; then
		cat "$ERR" >&2
		fail "hoardfs $*: exit status $rc, want $want"
	fi
	lines=$(grep -vxF "Try 'hoardfs --help'." "$ERR" || true)
	if [ "$(grep -c . <<<"$lines")" != 1 ] || ! grep -Eq "^hoardfs: .*$re" <<<"$lines"; then
		cat "$ERR" >&2
		fail "hoardfs $*: want one line matching '$re' on stderr"
	fi
	[ ! -s "$TEST_TMP/out" ] || fail "hoardfs $* printed on stdout: $(cat "$TEST_TMP/out")"
	if [ -n "${BUSY_PID:-}" ]; then # $MPF was mounted before: it must stay as it was
		[ "$(awk -v mp="$MPF" '$5 == mp' /proc/self/mountinfo | wc -l)" = 1 ] ||
			fail "hoardfs $* mounted over $MPF"
		[ "$(_mount_pid_of "$MPF")" = "$BUSY_PID" ] || fail "hoardfs $* left a process"
	else
		! mounted "$MPF" || fail "hoardfs $* left $MPF mounted"
		[ -z "$(_mount_pid_of "$MPF")" ] || fail "hoardfs $* left a process"
	fi
	echo "  ${ms} ms, status $rc: $lines" >&2
}

# ---- 1. errors before mounting --------------------------------------------------------------------
step "errors before mounting (a daemon started by the test serves them)"
B=$(uniq_bucket merr)
s3_mkbucket "$B"
mkdata "$D/small" 4099
s3_put "$B" small.bin "$D/small"
mnt_cache errs
start_daemon
MPF=$(mnt_point fail)
: >"$TEST_TMP/a-file"
CLOSED=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
S3=(--socket "$SOCK" --endpoint "$HOARDFS_S3_ENDPOINT")
GS=(--socket "$SOCK" --endpoint "$HOARDFS_GCS_ENDPOINT" --anonymous)
NOB=$(uniq_bucket nosuch)

expect_fail 30 1 "no such bucket" "${S3[@]}" "s3://$NOB" "$MPF"
expect_fail 30 1 "no such bucket" "${S3[@]}" --foreground "s3://$NOB/some/prefix" "$MPF"
# (no GCS case: the emulator lists a bucket that does not exist as an empty one, with 200)
expect_fail 60 1 "cannot reach the object store" --socket "$SOCK" \
	--endpoint "http://127.0.0.1:$CLOSED" "s3://$B" "$MPF"
expect_fail 60 1 "cannot reach the object store" --socket "$SOCK" --anonymous \
	--endpoint "http://127.0.0.1:$CLOSED" --foreground "gs://$B" "$MPF"
expect_fail 10 1 "mount point .*/missing: No such file or directory" "${S3[@]}" \
	"s3://$B" "$TEST_TMP/missing"
expect_fail 10 1 "mount point .*/a-file is not a directory" "${S3[@]}" "s3://$B" \
	"$TEST_TMP/a-file"
expect_fail 10 2 "unrecognized option '--bogus'" "${S3[@]}" --bogus "s3://$B" "$MPF"
expect_fail 10 2 "--metadata-ttl: 'soon' is not a number" "${S3[@]}" --metadata-ttl soon \
	"s3://$B" "$MPF"
expect_fail 10 2 "--file-mode: expected an octal mode" "${S3[@]}" --file-mode 0999 "s3://$B" "$MPF"
expect_fail 10 2 "--endpoint ftp://x: expected an http" --endpoint ftp://x "s3://$B" "$MPF"
expect_fail 10 2 "'http://$B' is not a bucket URL" "${S3[@]}" "http://$B" "$MPF"
expect_fail 10 2 "'s3://' is not a bucket URL" "${S3[@]}" "s3://" "$MPF"
expect_fail 10 2 "'$B' is not a bucket URL" "${S3[@]}" "$B" "$MPF"
expect_fail 10 2 "expected a bucket URL and a mount point" "${S3[@]}" "s3://$B"
expect_fail 10 2 "unexpected argument 'extra'" "${S3[@]}" "s3://$B" "$MPF" extra
expect_fail 10 2 "--mount-point and --bucket-name go together" --mount-point "$MPF"
expect_fail 10 2 "--bucket-name Bad_Name!: not a valid bucket name" --mount-point "$MPF" \
	--bucket-name 'Bad_Name!'
expect_fail 10 1 "cannot reach hoardfs-cached" --no-autostart --socket "$SOCK.none" \
	"s3://$B" "$MPF"
expect_fail 10 1 "cannot create cache directory /proc/hoardfs-none" \
	--cache-dir /proc/hoardfs-none "s3://$B" "$MPF"
[ "$(daemon_mounts)" = 0 ] || fail "failed mounts are still registered: $(ctl status)"

step "an already mounted mount point"
MP=$(mnt_point ok)
# --open-wait 0: the deleted/overwritten-file checks need files cached only in part
hoardfs_mount "$MP" "${S3[@]}" --open-wait 0 --metadata-ttl 1 --neg-ttl 1 "s3://$B" "$MP"
MPF=$MP
BUSY_PID=$MOUNT_PID
expect_fail 10 1 "is already a mount point \(busy\)" "${S3[@]}" "s3://$B" "$MP"
expect_fail 10 1 "is already a mount point \(busy\)" "${S3[@]}" --foreground "s3://$B" "$MP"
BUSY_PID=
mounted "$MP" || fail "the failed attempts unmounted the first mount"
mt cmp "$MP/small.bin" "$D/small" || fail "the first mount stopped working"
[ "$(daemon_mounts)" = 1 ] || fail "daemon lists $(daemon_mounts) mounts, want 1"

step "an autostarting mount of a bucket that does not exist"
mnt_cache auto
MPF=$(mnt_point auto)
rc=0
timeout -k 5 30 "$HOARDFS_BIN" --cache-dir "$CACHE" --socket "$SOCK" \
	--endpoint "$HOARDFS_S3_ENDPOINT" "s3://$NOB" "$MPF" </dev/null 2>"$ERR" || rc=$?
[ "$rc" = 1 ] || fail "autostart, no bucket: status $rc"
[ "$(grep -c '^hoardfs: ' "$ERR")" = 1 ] && grep -q "^hoardfs: s3://$NOB/: no such bucket$" "$ERR" ||
	fail "autostart, no bucket: $(cat "$ERR")"
if grep -v '^hoardfs: ' "$ERR" | grep -Ev '^[0-9T:.-]+Z hoardfs(-cached)?\[[0-9]+\] info: '; then
	fail "autostart, no bucket: lines other than the error and info logs (above)"
fi
! mounted "$MPF" || fail "left mounted"
step "  (stderr had $(grep -c . "$ERR") lines: the error and info logs)"

# ---- 2. read-only ---------------------------------------------------------------------------------
step "writes get EROFS"
erofs() {
	local out
	out=$(timeout 10 "$@" 2>&1) && fail "'$*' succeeded on a read-only mount"
	grep -q 'Read-only file system' <<<"$out" || fail "'$*': $out"
}
erofs touch "$MP/small.bin"
erofs touch "$MP/new-file"
erofs sh -c "echo x >'$MP/small.bin'"
erofs sh -c "echo x >>'$MP/small.bin'"
erofs sh -c "echo x >'$MP/new-file'"
erofs mkdir "$MP/newdir"
erofs rm -f "$MP/small.bin"
erofs mv "$MP/small.bin" "$MP/moved"
erofs ln -s small.bin "$MP/link"
erofs chmod 600 "$MP/small.bin"
erofs truncate -s 0 "$MP/small.bin"
erofs python3 -c 'import os, sys
try:
    os.setxattr(sys.argv[1], "user.x", b"1")
except OSError as e:
    sys.exit(os.strerror(e.errno))' "$MP/small.bin"
mt cmp "$MP/small.bin" "$D/small" || fail "small.bin changed"

# ---- 3. deleted while open ------------------------------------------------------------------------
# holder commands (lib_read.py holder) over a coprocess, every answer bounded
hold_open() {
	local line
	coproc HOLD { exec python3 "$READER" holder "$1"; }
	HOLDER_PID=$HOLD_PID
	on_exit _kill_prog "$HOLDER_PID" python3
	read -r -t 30 -u "${HOLD[0]}" line || fail "holder did not open $1"
	[[ $line == open* ]] || fail "holder: $line"
	read -r _ HOLD_INO _ <<<"$line"
}
hold_cmd() {
	local line
	echo "$*" >&"${HOLD[1]}"
	read -r -t 40 -u "${HOLD[0]}" line || fail "holder: '$*' got no answer within 40 s"
	echo "$line"
}
hold_close() {
	echo quit >&"${HOLD[1]}"
	wait "$HOLDER_PID" 2>/dev/null || true
}
# sha_range FILE OFF LEN
sha_range() {
	python3 -c 'import hashlib, sys
f = open(sys.argv[1], "rb"); f.seek(int(sys.argv[2]))
print(hashlib.sha256(f.read(int(sys.argv[3]))).hexdigest())' "$@"
}

step "a file deleted while open: cached bytes still read, uncached ones EIO, ENOENT after the TTL"
SZ=$((24 * MiB))
mkdata "$D/del.bin" "$SZ"
s3_put "$B" del.bin "$D/del.bin"
wait_for 15 timeout 5 stat "$MP/del.bin" || fail "del.bin does not appear (TTL 1 s)"
hold_open "$MP/del.bin"
[ "$(hold_cmd read 0 4096)" = "ok 4096 $(sha_range "$D/del.bin" 0 4096)" ] || fail "first read"
s3_rm "$B" del.bin
[ "$(hold_cmd drop)" = ok ] || fail "drop"
[ "$(hold_cmd read 0 4096)" = "ok 4096 $(sha_range "$D/del.bin" 0 4096)" ] ||
	fail "cached bytes of a deleted file could not be read"
t0=${EPOCHREALTIME/./}
got=$(hold_cmd read $((20 * MiB)) 4096)
ms=$(((${EPOCHREALTIME/./} - t0) / 1000))
[ "$got" = "err EIO" ] || fail "uncached range of a deleted file: '$got', want EIO"
step "  uncached range: EIO after $ms ms"
[ "$(hold_cmd read 100 1000)" = "ok 1000 $(sha_range "$D/del.bin" 100 1000)" ] ||
	fail "cached bytes after the EIO"
wait_for 15 bash -c "! stat '$MP/del.bin' 2>/dev/null" || fail "del.bin is still there after the TTL"
out=$(mt stat "$MP/del.bin" 2>&1) && fail "stat of a deleted file succeeded"
grep -q 'No such file or directory' <<<"$out" || fail "deleted file: $out"
! mt ls "$MP" | grep -qx del.bin || fail "ls still lists del.bin"
hold_close

# ---- 4. overwritten while open --------------------------------------------------------------------
# overwrite_case NAME PUTFN MP BUCKET: the rules of item 4 for one store.
overwrite_case() {
	local name=$1 put=$2 mp=$3 b=$4 ino1 ino2 off got v1 v2 n_old=0 n_eio=0
	mkdata "$D/$name.v1" "$SZ"
	mkdata "$D/$name.v2" "$SZ"
	"$put" "$b" "$name" "$D/$name.v1"
	wait_for 15 bash -c "timeout 10 cmp -s -n 4096 '$mp/$name' '$D/$name.v1'" ||
		fail "$name v1 not visible"
	hold_open "$mp/$name"
	ino1=$HOLD_INO
	[ "$(hold_cmd read 0 4096)" = "ok 4096 $(sha_range "$D/$name.v1" 0 4096)" ] ||
		fail "$name: reading v1"
	"$put" "$b" "$name" "$D/$name.v2"
	[ "$(hold_cmd drop)" = ok ] || fail "drop"
	for off in 0 $((3 * MiB + 5)) $((9 * MiB)) $((17 * MiB - 100)) $((SZ - 4096)) 2048; do
		got=$(hold_cmd read "$off" 4096)
		v1=$(sha_range "$D/$name.v1" "$off" 4096)
		v2=$(sha_range "$D/$name.v2" "$off" 4096)
		case $got in
		"ok 4096 $v1") n_old=$((n_old + 1)) ;;
		"err EIO") n_eio=$((n_eio + 1)) ;;
		"ok 4096 $v2") fail "$name: the open handle read the NEW version at $off" ;;
		*) fail "$name: the open handle read '$got' at $off (neither version)" ;;
		esac
	done
	[ "$n_old" -ge 2 ] || fail "$name: cached old bytes were not readable ($n_old)"
	step "  $name: open handle: $n_old reads of the old version, $n_eio EIO, none of the new"
	wait_for 15 bash -c "timeout 10 cmp -s '$mp/$name' '$D/$name.v2'" ||
		fail "$name: a new open does not read the new version after the TTL"
	ino2=$(mt stat -c %i "$mp/$name")
	[ "$ino2" != "$ino1" ] || fail "$name: the new version kept inode $ino1"
	[ "$(hold_cmd fstat)" = "ok $ino1 $SZ" ] || fail "$name: the open handle's inode changed"
	[ "$(hold_cmd read 0 4096)" = "ok 4096 $(sha_range "$D/$name.v1" 0 4096)" ] ||
		fail "$name: the open handle lost the old version once the new one was read"
	hold_close
	step "  $name: new version on inode $ino2 (old $ino1)"
}

step "a file overwritten while open (S3)"
overwrite_case ow.bin s3_put "$MP" "$B"

step "a file overwritten while open (GCS)"
G=$(uniq_bucket merr-gcs)
gcs_put "$G" keep "$D/small"
MPG=$(mnt_point gcs)
hoardfs_mount "$MPG" "${GS[@]}" --open-wait 0 --metadata-ttl 1 --neg-ttl 1 "gs://$G" "$MPG"
overwrite_case gow.bin gcs_put "$MPG" "$G"

mnt_finish
