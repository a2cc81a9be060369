#!/usr/bin/env bash
# mount_isolation.sh: a mount sees only what the daemon hands it.
#  1. Descriptors: while files are open and after reads, every descriptor of the mount process
#     (/proc/PID/fd) is /dev/fuse, a socket, an eventfd/epoll/timerfd, the ring's memfd, a pipe,
#     /dev/null or a tty, or an object file under <cache-dir>/objects/ opened read-only (flags in
#     /proc/PID/fdinfo); never LMDB (meta/), the lock, the log, the cache directory or the
#     objects directory itself. Nothing under the cache dir but object files is mapped
#     (/proc/PID/maps). Checked for a mount that started its own daemon (GCS, background mode)
#     and for one served by a daemon the test started (S3).
#  2. Credentials: the daemon is started with a distinctive secret key and session token, the
#     mount with no AWS_* variables at all. Every message the mount receives on the daemon's
#     socket is recorded with strace (recvmsg, all bytes in hex) while it lists, stats and reads;
#     neither the secret, the token nor the key id appears in them (while a known object name
#     does, so the recording works). The ring (a memfd shared with the daemon) holds neither.
#     By design REGISTER's reply (struct proto_register_reply, common/proto.h) has only numeric
#     fields, and endpoints/credentials stay in the daemon (mdsvc.c do_register).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_mount.sh"

command -v strace >/dev/null || fail "strace is not installed"
D=$(tmpdir data)

# check_fds PID CACHE: the descriptor and mapping rules above; prints how many object files the
# mount holds.
check_fds() {
	local pid=$1 cache=$2 fd link flags objs=0
	cache=$(realpath "$cache")
	for fd in /proc/"$pid"/fd/*; do
		link=$(readlink "$fd" 2>/dev/null) || continue # closed meanwhile
		case $link in
		"$cache"/objects/*)
			[[ ${link#"$cache"/objects/} =~ ^[0-9a-f]{16}( \(deleted\))?$ ]] ||
				fail "mount holds $link (not an object file)"
			flags=$(awk '/^flags:/ { print $2 }' "/proc/$pid/fdinfo/${fd##*/}" 2>/dev/null) ||
				continue
			[ $((8#$flags & 3)) = 0 ] || fail "object file $link is open for writing ($flags)"
			objs=$((objs + 1))
			;;
		"$cache" | "$cache"/*) fail "mount holds $link" ;;
		/dev/fuse | /dev/null | /dev/pts/* | /dev/tty* | socket:* | pipe:*) ;;
		"$TEST_TMP"/mount-log.*) # the foreground mount's stdout and stderr
			[ "${fd##*/}" -le 2 ] || fail "mount holds its log as descriptor ${fd##*/}"
			;;
		anon_inode:\[eventfd\] | anon_inode:\[eventpoll\] | anon_inode:\[timerfd\]) ;;
		/memfd:hoardfs-ring*) ;;
		*)
			# inherited from whoever runs the test (ctest leaks its log file, for one)
			[ "$(readlink "/proc/$$/fd/${fd##*/}" 2>/dev/null)" = "$link" ] ||
				fail "mount holds an unexpected descriptor: $link"
			;;
		esac
	done
	if grep -F "$cache/" "/proc/$pid/maps" | grep -v -E "$cache/objects/[0-9a-f]{16}"; then
		fail "the mount maps files of the cache dir (above)"
	fi
	echo "$objs"
}

# holder FILE: keeps FILE open (lib_read.py holder) until the test ends; sets HOLDER_PID.
start_holder() {
	local line
	coproc HOLD { exec python3 "$READER" holder "$1"; }
	HOLDER_PID=$HOLD_PID
	on_exit _kill_prog "$HOLDER_PID" python3
	read -r -t 30 -u "${HOLD[0]}" line || fail "holder did not open $1"
	[[ $line == open* ]] || fail "holder: $line"
	echo "read 0 4096" >&"${HOLD[1]}"
	read -r -t 30 -u "${HOLD[0]}" line || fail "holder read timed out"
	[[ $line == ok* ]] || fail "holder read: $line"
}
stop_holder() {
	echo quit >&"${HOLD[1]}"
	wait "$HOLDER_PID" 2>/dev/null || true
}

# ---- GCS, autostarted daemon, background mount ----------------------------------------------------
step "GCS: a background mount that starts its own daemon"
G=$(uniq_bucket miso-gcs)
mkdata "$D/a.bin" $((3 * MiB + 5))
mkdata "$D/b.bin" 70000
gcs_put "$G" "m/a.bin" "$D/a.bin"
gcs_put "$G" "m/b.bin" "$D/b.bin"
mnt_cache gcs
MPG=$(mnt_point gcs)
hoardfs_mount --bg "$MPG" --cache-dir "$CACHE" --socket "$SOCK" \
	--endpoint "$HOARDFS_GCS_ENDPOINT" --anonymous "gs://$G" "$MPG"
GPID=$MOUNT_PID
[ -n "$(daemon_pid "$CACHE")" ] || fail "the mount did not start a daemon"
[ "$(daemon_pid "$CACHE")" != "$GPID" ] || fail "daemon and mount are one process"
n=$(check_fds "$GPID" "$CACHE")
[ "$n" = 0 ] || fail "the mount holds $n object files before opening any"
start_holder "$MPG/m/a.bin"
mt cmp "$MPG/m/b.bin" "$D/b.bin" || fail "cmp b.bin"
n=$(check_fds "$GPID" "$CACHE")
[ "$n" -ge 1 ] || fail "the mount holds no object file while a.bin is open"
step "GCS: mount $GPID holds $n object file(s) with a.bin open, nothing else of $CACHE"
stop_holder
# the daemon's own process does hold LMDB: the check above is not vacuous
ls -l /proc/"$(daemon_pid "$CACHE")"/fd | grep -q "$(realpath "$CACHE")/meta" ||
	fail "the daemon holds no LMDB descriptor (is the cache layout as assumed?)"

# ---- S3, daemon started by the test with a secret; the mount without credentials -------------------
step "S3: daemon with a distinctive secret; mount without AWS_* variables, under strace"
B=$(uniq_bucket miso)
s3_mkbucket "$B"
mkdata "$D/w.bin" $((5 * MiB + 3))
s3_put "$B" "weights/shard-0001.bin" "$D/w.bin"
s3_put "$B" "config.json" "$D/b.bin"
SECRET="hoardfs-secret-$RANDOM$RANDOM$RANDOM"
TOKEN="hoardfs-session-token-$RANDOM$RANDOM$RANDOM"
mnt_cache s3
AWS_SECRET_ACCESS_KEY=$SECRET AWS_SESSION_TOKEN=$TOKEN start_daemon
MP=$(mnt_point s3)
TRACE="$TEST_TMP/strace.out"
# (LeakSanitizer cannot work under ptrace: no leak check for the traced mount)
cat >"$TEST_TMP/hoardfs-traced" <<EOF
#!/bin/sh
ASAN_OPTIONS="\$ASAN_OPTIONS:detect_leaks=0" exec env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN -u AWS_REGION \\
	strace -f -qq -o "$TRACE" -e trace=recvmsg,recvfrom,read -e signal=none -xx -s 4194304 \\
	"$HOARDFS_BIN" "\$@"
EOF
chmod +x "$TEST_TMP/hoardfs-traced"
HOARDFS_BIN="$TEST_TMP/hoardfs-traced" hoardfs_mount "$MP" --socket "$SOCK" --no-autostart \
	--endpoint "$HOARDFS_S3_ENDPOINT" "s3://$B" "$MP"
MPID=$(_mount_pid_of "$MP")
[ -n "$MPID" ] || fail "no hoardfs process for $MP"
on_exit _kill_prog "$MPID" hoardfs # MOUNT_PID is strace's
! tr '\0' '\n' <"/proc/$MPID/environ" | grep -E '^AWS_(ACCESS|SECRET|SESSION)' ||
	fail "the mount's environment has credentials (above)"
mt find "$MP" -type f >/dev/null || fail "find"
start_holder "$MP/weights/shard-0001.bin"
mt cmp "$MP/weights/shard-0001.bin" "$D/w.bin" || fail "cmp shard"
mt cmp "$MP/config.json" "$D/b.bin" || fail "cmp config"
n=$(check_fds "$MPID" "$CACHE")
[ "$n" -ge 1 ] || fail "the mount holds no object file while a file is open"
step "S3: mount $MPID holds $n object file(s), nothing else of $CACHE"

# the ring: a memfd the mount maps (its descriptor is closed), read through map_files
ring_hits=0
while read -r range; do
	[ "$(head -c 4096 "/proc/$MPID/map_files/$range" | wc -c)" = 4096 ] ||
		fail "cannot read the ring mapping $range"
	if grep -aqF -e "$SECRET" -e "$TOKEN" "/proc/$MPID/map_files/$range"; then
		fail "the ring holds a credential"
	fi
	ring_hits=$((ring_hits + 1))
done < <(awk '/\/memfd:hoardfs-ring/ { print $1 }' "/proc/$MPID/maps")
[ "$ring_hits" -ge 1 ] || fail "found no ring mapping in the mount"
stop_holder

hex() {
	printf '%s' "$1" | od -An -v -tx1 | tr -d ' \n' | sed 's/../\\x&/g'
}
[ -s "$TRACE" ] || fail "strace recorded nothing"
grep -qF "$(hex shard-0001.bin)" "$TRACE" ||
	fail "the recording does not hold a listed name: it records nothing useful"
for s in "$SECRET" "$TOKEN" S3RVER; do
	if grep -qF "$(hex "$s")" "$TRACE" || grep -qF "$s" "$TRACE"; then
		fail "the mount received '$s' from the daemon"
	fi
done
msgs=$(grep -c 'recvmsg(' "$TRACE" || true)
step "strace: $msgs recvmsg calls of the mount, no secret, token or key id in any"
mnt_finish
