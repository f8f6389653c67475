/* Layers on the autograd core: the DiT-style backbone (time conditioning,
 * adaLN blocks with rotary attention and an MLP), the token head and the
 * rate heads. Shapes and names follow doc/model-layout.md. */
#ifndef LF_NN_LAYERS_H
#define LF_NN_LAYERS_H

#include "core/core.h"
#include "nn/params.h"

#define LF_TIME_FREQS 128
#define LF_LN_EPS 1e-5
#define LF_ROPE_BASE 10000.0
#define LF_SHIFT_INIT 0.5 /* initial neighbour weights of model.token_shift */

typedef enum lf_activation { LF_ACT_GELU = 0, LF_ACT_RELU = 1 } lf_activation;

typedef struct lf_backbone_cfg {
    int64_t vocab;       /* embedding rows (all ids) */
    int64_t d, n_heads, n_layers, d_cond, d_ff;
    lf_activation act;
    double dropout;
    int64_t n_pos;       /* rows of a learned absolute position embedding (0: none, rotary only) */
    int64_t seg_len;     /* > 0: segment position embeddings, 4 tables of seg_len + 1 rows (model.seg_pos) */
    int32_t bos_id;      /* the token that starts the second segment */
    bool token_shift;    /* each block starts with h += w_prev * left neighbour + w_next * right neighbour */
} lf_backbone_cfg;

typedef struct lf_block {
    lf_tensor *ada_w, *ada_b, *ln1, *wqkv, *bqkv, *wo, *bo, *ln2, *w1, *b1, *w2, *b2;
    lf_tensor *shift_prev, *shift_next; /* [d], model.token_shift only (blocks.i.shift.prev/next) */
} lf_block;

typedef struct lf_backbone {
    lf_backbone_cfg cfg;
    lf_tensor *tok_emb, *pos_emb, *seg_pos, *time_w1, *time_b1, *time_w2, *time_b2;
    lf_block *blocks;
} lf_backbone;

/* adaLN + LayerNorm in front of every head */
typedef struct lf_head_norm {
    lf_tensor *ada_w, *ada_b, *ln;
} lf_head_norm;

typedef struct lf_token_head {
    lf_head_norm norm;
    lf_tensor *w, *b;
} lf_token_head;

typedef struct lf_rate_head {
    lf_head_norm norm;
    lf_tensor *w1, *b1, *w2, *b2;
    double min_rate, max_rate;
} lf_rate_head;

/* A packed batch: the rows of sequence b are offsets[b] .. offsets[b+1]-1. */
typedef struct lf_packed {
    int64_t n_seq, n_tok;
    lf_tensor *ids;      /* [T] token ids */
    lf_tensor *seg;      /* [T] sequence of each row */
    lf_tensor *pos;      /* [T] position within its sequence */
    lf_tensor *offsets;  /* [B+1] */
} lf_packed;

/* Register parameters under `prefix` ("gen", "aux"); NULL-free on success. */
int lf_backbone_register(lf_backbone *bb, const lf_backbone_cfg *cfg, lf_params *p, const char *prefix);
void lf_backbone_free(lf_backbone *bb);
int lf_token_head_register(lf_token_head *h, int64_t d, int64_t d_cond, int64_t n_out, lf_params *p,
                           const char *prefix);
int lf_rate_head_register(lf_rate_head *h, int64_t d, int64_t d_cond, double min_rate, double max_rate,
                          lf_params *p, const char *prefix);

/* Build a packed batch in the arena from offsets [n_seq+1] and the token ids
 * (ids may be NULL: then the caller fills packed->ids). */
int lf_packed_make(lf_ctx *ctx, lf_packed *pk, const int32_t *ids, const int32_t *offsets, int64_t n_seq);

/* Time features [B, 256]: cos(t f_j) then sin(t f_j), f_j = 10000^(-j/128). */
lf_tensor *lf_time_features(lf_ctx *ctx, const double *t, int64_t n_seq);

/* The backbone over a packed batch at per-sequence times t [B]. Returns the
 * final hidden states [T, d]; *cond gets the conditioning vectors [B, d_c].
 * Dropout (when cfg.dropout > 0 and train) draws its masks from `seed`. */
lf_tensor *lf_backbone_forward(lf_ctx *ctx, const lf_backbone *bb, const lf_packed *pk, const double *t,
                               bool train, uint64_t seed, lf_tensor **cond);

/* adaLN(LN(h)) of a head for the rows `seg` (h [R, d], c [B, d_c]). */
lf_tensor *lf_head_norm_forward(lf_ctx *ctx, const lf_head_norm *hn, lf_tensor *h, lf_tensor *c, lf_tensor *seg);
lf_tensor *lf_token_head_forward(lf_ctx *ctx, const lf_token_head *th, lf_tensor *h, lf_tensor *c, lf_tensor *seg);
/* The score s [R] of a rate head, before its softplus. */
lf_tensor *lf_rate_head_score(lf_ctx *ctx, const lf_rate_head *rh, lf_tensor *h, lf_tensor *c, lf_tensor *seg);
/* Rates [R]: softplus(s) (max - min) + min. */
lf_tensor *lf_rate_head_forward(lf_ctx *ctx, const lf_rate_head *rh, lf_tensor *h, lf_tensor *c, lf_tensor *seg);

#endif
