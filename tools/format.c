/* format: text for people. */
#include "tools/format.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/num.h"

#define TABLE_CELL_MAX 4096 /* longest cell kept, after cleaning */

const char *fmt_size(uint64_t bytes, char *out, size_t outsz)
{
	return num_format_size(bytes, out, outsz);
}

const char *fmt_rate(double bps, char *out, size_t outsz)
{
	static const char *const units[] = { "B/s", "KiB/s", "MiB/s", "GiB/s", "TiB/s" };
	int u = 0;

	if (!isfinite(bps) || bps < 0) {
		snprintf(out, outsz, "-");
		return out;
	}
	while (bps >= 1024 && u < 4) {
		bps /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(out, outsz, "%.0f %s", bps, units[u]);
	else
		snprintf(out, outsz, "%.1f %s", bps, units[u]);
	return out;
}

const char *fmt_percent(double pct, char *out, size_t outsz)
{
	if (!isfinite(pct)) {
		snprintf(out, outsz, "-");
		return out;
	}
	if (pct < 0)
		pct = 0;
	if (pct > 100)
		pct = 100;
	/* never round a nearly complete object up to 100% */
	if (pct < 100 && pct >= 99.95)
		pct = 99.9;
	snprintf(out, outsz, "%.1f%%", pct);
	return out;
}

const char *fmt_duration(uint64_t s, char *out, size_t outsz)
{
	if (s < 60)
		snprintf(out, outsz, "%llus", (unsigned long long)s);
	else if (s < 3600)
		snprintf(out, outsz, "%llum %02llus", (unsigned long long)(s / 60),
			 (unsigned long long)(s % 60));
	else if (s < 86400)
		snprintf(out, outsz, "%lluh %02llum", (unsigned long long)(s / 3600),
			 (unsigned long long)(s % 3600 / 60));
	else
		snprintf(out, outsz, "%llud %02lluh", (unsigned long long)(s / 86400),
			 (unsigned long long)(s % 86400 / 3600));
	return out;
}

const char *fmt_age(int64_t when, int64_t now, char *out, size_t outsz)
{
	uint64_t d;

	if (when <= 0) {
		snprintf(out, outsz, "never");
		return out;
	}
	if (when > now) {
		snprintf(out, outsz, when - now > 60 ? "in the future" : "just now");
		return out;
	}
	d = (uint64_t)(now - when);
	if (d < 5)
		snprintf(out, outsz, "just now");
	else if (d < 60)
		snprintf(out, outsz, "%llus ago", (unsigned long long)d);
	else if (d < 3600)
		snprintf(out, outsz, "%llum ago", (unsigned long long)(d / 60));
	else if (d < 86400 * 2)
		snprintf(out, outsz, "%lluh ago", (unsigned long long)(d / 3600));
	else
		snprintf(out, outsz, "%llud ago", (unsigned long long)(d / 86400));
	return out;
}

const char *fmt_time(int64_t when, char *out, size_t outsz)
{
	time_t t = (time_t)when;
	struct tm tm;

	if (when <= 0 || !localtime_r(&t, &tm) || !strftime(out, outsz, "%Y-%m-%d %H:%M:%S", &tm))
		snprintf(out, outsz, "-");
	return out;
}

/* Length of the valid UTF-8 sequence at p (1-4), or 0 when it is invalid. */
static size_t utf8_len(const unsigned char *p)
{
	size_t need;
	unsigned cp;

	if (p[0] < 0x80)
		return 1;
	if ((p[0] & 0xe0) == 0xc0) {
		need = 1;
		cp = p[0] & 0x1f;
	} else if ((p[0] & 0xf0) == 0xe0) {
		need = 2;
		cp = p[0] & 0x0f;
	} else if ((p[0] & 0xf8) == 0xf0) {
		need = 3;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	for (size_t k = 1; k <= need; k++) {
		if ((p[k] & 0xc0) != 0x80) /* also stops at the NUL */
			return 0;
		cp = (cp << 6) | (p[k] & 0x3f);
	}
	if ((need == 1 && cp < 0x80) || (need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	/* C1 controls (U+0080-U+009F) act as escape sequences on some terminals */
	if (cp >= 0x80 && cp <= 0x9f)
		return 0;
	return need + 1;
}

const char *fmt_clean(const char *s, char *out, size_t outsz)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	size_t o = 0;

	while (*p) {
		char esc[8];
		const char *piece = (const char *)p;
		size_t n = utf8_len(p), adv = n;

		if (n == 1 && (*p < 0x20 || *p == 0x7f))
			n = 0;
		if (n == 0) {
			snprintf(esc, sizeof(esc), "\\x%02x", *p);
			piece = esc;
			n = 4;
			adv = 1;
		}
		/* invariant: o + 4 <= outsz, so "..." and the NUL always fit */
		if (o + n + 4 > outsz) {
			if (!p[adv] && o + n + 1 <= outsz) {
				memcpy(out + o, piece, n); /* the last piece fits exactly */
				o += n;
			} else {
				memcpy(out + o, "...", 3);
				o += 3;
			}
			break;
		}
		memcpy(out + o, piece, n);
		o += n;
		p += adv;
	}
	out[o] = '\0';
	return out;
}

size_t fmt_width(const char *s)
{
	size_t w = 0;

	for (; *s; s++) {
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	}
	return w;
}

struct fmt_table {
	size_t ncols;
	char align[16];
	char **cells; /* nrows * ncols, row 0 the header when has_header */
	size_t nrows;
	size_t cap;
	bool has_header;
};

#define TABLE_COLS_MAX 16

int fmt_table_new(size_t ncols, const char *const *headers, const char *align,
		  struct fmt_table **out)
{
	struct fmt_table *t;
	int rc;

	*out = NULL;
	if (ncols == 0 || ncols > TABLE_COLS_MAX || strlen(align) != ncols)
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->ncols = ncols;
	memcpy(t->align, align, ncols);
	if (headers) {
		rc = fmt_table_add(t, headers);
		if (rc) {
			fmt_table_free(t);
			return rc;
		}
		t->has_header = true;
	}
	*out = t;
	return 0;
}

int fmt_table_add(struct fmt_table *t, const char *const *cells)
{
	char *clean;

	if (t->nrows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		char **c = realloc(t->cells, cap * t->ncols * sizeof(*c));

		if (!c)
			return -ENOMEM;
		t->cells = c;
		t->cap = cap;
	}
	clean = malloc(TABLE_CELL_MAX);
	if (!clean)
		return -ENOMEM;
	for (size_t i = 0; i < t->ncols; i++) {
		char *c = strdup(fmt_clean(cells[i] ? cells[i] : "-", clean, TABLE_CELL_MAX));

		if (!c) {
			for (size_t k = 0; k < i; k++)
				free(t->cells[t->nrows * t->ncols + k]);
			free(clean);
			return -ENOMEM;
		}
		t->cells[t->nrows * t->ncols + i] = c;
	}
	free(clean);
	t->nrows++;
	return 0;
}

void fmt_table_print(const struct fmt_table *t, FILE *f, int indent)
{
	size_t width[TABLE_COLS_MAX] = { 0 };

	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t c = 0; c < t->ncols; c++) {
			size_t w = fmt_width(t->cells[r * t->ncols + c]);

			if (w > width[c])
				width[c] = w;
		}
	}
	for (size_t r = 0; r < t->nrows; r++) {
		size_t ncols = t->ncols;

		/* empty trailing cells print nothing, not even padding */
		while (ncols > 1 && !t->cells[r * t->ncols + ncols - 1][0])
			ncols--;
		fprintf(f, "%*s", indent, "");
		for (size_t c = 0; c < ncols; c++) {
			const char *s = t->cells[r * t->ncols + c];
			size_t pad = width[c] - fmt_width(s);
			bool last = c + 1 == ncols;

			if (c)
				fputs("  ", f);
			if (t->align[c] == 'r')
				fprintf(f, "%*s%s", (int)pad, "", s);
			else if (last)
				fputs(s, f);
			else
				fprintf(f, "%s%*s", s, (int)pad, "");
		}
		fputc('\n', f);
	}
}

void fmt_table_free(struct fmt_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}
