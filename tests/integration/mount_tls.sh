#!/usr/bin/env bash
# mount_tls.sh: an HTTPS endpoint with a private CA (a TLS proxy in front of s3rver, certificates
# made here):
#   1. a daemon given the CA (--ca-file) serves a mount byte-exact (sha256), cold and warm;
#   2. a mount that starts its own daemon passes its --ca-file on: same result;
#   3. a daemon trusting another CA refuses the endpoint: the mount's reads fail at once with an
#      error (no hang, no retry storm), and the daemon's log names the certificate problem;
#   4. a --ca-file that does not exist is refused before anything starts (daemon and mount).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_mount.sh"

T=$(tmpdir tls)
D=$(tmpdir data)
B=$(uniq_bucket tls)

step "making two CAs and a certificate for 127.0.0.1 signed by the first"
mkca() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/$1.key" \
		-out "$T/$1.crt" -days 1 -subj "/CN=hoardfs test $1" 2>/dev/null || fail "making CA $1"
}
mkca ca
mkca other
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
	>"$T/ext"
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/srv.key" \
	-out "$T/srv.csr" -subj /CN=127.0.0.1 2>/dev/null || fail "making the server key"
openssl x509 -req -in "$T/srv.csr" -CA "$T/ca.crt" -CAkey "$T/ca.key" -CAcreateserial \
	-out "$T/srv.crt" -days 1 -extfile "$T/ext" 2>/dev/null || fail "signing the server cert"

s3_mkbucket "$B"
mkdata "$D/w.bin" $((20 * MiB + 77))
mkdata "$D/s.txt" 1000
s3_put "$B" m/w.bin "$D/w.bin"
s3_put "$B" m/s.txt "$D/s.txt"
P=$(start_proxy "$HOARDFS_S3_ENDPOINT" "$T/srv.crt" "$T/srv.key")
[[ $P == https://* ]] || fail "the proxy is not serving HTTPS: $P"
curl -sS --fail --cacert "$T/ca.crt" -o /dev/null "$P/__proxy/stats" ||
	fail "the TLS proxy does not answer with the CA"

step "1. a daemon with --ca-file serves the mount byte-exact"
mnt_cache good
start_daemon --ca-file "$T/ca.crt"
MP=$(mnt_point good)
hoardfs_mount "$MP" --socket "$SOCK" --no-autostart --endpoint "$P" "s3://$B" "$MP"
for k in 1 2; do # cold, then warm
	mt cmp "$MP/m/w.bin" "$D/w.bin" || fail "read $k of w.bin over HTTPS"
	mt cmp "$MP/m/s.txt" "$D/s.txt" || fail "read $k of s.txt over HTTPS"
done
unmount "$MP"
stop_daemon "$CACHE"

step "2. a mount that starts its daemon passes --ca-file on"
mnt_cache auto
MP=$(mnt_point auto)
hoardfs_mount "$MP" --socket "$SOCK" --cache-dir "$CACHE" --ca-file "$T/ca.crt" --endpoint "$P" \
	"s3://$B" "$MP"
mt cmp "$MP/m/w.bin" "$D/w.bin" || fail "w.bin through an autostarted daemon"
tr '\0' ' ' <"/proc/$(daemon_pid "$CACHE")/cmdline" | grep -qF -- "--ca-file $T/ca.crt" ||
	fail "the autostarted daemon was not given --ca-file"
unmount "$MP"
stop_daemon "$CACHE"

step "3. a daemon trusting another CA refuses the endpoint, with an error, at once"
mnt_cache bad
start_daemon --ca-file "$T/other.crt"
MP=$(mnt_point bad)
rc=0
"$HOARDFS_BIN" --foreground --socket "$SOCK" --no-autostart --endpoint "$P" "s3://$B" "$MP" \
	</dev/null >"$TEST_TMP/bad.log" 2>&1 &
BADPID=$!
on_exit _mnt_cleanup "$MP" "$BADPID"
# Either the mount refuses to start (its registration checks the bucket), or it mounts and
# every read fails: both within a bounded time, never a hang.
if wait_for 30 _mounted_or_dead "$MP" "$BADPID" && mounted "$MP"; then
	t0=$SECONDS
	mt cat "$MP/m/s.txt" >/dev/null 2>&1 && fail "a read over an untrusted certificate succeeded"
	[ $((SECONDS - t0)) -lt 25 ] || fail "the failing read took $((SECONDS - t0)) s"
	unmount "$MP"
else
	wait "$BADPID" || rc=$?
	[ "$rc" != 0 ] || fail "the mount exited 0 without mounting"
fi
grep -iE "certificate|SSL|verif" "$CACHE/cached.log" "$TEST_TMP/bad.log" | head -3
grep -qiE "certificate|SSL|verif" "$CACHE/cached.log" "$TEST_TMP/bad.log" ||
	fail "no log line names the certificate problem: $(tail -5 "$CACHE/cached.log")"
stop_daemon "$CACHE"

step "4. a --ca-file that does not exist is refused at start"
expect_fail() {
	local out rc=0
	out=$(timeout 20 "$@" 2>&1 </dev/null) || rc=$?
	[ "$rc" != 0 ] && [ "$rc" != 124 ] || fail "$* exited $rc"
	grep -q "ca-file" <<<"$out" || fail "$*: unclear error: $out"
}
expect_fail "$CACHED_BIN" --foreground --cache-dir "$(tmpdir c4)" --ca-file "$T/missing.pem"
expect_fail "$CACHED_BIN" --foreground --cache-dir "$(tmpdir c5)" --ca-file relative.pem
MP4=$(mnt_point missing)
expect_fail "$HOARDFS_BIN" --foreground --ca-file "$T/missing.pem" "s3://$B" "$MP4"
mounted "$MP4" && fail "a mount with a missing --ca-file mounted"

mnt_finish
echo PASS
