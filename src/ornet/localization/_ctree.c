/* Component trees of a map thresholded at every level at once (the fast path of ornet.localization.tree).
 *
 * Input: a "band" image (uint16, H x W, C order): the foreground at level i (0 <= i < n) is the
 * set of pixels with band > i. One pass of union-find over the pixels in order of band value gives
 * every level's regions, as OpenCV's findContours(RETR_TREE) sees them:
 *
 * - regions: 8-connected components of the foreground (one outer contour each);
 * - holes: 4-connected components of the background that do not touch the image border (one
 *   hole contour each, traced through the foreground pixels 4-adjacent to the hole, so its
 *   extent is the hole's extent grown by one pixel on every side);
 * - the area of a region's outer contour (cv2.contourArea, the shoelace formula on the traced
 *   boundary through pixel centres) counts the 2 x 2 pixel windows of the region with its holes
 *   filled: a window with all four pixels inside is a unit square, one with three inside a half
 *   square, others nothing. The filled map r (holes raised to the level where they join the
 *   background around the image: a reconstruction by erosion with 4-connectivity) has as
 *   regions at every level the filled outermost regions of the map, and tells which pixels are
 *   in a hole at which levels (band <= i < r).
 *
 * Passes: fill (two raster scans and a queue), then for `largest` a union-find over r from the
 * top value down with the window counts, for `multi` a union-find over the band image from the
 * top down (regions) and one over the hole pixels from the bottom up (holes). All O(N + n).
 *
 * Boxes follow boundingRect's convention: x0, y0, x1 + 1, y1 + 1, clipped to W - 1, H - 1.
 * Python calls sweep(band, height, width, n, largest, multi) -> (largest, multi):
 *   largest: bytes of n x 5 int32 (x0, y0, x1, y1, flag), the region of largest outer-contour area at
 *     each level; flag 0 = no foreground, 1 = one region has the largest area, 2 = a tie (the caller
 *     asks OpenCV, whose contour order decides ties), or None;
 *   multi: bytes of M x 5 int32 (level, x0, y0, x1, y1), the box of every contour at every level, or None.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LEVELS 65534 /* levels and band values fit uint16 */

typedef struct {
    int32_t *data;
    Py_ssize_t len, cap;
} IntBuf;

static int buf_push5(IntBuf *b, int32_t a, int32_t c, int32_t d, int32_t e, int32_t f)
{
    if (b->len + 5 > b->cap) {
        Py_ssize_t cap = b->cap ? 2 * b->cap : 4096;
        int32_t *data = realloc(b->data, (size_t)cap * sizeof(int32_t));
        if (!data)
            return -1;
        b->data = data;
        b->cap = cap;
    }
    int32_t *p = b->data + b->len;
    p[0] = a; p[1] = c; p[2] = d; p[3] = e; p[4] = f;
    b->len += 5;
    return 0;
}

/* What a set's root knows: its extent and a summed (area) or minimised (border) number. */
typedef struct {
    int32_t x0, y0, x1, y1, extra, pad;
} Node;

/* Images are held with a one-pixel frame (H + 2) x (W + 2), so that neighbours need no bounds
 * checks; pixel (x, y) is at index (y + 1) * (W + 2) + x + 1. Arrays of that size, except
 * start / cursor (n + 2 entries). */
typedef struct {
    int H, W, W2, n;
    Py_ssize_t size;
    int32_t *parent, *order, *xy, *start, *cursor, *live;
    Node *node;
    Py_ssize_t nlive;
} Work;

static inline int32_t find(int32_t *parent, int32_t x)
{
    int32_t px = parent[x];
    while (px != x) {
        int32_t ppx = parent[px];
        if (ppx == px)
            return px;
        parent[x] = ppx; /* path halving */
        x = ppx;
        px = parent[x];
    }
    return x;
}

/* Image pixels grouped by value, in raster order within a value (a stable counting sort):
 * order[start[v] .. start[v + 1]) hold the framed indices of value v, xy their x | y << 16. */
static void sort_by_value(Work *w, const uint16_t *v)
{
    int n = w->n;
    memset(w->start, 0, (size_t)(n + 2) * sizeof(int32_t));
    for (int y = 0; y < w->H; y++) {
        const uint16_t *row = v + (Py_ssize_t)(y + 1) * w->W2 + 1;
        for (int x = 0; x < w->W; x++)
            w->start[row[x] + 1]++;
    }
    for (int b = 0; b <= n; b++)
        w->start[b + 1] += w->start[b];
    memcpy(w->cursor, w->start, (size_t)(n + 1) * sizeof(int32_t));
    for (int y = 0; y < w->H; y++) {
        int32_t base = (y + 1) * w->W2 + 1;
        for (int x = 0; x < w->W; x++) {
            int32_t k = w->cursor[v[base + x]]++;
            w->order[k] = base + x;
            w->xy[k] = x | (y << 16);
        }
    }
}

/* Merges the set of q into the set of `root` (a root). */
static inline void join(Work *w, int32_t root, int32_t q, int sum)
{
    int32_t b = find(w->parent, q);
    if (b == root)
        return;
    Node *na = &w->node[root], *nb = &w->node[b];
    w->parent[b] = root;
    if (nb->x0 < na->x0) na->x0 = nb->x0;
    if (nb->y0 < na->y0) na->y0 = nb->y0;
    if (nb->x1 > na->x1) na->x1 = nb->x1;
    if (nb->y1 > na->y1) na->y1 = nb->y1;
    if (sum)
        na->extra += nb->extra;
    else if (nb->extra < na->extra)
        na->extra = nb->extra;
}

/* Drops absorbed roots from the live list. */
static void compact(Work *w)
{
    Py_ssize_t k = 0;
    for (Py_ssize_t j = 0; j < w->nlive; j++) {
        int32_t r = w->live[j];
        if (w->parent[r] == r)
            w->live[k++] = r;
    }
    w->nlive = k;
}

/* Index of the lowest set bit of a non-zero mask. */
static inline int lowest_bit(unsigned mask)
{
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_ctz(mask);
#else
    int k = 0;
    while (!(mask & 1)) {
        mask >>= 1;
        k++;
    }
    return k;
#endif
}

/* Pixel p joins the sets of its neighbours marked in `mask` (bit k: neighbour nb[k]); the first
 * neighbour's root becomes p's root, the others' roots are merged into it; with no neighbour p
 * starts a new set (a new region). Returns p's root. */
static inline int32_t attach(Work *w, int32_t p, int32_t x, int32_t y, int32_t extra, unsigned mask,
                             const int32_t *nb, int sum)
{
    if (!mask) { /* a new region (or hole) */
        w->parent[p] = p;
        Node *np = &w->node[p];
        np->x0 = np->x1 = x;
        np->y0 = np->y1 = y;
        np->extra = extra;
        w->live[w->nlive++] = p;
        return p;
    }
    int32_t root = find(w->parent, p + nb[lowest_bit(mask)]);
    w->parent[p] = root;
    for (mask &= mask - 1; mask; mask &= mask - 1) {
        int32_t q = p + nb[lowest_bit(mask)];
        if (w->parent[q] != root)
            join(w, root, q, sum);
    }
    Node *nr = &w->node[root];
    if (x < nr->x0) nr->x0 = x;
    if (y < nr->y0) nr->y0 = y;
    if (x > nr->x1) nr->x1 = x;
    if (y > nr->y1) nr->y1 = y;
    if (sum)
        nr->extra += extra;
    else if (extra < nr->extra)
        nr->extra = extra;
    return root;
}

/* Twice the area added to a region by a new pixel: its four 2 x 2 windows, given which of its 8
 * neighbours are in (bits 0..7: the 3 x 3 neighbourhood in raster order without the centre); a
 * window with three pixels in is a half square, with four a whole one (two halves). */
static unsigned char GAIN[256];

/* For each set of 8 neighbours in: one neighbour per group of mutually 8-adjacent ones (those are
 * in one set already: every pixel joined the sets of all its neighbours that were in before it),
 * as a mask. At most four groups (the four corners alone). */
static unsigned char REPS[256];

static void init_reps(void)
{
    static const int dx[8] = {-1, 0, 1, -1, 1, -1, 0, 1}, dy[8] = {-1, -1, -1, 0, 0, 1, 1, 1};
    for (unsigned m = 0; m < 256; m++) {
        int group[8], reps = 0;
        for (int k = 0; k < 8; k++)
            group[k] = -1;
        for (int k = 0; k < 8; k++) {
            if (!((m >> k) & 1) || group[k] >= 0)
                continue;
            reps |= 1 << k; /* k starts a group: flood it over adjacent neighbours in */
            int stack[8], top = 0;
            stack[top++] = k;
            group[k] = k;
            while (top) {
                int a = stack[--top];
                for (int c = 0; c < 8; c++) {
                    if (((m >> c) & 1) && group[c] < 0 && abs(dx[a] - dx[c]) <= 1 && abs(dy[a] - dy[c]) <= 1) {
                        group[c] = k;
                        stack[top++] = c;
                    }
                }
            }
        }
        REPS[m] = (unsigned char)reps;
    }
}

static void init_gain(void)
{
    static const int win[4][3] = {{0, 1, 3}, {1, 2, 4}, {3, 5, 6}, {4, 6, 7}};
    for (unsigned m = 0; m < 256; m++) {
        int g = 0;
        for (int k = 0; k < 4; k++) {
            int c = 1 + ((m >> win[k][0]) & 1) + ((m >> win[k][1]) & 1) + ((m >> win[k][2]) & 1);
            g += c >= 3; /* +1 when the window gets its third pixel, +1 for its fourth */
        }
        GAIN[m] = (unsigned char)g;
    }
}

/* Foreground regions (8-connectivity) of v > i for i = n - 1 .. 0, pixels added from the top
 * value down; the frame holds 0 (never in). A neighbour before p in raster order is already in
 * when its value is >= b, one after p when > b. With `largest`, each region's outer-contour area
 * and the largest region per level; otherwise every region's box per level. */
static int foreground(Work *w, const uint16_t *v, int32_t *largest, IntBuf *boxes)
{
    int W = w->W, H = w->H, W2 = w->W2;
    const int32_t nb[8] = {-W2 - 1, -W2, -W2 + 1, -1, 1, W2 - 1, W2, W2 + 1};
    sort_by_value(w, v);
    w->nlive = 0;
    for (int b = w->n; b >= 1; b--) {
        for (int32_t k = w->start[b]; k < w->start[b + 1]; k++) {
            int32_t p = w->order[k], x = w->xy[k] & 0xFFFF, y = w->xy[k] >> 16;
            unsigned mask = (unsigned)(v[p - W2 - 1] >= b) | (unsigned)(v[p - W2] >= b) << 1 |
                            (unsigned)(v[p - W2 + 1] >= b) << 2 | (unsigned)(v[p - 1] >= b) << 3 |
                            (unsigned)(v[p + 1] > b) << 4 | (unsigned)(v[p + W2 - 1] > b) << 5 |
                            (unsigned)(v[p + W2] > b) << 6 | (unsigned)(v[p + W2 + 1] > b) << 7;
            attach(w, p, x, y, largest ? GAIN[mask] : 0, REPS[mask], nb, 1);
        }
        int level = b - 1;
        compact(w);
        if (largest) {
            int32_t *out = largest + 5 * level;
            int32_t best = -1, ties = 0, arg = -1;
            for (Py_ssize_t j = 0; j < w->nlive; j++) {
                int32_t r = w->live[j], a = w->node[r].extra;
                if (a > best) {
                    best = a;
                    arg = r;
                    ties = 0;
                } else if (a == best) {
                    ties++;
                }
            }
            if (arg < 0) {
                out[0] = out[1] = out[2] = out[3] = out[4] = 0;
            } else {
                Node *na = &w->node[arg];
                out[0] = na->x0;
                out[1] = na->y0;
                out[2] = na->x1 + 1 < W - 1 ? na->x1 + 1 : W - 1;
                out[3] = na->y1 + 1 < H - 1 ? na->y1 + 1 : H - 1;
                out[4] = ties ? 2 : 1;
            }
        } else {
            for (Py_ssize_t j = 0; j < w->nlive; j++) {
                Node *na = &w->node[w->live[j]];
                if (buf_push5(boxes, level, na->x0, na->y0, na->x1 + 1 < W - 1 ? na->x1 + 1 : W - 1,
                              na->y1 + 1 < H - 1 ? na->y1 + 1 : H - 1) < 0)
                    return -1;
            }
        }
    }
    return 0;
}

/* The filled map: r[p] = the lowest level i at which p joins the background around the image,
 * i.e. the smallest over 4-paths from the frame to p of the largest band on the path
 * (>= band[p]); the frame holds 0. A reconstruction by erosion (Vincent 1993, hybrid algorithm):
 * a forward and a backward raster scan, then a FIFO for the pixels that can still go down. */
static void fill_holes(Work *w, const uint16_t *band, uint16_t *r, uint8_t *queued)
{
    int W = w->W, H = w->H, W2 = w->W2, n = w->n;
    int32_t *queue = w->order; /* borrowed: a ring of w->size entries */
    Py_ssize_t head = 0, count = 0, cap = w->size;
    for (Py_ssize_t p = 0; p < w->size; p++) {
        r[p] = (uint16_t)n;
        queued[p] = 0;
    }
    for (int x = 0; x < W2; x++)
        r[x] = r[(Py_ssize_t)(H + 1) * W2 + x] = 0;
    for (int y = 1; y <= H; y++)
        r[y * W2] = r[y * W2 + W + 1] = 0;
    for (int y = 1; y <= H; y++) {
        for (int32_t p = y * W2 + 1, end = p + W; p < end; p++) {
            uint16_t m = r[p];
            if (r[p - W2] < m) m = r[p - W2];
            if (r[p - 1] < m) m = r[p - 1];
            r[p] = band[p] > m ? band[p] : m;
        }
    }
    for (int y = H; y >= 1; y--) {
        for (int32_t p = y * W2 + W, end = y * W2; p > end; p--) {
            uint16_t m = r[p];
            if (r[p + W2] < m) m = r[p + W2];
            if (r[p + 1] < m) m = r[p + 1];
            r[p] = band[p] > m ? band[p] : m;
            if ((r[p + 1] > r[p] && r[p + 1] > band[p + 1]) || (r[p + W2] > r[p] && r[p + W2] > band[p + W2])) {
                queue[(head + count++) % cap] = p;
                queued[p] = 1;
            }
        }
    }
    while (count) {
        int32_t p = queue[head], q;
        head = (head + 1) % cap;
        count--;
        queued[p] = 0;
        uint16_t rp = r[p];
#define LOWER(qq)                                                             \
        if (r[q = (qq)] > rp && r[q] > band[q]) {                             \
            r[q] = band[q] > rp ? band[q] : rp;                               \
            if (!queued[q]) {                                                 \
                queue[(head + count++) % cap] = q;                            \
                queued[q] = 1;                                                \
            }                                                                 \
        }
        LOWER(p - W2);
        LOWER(p + W2);
        LOWER(p - 1);
        LOWER(p + 1);
#undef LOWER
    }
}

/* Holes: 4-connected background components (band <= i) without a pixel on the image border, for
 * i = 0 .. n - 1. A pixel is in a hole at level i iff band <= i < r (r: the filled map), so only
 * the pixels with r > band take part (few, on realistic maps), added from the bottom value up;
 * a hole's pixels share their r (they join the border together), so a set is a hole while its
 * r > i, and pixels never leave a set that is still a hole. */
static int holes(Work *w, const uint16_t *v, const uint16_t *r, IntBuf *boxes)
{
    int W = w->W, H = w->H, W2 = w->W2, n = w->n;
    const int32_t nb[4] = {-W2, -1, 1, W2};
    memset(w->start, 0, (size_t)(n + 2) * sizeof(int32_t));
    for (int y = 1; y <= H; y++)
        for (int32_t p = y * W2 + 1, end = p + W; p < end; p++)
            if (r[p] > v[p])
                w->start[v[p] + 1]++;
    for (int b = 0; b <= n; b++)
        w->start[b + 1] += w->start[b];
    memcpy(w->cursor, w->start, (size_t)(n + 1) * sizeof(int32_t));
    for (int y = 1; y <= H; y++) {
        for (int32_t x = 0, p = y * W2 + 1; x < W; x++, p++) {
            if (r[p] > v[p]) {
                int32_t k = w->cursor[v[p]]++;
                w->order[k] = p;
                w->xy[k] = x | ((y - 1) << 16);
            }
        }
    }
    w->nlive = 0;
#define HOLE(q) (r[q] > v[q])
    for (int b = 0; b < n; b++) {
        for (int32_t k = w->start[b]; k < w->start[b + 1]; k++) {
            int32_t p = w->order[k], x = w->xy[k] & 0xFFFF, y = w->xy[k] >> 16;
            unsigned mask = (unsigned)(HOLE(p - W2) && v[p - W2] <= b) | (unsigned)(HOLE(p - 1) && v[p - 1] <= b) << 1 |
                            (unsigned)(HOLE(p + 1) && v[p + 1] < b) << 2 | (unsigned)(HOLE(p + W2) && v[p + W2] < b) << 3;
            attach(w, p, x, y, r[p], mask, nb, 0);
        }
#undef HOLE
        compact(w);
        for (Py_ssize_t j = 0; j < w->nlive; j++) {
            Node *nh = &w->node[w->live[j]];
            if (nh->extra > b) { /* not joined to the border at level b: a hole */
                int32_t x1 = nh->x1 + 2 < W - 1 ? nh->x1 + 2 : W - 1;
                int32_t y1 = nh->y1 + 2 < H - 1 ? nh->y1 + 2 : H - 1;
                if (buf_push5(boxes, b, nh->x0 - 1, nh->y0 - 1, x1, y1) < 0)
                    return -1;
            }
        }
    }
    return 0;
}

static void work_free(Work *w)
{
    free(w->parent); free(w->order); free(w->xy); free(w->start); free(w->cursor); free(w->live); free(w->node);
}

static int work_alloc(Work *w, int H, int W, int n)
{
    w->H = H; w->W = W; w->W2 = W + 2; w->n = n;
    w->size = (Py_ssize_t)(H + 2) * (W + 2);
    size_t s = (size_t)w->size * sizeof(int32_t), s2 = (size_t)(n + 2) * sizeof(int32_t);
    w->parent = malloc(s); w->order = malloc(s); w->xy = malloc(s); w->live = malloc(s);
    w->start = malloc(s2); w->cursor = malloc(s2);
    w->node = malloc((size_t)w->size * sizeof(Node));
    w->nlive = 0;
    if (!(w->parent && w->order && w->xy && w->live && w->start && w->cursor && w->node)) {
        work_free(w);
        return -1;
    }
    return 0;
}

/* The band image copied into a frame of 0; returns the largest band value. */
static int framed(const Work *w, const uint16_t *band, uint16_t *out)
{
    int top = 0;
    for (Py_ssize_t p = 0; p < w->size; p++)
        out[p] = 0;
    for (int y = 0; y < w->H; y++) {
        const uint16_t *row = band + (Py_ssize_t)y * w->W;
        uint16_t *dst = out + (Py_ssize_t)(y + 1) * w->W2 + 1;
        for (int x = 0; x < w->W; x++) {
            dst[x] = row[x];
            if (row[x] > top)
                top = row[x];
        }
    }
    return top;
}

static PyObject *sweep(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer view;
    int H, W, n, want_largest, want_multi;
    if (!PyArg_ParseTuple(args, "y*iiipp", &view, &H, &W, &n, &want_largest, &want_multi))
        return NULL;
    PyObject *result = NULL, *largest_obj = NULL, *multi_obj = NULL;
    Work w;
    uint16_t *v = NULL, *r = NULL;
    uint8_t *queued = NULL;
    IntBuf boxes = {NULL, 0, 0};
    int32_t *largest = NULL;
    int ok = 0;
    Py_ssize_t npix = (Py_ssize_t)H * W;
    const uint16_t *band = view.buf;
    if (H <= 0 || W <= 0 || H > 32000 || W > 32000 || n < 0 || n > MAX_LEVELS ||
        view.len != npix * (Py_ssize_t)sizeof(uint16_t)) {
        PyErr_SetString(PyExc_ValueError, "sweep: band must be H x W uint16 (H, W <= 32000) and 0 <= n <= 65534");
        PyBuffer_Release(&view);
        return NULL;
    }
    if (work_alloc(&w, H, W, n) < 0) {
        PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    int too_high = 0;
    Py_BEGIN_ALLOW_THREADS
    v = malloc((size_t)w.size * sizeof(uint16_t));
    r = malloc((size_t)w.size * sizeof(uint16_t));
    queued = malloc((size_t)w.size);
    largest = want_largest ? calloc((size_t)(n ? n : 1) * 5, sizeof(int32_t)) : NULL;
    if (v && r && queued && (largest || !want_largest) && !(too_high = framed(&w, band, v) > n)) {
        ok = 1;
        fill_holes(&w, v, r, queued);
        if (want_largest)
            ok = foreground(&w, r, largest, NULL) == 0;
        if (ok && want_multi)
            ok = foreground(&w, v, NULL, &boxes) == 0 && holes(&w, v, r, &boxes) == 0;
    }
    Py_END_ALLOW_THREADS
    if (too_high) {
        PyErr_SetString(PyExc_ValueError, "sweep: band values must be <= n");
        goto done;
    }
    if (!ok) {
        PyErr_NoMemory();
        goto done;
    }
    if (want_largest) {
        largest_obj = PyBytes_FromStringAndSize((const char *)largest, (Py_ssize_t)n * 5 * sizeof(int32_t));
        if (!largest_obj)
            goto done;
    } else {
        largest_obj = Py_NewRef(Py_None);
    }
    if (want_multi) {
        multi_obj = PyBytes_FromStringAndSize((const char *)boxes.data, boxes.len * (Py_ssize_t)sizeof(int32_t));
        if (!multi_obj)
            goto done;
    } else {
        multi_obj = Py_NewRef(Py_None);
    }
    result = PyTuple_Pack(2, largest_obj, multi_obj);
done:
    Py_XDECREF(largest_obj);
    Py_XDECREF(multi_obj);
    free(boxes.data);
    free(largest);
    free(v);
    free(r);
    free(queued);
    work_free(&w);
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef methods[] = {
    {"sweep", sweep, METH_VARARGS, "sweep(band, height, width, n, largest, multi) -> (largest, multi)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ctree", "Component trees of thresholded maps.", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__ctree(void)
{
    init_gain();
    init_reps();
    return PyModule_Create(&module);
}
