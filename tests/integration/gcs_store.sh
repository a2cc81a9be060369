#!/usr/bin/env bash
# gcs_store.sh: the GCS store (common/gcs.c) against the GCS JSON API emulator, through
# tool_storecli: multi-page listings, nested prefixes, 0-byte objects, names with spaces, UTF-8 and
# URL metacharacters, ranged reads at chunk boundaries and at the end compared byte for byte with
# the source, stat fields (size, generation, mtime, crc32c, md5) against values computed here, a
# gzip-encoded object read as stored, 404 -> ENOENT, a range past the end refused (the emulator
# answers 200 and the whole object), and a pinned read of an overwritten object -> ESTALE.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v python3 >/dev/null || fail "python3 is not installed"
CLI=$(tool storecli)
B=$(uniq_bucket gcs-store)
D=$(tmpdir data)
export NO_GCE_CHECK=1 # no metadata-server probe: anonymous against the emulator

# cli ARGS...: tool_storecli against the emulator, bounded.
cli() {
	with_timeout 60 "$CLI" --endpoint "$HOARDFS_GCS_ENDPOINT" --anonymous "$@"
}

# expected_fields FILE NAME: the stat lines tool_storecli must print for FILE stored as NAME, with
# crc32c and md5 computed here (not by the server or by hoardfs).
expected_fields() {
	python3 - "$1" "$2" <<'EOF'
import hashlib, sys
data = open(sys.argv[1], "rb").read()
table = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ (0x82F63B78 if c & 1 else 0)
    table.append(c)
crc = 0xFFFFFFFF
for b in data:
    crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
crc ^= 0xFFFFFFFF
print(f"name={sys.argv[2]}")
print(f"size={len(data)}")
print(f"crc32c={crc:08x}")
print(f"md5={hashlib.md5(data).hexdigest()}")
EOF
}

# server_meta NAME FIELD: a field of the emulator's own metadata for NAME, read with curl.
server_meta() {
	curl -sS --fail --max-time 30 "$HOARDFS_GCS_ENDPOINT/storage/v1/b/$B/o/$(urlencode "$1")" |
		json_get "j.$2"
}

# slice FILE OFF LEN OUT: bytes [OFF, OFF+LEN) of FILE.
slice() {
	python3 -c 'import sys
f = open(sys.argv[1], "rb"); f.seek(int(sys.argv[2]))
open(sys.argv[4], "wb").write(f.read(int(sys.argv[3])))' "$@"
}

step "uploading test objects to gs://$B"
MiB=1048576
mkdata "$D/big" $((3 * MiB + 12345))
printf 'hello world' >"$D/hello"
: >"$D/empty"
mkdata "$D/small" 4096
printf 'hello gzip hello gzip hello gzip\n%.0s' $(seq 1 200) | gzip -9 >"$D/gz"
UTF8_NAME=$'dir/sp ace/\xc3\xbcnic\xc3\xb6de \xe2\x9c\x93.bin'
WEIRD_NAME='dir/we+ird?#%&=;.bin'
gcs_put "$B" big.bin "$D/big"
gcs_put "$B" empty "$D/empty"
gcs_put "$B" "$UTF8_NAME" "$D/hello"
gcs_put "$B" "$WEIRD_NAME" "$D/small"
gcs_put "$B" dir/sub/deep/x.txt "$D/hello"
gcs_put "$B" dir/sub/y.txt "$D/hello"
gcs_put "$B" dir/z.txt "$D/hello"
gcs_put "$B" gz/obj.txt "$D/gz" gzip
for i in 1 2 3 4 5 6 7; do
	gcs_put "$B" "many/f$i" "$D/hello"
done
ALL=(big.bin "$UTF8_NAME" "$WEIRD_NAME" dir/sub/deep/x.txt dir/sub/y.txt dir/z.txt empty
	gz/obj.txt many/f1 many/f2 many/f3 many/f4 many/f5 many/f6 many/f7)

# ---- listings ----------------------------------------------------------------------------------
step "full listing in pages of 2, through a counting proxy"
P=$(start_proxy "$HOARDFS_GCS_ENDPOINT")
with_timeout 60 "$CLI" --endpoint "$P" --anonymous --page-size 2 list "gs://$B/" >"$D/list" ||
	fail "list failed"
cut -f5 "$D/list" | LC_ALL=C sort >"$D/got-names"
printf '%s\n' "${ALL[@]}" | LC_ALL=C sort >"$D/want-names"
diff -u "$D/want-names" "$D/got-names" || fail "listing does not hold every object exactly once"
grep -c . "$D/list" | grep -qx "${#ALL[@]}" || fail "listing has extra lines"
awk -F'\t' '$1 != "obj" { exit 1 }' "$D/list" || fail "prefix lines without a delimiter"
pages=$(proxy_stats "$P" | json_get "j.paths['/storage/v1/b/$B/o'].requests")
[ "$pages" -ge 8 ] || fail "expected at least 8 listing pages of 2 for ${#ALL[@]} objects, saw $pages"
step "listing took $pages pages"

step "list fields match the emulator's metadata"
while IFS=$'\t' read -r kind size version mtime name; do
	want_gen=$(server_meta "$name" generation)
	want_size=$(server_meta "$name" size)
	want_mtime=$(server_meta "$name" updated | python3 -c 'import sys, datetime
t = sys.stdin.read().strip().replace("Z", "+00:00")
print(int(datetime.datetime.fromisoformat(t).timestamp()))')
	if [ "$kind" != obj ] || [ "$version" != "$want_gen" ] || [ "$size" != "$want_size" ] ||
		[ "$mtime" != "$want_mtime" ]; then
		fail "list line for '$name': $kind $size $version $mtime; emulator says size" \
			"$want_size generation $want_gen mtime $want_mtime"
	fi
done < <(grep -E $'\t(empty|big.bin|gz/obj.txt)$' "$D/list")

step "nested prefixes with a delimiter"
cli list "gs://$B/" --delimiter / >"$D/root" || fail "root list failed"
printf 'obj\tbig.bin\nobj\tempty\nprefix\tdir/\nprefix\tgz/\nprefix\tmany/\n' >"$D/want-root"
awk -F'\t' '{ print $1 "\t" $NF }' "$D/root" | LC_ALL=C sort >"$D/got-root"
diff -u "$D/want-root" "$D/got-root" || fail "root listing with delimiter is wrong"

cli --page-size 1 list "gs://$B/dir/" --delimiter / >"$D/dir" || fail "dir/ list failed"
printf 'obj\t%s\nobj\tdir/z.txt\nprefix\tdir/sp ace/\nprefix\tdir/sub/\n' "$WEIRD_NAME" |
	LC_ALL=C sort >"$D/want-dir"
awk -F'\t' '{ print $1 "\t" $NF }' "$D/dir" | LC_ALL=C sort >"$D/got-dir"
diff -u "$D/want-dir" "$D/got-dir" || fail "dir/ listing (pages of 1) is wrong or has repeats"

cli list "gs://$B/dir/sub/" --delimiter / >"$D/sub" || fail "dir/sub/ list failed"
printf 'obj\tdir/sub/y.txt\nprefix\tdir/sub/deep/\n' >"$D/want-sub"
awk -F'\t' '{ print $1 "\t" $NF }' "$D/sub" | LC_ALL=C sort >"$D/got-sub"
diff -u "$D/want-sub" "$D/got-sub" || fail "dir/sub/ listing is wrong"

cli list "gs://$B/many/" --max 3 >"$D/max" || fail "list --max failed"
[ "$(grep -c . "$D/max")" = 3 ] || fail "list --max 3 gave $(grep -c . "$D/max") entries"
cli list "gs://$B/nothing-here/" >"$D/none" || fail "empty listing failed"
[ ! -s "$D/none" ] || fail "listing of a prefix with no objects printed something"

# ---- stat ---------------------------------------------------------------------------------------
check_stat() { # NAME FILE [ENCODING]
	local name=$1 file=$2 enc=${3:-}
	cli stat "gs://$B/$name" >"$D/stat" || fail "stat $name failed"
	{
		expected_fields "$file" "$name"
		echo "version=$(server_meta "$name" generation)"
		echo "content_encoding=$enc"
	} | LC_ALL=C sort >"$D/want-stat"
	grep -v '^mtime=' "$D/stat" | LC_ALL=C sort >"$D/got-stat"
	diff -u "$D/want-stat" "$D/got-stat" || fail "stat fields of '$name' are wrong"
}
step "stat: size, generation, crc32c, md5, encoding against local computations"
check_stat big.bin "$D/big"
check_stat empty "$D/empty"
check_stat "$UTF8_NAME" "$D/hello"
check_stat "$WEIRD_NAME" "$D/small"
check_stat gz/obj.txt "$D/gz" gzip

# ---- reads ---------------------------------------------------------------------------------------
step "whole objects in chunks of 1 MiB, compared byte for byte"
cli cat "gs://$B/big.bin" --chunk 1M >"$D/big.out" || fail "cat big.bin failed"
cmp "$D/big" "$D/big.out" || fail "cat big.bin differs from the source"
cli cat "gs://$B/$UTF8_NAME" >"$D/utf8.out" || fail "cat of the UTF-8 name failed"
cmp "$D/hello" "$D/utf8.out" || fail "UTF-8 object differs"
cli cat "gs://$B/$WEIRD_NAME" --chunk 1000 >"$D/weird.out" || fail "cat of the odd name failed"
cmp "$D/small" "$D/weird.out" || fail "object with URL metacharacters differs"
cli cat "gs://$B/empty" >"$D/empty.out" || fail "cat of a 0-byte object failed"
[ ! -s "$D/empty.out" ] || fail "0-byte object read as non-empty"

step "ranges at chunk boundaries and at the end"
size=$(stat -c %s "$D/big")
for r in "0 1" "$((MiB - 1)) 2" "$((MiB - 1)) 1" "$MiB $MiB" "$((2 * MiB - 7)) 14" \
	"$((size - 1)) 1" "$((size - 12345)) 12345" "$((3 * MiB)) $((size - 3 * MiB))" \
	"$((size - 100)) 100" "0 $size"; do
	read -r off len <<<"$r"
	cli get "gs://$B/big.bin" "$off" "$len" --out "$D/range" || fail "get $off $len failed"
	slice "$D/big" "$off" "$len" "$D/want-range"
	cmp "$D/want-range" "$D/range" || fail "range [$off, +$len) differs from the source"
done

step "a gzip-encoded object is read as stored (compressed), also in ranges"
cli cat "gs://$B/gz/obj.txt" >"$D/gz.out" || fail "cat gz/obj.txt failed"
cmp "$D/gz" "$D/gz.out" || fail "gzip object was not read as stored"
gzip -t <"$D/gz.out" || fail "gzip object is not gzip data"
cli get "gs://$B/gz/obj.txt" 0 10 --out "$D/gz.head" || fail "ranged get of gzip object failed"
slice "$D/gz" 0 10 "$D/want-gz-head"
cmp "$D/want-gz-head" "$D/gz.head" || fail "gzip object's first 10 bytes differ"

# ---- errors --------------------------------------------------------------------------------------
step "404 -> ENOENT"
expect_error ENOENT 60 "$CLI" --endpoint "$HOARDFS_GCS_ENDPOINT" --anonymous stat "gs://$B/missing"
expect_error ENOENT 60 "$CLI" --endpoint "$HOARDFS_GCS_ENDPOINT" --anonymous \
	get "gs://$B/dir/missing" 0 1

step "a range past the end: the emulator answers 200 + the whole object; refused, nothing kept"
gen=$(server_meta dir/z.txt generation)
rm -f "$D/past"
expect_error EPROTO 60 "$CLI" --endpoint "$HOARDFS_GCS_ENDPOINT" --anonymous \
	get "gs://$B/dir/z.txt" 20 5 --size 100 --version "$gen" --out "$D/past"
[ ! -s "$D/past" ] || fail "bytes of a refused response reached the output file"
expect_error EPROTO 60 "$CLI" --endpoint "$HOARDFS_GCS_ENDPOINT" --anonymous \
	get "gs://$B/dir/z.txt" 5 20 --size 25 --version "$gen"
[ ! -s "$TEST_TMP/last.out" ] || fail "bytes of a refused response reached stdout"

step "a pinned read of an overwritten object -> ESTALE"
old_gen=$(server_meta many/f1 generation)
printf 'a newer, longer version' >"$D/newer"
gcs_put "$B" many/f1 "$D/newer"
new_gen=$(server_meta many/f1 generation)
[ "$new_gen" != "$old_gen" ] || fail "the emulator kept generation $old_gen after an overwrite"
rm -f "$D/stale"
expect_error ESTALE 60 "$CLI" --endpoint "$HOARDFS_GCS_ENDPOINT" --anonymous \
	get "gs://$B/many/f1" 0 5 --version "$old_gen" --size 11 --out "$D/stale"
[ ! -s "$D/stale" ] || fail "bytes of another generation reached the output file"
cli get "gs://$B/many/f1" 0 5 --version "$new_gen" --size 23 --out "$D/fresh" ||
	fail "the current generation cannot be read"
[ "$(cat "$D/fresh")" = "a new" ] || fail "current generation read wrong bytes"
