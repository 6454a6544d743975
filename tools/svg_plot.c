/* SVG charts written by hand: axes with "nice" ticks (1, 2, 5 x 10^k), bars with error bars and
 * value labels, polylines with markers and a legend. Text is XML-escaped. */
#include "svg_plot.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#define HEADER_H 56
#define M_LEFT 72
#define M_RIGHT 24
#define M_TOP 40
#define M_BOTTOM 78
#define FONT "font-family=\"sans-serif\""

static const char *const palette[] = {"#4e79a7", "#f28e2b", "#59a14f", "#e15759",
                                      "#76b7b2", "#edc948", "#b07aa1", "#9c755f"};

const char *svg_color(int i) {
    const int n = (int)(sizeof palette / sizeof palette[0]);
    return palette[((i % n) + n) % n];
}

static void put_text(FILE *f, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

static void text(FILE *f, double x, double y, const char *anchor, int size, const char *extra, const char *s) {
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" font-size=\"%d\" " FONT "%s%s>", x, y, anchor, size,
            extra ? " " : "", extra ? extra : "");
    put_text(f, s);
    fputs("</text>\n", f);
}

/* Axis top and tick step for data up to vmax. */
static void nice_axis(double vmax, double *top, double *step) {
    if (!(vmax > 0) || !isfinite(vmax)) vmax = 1;
    const double raw = vmax / 5, mag = pow(10, floor(log10(raw))), r = raw / mag;
    *step = (r <= 1 ? 1 : r <= 2 ? 2 : r <= 5 ? 5 : 10) * mag;
    *top = ceil(vmax / *step - 1e-9) * *step;
}

static void fmt_num(char *buf, size_t n, double v) {
    if (fabs(v) >= 100 || v == floor(v)) snprintf(buf, n, "%.0f", v);
    else if (fabs(v) >= 10) snprintf(buf, n, "%.1f", v);
    else snprintf(buf, n, "%.3g", v);
}

typedef struct frame {
    double x, y, w, h; /* plot area */
} frame;

/* Next panel's plot area, with its title and the y axis (grid lines and tick labels). */
static frame panel(svg_doc *d, const char *title, const char *y_label, double top, double step) {
    const int col = d->next % d->cols, row = d->next / d->cols;
    d->next++;
    const double px = col * SVG_PANEL_W, py = HEADER_H + row * SVG_PANEL_H;
    frame fr = {px + M_LEFT, py + M_TOP, SVG_PANEL_W - M_LEFT - M_RIGHT, SVG_PANEL_H - M_TOP - M_BOTTOM};
    FILE *f = d->f;
    text(f, px + SVG_PANEL_W / 2.0, py + 22, "middle", 15, "font-weight=\"bold\"", title);
    for (double v = 0; v <= top + step * 1e-6; v += step) {
        const double y = fr.y + fr.h - v / top * fr.h;
        char num[32];
        fmt_num(num, sizeof num, v);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", fr.x, y, fr.x + fr.w, y);
        text(f, fr.x - 6, y + 4, "end", 11, NULL, num);
    }
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n", fr.x, fr.y, fr.x, fr.y + fr.h);
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n", fr.x, fr.y + fr.h, fr.x + fr.w,
            fr.y + fr.h);
    char rot[96];
    snprintf(rot, sizeof rot, "transform=\"rotate(-90 %.1f %.1f)\"", px + 16, fr.y + fr.h / 2);
    text(f, px + 16, fr.y + fr.h / 2, "middle", 12, rot, y_label);
    return fr;
}

void svg_begin(svg_doc *d, FILE *f, int n_panels, int cols, const char *title, const char *subtitle) {
    d->f = f;
    d->cols = cols < 1 ? 1 : cols;
    d->next = 0;
    if (n_panels < 1) n_panels = 1;
    const int used_cols = n_panels < d->cols ? n_panels : d->cols, rows = (n_panels + d->cols - 1) / d->cols;
    const int w = used_cols * SVG_PANEL_W, h = HEADER_H + rows * SVG_PANEL_H;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\">\n", w, h, w,
            h);
    fprintf(f, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", w, h);
    text(f, w / 2.0, 22, "middle", 17, "font-weight=\"bold\"", title);
    if (subtitle) text(f, w / 2.0, 42, "middle", 12, "fill=\"#555\"", subtitle);
}

void svg_bar(svg_doc *d, const svg_bar_chart *c) {
    double vmax = 0;
    for (int i = 0; i < c->n; i++) {
        const double v = c->values[i] + (c->errors ? c->errors[i] : 0);
        if (isfinite(v) && v > vmax) vmax = v;
    }
    double top, step;
    nice_axis(vmax, &top, &step);
    const frame fr = panel(d, c->title, c->y_label, top, step);
    FILE *f = d->f;
    const double slot = c->n > 0 ? fr.w / c->n : fr.w, bw = slot * 0.6;
    size_t longest = 0;
    for (int i = 0; i < c->n; i++) longest = strlen(c->labels[i]) > longest ? strlen(c->labels[i]) : longest;
    const bool slanted = (double)longest * 6.5 > slot; /* labels wider than their slot are slanted */
    for (int i = 0; i < c->n; i++) {
        const double v = isfinite(c->values[i]) && c->values[i] > 0 ? c->values[i] : 0;
        const double x = fr.x + slot * i + (slot - bw) / 2, bh = v / top * fr.h, y = fr.y + fr.h - bh;
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>\n", x, y, bw, bh,
                svg_color(c->colors ? c->colors[i] : 0));
        double label_y = y - 5;
        if (c->errors && c->errors[i] > 0 && isfinite(c->errors[i])) {
            const double cx = x + bw / 2, e = c->errors[i] / top * fr.h, lo = fmin(y + e, fr.y + fr.h); /* not below 0 */
            fprintf(f, "<path d=\"M%.1f %.1fV%.1fM%.1f %.1fH%.1fM%.1f %.1fH%.1f\" stroke=\"#222\" fill=\"none\"/>\n", cx,
                    y - e, lo, cx - 4, y - e, cx + 4, cx - 4, lo, cx + 4);
            label_y = y - e - 5;
        }
        char num[32];
        fmt_num(num, sizeof num, c->values[i]);
        text(f, x + bw / 2, label_y, "middle", 11, NULL, num);
        const double lx = fr.x + slot * i + slot / 2, ly = fr.y + fr.h + 16;
        if (slanted) {
            char rot[96];
            snprintf(rot, sizeof rot, "transform=\"rotate(-30 %.1f %.1f)\"", lx, ly);
            text(f, lx, ly, "end", 11, rot, c->labels[i]);
        } else {
            text(f, lx, ly, "middle", 11, NULL, c->labels[i]);
        }
    }
}

void svg_line(svg_doc *d, const svg_line_chart *c) {
    double ymax = 0, xmin = INFINITY, xmax = -INFINITY;
    for (int s = 0; s < c->n_series; s++)
        for (int i = 0; i < c->series[s].n; i++) {
            const double x = c->series[s].x[i], y = c->series[s].y[i];
            if (isfinite(y) && y > ymax) ymax = y;
            if (isfinite(x)) {
                xmin = x < xmin ? x : xmin;
                xmax = x > xmax ? x : xmax;
            }
        }
    if (!(xmax > xmin)) {
        xmin = isfinite(xmin) ? xmin - 1 : 0;
        xmax = xmin + 2;
    }
    double top, step, xtop, xstep;
    nice_axis(ymax, &top, &step);
    nice_axis(xmax - xmin, &xtop, &xstep);
    if (xstep < 1 && xmax - xmin >= 1) xstep = 1;
    const frame fr = panel(d, c->title, c->y_label, top, step);
    FILE *f = d->f;
#define XPOS(v) (fr.x + ((v) - xmin) / (xmax - xmin) * fr.w)
#define YPOS(v) (fr.y + fr.h - (v) / top * fr.h)
    for (double v = ceil(xmin / xstep) * xstep; v <= xmax + xstep * 1e-6; v += xstep) {
        char num[32];
        fmt_num(num, sizeof num, v);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n", XPOS(v), fr.y + fr.h,
                XPOS(v), fr.y + fr.h + 4);
        text(f, XPOS(v), fr.y + fr.h + 17, "middle", 11, NULL, num);
    }
    text(f, fr.x + fr.w / 2, fr.y + fr.h + 38, "middle", 12, NULL, c->x_label);
    for (int s = 0; s < c->n_series; s++) {
        const svg_series *se = &c->series[s];
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", svg_color(s));
        for (int i = 0; i < se->n; i++)
            if (isfinite(se->x[i]) && isfinite(se->y[i])) fprintf(f, "%.1f,%.1f ", XPOS(se->x[i]), YPOS(se->y[i]));
        fputs("\"/>\n", f);
        for (int i = 0; i < se->n; i++)
            if (isfinite(se->x[i]) && isfinite(se->y[i]))
                fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", XPOS(se->x[i]), YPOS(se->y[i]),
                        svg_color(s));
        /* legend, top right */
        const double lx = fr.x + fr.w - 150, ly = fr.y + 8 + 16 * s;
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"12\" height=\"12\" fill=\"%s\"/>\n", lx, ly, svg_color(s));
        text(f, lx + 18, ly + 10, "start", 11, NULL, se->name);
    }
#undef XPOS
#undef YPOS
}

int svg_end(svg_doc *d) {
    fputs("</svg>\n", d->f);
    return ferror(d->f) ? -1 : 0;
}
