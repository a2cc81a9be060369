#!/usr/bin/env bash
# gcs_auth.sh: the GCS store's credentials end to end, against tests/servers/fake_gcp_auth.js (a
# token endpoint that verifies RS256 assertions with the key's public half, a metadata server,
# and a pass-through to the GCS emulator that checks each request's bearer token):
#   - a service-account key (GOOGLE_APPLICATION_CREDENTIALS): a valid signed assertion with the
#     right claims, one token for a whole multi-page listing, sent on every request;
#   - a key the server does not know -> EACCES; --anonymous sends no token;
#   - gcloud application-default credentials (authorized_user refresh token), and the chain order;
#   - the metadata server via GCE_METADATA_HOST;
#   - token caching across threads, refresh before expiry, a retried 503 from the token endpoint;
#   - broken or missing key files -> ENOKEY with a message naming the file and no secret.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v openssl >/dev/null || fail "openssl is not installed"
command -v python3 >/dev/null || fail "python3 is not installed"
CLI=$(tool storecli)
AUTHTOOL=$(tool gcsauth)
D=$(tmpdir auth)
B=$(uniq_bucket gcs-auth)
export NO_GCE_CHECK=1 # never probe for a real metadata server
EMAIL=hoardfs-test@demo-hoardfs.iam.gserviceaccount.com
SCOPE=https://www.googleapis.com/auth/devstorage.read_only

# The shared fake server from the servers fixture, else a private one.
if [ -n "${HOARDFS_GCP_AUTH_ENDPOINT:-}" ]; then
	A=$HOARDFS_GCP_AUTH_ENDPOINT
else
	step "no shared fake_gcp_auth in $HOARDFS_TEST_ENV; starting a private one"
	node "$HOARDFS_SRC/tests/servers/fake_gcp_auth.js" --port 0 --port-file "$D/auth-port" \
		--watch-pid $$ </dev/null >"$D/auth.log" 2>&1 &
	on_exit _hoardfs_kill "$!"
	wait_for 15 test -s "$D/auth-port" || fail "fake_gcp_auth.js did not start"
	A=http://127.0.0.1:$(cat "$D/auth-port")
fi
AUTH_PORT=${A##*:}

ctl() { # ctl NAME [CURL-ARGS...]: POST to the fake server's control API
	local what=$1
	shift
	curl -sS --fail-with-body --max-time 10 -X POST "$A/control/$what" "$@" >/dev/null ||
		fail "control $what failed"
}
ctl_json() { # ctl_json NAME JSON
	ctl "$1" -H 'Content-Type: application/json' --data-binary "$2"
}
stat_of() { # stat_of EXPR: a value from the fake server's counters
	curl -sS --fail --max-time 10 "$A/control/stats" | json_get "$1"
}
want() { # want EXPR VALUE [WHAT]
	local got
	got=$(stat_of "$1")
	[ "$got" = "$2" ] || fail "${3:-$1}: expected $2, got $got"
}

# clean_creds: no credentials in the environment, an empty HOME.
clean_creds() {
	unset GOOGLE_APPLICATION_CREDENTIALS CLOUDSDK_CONFIG GCE_METADATA_HOST GCE_METADATA_IP
	HOME=$(tmpdir home)
	export HOME
}

# cli ARGS...: tool_storecli through the fake server's checking pass-through, bounded.
cli() {
	with_timeout 60 "$CLI" --endpoint "$A" "$@"
}

# write_sa FILE PRIVATE-KEY-PEM-FILE: a service-account key file for the fake token endpoint.
write_sa() {
	python3 - "$1" "$2" "$EMAIL" "$A/token" <<'EOF'
import json, sys
out, pem, email, uri = sys.argv[1:]
json.dump({"type": "service_account", "project_id": "demo-hoardfs",
           "private_key_id": "0123456789abcdef", "private_key": open(pem).read(),
           "client_email": email, "client_id": "1234567890",
           "auth_uri": "https://accounts.example/o/oauth2/auth", "token_uri": uri},
          open(out, "w"), indent=2)
EOF
	chmod 600 "$1"
}

step "keys, credential files, objects"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$D/key.pem" 2>/dev/null ||
	fail "openssl genpkey failed"
openssl pkey -in "$D/key.pem" -pubout -out "$D/pub.pem" || fail "openssl pkey failed"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$D/other.pem" 2>/dev/null ||
	fail "openssl genpkey failed"
write_sa "$D/sa.json" "$D/key.pem"
write_sa "$D/sa-unknown-key.json" "$D/other.pem"

ctl reset
ctl "pubkey?iss=$EMAIL" --data-binary "@$D/pub.pem"
ctl_json user '{"client_id":"cid.apps.example","client_secret":"s3cr&t=/x","refresh_token":"1//rt-good"}'
ctl_json config "{\"upstream\":\"$HOARDFS_GCS_ENDPOINT\",\"require_auth\":true}"

printf 'payload of a protected object\n' >"$D/obj"
for k in a/one b/two c/three; do
	gcs_put "$B" "$k" "$D/obj"
done

# ---- service account ------------------------------------------------------------------------------
step "service account: a multi-page listing with one token"
clean_creds
export GOOGLE_APPLICATION_CREDENTIALS=$D/sa.json
cli --page-size 1 list "gs://$B/" >"$D/list" || fail "list with a service account failed"
[ "$(cut -f5 "$D/list" | tr '\n' ' ')" = "a/one b/two c/three " ] || fail "wrong listing: $(cat "$D/list")"
want j.grants.service_account 1 "token grants for one process"
pages=$(stat_of j.proxied.valid_token)
[ "$pages" -ge 3 ] || fail "expected >= 3 listing requests with a valid token, saw $pages"
want j.proxied.total "$pages" "requests that reached the pass-through"
want j.proxied.no_token 0
want j.rejected 0

step "the assertion's claims"
want j.last_claims.iss "$EMAIL"
want j.last_claims.aud "$A/token"
want j.last_claims.scope "$SCOPE"
want "j.last_claims.exp - j.last_claims.iat" 3600
want j.last_kid 0123456789abcdef
now=$(date +%s)
iat=$(stat_of j.last_claims.iat)
if [ $((now - iat)) -lt -60 ] || [ $((now - iat)) -gt 120 ]; then
	fail "iat $iat is not about now ($now)"
fi

step "service account: reading data with the token"
cli cat "gs://$B/b/two" >"$D/two" || fail "cat with a service account failed"
cmp "$D/obj" "$D/two" || fail "object read through the token check differs"
want j.grants.service_account 2 "token grants after a second process"

step "a key the token endpoint does not know -> EACCES, and the server says why"
export GOOGLE_APPLICATION_CREDENTIALS=$D/sa-unknown-key.json
expect_error EACCES 60 "$CLI" --endpoint "$A" list "gs://$B/"
want j.grants.service_account 2 "grants after a bad signature"
stat_of j.last_error | grep -q 'Invalid JWT Signature' ||
	fail "the fake server did not reject the signature: $(stat_of j.last_error)"
grep -q 'invalid_grant' "$TEST_TMP/last.err" || fail "no OAuth error in the message"

step "--anonymous sends no token even with a key configured"
export GOOGLE_APPLICATION_CREDENTIALS=$D/sa.json
before=$(stat_of j.proxied.no_token)
expect_error EACCES 60 "$CLI" --endpoint "$A" --anonymous stat "gs://$B/a/one"
[ "$(stat_of j.proxied.no_token)" -gt "$before" ] || fail "--anonymous request not seen"
want j.grants.service_account 2 "grants after --anonymous"

# ---- gcloud application-default credentials ------------------------------------------------------
step "authorized_user from gcloud's application-default credentials"
clean_creds
mkdir -p "$HOME/.config/gcloud"
python3 -c 'import json, sys
json.dump({"type": "authorized_user", "client_id": "cid.apps.example",
           "client_secret": "s3cr&t=/x", "refresh_token": sys.argv[2],
           "token_uri": sys.argv[3]}, open(sys.argv[1], "w"))' \
	"$HOME/.config/gcloud/application_default_credentials.json" "1//rt-good" "$A/token"
cli stat "gs://$B/a/one" >"$D/stat" || fail "stat with gcloud credentials failed"
grep -qx 'name=a/one' "$D/stat" || fail "stat printed $(cat "$D/stat")"
want j.grants.authorized_user 1

step "GOOGLE_APPLICATION_CREDENTIALS comes before gcloud's file"
GOOGLE_APPLICATION_CREDENTIALS=$D/sa.json cli stat "gs://$B/a/one" >/dev/null ||
	fail "stat with both configured failed"
want j.grants.service_account 3
want j.grants.authorized_user 1

step "a revoked refresh token -> EACCES"
python3 -c 'import json, sys
json.dump({"type": "authorized_user", "client_id": "cid.apps.example",
           "client_secret": "s3cr&t=/x", "refresh_token": "1//revoked",
           "token_uri": sys.argv[2]}, open(sys.argv[1], "w"))' \
	"$D/adc-revoked.json" "$A/token"
CLOUDSDK_CONFIG=$(tmpdir sdk)
export CLOUDSDK_CONFIG
cp "$D/adc-revoked.json" "$CLOUDSDK_CONFIG/application_default_credentials.json"
expect_error EACCES 60 "$CLI" --endpoint "$A" stat "gs://$B/a/one"
want j.grants.authorized_user 1

# ---- metadata server ------------------------------------------------------------------------------
step "the metadata server via GCE_METADATA_HOST"
clean_creds
export GCE_METADATA_HOST=127.0.0.1:$AUTH_PORT
cli cat "gs://$B/c/three" >"$D/three" || fail "cat with the metadata server failed"
cmp "$D/obj" "$D/three" || fail "object read with a metadata token differs"
want j.grants.metadata 1
with_timeout 30 "$AUTHTOOL" >"$D/md" || fail "tool_gcsauth with the metadata server failed"
grep -qx "describe=metadata server http://127.0.0.1:$AUTH_PORT" "$D/md" ||
	fail "wrong description: $(cat "$D/md")"

# ---- caching, refresh, retries ---------------------------------------------------------------------
step "eight threads asking at once: one grant, one token"
clean_creds
export GOOGLE_APPLICATION_CREDENTIALS=$D/sa.json
before=$(stat_of j.grants.service_account)
with_timeout 60 "$AUTHTOOL" --threads 8 --repeat 3 >"$D/threads" || fail "tool_gcsauth --threads failed"
grep -qx 'kind=service_account' "$D/threads" || fail "wrong kind: $(cat "$D/threads")"
grep -qx 'fetches=1' "$D/threads" || fail "expected one fetch: $(cat "$D/threads")"
[ "$(grep -c '^token=' "$D/threads")" = 24 ] || fail "expected 24 token lines"
[ "$(grep '^token=' "$D/threads" | sort -u | wc -l)" = 1 ] || fail "threads got different tokens"
want j.grants.service_account $((before + 1))

step "a short-lived token is refreshed before it expires"
ctl_json config '{"expires_in":10}' # refreshed after half its life (5 s) in this case
with_timeout 60 "$AUTHTOOL" --repeat 3 --sleep-ms 3000 >"$D/refresh" ||
	fail "tool_gcsauth refresh run failed"
mapfile -t toks < <(grep '^token=' "$D/refresh")
[ "${#toks[@]}" = 3 ] || fail "expected 3 tokens: $(cat "$D/refresh")"
[ "${toks[0]}" = "${toks[1]}" ] || fail "token at 3 s was not the cached one"
[ "${toks[1]}" != "${toks[2]}" ] || fail "token at 6 s was not refreshed"
grep -qx 'fetches=2' "$D/refresh" || fail "expected 2 fetches: $(cat "$D/refresh")"
ctl_json config '{"expires_in":3600}'

step "a 503 from the token endpoint is retried"
ctl_json config '{"fail_next":1}'
before=$(stat_of j.failed_injected)
cli stat "gs://$B/a/one" >/dev/null || fail "stat after a token endpoint 503 failed"
[ "$(stat_of j.failed_injected)" = $((before + 1)) ] || fail "the 503 was not served"

# ---- broken credential files -------------------------------------------------------------------------
step "broken or missing key files -> ENOKEY naming the file, no secrets printed"
clean_creds
python3 -c 'import json, sys
json.dump({"type": "service_account", "client_email": "x@y",
           "private_key": "-----BEGIN PRIVATE KEY-----\nSECRETSECRETSECRET\n-----END PRIVATE KEY-----\n",
           "token_uri": sys.argv[2]}, open(sys.argv[1], "w"))' "$D/bad-key.json" "$A/token"
printf '{"type": "service_account", "client_email": ' >"$D/truncated.json"
for f in "$D/bad-key.json" "$D/truncated.json" "$D/does-not-exist.json"; do
	export GOOGLE_APPLICATION_CREDENTIALS=$f
	expect_error ENOKEY 60 "$CLI" --endpoint "$A" list "gs://$B/"
	grep -qF "$f" "$TEST_TMP/last.err" || fail "the message does not name $f: $(cat "$TEST_TMP/last.err")"
	! grep -q SECRETSECRET "$TEST_TMP/last.err" || fail "key material in the error output"
	with_timeout 30 "$AUTHTOOL" >/dev/null 2>&1 && fail "tool_gcsauth accepted $f"
done
export GOOGLE_APPLICATION_CREDENTIALS=$D/bad-key.json
expect_error ENOKEY 60 "$CLI" --endpoint "$A" list "gs://$B/"
grep -q '"private_key" is not an unencrypted RSA private key' "$TEST_TMP/last.err" ||
	fail "no reason given for the bad key: $(cat "$TEST_TMP/last.err")"
! grep -rq SECRETSECRET "$TEST_TMP/last.out" || fail "key material on stdout"
