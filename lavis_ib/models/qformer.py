"""The Q-Former: a BERT-base encoder whose learned query tokens cross-attend to image features.

Layout and state-dict names follow LAVIS (`Qformer.bert.encoder.layer.N.attention.self.query`, ...): queries are
prepended to the (optional) instruction tokens, attend bidirectionally with them, cross-attend to the image on every
`cross_attention_freq`-th layer and use their own FFN (`intermediate_query`/`output_query`); text tokens use the BERT
FFN. Attention is `torch.nn.functional.scaled_dot_product_attention`. Unused LAVIS parts (MLM head, relative
positions, head pruning, decoder mode) are left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint


@dataclass
class QFormerConfig:
    """Q-Former sizes; defaults are bert-base-uncased plus LAVIS's `[DEC]` token (vocab 30523)."""

    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    cross_attention_freq: int = 2
    vocab_size: int = 30523
    max_position_embeddings: int = 512
    layer_norm_eps: float = 1e-12
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1


class SelfOrCrossAttention(nn.Module):
    """Multi-head attention with BERT's `query/key/value` names; keys/values come from `context` when given."""

    def __init__(self, cfg: QFormerConfig, context_width: int | None = None):
        super().__init__()
        self.num_heads = cfg.num_heads
        self.dropout = cfg.attention_dropout
        kv_width = context_width or cfg.hidden_size
        self.query = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.key = nn.Linear(kv_width, cfg.hidden_size)
        self.value = nn.Linear(kv_width, cfg.hidden_size)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None, context: torch.Tensor | None = None):
        source = hidden if context is None else context
        batch, length, width = hidden.shape
        heads = lambda x: x.view(batch, -1, self.num_heads, width // self.num_heads).transpose(1, 2)  # (B, nh, L, hd)
        out = F.scaled_dot_product_attention(
            heads(self.query(hidden)),
            heads(self.key(source)),
            heads(self.value(source)),
            attn_mask=mask,
            dropout_p=self.dropout if self.training else 0.0,
        )
        return out.transpose(1, 2).reshape(batch, length, width)


class ResidualLayerNorm(nn.Module):
    """`LayerNorm(dropout(dense(x)) + residual)` — BERT's SelfOutput / Output block."""

    def __init__(self, in_features: int, cfg: QFormerConfig):
        super().__init__()
        self.dense = nn.Linear(in_features, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class AttentionBlock(nn.Module):
    """Attention followed by the residual LayerNorm; submodule names `self` and `output` as in BERT."""

    def __init__(self, cfg: QFormerConfig, context_width: int | None = None):
        super().__init__()
        self.self = SelfOrCrossAttention(cfg, context_width)
        self.output = ResidualLayerNorm(cfg.hidden_size, cfg)

    def forward(self, hidden, mask, context=None):
        return self.output(self.self(hidden, mask, context), hidden)


class Intermediate(nn.Module):
    """The FFN's expansion + GELU (`intermediate.dense`)."""

    def __init__(self, cfg: QFormerConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.intermediate_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dense(x))


class QFormerLayer(nn.Module):
    """One layer: joint self-attention, cross-attention for the queries (on some layers), separate FFNs."""

    def __init__(self, cfg: QFormerConfig, index: int, encoder_width: int, has_text: bool):
        super().__init__()
        self.attention = AttentionBlock(cfg)
        if index % cfg.cross_attention_freq == 0:
            self.crossattention = AttentionBlock(cfg, context_width=encoder_width)
        if has_text:
            self.intermediate = Intermediate(cfg)
            self.output = ResidualLayerNorm(cfg.intermediate_size, cfg)
        self.intermediate_query = Intermediate(cfg)
        self.output_query = ResidualLayerNorm(cfg.intermediate_size, cfg)

    def forward(self, hidden, mask, image_embeds, image_mask, num_queries: int):
        hidden = self.attention(hidden, mask)
        queries, text = hidden[:, :num_queries], hidden[:, num_queries:]
        if hasattr(self, "crossattention"):
            queries = self.crossattention(queries, image_mask, image_embeds)
        queries = self.output_query(self.intermediate_query(queries), queries)
        if text.shape[1] == 0:
            return queries
        return torch.cat([queries, self.output(self.intermediate(text), text)], dim=1)


class Embeddings(nn.Module):
    """Word + absolute position embeddings for the text (positions from 0), queries prepended, then LayerNorm."""

    def __init__(self, cfg: QFormerConfig, has_text: bool):
        super().__init__()
        if has_text:
            self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
            self.position_embeddings = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout)

    def forward(self, queries: torch.Tensor, input_ids: torch.Tensor | None) -> torch.Tensor:
        if input_ids is not None and input_ids.shape[1] > 0:
            positions = torch.arange(input_ids.shape[1], device=input_ids.device)
            text = self.word_embeddings(input_ids) + self.position_embeddings(positions)
            queries = torch.cat([queries, text.to(queries.dtype)], dim=1)
        return self.dropout(self.LayerNorm(queries))


class Encoder(nn.Module):
    """The layer stack (`encoder.layer.N`), with optional per-layer activation checkpointing."""

    def __init__(self, cfg: QFormerConfig, encoder_width: int, has_text: bool):
        super().__init__()
        self.layer = nn.ModuleList(QFormerLayer(cfg, i, encoder_width, has_text) for i in range(cfg.num_layers))
        self.grad_checkpointing = False

    def forward(self, hidden, mask, image_embeds, image_mask, num_queries):
        for layer in self.layer:
            if self.grad_checkpointing and self.training:
                hidden = checkpoint(layer, hidden, mask, image_embeds, image_mask, num_queries, use_reentrant=False)
            else:
                hidden = layer(hidden, mask, image_embeds, image_mask, num_queries)
        return hidden


class Bert(nn.Module):
    """Container giving LAVIS's `bert.embeddings` / `bert.encoder` names."""

    def __init__(self, cfg: QFormerConfig, encoder_width: int, has_text: bool):
        super().__init__()
        self.embeddings = Embeddings(cfg, has_text)
        self.encoder = Encoder(cfg, encoder_width, has_text)


class QFormer(nn.Module):
    """Queries (+ optional instruction) → contextualised query states conditioned on image features."""

    def __init__(self, cfg: QFormerConfig, encoder_width: int, has_text: bool = True):
        super().__init__()
        self.cfg = cfg
        self.has_text = has_text
        self.bert = Bert(cfg, encoder_width, has_text)
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        """BERT's initialisation: normal(0, 0.02) weights, zero biases, unit LayerNorm."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def forward(
        self,
        query_embeds: torch.Tensor,
        image_embeds: torch.Tensor,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Returns the last hidden states `[B, Q + L_text, H]`; `attention_mask` covers the text tokens only."""
        if input_ids is not None and not self.has_text:
            raise ValueError("this Q-Former was built without text input (qformer_text_input: false)")
        num_queries = query_embeds.shape[1]
        hidden = self.bert.embeddings(query_embeds, input_ids)
        mask = None
        if attention_mask is not None:
            query_mask = attention_mask.new_ones(attention_mask.shape[0], num_queries)
            mask = torch.cat([query_mask, attention_mask], dim=1).bool()[:, None, None, :]  # (B, 1, 1, Q+L)
        image_embeds = image_embeds.to(hidden.dtype)
        return self.bert.encoder(hidden, mask, image_embeds, None, num_queries)
