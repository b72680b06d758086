"""integrations/hf_export.py: the project's GPT as a Hugging Face model, exactly, and the
task's tokenizer as a Hugging Face tokenizer, both built in code (nothing is downloaded).

What is here:
  hf_config        GPTConfig -> GPTNeoXConfig (the architecture that matches model.py)
  export_model     GPT -> GPTNeoXForCausalLM with the same weights
  make_tokenizer   a character-level PreTrainedTokenizerFast with verify.py's ids
  position_ids     the positions model.py gives a left-padded batch, for an HF forward
  save_pretrained  model + tokenizer + generation config in one folder, for TRL or vLLM
  load_pretrained  that folder back, with model.py's rotary frequencies (exact again)

Why GPT-NeoX, checked piece by piece against model.py:
  - pre-norm blocks with two LayerNorms, eps 1e-5 (nn.LayerNorm's default, GPT-NeoX's
    default): `use_parallel_residual=False` gives x + attn(ln1(x)), then + mlp(ln2(x));
  - fused qkv with bias, and an output projection with bias (`attention_bias=True`);
    GPT-NeoX lays the fused rows out per head ([q_h, k_h, v_h] for h = 0..nh-1) while
    model.py lays them out [q (all heads), k, v]: `export_model` permutes the rows;
  - exact (erf) GELU: `hidden_act="gelu"` is torch's F.gelu without approximation;
  - rotary embedding with the rotate-half convention on the whole head (`rotary_pct=1`,
    base 10000): both rotate (x1, x2) into (x1 cos - x2 sin, x2 cos + x1 sin);
  - tied input and output embeddings, no lm_head bias (`tie_word_embeddings=True`);
  - attention scale 1/sqrt(head size), no dropout.
One float detail: GPT-NeoX computes the rotary frequencies as 1 / base^(2i/d), model.py
as base^(-2i/d); a few differ in the last bit. `export_model` copies model.py's into the
buffer, so the export is exact; that buffer is not saved (`persistent=False`), so a model
reloaded with from_pretrained recomputes GPT-NeoX's own and agrees to about 1e-5 on the
logits (1.4e-5 measured on the shipped student); `load_pretrained` restores model.py's.

Positions: model.py counts a left-padded row's positions from its first real token
(docs/METHODS.md, "The loop"; model.py's module docstring). Pass `position_ids(mask)` to
an HF forward to get the same numbers; `generate` builds them this way by itself. TRL's
log-prob forward passes no position_ids, so its positions start at the padded column:
with rotary embeddings only distances between positions enter attention, so the logits
are the same up to float rounding.
"""
import os

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import GenerationConfig, GPTNeoXConfig, GPTNeoXForCausalLM, PreTrainedTokenizerFast

import model
import verify

SPECIAL = dict(zip(("bos", "eos", "pad"), verify.SPECIALS))   # "<|bos|>", "<|eos|>", "<|pad|>"


def hf_config(cfg, attn_implementation="sdpa"):
    """The GPTNeoXConfig that computes what model.GPT(cfg) computes (module docstring)."""
    if not isinstance(cfg, model.GPTConfig):
        raise TypeError(f"hf_config needs a model.GPTConfig, got {type(cfg).__name__}")
    if cfg.n_embd % cfg.n_head:
        raise ValueError(f"n_embd {cfg.n_embd} is not divisible by n_head {cfg.n_head}")
    conf = GPTNeoXConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.n_embd, num_hidden_layers=cfg.n_layer,
        num_attention_heads=cfg.n_head, intermediate_size=4 * cfg.n_embd, hidden_act="gelu",
        rotary_pct=1.0, rotary_emb_base=10000, max_position_embeddings=cfg.block_size,
        layer_norm_eps=1e-5, use_parallel_residual=False, tie_word_embeddings=True,
        attention_bias=True, attention_dropout=cfg.dropout, hidden_dropout=0.0,
        bos_token_id=verify.BOS, eos_token_id=verify.EOS, pad_token_id=verify.PAD,
    )
    conf._attn_implementation = attn_implementation
    return conf


def _qkv_per_head(t, n_head):
    """model.py's fused rows [q; k; v] (each n_head * hs) -> GPT-NeoX's [q_0; k_0; v_0; q_1; ...].
    Works for the weight (3C, C) and the bias (3C,)."""
    rest = t.shape[1:]
    C = t.shape[0] // 3
    return t.reshape(3, n_head, C // n_head, *rest).transpose(0, 1).reshape(3 * C, *rest)


def export_model(gpt, attn_implementation="sdpa"):
    """A GPTNeoXForCausalLM with gpt's weights (copied, float32, on gpt's device), in eval mode.

    Raises TypeError for anything but a model.GPT. The rotary frequencies are set to
    model.py's own (module docstring). With attn_implementation="sdpa", the kernel model.py
    calls, the logits on the shipped student are bitwise equal on CPU (the tests ask 1e-5);
    "eager" differs by about 1e-5.
    """
    if not isinstance(gpt, model.GPT):
        raise TypeError(f"export_model needs a model.GPT, got {type(gpt).__name__}")
    cfg, nh = gpt.cfg, gpt.cfg.n_head
    hf = GPTNeoXForCausalLM(hf_config(cfg, attn_implementation))
    sd = {k: v.detach().float().cpu() for k, v in gpt.state_dict().items()}
    out = {"gpt_neox.embed_in.weight": sd["wte.weight"], "lm_head.weight": sd["wte.weight"],
           "gpt_neox.final_layer_norm.weight": sd["ln_f.weight"],
           "gpt_neox.final_layer_norm.bias": sd["ln_f.bias"]}
    for i in range(cfg.n_layer):
        src, dst = f"blocks.{i}.", f"gpt_neox.layers.{i}."
        pairs = {"ln1": "input_layernorm", "ln2": "post_attention_layernorm", "attn.proj": "attention.dense",
                 "mlp.fc": "mlp.dense_h_to_4h", "mlp.proj": "mlp.dense_4h_to_h"}
        for a, b in pairs.items():
            out[f"{dst}{b}.weight"] = sd[f"{src}{a}.weight"]
            out[f"{dst}{b}.bias"] = sd[f"{src}{a}.bias"]
        out[f"{dst}attention.query_key_value.weight"] = _qkv_per_head(sd[f"{src}attn.qkv.weight"], nh)
        out[f"{dst}attention.query_key_value.bias"] = _qkv_per_head(sd[f"{src}attn.qkv.bias"], nh)
    missing, unexpected = hf.load_state_dict(out, strict=False)
    missing = [k for k in missing if "rotary_emb" not in k]
    if missing or unexpected:   # a transformers version that renamed a parameter
        raise RuntimeError(f"GPT-NeoX weights did not map: missing {missing}, unexpected {unexpected}")
    if hf.lm_head.weight.data_ptr() != hf.gpt_neox.embed_in.weight.data_ptr():
        hf.tie_weights()
    set_rotary_frequencies(hf)
    hf.generation_config = generation_config()
    return hf.to(gpt.wte.weight.device).eval()


def set_rotary_frequencies(hf):
    """Overwrite a GPT-NeoX model's rotary frequencies with model.rotary's formula,
    base^(-2i/d), in place (module docstring: GPT-NeoX's 1/base^(2i/d) differs in the last bit)."""
    c = hf.config
    hs = c.hidden_size // c.num_attention_heads
    if c.rope_parameters.get("partial_rotary_factor") != 1.0 or c.rope_parameters.get("rope_type") != "default":
        raise ValueError("set_rotary_frequencies is for full-head default rotary (rotary_pct=1)")
    rot = hf.gpt_neox.rotary_emb
    inv = float(c.rope_parameters["rope_theta"]) ** (-torch.arange(0, hs, 2, dtype=torch.float32) / hs)
    rot.inv_freq.copy_(inv.to(rot.inv_freq.device))
    rot.original_inv_freq.copy_(inv.to(rot.inv_freq.device))
    return hf


def generation_config(**kw):
    """The task's special ids for HF generate (greedy unless told otherwise)."""
    return GenerationConfig(bos_token_id=verify.BOS, eos_token_id=verify.EOS, pad_token_id=verify.PAD,
                            do_sample=False, **kw)


def make_tokenizer(model_max_length=model.GPTConfig.block_size):
    """A PreTrainedTokenizerFast that gives verify.py's ids: one token per character of
    verify.CHARS, then <|bos|>, <|eos|>, <|pad|>. Encoding adds BOS in front (so a prompt
    encodes to verify.prompt_ids) unless add_special_tokens=False; padding is on the left,
    as GRPO generation pads. A character outside the alphabet fails to encode."""
    vocab = {c: i for i, c in enumerate(verify.CHARS)}
    vocab.update({s: verify.ENC.encode_single_token(s) for s in verify.SPECIALS})
    if sorted(vocab.values()) != list(range(verify.VOCAB_SIZE)):
        raise RuntimeError("verify.py's ids are not 0..VOCAB_SIZE-1; the tokenizer cannot mirror them")
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")   # every character alone
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(list(verify.SPECIALS))
    tok.post_processor = processors.TemplateProcessing(
        single=f"{SPECIAL['bos']} $A", pair=f"{SPECIAL['bos']} $A $B",
        special_tokens=[(SPECIAL["bos"], verify.BOS)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=SPECIAL["bos"], eos_token=SPECIAL["eos"], pad_token=SPECIAL["pad"],
        padding_side="left", model_max_length=model_max_length, clean_up_tokenization_spaces=False)


def position_ids(attention_mask):
    """model.py's positions for a left-padded batch: 0 at each row's first real token,
    counting up; pad columns get 0 (their outputs are never used). (B, L) -> (B, L) long."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def save_pretrained(path, gpt):
    """Write the exported model, the tokenizer and the generation config to folder `path`
    (created if missing), loadable with AutoModelForCausalLM / AutoTokenizer.from_pretrained."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"{path} exists and is not a folder")
    os.makedirs(path, exist_ok=True)
    export_model(gpt).save_pretrained(path)
    make_tokenizer(gpt.cfg.block_size).save_pretrained(path)
    return path


def load_pretrained(path):
    """(model, tokenizer) from a folder written by save_pretrained, the model in eval mode
    with model.py's rotary frequencies, so it computes what the exported GPT computes."""
    if not os.path.isdir(path):
        raise ValueError(f"{path} is not a folder written by hf_export.save_pretrained")
    hf = GPTNeoXForCausalLM.from_pretrained(path)
    return set_rotary_frequencies(hf).eval(), PreTrainedTokenizerFast.from_pretrained(path)
