#!/usr/bin/env bash
# mount_trust.sh: a mount (and hoardfs-inspect) trusts only a daemon run by root or by its own
# user, behind a socket directory nobody else may write (issue 13, point 2: before, whoever
# listened on the socket path could serve a mount bytes and descriptors). A stand-in "daemon"
# runs as uid 65534 (nobody) and accepts connections; each case must be refused before any
# request, with one line naming the path and the owner found, and nothing mounted:
#   1. its socket in a directory owned by nobody (a squatted cache dir, like /tmp/fuser);
#   2. its socket in a root-owned directory that others may write (mode 0777);
#   3. its socket in a root-owned sticky directory (like /tmp): the directory passes, the peer
#      (SO_PEERCRED) does not;
#   4. the legacy command line (--data-dir DIR: socket DIR/cached.sock) on a squatted DIR;
#   5. hoardfs-inspect on the same sockets.
# Every other mount test is the positive case (root's daemon behind a 0700 directory).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_mount.sh"

command -v setpriv >/dev/null || fail "setpriv (util-linux) is not installed"
NOBODY=65534
# nobody must be able to run it (not a python under /root) and to reach the directories (/tmp)
PY=/usr/bin/python3
[ -x "$PY" ] || fail "$PY is missing"
# sqdir NAME: a fresh directory under /tmp, removed at exit
sqdir() {
	local d
	d=$(mktemp -d "/tmp/hfs-$1.XXXXXX") || fail "mktemp"
	on_exit rm -rf "$d"
	echo "$d"
}
B=$(uniq_bucket trust)

# squat DIR: a listener on DIR/cached.sock running as nobody (accepts, never answers); waits
# until the socket exists and registers its kill.
squat() {
	local dir=$1 pid
	setpriv --reuid "$NOBODY" --regid "$NOBODY" --clear-groups "$PY" -c '
import os, socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o777)
s.listen(16)
held = []
while True:
    c, _ = s.accept()
    held.append(c)
' "$dir/cached.sock" </dev/null >"$TEST_TMP/squat.log" 2>&1 &
	pid=$!
	on_exit _hoardfs_kill "$pid"
	wait_for 10 test -S "$dir/cached.sock" || fail "the squatter did not listen: $(cat "$TEST_TMP/squat.log")"
}

# refused WANT ARGS...: runs `hoardfs --foreground ARGS` and expects it to exit non-zero within
# 20 s with a line matching WANT, and no mount.
refused() {
	local want=$1 out rc=0 mp
	shift
	out=$(timeout -k 5 20 "$HOARDFS_BIN" --foreground "$@" 2>&1 </dev/null) || rc=$?
	[ "$rc" != 0 ] || fail "hoardfs $* exited 0"
	[ "$rc" != 124 ] || fail "hoardfs $* hung (killed after 20 s)"
	grep -qE "$want" <<<"$out" || fail "hoardfs $*: want a line matching '$want', got: $out"
	echo "refused: $(grep -E "$want" <<<"$out" | head -1)"
	for mp in "$@"; do
		[ -d "$mp" ] && mounted "$mp" && fail "$mp was mounted"
	done
	return 0
}

step "1. a socket in a directory that belongs to nobody"
D1=$(sqdir squat1)
chown "$NOBODY:$NOBODY" "$D1"
chmod 0700 "$D1"
squat "$D1"
MP=$(mnt_point m1)
refused "socket directory $D1 belongs to uid $NOBODY" --socket "$D1/cached.sock" --no-autostart \
	"s3://$B" "$MP"
# and without --no-autostart: the mount must not start a daemon over it either
refused "socket directory $D1 belongs to uid $NOBODY" --socket "$D1/cached.sock" "s3://$B" "$MP"

step "2. a socket in a root-owned directory that others may write"
D2=$(sqdir squat2)
chmod 0777 "$D2"
squat "$D2"
refused "socket directory $D2 .*mode 0777.* writable by others" --socket "$D2/cached.sock" \
	--no-autostart "s3://$B" "$MP"

step "3. a socket in a root-owned sticky directory: the peer runs as nobody"
D3=$(sqdir squat3)
chmod 1777 "$D3"
squat "$D3"
refused "listening on $D3/cached.sock \(pid [0-9]+\) runs as uid $NOBODY" \
	--socket "$D3/cached.sock" --no-autostart "s3://$B" "$MP"

step "4. the legacy command line on a squatted --data-dir"
refused "socket directory $D1 belongs to uid $NOBODY" --mount-point "$MP" --bucket-name "$B" \
	--data-dir "$D1"

step "5. hoardfs-inspect refuses them too"
for d in "$D1" "$D3"; do
	rc=0
	out=$(timeout -k 5 20 "$HOARDFS_BUILD/tools/hoardfs-inspect" --socket "$d/cached.sock" status \
		2>&1) || rc=$?
	[ "$rc" != 0 ] && [ "$rc" != 124 ] || fail "hoardfs-inspect on $d exited $rc"
	grep -qE "refusing to trust" <<<"$out" || fail "hoardfs-inspect on $d: $out"
done

mnt_finish
echo PASS
