/* The per-step arena. A step allocates activations, gradients, index arrays
 * and tape nodes here; lf_arena_reset() forgets them all at once. */
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

struct lf_arena_chunk {
    lf_arena_chunk *next;
    size_t size;  /* usable bytes after the header */
    size_t used;
    unsigned char *base;
};

static size_t round_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

static lf_arena_chunk *chunk_new(size_t size)
{
    size_t header = round_up(sizeof(lf_arena_chunk), LF_ALIGN);
    if (size > SIZE_MAX - header - LF_ALIGN)
        return NULL;
    void *mem = NULL;
    if (posix_memalign(&mem, LF_ALIGN, header + size) != 0)
        return NULL;
    lf_arena_chunk *c = mem;
    c->next = NULL;
    c->size = size;
    c->used = 0;
    c->base = (unsigned char *)mem + header;
    return c;
}

void lf_arena_init(lf_arena *a, size_t initial_bytes)
{
    memset(a, 0, sizeof *a);
    a->chunk_min = initial_bytes > (1u << 16) ? initial_bytes : (1u << 16);
}

void lf_arena_free(lf_arena *a)
{
    lf_arena_chunk *c = a->head;
    while (c) {
        lf_arena_chunk *n = c->next;
        free(c);
        c = n;
    }
    a->head = NULL;
    a->used_total = 0;
}

void *lf_arena_alloc(lf_arena *a, size_t bytes)
{
    size_t need = round_up(bytes ? bytes : 1, LF_ALIGN);
    if (need < bytes)
        return NULL; /* overflow */
    lf_arena_chunk *c = a->head;
    if (!c || c->size - c->used < need) {
        /* grow geometrically so that a step needs few chunks */
        size_t size = a->chunk_min;
        if (c && c->size * 2 > size)
            size = c->size * 2;
        if (size < need)
            size = need;
        lf_arena_chunk *n = chunk_new(size);
        if (!n)
            return NULL;
        a->n_chunk_allocs++;
        n->next = c;
        a->head = n;
        c = n;
    }
    void *p = c->base + c->used;
    c->used += need;
    a->used_total += need;
    return p;
}

void *lf_arena_calloc(lf_arena *a, size_t bytes)
{
    void *p = lf_arena_alloc(a, bytes);
    if (p)
        memset(p, 0, bytes);
    return p;
}

size_t lf_arena_capacity(const lf_arena *a)
{
    size_t total = 0;
    for (const lf_arena_chunk *c = a->head; c; c = c->next)
        total += c->size;
    return total;
}

int lf_arena_reset(lf_arena *a)
{
    if (a->used_total > a->high_water)
        a->high_water = a->used_total;
    a->used_total = 0;
    if (a->head && a->head->next) {
        /* more than one chunk: replace them by one that holds the high water
         * mark with some room to spare, so the next steps fit in it */
        size_t want = a->high_water + a->high_water / 4;
        lf_arena_chunk *n = chunk_new(want);
        if (!n) {
            for (lf_arena_chunk *c = a->head; c; c = c->next)
                c->used = 0;
            return LFLEX_ENOMEM;
        }
        lf_arena_free(a);
        a->n_chunk_allocs++;
        a->head = n;
    } else if (a->head) {
        a->head->used = 0;
    }
    return LFLEX_OK;
}
