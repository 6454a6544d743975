/* A dependency-free SVG writer for bench charts: a document of panels, each either a bar chart
 * (one bar per label, optional error bars) or a line chart (numeric x, several series). */
#ifndef VKL_SVG_PLOT_H
#define VKL_SVG_PLOT_H

#include <stdio.h>

typedef struct svg_bar_chart {
    const char *title, *y_label;
    int n;                     /* bars */
    const char *const *labels; /* n labels under the bars */
    const double *values;      /* n bar heights (>= 0) */
    const double *errors;      /* n error-bar half heights (may be NULL) */
    const int *colors;         /* n palette indices (may be NULL: all 0) */
} svg_bar_chart;

typedef struct svg_series {
    const char *name;
    int n; /* points */
    const double *x, *y;
} svg_series;

typedef struct svg_line_chart {
    const char *title, *x_label, *y_label;
    int n_series;
    const svg_series *series;
} svg_line_chart;

/* Panel size; a document is `cols` panels wide and as many rows high as needed. */
#define SVG_PANEL_W 560
#define SVG_PANEL_H 340

/* Starts a document of `n_panels` panels in `cols` columns, with a title (and an optional
 * subtitle line) on top. Panels are then drawn in order, left to right, top to bottom. */
typedef struct svg_doc {
    FILE *f;
    int cols, next;
} svg_doc;
void svg_begin(svg_doc *d, FILE *f, int n_panels, int cols, const char *title, const char *subtitle);
void svg_bar(svg_doc *d, const svg_bar_chart *c);
void svg_line(svg_doc *d, const svg_line_chart *c);
/* Closes the document; -1 if a write failed. */
int svg_end(svg_doc *d);

/* The palette color of index i (for legends in other outputs). */
const char *svg_color(int i);

#endif
