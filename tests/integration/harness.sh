#!/usr/bin/env bash
# harness.sh: tests the test harness itself, with curl only (no hoardfs code), so that the other
# integration tests' verdicts can be trusted: lib.sh's cleanup registry (reverse order, runs on
# failure and on SIGTERM), bounded waits, upload helpers with awkward names, start.sh/stop.sh, and
# every fault action, counter and filter of tests/servers/proxy.js, plus its streaming speed.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

expect_eq() {
	[ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"
}

step "on_exit: reverse order, runs after a failure, tmp dir removed"
inner="$TEST_TMP/inner.sh"
cat >"$inner" <<'EOF'
source "$HOARDFS_SRC/tests/integration/lib.sh"
echo "$TEST_TMP" >"$RECORD.tmp"
on_exit sh -c 'echo first >>"$1"' _ "$RECORD"
on_exit sh -c 'echo "second arg" >>"$1"' _ "$RECORD"
x=$(on_exit sh -c 'echo from-subshell >>"$1"' _ "$RECORD")
if [ "${INNER_MODE:-}" = sleep ]; then
	sleep 30 &
	on_exit kill "$!"
	wait "$!" # a trapped signal interrupts `wait` (not a foreground program)
fi
fail "on purpose"
EOF
rc=0
RECORD="$TEST_TMP/record" bash "$inner" >/dev/null 2>&1 || rc=$?
expect_eq "status of a failing test" "$rc" 1
expect_eq "cleanups run, last first" "$(paste -sd, "$TEST_TMP/record")" \
	"from-subshell,second arg,first"
[ ! -e "$(cat "$TEST_TMP/record.tmp")" ] || fail "the inner test's TEST_TMP was not removed"

step "on_exit: runs on SIGTERM"
rm -f "$TEST_TMP/record"
INNER_MODE=sleep RECORD="$TEST_TMP/record" bash "$inner" >/dev/null 2>&1 &
pid=$!
on_exit _hoardfs_kill "$pid"
wait_for 10 test -s "$TEST_TMP/record.tmp" || fail "inner test did not start"
sleep 0.3
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
expect_eq "status after SIGTERM" "$rc" 143
expect_eq "cleanups run after SIGTERM" "$(paste -sd, "$TEST_TMP/record")" \
	"from-subshell,second arg,first"

step "bounded waits"
t0=${EPOCHREALTIME/./}
rc=0
with_timeout 1 sleep 20 || rc=$?
expect_eq "with_timeout status" "$rc" 124
if wait_for 1 false 2>/dev/null; then
	fail "wait_for succeeded on false"
fi
wait_for 5 true || fail "wait_for failed on true"
ms=$(((${EPOCHREALTIME/./} - t0) / 1000))
[ "$ms" -lt 5000 ] || fail "bounded waits took ${ms} ms"

step "uniq_bucket"
b1=$(uniq_bucket "Harness_Test")
b2=$(uniq_bucket "Harness_Test")
[ "$b1" != "$b2" ] || fail "uniq_bucket repeated $b1"
[[ $b1 =~ ^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$ ]] || fail "bad bucket name $b1"

step "s3 and GCS helpers with awkward names"
b=$b1
names=("plain" "dir/with space" "utf8/grüße ✓" "odd/+plus%percent&amp=eq")
mkdata "$TEST_TMP/small" 1000
s3_mkbucket "$b"
for n in "${names[@]}"; do
	s3_put "$b" "$n" "$TEST_TMP/small"
	gcs_put "$b" "$n" "$TEST_TMP/small"
done
got=$(curl -sS --fail "$HOARDFS_GCS_ENDPOINT/storage/v1/b/$b/o" |
	json_get 'j.items.map((i) => i.name + "=" + i.size).sort().join("|")')
want=$(for n in "${names[@]}"; do echo "$n=1000"; done | LC_ALL=C sort | paste -sd'|')
got=$(echo "$got" | tr '|' '\n' | LC_ALL=C sort | paste -sd'|')
expect_eq "GCS names" "$got" "$want"
for n in "${names[@]}"; do
	_s3_curl -o "$TEST_TMP/back" "$HOARDFS_S3_ENDPOINT/$b/$(urlencode "$n" keep)" ||
		fail "S3 GET of '$n'"
	cmp -s "$TEST_TMP/small" "$TEST_TMP/back" || fail "S3 object '$n' differs"
done
gzip -c "$TEST_TMP/small" >"$TEST_TMP/small.gz"
gcs_put "$b" "gz/obj" "$TEST_TMP/small.gz" gzip
got=$(curl -sS --fail "$HOARDFS_GCS_ENDPOINT/storage/v1/b/$b/o/gz%2Fobj" |
	json_get j.contentEncoding)
expect_eq "GCS contentEncoding" "$got" gzip
curl -sS --fail -H 'Accept-Encoding: gzip' -o "$TEST_TMP/back" \
	"$HOARDFS_GCS_ENDPOINT/storage/v1/b/$b/o/gz%2Fobj?alt=media"
cmp -s "$TEST_TMP/small.gz" "$TEST_TMP/back" || fail "gzip object not served as stored"
gcs_rm "$b" "plain" || fail "gcs_rm"
code=$(curl -s -o /dev/null -w '%{http_code}' "$HOARDFS_GCS_ENDPOINT/storage/v1/b/$b/o/plain")
expect_eq "GCS status after gcs_rm" "$code" 404
gcs_rm "$b" "plain" || fail "gcs_rm of a missing object"
s3_rm "$b" "plain" || fail "s3_rm"
code=$(_s3_curl -o /dev/null -w '%{http_code}' "$HOARDFS_S3_ENDPOINT/$b/plain" 2>/dev/null || true)
expect_eq "S3 status after s3_rm" "$code" 404

step "proxy: streaming and counting"
BIG=$((64 * 1024 * 1024))
mkdata "$TEST_TMP/big" "$BIG"
s3_put "$b" "big" "$TEST_TMP/big"
P=$(start_proxy "$HOARDFS_S3_ENDPOINT")
speed=$(_s3_curl -o "$TEST_TMP/back" -w '%{speed_download}' "$P/$b/big")
cmp -s "$TEST_TMP/big" "$TEST_TMP/back" || fail "object differs through the proxy"
step "proxy streamed $((${speed%.*} / 1000000)) MB/s"
[ "${speed%.*}" -ge $((40 * 1000 * 1000)) ] || fail "proxy too slow: $speed B/s"
_s3_curl -o /dev/null -r 10-19 "$P/$b/big?x=1"
_s3_curl -o /dev/null -I "$P/$b/big"
st=$(proxy_stats "$P")
expect_eq "requests" "$(json_get j.requests <<<"$st")" 3
expect_eq "gets" "$(json_get j.gets <<<"$st")" 2
expect_eq "heads" "$(json_get j.heads <<<"$st")" 1
expect_eq "bytes_out" "$(json_get j.bytes_out <<<"$st")" $((BIG + 10))
expect_eq "per path" "$(json_get "JSON.stringify(j.paths['/$b/big'])" <<<"$st")" \
	'{"requests":3,"bytes_out":67108874}'
expect_eq "range log" "$(json_get 'j.log.map((e) => String(e.range)).join(",")' <<<"$st")" \
	"null,bytes=10-19,null"
proxy_reset "$P"
expect_eq "requests after reset" "$(proxy_stats "$P" | json_get j.requests)" 0

step "proxy: status with Retry-After, times, method and match filters"
proxy_faults "$P" '[{"match": "/big", "method": "GET", "action": "status", "status": 503,
	"retry_after": 7, "times": 2}]'
h=$(_s3_curl -s -o /dev/null -D - "$P/$b/big" 2>/dev/null || true)
grep -q '^HTTP/1.1 503' <<<"$h" || fail "no 503: $h"
grep -qi '^Retry-After: 7' <<<"$h" || fail "no Retry-After: $h"
code=$(_s3_curl -o /dev/null -w '%{http_code}' -I "$P/$b/big")
expect_eq "HEAD not matched by a GET rule" "$code" 200
code=$(_s3_curl -o /dev/null -w '%{http_code}' "$P/$b/dir/with%20space")
expect_eq "other path not matched" "$code" 200
code=$(_s3_curl -o /dev/null -w '%{http_code}' -r 0-0 "$P/$b/big" 2>/dev/null || true)
expect_eq "second matching GET" "$code" 503
code=$(_s3_curl -o /dev/null -w '%{http_code}' -r 0-0 "$P/$b/big")
expect_eq "rule used up after times" "$code" 206
expect_eq "faults_applied" "$(proxy_stats "$P" | json_get j.faults_applied)" 2

step "proxy: close_after, delay, stall, bad_range, wrong_header"
proxy_faults "$P" '[{"match": "/big", "action": "close_after", "bytes": 12345, "times": 1}]'
rc=0
_s3_curl -o "$TEST_TMP/cut" "$P/$b/big" 2>/dev/null || rc=$?
expect_eq "curl status on a cut body" "$rc" 18
expect_eq "bytes before the cut" "$(stat -c %s "$TEST_TMP/cut")" 12345
cmp -s "$TEST_TMP/cut" <(head -c 12345 "$TEST_TMP/big") || fail "wrong bytes before the cut"

proxy_faults "$P" '[{"match": "/big", "action": "delay", "ms": 800, "times": 1}]'
t=$(_s3_curl -o /dev/null -r 0-0 -w '%{time_total}' "$P/$b/big")
awk -v t="$t" 'BEGIN { exit !(t >= 0.75) }' || fail "delay: answered after $t s"

proxy_faults "$P" '[{"match": "/big", "action": "stall", "times": 1}]'
rc=0
_s3_curl -o /dev/null --max-time 2 "$P/$b/big" 2>/dev/null || rc=$?
expect_eq "curl status on a stall" "$rc" 28

proxy_faults "$P" '[{"match": "/big", "action": "bad_range", "times": 1},
	{"match": "/big", "action": "bad_range", "value": "bytes 0-0/1", "times": 1}]'
h=$(_s3_curl -o /dev/null -D - -r 100-199 "$P/$b/big")
grep -qi "^Content-Range: bytes 101-200/$BIG" <<<"$h" || fail "bad_range shift: $h"
h=$(_s3_curl -o /dev/null -D - -r 100-199 "$P/$b/big")
grep -qi '^Content-Range: bytes 0-0/1' <<<"$h" || fail "bad_range value: $h"

proxy_faults "$P" '[{"match": "/big", "action": "wrong_header", "header": "ETag",
	"value": "\"abc\"", "times": 1}]'
h=$(_s3_curl -o /dev/null -D - -r 0-0 "$P/$b/big")
grep -qi '^ETag: "abc"' <<<"$h" || fail "wrong_header: $h"
expect_eq "one ETag only" "$(grep -ci '^ETag:' <<<"$h")" 1

if proxy_faults "$P" '[{"action": "explode"}]' 2>/dev/null; then
	fail "proxy accepted an unknown action"
fi
proxy_faults "$P" '[]'

step "start.sh / stop.sh on a private directory"
sdir="$TEST_TMP/servers"
on_exit bash "$HOARDFS_SRC/tests/servers/stop.sh" "$sdir"
with_timeout 240 bash "$HOARDFS_SRC/tests/servers/start.sh" "$sdir" >/dev/null ||
	fail "start.sh failed"
(
	source "$sdir/env"
	[ "$HOARDFS_SERVERS_DIR" = "$sdir" ] || fail "HOARDFS_SERVERS_DIR"
	[ "$HOARDFS_S3_ENDPOINT" = "http://127.0.0.1:$HOARDFS_S3_PORT" ] || fail "S3 endpoint"
	[ "$HOARDFS_GCS_PORT" != "$HOARDFS_S3_PORT" ] || fail "ports"
	curl -sS --fail --max-time 10 -o /dev/null "$HOARDFS_GCS_ENDPOINT/storage/v1/b/x-$$/o" ||
		fail "private GCS emulator does not answer"
)
mapfile -t spids <"$sdir/pids"
[ "${#spids[@]}" -ge 2 ] || fail "start.sh recorded ${#spids[@]} pids"
for pid in "${spids[@]}"; do
	kill -0 "$pid" || fail "server $pid is not running"
done
with_timeout 60 bash "$HOARDFS_SRC/tests/servers/stop.sh" "$sdir" || fail "stop.sh failed"
for pid in "${spids[@]}"; do
	if kill -0 "$pid" 2>/dev/null; then
		fail "server $pid survived stop.sh"
	fi
done
[ ! -e "$sdir/env" ] || fail "stop.sh left $sdir/env"
