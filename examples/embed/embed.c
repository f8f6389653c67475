/* A minimal host program: load a checkpoint, query the rates of a partial
 * sequence, generate a few sequences. Build against an installed liblflex:
 *   cc embed.c $(pkg-config --cflags --libs lflex) -o embed
 *   ./embed CHECKPOINT */
#include <lflex/lflex.h>
#include <stdio.h>
#include <string.h>

static int fail(const char *what)
{
    fprintf(stderr, "embed: %s: %s\n", what, lflex_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: embed CHECKPOINT\n");
        return 2;
    }
    lflex_model_t *model;
    if (lflex_model_load(&model, argv[1]))
        return fail("load");
    int64_t vocab, max_len;
    lflex_model_get(model, LFLEX_PROP_VOCAB_SIZE, &vocab);
    lflex_model_get(model, LFLEX_PROP_MAX_LEN, &max_len);

    /* rates of [MASK, EOS] at t = 0.5 */
    int32_t x[2] = {LFLEX_TOKEN_MASK, LFLEX_TOKEN_EOS};
    float probs[2 * 4096], unmask[2], insert[2];
    if (vocab > 4096 || lflex_model_rates(model, x, 2, 0.5, probs, unmask, insert))
        return fail("rates");
    printf("t=0.5: insert rate %.4f, unmask rate %.4f\n", insert[1], unmask[0]);

    /* three unconditional sequences */
    lflex_sampler_t *sampler;
    const char *opts = "steps: 32\nseed: 1\n";
    if (lflex_sampler_new(&sampler, model, opts, strlen(opts)))
        return fail("sampler");
    int32_t tmpl[1] = {LFLEX_TOKEN_EOS}, out[4096];
    for (int i = 0; i < 3 && max_len <= 4096; i++) {
        size_t n, len;
        char text[8192];
        if (lflex_sampler_generate(sampler, tmpl, NULL, 1, out, (size_t)max_len, &n) ||
            lflex_model_decode(model, out, n, text, sizeof text, &len))
            return fail("generate");
        printf("%s\n", text);
    }
    lflex_sampler_free(sampler);
    lflex_model_free(model);
    return 0;
}
