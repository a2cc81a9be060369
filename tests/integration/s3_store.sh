#!/usr/bin/env bash
# s3_store.sh: the S3 client (common/s3.c) end to end against the shared s3rver, through the store
# API (tool_storecli):
#   listings of several pages (--page-size; the pages are counted at a proxy), nested prefixes with
#   a delimiter (also paged: s3rver repeats common prefixes, we must not), --max; 0-byte objects;
#   names with spaces, UTF-8, XML specials, '+' and '%'; ranged reads at 1 MiB boundaries and at
#   the end, compared byte for byte with the source; stat fields (size, ETag, MD5, mtime,
#   Content-Encoding); 404 -> ENOENT; unknown key id -> EACCES; a pinned read of an overwritten
#   object -> ESTALE (s3rver ignores If-Match: the client's ETag check must catch it); credentials
#   from a profile file and endpoints from AWS_ENDPOINT_URL(_S3); anonymous access.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CLI=$(tool storecli)
OUT="$TEST_TMP/out"
ERR="$TEST_TMP/err"
E=$HOARDFS_S3_ENDPOINT
MiB=$((1024 * 1024))

# cli ARGS...: the CLI against s3rver, bounded; stdout in $OUT, stderr in $ERR.
cli() {
	timeout -k 5 60 "$CLI" --endpoint "$E" "$@" >"$OUT" 2>"$ERR"
}

# must MSG ARGS...: cli, failing the test with MSG (and the CLI's stderr) if it fails.
must() {
	local msg=$1
	shift
	if ! cli "$@"; then
		cat "$ERR" >&2
		fail "$msg"
	fi
}

expect_eq() {
	[ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"
}

# field KEY: a key=value line of the last stat.
field() {
	sed -n "s/^$1=//p" "$OUT"
}

# names: the name column of the last listing, one per line ("P name" for prefixes).
names() {
	awk -F'\t' '$1 == "obj" { print $5 } $1 == "prefix" { print "P " $2 }' "$OUT"
}

b=$(uniq_bucket s3store)
s3_mkbucket "$b"

step "uploading objects"
SIZE=$((3 * MiB + 12345))
mkdata "$TEST_TMP/big" "$SIZE"
s3_put "$b" "big.bin" "$TEST_TMP/big"
: >"$TEST_TMP/empty"
s3_put "$b" "empty.bin" "$TEST_TMP/empty"
mkdata "$TEST_TMP/small" 4099
SPACE_UTF8="dir with space/naïve ✓ файл.bin"
XMLNAME="xml&<ent>\"q\"'a'.txt"
ODDNAME="odd+plus%25 percent=eq;semi.bin"
s3_put "$b" "$SPACE_UTF8" "$TEST_TMP/small"
s3_put "$b" "$XMLNAME" "$TEST_TMP/small"
s3_put "$b" "$ODDNAME" "$TEST_TMP/small"
for k in models/readme.md models/llama/config.json models/llama/w-00001.bin \
	models/llama/w-00002.bin models/mistral/tok.json; do
	s3_put "$b" "$k" "$TEST_TMP/small"
done
for i in $(seq -w 1 23); do
	s3_put "$b" "many/obj-$i" "$TEST_TMP/small"
done
echo hello | gzip >"$TEST_TMP/gz"
_s3_curl -X PUT -o /dev/null --data-binary "@$TEST_TMP/gz" -H "Content-Encoding: gzip" \
	"$E/$b/stored.gz" || fail "upload stored.gz"
on_exit s3_rm "$b" stored.gz
ALL=$(printf '%s\n' big.bin empty.bin "$SPACE_UTF8" "$XMLNAME" "$ODDNAME" models/readme.md \
	models/llama/config.json models/llama/w-00001.bin models/llama/w-00002.bin \
	models/mistral/tok.json stored.gz $(seq -f 'many/obj-%02g' 1 23) | LC_ALL=C sort)
TOTAL=$(echo "$ALL" | wc -l)

step "listing everything in pages of 4, through a counting proxy"
P=$(start_proxy "$E")
if ! timeout -k 5 60 "$CLI" --endpoint "$P" --page-size 4 list "s3://$b/" >"$OUT" 2>"$ERR"; then
	cat "$ERR" >&2
	fail "paged listing"
fi
expect_eq "paged listing" "$(names)" "$ALL"
expect_eq "entries" "$(wc -l <"$OUT")" "$TOTAL"
pages=$(proxy_stats "$P" | json_get 'j.log.filter(e => e.url.includes("list-type=2")).length')
[ "$pages" -ge $(((TOTAL + 3) / 4)) ] || fail "only $pages listing requests for $TOTAL entries"
tokens=$(proxy_stats "$P" | json_get 'j.log.filter(e => e.url.includes("continuation-token=")).length')
expect_eq "requests with a continuation token" "$tokens" "$((pages - 1))"
proxy_stats "$P" | json_get 'j.log.every(e => e.url.includes("max-keys=4"))' | grep -qx true ||
	fail "a listing request did not ask for max-keys=4"
# Every field of a listed object.
line=$(awk -F'\t' '$5 == "big.bin"' "$OUT")
IFS=$'\t' read -r kind lsize lver lmtime lname <<<"$line"
expect_eq "listed size" "$lsize" "$SIZE"
expect_eq "listed ETag" "$lver" "$(md5sum "$TEST_TMP/big" | cut -d' ' -f1)"
now=$(date +%s)
[ "$lmtime" -gt $((now - 600)) ] && [ "$lmtime" -le $((now + 60)) ] ||
	fail "listed mtime $lmtime is not about now ($now)"

step "prefix listing in pages of 5, and --max"
must "many/ listing" --page-size 5 list "s3://$b/many/"
expect_eq "many/" "$(names)" "$(seq -f 'many/obj-%02g' 1 23)"
must "--max 10" --page-size 4 list "s3://$b/" --max 10
expect_eq "--max 10" "$(names)" "$(echo "$ALL" | head -n 10)"
must "--max 3 with one page" list "s3://$b/many/" --max 3
expect_eq "--max 3" "$(names)" "$(seq -f 'many/obj-%02g' 1 3)"

step "nested prefixes with a delimiter"
must "root with delimiter" list "s3://$b/" --delimiter /
expect_eq "root /" "$(names)" "$(printf '%s\n' big.bin empty.bin "$ODDNAME" stored.gz "$XMLNAME" \
	"P dir with space/" "P many/" "P models/")"
must "models/ with delimiter" list "s3://$b/models/" --delimiter /
expect_eq "models/ /" "$(names)" "$(printf '%s\n' models/readme.md 'P models/llama/' \
	'P models/mistral/')"
must "models/llama/ with delimiter" list "s3://$b/models/llama/" --delimiter /
expect_eq "models/llama/ /" "$(names)" "$(printf '%s\n' models/llama/config.json \
	models/llama/w-00001.bin models/llama/w-00002.bin)"
# Paged with a delimiter: s3rver sends "many/" and "models/" again on later pages.
must "root with delimiter, pages of 2" --page-size 2 list "s3://$b/" --delimiter /
got=$(names | LC_ALL=C sort)
want=$(printf '%s\n' big.bin empty.bin "$ODDNAME" stored.gz "$XMLNAME" "P dir with space/" \
	"P many/" "P models/" | LC_ALL=C sort)
expect_eq "root / paged (as a set, no repeats)" "$got" "$want"
must "empty prefix" list "s3://$b/nothing-here/" --delimiter /
expect_eq "empty listing" "$(wc -c <"$OUT")" 0

step "0-byte object"
must "stat empty" stat "s3://$b/empty.bin"
expect_eq "empty size" "$(field size)" 0
expect_eq "empty md5" "$(field md5)" d41d8cd98f00b204e9800998ecf8427e
must "cat empty" cat "s3://$b/empty.bin"
expect_eq "cat empty" "$(wc -c <"$OUT")" 0
expect_error EINVAL 60 "$CLI" --endpoint "$E" get "s3://$b/empty.bin" 0 1

step "names with spaces, UTF-8, XML specials, '+' and '%'"
for k in "$SPACE_UTF8" "$XMLNAME" "$ODDNAME"; do
	must "stat '$k'" stat "s3://$b/$k"
	expect_eq "name of '$k'" "$(field name)" "$k"
	expect_eq "size of '$k'" "$(field size)" 4099
	must "cat '$k'" cat "s3://$b/$k"
	cmp -s "$OUT" "$TEST_TMP/small" || fail "content of '$k' differs"
done

step "stat fields"
must "stat big" stat "s3://$b/big.bin"
md5=$(md5sum "$TEST_TMP/big" | cut -d' ' -f1)
expect_eq "name" "$(field name)" big.bin
expect_eq "size" "$(field size)" "$SIZE"
expect_eq "version (ETag, quotes removed)" "$(field version)" "$md5"
expect_eq "md5 (single-part ETag)" "$(field md5)" "$md5"
expect_eq "crc32c (none on S3)" "$(field crc32c)" ""
expect_eq "content_encoding" "$(field content_encoding)" ""
expect_eq "mtime (HEAD's Last-Modified = the listing's)" "$(field mtime)" "$lmtime"
V1=$(field version)
must "stat stored.gz" stat "s3://$b/stored.gz"
expect_eq "content_encoding gzip" "$(field content_encoding)" gzip
expect_eq "gzip object size as stored" "$(field size)" "$(stat -c %s "$TEST_TMP/gz")"
must "cat stored.gz" cat "s3://$b/stored.gz"
cmp -s "$OUT" "$TEST_TMP/gz" || fail "a gzip object was not read as stored"

step "ranged reads at 1 MiB boundaries and at the end"
# check_range OFF LEN: reads [OFF, OFF+LEN) pinned to V1 and compares it with the source.
check_range() {
	local off=$1 len=$2
	must "get $off+$len" get "s3://$b/big.bin" "$off" "$len" --version "$V1" --size "$SIZE" \
		--out "$TEST_TMP/range"
	dd if="$TEST_TMP/big" of="$TEST_TMP/want" bs=1M iflag=skip_bytes,count_bytes skip="$off" \
		count="$len" status=none
	expect_eq "length of $off+$len" "$(stat -c %s "$TEST_TMP/range")" "$len"
	cmp -s "$TEST_TMP/range" "$TEST_TMP/want" || fail "bytes of [$off, +$len) differ"
}
check_range 0 "$MiB"
check_range $((MiB - 1)) 2
check_range "$MiB" "$MiB"
check_range $((2 * MiB - 3)) 7
check_range $((3 * MiB)) 12345
check_range $((SIZE - 1)) 1
check_range $((SIZE - 4096)) 4096
check_range 0 "$SIZE"
# Through stdout, in 1 MiB chunks (the last one partial).
must "cat big in 1 MiB chunks" cat "s3://$b/big.bin" --chunk 1M
expect_eq "cat sha256" "$(sha_of "$OUT")" "$(sha_of "$TEST_TMP/big")"
# Ranges past the end are refused before any request.
expect_error EINVAL 60 "$CLI" --endpoint "$E" get "s3://$b/big.bin" "$((SIZE - 1))" 2
expect_error EINVAL 60 "$CLI" --endpoint "$E" get "s3://$b/big.bin" "$SIZE" 1

step "404 -> ENOENT"
expect_error ENOENT 60 "$CLI" --endpoint "$E" stat "s3://$b/no/such/key"
expect_error ENOENT 60 "$CLI" --endpoint "$E" get "s3://$b/no/such/key" 0 1
expect_error ENOENT 60 "$CLI" --endpoint "$E" list "s3://$(uniq_bucket nobucket)/"

step "unknown access key id -> EACCES"
AWS_ACCESS_KEY_ID=NOTAKEY expect_error EACCES 60 "$CLI" --endpoint "$E" stat "s3://$b/big.bin"
AWS_ACCESS_KEY_ID=NOTAKEY expect_error EACCES 60 "$CLI" --endpoint "$E" list "s3://$b/"
grep -q InvalidAccessKeyId "$TEST_TMP/last.err" || fail "the S3 error code was not logged"
AWS_ACCESS_KEY_ID=NOTAKEY expect_error EACCES 60 "$CLI" --endpoint "$E" get "s3://$b/big.bin" \
	0 10 --version "$V1" --size "$SIZE"

step "credentials from a profile, a session token, anonymous access"
mkdir -p "$HOME/.aws"
cat >"$HOME/.aws/credentials" <<'EOF'
[default]
aws_access_key_id = NOTAKEY
aws_secret_access_key = nope

[s3rver]
aws_access_key_id = S3RVER
aws_secret_access_key = S3RVER
aws_session_token = some-session-token
EOF
(
	unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
	AWS_PROFILE=s3rver must "profile s3rver" stat "s3://$b/big.bin"
	expect_eq "size via profile" "$(field size)" "$SIZE"
	expect_error EACCES 60 "$CLI" --endpoint "$E" stat "s3://$b/big.bin"
	AWS_PROFILE=missing expect_error ENOKEY 60 "$CLI" --endpoint "$E" stat "s3://$b/big.bin"
)
AWS_SESSION_TOKEN=tok must "env session token" stat "s3://$b/big.bin"
must "anonymous" --anonymous stat "s3://$b/big.bin"
expect_eq "anonymous size" "$(field size)" "$SIZE"
(
	unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
	rm -f "$HOME/.aws/credentials"
	must "no credentials at all: anonymous" stat "s3://$b/big.bin"
)

step "endpoints from AWS_ENDPOINT_URL_S3 and AWS_ENDPOINT_URL"
dead="http://127.0.0.1:1"
AWS_ENDPOINT_URL=$E timeout -k 5 60 "$CLI" stat "s3://$b/big.bin" >"$OUT" 2>"$ERR" ||
	fail "AWS_ENDPOINT_URL: $(cat "$ERR")"
AWS_ENDPOINT_URL=$dead AWS_ENDPOINT_URL_S3=$E timeout -k 5 60 "$CLI" stat "s3://$b/big.bin" \
	>"$OUT" 2>"$ERR" || fail "AWS_ENDPOINT_URL_S3 does not win: $(cat "$ERR")"
AWS_ENDPOINT_URL=$dead expect_error ECONNREFUSED 60 "$CLI" --attempts 1 stat "s3://$b/big.bin"
HOARDFS_LIST_PAGE_SIZE=0 expect_error EINVAL 60 "$CLI" --endpoint "$E" list "s3://$b/"

step "a pinned read of an overwritten object -> ESTALE"
mkdata "$TEST_TMP/big2" "$SIZE" # same size: only the ETag can tell the versions apart
s3_put "$b" "big.bin" "$TEST_TMP/big2"
must "stat the new version" stat "s3://$b/big.bin"
V2=$(field version)
[ "$V2" != "$V1" ] || fail "the overwrite kept ETag $V1"
rm -f "$TEST_TMP/range"
expect_error ESTALE 60 "$CLI" --endpoint "$E" get "s3://$b/big.bin" 0 "$MiB" --version "$V1" \
	--size "$SIZE" --out "$TEST_TMP/range"
expect_eq "bytes written by a stale read" "$(stat -c %s "$TEST_TMP/range" 2>/dev/null || echo 0)" 0
expect_error ESTALE 60 "$CLI" --endpoint "$E" get "s3://$b/big.bin" "$((SIZE - 10))" 10 \
	--version "$V1" --size "$SIZE"
expect_eq "stale bytes on stdout" "$(wc -c <"$TEST_TMP/last.out")" 0
must "pinned read of the new version" get "s3://$b/big.bin" 0 "$SIZE" --version "$V2" \
	--size "$SIZE" --out "$TEST_TMP/range"
cmp -s "$TEST_TMP/range" "$TEST_TMP/big2" || fail "new version's bytes differ"
