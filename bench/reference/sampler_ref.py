"""tau-leaping generation with the PyTorch reference model (the paper's sampler, doc/sampling.md).

A batch of templates is advanced together as right-padded tensors; each token
carries an "open gap" flag (masks may be inserted to its left). Every step:
generator forward; on the last step every MASK becomes its most likely token;
otherwise masked positions unmask with probability 1 - exp(-beta_um g dt)
(the events themselves, or the same number of most confident positions), the
fired ones draw a token from K (temperature, top-k, top-p), and every open gap
receives Poisson(beta_in g dt) new MASKs (none for a sequence this step if it
would exceed model.max_len).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

import lflex_ref as R


@dataclass
class SamplerConfig:
    steps: int = 64
    temperature: float = 1.0      # 0: greedy
    top_k: int = 0                # 0: off
    top_p: float = 1.0            # 1: off
    confidence: str = "none"      # none (events) | top_prob | prob_diff | entropy | left_to_right | right_to_left
    seed: int = 0


def template(prompt: Optional[Sequence[int]] = None) -> Tuple[List[int], List[bool]]:
    """[EOS] or [prompt..., BOS, EOS], with the only open gap left of EOS."""
    toks = ([*prompt, R.BOS] if prompt is not None else []) + [R.EOS]
    return toks, [False] * (len(toks) - 1) + [True]


def token_probs(logits: torch.Tensor, sc: SamplerConfig) -> torch.Tensor:
    """Distribution over user tokens after temperature, top-k and top-p."""
    if sc.temperature == 0:
        return F.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype)
    logits = logits / sc.temperature
    if sc.top_k > 0 and sc.top_k < logits.shape[-1]:
        kth = torch.topk(logits, sc.top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if sc.top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        # keep the smallest prefix whose mass reaches top_p (at least one token)
        drop = sorted_p.cumsum(-1) - sorted_p >= sc.top_p
        sorted_p = sorted_p.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
        probs = probs / probs.sum(-1, keepdim=True)
    return probs


def confidence_score(probs: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "top_prob":
        return probs.max(-1).values
    if kind == "prob_diff":
        top2 = probs.topk(2, dim=-1).values
        return top2[..., 0] - top2[..., 1]
    if kind == "left_to_right":  # the leftmost first (rows of probs are in sequence order)
        return -torch.arange(probs.shape[0], dtype=probs.dtype)
    if kind == "right_to_left":  # the rightmost first
        return torch.arange(probs.shape[0], dtype=probs.dtype)
    if kind == "entropy":  # low entropy = confident
        return (probs * torch.log(probs.clamp_min(1e-30))).sum(-1)
    raise ValueError(f"unknown confidence {kind!r}")


def insert_masks(x, open_gap, valid, n_ins):
    """Insert n_ins[b, k] MASKs left of token k; inserted tokens are open."""
    B, L = x.shape
    shift = n_ins.cumsum(1)
    new_len = valid.sum(1) + n_ins.sum(1)
    L2 = int(new_len.max())
    new_valid = torch.arange(L2)[None, :] < new_len[:, None]
    nx = torch.where(new_valid, R.MASK, R.PAD)
    nopen = new_valid.clone()
    rows = torch.arange(B)[:, None].expand(B, L)[valid]
    cols = (torch.arange(L)[None, :] + shift)[valid]
    nx[rows, cols] = x[valid]
    nopen[rows, cols] = open_gap[valid]
    return nx, nopen, new_valid


@torch.no_grad()
def generate(model: R.LFlexModel, templates: Sequence[Sequence[int]],
             open_gaps: Sequence[Sequence[bool]], sc: SamplerConfig) -> List[List[int]]:
    cfg = model.cfg
    a, max_len = cfg.a, cfg.model.max_len
    model.eval()
    dtype = model.gen.tok_emb.dtype
    rng = torch.Generator().manual_seed(sc.seed)
    B = len(templates)
    L = max(len(t) for t in templates)
    valid = torch.arange(L)[None, :] < torch.tensor([len(t) for t in templates])[:, None]
    x = torch.full((B, L), R.PAD, dtype=torch.long)
    open_gap = torch.zeros((B, L), dtype=torch.bool)
    x[valid] = torch.tensor([tok for t in templates for tok in t], dtype=torch.long)
    open_gap[valid] = torch.tensor([bool(o) for g in open_gaps for o in g])

    dt = (1.0 - 1e-5) / sc.steps  # steps over [0, 1 - 1e-5], then a closing argmax pass
    for step in range(sc.steps + 1):
        t = step * dt
        tt = torch.full((B,), t, dtype=dtype)
        logits, beta_in, beta_um = model.gen(x, tt, valid)
        masked = x == R.MASK
        if step == sc.steps:
            x = torch.where(masked, logits.argmax(-1) + R.N_SPECIAL, x)
            break
        g = float(R.base_hazard(torch.tensor(t, dtype=torch.float64), a))

        # unmask
        fire = masked & (torch.rand(x.shape, generator=rng, dtype=dtype)
                         < -torch.expm1(-beta_um * (g * dt)))
        if masked.any():
            probs = token_probs(logits[masked], sc)
            drawn = torch.full_like(x, R.MASK)
            drawn[masked] = torch.multinomial(probs, 1, generator=rng).squeeze(-1) + R.N_SPECIAL
            if sc.confidence != "none":
                score = torch.full(x.shape, float("-inf"), dtype=dtype)
                score[masked] = confidence_score(probs, sc.confidence).to(dtype)
                rank = score.argsort(dim=1, descending=True).argsort(dim=1)
                fire = masked & (rank < fire.sum(1, keepdim=True))
            x = torch.where(fire, drawn, x)

        # insert
        n_ins = torch.poisson((beta_in * (g * dt)).clamp_min(0).to(torch.float64),
                              generator=rng).to(torch.long)
        n_ins = torch.where(open_gap & valid, n_ins, 0)
        too_long = valid.sum(1) + n_ins.sum(1) > max_len
        n_ins[too_long] = 0
        if n_ins.any():
            x, open_gap, valid = insert_masks(x, open_gap, valid, n_ins)

    return [x[b, valid[b]].tolist() for b in range(B)]
