/* Fuzz target for the checkpoint reader and the model loader. Any input must
 * either be rejected (LFLEX_EFORMAT, or LFLEX_ENOMEM) with nothing returned,
 * or give entries that lie inside the input and agree with their shapes;
 * every byte of every tensor is read so that sanitizers see any
 * out-of-bounds pointer.
 *
 * A file that reads is then loaded as a checkpoint (lf_checkpoint_load_st:
 * the format version, the config YAML from the metadata, the vocabulary,
 * step and random state, each tensor's name, dtype, shape and values
 * against the model the config describes, then the model). The load either
 * fails with LFLEX_EFORMAT / LFLEX_EVERSION (a message naming the input) or
 * LFLEX_ENOMEM and leaves the model zeroed, or gives a model whose weights,
 * moments and EMA copy are the file's tensors bit for bit. The corpus has
 * valid checkpoints of small models (tests/fuzz/make_safetensors_corpus.py)
 * without the checksum, so that mutations reach past the reader. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "lf_error.h"
#include "lflex/lflex.h"
#include "tests/fuzz/fuzz_target.h"

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_safetensors: %s (%s)\n", what, lflex_last_error());
        abort();
    }
}

/* buffer `buf` of the model holds the file's tensors `<prefix><param>` */
static void check_buffer(const lf_model *m, const lf_st_file *f, const lf_real *buf, const char *prefix)
{
    char name[LF_PARAM_NAME_MAX + 16];
    for (int i = 0; i < m->params.n; i++) {
        const lf_param *p = m->params.items[i];
        snprintf(name, sizeof name, "%s%s", prefix, p->name);
        const lf_st_entry *e = lf_st_find(f, name);
        check(e != NULL && e->dtype == LF_ST_F32 && e->nbytes == (size_t)p->numel * sizeof(lf_real),
              "a loaded parameter has no tensor of its size in the file");
        check(memcmp(buf + p->offset, e->data, e->nbytes) == 0, "a loaded buffer differs from the file");
    }
}

static void load_checkpoint(const lf_st_file *f)
{
    lf_model m;
    int st = lf_checkpoint_load_st(&m, f, "fuzz");
    if (st != LFLEX_OK) {
        check(st == LFLEX_EFORMAT || st == LFLEX_EVERSION || st == LFLEX_ENOMEM, "unexpected load status");
        check(st == LFLEX_ENOMEM || strncmp(lflex_last_error(), "fuzz: ", 6) == 0, "message without the name");
        static const lf_model zero;
        check(memcmp(&m, &zero, sizeof m) == 0, "a failed load left something in the model");
        return;
    }
    check(m.params.n > 0 && m.step <= LF_STEP_MAX && m.adam_m && m.adam_v, "loaded model");
    size_t n_buf = m.ema ? 4 : 3;
    check(lf_st_count(f) == n_buf * (size_t)m.params.n, "the file has tensors the model did not take");
    check_buffer(&m, f, m.params.data, "");
    check_buffer(&m, f, m.adam_m, "optim.m.");
    check_buffer(&m, f, m.adam_v, "optim.v.");
    if (m.ema)
        check_buffer(&m, f, m.ema, "ema.");
    lf_model_destroy(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lf_st_file *f = NULL;
    int st = lf_st_read_buffer(&f, data, size, "fuzz");
    if (st != LFLEX_OK) {
        if ((st != LFLEX_EFORMAT && st != LFLEX_ENOMEM) || f)
            abort();
        return 0;
    }
    unsigned sum = 0;
    for (size_t i = 0; i < lf_st_count(f); i++) {
        const lf_st_entry *e = lf_st_at(f, i);
        uint64_t n = lf_st_dtype_size(e->dtype);
        for (int d = 0; d < e->ndim; d++)
            n *= (uint64_t)e->shape[d]; /* cannot overflow: the reader checked */
        if (n != e->nbytes || e->file_offset > size || e->nbytes > size - e->file_offset ||
            lf_st_find(f, e->name) != e)
            abort();
        const unsigned char *p = e->data;
        for (size_t k = 0; k < e->nbytes; k++)
            sum += p[k];
    }
    (void)lf_st_meta_get(f, LF_ST_KEY_CRC);
    load_checkpoint(f);
    lf_st_free(f);
    volatile unsigned sink = sum;
    (void)sink;
    return 0;
}
