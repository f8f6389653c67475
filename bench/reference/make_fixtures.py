#!/usr/bin/python3
"""Write the reference fixtures of the model and loss to tests/fixtures/.

    /usr/bin/python3 bench/reference/make_fixtures.py [--out tests/fixtures]

Each fixture is a safetensors file (written here with struct + json) holding
the weights, a batch, the sampled noise states and every intermediate and
final value of one training objective, computed in float64 from the float32
weights. The names are listed in tests/fixtures/README.md.

Before writing, the script checks the reference itself:
* the state log-probabilities against Monte-Carlo frequencies of states drawn
  by the inverse-CDF sampler (and log e(x), the Kumaraswamy KL and the
  expected insertion time against direct computations);
* build_xt against a plain loop over tokens, on every fixture batch;
* the float64 gradient of the objective against central finite differences
  on a few entries of every kind of parameter;
* every file by reading it back.
Any failed check stops the script with an AssertionError.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lflex_ref as R  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# --------------------------------------------------------------------------
# safetensors, by hand
# --------------------------------------------------------------------------

DTYPES = {np.dtype("float64"): "F64", np.dtype("float32"): "F32", np.dtype("int64"): "I64",
          np.dtype("int32"): "I32", np.dtype("uint8"): "U8"}
NP_DTYPES = {v: k for k, v in DTYPES.items()}


def write_safetensors(path: str, tensors: dict, metadata: dict) -> None:
    """8-byte little-endian header length, JSON header (padded with spaces to
    a multiple of 8), then the raw little-endian data. Tensors are laid out
    by decreasing element size so that every one is naturally aligned."""
    arrays = {k: np.array(v, order="C") for k, v in tensors.items()}  # keeps 0-d shapes
    order = sorted(arrays, key=lambda k: -arrays[k].dtype.itemsize)  # stable
    header = {"__metadata__": metadata}
    blobs, offset = [], 0
    for name in order:
        arr = arrays[name]
        data = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": DTYPES[arr.dtype], "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def read_safetensors(path: str):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    out = {}
    for name, h in header.items():
        b, e = h["data_offsets"]
        dt = NP_DTYPES[h["dtype"]].newbyteorder("<")
        assert (base + b) % dt.itemsize == 0, name
        out[name] = np.frombuffer(raw[base + b:base + e], dtype=dt).reshape(h["shape"])
    return out, meta


# --------------------------------------------------------------------------
# Checks of the reference itself
# --------------------------------------------------------------------------

def check_state_probs_monte_carlo() -> None:
    """State probabilities vs frequencies of states drawn by inverse CDF."""
    gen = torch.Generator().manual_seed(1234)
    n = 400_000
    cases = [  # (a, b_in, b_um, t)
        (1.0, 2.5, 1.0, 0.3),
        (2.0, 3.0, 3.0, 0.5),          # b = c: the e(0) limit
        (0.7, 1.2, 4.0, 0.6),          # d < 0
        (1.5, 6.0, 0.8, 0.2),          # d > 0, large
        (1.0, 1.0, 1.0, 0.45),         # linear family
        (3.0, 2.0, 2.0004, 0.7),       # |d l| < 1e-3: the series branch
    ]
    worst = 0.0
    for a, b, c, t in cases:
        bb = torch.full((n,), b, dtype=torch.float64)
        cc = torch.full((n,), c, dtype=torch.float64)
        t_in, t_um = R.sample_times(torch.full((n,), t, dtype=torch.float64), a, bb, cc, gen)
        freq = torch.stack([(t < t_in).double().mean(), ((t_in <= t) & (t < t_um)).double().mean(),
                            (t_um <= t).double().mean()])
        p = R.state_log_probs(torch.tensor(t, dtype=torch.float64), a,
                              torch.tensor(b, dtype=torch.float64),
                              torch.tensor(c, dtype=torch.float64)).exp()
        assert abs(float(p.sum()) - 1.0) < 1e-12, (a, b, c, t, p)
        sigma = torch.sqrt(p * (1 - p) / n)
        z = ((freq - p).abs() / sigma).max().item()
        worst = max(worst, z)
        # 5 sigma over 18 comparisons: a false alarm has probability ~1e-5
        assert z < 5.0, f"state probabilities {p.tolist()} vs frequencies {freq.tolist()} " \
                        f"(a={a}, b={b}, c={c}, t={t})"
    print(f"state log-probabilities vs Monte-Carlo ({n} draws x {len(cases)} cases): "
          f"worst deviation {worst:.2f} sigma")


def check_schedule_functions() -> None:
    dt = torch.float64
    # log e(x): direct formula where it is accurate, and the branch seams.
    x = torch.tensor([-30.0, -2.0, -0.1, -2e-3, 2e-3, 0.1, 2.0, 30.0], dtype=dt)
    direct = torch.log(torch.expm1(x) / x)
    err = (R.log_expm1_over_x(x) - direct).abs().max().item()
    assert err < 1e-13, err
    for s in (1e-3, -1e-3):
        lo = R.log_expm1_over_x(torch.tensor(s * (1 - 1e-12), dtype=dt))
        hi = R.log_expm1_over_x(torch.tensor(s * (1 + 1e-12), dtype=dt))
        assert abs(float(lo - hi)) < 5e-15, (s, float(lo - hi))  # slope 1/2 times 2e-15
    assert float(R.log_expm1_over_x(torch.zeros((), dtype=dt))) == 0.0
    # Gradients through every branch are finite and match d/dx log e(x)
    # = 1/(1 - e^-x) - 1/x.
    xg = torch.tensor([-5.0, -1e-4, 0.0, 1e-4, 5.0], dtype=dt, requires_grad=True)
    (gx,) = torch.autograd.grad(R.log_expm1_over_x(xg).sum(), xg)
    xd = xg.detach()
    want = torch.where(xd == 0, torch.full_like(xd, 0.5),
                       1 / -torch.expm1(-xd) - 1 / torch.where(xd == 0, torch.ones_like(xd), xd))
    assert (gx - want).abs().max().item() < 1e-9, (gx, want)
    # KL(Kumaraswamy(a,b) || U) = int f log f, by the midpoint rule in u = t^a.
    for a, b in ((1.0, 1.0), (1.0, 2.8), (2.0, 1.5), (1.5, 4.0)):
        n = 2_000_000
        t = (torch.arange(n, dtype=dt) + 0.5) / n
        logf = math.log(a * b) + (a - 1) * torch.log(t) + (b - 1) * torch.log1p(-t ** a)
        quad = float((logf.exp() * logf).mean())
        kl = float(R.kl_to_uniform(a, torch.tensor(b, dtype=dt)))
        assert abs(kl - quad) < 1e-5, (a, b, kl, quad)
        # E[T_in] = int (1 - F) dt
        mean = float(R.kumaraswamy_survival(t, a, torch.tensor(b, dtype=dt)).mean())
        et = float(R.expected_insert_time(a, torch.tensor(b, dtype=dt)))
        assert abs(mean - et) < 1e-8, (a, b, mean, et)
    # g_a(t) = F'(t) / (1 - F(t)) with b = 1, by central differences of F.
    for a in (0.7, 1.0, 2.0):
        t = torch.tensor([0.1, 0.5, 0.9], dtype=dt)
        h = 1e-6
        one = torch.ones((), dtype=dt)
        fd = (R.kumaraswamy_cdf(t + h, a, one) - R.kumaraswamy_cdf(t - h, a, one)) / (2 * h)
        haz = fd / R.kumaraswamy_survival(t, a, one)
        assert (haz - R.base_hazard(t, a)).abs().max().item() < 1e-7
    print("schedule functions (log e, KL, E[T_in], hazard) agree with direct computations")


def build_xt_brute_force(z, fixed, states, b_in, b_um):
    """One sequence, plain loops: x_t, s, Lambda, masked targets."""
    xt, src, lam = [], [], []
    gap = 0.0
    for i in range(len(z)):
        st = 2 if fixed[i] else states[i]
        if st == R.DROPPED:
            gap += b_in[i]
            continue
        xt.append(R.MASK if st == R.MASKED else z[i])
        src.append(i)
        lam.append(gap)
        gap = 0.0
    assert gap == 0.0, "a dropped token right of the final EOS"
    target = [z[s] if x == R.MASK else None for x, s in zip(xt, src)]
    rate = [b_um[s] if x == R.MASK else None for x, s in zip(xt, src)]
    return xt, src, lam, target, rate


def check_build_xt(batch: R.Batch, states, b_in, b_um, xt: R.PartialSeq) -> None:
    for j in range(batch.z.shape[0]):
        n = int(batch.valid[j].sum())
        want = build_xt_brute_force(batch.z[j, :n].tolist(), batch.fixed[j, :n].tolist(),
                                    states[j, :n].tolist(), b_in[j, :n].tolist(),
                                    b_um[j, :n].tolist())
        m = int(xt.valid[j].sum())
        assert xt.tokens[j, :m].tolist() == want[0]
        assert xt.src[j, :m].tolist() == want[1]
        assert bool((xt.tokens[j, m:] == R.PAD).all()) and bool((xt.src[j, m:] == -1).all())
        assert np.allclose(xt.lam[j, :m].tolist(), want[2], rtol=1e-14, atol=0)
        assert float(xt.lam[j, m:].abs().sum()) == 0.0
        for k in range(m):
            assert bool(xt.masked[j, k]) == (want[3][k] is not None)
            if want[3][k] is not None:
                assert int(xt.target[j, k]) == want[3][k]
                assert float(xt.target_rate[j, k]) == want[4][k]


def layout_forward(P: dict, prefix: str, x: list, t: float, cfg: R.Config, heads: list):
    """doc/model-layout.md's forward pass written out line by line in numpy
    for one unpadded sequence, from the parameter dict alone."""
    W = lambda name: P[prefix + name]
    d, H = cfg.model.d_model, cfg.model.n_heads
    Dh, n = d // H, len(x)

    def ln(h, s):
        mu = h.mean(-1, keepdims=True)
        var = ((h - mu) ** 2).mean(-1, keepdims=True)
        return (h - mu) / np.sqrt(var + 1e-5) * s

    gelu = lambda u: 0.5 * u * (1 + np.tanh(math.sqrt(2 / math.pi) * (u + 0.044715 * u ** 3)))
    silu = lambda u: u / (1 + np.exp(-u))
    act = gelu if cfg.model.activation == "gelu" else (lambda u: np.maximum(u, 0))

    def rope(v):  # v [n, Dh]
        out = np.empty_like(v)
        half = Dh // 2
        for p in range(n):
            for i in range(half):
                th = 10000.0 ** (-2.0 * i / Dh)
                cs, sn = math.cos(p * th), math.sin(p * th)
                out[p, i] = v[p, i] * cs - v[p, i + half] * sn
                out[p, i + half] = v[p, i + half] * cs + v[p, i] * sn
        return out

    h = W("tok_emb")[x]
    if prefix + "pos_emb" in P:  # model.pos_emb: row p for position p of the sequence
        h = h + W("pos_emb")[np.arange(n)]
    if prefix + "seg_pos" in P:  # model.seg_pos: four tables of max_len + 1 rows
        R1 = cfg.model.max_len + 1
        bos = max([p for p in range(n) if x[p] == R.BOS], default=-1)
        for p in range(n):
            if p < bos:  # prompt: index from its start, index from its end
                h[p] = h[p] + W("seg_pos")[p] + W("seg_pos")[R1 + bos - 1 - p]
            else:  # BOS .. EOS (the whole sequence without BOS)
                h[p] = h[p] + W("seg_pos")[2 * R1 + p - bos] + W("seg_pos")[3 * R1 + n - 1 - p]
    f = np.exp(-math.log(10000.0) * np.arange(128) / 128)
    e = np.concatenate([np.cos(t * f), np.sin(t * f)])
    c = silu(W("time.w2") @ silu(W("time.w1") @ e + W("time.b1")) + W("time.b2"))
    for i in range(cfg.model.n_layers):
        B = lambda name: W(f"blocks.{i}.{name}")
        if prefix + f"blocks.{i}.shift.prev" in P:  # model.token_shift: neighbours in the sequence
            left = np.vstack([np.zeros((1, d)), h[:-1]])
            right = np.vstack([h[1:], np.zeros((1, d))])
            h = h + left * B("shift.prev") + right * B("shift.next")
        m = B("ada.w") @ c + B("ada.b")
        sh_a, sc_a, g_a, sh_m, sc_m, g_m = (m[k * d:(k + 1) * d] for k in range(6))
        a_ = ln(h, B("ln1.scale")) * (1 + sc_a) + sh_a
        qkv = a_ @ B("attn.wqkv").T + B("attn.bqkv")
        o = np.zeros((n, d))
        for hd in range(H):
            cols = slice(hd * Dh, (hd + 1) * Dh)
            q = rope(qkv[:, 0:d][:, cols])
            k = rope(qkv[:, d:2 * d][:, cols])
            v = qkv[:, 2 * d:3 * d][:, cols]
            s = q @ k.T / math.sqrt(Dh)
            s = np.exp(s - s.max(-1, keepdims=True))
            o[:, cols] = (s / s.sum(-1, keepdims=True)) @ v
        h = h + g_a * (o @ B("attn.wo").T + B("attn.bo"))
        a_ = ln(h, B("ln2.scale")) * (1 + sc_m) + sh_m
        u = act(a_ @ B("mlp.w1").T + B("mlp.b1"))
        h = h + g_m * (u @ B("mlp.w2").T + B("mlp.b2"))
    outs = []
    for head, kind, lo, hi in heads:
        m = W(f"{head}.ada.w") @ c + W(f"{head}.ada.b")
        a_ = ln(h, W(f"{head}.ln.scale")) * (1 + m[d:2 * d]) + m[0:d]
        if kind == "token":
            outs.append(a_ @ W(f"{head}.w").T + W(f"{head}.b"))
        else:
            s = (gelu(a_ @ W(f"{head}.w1").T + W(f"{head}.b1")) @ W(f"{head}.w2").T
                 + W(f"{head}.b2"))[:, 0]
            outs.append(np.log1p(np.exp(s)) * (hi - lo) + lo)
    return outs


def check_layout_forward(model: R.LFlexModel, batch: R.Batch, t, out, n_states) -> None:
    cfg = model.cfg
    P = {n: p.detach().numpy() for n, p in model.named_parameters()}
    gc, sc = cfg.generator, cfg.schedule
    gen_heads = [("out", "token", 0, 0), ("ins", "rate", gc.min_rate, gc.max_rate)]
    if gc.learn_unmask_rate:
        gen_heads.append(("um", "rate", gc.min_rate, gc.max_rate))
    close = lambda u, v: np.allclose(u, v.detach().numpy(), rtol=1e-10, atol=1e-10)
    for j in range(batch.z.shape[0]):
        n = int(batch.valid[j].sum())
        if cfg.learned:
            aux_heads = [("bin", "rate", sc.min_rate, sc.max_rate)]
            if cfg.learn_b_um:
                aux_heads.append(("bum", "rate", sc.min_rate, sc.max_rate))
            res = layout_forward(P, "aux.", batch.z[j, :n].tolist(), 0.0, cfg, aux_heads)
            assert close(res[0], out["b_in"][j, :n])
            if cfg.learn_b_um:
                assert close(res[1], out["b_um"][j, :n])
        for i in range(n_states):
            st = out[f"s{i + 1}"]
            m = int(st["xt"].valid[j].sum())
            res = layout_forward(P, "gen.", st["xt"].tokens[j, :m].tolist(), float(t[j]), cfg,
                                 gen_heads)
            assert close(res[0], st["logits"][j, :m])
            assert close(res[1], st["beta_in"][j, :m])
            if gc.learn_unmask_rate:
                assert close(res[2], st["beta_um"][j, :m])
            else:
                assert bool((st["beta_um"][j, :m] == cfg.const_b_um).all())


def check_against_loops(model: R.LFlexModel, batch: R.Batch, t, out, n_states) -> None:
    """The batched, padded loss against one sequence at a time: the generator
    run on each x_t alone (no padding, so the key-padding mask is tested),
    and L, log p(S) and R from the formulas with plain Python loops."""
    cfg = model.cfg
    a = cfg.a
    lc = cfg.loss
    b_in, b_um = out["b_in"].detach(), out["b_um"].detach()
    for i in range(n_states):
        st = out[f"s{i + 1}"]
        xt = st["xt"]
        for j in range(batch.z.shape[0]):
            n = int(batch.valid[j].sum())
            m = int(xt.valid[j].sum())
            if cfg.learned:
                with torch.no_grad():
                    bi, bu = model.aux(batch.z[j:j + 1, :n], batch.valid[j:j + 1, :n])
                assert torch.allclose(bi[0], b_in[j, :n], rtol=1e-12, atol=0)
                assert torch.allclose(bu[0], b_um[j, :n], rtol=1e-12, atol=0)
            with torch.no_grad():
                lg, bin_, bum_ = model.gen(xt.tokens[j:j + 1, :m], t[j:j + 1],
                                           xt.valid[j:j + 1, :m])
            assert torch.allclose(lg[0], st["logits"][j, :m], rtol=1e-12, atol=1e-12)
            assert torch.allclose(bin_[0], st["beta_in"][j, :m], rtol=1e-12, atol=0)
            assert torch.allclose(bum_[0], st["beta_um"][j, :m], rtol=1e-12, atol=0)
            tj = float(t[j])
            g = a * tj ** (a - 1) / (1 - tj ** a) if lc.time_weight == "hazard" else 1.0
            if lc.time_weight == "hazard":  # importance weight of loss.time_shape k
                g /= lc.time_shape * (1 - tj) ** (lc.time_shape - 1)
            D = lambda u, v: v - u + (u * math.log(u / v) if u > 0 else 0.0)
            um, n_masked, ins = 0.0, 0, 0.0
            for k in range(m):
                beta_in, beta_um = float(bin_[0, k]), float(bum_[0, k])
                zi = int(xt.src[j, k])
                closed = bool(batch.fixed[j, zi]) and (zi == 0 or bool(batch.fixed[j, zi - 1]))
                if lc.insert_closed_gaps or not closed:
                    ins += D(float(xt.lam[j, k]), beta_in)
                if int(xt.tokens[j, k]) == R.MASK:
                    src = int(xt.src[j, k])
                    row = [float(v) for v in lg[0, k]]
                    mx = max(row)
                    log_z = mx + math.log(sum(math.exp(v - mx) for v in row))
                    logq = row[int(batch.z[j, src]) - R.N_SPECIAL] - log_z
                    r = float(b_um[j, src])
                    um += -r * logq + D(r, beta_um)
                    n_masked += 1
            norm = {"masked": n_masked, "max_len": cfg.model.max_len,
                    "tokens": sum(1 for k in range(n) if not bool(batch.fixed[j, k]))}[lc.unmask_norm]
            L = g * (um / max(1, norm) + ins / cfg.model.max_len)
            assert abs(L - float(st["L"][j])) <= 1e-12 * max(1.0, abs(L)), (i, j, L, st["L"][j])
            # log p(S) from the probabilities themselves (not in log space)
            logp = 0.0
            y = 1 - tj ** a
            for k in range(n):
                if bool(batch.fixed[j, k]):
                    continue
                b, c = float(b_in[j, k]), float(b_um[j, k])
                p_drop = y ** b
                p_mask = b * y ** c * ((1 - y ** (b - c)) / (b - c) if b != c else -math.log(y))
                p = [p_drop, p_mask, 1 - p_drop - p_mask][int(st["states"][j, k])]
                logp += math.log(p)
            assert abs(logp - float(st["logp"][j])) <= 1e-9 * max(1.0, abs(logp)), (i, j, logp)
    if not cfg.learned:
        return
    for j in range(batch.z.shape[0]):
        n = int(batch.valid[j].sum())
        free = [k for k in range(n) if not bool(batch.fixed[j, k])]
        total = 0.0
        for bs in [b_in] + ([b_um] if cfg.learn_b_um else []):
            bl = [float(bs[j, k]) for k in free]
            cdf = lambda tt, b: 1 - (1 - tt ** a) ** b
            goal = lambda tt: 1 - (1 - tt) ** lc.reg_b_in
            grid = sum((sum(cdf((q + 0.5) / 100, b) for b in bl) / len(bl) - goal((q + 0.5) / 100)) ** 2
                       for q in range(100)) if bl else 0.0
            tail = sum(max(0.0, cdf(0.01, b) - 0.01) ** 2 + max(0.0, 1 - cdf(0.99, b) - 0.01) ** 2
                       for b in bl)
            psi = lambda x: float(torch.digamma(torch.tensor(x, dtype=torch.float64)))
            kl = sum(math.log(a * b) + (a - 1) / a * (psi(1.0) - psi(b + 1)) - (b - 1) / b
                     for b in bl)
            if lc.kl_reduction == "mean" and bl:
                kl /= len(bl)
            total += lc.w_grid * grid + lc.w_tail * tail + lc.w_kl * kl
        assert abs(total - float(out["R"][j])) <= 1e-11 * max(1.0, abs(total)), (j, total)


def finite_difference_check(model, batch, t, states, coef, grads, rng, label) -> float:
    """Central differences of the objective with stopgrad(L1 - L2) frozen at
    its value: that function's gradient is what backward() computes. The
    generator's parameters outside the insertion-rate head see the insertion
    term times loss.insert_trunk_grad."""
    params = dict(model.named_parameters())
    names = [n for n in params if any(n.endswith(s) for s in (
        "gen.tok_emb", "gen.pos_emb", "aux.pos_emb", "gen.seg_pos", "aux.seg_pos", "gen.time.w1", "gen.blocks.0.ada.w", "gen.blocks.1.attn.wqkv",
        "gen.blocks.0.ln2.scale", "gen.blocks.1.mlp.w1", "gen.out.w", "gen.out.ada.b",
        "gen.ins.b2", "gen.ins.ada.w", "gen.um.w1", "aux.tok_emb", "aux.blocks.0.attn.wo",
        "aux.blocks.1.ada.b", "aux.bin.w2", "aux.bin.b2", "aux.bum.w1", "aux.bum.ln.scale",
        "gen.blocks.0.shift.prev", "gen.blocks.1.shift.next", "aux.blocks.0.shift.next"))]
    h = 1e-5
    worst = 0.0

    def objective(name: str) -> float:
        with torch.no_grad():
            out = R.compute_loss(model, batch, t, states, reinforce_coef=coef)
        g = model.cfg.loss.insert_trunk_grad
        if name.startswith("gen.") and not name.startswith("gen.ins."):
            return float(out["total"] - (1 - g) * out["insert"])
        return float(out["total"])

    for name in names:
        p, g = params[name], grads[name]
        flat_g = g.reshape(-1)
        picks = {int(flat_g.abs().argmax()),
                 int(torch.randint(flat_g.numel(), (1,), generator=rng))}
        for idx in sorted(picks):
            flat = p.data.view(-1)
            old = float(flat[idx])
            flat[idx] = old + h
            fp = objective(name)
            flat[idx] = old - h
            fm = objective(name)
            flat[idx] = old
            fd = (fp - fm) / (2 * h)
            ad = float(flat_g[idx])
            err = abs(fd - ad)
            worst = max(worst, err / max(1.0, abs(ad)))
            print(f"  {label:12s} {name:28s}[{idx:5d}]  grad {ad:+.10e}  fd {fd:+.10e}  "
                  f"|diff| {err:.2e}")
            assert err <= 1e-7 * max(1.0, abs(ad)), (name, idx, ad, fd)
    return worst


# --------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------

def make_batch(gen: torch.Generator, V: int):
    """Four sequences of lengths 16, 11, 7, 3: two unconditional
    ([target] EOS), two conditional ([prompt] BOS [target] EOS)."""
    # (prompt length, target length); the longest sequence first, so that it
    # gets the earliest time and many dropped tokens
    layout = [(0, 15), (3, 6), (2, 3), (0, 2)]
    toks, fixed, offsets = [], [], [0]
    user = lambda k: (R.N_SPECIAL + torch.randint(V - R.N_SPECIAL, (k,), generator=gen)).tolist()
    for n_prompt, n_target in layout:
        seq, fx = [], []
        if n_prompt:
            seq += user(n_prompt) + [R.BOS]
            fx += [1] * (n_prompt + 1)
        seq += user(n_target) + [R.EOS]
        fx += [0] * n_target + [1]
        toks += seq
        fixed += fx
        offsets.append(len(toks))
    assert [offsets[i + 1] - offsets[i] for i in range(4)] == [16, 11, 7, 3]
    return (torch.tensor(toks, dtype=torch.int32), torch.tensor(fixed, dtype=torch.uint8),
            torch.tensor(offsets, dtype=torch.int64))


@torch.no_grad()
def randomise(model: R.LFlexModel, gen: torch.Generator) -> None:
    """Start from the specified initialisation and move every parameter off
    it: at the initialisation the adaLN weights are 0, every block is the
    identity and most gradients vanish, which would make a weak test."""
    for name, p in model.named_parameters():
        noise = torch.randn(p.shape, generator=gen, dtype=p.dtype)
        if name.endswith(".scale"):
            p.add_(0.1 * noise)
        elif name.endswith(("tok_emb", "pos_emb", "seg_pos")):
            p.copy_(noise)
        elif p.dim() == 2:
            std = 1.0 / math.sqrt(p.shape[1])
            if name.endswith(("ins.w2", "um.w2", "bin.w2", "bum.w2")):
                std *= 2.0  # spread the rates over tokens
            p.copy_(std * noise)
        else:
            p.add_(0.1 * noise)


def fixture_configs():
    # seg_pos off except where a fixture turns it on: the fixtures written
    # before it existed keep their bytes when regenerated
    base = dict(d_model=32, n_heads=2, n_layers=2, d_cond=32, mlp_ratio=4, max_len=16, seg_pos=False)
    common = dict(vocab=R.VocabConfig(size=12), train=R.TrainConfig())
    # the generator without a learned unmasking rate, and the learned b_in
    # floored at 4 (early insertion), as most fixtures use them
    plain_gen = lambda: R.GeneratorConfig(learn_unmask_rate=False, min_rate=0.0, max_rate=100.0)
    learned_b_in = lambda: R.ScheduleConfig(family="kumaraswamy", a=1.0, b_um=1.0, learn_b_in=True,
                                            learn_b_um=False, min_rate=4.0, max_rate=100.0)
    return [
        ("ref_kumaraswamy_a1", 11, R.Config(
            model=R.ModelConfig(**base),
            schedule=R.ScheduleConfig(family="kumaraswamy", a=1.0, b_um=1.0, learn_b_um=False,
                                      min_rate=1.001, max_rate=100.0),
            generator=plain_gen(),
            loss=R.LossConfig(), **common)),
        ("ref_kumaraswamy_a2_learned", 22, R.Config(
            model=R.ModelConfig(**base),
            schedule=R.ScheduleConfig(family="kumaraswamy", a=2.0, b_um=1.0, learn_b_um=True,
                                      min_rate=0.5, max_rate=100.0),
            generator=R.GeneratorConfig(learn_unmask_rate=True, min_rate=0.05, max_rate=50.0),
            loss=R.LossConfig(w_reg=0.5, w_grid=2.0, w_tail=1.5, w_kl=0.25), **common)),
        ("ref_linear", 33, R.Config(
            model=R.ModelConfig(**base, activation="relu"),
            schedule=R.ScheduleConfig(family="linear"),
            generator=plain_gen(),
            loss=R.LossConfig(), **common)),
        # constant Kumaraswamy shapes (no auxiliary network, one state), the
        # loss variants flat / tokens, and the absolute position embedding
        ("ref_kumaraswamy_fixed", 44, R.Config(
            model=R.ModelConfig(**base, pos_emb=True),
            schedule=R.ScheduleConfig(family="kumaraswamy", a=1.0, b_um=1.0, learn_b_in=False,
                                      b_in=8.0, learn_b_um=False, min_rate=1.001, max_rate=100.0),
            generator=plain_gen(),
            loss=R.LossConfig(time_weight="flat", unmask_norm="tokens"), **common)),
        # learned b_in floored at 4 (early insertion), the regulariser's grid
        # target 1 - (1 - t)^8 and mean KL, the loss variants flat / max_len
        ("ref_kumaraswamy_early", 55, R.Config(
            model=R.ModelConfig(**base),
            schedule=learned_b_in(),
            generator=plain_gen(),
            loss=R.LossConfig(kl_reduction="mean", reg_b_in=8.0, time_weight="flat",
                              unmask_norm="max_len"), **common)),
        # segment position embeddings (model.seg_pos) in both networks, with
        # the conditional sequences of the batch splitting at BOS
        ("ref_kumaraswamy_segpos", 66, R.Config(
            model=R.ModelConfig(**{**base, "seg_pos": True}),
            schedule=learned_b_in(),
            generator=plain_gen(),
            loss=R.LossConfig(kl_reduction="mean", reg_b_in=8.0, time_weight="flat"), **common)),
        # token shift (model.token_shift) in both networks, on top of the
        # segment positions
        ("ref_kumaraswamy_shift", 78, R.Config(
            model=R.ModelConfig(**{**base, "seg_pos": True, "token_shift": True}),
            schedule=learned_b_in(),
            generator=plain_gen(),
            loss=R.LossConfig(kl_reduction="mean", reg_b_in=8.0, time_weight="flat"), **common)),
        # a quarter of the insertion-rate head's gradient into the trunk
        # (loss.insert_trunk_grad 0.25), the hazard weight over times drawn with loss.time_shape 3,
        # and the insertion sum without the closed gaps
        ("ref_kumaraswamy_trunkgrad", 88, R.Config(
            model=R.ModelConfig(**{**base, "seg_pos": True, "token_shift": True}),
            schedule=R.ScheduleConfig(family="kumaraswamy", a=1.0, b_um=1.0, learn_b_in=False,
                                      b_in=8.0, learn_b_um=False, min_rate=1.001, max_rate=100.0),
            generator=plain_gen(),
            loss=R.LossConfig(insert_trunk_grad=0.25, time_shape=3.0, insert_closed_gaps=False), **common)),
    ]


# Fixtures written before the keys of R.PAPER_VALUES existed: their stored
# config leaves those keys out (they hold the paper's values), so the files
# keep their bytes; readers apply the paper's values for missing keys.
WITHOUT_NEW_KEYS = ("ref_kumaraswamy_a1", "ref_kumaraswamy_a2_learned", "ref_linear")


def config_yaml(name: str, cfg: R.Config) -> str:
    if name not in WITHOUT_NEW_KEYS:
        return cfg.to_yaml()
    for key, value in R.PAPER_VALUES.items():
        section, k = key.split(".")
        assert getattr(getattr(cfg, section), k) == value, (name, key)
    return cfg.to_yaml(omit=tuple(R.PAPER_VALUES))


def concat(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Padded [B, L, ...] -> concatenated [sum of lengths, ...]."""
    return x[valid]


def offsets_of(valid: torch.Tensor) -> np.ndarray:
    return np.concatenate([[0], valid.sum(1).cumsum(0).numpy()]).astype(np.int64)


def make_fixture(name: str, seed: int, cfg: R.Config, out_dir: str) -> None:
    print(f"{name}:")
    gen = torch.Generator().manual_seed(seed)
    model = R.LFlexModel(cfg)
    randomise(model, gen)
    # The C side starts from float32 weights; so does the float64 reference.
    params32 = {n: p.detach().to(torch.float32).clone() for n, p in model.named_parameters()}
    model = model.double()
    with torch.no_grad():
        for n, p in model.named_parameters():
            p.copy_(params32[n].double())

    tokens, fixed, offsets = make_batch(gen, cfg.n_ids)
    batch = R.pad_batch(tokens, fixed, offsets)
    B = batch.z.shape[0]
    u = torch.rand(B, generator=gen, dtype=torch.float64)
    t32 = R.stratified_times(u).to(torch.float32)
    t = t32.double()

    with torch.no_grad():
        b_in, b_um = model.order(batch.z, batch.valid)
    n_states = cfg.n_states
    states = [R.sample_states(batch, t, cfg.a, b_in, b_um, gen) for _ in range(n_states)]
    free = batch.valid & ~batch.fixed
    for s in states:
        counts = [int(((s == k) & free).sum()) for k in range(3)]
        print(f"  states (dropped, masked, clean) = {counts}, per sequence masked = "
              f"{((s == R.MASKED) & free).sum(1).tolist()}")
        assert min(counts) > 0, "the draw misses a state; choose another seed"

    model.zero_grad(set_to_none=True)
    out = R.compute_loss(model, batch, t, states, keep=True)
    out["total"].backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
    for k in ("total", "unmask", "insert", "reinforce", "reg"):
        print(f"  loss.{k:9s} = {float(out[k]):+.12f}")
    parts = sum(float(out[k]) for k in ("unmask", "insert", "reinforce", "reg"))
    assert abs(parts - float(out["total"])) < 1e-12

    for i in range(n_states):
        st = out[f"s{i + 1}"]
        check_build_xt(batch, states[i], out["b_in"].detach(), out["b_um"].detach(), st["xt"])
    print("  build_xt agrees with the token loop")
    check_layout_forward(model, batch, t, out, n_states)
    print("  networks agree with doc/model-layout.md written out in numpy")
    check_against_loops(model, batch, t, out, n_states)
    print("  batched loss agrees with one-sequence-at-a-time loops")

    coef = None if not cfg.learned else (out["s1"]["L"] - out["s2"]["L"]).detach()
    worst = finite_difference_check(model, batch, t, states, coef, grads, gen, name)
    print(f"  finite differences: worst relative error {worst:.2e}")

    f32 = lambda x: x.detach().to(torch.float32).numpy()
    f64 = lambda x: x.detach().to(torch.float64).numpy()
    i32 = lambda x: x.detach().to(torch.int32).numpy()
    T = {}
    for n in params32:
        T[f"param.{n}"] = params32[n].numpy()
    T["batch.tokens"] = tokens.numpy()
    T["batch.fixed"] = fixed.numpy()
    T["batch.offsets"] = offsets.numpy()
    T["batch.t"] = t32.numpy()
    T["batch.g"] = f64(out["g"])
    for i in range(n_states):
        T[f"state{i + 1}"] = i32(concat(states[i], batch.valid))
    if cfg.learned:
        T["aux.b_in"] = f32(concat(out["b_in"], batch.valid))
        T["aux.b_um"] = f32(concat(out["b_um"], batch.valid))
    for i in range(n_states):
        s = f"s{i + 1}"
        st = out[s]
        xt = st["xt"]
        T[f"{s}.xt"] = i32(concat(xt.tokens, xt.valid))
        T[f"{s}.xt_offsets"] = offsets_of(xt.valid)
        T[f"{s}.src"] = i32(concat(xt.src, xt.valid))
        T[f"{s}.lambda"] = f32(concat(xt.lam, xt.valid))
        T[f"{s}.logits"] = f32(concat(st["logits"], xt.valid))
        T[f"{s}.beta_in"] = f32(concat(st["beta_in"], xt.valid))
        T[f"{s}.beta_um"] = f32(concat(st["beta_um"], xt.valid))
        T[f"{s}.L"] = f64(st["L"])
        T[f"{s}.L_um"] = f64(st["L_um"])
        T[f"{s}.L_in"] = f64(st["L_in"])
        T[f"{s}.logp"] = f64(st["logp"])
    if cfg.learned:
        T["reg.R"] = f64(out["R"])
    for k in ("total", "unmask", "insert", "reinforce", "reg"):
        T[f"loss.{k}"] = f64(out[k]).reshape(())
    for n in params32:
        T[f"grad.{n}"] = f32(grads[n])

    meta = {
        "format": "lflex-reference-fixture",
        "format_version": "2",
        "config": config_yaml(name, cfg),
        "source": "bench/reference/make_fixtures.py",
        "torch": torch.__version__,
        "seed": str(seed),
    }
    path = os.path.join(out_dir, name + ".safetensors")
    write_safetensors(path, T, meta)

    back, back_meta = read_safetensors(path)
    assert back_meta == meta and set(back) == set(T)
    for k, v in T.items():
        assert back[k].dtype == v.dtype and back[k].shape == v.shape, k
        assert np.array_equal(back[k], v), k
    assert config_yaml(name, R.Config.from_yaml(back_meta["config"], stored=True)) == meta["config"]
    check_float32_from_file(path)
    print(f"  wrote {os.path.relpath(path, REPO)} "
          f"({os.path.getsize(path)} bytes, {len(T)} tensors)")


def check_float32_from_file(path: str) -> None:
    """Rebuild everything from the file alone and rerun the reference in
    float32, as the C library will: the fixture is self-contained, and the
    printed errors show what a float32 implementation can reach."""
    T, meta = read_safetensors(path)
    cfg = R.Config.from_yaml(meta["config"], stored=True)
    model = R.LFlexModel(cfg)
    with torch.no_grad():
        for n, p in model.named_parameters():
            p.copy_(torch.from_numpy(T["param." + n].copy()))
    batch = R.pad_batch(torch.from_numpy(T["batch.tokens"].copy()),
                        torch.from_numpy(T["batch.fixed"].copy()),
                        torch.from_numpy(T["batch.offsets"].copy()))
    states = []
    for i in range(cfg.n_states):
        s = torch.zeros(batch.z.shape, dtype=torch.long)
        s[batch.valid] = torch.from_numpy(T[f"state{i + 1}"].astype(np.int64))
        states.append(s)
    out = R.compute_loss(model, batch, torch.from_numpy(T["batch.t"].copy()), states, keep=True)
    out["total"].backward()
    # error relative to the largest entry of each tensor
    rel = lambda x, ref: float(np.abs(x - ref).max() / max(np.abs(ref).max(), 1e-30))
    loss_err = max(abs(float(out[k]) - float(T["loss." + k])) / max(1.0, abs(float(T["loss." + k])))
                   for k in ("total", "unmask", "insert", "reinforce", "reg"))
    xt = out["s1"]["xt"]
    act_err = max(rel(out["s1"][k][xt.valid].detach().numpy(), T["s1." + k])
                  for k in ("logits", "beta_in", "beta_um"))
    grad_err = max(rel(p.grad.numpy(), T["grad." + n]) for n, p in model.named_parameters())
    print(f"  float32 rerun from the file: losses {loss_err:.1e}, s1 outputs {act_err:.1e}, "
          f"gradients {grad_err:.1e} (relative to each tensor's largest entry)")
    assert max(loss_err, act_err, grad_err) < 1e-5


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "fixtures"))
    ap.add_argument("--only", action="append", metavar="NAME",
                    help="write only this fixture (repeatable); default: all")
    args = ap.parse_args()
    known = [name for name, _, _ in fixture_configs()]
    for name in args.only or ():
        if name not in known:
            ap.error(f"unknown fixture {name}; known: {', '.join(known)}")
    torch.set_num_threads(1)  # identical numbers on every machine
    os.makedirs(args.out, exist_ok=True)
    check_schedule_functions()
    check_state_probs_monte_carlo()
    for name, seed, cfg in fixture_configs():
        if not args.only or name in args.only:
            make_fixture(name, seed, cfg, args.out)


if __name__ == "__main__":
    main()
