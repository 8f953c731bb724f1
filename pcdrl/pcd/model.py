"""The Predictive Concept Decoder: encoder + LoRA decoder over the subject model S.

    activations of S ──► ConceptEncoder ──► k concepts/token ──► soft tokens ──► S+LoRA ──► suffix/answer

The decoder and the activation reader share one copy of S's weights: reads run with the
adapter disabled (pcdrl/pcd/activations.py), so S's activations are never those of the decoder.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from pcdrl.pcd.activations import check_layer, read_residual
from pcdrl.pcd.checkpoint import read_config, read_parts, save_pcd
from pcdrl.pcd.config import PCDConfig
from pcdrl.pcd.decoder import IGNORE_INDEX, add_lora, embed_with_soft_tokens, per_row_loss, soft_prompt_batch
from pcdrl.pcd.encoder import ConceptEncoder, EncoderOutput

SoftMode = Literal["concepts", "no_concepts", "raw_activations"]
"""What the decoder reads: the k-sparse concepts, no information (a control), or the un-bottlenecked activations."""


class PCD(nn.Module):
    def __init__(self, config: PCDConfig, decoder: nn.Module, tokenizer, encoder: ConceptEncoder):
        super().__init__()
        self.config = config
        self.decoder = decoder
        self.tokenizer = tokenizer
        self.encoder = encoder
        self.concepts: dict = {}  # labels and statistics, filled by `pcdrl label` (concepts.json)
        self.training_data: dict = {}  # corpus/window/seed of pretraining, so labelling can hold that text out

    # --- construction ----------------------------------------------------------------------

    @classmethod
    def create(cls, config: PCDConfig, subject: nn.Module | None = None, tokenizer=None, seed: int = 0) -> "PCD":
        """A fresh PCD over S: random unit-norm encoder, zero-initialised LoRA."""
        from pcdrl.models import load_model, load_tokenizer

        subject = subject if subject is not None else load_model(config.subject_model)
        tokenizer = tokenizer if tokenizer is not None else load_tokenizer(config.subject_model)
        check_layer(subject, config.read_layer)
        generator = torch.Generator().manual_seed(seed)
        d_model = subject.get_input_embeddings().weight.shape[1]
        encoder = ConceptEncoder(d_model, config.n_concepts, config.k, generator=generator)
        torch.manual_seed(seed)  # LoRA A matrices draw from the global generator
        decoder = add_lora(subject, config.lora_rank, config.lora_alpha, config.lora_dropout, config.lora_targets)
        return cls(config, decoder, tokenizer, encoder)

    @classmethod
    def from_pretrained(cls, path: str | Path, subject: nn.Module | None = None, trainable: bool = False) -> "PCD":
        """Rebuild a PCD from its checkpoint folder; S is loaded by the name in config.json unless given."""
        from peft import PeftModel

        from pcdrl.models import load_model, load_tokenizer

        path = Path(path)
        config, _ = read_config(path)
        subject = subject if subject is not None else load_model(config.subject_model)
        d_model = subject.get_input_embeddings().weight.shape[1]
        state, concepts, training_data = read_parts(path, d_model, config.subject_model)
        decoder = PeftModel.from_pretrained(subject, path / "decoder", is_trainable=trainable)
        encoder = ConceptEncoder(d_model, config.n_concepts, config.k)
        encoder.load_state_dict(state)
        pcd = cls(config, decoder, load_tokenizer(config.subject_model), encoder)
        pcd.concepts, pcd.training_data = concepts, training_data
        return pcd

    def save_pretrained(self, path: str | Path) -> None:
        save_pcd(self, path)

    # --- reading S ------------------------------------------------------------------------

    def read_activations(self, input_ids: torch.Tensor, positions: slice | torch.Tensor | None = None) -> torch.Tensor:
        """S's residual stream at the read layer (adapter off, no gradient)."""
        return read_residual(self.decoder, input_ids.to(self.device), self.config.read_layer, positions)

    @property
    def device(self) -> torch.device:
        return self.encoder.W_enc.weight.device

    @property
    def placeholder_id(self) -> int:
        tok = self.tokenizer
        return int(tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)

    @torch.no_grad()
    def embedding_norm(self) -> float:
        """Mean norm of S's token embeddings: the scale soft tokens should live at."""
        return self.decoder.get_input_embeddings().weight.float().norm(dim=1).mean().item()

    # --- encoding and decoding -----------------------------------------------------------

    def encode(self, activations: torch.Tensor) -> EncoderOutput:
        return self.encoder(activations.to(self.device))

    def soft_tokens(self, activations: torch.Tensor, mode: SoftMode = "concepts") -> tuple[torch.Tensor, EncoderOutput | None]:
        activations = activations.to(self.device)
        if mode == "concepts":
            out = self.encode(activations)
            return out.soft_tokens, out
        if mode == "no_concepts":
            # The placeholder token's own embedding: no information from S. (Exact zeros would be
            # the literal reading, but zero input vectors give NaN gradients through S's RMSNorms.)
            placeholder = self.decoder.get_input_embeddings().weight[self.placeholder_id].detach()
            return placeholder.expand(*activations.shape[:-1], -1), None
        if mode == "raw_activations":
            return self.encoder.normalize(activations), None
        raise ValueError(f"unknown soft-token mode {mode!r}; use concepts, no_concepts or raw_activations")

    def decoder_logits(self, soft_tokens: torch.Tensor, input_ids: torch.Tensor, placeholder_mask: torch.Tensor) -> torch.Tensor:
        embeds = embed_with_soft_tokens(self.decoder, input_ids, soft_tokens, placeholder_mask)
        return self.decoder(inputs_embeds=embeds, use_cache=False).logits

    def suffix_loss(
        self, activations: torch.Tensor, suffix_ids: torch.Tensor, mode: SoftMode = "concepts"
    ) -> tuple[torch.Tensor, EncoderOutput | None]:
        """Per-window next-token loss on the suffix given the encoded middle -> ([B], encoder output)."""
        soft, out = self.soft_tokens(activations, mode)
        return self.soft_suffix_loss(soft, suffix_ids), out

    def soft_suffix_loss(
        self, soft_tokens: torch.Tensor, suffix_ids: torch.Tensor, suffix_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Per-row next-token loss on the suffix given ready-made soft tokens [B, n_soft, d] -> [B].

        ``suffix_mask`` [B, S] (True = real token) lets rows of different lengths share a batch by
        right-padding: padding comes after every real token, so causal attention never lets it change
        them, and its labels are ignored.
        """
        suffix_ids = suffix_ids.to(self.device)
        input_ids, mask, labels = soft_prompt_batch(suffix_ids, soft_tokens.shape[1], self.placeholder_id)
        if suffix_mask is not None:
            labels[:, soft_tokens.shape[1] :][~suffix_mask.to(self.device)] = IGNORE_INDEX
        logits = self.decoder_logits(soft_tokens, input_ids, mask)
        return per_row_loss(logits, labels)

    def trainable_parameters(self, mode: SoftMode = "concepts") -> list[nn.Parameter]:
        params = [p for p in self.decoder.parameters() if p.requires_grad]
        if mode == "concepts":
            params += list(self.encoder.parameters())
        return params

    def describe(self) -> dict:
        return {"config": asdict(self.config), "d_model": self.encoder.d_model, "n_concepts_labelled": len(self.concepts)}

    def __repr__(self) -> str:
        return f"PCD({json.dumps(self.describe()['config'])})"
