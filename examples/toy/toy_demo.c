/* The first demo: trains the toy model of the autograd core and prints its
 * loss falling. (The model demo of later releases replaces it.) */
#include <stdio.h>
#include <stdlib.h>

#include "toy_model.h"

int main(void)
{
    enum { V = 16, N_SEQ = 16, MAX_LEN = 24, STEPS = 1000 };
    toy_model m;
    if (toy_init(&m, V, 32, 2, 42) != 0) {
        fprintf(stderr, "toy demo: out of memory\n");
        return 1;
    }
    static int32_t tokens[N_SEQ * MAX_LEN], targets[N_SEQ * MAX_LEN], offsets[N_SEQ + 1];
    uint64_t rng = 7;
    printf("toy model: %ld parameters; target = (token + left neighbour) mod %d\n", (long)m.n_params, V);
    double first = 0, loss = 0, avg = 0;
    for (int step = 1; step <= STEPS; step++) {
        toy_batch(&rng, V, N_SEQ, 4, MAX_LEN, tokens, targets, offsets);
        if (toy_train_step(&m, tokens, targets, offsets, N_SEQ, 1e-2, &loss) != 0) {
            fprintf(stderr, "toy demo: training step %d failed\n", step);
            toy_free(&m);
            return 1;
        }
        if (step == 1)
            first = loss;
        avg += loss;
        if (step % 100 == 0) {
            printf("step %4d  loss %.4f\n", step, avg / 100);
            avg = 0;
        }
    }
    printf("loss fell from %.4f to %.4f\n", first, loss);
    toy_free(&m);
    return loss < first ? 0 : 1;
}
