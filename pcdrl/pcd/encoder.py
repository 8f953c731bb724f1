"""The PCD encoder: a' = W_emb · TopK(W_enc · a + b_enc), with dead-concept revival.

Activations are first centred and rescaled (``input_mean``, ``input_scale``, fitted once on
training activations) so that encoded vectors start at the norm of the decoder's token
embeddings: they enter the decoder as soft tokens at layer 0, beside ordinary tokens.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class EncoderOutput:
    pre_acts: torch.Tensor
    """[..., m] W_enc · a + b_enc for every concept."""
    top_values: torch.Tensor
    """[..., k] the kept pre-activations."""
    top_indices: torch.Tensor
    """[..., k] which concepts they belong to."""
    soft_tokens: torch.Tensor
    """[..., d] W_emb · TopK(...): what the decoder reads."""


class ConceptEncoder(nn.Module):
    def __init__(self, d_model: int, n_concepts: int, k: int, generator: torch.Generator | None = None):
        super().__init__()
        if k > n_concepts:
            raise ValueError(f"k={k} cannot exceed n_concepts={n_concepts}")
        self.d_model, self.n_concepts, self.k = d_model, n_concepts, k
        # Named W_enc/W_emb so peft can target "W_enc" by name in the RL stage.
        self.W_enc = nn.Linear(d_model, n_concepts, bias=True)
        self.W_emb = nn.Linear(n_concepts, d_model, bias=False)
        with torch.no_grad():
            rows = torch.randn(n_concepts, d_model, generator=generator)
            rows /= rows.norm(dim=1, keepdim=True)  # paper: random unit-norm rows, b = 0, W_emb = W_encᵀ
            self.W_enc.weight.copy_(rows)
            self.W_enc.bias.zero_()
            self.W_emb.weight.copy_(rows.T)
        self.register_buffer("input_mean", torch.zeros(d_model))
        self.register_buffer("input_scale", torch.ones(()))
        # Tokens seen since each concept was last in a top-k; saved with checkpoints so resume is exact.
        self.register_buffer("tokens_since_fired", torch.zeros(n_concepts, dtype=torch.long))

    @torch.no_grad()
    def fit_input_stats(self, activations: torch.Tensor, target_norm: float) -> None:
        """Centre on the mean activation and scale so the mean norm becomes ``target_norm``."""
        flat = activations.reshape(-1, self.d_model).float()
        mean = flat.mean(0)
        norm = (flat - mean).norm(dim=1).mean().clamp_min(1e-6)
        self.input_mean.copy_(mean)
        self.input_scale.fill_(target_norm / norm.item())

    def normalize(self, activations: torch.Tensor) -> torch.Tensor:
        return (activations - self.input_mean) * self.input_scale

    def pre_activations(self, activations: torch.Tensor) -> torch.Tensor:
        return self.W_enc(self.normalize(activations))

    def forward(self, activations: torch.Tensor) -> EncoderOutput:
        pre_acts = self.pre_activations(activations)
        top_values, top_indices = pre_acts.topk(self.k, dim=-1)
        sparse = torch.zeros_like(pre_acts).scatter(-1, top_indices, top_values)
        return EncoderOutput(pre_acts, top_values, top_indices, self.W_emb(sparse))

    # --- dead concepts ---------------------------------------------------------------------

    @torch.no_grad()
    def record_usage(self, top_indices: torch.Tensor) -> None:
        """Count the tokens in this batch; reset the counter of every concept that fired."""
        n_tokens = top_indices.numel() // self.k
        self.tokens_since_fired += n_tokens
        self.tokens_since_fired[top_indices.reshape(-1).unique()] = 0

    def dead_mask(self, dead_after_tokens: int) -> torch.Tensor:
        return self.tokens_since_fired >= dead_after_tokens

    def aux_loss(self, pre_acts: torch.Tensor, dead: torch.Tensor, k_aux: int, coef: float) -> torch.Tensor:
        """L_aux = -(ε/k_aux) Σ over the top-k_aux dead concepts of W_enc,i · a, averaged over tokens.

        Raising a dead concept's pre-activation on the tokens where it is already closest to
        firing pulls its encoder row toward real activations until it wins a top-k again.
        """
        n_dead = int(dead.sum())
        if n_dead == 0 or coef == 0:
            return pre_acts.new_zeros(())
        flat = pre_acts.reshape(-1, self.n_concepts)[:, dead]
        top = flat.topk(min(k_aux, n_dead), dim=-1).values
        return -(coef / k_aux) * top.sum(-1).mean()
