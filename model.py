"""model.py: a small GPT (nanoGPT-style, written from scratch) for the arithmetic task.

What is here, top to bottom:
  GPTConfig      the sizes, a dataclass with literal defaults (the default student)
  GPT            embeddings -> pre-norm blocks -> tied lm_head; forward returns logits
  token_logprobs per-token log-probs of given targets, the (B, T) quantity every
                 objective in rlsd.py consumes
  GPT.generate   batched sampling for prompts of different lengths, with a KV cache;
                 `use_cache=False` keeps the plain recompute-everything path as the
                 readable reference, and tests check that the two agree
  save / load    checkpoints that carry their config, written atomically

Batches of prompts of different lengths are LEFT-padded for generation: row b's real
tokens start at column start[b]. Positions are counted from there (so a prompt gets the
same positions whatever its padding), and no query may attend to a pad key.
"""
import math
import os
import pickle
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class GPTConfig:
    vocab_size: int = 22    # the task's: 19 characters + BOS, EOS, PAD (verify.VOCAB_SIZE)
    block_size: int = 128   # longest sequence (prompt + hint + response) the model sees
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        assert cfg.n_embd % cfg.n_head == 0
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.dropout = cfg.dropout

    def forward(self, x, attn_mask=None, cache=None, layer=0, rot=None):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        # (B, T, C) -> (B, nh, T, hs)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        if rot is not None:
            q, k = rotate(q, *rot), rotate(k, *rot)
        if cache is not None:
            k, v = cache.append(layer, k, v)  # all keys/values so far: (B, nh, T_total, hs)
        drop = self.dropout if self.training else 0.0
        if attn_mask is None:  # plain causal attention over unpadded rows (training)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=drop)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=drop)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.proj(y)


def rotary(pos, head_size, base=10000.0):
    """cos and sin of the rotary angles pos * base^(-2i/head_size), shaped (B, 1, T, hs/2)."""
    freq = base ** (-torch.arange(0, head_size, 2, device=pos.device, dtype=torch.float32) / head_size)
    ang = pos.unsqueeze(-1).float() * freq
    return ang.cos().unsqueeze(1), ang.sin().unsqueeze(1)


def rotate(x, cos, sin):
    """Rotary position embedding (RoFormer): rotate each pair (x1_i, x2_i) of the head by
    its angle, so that q.k depends on the two positions only through their distance."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).type_as(x)


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd)
        self.proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd)

    def forward(self, x):
        return self.proj(F.gelu(self.fc(x)))


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.n_embd)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.n_embd)
        self.mlp = MLP(cfg)

    def forward(self, x, attn_mask=None, cache=None, layer=0, rot=None):
        x = x + self.attn(self.ln1(x), attn_mask, cache, layer, rot)
        return x + self.mlp(self.ln2(x))


class KVCache:
    """Preallocated keys and values for every layer: (n_layer, B, nh, max_len, hs)."""

    def __init__(self, cfg, batch_size, max_len, device, dtype):
        shape = (cfg.n_layer, batch_size, cfg.n_head, max_len, cfg.n_embd // cfg.n_head)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.len = 0  # tokens stored so far (the same for every row: rows are left-padded)

    def append(self, layer, k, v):
        T = k.shape[2]
        self.k[layer, :, :, self.len:self.len + T] = k
        self.v[layer, :, :, self.len:self.len + T] = v
        end = self.len + T
        if layer == self.k.shape[0] - 1:
            self.len = end  # the last layer moves the pointer for everyone
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]


def padded_attention_mask(start, q_from, q_to, k_to):
    """Boolean (B, 1, Tq, Tk) mask for left-padded rows: query i sees key j iff
    start[b] <= j <= i. A pad query (i < start[b]) sees only itself, so its row of the
    softmax is never empty (no NaN); its output is never used."""
    i = torch.arange(q_from, q_to, device=start.device).view(1, -1, 1)
    j = torch.arange(k_to, device=start.device).view(1, 1, -1)
    s = start.view(-1, 1, 1)
    mask = ((j >= s) & (j <= i)) | (j == i)
    return mask.unsqueeze(1)


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # scaled init of residual projections (GPT-2)
            if name.endswith("proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(m):
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)

    def num_params(self):
        return sum(p.numel() for p in self.parameters())  # tied weights counted once

    def forward(self, idx, start=None, cache=None):
        """idx (B, T) -> logits (B, T, vocab).

        start: None for right-padded or unpadded rows (plain causal attention), or (B,)
        the column where each left-padded row's real tokens begin.
        cache: a KVCache; idx then holds only the new tokens, placed after cache.len.
        """
        B, T = idx.shape
        past = cache.len if cache is not None else 0
        if past + T > self.cfg.block_size:
            raise ValueError(f"sequence of {past + T} tokens exceeds block_size {self.cfg.block_size}")
        if start is None and cache is None:  # training and scoring: plain causal attention
            pos, mask = torch.arange(T, device=idx.device).expand(B, T), None
        else:
            if start is None:
                start = torch.zeros(B, dtype=torch.long, device=idx.device)
            col = torch.arange(past, past + T, device=idx.device).unsqueeze(0)  # (1, T)
            pos = (col - start.view(-1, 1)).clamp(min=0)  # (B, T): positions count from the first real token
            if T == 1:  # one decoding step: the new token sees every real key so far
                mask = (torch.arange(past + 1, device=idx.device)
                        >= start.view(-1, 1)).view(B, 1, 1, past + 1)
            else:
                mask = padded_attention_mask(start, past, past + T, past + T)
        x = self.wte(idx)                                   # no position table: rotary on q, k
        rot = rotary(pos, self.cfg.n_embd // self.cfg.n_head)
        for layer, block in enumerate(self.blocks):
            x = block(x, mask, cache, layer, rot)
        return self.lm_head(self.ln_f(x))

    @torch.no_grad()
    def generate(self, prompts, max_new_tokens, *, eos_id, pad_id, temperature=1.0,
                 generator=None, use_cache=True, return_logits=False):
        """Sample continuations for a batch of prompts of different lengths.

        prompts: list of lists of token ids (each non-empty). Returns `new` (B, max_new_tokens)
        long: the sampled tokens, EOS included, pad_id after a row's EOS. Temperature 0 is
        greedy. With return_logits, also the (B, max_new_tokens, vocab) logits each token
        was drawn from (for tests). Sampling draws from `generator` (a seeded
        torch.Generator on the model's device) so a run is reproducible.
        """
        if not prompts or any(len(p) == 0 for p in prompts):
            raise ValueError("generate needs a non-empty list of non-empty prompts")
        dev = self.wte.weight.device
        B, L = len(prompts), max(len(p) for p in prompts)
        if L + max_new_tokens > self.cfg.block_size:
            raise ValueError(f"prompt ({L}) + max_new_tokens ({max_new_tokens}) exceeds "
                             f"block_size {self.cfg.block_size}")
        idx = torch.full((B, L), pad_id, dtype=torch.long)
        for b, p in enumerate(prompts):
            idx[b, L - len(p):] = torch.tensor(p, dtype=torch.long)
        idx = idx.to(dev)
        start = torch.tensor([L - len(p) for p in prompts], device=dev)
        new = torch.full((B, max_new_tokens), pad_id, dtype=torch.long, device=dev)
        done = torch.zeros(B, dtype=torch.bool, device=dev)
        all_logits = []
        cache = KVCache(self.cfg, B, L + max_new_tokens, dev, self.wte.weight.dtype) if use_cache else None
        seq = idx
        for t in range(max_new_tokens):
            if use_cache:
                logits = self(idx if t == 0 else new[:, t - 1:t], start, cache)[:, -1]
            else:  # reference path: run the whole sequence again
                logits = self(seq, start)[:, -1]
            if return_logits:
                all_logits.append(logits.float())
            if temperature == 0:
                nxt = logits.argmax(-1)
            else:
                logits = logits.float() / temperature
                nxt = torch.multinomial(F.softmax(logits, -1), 1, generator=generator).squeeze(1)
            nxt = torch.where(done, torch.full_like(nxt, pad_id), nxt)
            new[:, t] = nxt
            done = done | (nxt == eos_id)
            if not use_cache:
                seq = torch.cat([seq, nxt.unsqueeze(1)], dim=1)
            # stopping early needs a host sync; check only every 8 tokens so a GPU stays busy
            if t % 8 == 7 and bool(done.all()):
                break
        return (new, torch.stack(all_logits, 1)) if return_logits else new


def token_logprobs(logits, targets):
    """log p(targets[b, t]) under logits[b, t]: (B, T, V), (B, T) -> (B, T), computed as
    the negative per-token cross-entropy (stable log-softmax inside)."""
    B, T, V = logits.shape
    return -F.cross_entropy(logits.reshape(B * T, V).float(), targets.reshape(B * T),
                            reduction="none").view(B, T)


# ---------------------------------------------------------------- checkpoints

class CheckpointError(RuntimeError):
    pass


def save(path, model, meta=None):
    """Write {config, state_dict, meta} to `path` atomically (temporary file, then rename),
    so an interrupted save never leaves a half-written checkpoint under the real name."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        torch.save({"config": asdict(model.cfg), "state_dict": model.state_dict(), "meta": meta or {}}, tmp)
        os.replace(tmp, path)
    except BaseException as e:  # a full disk or Ctrl-C: leave no temporary file behind
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(e, OSError):
            raise CheckpointError(f"could not write checkpoint {path}: {e.strerror or e}") from None
        raise


def load(path, expected_config=None, device="cpu"):
    """Load a checkpoint written by `save`; returns (model, meta).

    Raises CheckpointError, one line naming the file, what is wrong and the fix, when the
    file is missing, truncated, not a checkpoint, holds anything but tensors (it is never
    unpickled: weights_only), has unknown config fields, weights that do not fit or are not
    finite, or a config that differs from `expected_config`.
    """
    fix = f"delete {path} and rerun the command that trains it (train_tiny.py)"
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint {path} does not exist; train it with train_tiny.py")
    try:
        ck = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError:   # garbage, or objects beyond tensors; torch's own message
        # suggests unsafe loading, so it is never shown
        raise CheckpointError(f"checkpoint {path} is unreadable: damaged, or not a file of plain tensors "
                              f"(anything else is refused, never unpickled); {fix}") from None
    except Exception:
        raise CheckpointError(f"checkpoint {path} is unreadable (truncated or not a checkpoint); "
                              f"{fix}") from None
    if not isinstance(ck, dict) or not {"config", "state_dict"} <= set(ck):
        raise CheckpointError(f"checkpoint {path} lacks its config or weights; {fix}")
    known = {f.name for f in fields(GPTConfig)}
    if not isinstance(ck["config"], dict) or set(ck["config"]) - known:
        extra = sorted(set(ck["config"]) - known) if isinstance(ck["config"], dict) else "not a dict"
        raise CheckpointError(f"checkpoint {path} has an unknown config ({extra}); {fix}")
    meta = ck.get("meta", {})
    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint {path} has meta of type {type(meta).__name__}, not a dict; {fix}")
    cfg = GPTConfig(**ck["config"])
    if expected_config is not None and asdict(expected_config) != asdict(cfg):
        diff = {k: (v, asdict(expected_config)[k]) for k, v in asdict(cfg).items()
                if asdict(expected_config)[k] != v}
        raise CheckpointError(f"checkpoint {path} does not match the requested config "
                              f"(field: (in file, requested)) {diff}; {fix}")
    net = GPT(cfg).to(device)
    try:
        net.load_state_dict(ck["state_dict"])
    except Exception:
        raise CheckpointError(f"checkpoint {path} has weights that do not fit its config; {fix}") from None
    bad = [name for name, t in net.state_dict().items() if not torch.isfinite(t).all()]
    if bad:
        raise CheckpointError(f"checkpoint {path} holds non-finite weights ({bad[0]}"
                              f"{' and more' if len(bad) > 1 else ''}); {fix}")
    return net, meta
