#!/usr/bin/python3
"""The star graphs' parent lookup trained with the FlexMDM objective of the
PyTorch reference (bench/reference/lflex_ref.py), to find what in the
objective slows it down (EXPERIMENTS.md).

    /usr/bin/python3 bench/learning/lookup_diffusion.py [--data DIR] [--force-masked]
        [--detach-insertion] [--no-shift] [--steps N]

Trains the reference's FlexMDM (fixed Kumaraswamy insertion b_in 32, flat
time weight, d=64, 2 blocks, model.token_shift unless --no-shift, lr 1e-3,
warm-up 200, batch 64) on star-parent (tasks.py: star-easy's prompts, the
goal's parent as the target) and prints the loss parts and the accuracy of
the generator at the MASK of `prompt BOS MASK EOS` (t = 1/2) on 300 test
graphs every 250 steps.

  --force-masked      every target token is masked in every training state
                      (no draw of the state), at a time uniform in (0, 1);
                      with --mask-prob P each is masked with probability P
                      and clean otherwise
  --uniform-times     states drawn as in training, but in this script's loop
                      at times uniform in (0, 1) (not the trainer's
                      stratified times)
  --detach-insertion  the insertion-rate head reads a copy of the trunk's
                      output that passes no gradient back: the insertion
                      loss trains the head alone
"""
import argparse
import os
import random
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'reference'))
import lflex_ref as R  # noqa: E402

ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
ap.add_argument('--data', default=os.path.join(HERE, '..', 'out', 'learning', 'data'))
ap.add_argument('--steps', type=int, default=2000)
ap.add_argument('--force-masked', action='store_true')
ap.add_argument('--detach-insertion', action='store_true')
ap.add_argument('--uniform-times', action='store_true')
ap.add_argument('--mask-prob', type=float, default=1.0)
ap.add_argument('--batch', type=int, default=64)
ap.add_argument('--no-shift', action='store_true')
a = ap.parse_args()
torch.set_num_threads(1)
torch.manual_seed(0)

if a.detach_insertion:
    def forward(self, x, t, key_mask):
        h, c = self.trunk(x, t, key_mask)
        beta_in = self.ins(h.detach(), c.detach())
        um = self.um(h, c) if self.um is not None else torch.full_like(beta_in, self.const_b_um)
        return self.out(h, c), beta_in, um
    R.Generator.forward = forward

cfg = R.Config(model=R.ModelConfig(d_model=64, n_heads=4, n_layers=2, max_len=40, token_shift=not a.no_shift),
               schedule=R.ScheduleConfig(family='kumaraswamy', learn_b_in=False, b_in=32.0),
               loss=R.LossConfig(time_weight='flat'), train=R.TrainConfig(lr=1e-3, warmup=200),
               vocab=R.VocabConfig(size=20))
model = R.LFlexModel(cfg)
trainer = R.Trainer(model, seed=1)


def read(split):
    with open(os.path.join(a.data, f'star-parent.{split}.txt'), encoding='utf-8') as f:
        return [line.rstrip('\n').split('\t') for line in f]


def enc(text):
    return [int(v) + R.N_SPECIAL for v in text.split()]


train, test = read('train'), read('test')[:300]
x_test = torch.tensor([enc(p) + [R.BOS, R.MASK, R.EOS] for p, _ in test])
y_test = torch.tensor([int(t) for _, t in test])
rng = random.Random(1)
t0 = time.time()
for step in range(1, a.steps + 1):
    tokens, fixed, offsets = [], [], [0]
    for prompt, target in (rng.choice(train) for _ in range(a.batch)):
        seq = enc(prompt) + [R.BOS] + enc(target) + [R.EOS]
        tokens += seq
        fixed += [1] * (len(seq) - 2) + [0, 1]
        offsets.append(len(tokens))
    tokens, fixed = torch.tensor(tokens, dtype=torch.int32), torch.tensor(fixed, dtype=torch.uint8)
    offsets = torch.tensor(offsets, dtype=torch.int64)
    if a.force_masked or a.uniform_times:
        model.train()
        batch = R.pad_batch(tokens, fixed, offsets)
        t = torch.rand(a.batch)
        if a.force_masked:
            masked = torch.rand(batch.z.shape, generator=trainer.rng) < a.mask_prob
            states = torch.where(batch.fixed | ~masked, R.CLEAN, torch.full_like(batch.z, R.MASKED))
        else:
            b_in, b_um = model.order(batch.z, batch.valid)
            states = R.sample_states(batch, t, cfg.a, b_in.detach(), b_um.detach(), trainer.rng)
        trainer.opt.zero_grad()
        parts = R.compute_loss(model, batch, t, states=[states])
        parts['total'].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        trainer.opt.step()
        trainer.sched.step()
    else:
        parts = trainer.train_step(tokens, fixed, offsets)
    if step % 250 == 0:
        model.eval()
        with torch.no_grad():
            logits, _, _ = model.gen(x_test, torch.full((len(x_test),), 0.5), torch.ones_like(x_test, dtype=torch.bool))
        acc = (logits[:, -2].argmax(-1) == y_test).float().mean().item()
        print(f"step {step} unmask {float(parts['unmask']):.3f} insert {float(parts['insert']):.3f} "
              f"accuracy {acc:.3f} ({time.time() - t0:.0f} s)", flush=True)
