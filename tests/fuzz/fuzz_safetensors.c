/* Fuzz target for the checkpoint reader. Any input must either be rejected
 * (LFLEX_EFORMAT, or LFLEX_ENOMEM) with nothing returned, or give entries
 * that lie inside the input and agree with their shapes; every byte of every
 * tensor is read so that sanitizers see any out-of-bounds pointer. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"
#include "lflex/lflex.h"
#include "tests/fuzz/fuzz_target.h"

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
    lf_st_free(f);
    volatile unsigned sink = sum;
    (void)sink;
    return 0;
}
