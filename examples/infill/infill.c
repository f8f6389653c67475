/* A worked infilling example (doc/sampling.md): train a small model on
 * "counting" sentences for a few hundred steps, then fill the gaps of
 * "one _ three _ _ six" and print the insertion order the model used. */
#include <lflex/lflex.h>
#include <stdio.h>
#include <string.h>

static const char *words[] = {"one", "two", "three", "four", "five", "six", "seven", "eight"};

static int fail(const char *what)
{
    fprintf(stderr, "infill: %s: %s\n", what, lflex_last_error());
    return 1;
}

int main(void)
{
    const char *cfg = "model: {d_model: 64, n_heads: 4, n_layers: 2, max_len: 12}\n"
                      "vocab: {tokenizer: words, tokens: \"one two three four five six seven eight\"}\n"
                      "train: {lr: 0.002, warmup: 50, seed: 1}\n";
    lflex_model_t *m;
    if (lflex_model_new(&m, cfg, strlen(cfg)))
        return fail("model");
    /* training data: runs of consecutive number words, 3 to 8 long */
    int32_t tok[32 * 9];
    size_t off[33];
    uint64_t rng = 42;
    lflex_train_stats st = {.struct_size = sizeof st};
    for (int step = 1; step <= 2000; step++) {
        off[0] = 0;
        for (int b = 0; b < 32; b++) {
            rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
            int start = (int)((rng >> 33) % 6), len = 3 + (int)((rng >> 40) % 6);
            if (start + len > 8)
                len = 8 - start;
            for (int i = 0; i < len; i++)
                tok[off[b] + (size_t)i] = LFLEX_TOKEN_FIRST_USER + start + i;
            tok[off[b] + (size_t)len] = LFLEX_TOKEN_EOS;
            off[b + 1] = off[b] + (size_t)len + 1;
        }
        if (lflex_model_train_step(m, tok, NULL, off, 32, &st))
            return fail("train");
        if (step % 500 == 0)
            printf("step %d: unmask loss %.3f, insert loss %.3f\n", step, st.unmask_loss, st.insert_loss);
    }
    /* the template: given words, an open gap wherever words are missing */
    const char *given = "one three six <eos>";
    int32_t tmpl[8];
    size_t n;
    if (lflex_model_encode(m, given, strlen(given), tmpl, 8, &n))
        return fail("encode");
    uint8_t open[4] = {0, 1, 1, 0}; /* gaps left of "three" and "six" */
    lflex_sampler_t *s;
    const char *scfg = "steps: 32\ntemperature: 0\nseed: 7";
    if (lflex_sampler_new(&s, m, scfg, strlen(scfg)))
        return fail("sampler");
    int32_t out[12];
    size_t out_off[2], tmpl_off[2] = {0, n};
    float t_ins[12], t_um[12];
    if (lflex_sampler_generate_batch(s, tmpl, open, tmpl_off, 1, out, 12, out_off, t_ins, t_um))
        return fail("generate");
    char text[256];
    size_t len;
    lflex_model_decode(m, out, out_off[1], text, sizeof text, &len);
    printf("template: %s\nfilled:   %s\n", given, text);
    for (size_t i = 0; i + 1 < out_off[1]; i++)
        printf("  %-6s inserted at t=%.2f, unmasked at t=%.2f%s\n", words[out[i] - LFLEX_TOKEN_FIRST_USER],
               t_ins[i], t_um[i], t_ins[i] == 0 ? " (given)" : "");
    lflex_sampler_free(s);
    lflex_model_free(m);
    return 0;
}
