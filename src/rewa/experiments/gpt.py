"""A small GPT (decoder-only Transformer) for character-level language modelling, written here.

``make_model("gpt", (context,), vocab, **options)``: token and learned position embeddings,
``layers`` pre-norm blocks ``x + attn(ln(x))``, ``x + mlp(ln(x))`` (causal multi-head
self-attention through :func:`torch.nn.functional.scaled_dot_product_attention` with
``is_causal=True``, so a position never sees a later one; an MLP of ``mlp_ratio * width`` with
GELU), a final LayerNorm and a linear head to ``vocab`` logits: inputs ``(batch, T)`` token ids
(``T <= context``), outputs ``(batch, T, vocab)``. ``tie=True`` (default) shares the head's
matrix with the token embedding (Press & Wolf 2017).

Which tensors are sparsified (:meth:`GPT.dense_parameter_names`, read by
:func:`rewa.param_groups.split_parameters`, so every optimizer and every sparsity tool agrees):
``sparsify`` lists the roles whose matrices are sparsified, by default the attention (query /
key / value and output projections) and MLP matrices, the practice of pruning Transformers
(SparseGPT, Wanda: linear layers of the blocks). Embeddings, the head (tied or not), LayerNorms
and biases are dense unless ``sparsify`` names ``"embeddings"`` / ``"head"``.

Initialization as GPT-2: normal(0, 0.02), the residual output projections scaled by
``1/sqrt(2 layers)``, biases 0, LayerNorm (1, 0).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..param_groups import SPARSIFY_ROLES, dense_names_by_role

__all__ = ["GPT", "GPT_DEFAULTS", "gpt_options"]

GPT_DEFAULTS = dict(
    layers=4, heads=4, width=128, mlp_ratio=4, dropout=0.0, bias=True, tie=True, sparsify=("attention", "mlp")
)


def gpt_options(options: dict) -> dict:
    """The GPT's options over :data:`GPT_DEFAULTS`, each checked (ValueError naming it)."""
    unknown = sorted(set(options) - set(GPT_DEFAULTS))
    if unknown:
        raise ValueError(
            f"model option(s) {', '.join(unknown)} are not options of 'gpt'; it has: {', '.join(GPT_DEFAULTS)}"
        )
    out = {**GPT_DEFAULTS, **options}
    for name in ("layers", "heads", "width", "mlp_ratio"):
        v = out[name]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"gpt option {name}={v!r} must be an integer >= 1")
    if out["width"] % out["heads"]:
        raise ValueError(f"gpt option width={out['width']} must be divisible by heads={out['heads']}")
    d = out["dropout"]
    if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0 <= d < 1:
        raise ValueError(f"gpt option dropout={d!r} must be in [0, 1)")
    for name in ("bias", "tie"):
        if not isinstance(out[name], bool):
            raise ValueError(f"gpt option {name}={out[name]!r} must be true or false")
    roles = out["sparsify"]
    if isinstance(roles, str):
        roles = tuple(r for r in roles.split(",") if r) if roles not in ("", "none") else ()
    if not isinstance(roles, (list, tuple)) or any(r not in SPARSIFY_ROLES for r in roles):
        raise ValueError(
            f"gpt option sparsify={out['sparsify']!r} must list roles among {', '.join(SPARSIFY_ROLES)} "
            "(e.g. attention,mlp)"
        )
    out["sparsify"] = tuple(roles)
    return out


class _Attention(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float, bias: bool):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(width, 3 * width, bias=bias)
        self.proj = nn.Linear(width, width, bias=bias)
        self.resid_drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        y = nn.functional.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0
        )
        return self.resid_drop(self.proj(y.transpose(1, 2).reshape(b, t, c)))


class _MLP(nn.Module):
    def __init__(self, width: int, ratio: int, dropout: float, bias: bool):
        super().__init__()
        self.fc = nn.Linear(width, ratio * width, bias=bias)
        self.proj = nn.Linear(ratio * width, width, bias=bias)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.proj(nn.functional.gelu(self.fc(x))))


class _Block(nn.Module):
    def __init__(self, width: int, heads: int, ratio: int, dropout: float, bias: bool):
        super().__init__()
        self.ln1 = nn.LayerNorm(width, bias=bias)
        self.attn = _Attention(width, heads, dropout, bias)
        self.ln2 = nn.LayerNorm(width, bias=bias)
        self.mlp = _MLP(width, ratio, dropout, bias)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    """The GPT of this module; see the module docstring for the options."""

    def __init__(self, context: int, vocab: int, **options):
        super().__init__()
        o = gpt_options(options)
        if isinstance(context, bool) or not isinstance(context, int) or context < 1:
            raise ValueError(f"model 'gpt' needs input shape (context,) with context >= 1, got context={context!r}")
        self.context, self.vocab, self.options = context, vocab, o
        w = o["width"]
        self.tok_emb = nn.Embedding(vocab, w)
        self.pos_emb = nn.Embedding(context, w)
        self.drop = nn.Dropout(o["dropout"])
        self.blocks = nn.ModuleList(
            _Block(w, o["heads"], o["mlp_ratio"], o["dropout"], o["bias"]) for _ in range(o["layers"])
        )
        self.ln_f = nn.LayerNorm(w, bias=o["bias"])
        self.head = nn.Linear(w, vocab, bias=False)
        self._init_weights(o["layers"])
        if o["tie"]:
            self.head.weight = self.tok_emb.weight

    def _init_weights(self, layers: int) -> None:
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif p.ndim >= 2:
                std = 0.02 / math.sqrt(2 * layers) if name.endswith("proj.weight") else 0.02
                nn.init.normal_(p, 0.0, std)

    def parameter_roles(self) -> dict[str, str]:
        """Each parameter's role: ``attention``, ``mlp``, ``embeddings``, ``head``, ``norm``, ``bias``."""
        roles = {}
        for name, _ in self.named_parameters():  # a tied head is listed once, as the embedding
            if name.startswith(("tok_emb", "pos_emb")):
                roles[name] = "embeddings"
            elif name.startswith("head"):
                roles[name] = "head"
            elif ".ln" in name or name.startswith("ln_f"):
                roles[name] = "norm"
            elif name.endswith("bias"):
                roles[name] = "bias"
            else:
                roles[name] = "attention" if ".attn." in name else "mlp"
        return roles

    def dense_parameter_names(self) -> set[str]:
        """The matrices kept dense (not sparsified) by :func:`rewa.param_groups.split_parameters`."""
        return dense_names_by_role(self.parameter_roles(), self.options["sparsify"])

    def forward(self, idx: Tensor) -> Tensor:
        t = idx.shape[-1]
        if t > self.context:
            raise ValueError(f"gpt: a sequence of {t} tokens is longer than its context {self.context}")
        pos = torch.arange(t, device=idx.device)
        x = self.drop(self.tok_emb(idx) + self.pos_emb(pos))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))

    @torch.no_grad()
    def generate(
        self, idx: Tensor, max_new_tokens: int, *, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> Tensor:
        """``idx`` (batch, T) continued by ``max_new_tokens`` sampled ids (temperature 0: greedy);
        the last ``context`` tokens condition each step."""
        for _ in range(max_new_tokens):
            logits = self(idx[:, -self.context :])[:, -1, :].float()
            if temperature == 0:
                nxt = logits.argmax(-1, keepdim=True)
            else:
                probs = torch.softmax(logits / temperature, dim=-1)
                nxt = torch.multinomial(probs, 1, generator=generator)
            idx = torch.cat([idx, nxt], dim=1)
        return idx
