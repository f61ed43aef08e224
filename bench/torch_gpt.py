#!/usr/bin/python3
"""PyTorch peer of mpitrain's GPT: same math, same optimizer, timed steps.

Run with /usr/bin/python3 (Debian python3-torch 1.13).
Prints the first and last step loss, then one summary line:
  torch: tokens_per_s=... ms_per_step=... params=... threads=...
"""
import argparse
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from torch_common import adamw, batcher, read_u16, train


class Block(nn.Module):
    def __init__(self, C, n_head, T):
        super().__init__()
        self.n_head = n_head
        self.ln1 = nn.LayerNorm(C)
        self.qkv = nn.Linear(C, 3 * C)
        self.proj = nn.Linear(C, C)
        self.ln2 = nn.LayerNorm(C)
        self.fc = nn.Linear(C, 4 * C)
        self.fc_proj = nn.Linear(4 * C, C)
        self.register_buffer("mask", torch.tril(torch.ones(T, T, dtype=torch.bool)))

    def attn(self, x):
        B, T, C = x.shape
        hs = C // self.n_head
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, hs).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
        att = att.masked_fill(~self.mask[:T, :T], float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.proj(y)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.fc_proj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, V, T, C, L, n_head):
        super().__init__()
        self.wte = nn.Embedding(V, C)
        self.wpe = nn.Embedding(T, C)
        self.blocks = nn.ModuleList(Block(C, n_head, T) for _ in range(L))
        self.ln_f = nn.LayerNorm(C)
        # GPT-2 init: N(0, 0.02), residual projections scaled by 1/sqrt(2L)
        for name, t in self.named_parameters():
            if t.dim() < 2:
                continue
            std = 0.02 / math.sqrt(2 * L) if name.endswith("proj.weight") else 0.02
            nn.init.normal_(t, 0.0, std)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, idx, targets):
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(T))
        for b in self.blocks:
            x = b(x)
        logits = self.ln_f(x) @ self.wte.weight.t()  # tied
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--embd", type=int, default=256)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--vocab", type=int, default=256)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data", default=None, help="raw bytes text file")
    p.add_argument("--tokens-u16", default=None,
                   help="token ids as raw little-endian uint16 (nanoGPT .bin)")
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    B, T = a.batch, a.seq_len
    model = GPT(a.vocab, T, a.embd, a.layers, a.heads)
    params = sum(t.numel() for t in model.parameters())
    opt = adamw(model)
    data = None
    if a.tokens_u16:
        data = read_u16(a.tokens_u16)
    elif a.data:
        with open(a.data, "rb") as f:
            data = torch.frombuffer(bytearray(f.read()), dtype=torch.uint8).long() % a.vocab
    losses, dt = train(model, opt, batcher(data, a.vocab, B, T), a.steps, a.warmup)
    print(f"first_loss={losses[0]:.4f}")
    print(f"last_loss={losses[-1]:.4f}")
    print(f"torch: tokens_per_s={B * T / dt:.1f} ms_per_step={dt * 1e3:.1f} "
          f"params={params} threads={a.threads}")


if __name__ == "__main__":
    main()
