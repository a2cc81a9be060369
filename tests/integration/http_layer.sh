#!/usr/bin/env bash
# http_layer.sh: the HTTP layer's retry and response checks, end to end through the store API
# (tool_storecli) and a private fault-injecting proxy (tests/servers/proxy.js) in front of s3rver
# and the GCS emulator:
#   503 twice then success (retried; Retry-After honoured), a connection closed mid-body (retried,
#   output exact; when it never recovers: EIO and nothing passed on), 5xx forever (EIO after
#   --attempts), 404 -> ENOENT / ESTALE when pinned, 403 -> EACCES (not retried), a stalled
#   server -> ETIMEDOUT in bounded time, a wrong Content-Range -> EPROTO with nothing written, a
#   response for another version (ETag, x-goog-generation) -> ESTALE.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CLI=$(tool storecli)
OUT="$TEST_TMP/out"
ERR="$TEST_TMP/err"

b=$(uniq_bucket http)
s3_mkbucket "$b"
SIZE=$((3 * 1024 * 1024 + 123))
mkdata "$TEST_TMP/src" "$SIZE"
SRC_SHA=$(sha_of "$TEST_TMP/src")
s3_put "$b" "data/blob" "$TEST_TMP/src"
URL="s3://$b/data/blob"
P=$(start_proxy "$HOARDFS_S3_ENDPOINT")

# run ARGS...: the CLI through the proxy with --stats, bounded; stdout in $OUT, stderr in $ERR.
run() {
	timeout -k 5 60 "$CLI" --endpoint "$P" --stats "$@" >"$OUT" 2>"$ERR"
}

# must MSG ARGS...: run, and fail the test with MSG and the CLI's stderr if it fails.
must() {
	local msg=$1
	shift
	if ! run "$@"; then
		cat "$ERR" >&2
		fail "$msg"
	fi
}

# counter NAME: a --stats counter from the last run.
counter() {
	sed -n "s/^$1=//p" "$ERR"
}

# pstat EXPR: a value from the proxy's stats (j is the JSON).
pstat() {
	proxy_stats "$P" | json_get "$1"
}

# expect_eq WHAT GOT WANT
expect_eq() {
	[ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"
}

# elapsed_ms T0: milliseconds since T0 (an $EPOCHREALTIME value).
elapsed_ms() {
	local now=${EPOCHREALTIME/./} t0=${1/./}
	echo $(((now - t0) / 1000))
}

step "baseline: stat and a chunked cat through the proxy"
must "stat" stat "$URL"
expect_eq "size" "$(sed -n 's/^size=//p' "$OUT")" "$SIZE"
VERSION=$(sed -n 's/^version=//p' "$OUT")
[ -n "$VERSION" ] || fail "stat printed no version"
proxy_reset "$P"
must "cat" cat "$URL" --chunk 1M
expect_eq "cat output" "$(sha_of "$OUT")" "$SRC_SHA"
expect_eq "GETs seen by the proxy" "$(pstat j.gets)" 4
expect_eq "bytes the proxy sent" "$(pstat j.bytes_out)" "$SIZE"
expect_eq "ranges asked for" \
	"$(pstat 'j.log.filter((e) => e.method === "GET").map((e) => e.range).join(" ")')" \
	"bytes=0-1048575 bytes=1048576-2097151 bytes=2097152-3145727 bytes=3145728-3145850"
expect_eq "retries" "$(counter retries)" 0
expect_eq "bytes_in" "$(counter bytes_in)" "$SIZE"

step "503 twice, then success: retried, bytes exact"
proxy_reset "$P"
proxy_faults "$P" '[{"match": "data/blob", "method": "GET", "action": "status", "status": 503,
	"times": 2}]'
must "read after two 503s" get "$URL" 0 "$SIZE" --out "$TEST_TMP/o503"
expect_eq "output after 503s" "$(sha_of "$TEST_TMP/o503")" "$SRC_SHA"
expect_eq "retries" "$(counter retries)" 2
expect_eq "faults applied" "$(pstat j.faults_applied)" 2
expect_eq "GETs seen by the proxy" "$(pstat j.gets)" 3

step "503 with Retry-After: 1 waits about a second"
proxy_reset "$P"
proxy_faults "$P" '[{"match": "data/blob", "method": "GET", "action": "status", "status": 503,
	"retry_after": 1, "times": 1}]'
t0=$EPOCHREALTIME
must "read after a 503 with Retry-After" get "$URL" 0 1000 --version "$VERSION" --size "$SIZE" \
	--out "$TEST_TMP/ora"
ms=$(elapsed_ms "$t0")
[ "$ms" -ge 950 ] || fail "retried after ${ms} ms despite Retry-After: 1"
head -c 1000 "$TEST_TMP/src" | cmp -s - "$TEST_TMP/ora" || fail "wrong bytes after Retry-After"
expect_eq "retries" "$(counter retries)" 1

step "connection closed mid-body: retried, output exact"
proxy_reset "$P"
proxy_faults "$P" '[{"match": "data/blob", "method": "GET", "action": "close_after",
	"bytes": 100000, "times": 1}]'
must "read after a cut connection" get "$URL" 0 "$SIZE" --out "$TEST_TMP/ocut"
expect_eq "output after a cut" "$(sha_of "$TEST_TMP/ocut")" "$SRC_SHA"
expect_eq "retries" "$(counter retries)" 1
# http.h: bytes_in counts every 2xx body byte received, the cut attempt's too.
expect_eq "bytes_in after a cut" "$(counter bytes_in)" $((SIZE + 100000))
expect_eq "bytes the proxy sent" "$(pstat j.bytes_out)" $((SIZE + 100000))

proxy_reset "$P"
proxy_faults "$P" '[{"match": "data/blob", "method": "GET", "action": "close_after",
	"bytes": 500000, "times": 2}]'
must "cat after two cut connections" cat "$URL" --chunk 1M
expect_eq "cat output after cuts" "$(sha_of "$OUT")" "$SRC_SHA"
expect_eq "retries" "$(counter retries)" 2

step "cut on every attempt: EIO after --attempts, no short data passed on"
proxy_reset "$P"
proxy_faults "$P" '[{"match": "data/blob", "method": "GET", "action": "close_after",
	"bytes": 100000}]'
expect_error EIO 60 "$CLI" --endpoint "$P" --attempts 3 cat "$URL" --chunk 1M
[ ! -s "$TEST_TMP/last.out" ] ||
	fail "a failed read passed $(stat -c %s "$TEST_TMP/last.out") bytes on"
expect_eq "GETs seen by the proxy" "$(pstat j.gets)" 3

step "503 on every attempt: EIO after --attempts"
proxy_reset "$P"
proxy_faults "$P" '[{"match": "data/blob", "method": "GET", "action": "status", "status": 503}]'
expect_error EIO 60 "$CLI" --endpoint "$P" --attempts 3 get "$URL" 0 10 --version "$VERSION" \
	--size "$SIZE" --out "$TEST_TMP/o"
expect_eq "GETs seen by the proxy" "$(pstat j.gets)" 3

step "404 -> ENOENT (unpinned stat), ESTALE (pinned read), not retried"
proxy_reset "$P"
expect_error ENOENT 60 "$CLI" --endpoint "$P" stat "s3://$b/data/missing"
expect_error ESTALE 60 "$CLI" --endpoint "$P" get "s3://$b/data/missing" 0 10 \
	--version "$VERSION" --size "$SIZE" --out "$TEST_TMP/o"
proxy_faults "$P" '[{"match": "data/blob", "method": "GET", "action": "status", "status": 404}]'
expect_error ESTALE 60 "$CLI" --endpoint "$P" get "$URL" 0 10 --out "$TEST_TMP/o"
expect_eq "GETs seen by the proxy" "$(pstat j.gets)" 2

step "403 -> EACCES, not retried"
proxy_reset "$P"
proxy_faults "$P" '[{"match": "data/blob", "action": "status", "status": 403}]'
expect_error EACCES 60 "$CLI" --endpoint "$P" stat "$URL"
expect_error EACCES 60 "$CLI" --endpoint "$P" get "$URL" 0 10 --version "$VERSION" \
	--size "$SIZE" --out "$TEST_TMP/o"
expect_eq "requests seen by the proxy" "$(pstat j.requests)" 2
proxy_reset "$P"
expect_error EACCES 60 env AWS_ACCESS_KEY_ID=NOSUCHKEY "$CLI" --endpoint "$P" stat "$URL"

step "stalled server -> ETIMEDOUT in bounded time"
proxy_reset "$P"
proxy_faults "$P" '[{"action": "stall"}]'
t0=$EPOCHREALTIME
expect_error ETIMEDOUT 60 "$CLI" --endpoint "$P" --low-speed-time 1 --timeout-ms 3000 \
	--attempts 2 get "$URL" 0 1000 --version "$VERSION" --size "$SIZE" --out "$TEST_TMP/o"
ms=$(elapsed_ms "$t0")
[ "$ms" -lt 20000 ] || fail "a stalled read took ${ms} ms to time out"
expect_eq "GETs seen by the proxy" "$(pstat j.gets)" 2
expect_error ETIMEDOUT 60 "$CLI" --endpoint "$P" --low-speed-time 1 --timeout-ms 3000 \
	--attempts 1 stat "$URL"

step "wrong Content-Range -> EPROTO, nothing written, not retried"
proxy_reset "$P"
proxy_faults "$P" '[{"match": "data/blob", "method": "GET", "action": "bad_range"}]'
expect_error EPROTO 60 "$CLI" --endpoint "$P" get "$URL" 1000 5000 --version "$VERSION" \
	--size "$SIZE" --out "$TEST_TMP/obad"
expect_eq "bytes written to --out" "$(stat -c %s "$TEST_TMP/obad")" 0
expect_eq "GETs seen by the proxy" "$(pstat j.gets)" 1
proxy_reset "$P"
proxy_faults "$P" '[{"match": "data/blob", "method": "GET", "action": "bad_range",
	"value": "bytes 1000-5999/99999999"}]'
expect_error EPROTO 60 "$CLI" --endpoint "$P" get "$URL" 1000 5000 --version "$VERSION" \
	--size "$SIZE" --out "$TEST_TMP/obad"
expect_eq "bytes written to --out (wrong total)" "$(stat -c %s "$TEST_TMP/obad")" 0

step "a response for another version -> ESTALE, nothing written (S3 ETag)"
proxy_reset "$P"
proxy_faults "$P" '[{"match": "data/blob", "method": "GET", "action": "wrong_header",
	"header": "ETag", "value": "\"0123456789abcdef0123456789abcdef\""}]'
expect_error ESTALE 60 "$CLI" --endpoint "$P" get "$URL" 0 5000 --out "$TEST_TMP/oetag"
expect_eq "bytes written to --out" "$(stat -c %s "$TEST_TMP/oetag")" 0

step "a response for another version -> ESTALE, nothing written (GCS x-goog-generation)"
GSIZE=200000
mkdata "$TEST_TMP/gsrc" "$GSIZE"
gcs_put "$b" "data/gblob" "$TEST_TMP/gsrc"
G=$(start_proxy "$HOARDFS_GCS_ENDPOINT")
GURL="gs://$b/data/gblob"
if ! timeout -k 5 60 "$CLI" --endpoint "$G" get "$GURL" 0 "$GSIZE" --out "$TEST_TMP/og" \
	2>"$ERR"; then
	cat "$ERR" >&2
	fail "GCS read through the proxy"
fi
cmp -s "$TEST_TMP/gsrc" "$TEST_TMP/og" || fail "GCS read through the proxy: wrong bytes"
proxy_faults "$G" '[{"match": "alt=media", "method": "GET", "action": "wrong_header",
	"header": "x-goog-generation", "value": "1"}]'
expect_error ESTALE 60 "$CLI" --endpoint "$G" get "$GURL" 0 1000 --out "$TEST_TMP/ogen"
expect_eq "bytes written to --out" "$(stat -c %s "$TEST_TMP/ogen")" 0
expect_eq "faults applied" "$(proxy_stats "$G" | json_get j.faults_applied)" 1
