#!/usr/bin/python3
"""The star graphs' edge lookup in isolation (PyTorch), to find what makes a
transformer learn it quickly.

    /usr/bin/python3 bench/learning/lookup.py [--data DIR] [--shift W] [--gap G] ...

Reads star-easy's train and test files (tasks.py; default DIR
bench/out/learning/data). Input: the prompt (shuffled edges `u v`, source,
goal), G filler tokens, then a query token; the model (bidirectional
pre-LayerNorm transformer, learned absolute positions) predicts the goal's
parent at the query. --shift W adds to each attention input its left and
right neighbours times per-channel weights initialised to W (no shift when
negative); --gates multiplies each residual branch by per-channel gates
initialised to zero (as the library's adaLN blocks are at the start). Prints
the accuracy on 500 test graphs every 250 steps and the first step at 90 %.
One thread; AdamW, warm-up 200 steps, clipping at 1.
"""
import argparse
import math
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
N_LABELS, FILLER, QUERY = 20, 21, 20

ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
ap.add_argument('--data', default=os.path.join(HERE, '..', 'out', 'learning', 'data'))
ap.add_argument('--d', type=int, default=64, help='width (default %(default)s)')
ap.add_argument('--layers', type=int, default=2, help='blocks (default %(default)s)')
ap.add_argument('--heads', type=int, default=4, help='heads (default %(default)s)')
ap.add_argument('--lr', type=float, default=1e-3)
ap.add_argument('--batch', type=int, default=64)
ap.add_argument('--steps', type=int, default=3000)
ap.add_argument('--shift', type=float, default=-1.0, help='initial neighbour weight (negative: no shift)')
ap.add_argument('--shift-on', choices=('attn', 'stream'), default='attn',
                help='attn: the shift mixes neighbours into the attention input only; stream: into the '
                     'residual stream before each block (its reach grows with depth)')
ap.add_argument('--gap', type=int, default=0, help='filler tokens between the goal and the query')
ap.add_argument('--gates', action='store_true', help='zero-initialised residual gates')
ap.add_argument('--pos', choices=('learned', 'rotary'), default='learned',
                help='positions: a learned absolute embedding, or rotary on queries and keys')
ap.add_argument('--model', choices=('plain', 'lflex'), default='plain',
                help="plain: the transformer above; lflex: the library's generator as written in "
                     "bench/reference/lflex_ref.py (adaLN blocks, rotary, model.seg_pos, --shift as "
                     "model.token_shift), reading `prompt BOS MASK EOS` at time --time")
ap.add_argument('--time', type=float, default=0.5, help='t of the lflex model (default %(default)s; negative: uniform in (0, 1) per example)')
ap.add_argument('--seed', type=int, default=0)
a = ap.parse_args()
torch.manual_seed(a.seed)
torch.set_num_threads(1)


def load(split):
    xs, ys = [], []
    with open(os.path.join(a.data, f'star-easy.{split}.txt'), encoding='utf-8') as f:
        for line in f:
            prompt, target = line.rstrip('\n').split('\t')
            xs.append([int(v) for v in prompt.split()] + [FILLER] * a.gap + [QUERY])
            ys.append(int(target.split()[-2]))
    return torch.tensor(xs), torch.tensor(ys)


def rotary(x):
    """Rotate-half rotary embedding of x [B, H, T, Dh] at positions 0..T-1."""
    T, half = x.shape[2], x.shape[3] // 2
    ang = torch.arange(T)[:, None] * 10000.0 ** (-torch.arange(half) / half)[None]
    cos, sin = ang.cos(), ang.sin()
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        d = a.d
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.o = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
        shift = a.shift >= 0
        self.prev = nn.Parameter(torch.full((d,), a.shift)) if shift else None
        self.next = nn.Parameter(torch.full((d,), a.shift)) if shift else None
        self.ga = nn.Parameter(torch.zeros(d)) if a.gates else None
        self.gm = nn.Parameter(torch.zeros(d)) if a.gates else None

    def shift(self, h):
        z = h.new_zeros(h.shape[0], 1, h.shape[2])
        return h + torch.cat([z, h[:, :-1]], 1) * self.prev + torch.cat([h[:, 1:], z], 1) * self.next

    def forward(self, x):
        B, T, d = x.shape
        if self.prev is not None and a.shift_on == 'stream':
            x = self.shift(x)
        h = self.ln1(x)
        if self.prev is not None and a.shift_on == 'attn':
            h = self.shift(h)
        q, k, v = self.qkv(h).view(B, T, 3, a.heads, d // a.heads).permute(2, 0, 3, 1, 4)
        if a.pos == 'rotary':
            q, k = rotary(q), rotary(k)
        att = (q @ k.transpose(-1, -2) / math.sqrt(d // a.heads)).softmax(-1)
        y = self.o((att @ v).transpose(1, 2).reshape(B, T, d))
        x = x + (y * self.ga if self.ga is not None else y)
        y = self.mlp(self.ln2(x))
        return x + (y * self.gm if self.gm is not None else y)


class Model(nn.Module):
    def __init__(self, n_pos):
        super().__init__()
        self.tok, self.pos = nn.Embedding(FILLER + 1, a.d), nn.Embedding(n_pos, a.d)
        self.blocks = nn.ModuleList([Block() for _ in range(a.layers)])
        self.ln, self.head = nn.LayerNorm(a.d), nn.Linear(a.d, N_LABELS)
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, 0, 0.02)

    def forward(self, x):
        h = self.tok(x)
        if a.pos == 'learned':
            h = h + self.pos.weight[None, :x.shape[1]]
        for b in self.blocks:
            h = b(h)
        return self.head(self.ln(h[:, -1]))


class LflexGenerator(nn.Module):
    """The library's generator (PyTorch reference) as a classifier at the
    MASK of `prompt BOS MASK EOS`."""

    def __init__(self):
        super().__init__()
        import sys
        sys.path.insert(0, os.path.join(HERE, '..', 'reference'))
        import lflex_ref as R
        self.R = R
        cfg = R.Config(model=R.ModelConfig(d_model=a.d, n_heads=a.heads, n_layers=a.layers, max_len=40,
                                           token_shift=a.shift >= 0),
                       schedule=R.ScheduleConfig(family='kumaraswamy', learn_b_in=False, b_in=32.0),
                       vocab=R.VocabConfig(size=N_LABELS))
        self.gen = R.Generator(cfg)

    def forward(self, x):
        R = self.R
        prompt = x[:, :-1 - a.gap] + R.N_SPECIAL
        B = x.shape[0]
        col = lambda v: torch.full((B, 1), v, dtype=x.dtype)
        ids = torch.cat([prompt, col(R.BOS), col(R.MASK), col(R.EOS)], 1)
        t = torch.full((B,), a.time) if a.time >= 0 else torch.rand(B)
        logits, _, _ = self.gen(ids, t, torch.ones_like(ids, dtype=torch.bool))
        return logits[:, -2]


x_train, y_train = load('train')
x_test, y_test = load('test')
model = Model(x_train.shape[1]) if a.model == 'plain' else LflexGenerator()
if a.model == 'lflex' and a.shift >= 0:
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(('shift.prev', 'shift.next')):
                p.fill_(a.shift)
opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.0)
gen = torch.Generator().manual_seed(a.seed)
t0, reached = time.time(), None
for step in range(1, a.steps + 1):
    for g in opt.param_groups:
        g['lr'] = a.lr * min(1.0, step / 200)
    idx = torch.randint(0, len(x_train), (a.batch,), generator=gen)
    loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
    opt.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    if step % 250 == 0:
        with torch.no_grad():
            acc = (model(x_test[:500]).argmax(-1) == y_test[:500]).float().mean().item()
        print(f'step {step} loss {loss.item():.3f} accuracy {acc:.3f} ({time.time() - t0:.0f} s)', flush=True)
        if acc >= 0.9 and reached is None:
            reached = step
print(f'90 % accuracy first at step {reached}' if reached else f'below 90 % after {a.steps} steps')
