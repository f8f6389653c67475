"""The autoregressive baseline of the learning benchmark (PyTorch).

A decoder-only pre-LayerNorm transformer of the task's size (model.d_model,
n_layers, n_heads, mlp_ratio (4), dropout, max_len; learned positions, GELU
MLP), trained on `[prompt] BOS [target] EOS` with next-token cross-entropy on
the target tokens and EOS only. AdamW with the task's train.lr, warmup
(linear, then constant), weight_decay (0.01, weight matrices only), beta1,
beta2, eps, clip and ema (the EMA weights are used for generation, with the
library's min(ema, (1+s)/(10+s)) ramp). Token ids are the library's: PAD 0,
BOS 2, EOS 3, the vocabulary from 4.
"""
import contextlib
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

PAD, BOS, EOS, FIRST_USER = 0, 2, 3, 4


class Block(nn.Module):
    def __init__(self, d, n_heads, mlp_ratio, dropout):
        super().__init__()
        self.n_heads = n_heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, mlp_ratio * d), nn.GELU(), nn.Linear(mlp_ratio * d, d))
        self.drop = nn.Dropout(dropout)

    def forward(self, x, blocked):
        """blocked: [T, T] or [B, 1, T, T], True where a row may not attend."""
        B, T, D = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(B, T, 3, self.n_heads, D // self.n_heads).permute(2, 0, 3, 1, 4)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(D // self.n_heads)
        att = att.masked_fill(blocked, float('-inf')).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, D)
        x = x + self.drop(self.proj(y))
        return x + self.drop(self.mlp(self.ln2(x)))


class Transformer(nn.Module):
    def __init__(self, vocab_size, d, n_layers, n_heads, max_len, mlp_ratio=4, dropout=0.0):
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab_size, d), nn.Embedding(max_len, d)
        self.blocks = nn.ModuleList(Block(d, n_heads, mlp_ratio, dropout) for _ in range(n_layers))
        self.ln_f, self.head = nn.LayerNorm(d), nn.Linear(d, vocab_size)
        self.register_buffer('causal', torch.ones(max_len, max_len, dtype=torch.bool).triu(1), persistent=False)
        for name, p in self.named_parameters():
            if p.dim() > 1:
                nn.init.normal_(p, std=0.02)
            elif name.endswith('bias'):
                nn.init.zeros_(p)

    def forward(self, ids, hidden=None):
        """Logits [B, T, V]; hidden [B, T] (optional): keys no other row attends to."""
        T = ids.shape[1]
        x = self.tok(ids) + self.pos.weight[:T]
        blocked = self.causal[:T, :T]
        if hidden is not None:
            blocked = blocked | (hidden[:, None, None, :] & ~torch.eye(T, dtype=torch.bool))
        for b in self.blocks:
            x = b(x, blocked)
        return self.head(self.ln_f(x))


class ArTrainer:
    """Trains and samples the baseline. ``vocab`` is the list of user tokens
    (ids 4, 5, ...), ``tokenizer`` 'words' or 'char'."""

    def __init__(self, cfg, vocab, tokenizer, threads=1):
        torch.set_num_threads(threads)
        m, t = cfg.get('model', {}), cfg.get('train', {})
        torch.manual_seed(int(t.get('seed', 0)))
        self.vocab, self.words = list(vocab), tokenizer == 'words'
        self.index = {tok: FIRST_USER + i for i, tok in enumerate(self.vocab)}
        self.max_len = int(m.get('max_len', 128))
        d, heads = int(m.get('d_model', 128)), int(m.get('n_heads', 4))
        if d % heads:
            raise ValueError(f'model.d_model {d} is not divisible by model.n_heads {heads}')
        # one position more than the library's max_len: an unconditional
        # sequence is BOS target EOS here, target EOS in the library
        self.net = Transformer(FIRST_USER + len(self.vocab), d, int(m.get('n_layers', 4)), heads, self.max_len + 1,
                               int(m.get('mlp_ratio', 4)), float(m.get('dropout', 0.0)))
        decay = [p for n, p in self.net.named_parameters() if p.dim() > 1 and not n.startswith(('tok.', 'pos.'))]
        other = [p for n, p in self.net.named_parameters() if not (p.dim() > 1 and not n.startswith(('tok.', 'pos.')))]
        self.lr, self.warmup = float(t.get('lr', 3e-4)), int(t.get('warmup', 100))
        self.clip, self.ema_decay = float(t.get('clip', 1.0)), float(t.get('ema', 0.0))
        self.opt = torch.optim.AdamW([{'params': decay, 'weight_decay': float(t.get('weight_decay', 0.01))},
                                      {'params': other, 'weight_decay': 0.0}], lr=self.lr,
                                     betas=(float(t.get('beta1', 0.9)), float(t.get('beta2', 0.999))),
                                     eps=float(t.get('eps', 1e-8)))
        self.ema = [p.detach().clone() for p in self.net.parameters()] if self.ema_decay > 0 else None
        self.step = 0
        self.n_params = sum(p.numel() for p in self.net.parameters())

    # ---- text ----------------------------------------------------------------

    def encode(self, text):
        toks = text.split() if self.words else [c for c in text if c not in '\t\r\n']
        try:
            return [self.index[x] for x in toks]
        except KeyError as e:
            raise ValueError(f'token {e.args[0]!r} is not in the vocabulary') from None

    def decode(self, ids):
        toks = [self.vocab[i - FIRST_USER] for i in ids if i >= FIRST_USER]
        return ' '.join(toks) if self.words else ''.join(toks)

    # ---- training --------------------------------------------------------------

    def train_step(self, batch):
        """One AdamW step on (prompt ids or None, target ids) pairs; returns
        the mean cross-entropy per target token (EOS included)."""
        seqs, starts = [], []
        for prompt, target in batch:
            p = list(prompt or [])
            seqs.append(p + [BOS] + list(target) + [EOS])
            starts.append(len(p))  # logits at the BOS position predict the first target token
        T = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), T), PAD, dtype=torch.long)
        labels = torch.full((len(seqs), T), -100, dtype=torch.long)
        for j, (s, b) in enumerate(zip(seqs, starts)):
            ids[j, :len(s)] = torch.tensor(s)
            labels[j, b:len(s) - 1] = torch.tensor(s[b + 1:])
        self.net.train()
        logits = self.net(ids)
        return self.optimise(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                             ignore_index=-100))

    def add_parameter(self, p, weight_decay):
        """Train a parameter added to the network after construction (its
        own optimiser group; in the EMA when there is one)."""
        self.opt.add_param_group({'params': [p], 'weight_decay': weight_decay})
        if self.ema is not None:
            self.ema.append(p.detach().clone())

    def optimise(self, loss):
        """One AdamW step on a loss of the network in training mode (warm-up,
        clipping, EMA); returns the loss as a float."""
        lr = self.lr * min(1.0, (self.step + 1) / self.warmup) if self.warmup else self.lr
        for g in self.opt.param_groups:
            g['lr'] = lr
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.clip > 0:
            nn.utils.clip_grad_norm_(self.net.parameters(), self.clip)
        self.opt.step()
        if self.ema is not None:
            decay = min(self.ema_decay, (1 + self.step) / (10 + self.step))
            with torch.no_grad():
                for e, p in zip(self.ema, self.net.parameters()):
                    e.mul_(decay).add_(p.detach(), alpha=1 - decay)
        self.step += 1
        return float(loss)

    def save(self, path):
        torch.save({'net': self.net.state_dict(), 'ema': self.ema, 'step': self.step}, path)

    def load(self, path):
        state = torch.load(path)
        self.net.load_state_dict(state['net'])
        self.ema, self.step = state['ema'], state['step']

    # ---- generation --------------------------------------------------------------

    @torch.no_grad()
    def generate(self, prompts, temperature=0.0, seed=0, use_ema=True, batch_size=64, candidates=1, score='sum'):
        """Target ids (without EOS) after each prompt (ids or None): greedy at
        temperature 0, else sampled; stops at EOS or when the sequence and its EOS
        would fill max_len (the library's limit). With candidates K > 1, K
        samples per prompt and the one with the highest score: the sum (the
        log-likelihood), mean or minimum of the model's log-probabilities of
        its tokens and EOS, as the library's sampler key candidate_score."""
        outs, logps = self._sample(prompts if candidates <= 1 else [p for p in prompts for _ in range(candidates)],
                                   temperature, seed, use_ema, batch_size)
        if candidates <= 1:
            return outs
        reduce = {'sum': sum, 'mean': lambda v: sum(v) / len(v), 'min': min}[score]
        best = [max(range(j * candidates, (j + 1) * candidates), key=lambda r: reduce(logps[r]))
                for j in range(len(prompts))]
        return [outs[r] for r in best]

    @contextlib.contextmanager
    def eval_weights(self, use_ema=True):
        """The network in eval mode, with the EMA weights in place when
        use_ema and there are any (the trained weights restored after)."""
        saved = None
        with torch.no_grad():
            if use_ema and self.ema is not None:
                saved = [p.detach().clone() for p in self.net.parameters()]
                for p, e in zip(self.net.parameters(), self.ema):
                    p.copy_(e)
            self.net.eval()
            try:
                yield self.net
            finally:
                if saved is not None:
                    for p, s in zip(self.net.parameters(), saved):
                        p.copy_(s)

    def _sample(self, prompts, temperature, seed, use_ema, batch_size):
        """(targets, per-target log-probabilities of its tokens and EOS)."""
        gen = torch.Generator().manual_seed(seed)
        out, logps = [], []
        with self.eval_weights(use_ema):
            for b0 in range(0, len(prompts), batch_size):
                o, lp = self._generate(prompts[b0:b0 + batch_size], temperature, gen)
                out += o
                logps += lp
        return out, logps

    def _generate(self, prompts, temperature, gen):
        # Right-padded rows: the causal mask keeps the padding invisible to
        # every row's own positions, so rows of different lengths share passes.
        B = len(prompts)
        ids = torch.full((B, self.max_len), PAD, dtype=torch.long)
        cur = torch.empty(B, dtype=torch.long)
        for j, p in enumerate(prompts):
            s = list(p or []) + [BOS]
            if len(s) + 1 >= self.max_len:
                raise ValueError(f'a prompt of {len(s) - 1} tokens leaves no room in max_len {self.max_len}')
            ids[j, :len(s)] = torch.tensor(s)
            cur[j] = len(s)
        start = cur.clone()
        done = torch.zeros(B, dtype=torch.bool)
        logps = [[] for _ in range(B)]
        rows = torch.arange(B)
        while not done.all():
            T = int(cur[~done].max())
            logits = self.net(ids[:, :T])[rows, (cur - 1).clamp(max=T - 1)].float()
            if temperature > 0:
                nxt = torch.multinomial((logits / temperature).softmax(-1), 1, generator=gen).squeeze(1)
            else:
                nxt = logits.argmax(-1)
            lp = logits.log_softmax(-1)[rows, nxt]
            live = ~done
            for j in rows[live].tolist():
                logps[j].append(float(lp[j]))
            ids[rows[live], cur[live]] = nxt[live]
            cur[live] += 1
            done |= (nxt == EOS) | (cur >= self.max_len - 1)  # room left for EOS, as in the library
        out = []
        for j in range(B):
            t = ids[j, start[j]:cur[j]].tolist()
            out.append(t[:-1] if t and t[-1] == EOS else t)
        return out, logps
