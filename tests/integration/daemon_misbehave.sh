#!/usr/bin/env bash
# daemon_misbehave.sh: misbehaving or hostile mounts do not disturb hoardfs-cached or the mounts
# that behave. Each scenario runs next to a well-behaved reader of a cold object, whose bytes must
# be the source's (sha256) within a bounded time (printed):
#   1. three clients that vanish mid-request (tool_client abandon: FETCHes for all of an object,
#      then exit) while a reader reads that same object;
#   2. a client that stops draining its completions and keeps submitting (tool_client stall):
#      the daemon must drop it (bounded backlog, never waiting on it); the time it took is printed;
#   3. a hostile client (tool_client hostile): unknown ops, handles never opened, ranges past the
#      end, zero and huge lengths each get an ERROR completion with -EINVAL/-EBADF, valid
#      requests keep working, and a flood of invalid entries gets it dropped; two clients that
#      scribble impossible indices into the shared ring header (the submission tail, the
#      completion head) are dropped;
#   4. malformed socket messages (tool_client garbage): wrong magic or length, runts, empty and
#      oversized packets, unknown types, garbage REGISTERs, descriptors attached where none are
#      called for (closed unread: checked with a pipe's EOF), a peer that never reads replies;
#   5. randomized fuzzing (tool_client fuzz, seed printed; FUZZ_SEED=N and FUZZ_COUNT=N replay
#      or lengthen it): messages mutated from valid ones and random ring entries, each answered
#      exactly once or the connection dropped, nothing attached kept;
#   6. a REGISTER whose mount point holds a newline, a forged log line and an escape sequence:
#      the daemon logs it on one line with \xNN escapes, no forged line appears.
# Afterwards the daemon is alive, holds no more descriptors than before (TCP connections of its
# HTTP pools aside), and exits 0 on SIGTERM without a sanitizer report.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_daemon.sh"

MiB=$((1024 * 1024))
READ_LIMIT=60 # seconds a well-behaved read of 48 MiB may take here at worst

b=$(uniq_bucket misbehave)
s3_mkbucket "$b"
step "uploading objects"
declare -A SHA
for k in a r1 r2 r3 s; do
	if [ "$k" = a ]; then
		mkdata_fast "$TEST_TMP/$k" $((80 * MiB)) # > 64 MiB: the FETCH length cap is distinct
	else
		mkdata_fast "$TEST_TMP/$k" $((48 * MiB))
	fi
	s3_put_large "$b" "$k" "$TEST_TMP/$k"
	SHA[$k]=$(sha256 "$TEST_TMP/$k")
done
P=$(start_proxy "$HOARDFS_S3_ENDPOINT")
daemon_start "$TEST_TMP/cache"
URL="s3://$b"

# good_reader KEY TAG: a background cat of KEY; result checked by good_wait TAG.
good_reader() {
	(
		t0=${EPOCHREALTIME/./}
		got=$(CLIENT_TIMEOUT=$READ_LIMIT client --endpoint "$P" "$URL" cat "$1" | sha256) ||
			{ echo "failed" >"$TEST_TMP/good.$2"; exit 0; }
		t1=${EPOCHREALTIME/./}
		echo "$got $(((t1 - t0) / 1000))" >"$TEST_TMP/good.$2"
	) &
	GOOD_PID=$!
	GOOD_KEY=$1
}

# good_wait TAG: the reader started last must have read the source's bytes.
good_wait() {
	local sha ms
	wait "$GOOD_PID" || true
	read -r sha ms <"$TEST_TMP/good.$1" || true
	[ "$sha" = "${SHA[$GOOD_KEY]}" ] || fail "$1: the well-behaved reader of $GOOD_KEY failed ($sha)"
	echo "MEASURED: $1: well-behaved reader of $GOOD_KEY ($(($(stat -c %s "$TEST_TMP/$GOOD_KEY") / MiB)) MiB): $ms ms"
	daemon_alive || fail "the daemon died during $1"
}

# nontcp_fds: the daemon's descriptors, except TCP sockets (its HTTP connection pools vary) and
# its object files (kept open while the object stays in its table).
nontcp_fds() {
	local tcp
	tcp=$(awk 'NR > 1 { print $10 }' /proc/net/tcp /proc/net/tcp6 2>/dev/null | sort -u)
	find "/proc/$DAEMON_PID/fd" -mindepth 1 -printf '%l\n' 2>/dev/null |
		awk -v tcp="$tcp" -v objs="$DAEMON_DIR/objects/" '
			BEGIN { n = split(tcp, t, "\n"); for (i = 1; i <= n; i++) T["socket:[" t[i] "]"] = 1 }
			!($0 in T) && index($0, objs) != 1 { c++ } END { print c + 0 }'
}

step "baseline: one read, so that the bucket and its connections exist"
good_reader a warmup
good_wait warmup
FDS0=$(nontcp_fds)

step "1: three clients vanish mid-request while another reads the same object"
pids=()
for i in 1 2 3; do
	client --endpoint "$P" "$URL" abandon r1 >/dev/null 2>&1 &
	pids+=($!)
done
good_reader r1 abandon
good_wait abandon
for p in "${pids[@]}"; do
	wait "$p" || fail "an abandoning client failed"
done

step "2: a client that stops draining its completions, next to a reader"
client --endpoint "$P" --timeout-ms 30000 "$URL" stall s --req-size 64K >"$TEST_TMP/stall.out" \
	2>"$TEST_TMP/stall.err" &
STALL=$!
good_reader r2 stall
good_wait stall
wait "$STALL" || {
	cat "$TEST_TMP/stall.out" "$TEST_TMP/stall.err" >&2
	fail "the stalled client was not disconnected"
}
grep -q '^disconnected after' "$TEST_TMP/stall.out" || fail "stall: $(cat "$TEST_TMP/stall.out")"
echo "MEASURED: stalled client: $(cat "$TEST_TMP/stall.out")"
grep -q 'stopped draining its completions' "$DAEMON_LOG" ||
	fail "the daemon did not log why it dropped the stalled client"

step "3 and 4: hostile ring entries, scribbled ring headers, malformed messages, next to a reader"
good_reader r3 hostile
pids=()
client --endpoint "$P" "$URL" hostile a >"$TEST_TMP/hostile.out" 2>&1 &
pids+=($!)
client --endpoint "$P" "$URL" scribble a sq-tail >"$TEST_TMP/scribble-sq.out" 2>&1 &
pids+=($!)
client --endpoint "$P" "$URL" scribble a cq-head >"$TEST_TMP/scribble-cq.out" 2>&1 &
pids+=($!)
client --endpoint "$P" "$URL" garbage a >"$TEST_TMP/garbage.out" 2>&1 &
pids+=($!)
names=(hostile scribble-sq scribble-cq garbage)
rcs=()
for i in "${!pids[@]}"; do
	rc=0
	wait "${pids[$i]}" || rc=$?
	rcs+=("$rc")
done
good_wait hostile
for i in "${!names[@]}"; do
	echo "== ${names[$i]} (exit ${rcs[$i]})"
	cat "$TEST_TMP/${names[$i]}.out"
done
for i in "${!names[@]}"; do
	[ "${rcs[$i]}" = 0 ] || fail "${names[$i]}: a check failed (exit ${rcs[$i]}, output above)"
	grep -q '^FAIL' "$TEST_TMP/${names[$i]}.out" && fail "${names[$i]}: a check failed"
done
[ "$(grep -c '^ok:' "$TEST_TMP/hostile.out")" -ge 20 ] || fail "hostile: too few checks ran"
[ "$(grep -c '^ok:' "$TEST_TMP/garbage.out")" -ge 35 ] || fail "garbage: too few checks ran"
grep -q 'corrupted its ring' "$DAEMON_LOG" || fail "the daemon did not log the corrupt rings"
grep -q 'too many invalid ring entries' "$DAEMON_LOG" ||
	fail "the daemon did not log the flood of invalid entries"

step "5: randomized messages and ring entries (fuzzing), next to a reader"
FUZZ_SEED=${FUZZ_SEED:-$(((RANDOM << 15) | RANDOM))}
echo "fuzz seed $FUZZ_SEED (replay: FUZZ_SEED=$FUZZ_SEED ctest -R integ.daemon_misbehave)"
good_reader r1 fuzz
rc=0
client --endpoint "$P" --timeout-ms 30000 "$URL" fuzz a "$FUZZ_SEED" "${FUZZ_COUNT:-3000}" \
	>"$TEST_TMP/fuzz.out" 2>&1 || rc=$?
good_wait fuzz
grep -v '^ok:' "$TEST_TMP/fuzz.out" | head -20
[ "$rc" = 0 ] || { cat "$TEST_TMP/fuzz.out"; fail "fuzz: a check failed (seed $FUZZ_SEED)"; }
[ "$(grep -c '^ok:' "$TEST_TMP/fuzz.out")" -ge 7 ] || fail "fuzz: too few checks ran"

step "6: a peer's strings cannot forge log lines"
# REGISTER's mount point goes into the daemon's log; a newline in it must not start a line of
# its own (nor ESC repaint a terminal): control characters are logged as \xNN.
FORGED="2026-01-01T00:00:00.000Z hoardfs-cached[1] error: FORGED by a peer"
client --endpoint "$P" --mountpoint $'/mnt/x\n'"$FORGED"$'\e[2J' "$URL" stat a >/dev/null ||
	fail "stat through a client with a strange mount point"
grep -q '^2026-01-01T00:00:00\.000Z hoardfs-cached\[1\] error: FORGED' "$DAEMON_LOG" &&
	fail "a peer forged a log line: $(grep -F "FORGED" "$DAEMON_LOG")"
grep -qF '/mnt/x\x0a2026-01-01T00:00:00.000Z hoardfs-cached[1] error: FORGED by a peer\x1b[2J' \
	"$DAEMON_LOG" || fail "the registration line is not logged escaped: $(grep -F FORGED "$DAEMON_LOG")"

step "afterwards: alive, serving, no descriptor kept"
daemon_alive || fail "the daemon died"
good_reader a after
good_wait after
# Connections are released asynchronously: allow a moment to get back to the baseline.
fds_back() { [ "$(nontcp_fds)" -le "$FDS0" ]; }
wait_for 10 fds_back || fail "the daemon holds $(nontcp_fds) descriptors, $FDS0 before"
daemon_stats
daemon_stop
