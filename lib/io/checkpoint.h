/* Model checkpoints in the safetensors format (see doc/checkpoints.md).
 *
 * Tensors: every parameter under its own name (gen.blocks.0.attn.wqkv, ...),
 * float32, so that a PyTorch module with the names of doc/model-layout.md
 * loads them directly; the AdamW moments as optim.m.<name> and
 * optim.v.<name>; the EMA weights as ema.<name> when EMA is on.
 * __metadata__: lflex.format (format version, "1"), lflex.config (the
 * canonical YAML of the model's config, vocabulary included), lflex.step,
 * lflex.rng (the random generator's state, 4 words in hex). */
#ifndef LF_IO_CHECKPOINT_H
#define LF_IO_CHECKPOINT_H

#include "io/safetensors.h"
#include "io/vocab.h"
#include "lflex/model.h"

#define LF_CHECKPOINT_FORMAT 1

/* Atomic: a crash leaves the previous file intact. */
int lf_checkpoint_save(const lf_model *m, const char *path);
/* Create *m from a file (the vocabulary comes back inside m->cfg). Nothing
 * is left allocated on failure: LFLEX_EIO, LFLEX_EFORMAT (file and byte
 * offset in the message), LFLEX_EVERSION for another format version. */
int lf_checkpoint_load(lf_model *m, const char *path);

/* The same from a safetensors file already read (lf_st_read_file or
 * lf_st_read_buffer); `path` names it in messages. `f` is only read: its
 * tensors are copied into the model. The fuzz target drives loading
 * through this. */
int lf_checkpoint_load_st(lf_model *m, const lf_st_file *f, const char *path);

#endif
