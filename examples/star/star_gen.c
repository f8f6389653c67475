/* lflex-star: write star-graph examples in the data-file format.
 *   lflex-star LEVEL N [SEED] > file.txt      (LEVEL: easy, medium, hard) */
#include <stdio.h>
#include <stdlib.h>

#include "star.h"

int main(int argc, char **argv)
{
    int level = argc >= 3 ? star_level_from_name(argv[1]) : -1;
    long n = argc >= 3 ? atol(argv[2]) : 0;
    if (level < 0 || n <= 0) {
        fprintf(stderr, "usage: lflex-star easy|medium|hard N [SEED]\n");
        return 2;
    }
    uint64_t rng = argc > 3 ? strtoull(argv[3], NULL, 10) : 1;
    star_example ex;
    for (long i = 0; i < n; i++) {
        star_generate((star_level)level, &rng, &ex);
        star_write(stdout, &ex);
    }
    return ferror(stdout) ? 1 : 0;
}
