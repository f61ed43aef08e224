"""What the PyTorch peers (bench/torch_gpt.py, bench/llama_torch.py) share:
the optimizer as mpitrain's defaults set it, the batches, the timed loop."""
import time

import torch


def adamw(model):
    """AdamW (lr 3e-4, betas 0.9/0.95, decay 0.1 on matrices only)."""
    decay = [t for t in model.parameters() if t.dim() >= 2]
    no_decay = [t for t in model.parameters() if t.dim() < 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=3e-4, betas=(0.9, 0.95), eps=1e-8)


def read_u16(path, vocab=None):
    """Token ids as raw little-endian uint16 (nanoGPT .bin), as int64."""
    import numpy as np
    data = torch.from_numpy(np.fromfile(path, dtype="<u2").astype("int64"))
    return data % vocab if vocab else data


def batcher(data, vocab, B, T):
    """A function giving (inputs, targets), B windows of T+1 tokens of data
    at random offsets, or random ids when data is None."""
    def batch():
        if data is None:
            x = torch.randint(vocab, (B, T + 1))
        else:
            starts = torch.randint(len(data) - T - 1, (B,))
            x = torch.stack([data[s:s + T + 1] for s in starts.tolist()])
        return x[:, :-1].contiguous(), x[:, 1:].contiguous()
    return batch


def train(model, opt, batch, steps, warmup):
    """steps optimizer steps, the ones after the first warmup timed: the
    losses and the mean seconds of a timed step."""
    losses, t0 = [], None
    for step in range(steps):
        if step == warmup:
            t0 = time.perf_counter()
        x, y = batch()
        loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    timed = steps - warmup
    if t0 is None or timed <= 0:
        raise SystemExit("need --steps > --warmup")
    return losses, (time.perf_counter() - t0) / timed
