/* Star-graph path-finding examples (the LFlexMDM paper's task): a prompt of
 * shuffled directed edges, then the source and the goal; the target is the
 * path as consecutive edge pairs. */
#ifndef LFLEX_STAR_H
#define LFLEX_STAR_H

#include <stdint.h>
#include <stdio.h>

typedef enum { STAR_EASY = 0, STAR_MEDIUM = 1, STAR_HARD = 2 } star_level;

#define STAR_MAX_PROMPT 112
#define STAR_MAX_TARGET 22

typedef struct star_example {
    int prompt[STAR_MAX_PROMPT];
    int n_prompt;
    int target[STAR_MAX_TARGET];
    int n_target;
} star_example;

/* The number of node labels of a level (20, 20, 56). */
int star_labels(star_level level);
/* "easy", "medium", "hard" -> level; -1 for anything else. */
int star_level_from_name(const char *name);
/* One random example; *rng is a splitmix64 state. */
void star_generate(star_level level, uint64_t *rng, star_example *ex);
/* "PROMPT<TAB>TARGET\n" with labels in decimal. */
void star_write(FILE *f, const star_example *ex);
/* The vocabulary text of a level: "0 1 2 ... V-1". */
void star_vocab(star_level level, char *buf, size_t cap);

#endif
