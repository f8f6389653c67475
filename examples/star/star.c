#include <string.h>

#include "star.h"

static uint64_t next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int uniform(uint64_t *s, int lo, int hi) /* inclusive */
{
    return lo + (int)(next(s) % (uint64_t)(hi - lo + 1));
}

int star_labels(star_level level)
{
    return level == STAR_HARD ? 56 : 20;
}

int star_level_from_name(const char *name)
{
    static const char *const names[] = {"easy", "medium", "hard"};
    for (int i = 0; i < 3; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

/* Arms as node-index paths: arm i has len[i] nodes, the shared centre at
 * position pos[i]; node indices are then mapped to labels drawn without
 * replacement. */
void star_generate(star_level level, uint64_t *rng, star_example *ex)
{
    int degree = level == STAR_HARD ? 5 : 3, len[5], pos[5];
    for (int i = 0; i < degree; i++) {
        switch (level) {
        case STAR_EASY: /* the source is the centre; arms of 5 nodes counting it */
            len[i] = 5;
            pos[i] = 0;
            break;
        case STAR_MEDIUM: /* 3..6 nodes, at least 2 after the centre */
            len[i] = uniform(rng, 3, 6);
            pos[i] = uniform(rng, 0, len[i] - 3);
            break;
        default: /* 6..12 nodes, at least 5 after the centre */
            len[i] = uniform(rng, 6, 12);
            pos[i] = uniform(rng, 0, len[i] - 6);
            break;
        }
    }
    /* node indices: 0 is the centre, the others numbered arm by arm */
    int arm_nodes[5][12], n_nodes = 1;
    for (int i = 0; i < degree; i++)
        for (int k = 0; k < len[i]; k++)
            arm_nodes[i][k] = k == pos[i] ? 0 : n_nodes++;
    /* labels without replacement (partial Fisher-Yates) */
    int labels[56], V = star_labels(level);
    for (int v = 0; v < V; v++)
        labels[v] = v;
    for (int v = 0; v < n_nodes; v++) {
        int j = uniform(rng, v, V - 1), t = labels[v];
        labels[v] = labels[j];
        labels[j] = t;
    }
    /* directed edges along every arm, shuffled */
    int edges[60][2], n_edges = 0;
    for (int i = 0; i < degree; i++)
        for (int k = 0; k + 1 < len[i]; k++) {
            edges[n_edges][0] = labels[arm_nodes[i][k]];
            edges[n_edges][1] = labels[arm_nodes[i][k + 1]];
            n_edges++;
        }
    for (int e = n_edges - 1; e > 0; e--) {
        int j = uniform(rng, 0, e), a = edges[e][0], b = edges[e][1];
        edges[e][0] = edges[j][0];
        edges[e][1] = edges[j][1];
        edges[j][0] = a;
        edges[j][1] = b;
    }
    /* the path: easy goes from the centre to the end of a random arm; the
     * others follow arm 0 from its first node to its last */
    int path_arm = level == STAR_EASY ? uniform(rng, 0, degree - 1) : 0;
    ex->n_prompt = 0;
    for (int e = 0; e < n_edges; e++) {
        ex->prompt[ex->n_prompt++] = edges[e][0];
        ex->prompt[ex->n_prompt++] = edges[e][1];
    }
    ex->prompt[ex->n_prompt++] = labels[arm_nodes[path_arm][0]];
    ex->prompt[ex->n_prompt++] = labels[arm_nodes[path_arm][len[path_arm] - 1]];
    ex->n_target = 0;
    for (int k = 0; k + 1 < len[path_arm]; k++) {
        ex->target[ex->n_target++] = labels[arm_nodes[path_arm][k]];
        ex->target[ex->n_target++] = labels[arm_nodes[path_arm][k + 1]];
    }
}

void star_write(FILE *f, const star_example *ex)
{
    for (int i = 0; i < ex->n_prompt; i++)
        fprintf(f, "%s%d", i ? " " : "", ex->prompt[i]);
    fputc('\t', f);
    for (int i = 0; i < ex->n_target; i++)
        fprintf(f, "%s%d", i ? " " : "", ex->target[i]);
    fputc('\n', f);
}

void star_vocab(star_level level, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int v = 0; v < star_labels(level) && n + 8 < cap; v++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%d", v ? " " : "", v);
}
