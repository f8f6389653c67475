"""PyTorch reference of the LFlexMDM model, its training loss and optimiser.

This is the executable form of the paper (arXiv 2602.18695) together with
doc/model-layout.md: the same parameter names, shapes, initialisation and loss
details, written as ordinary batched PyTorch (right-padded [B, L] tensors with
key-padding masks). It serves two purposes:

* the C library is checked against fixtures written from it
  (bench/reference/make_fixtures.py -> tests/fixtures/);
* it is the speed peer in the benchmarks, so it is written the way a PyTorch
  user would write the model, not as a literal transcription.

Every function works in float32 or float64; the fixtures are computed in
float64.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

# Reserved token ids (doc/model-layout.md, "Vocabulary").
PAD, MASK, BOS, EOS = 0, 1, 2, 3
N_SPECIAL = 4

# Token states at time t.
DROPPED, MASKED, CLEAN = 0, 1, 2

# Training times are kept this far from 0 and 1 (the paper's training objective).
T_EPS = 1e-4
N_TIME_FREQ = 128
ROPE_BASE = 10000.0
LN_EPS = 1e-5
REG_GRID = 100


# --------------------------------------------------------------------------
# Configuration: the library's YAML keys (lib/io/model_schema.c), sections
# model.*, aux.*, schedule.*, generator.*, loss.*, train.*, vocab.*, with the
# library's names, meanings and defaults. Only the keys the reference uses
# are here; the library keys in LIBRARY_ONLY_KEYS are read and ignored.
# --------------------------------------------------------------------------

# Library keys whose other values the reference does not implement: a config
# with the value here is the reference's behaviour; another value is refused.
DEFAULT_ONLY_KEYS = {
    "loss.states": 1,               # one noised state per sequence (two for learned schedules)
    "loss.unmask_order": "random",  # clean tokens are those whose unmasking time has passed
}

# Keys of a library config that do not change the model, the loss or the
# optimiser's arithmetic, so the reference accepts and ignores them when it
# reads a config (a checkpoint's lflex.config, a saved config.yaml).
LIBRARY_ONLY_KEYS = {
    "train.seed": "the reference's random stream is a Trainer argument (Trainer(model, seed)) "
                  "and differs from the library's generator anyway",
    "train.threads": "CPU threads of the library; results do not depend on it",
    "vocab.tokenizer": "the reference works on token ids, not text",
    "vocab.tokens": "the reference works on token ids, not text; vocab.size gives their number",
}

@dataclass
class ModelConfig:
    d_model: int = 128
    n_heads: int = 4
    n_layers: int = 4
    d_cond: int = 0               # 0: d_model
    mlp_ratio: int = 4
    max_len: int = 128            # also L_norm of the insertion loss
    activation: str = "gelu"      # gelu (tanh form) | relu; block MLPs only
    dropout: float = 0.0
    pos_emb: bool = False         # learned absolute position embedding [max_len, d], both networks
    seg_pos: bool = True          # learned segment position embeddings [4 (max_len + 1), d], both networks
    token_shift: bool = False     # each block starts with h += prev * left + next * right neighbour, both networks


@dataclass
class AuxConfig:
    """Sizes of the auxiliary network. The reference supports only the
    generator's sizes: 0 (-1 for n_layers) or the same value as model.*."""
    d_model: int = 0
    n_heads: int = 0
    n_layers: int = -1


@dataclass
class ScheduleConfig:
    family: str = "kumaraswamy"   # linear | kumaraswamy
    a: float = 1.0
    b_um: float = 1.0             # constant b_um when not learned
    learn_b_in: bool = True       # false: constant b_in, no auxiliary network, one state
    b_in: float = 1.0             # constant b_in when not learned (kumaraswamy only)
    learn_b_um: bool = False
    min_rate: float = 1.001       # auxiliary rate heads (b_in, b_um)
    max_rate: float = 100.0


@dataclass
class GeneratorConfig:
    learn_unmask_rate: bool = False
    min_rate: float = 0.0         # generator rate heads (beta_in, beta_um)
    max_rate: float = 100.0


@dataclass
class LossConfig:
    w_reg: float = 1.0
    w_grid: float = 1.0
    w_tail: float = 1.0
    w_kl: float = 1.0
    kl_reduction: str = "sum"     # sum | mean: the KL term over a sequence's non-fixed tokens
    reg_b_in: float = 1.0         # grid term target: mean F(t_g) ~ 1 - (1 - t_g)^reg_b_in
    time_weight: str = "hazard"   # hazard: generator terms times g_a(t) | flat: times 1
    unmask_norm: str = "masked"   # masked (1/M) | tokens (1/non-fixed tokens) | max_len (1/model.max_len)
    insert_closed_gaps: bool = True  # false: the insertion sum leaves out gaps between fixed tokens
    insert_trunk_grad: float = 1.0  # the insertion-rate head's gradient into the trunk, times this
    time_shape: float = 1.0       # training times t = 1 - (1 - u)^(1/k); hazard weight / (k (1 - t)^(k - 1))


# The paper's values of the keys added after fixture format version 2's first
# three fixtures (the paper's training objective); those fixtures' configs lack the keys.
PAPER_VALUES = {"model.pos_emb": False, "model.seg_pos": False, "schedule.learn_b_in": True, "schedule.b_in": 1.0,
                "loss.kl_reduction": "sum", "loss.reg_b_in": 1.0, "loss.time_weight": "hazard",
                "loss.unmask_norm": "masked", "model.token_shift": False,
                "loss.insert_trunk_grad": 1.0, "loss.time_shape": 1.0, "loss.insert_closed_gaps": True}


@dataclass
class TrainConfig:
    lr: float = 3e-4
    warmup: int = 100              # steps of linear warm-up
    lr_schedule: str = "constant"  # constant | cosine
    total_steps: int = 10000       # the cosine reaches min_lr_ratio at this step
    min_lr_ratio: float = 0.1      # cosine floor, as a fraction of lr
    weight_decay: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    clip: float = 1.0              # global gradient-norm clipping; 0: off
    ema: float = 0.0               # EMA decay of the weights; 0: no EMA


@dataclass
class VocabConfig:
    size: int = 12                 # user tokens (ids 4 .. 3 + size)


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    aux: AuxConfig = field(default_factory=AuxConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    vocab: VocabConfig = field(default_factory=VocabConfig)

    # Derived quantities; the linear family is a = b_in = b_um = 1 whatever
    # the schedule keys say. `learned`: an auxiliary network gives b_in
    # (kumaraswamy with learn_b_in), so two states, REINFORCE and R.
    @property
    def n_ids(self) -> int:
        """V: all token ids, the 4 reserved ones included."""
        return self.vocab.size + N_SPECIAL

    @property
    def linear(self) -> bool:
        return self.schedule.family == "linear"

    @property
    def learned(self) -> bool:
        return (not self.linear) and self.schedule.learn_b_in

    @property
    def n_states(self) -> int:
        return 2 if self.learned else 1

    @property
    def a(self) -> float:
        return 1.0 if self.linear else float(self.schedule.a)

    @property
    def d_cond(self) -> int:
        return self.model.d_cond or self.model.d_model

    @property
    def learn_b_um(self) -> bool:
        return self.learned and self.schedule.learn_b_um

    @property
    def const_b_in(self) -> float:
        return 1.0 if self.linear else float(self.schedule.b_in)

    @property
    def const_b_um(self) -> float:
        return 1.0 if self.linear else float(self.schedule.b_um)

    def validate(self) -> None:
        m, x = self.model, self.aux
        assert self.vocab.size >= 1
        assert m.d_model % m.n_heads == 0 and (m.d_model // m.n_heads) % 2 == 0
        assert m.activation in ("gelu", "relu")
        assert x.d_model in (0, m.d_model) and x.n_heads in (0, m.n_heads) \
            and x.n_layers in (-1, m.n_layers), "aux.* sizes other than the generator's"
        assert self.schedule.family in ("linear", "kumaraswamy")
        assert self.schedule.a > 0 and self.schedule.b_um > 0 and self.schedule.b_in > 0
        assert not self.schedule.learn_b_um or self.generator.learn_unmask_rate
        assert not self.schedule.learn_b_um or self.linear or self.schedule.learn_b_in, \
            "schedule.learn_b_um needs schedule.learn_b_in"
        lc = self.loss
        assert lc.kl_reduction in ("sum", "mean") and lc.reg_b_in > 0
        assert lc.time_weight in ("hazard", "flat")
        assert lc.unmask_norm in ("masked", "tokens", "max_len")
        assert lc.time_shape >= 1 and 0 <= lc.insert_trunk_grad <= 1
        assert self.train.lr_schedule in ("constant", "cosine")
        assert self.train.total_steps >= 1

    def to_yaml(self, omit: Sequence[str] = ()) -> str:
        """The config as YAML the library reads: every key of every section,
        with d_cond and the aux.* sizes resolved to their values. Keys named
        in `omit` ("loss.time_weight") are left out."""
        def fmt(v):
            if isinstance(v, bool):
                return "true" if v else "false"
            if isinstance(v, float):
                # "1.0e-08", not "1e-08", which YAML 1.1 readers take as a string
                mant, _, exp = repr(v).partition("e")
                if exp and "." not in mant:
                    mant += ".0"
                return mant + ("e" + exp if exp else "")
            return str(v)
        resolved = {("model", "d_cond"): self.d_cond,
                    ("aux", "d_model"): self.model.d_model,
                    ("aux", "n_heads"): self.model.n_heads,
                    ("aux", "n_layers"): self.model.n_layers}
        lines = []
        for section in fields(self):
            lines.append(f"{section.name}:")
            for k, v in asdict(getattr(self, section.name)).items():
                if f"{section.name}.{k}" in omit:
                    continue
                lines.append(f"  {k}: {fmt(resolved.get((section.name, k), v))}")
        return "\n".join(lines) + "\n"

    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        cfg = cls()
        for section, values in (d or {}).items():
            sub = getattr(cfg, section)  # unknown section: AttributeError
            for k, v in (values or {}).items():
                key = f"{section}.{k}"
                if key in LIBRARY_ONLY_KEYS:
                    continue
                if key in DEFAULT_ONLY_KEYS:
                    if v != DEFAULT_ONLY_KEYS[key]:
                        raise NotImplementedError(f"config key {key}: the reference implements only "
                                                  f"{DEFAULT_ONLY_KEYS[key]!r}, got {v!r}")
                    continue
                if not hasattr(sub, k):
                    raise KeyError(f"unknown config key {key}")
                cur = getattr(sub, k)
                if isinstance(cur, float) and isinstance(v, int) and not isinstance(v, bool):
                    v = float(v)
                if cur is not None and type(v) is not type(cur):
                    raise TypeError(f"config key {key}: expected {type(cur).__name__}, "
                                    f"got {v!r}")
                setattr(sub, k, v)
        cfg.validate()
        return cfg

    @classmethod
    def from_yaml(cls, text: str, stored: bool = False) -> "Config":
        """stored: a configuration a writer stored with a model (a fixture, a
        checkpoint); as in the library, a key of PAPER_VALUES it leaves out
        was written before the key existed and holds the paper's value."""
        import yaml  # python3-yaml; only needed to read configs back
        d = yaml.safe_load(text) or {}
        if stored:
            for key, value in PAPER_VALUES.items():
                section, k = key.split(".")
                d.setdefault(section, {}).setdefault(k, value)
        return cls.from_dict(d)


# --------------------------------------------------------------------------
# Schedule math (the paper's Kumaraswamy and linear schedules). Inputs are tensors; `a` is a float.
# --------------------------------------------------------------------------

def grad_scale(x: torch.Tensor, g: float) -> torch.Tensor:
    """x, with the gradient that reaches x multiplied by g."""
    if g == 1:
        return x
    return x.detach() if g == 0 else g * x + (1 - g) * x.detach()


def base_hazard(t: torch.Tensor, a: float) -> torch.Tensor:
    """g_a(t) = a t^(a-1) / (1 - t^a); every rate is a scalar times this."""
    return a * torch.pow(t, a - 1.0) / -torch.expm1(a * torch.log(t))


def kumaraswamy_cdf(t: torch.Tensor, a: float, b: torch.Tensor) -> torch.Tensor:
    """F(t; a, b) = 1 - (1 - t^a)^b."""
    return -torch.expm1(b * torch.log1p(-torch.pow(t, a)))


def kumaraswamy_survival(t: torch.Tensor, a: float, b: torch.Tensor) -> torch.Tensor:
    """1 - F(t; a, b) = (1 - t^a)^b, without cancellation near t = 1."""
    return torch.exp(b * torch.log1p(-torch.pow(t, a)))


def log_expm1_over_x(x: torch.Tensor) -> torch.Tensor:
    """log e(x), e(x) = expm1(x) / x, e(0) = 1; stable for every real x.

    Every branch is evaluated on a safe stand-in argument so that unused
    branches produce no inf/nan gradients (torch.where passes zeros to them,
    but 0 * inf is nan).
    """
    one = torch.ones_like(x)
    small = x.abs() < 1e-3
    xs = torch.where(small, one, x)
    pos = xs > 0
    xp = torch.where(pos, xs, one)
    xn = torch.where(pos, -one, xs)
    # x > 0: log((e^x - 1)/x) = x + log(1 - e^-x) - log x
    exact_pos = xp + torch.log(-torch.expm1(-xp)) - torch.log(xp)
    # x < 0: log((1 - e^x)/(-x))
    exact_neg = torch.log(-torch.expm1(xn)) - torch.log(-xn)
    # log e(x) = x/2 + log(sinh(x/2)/(x/2)) = x/2 + x^2/24 - x^4/2880 + O(x^6)
    x2 = x * x
    series = 0.5 * x + x2 / 24.0 - x2 * x2 / 2880.0
    return torch.where(small, series, torch.where(pos, exact_pos, exact_neg))


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 - e^x) for x <= 0 (Maechler's two branches), nan-free gradients."""
    near = x > -math.log(2.0)
    xa = torch.where(near, x, -torch.ones_like(x))
    xb = torch.where(near, -torch.ones_like(x), x)
    return torch.where(near, torch.log(-torch.expm1(xa)), torch.log1p(-torch.exp(xb)))


def logaddexp(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.logaddexp(x, y)


def state_log_probs(t: torch.Tensor, a: float, b: torch.Tensor,
                    c: torch.Tensor) -> torch.Tensor:
    """log P(dropped), log P(masked), log P(clean) at time t, stacked on a
    new last axis, for insertion shape b = b_in and unmasking shape c = b_um.

    With y = 1 - t^a, l = log y, d = b - c:
      P_drop = y^b,  P_mask = b y^c (-l) e(d l),  P_clean = 1 - P_drop - P_mask.
    """
    ell = torch.log1p(-torch.pow(t, a))
    lp_drop = b * ell
    lp_mask = torch.log(b) + c * ell + torch.log(-ell) + log_expm1_over_x((b - c) * ell)
    lp_clean = log1mexp(logaddexp(lp_drop, lp_mask))
    return torch.stack(torch.broadcast_tensors(lp_drop, lp_mask, lp_clean), dim=-1)


def kl_to_uniform(a: float, b: torch.Tensor) -> torch.Tensor:
    """KL(Kumaraswamy(a, b) || U(0,1)) = log(ab) + (a-1)/a (psi(1) - psi(b+1)) - (b-1)/b."""
    psi1 = -0.5772156649015329  # psi(1) = -Euler's gamma
    return (math.log(a) + torch.log(b) + (a - 1.0) / a * (psi1 - torch.digamma(b + 1.0))
            - (b - 1.0) / b)


def expected_insert_time(a: float, b: torch.Tensor) -> torch.Tensor:
    """E[T_in] = b B(1 + 1/a, b)."""
    return torch.exp(torch.log(b) + math.lgamma(1.0 + 1.0 / a) + torch.lgamma(b)
                     - torch.lgamma(1.0 + 1.0 / a + b))


def bregman(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """D(u, v) = v - u + u log(u / v), with 0 log 0 = 0."""
    pos = u > 0
    us = torch.where(pos, u, torch.ones_like(u))
    return v - u + torch.where(pos, us * (torch.log(us) - torch.log(v)), torch.zeros_like(u))


# --------------------------------------------------------------------------
# Modules. Parameter names follow doc/model-layout.md exactly, so
# model.named_parameters() gives checkpoint names such as
# gen.blocks.0.attn.wqkv.
# --------------------------------------------------------------------------

INIT_STD = 0.02


class Affine(nn.Module):
    """x -> x w^T + b with w [out, in] (nn.Linear layout, names w and b)."""

    def __init__(self, n_in: int, n_out: int, zero_init: bool = False):
        super().__init__()
        self.zero_init = zero_init
        self.w = nn.Parameter(torch.empty(n_out, n_in))
        self.b = nn.Parameter(torch.empty(n_out))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.zero_init:
            nn.init.zeros_(self.w)
        else:
            nn.init.normal_(self.w, 0.0, INIT_STD)
        nn.init.zeros_(self.b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.w, self.b)


class ScaleNorm(nn.Module):
    """LayerNorm with a learned scale and no bias."""

    def __init__(self, d: int):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(d))

    def reset_parameters(self) -> None:
        nn.init.ones_(self.scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, (x.shape[-1],), self.scale, None, LN_EPS)


class TimeEmbedding(nn.Module):
    def __init__(self, d_cond: int):
        super().__init__()
        self.w1 = nn.Parameter(torch.empty(d_cond, 2 * N_TIME_FREQ))
        self.b1 = nn.Parameter(torch.empty(d_cond))
        self.w2 = nn.Parameter(torch.empty(d_cond, d_cond))
        self.b2 = nn.Parameter(torch.empty(d_cond))
        j = torch.arange(N_TIME_FREQ, dtype=torch.float64)
        self.register_buffer("freqs", torch.exp(-math.log(10000.0) * j / N_TIME_FREQ),
                             persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.w1, 0.0, INIT_STD)
        nn.init.normal_(self.w2, 0.0, INIT_STD)
        nn.init.zeros_(self.b1)
        nn.init.zeros_(self.b2)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        # Phases in float64 whatever the model dtype (keeps float32 close to
        # the float64 reference; it is a [B, 128] tensor).
        ft = t.to(torch.float64)[:, None] * self.freqs.to(torch.float64)
        e = torch.cat([torch.cos(ft), torch.sin(ft)], dim=-1).to(self.w1.dtype)
        return F.silu(F.linear(F.silu(F.linear(e, self.w1, self.b1)), self.w2, self.b2))


def rope_tables(n: int, head_dim: int, dtype: torch.dtype, device=None):
    """cos, sin [n, head_dim/2] for positions 0..n-1, theta_i = base^(-2i/Dh)."""
    half = head_dim // 2
    theta = ROPE_BASE ** (-2.0 * torch.arange(half, dtype=torch.float64, device=device) / head_dim)
    ang = torch.arange(n, dtype=torch.float64, device=device)[:, None] * theta
    return torch.cos(ang).to(dtype), torch.sin(ang).to(dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate-half rotary embedding of x [..., L, Dh]."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class Attention(nn.Module):
    def __init__(self, d: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.wqkv = nn.Parameter(torch.empty(3 * d, d))
        self.bqkv = nn.Parameter(torch.empty(3 * d))
        self.wo = nn.Parameter(torch.empty(d, d))
        self.bo = nn.Parameter(torch.empty(d))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.wqkv, 0.0, INIT_STD)
        nn.init.normal_(self.wo, 0.0, INIT_STD)
        nn.init.zeros_(self.bqkv)
        nn.init.zeros_(self.bo)

    def forward(self, x, cos, sin, key_mask):
        B, L, d = x.shape
        H = self.n_heads
        q, k, v = F.linear(x, self.wqkv, self.bqkv).view(B, L, 3, H, d // H).permute(2, 0, 3, 1, 4)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(d // H))
        scores = scores.masked_fill(~key_mask[:, None, None, :], float("-inf"))
        o = torch.matmul(torch.softmax(scores, dim=-1), v)
        return F.linear(o.transpose(1, 2).reshape(B, L, d), self.wo, self.bo)


class MLP(nn.Module):
    def __init__(self, d: int, d_ff: int, activation: str):
        super().__init__()
        self.activation = activation
        self.w1 = nn.Parameter(torch.empty(d_ff, d))
        self.b1 = nn.Parameter(torch.empty(d_ff))
        self.w2 = nn.Parameter(torch.empty(d, d_ff))
        self.b2 = nn.Parameter(torch.empty(d))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.w1, 0.0, INIT_STD)
        nn.init.normal_(self.w2, 0.0, INIT_STD)
        nn.init.zeros_(self.b1)
        nn.init.zeros_(self.b2)

    def forward(self, x):
        u = F.linear(x, self.w1, self.b1)
        u = F.gelu(u, approximate="tanh") if self.activation == "gelu" else F.relu(u)
        return F.linear(u, self.w2, self.b2)


class TokenShift(nn.Module):
    """model.token_shift: h + prev * (left neighbour) + next * (right
    neighbour) per channel, within each sequence (padding is nobody's
    neighbour); both weights start at 1/2."""

    def __init__(self, d: int):
        super().__init__()
        self.prev = nn.Parameter(torch.full((d,), 0.5))
        self.next = nn.Parameter(torch.full((d,), 0.5))

    def forward(self, h, key_mask):
        zero = h.new_zeros(h.shape[0], 1, h.shape[2])
        left = torch.cat([zero, h[:, :-1]], dim=1)
        right = torch.cat([h[:, 1:] * key_mask[:, 1:, None], zero], dim=1)
        return h + left * self.prev + right * self.next


class Block(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        d = cfg.model.d_model
        self.shift = TokenShift(d) if cfg.model.token_shift else None
        self.ada = Affine(cfg.d_cond, 6 * d, zero_init=True)
        self.ln1 = ScaleNorm(d)
        self.attn = Attention(d, cfg.model.n_heads)
        self.ln2 = ScaleNorm(d)
        self.mlp = MLP(d, cfg.model.mlp_ratio * d, cfg.model.activation)
        self.dropout = cfg.model.dropout

    def forward(self, h, c, cos, sin, key_mask):
        if self.shift is not None:
            h = self.shift(h, key_mask)
        mod = self.ada(c)[:, None, :].chunk(6, dim=-1)
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = mod
        a = self.ln1(h) * (1 + scale_a) + shift_a
        h = h + gate_a * F.dropout(self.attn(a, cos, sin, key_mask), self.dropout, self.training)
        a = self.ln2(h) * (1 + scale_m) + shift_m
        return h + gate_m * F.dropout(self.mlp(a), self.dropout, self.training)


def segment_rows(x: torch.Tensor, key_mask: torch.Tensor, max_len: int):
    """Rows of the segment position tables (model.seg_pos) for ids x [B, L]
    with key_mask [B, L]. The prompt is every token before the last BOS; the
    second segment is BOS (index 0; without BOS the first token is 1) up to
    EOS. Tables: prompt from start, prompt from end, second segment from
    start, second segment from end, max_len + 1 rows each."""
    R = max_len + 1
    B, L = x.shape
    i = torch.arange(L).expand(B, L)
    n = key_mask.sum(1, keepdim=True)
    is_bos = (x == BOS) & key_mask
    bos = torch.where(is_bos, i, torch.full_like(i, -1)).max(1, keepdim=True).values
    prompt = i < bos
    start = torch.where(prompt, i, 2 * R + i - bos)
    end = torch.where(prompt, R + bos - 1 - i, 3 * R + n - 1 - i)
    pad = ~key_mask
    return start.masked_fill(pad, 0), end.masked_fill(pad, 0)


class Backbone(nn.Module):
    """Token embedding (plus, with model.pos_emb, a learned absolute position
    embedding registered right after it), time embedding and the adaLN
    transformer blocks."""

    def __init__(self, cfg: Config):
        super().__init__()
        d = cfg.model.d_model
        self.head_dim = d // cfg.model.n_heads
        self.tok_emb = nn.Parameter(torch.empty(cfg.n_ids, d))
        self.pos_emb = nn.Parameter(torch.empty(cfg.model.max_len, d)) if cfg.model.pos_emb else None
        self.seg_len = cfg.model.max_len
        self.seg_pos = nn.Parameter(torch.empty(4 * (self.seg_len + 1), d)) if cfg.model.seg_pos else None
        self.time = TimeEmbedding(cfg.d_cond)
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.model.n_layers)])
        nn.init.normal_(self.tok_emb, 0.0, INIT_STD)
        if self.pos_emb is not None:
            nn.init.normal_(self.pos_emb, 0.0, INIT_STD)
        if self.seg_pos is not None:  # zeros: positions add nothing until they help
            nn.init.zeros_(self.seg_pos)

    def trunk(self, x: torch.Tensor, t: torch.Tensor, key_mask: torch.Tensor):
        """x [B, L] token ids (right-padded), t [B], key_mask [B, L] (True =
        a real token). Returns the final hidden states h [B, L, d] and the
        conditioning vector c [B, d_c]."""
        h = F.embedding(x, self.tok_emb)
        if self.pos_emb is not None:  # rows: positions 0..L-1 within each sequence, as rotary
            h = h + self.pos_emb[:x.shape[1]]
        if self.seg_pos is not None:
            start, end = segment_rows(x, key_mask, self.seg_len)
            h = h + F.embedding(start, self.seg_pos) + F.embedding(end, self.seg_pos)
        c = self.time(t)
        cos, sin = rope_tables(x.shape[1], self.head_dim, h.dtype, h.device)
        for block in self.blocks:
            h = block(h, c, cos, sin, key_mask)
        return h, c


class AdaNormHead(nn.Module):
    """LN + adaLN(shift, scale): the shared front of every head."""

    def __init__(self, cfg: Config):
        super().__init__()
        d = cfg.model.d_model
        self.ada = Affine(cfg.d_cond, 2 * d, zero_init=True)
        self.ln = ScaleNorm(d)

    def modulate(self, h, c):
        shift, scale = self.ada(c)[:, None, :].chunk(2, dim=-1)
        return self.ln(h) * (1 + scale) + shift


class TokenHead(AdaNormHead):
    def __init__(self, cfg: Config):
        super().__init__(cfg)
        n_out = cfg.vocab.size
        self.w = nn.Parameter(torch.empty(n_out, cfg.model.d_model))
        self.b = nn.Parameter(torch.zeros(n_out))
        nn.init.normal_(self.w, 0.0, INIT_STD)

    def forward(self, h, c):
        return F.linear(self.modulate(h, c), self.w, self.b)


class RateHead(AdaNormHead):
    """softplus(s) * (max - min) + min: a floor at min_rate, not a cap."""

    def __init__(self, cfg: Config, min_rate: float, max_rate: float):
        super().__init__(cfg)
        d = cfg.model.d_model
        self.min_rate, self.max_rate = float(min_rate), float(max_rate)
        self.w1 = nn.Parameter(torch.empty(d, d))
        self.b1 = nn.Parameter(torch.zeros(d))
        self.w2 = nn.Parameter(torch.empty(1, d))
        self.b2 = nn.Parameter(torch.full((1,), -4.0))
        nn.init.normal_(self.w1, 0.0, INIT_STD)
        nn.init.normal_(self.w2, 0.0, INIT_STD)

    def forward(self, h, c):
        u = F.gelu(F.linear(self.modulate(h, c), self.w1, self.b1), approximate="tanh")
        s = F.linear(u, self.w2, self.b2).squeeze(-1)
        return F.softplus(s) * (self.max_rate - self.min_rate) + self.min_rate


class Generator(Backbone):
    """Reads (x_t, t); returns token logits [B, L, V-4], beta_in and beta_um [B, L]."""

    def __init__(self, cfg: Config):
        super().__init__(cfg)
        g = cfg.generator
        self.out = TokenHead(cfg)
        self.ins = RateHead(cfg, g.min_rate, g.max_rate)
        self.um = RateHead(cfg, g.min_rate, g.max_rate) if g.learn_unmask_rate else None
        self.const_b_um = cfg.const_b_um
        self.ins_grad = cfg.loss.insert_trunk_grad

    def forward(self, x, t, key_mask):
        h, c = self.trunk(x, t, key_mask)
        logits = self.out(h, c)
        beta_in = self.ins(grad_scale(h, self.ins_grad), grad_scale(c, self.ins_grad))
        if self.um is not None:
            beta_um = self.um(h, c)
        else:
            beta_um = torch.full_like(beta_in, self.const_b_um)
        return logits, beta_in, beta_um


class Auxiliary(Backbone):
    """Reads a clean sequence z only (t = 0); returns b_in, b_um [B, L]."""

    def __init__(self, cfg: Config):
        super().__init__(cfg)
        s = cfg.schedule
        self.bin = RateHead(cfg, s.min_rate, s.max_rate)
        self.bum = RateHead(cfg, s.min_rate, s.max_rate) if cfg.learn_b_um else None
        self.const_b_um = cfg.const_b_um

    def forward(self, z, key_mask):
        t0 = torch.zeros(z.shape[0], dtype=self.tok_emb.dtype, device=z.device)
        h, c = self.trunk(z, t0, key_mask)
        b_in = self.bin(h, c)
        b_um = self.bum(h, c) if self.bum is not None else torch.full_like(b_in, self.const_b_um)
        return b_in, b_um


class LFlexModel(nn.Module):
    """Generator `gen` and, for learned b_in (kumaraswamy, learn_b_in), the
    auxiliary network `aux`."""

    def __init__(self, cfg: Config):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.gen = Generator(cfg)
        self.aux = Auxiliary(cfg) if cfg.learned else None

    def order(self, z, key_mask):
        """Per-token b_in, b_um of clean sequences: without an auxiliary
        network the constants schedule.b_in, schedule.b_um (ones for the
        linear family)."""
        if self.aux is None:
            dt = self.gen.tok_emb.dtype
            return (torch.full(z.shape, self.cfg.const_b_in, dtype=dt, device=z.device),
                    torch.full(z.shape, self.cfg.const_b_um, dtype=dt, device=z.device))
        return self.aux(z, key_mask)


DECAYED_SUFFIXES = (".w", ".wqkv", ".wo", ".w1", ".w2")


def decay_groups(model: nn.Module, weight_decay: float):
    """AdamW groups: decay every weight matrix; not biases, LN scales, tok_emb."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if name.endswith(DECAYED_SUFFIXES) else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


# --------------------------------------------------------------------------
# Batches: the C API's concatenated layout <-> padded tensors
# --------------------------------------------------------------------------

class Batch(NamedTuple):
    z: torch.Tensor       # [B, L] int64, PAD-padded
    fixed: torch.Tensor   # [B, L] bool
    valid: torch.Tensor   # [B, L] bool


def pad_batch(tokens: torch.Tensor, fixed: torch.Tensor, offsets: torch.Tensor) -> Batch:
    """Concatenated tokens/fixed with offsets [B+1] -> right-padded [B, L]."""
    offsets = offsets.to(torch.long)
    lengths = offsets[1:] - offsets[:-1]
    B, L = lengths.numel(), int(lengths.max())
    valid = torch.arange(L)[None, :] < lengths[:, None]
    z = torch.full((B, L), PAD, dtype=torch.long)
    fx = torch.zeros((B, L), dtype=torch.bool)
    z[valid] = tokens.to(torch.long)
    fx[valid] = fixed.to(torch.bool)
    return Batch(z, fx, valid)


def stratified_times(u: torch.Tensor, shape: float = 1.0) -> torch.Tensor:
    """t_j = eps + q_j (1 - 2 eps), q_j = 1 - (1 - (j + u_j)/B)^(1/shape)."""
    B = u.numel()
    j = torch.arange(B, dtype=u.dtype)
    q = (j + u) / B
    if shape != 1:
        q = -torch.expm1(torch.log1p(-q) / shape)
    return T_EPS + q * (1.0 - 2.0 * T_EPS)


# --------------------------------------------------------------------------
# Noising: states and partial sequences
# --------------------------------------------------------------------------

@torch.no_grad()
def sample_times(t: torch.Tensor, a: float, b_in: torch.Tensor, b_um: torch.Tensor,
                 generator: torch.Generator):
    """Per-token insertion and unmasking times by inverse CDF (flat tensors,
    float64). u for every token is drawn first, then v."""
    u = torch.rand(b_in.shape, generator=generator, dtype=torch.float64)
    v = torch.rand(b_in.shape, generator=generator, dtype=torch.float64)
    b_in, b_um = b_in.to(torch.float64), b_um.to(torch.float64)
    t_in = torch.pow(-torch.expm1(torch.log1p(-u) / b_in), 1.0 / a)
    # F_um(T_um) = F_um(T_in) + v (1 - F_um(T_in))
    #   <=> 1 - T_um^a = (1 - v)^(1/c) (1 - T_in^a)
    t_um = torch.pow(1.0 - torch.exp(torch.log1p(-v) / b_um) * (1.0 - torch.pow(t_in, a)), 1.0 / a)
    return t_in, t_um


@torch.no_grad()
def sample_states(batch: Batch, t: torch.Tensor, a: float, b_in: torch.Tensor,
                  b_um: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """States [B, L] (DROPPED/MASKED/CLEAN; fixed tokens CLEAN, pads DROPPED).
    Random numbers are drawn in the concatenated token order, so the draw does
    not depend on the padding."""
    valid = batch.valid
    tt = t[:, None].expand_as(b_in)[valid].to(torch.float64)
    t_in, t_um = sample_times(tt, a, b_in[valid], b_um[valid], generator)
    flat = torch.where(tt < t_in, DROPPED, torch.where(tt < t_um, MASKED, CLEAN))
    states = torch.full(valid.shape, DROPPED, dtype=torch.long)
    states[valid] = flat
    return torch.where(batch.fixed, CLEAN, states)


class PartialSeq(NamedTuple):
    tokens: torch.Tensor       # x_t [B, Lt], PAD-padded
    valid: torch.Tensor        # [B, Lt] bool
    src: torch.Tensor          # s(k): index into z of position k, -1 on pads
    lam: torch.Tensor          # Lambda_k: sum of b_in over gap k (left of k)
    masked: torch.Tensor       # [B, Lt] bool
    target: torch.Tensor       # z_{s(k)} (valid where masked)
    target_rate: torch.Tensor  # b_um^{s(k)}
    closed: torch.Tensor       # gap k can never hold a token: z_{s(k)} fixed, its left neighbour fixed or absent


def build_xt(batch: Batch, states: torch.Tensor, b_in: torch.Tensor,
             b_um: torch.Tensor) -> PartialSeq:
    """x_t, the map s, the gap targets Lambda_k and the unmasking targets.
    Differentiable in b_in and b_um; deterministic given the states."""
    z, valid = batch.z, batch.valid
    states = torch.where(batch.fixed, CLEAN, states)
    present = valid & (states != DROPPED)
    dropped = valid & (states == DROPPED)
    n_present = present.cumsum(1)          # for a dropped token: its gap index
    B, L = z.shape
    Lt = int(present.sum(1).max())
    rows = torch.arange(B)[:, None].expand(B, L)
    pos = n_present - 1
    xt = torch.full((B, Lt), PAD, dtype=z.dtype)
    src = torch.full((B, Lt), -1, dtype=torch.long)
    xt[rows[present], pos[present]] = torch.where(states == MASKED, MASK, z)[present]
    src[rows[present], pos[present]] = torch.arange(L).expand(B, L)[present]
    gap = torch.where(dropped, n_present, 0).clamp(max=Lt - 1)
    lam = torch.zeros((B, Lt), dtype=b_in.dtype).scatter_add(
        1, gap, torch.where(dropped, b_in, torch.zeros_like(b_in)))
    valid_t = src >= 0
    src0 = src.clamp(min=0)
    left_fixed = torch.cat([torch.ones_like(batch.fixed[:, :1]), batch.fixed[:, :-1]], 1)
    closed = torch.gather(batch.fixed & left_fixed, 1, src0) & valid_t
    return PartialSeq(xt, valid_t, src, lam, xt == MASK,
                      torch.gather(z, 1, src0), torch.gather(b_um, 1, src0), closed)


def stack_partial(xs: Sequence[PartialSeq]):
    """Pad several x_t to one length and stack them along the batch axis, so
    the generator sees both states in one forward."""
    Lt = max(x.tokens.shape[1] for x in xs)
    pad = lambda v, val: F.pad(v, (0, Lt - v.shape[1]), value=val)
    return (torch.cat([pad(x.tokens, PAD) for x in xs]),
            torch.cat([pad(x.valid, False) for x in xs]))


# --------------------------------------------------------------------------
# Loss (the paper's objective with doc/model-layout.md's details)
# --------------------------------------------------------------------------

def sequence_loss(logits, beta_in, beta_um, xt: PartialSeq, g: torch.Tensor,
                  max_len: int, unmask_norm: str = "masked",
                  n_tokens: Optional[torch.Tensor] = None,
                  closed_gaps: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-sequence unmasking and insertion parts of L (their sum is L).
    `g` [B] is the time weight (g_a(t), or 1 for loss.time_weight flat); the
    unmasking sum is divided by M (masked), the non-fixed tokens of the clean
    sequence `n_tokens` [B] (tokens) or max_len, each at least 1. Without
    `closed_gaps` the insertion sum leaves out the gaps no token can enter."""
    logp = F.log_softmax(logits, dim=-1)
    tgt = (xt.target - N_SPECIAL).clamp(min=0)
    logq = torch.gather(logp, 2, tgt[..., None]).squeeze(-1)
    r = xt.target_rate
    um = torch.where(xt.masked, -r * logq + bregman(r, beta_um), torch.zeros_like(logq))
    if unmask_norm == "masked":
        norm = xt.masked.sum(1).clamp(min=1).to(um.dtype)
    elif unmask_norm == "tokens":
        norm = n_tokens.clamp(min=1).to(um.dtype)
    else:
        assert unmask_norm == "max_len"
        norm = torch.full_like(g, float(max_len))
    loss_um = g * um.sum(1) / norm
    counted = xt.valid if closed_gaps else xt.valid & ~xt.closed
    ins = torch.where(counted, bregman(xt.lam, beta_in), torch.zeros_like(beta_in))
    loss_in = g * ins.sum(1) / max_len
    return loss_um, loss_in


def state_log_prob(batch: Batch, states, t, a, b_in, b_um) -> torch.Tensor:
    """log p(S) per sequence: sum over non-fixed tokens."""
    lp = state_log_probs(t[:, None], a, b_in, b_um)                # [B, L, 3]
    lp = torch.gather(lp, 2, states.clamp(0, 2)[..., None]).squeeze(-1)
    free = batch.valid & ~batch.fixed
    return torch.where(free, lp, torch.zeros_like(lp)).sum(1)


def schedule_regulariser(batch: Batch, a: float, b: torch.Tensor, lc: LossConfig) -> torch.Tensor:
    """R per sequence for one learned shape tensor b [B, L]: grid + tail + KL.
    The grid term pulls the mean CDF towards 1 - (1 - t_g)^reg_b_in (t_g for
    reg_b_in = 1; the library uses this target for b_um's R too); the KL term
    is summed or (kl_reduction mean) averaged over the non-fixed tokens."""
    free = batch.valid & ~batch.fixed
    w = free.to(b.dtype)
    n = w.sum(1)
    bs = torch.where(free, b, torch.ones_like(b))  # keep pads finite
    grid = (torch.arange(REG_GRID, dtype=b.dtype) + 0.5) / REG_GRID
    cdf = kumaraswamy_cdf(grid, a, bs[..., None])                   # [B, L, G]
    mean_cdf = (cdf * w[..., None]).sum(1) / n.clamp(min=1)[:, None]
    target = grid if lc.reg_b_in == 1 else -torch.expm1(lc.reg_b_in * torch.log1p(-grid))
    r_grid = torch.where(n > 0, ((mean_cdf - target) ** 2).sum(1), torch.zeros_like(n))
    lo = torch.tensor(0.01, dtype=b.dtype)
    hi = torch.tensor(0.99, dtype=b.dtype)
    tail = (F.relu(kumaraswamy_cdf(lo, a, bs) - 0.01) ** 2
            + F.relu(kumaraswamy_survival(hi, a, bs) - 0.01) ** 2)
    r_tail = (tail * w).sum(1)
    r_kl = (kl_to_uniform(a, bs) * w).sum(1)
    if lc.kl_reduction == "mean":
        r_kl = r_kl / n.clamp(min=1)
    return lc.w_grid * r_grid + lc.w_tail * r_tail + lc.w_kl * r_kl


def compute_loss(model: LFlexModel, batch: Batch, t: torch.Tensor,
                 states: Optional[List[torch.Tensor]] = None,
                 generator: Optional[torch.Generator] = None,
                 reinforce_coef: Optional[torch.Tensor] = None,
                 keep: bool = False) -> Dict[str, torch.Tensor]:
    """The training objective for a batch of clean sequences at times t [B].

    `states`: the noised states to use (two with learned b_in, one for linear
    or constant b_in); sampled with `generator` when None. `reinforce_coef` replaces
    stopgrad(L1 - L2) (used by the finite-difference check, which needs the
    stop-gradient factor frozen). With `keep`, intermediate tensors are
    returned too.
    Returns a dict with the scalar `total` (to differentiate) and the parts
    `unmask`, `insert`, `reinforce`, `reg` (means over the batch, already
    weighted, so total = unmask + insert + reinforce + reg).
    """
    cfg = model.cfg
    a = cfg.a
    n_states = cfg.n_states
    b_in, b_um = model.order(batch.z, batch.valid)
    if states is None:
        states = [sample_states(batch, t, a, b_in.detach(), b_um.detach(), generator)
                  for _ in range(n_states)]
    assert len(states) == n_states
    xts = [build_xt(batch, s, b_in, b_um) for s in states]
    x, key_mask = stack_partial(xts)
    B = t.shape[0]
    logits, beta_in, beta_um = model.gen(x, t.repeat(n_states), key_mask)
    g = base_hazard(t, a)
    k = cfg.loss.time_shape
    weight = torch.ones_like(g) if cfg.loss.time_weight == "flat" else g if k == 1 else g / (k * (1 - t) ** (k - 1))
    n_tokens = (batch.valid & ~batch.fixed).sum(1)
    out: Dict[str, torch.Tensor] = {}
    L, U, I, logps = [], [], [], []
    for i, xt in enumerate(xts):
        n = xt.tokens.shape[1]
        sl = slice(i * B, (i + 1) * B)
        u_i, in_i = sequence_loss(logits[sl, :n], beta_in[sl, :n], beta_um[sl, :n], xt, weight,
                                  cfg.model.max_len, cfg.loss.unmask_norm, n_tokens,
                                  cfg.loss.insert_closed_gaps)
        U.append(u_i)
        I.append(in_i)
        L.append(u_i + in_i)
        logps.append(state_log_prob(batch, states[i], t, a, b_in, b_um))
        if keep:
            out[f"s{i + 1}"] = dict(xt=xt, logits=logits[sl, :n], beta_in=beta_in[sl, :n],
                                    beta_um=beta_um[sl, :n], L=L[-1], L_um=u_i, L_in=in_i,
                                    logp=logps[-1], states=states[i])
    zero = torch.zeros((), dtype=g.dtype)
    if not cfg.learned:
        out.update(total=L[0].mean(), unmask=U[0].mean(), insert=I[0].mean(),
                   reinforce=zero, reg=zero)
    else:
        coef = (L[0] - L[1]).detach() if reinforce_coef is None else reinforce_coef
        reinforce_value = 0.5 * (L[0] - L[1]).detach() * (logps[0] - logps[1])
        reinforce_surrogate = 0.5 * coef * (logps[0] - logps[1])
        R = schedule_regulariser(batch, a, b_in, cfg.loss)
        if cfg.learn_b_um:
            R = R + schedule_regulariser(batch, a, b_um, cfg.loss)
        reg = cfg.loss.w_reg * R.mean()
        out.update(total=(0.5 * (L[0] + L[1])).mean() + reinforce_surrogate.mean() + reg,
                   unmask=(0.5 * (U[0] + U[1])).mean(), insert=(0.5 * (I[0] + I[1])).mean(),
                   reinforce=reinforce_value.mean(), reg=reg)
        if keep:
            out["R"] = R
    if keep:
        out.update(b_in=b_in, b_um=b_um, g=g)
    return out


# --------------------------------------------------------------------------
# Optimiser and the train step
# --------------------------------------------------------------------------

def lr_factor(step: int, tc: TrainConfig) -> float:
    """Multiplier of train.lr for the step with 0-based index `step`, as the
    library's lf_model_lr_at at 1-based step s = step + 1: linear warm-up
    s/W for s <= W, then constant, or cosine from 1 at s = W down to
    min_lr_ratio at s = total_steps (and after)."""
    s = step + 1
    if tc.warmup > 0 and s <= tc.warmup:
        return s / tc.warmup
    if tc.lr_schedule == "constant":
        return 1.0
    span = tc.total_steps - tc.warmup
    progress = min(1.0, max(0.0, (s - tc.warmup) / span)) if span > 0 else 1.0
    return tc.min_lr_ratio + (1.0 - tc.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


class Trainer:
    def __init__(self, model: LFlexModel, seed: int = 0):
        self.model = model
        tc = model.cfg.train
        self.opt = torch.optim.AdamW(decay_groups(model, tc.weight_decay), lr=tc.lr,
                                     betas=(tc.beta1, tc.beta2), eps=tc.eps)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda k: lr_factor(k, tc))
        self.rng = torch.Generator().manual_seed(seed)
        self.step_count = 0
        self.ema = ([p.detach().clone() for p in model.parameters()]
                    if tc.ema > 0 else None)

    def train_step(self, tokens: torch.Tensor, fixed: torch.Tensor,
                   offsets: torch.Tensor) -> Dict[str, float]:
        """Noising -> loss -> backward -> clip -> AdamW step on one batch in
        the concatenated layout. A step whose loss or gradient is not finite
        is not applied."""
        model, tc = self.model, self.model.cfg.train
        model.train()
        batch = pad_batch(tokens, fixed, offsets)
        dtype = model.gen.tok_emb.dtype
        u = torch.rand(batch.z.shape[0], generator=self.rng, dtype=torch.float64)
        t = stratified_times(u, model.cfg.loss.time_shape).to(dtype)
        self.opt.zero_grad(set_to_none=True)
        parts = compute_loss(model, batch, t, generator=self.rng)
        parts["total"].backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(),
                                                   tc.clip if tc.clip > 0 else math.inf)
        lr = self.opt.param_groups[0]["lr"]
        applied = bool(torch.isfinite(parts["total"]) and torch.isfinite(grad_norm))
        if applied:
            self.opt.step()
            self.sched.step()
            self.step_count += 1
            if self.ema is not None:
                with torch.no_grad():
                    for e, p in zip(self.ema, model.parameters()):
                        e.lerp_(p, 1.0 - tc.ema)
        stats = {k: float(parts[k]) for k in ("total", "unmask", "insert", "reinforce", "reg")}
        stats.update(grad_norm=float(grad_norm), lr=lr, step=self.step_count,
                     tokens=int(batch.valid.sum()), applied=applied)
        return stats
