#!/usr/bin/python3
"""PyTorch peer of mpitrain's llama family, for speed: float32, HF Llama /
Qwen2 semantics (RMSNorm, rotate-half rope, grouped-query attention, SwiGLU,
optional q/k/v biases, tied or untied head), the torch ops a fast torch
model uses (scaled_dot_product_attention when this torch has it, else one
masked softmax per layer). tests/ref/llama_ref.py is the float64 reference
for correctness; this one is only timed.

Run with /usr/bin/python3 (Debian python3-torch). Modes:
  train   AdamW steps on B x T tokens (as bench/torch_gpt.py): prints the
          first and last loss and
            torch: tokens_per_s=... ms_per_step=... params=... threads=...
  forward forward passes without gradients (the loss only):
            torch: forward_ms=... params=... threads=...
  sample  greedy decoding with a KV cache after a prompt:
            torch: sample_tokens_per_s=... prefill_ms=... params=... threads=...
"""
import argparse
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from torch_common import adamw, batcher, read_u16, train


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(T, hd, theta):
    inv = 1.0 / theta ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd)
    f = torch.outer(torch.arange(T, dtype=torch.float32), inv)
    f = torch.cat((f, f), dim=-1)
    return f.cos(), f.sin()


def rotate(x, cos, sin):
    """HF's rotate-half: x cos + cat(-x2, x1) sin, x (B, H, T, hd)."""
    h = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., h:], x[..., :h]), dim=-1) * sin


class Attention(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.nh, self.nkv, self.hd = a.heads, a.kv_heads, a.head_dim
        C = a.embd
        self.q = nn.Linear(C, self.nh * self.hd, bias=a.qkv_bias)
        self.k = nn.Linear(C, self.nkv * self.hd, bias=a.qkv_bias)
        self.v = nn.Linear(C, self.nkv * self.hd, bias=a.qkv_bias)
        self.o = nn.Linear(self.nh * self.hd, C, bias=False)

    def forward(self, x, cos, sin, cache=None, pos=0):
        B, T, _ = x.shape
        q = self.q(x).view(B, T, self.nh, self.hd).transpose(1, 2)
        k = self.k(x).view(B, T, self.nkv, self.hd).transpose(1, 2)
        v = self.v(x).view(B, T, self.nkv, self.hd).transpose(1, 2)
        q, k = rotate(q, cos[pos:pos + T], sin[pos:pos + T]), rotate(k, cos[pos:pos + T], sin[pos:pos + T])
        if cache is not None:  # (k, v) buffers of the whole context, filled up to pos
            cache[0][:, :, pos:pos + T] = k
            cache[1][:, :, pos:pos + T] = v
            k, v = cache[0][:, :, :pos + T], cache[1][:, :, :pos + T]
        g = self.nh // self.nkv
        if g > 1:
            k, v = k.repeat_interleave(g, dim=1), v.repeat_interleave(g, dim=1)
        causal = T > 1
        if hasattr(F, "scaled_dot_product_attention") and (pos == 0 or T == 1):
            y = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        else:
            s = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.hd))
            if causal:
                S = k.shape[2]
                mask = torch.ones(T, S, dtype=torch.bool).tril(diagonal=S - T)
                s = s.masked_fill(~mask, float("-inf"))
            y = s.softmax(dim=-1) @ v
        return self.o(y.transpose(1, 2).reshape(B, T, self.nh * self.hd))


class Block(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.ln1 = RMSNorm(a.embd, a.eps)
        self.attn = Attention(a)
        self.ln2 = RMSNorm(a.embd, a.eps)
        self.gate = nn.Linear(a.embd, a.mlp_hidden, bias=False)
        self.up = nn.Linear(a.embd, a.mlp_hidden, bias=False)
        self.down = nn.Linear(a.mlp_hidden, a.embd, bias=False)

    def forward(self, x, cos, sin, cache=None, pos=0):
        x = x + self.attn(self.ln1(x), cos, sin, cache, pos)
        h = self.ln2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Llama(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.embed = nn.Embedding(a.vocab, a.embd)
        self.blocks = nn.ModuleList(Block(a) for _ in range(a.layers))
        self.norm = RMSNorm(a.embd, a.eps)
        self.head = None if a.tied else nn.Linear(a.embd, a.vocab, bias=False)
        cos, sin = rope_tables(a.seq_len, a.head_dim, a.rope_theta)
        self.register_buffer("cos", cos)
        self.register_buffer("sin", sin)
        for name, t in self.named_parameters():
            if t.dim() >= 2:
                nn.init.normal_(t, 0.0, 0.02)
            elif name.endswith(".bias"):
                nn.init.zeros_(t)

    def logits(self, idx, caches=None, pos=0):
        x = self.embed(idx)
        for i, b in enumerate(self.blocks):
            x = b(x, self.cos, self.sin, caches[i] if caches else None, pos)
        x = self.norm(x)
        return x @ (self.embed.weight if self.head is None else self.head.weight).t()

    def forward(self, idx, targets):
        lg = self.logits(idx)
        return F.cross_entropy(lg.view(-1, lg.size(-1)), targets.view(-1))


def args():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["train", "forward", "sample"])
    p.add_argument("--layers", type=int, default=30)
    p.add_argument("--embd", type=int, default=576)
    p.add_argument("--heads", type=int, default=9)
    p.add_argument("--kv-heads", type=int, default=0, help="0 = --heads")
    p.add_argument("--head-dim", type=int, default=0, help="0 = embd / heads")
    p.add_argument("--mlp-hidden", type=int, default=1536)
    p.add_argument("--vocab", type=int, default=49152)
    p.add_argument("--seq-len", type=int, default=1024)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--qkv-bias", type=int, default=0)
    p.add_argument("--untied-head", type=int, default=0)
    p.add_argument("--eps", type=float, default=1e-5)
    p.add_argument("--rope-theta", type=float, default=10000.0)
    p.add_argument("--steps", type=int, default=6, help="train/forward: timed after --warmup")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--prompt", type=int, default=64, help="sample: prompt tokens")
    p.add_argument("--tokens", type=int, default=100, help="sample: tokens generated")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--tokens-u16", default=None,
                   help="train: token ids as raw little-endian uint16 (nanoGPT .bin); else random")
    a = p.parse_args()
    a.kv_heads = a.kv_heads or a.heads
    a.head_dim = a.head_dim or a.embd // a.heads
    a.tied = not a.untied_head
    if a.heads % a.kv_heads:
        p.error("--kv-heads must divide --heads")
    return a


def main():
    a = args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    B, T = a.batch, a.seq_len
    model = Llama(a)
    params = sum(t.numel() for t in model.parameters())
    data = read_u16(a.tokens_u16, a.vocab) if a.tokens_u16 else None
    batch = batcher(data, a.vocab, B, T)
    tag = f"params={params} threads={a.threads}"
    if a.mode == "sample":
        sample(model, a, tag)
        return
    if a.mode == "forward":
        model.eval()
        x, y = batch()
        with torch.no_grad():
            times = []
            for step in range(a.warmup + a.steps):
                t0 = time.perf_counter()
                model(x, y).item()
                times.append(time.perf_counter() - t0)
        print(f"torch: forward_ms={min(times[a.warmup:]) * 1e3:.1f} {tag}")
        return
    losses, dt = train(model, adamw(model), batch, a.steps + a.warmup, a.warmup)
    print(f"first_loss={losses[0]:.4f}")
    print(f"last_loss={losses[-1]:.4f}")
    print(f"torch: tokens_per_s={B * T / dt:.1f} ms_per_step={dt * 1e3:.1f} {tag}")


def sample(model, a, tag):
    """Greedy decoding with a KV cache: a prefill of the prompt, then one
    token at a time (as `mpitrain sample` and bench_decode time it)."""
    model.eval()
    total = a.prompt + a.tokens
    if total > a.seq_len:
        raise SystemExit(f"--prompt + --tokens = {total} > --seq-len {a.seq_len}")
    shape = (1, a.kv_heads, a.seq_len, a.head_dim)
    caches = [(torch.zeros(shape), torch.zeros(shape)) for _ in model.blocks]
    idx = torch.randint(a.vocab, (1, a.prompt))
    with torch.no_grad():
        t0 = time.perf_counter()
        nxt = model.logits(idx, caches, 0)[:, -1].argmax(-1, keepdim=True)
        t1 = time.perf_counter()
        for pos in range(a.prompt, total - 1):
            nxt = model.logits(nxt, caches, pos)[:, -1].argmax(-1, keepdim=True)
        t2 = time.perf_counter()
    print(f"torch: sample_tokens_per_s={(a.tokens - 1) / (t2 - t1):.2f} "
          f"prefill_ms={(t1 - t0) * 1e3:.1f} {tag}")


if __name__ == "__main__":
    main()
