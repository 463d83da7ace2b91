/* chaos_timeline.c - the timeline page of a chaos run: one bar per coordinator (green alive, red
 * dead until its replacement took over), vertical marks for kills and restarts, the results.
 *
 * Key decision: one self-contained HTML file with inline CSS, an SVG drawn here and a few lines
 * of JS (row filter); no network, so it opens from a CI artifact or a laptop alike. Tooltips are
 * SVG <title> elements and work without the JS.
 */
#include "chaos.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define LABEL_W 230
#define PLOT_W 1000
#define ROW_H 11
#define ROW_GAP 3
#define TOP 46

static void *grow(void *p, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return p;
    size_t nc = *cap ? *cap * 2 : 16;
    void *q = realloc(p, nc * size);
    if (q == NULL)
        abort();
    *cap = nc;
    return q;
}

chaos_row_t *chaos_tl_row(chaos_timeline_t *tl, const char *label)
{
    tl->rows = grow(tl->rows, &tl->cap, tl->nrows, sizeof *tl->rows);
    chaos_row_t *r = &tl->rows[tl->nrows++];
    memset(r, 0, sizeof *r);
    snprintf(r->label, sizeof r->label, "%s", label);
    return r;
}

void chaos_tl_seg(chaos_row_t *row, uint64_t from, uint64_t to, int state, const char *note)
{
    if (to <= from)
        return;
    row->segs = grow(row->segs, &row->cap, row->n, sizeof *row->segs);
    chaos_seg_t *s = &row->segs[row->n++];
    s->from = from;
    s->to = to;
    s->state = state;
    snprintf(s->note, sizeof s->note, "%s", note ? note : "");
    if (state != CHAOS_SEG_ALIVE)
        row->flagged = 1;
}

void chaos_tl_mark(chaos_timeline_t *tl, uint64_t t, const char *label)
{
    tl->marks = grow(tl->marks, &tl->mcap, tl->nmarks, sizeof *tl->marks);
    chaos_mark_t *m = &tl->marks[tl->nmarks++];
    m->t = t;
    snprintf(m->label, sizeof m->label, "%s", label);
}

void chaos_tl_free(chaos_timeline_t *tl)
{
    for (size_t i = 0; i < tl->nrows; i++)
        free(tl->rows[i].segs);
    free(tl->rows);
    free(tl->marks);
    memset(tl, 0, sizeof *tl);
}

static void esc(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&':
            fputs("&amp;", f);
            break;
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        default:
            fputc(*s, f);
        }
    }
}

static double xpos(const chaos_timeline_t *tl, uint64_t t)
{
    if (t < tl->t0)
        t = tl->t0;
    if (t > tl->t1)
        t = tl->t1;
    double span = tl->t1 > tl->t0 ? (double)(tl->t1 - tl->t0) : 1.0;
    return LABEL_W + (double)(t - tl->t0) / span * PLOT_W;
}

static const char *seg_class(int state)
{
    return state == CHAOS_SEG_ALIVE ? "a" : state == CHAOS_SEG_DEAD ? "d" : "w";
}

/* A tick step (seconds) giving at most ~12 ticks over span_s. */
static unsigned tick_step(double span_s)
{
    static const unsigned steps[] = {1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++)
        if (span_s / steps[i] <= 12)
            return steps[i];
    return 7200;
}

static const char page_head[] =
    "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>%s</title>\n"
    "<style>\n"
    "body{font:13px/1.4 system-ui,-apple-system,Segoe UI,sans-serif;margin:20px;color:#1f2328}\n"
    "h1{font-size:18px;margin:0 0 6px}\n"
    ".legend span{display:inline-block;margin-right:16px}\n"
    ".legend i{display:inline-block;width:14px;height:10px;margin-right:5px;vertical-align:-1px}\n"
    "rect.a{fill:#2da44e}rect.d{fill:#cf222e}rect.w{fill:#8250df}\n"
    "text{font:10px ui-monospace,Menlo,Consolas,monospace;fill:#1f2328}\n"
    "line.k{stroke:#1f2328;stroke-width:1;stroke-dasharray:3 3;opacity:.55}\n"
    "line.t{stroke:#d0d7de;stroke-width:1}\n"
    "text.m{font-size:9px;fill:#57606a}\n"
    "pre{background:#f6f8fa;padding:10px;border-radius:6px;overflow:auto}\n"
    "</style></head><body>\n";

int chaos_tl_write(const chaos_timeline_t *tl, const char *path, const char *results_json,
                   char *err, size_t errlen)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        int e = errno;
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(e));
        return -e;
    }
    size_t flagged = 0;
    for (size_t i = 0; i < tl->nrows; i++)
        flagged += tl->rows[i].flagged != 0;
    fprintf(f, page_head, tl->title);
    fputs("<h1>", f);
    esc(f, tl->title);
    fprintf(f,
            "</h1>\n<div class=\"legend\"><span><i style=\"background:#2da44e\"></i>alive</span>"
            "<span><i style=\"background:#cf222e\"></i>dead (until the replacement is alive and "
            "holds the work)</span><span><i style=\"background:#8250df\"></i>Redis down</span>"
            "<span>dashed line: kill / restart</span></div>\n"
            "<p><label><input type=\"checkbox\" id=\"only\"> only the %zu of %zu bars with a "
            "gap</label></p>\n",
            flagged, tl->nrows);

    double span_s = (double)(tl->t1 - tl->t0) / 1000.0;
    int height = TOP + (int)tl->nrows * (ROW_H + ROW_GAP) + 10;
    fprintf(f, "<svg id=\"tl\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\">\n",
            LABEL_W + PLOT_W + 20, height);
    unsigned step = tick_step(span_s);
    for (unsigned s = 0; s <= (unsigned)span_s; s += step) {
        double x = xpos(tl, tl->t0 + (uint64_t)s * 1000);
        fprintf(f,
                "<line class=\"t\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>"
                "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%us</text>\n",
                x, TOP - 4, x, height, x, TOP - 8, s);
    }
    for (size_t i = 0; i < tl->nmarks; i++) {
        const chaos_mark_t *m = &tl->marks[i];
        double x = xpos(tl, m->t);
        fprintf(f, "<g><title>%.1f s: ", (double)(m->t > tl->t0 ? m->t - tl->t0 : 0) / 1000.0);
        esc(f, m->label);
        fprintf(f,
                "</title><line class=\"k\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>"
                "<text class=\"m\" x=\"%.1f\" y=\"%d\">",
                x, TOP - 20, x, height, x + 2, (int)(i % 2 ? 20 : 12));
        esc(f, m->label);
        fputs("</text></g>\n", f);
    }
    for (size_t i = 0; i < tl->nrows; i++) {
        const chaos_row_t *r = &tl->rows[i];
        int y = TOP + (int)i * (ROW_H + ROW_GAP);
        fprintf(f,
                "<g class=\"row\" data-f=\"%d\" transform=\"translate(0,%d)\"><text x=\"0\" "
                "y=\"%d\">",
                r->flagged, y, ROW_H - 2);
        esc(f, r->label);
        fputs("</text>", f);
        for (size_t k = 0; k < r->n; k++) {
            const chaos_seg_t *s = &r->segs[k];
            double x0 = xpos(tl, s->from), x1 = xpos(tl, s->to);
            if (x1 - x0 < 0.6)
                x1 = x0 + 0.6; /* a short gap stays visible */
            fprintf(f, "<rect class=\"%s\" x=\"%.1f\" y=\"0\" width=\"%.1f\" height=\"%d\">",
                    seg_class(s->state), x0, x1 - x0, ROW_H);
            fprintf(f, "<title>");
            esc(f, r->label);
            fprintf(f, ": %s %.1f s - %.1f s (%.2f s)%s",
                    seg_class(s->state)[0] == 'a'   ? "alive"
                    : seg_class(s->state)[0] == 'd' ? "dead"
                                                    : "down",
                    (double)(s->from - tl->t0) / 1000.0, (double)(s->to - tl->t0) / 1000.0,
                    (double)(s->to - s->from) / 1000.0, s->note[0] ? ", " : "");
            esc(f, s->note);
            fputs("</title></rect>", f);
        }
        fputs("</g>\n", f);
    }
    fputs("</svg>\n<h2 style=\"font-size:15px\">results.json</h2>\n<pre>", f);
    esc(f, results_json ? results_json : "{}");
    fprintf(
        f,
        "</pre>\n<script>\n"
        "(function(){var cb=document.getElementById('only'),svg=document.getElementById('tl');\n"
        "var rows=[].slice.call(svg.querySelectorAll('g.row'));\n"
        "function lay(){var y=%d,n=0;rows.forEach(function(g){var show=!cb.checked||"
        "g.getAttribute('data-f')==='1';g.style.display=show?'':'none';\n"
        "if(show){g.setAttribute('transform','translate(0,'+(y+n*%d)+')');n++;}});\n"
        "svg.setAttribute('height',y+n*%d+10);}\n"
        "cb.addEventListener('change',lay);})();\n</script>\n</body></html>\n",
        TOP, ROW_H + ROW_GAP, ROW_H + ROW_GAP);
    if (fclose(f) != 0) {
        int e = errno;
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(e));
        return -e;
    }
    return 0;
}
