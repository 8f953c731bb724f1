"""The concept-set policy: the PCD encoder with a LoRA adapter on W_enc, pooled over read positions.

Pre-activations are linear in the activation, so pooling the logits over an item's read
positions equals running W_enc once on the mean normalised activation: the policy sees one vector
per item, and never the question. The reference is a frozen copy of the *pretrained* encoder
(optionally int8-quantized). It is not "the policy with adapters disabled": the pretrained PCD
carries a decoder adapter of its own, and a future policy may start from an RL adapter.
"""
from __future__ import annotations

import copy
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from pcdrl.rl.sampling import greedy_top_k, gumbel_top_k, plackett_luce_logprob


@dataclass
class PolicyConfig:
    """How explanations are sampled and which weights train."""

    k: int = 8
    """Concepts per explanation."""
    temperature: float = 0.3
    """Sampling temperature, in units of the pretrained logits' spread (see `ConceptSetPolicy.fit_logit_scale`):
    1.0 samples almost uniformly over ~1000 concepts; 0.3 keeps about half of the greedy set in each sample."""
    lora_rank: int = 8
    """LoRA rank on W_enc."""
    lora_alpha: int = 16
    """LoRA alpha on W_enc."""
    labelled_only: bool = True
    """Sample only concepts that have a label (an unlabelled concept cannot be shown to the judge)."""
    train_offset: bool = True
    """Also train one logit offset per concept, shared by all items. The encoder centres activations, so
    pooled inputs have almost zero mean (cosine 0.07 with their mean on the quickstart data) and a
    low-rank adapter on W_enc cannot express a preference every item shares, such as "labels that
    name content words help the judge more than punctuation"."""

    def __post_init__(self) -> None:
        from pcdrl.runtime.config_loader import at_least, finite_numbers, positive

        finite_numbers(self)
        at_least("policy.k", self.k, 1, " (concepts per explanation)")
        positive("policy.temperature", self.temperature, " (1.0 is almost uniform; 0.3 the default)")
        at_least("policy.lora_rank", self.lora_rank, 1)
        positive("policy.lora_alpha", self.lora_alpha)


class ConceptSetPolicy(nn.Module):
    def __init__(self, encoder, config: PolicyConfig, allowed: torch.Tensor | None = None):
        super().__init__()
        from peft import LoraConfig, get_peft_model

        self.config = config
        frozen = copy.deepcopy(encoder)
        for p in frozen.parameters():
            p.requires_grad_(False)
        self.reference_head = frozen.W_enc  # the pretrained W_enc, never trained
        head = nn.Module()
        head.W_enc = copy.deepcopy(encoder.W_enc)
        head.offset = nn.Parameter(torch.zeros(encoder.n_concepts))
        lora = LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha, target_modules=["W_enc"], lora_dropout=0.0)
        self.head = get_peft_model(head, lora)
        self.offset.requires_grad_(config.train_offset)  # peft froze every non-LoRA weight
        self.register_buffer("allowed", allowed if allowed is not None else torch.ones(encoder.n_concepts, dtype=torch.bool))
        self.register_buffer("logit_scale", torch.ones(()))

    @torch.no_grad()
    def fit_logit_scale(self, pooled: torch.Tensor) -> None:
        """Divide all logits by the pretrained logits' mean spread over the allowed concepts on these items.

        A pretrained PCD's pooled logits differ by a few hundredths (std ≈ 0.07 for the quickstart PCD),
        so a temperature of 1 on raw logits samples almost uniformly: RL would train a policy that
        has little to do with the greedy one it is evaluated as. Standardising makes the temperature
        mean the same thing for every PCD, and the LoRA's updates move rankings at a useful rate.
        """
        logits = self.reference_head(pooled)[:, self.allowed].float()
        self.logit_scale.fill_(logits.std(dim=1).mean().clamp(min=1e-6).item())

    def _mask(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.masked_fill(~self.allowed, float("-inf")) if self.config.labelled_only else logits

    @property
    def offset(self) -> nn.Parameter:
        return self.head.base_model.model.offset

    def logits(self, pooled: torch.Tensor) -> torch.Tensor:
        return self._mask((self.head.base_model.model.W_enc(pooled) + self.offset) / self.logit_scale)

    @contextmanager
    def pretrained(self):
        """Within this block the policy is the pretrained encoder again (adapter off, offsets zero): for
        before/after evaluations. The KL reference is a separate frozen copy, not this."""
        saved = self.offset.detach().clone()
        with self.head.disable_adapter(), torch.no_grad():
            self.offset.zero_()
            try:
                yield self
            finally:
                self.offset.copy_(saved)

    @torch.no_grad()
    def reference_logits(self, pooled: torch.Tensor) -> torch.Tensor:
        return self._mask(self.reference_head(pooled).float() / self.logit_scale)

    def sample(self, pooled: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        with torch.no_grad():
            return gumbel_top_k(self.logits(pooled), self.config.k, self.config.temperature, generator)

    @torch.no_grad()
    def greedy(self, pooled: torch.Tensor) -> torch.Tensor:
        return greedy_top_k(self.logits(pooled), self.config.k)

    def logprob(self, pooled: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
        return plackett_luce_logprob(self.logits(pooled), chosen, self.config.temperature)

    @torch.no_grad()
    def reference_logprob(self, pooled: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
        return plackett_luce_logprob(self.reference_logits(pooled), chosen, self.config.temperature)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.head.parameters() if p.requires_grad]

    @torch.no_grad()
    def merged_linear(self) -> nn.Linear:
        """The policy's W_enc as one plain linear layer: LoRA merged in, the per-concept offsets folded
        into the bias. Applied per token, it is the RL encoder whose concepts the fidelity control
        scores. The logit scale is left out: a positive constant changes no ranking."""
        base = self.head.base_model.model.W_enc
        merged = nn.Linear(base.in_features, base.out_features, bias=True)
        weight = base.get_base_layer().weight.detach().clone()
        for name in [] if base.disable_adapters else base.active_adapters:
            if name in base.lora_A:
                weight += base.get_delta_weight(name)
        bias = base.get_base_layer().bias
        merged.weight.copy_(weight)
        merged.bias.copy_((bias.detach() if bias is not None else torch.zeros_like(self.offset)) + self.offset)
        return merged.requires_grad_(False)

    def quantize_reference(self) -> None:
        """Keep the frozen reference in int8: per-concept scales on CPU, bitsandbytes' LLM.int8() on GPU.
        `scripts/bench_quantized_kl.py` measures the KL it preserves on the real PCD."""
        if self.reference_head.weight.is_cuda:
            self.reference_head = _bnb_int8(self.reference_head)
        else:
            self.reference_head = Int8Linear(self.reference_head)


class Int8Linear(nn.Module):
    """A frozen linear layer stored as int8 with one scale per output row (per concept); inputs stay float.

    torch's dynamic int8 (one scale for the whole matrix, activations quantized too) moved the KL on the
    real PCD by 0.3 nats per explanation: pretrained logits differ by hundredths, below its rounding.
    One scale per concept keeps each row's relative error at 1/254 of its largest weight.
    """

    def __init__(self, linear: nn.Linear):
        super().__init__()
        weight = linear.weight.detach().float()
        scale = weight.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127
        self.register_buffer("weight_int8", torch.round(weight / scale).to(torch.int8))
        self.register_buffer("scale", scale)
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().float().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x.float(), self.weight_int8.float() * self.scale, self.bias)


def _bnb_int8(linear: nn.Linear) -> nn.Module:
    try:
        import bitsandbytes as bnb
    except ImportError as err:
        raise ImportError("kl.quantize_reference on GPU needs bitsandbytes: pip install 'pcd-rl[quant]'") from err
    device = linear.weight.device
    quantized = bnb.nn.Linear8bitLt(linear.in_features, linear.out_features, bias=linear.bias is not None,
                                    has_fp16_weights=False, threshold=6.0)
    quantized.weight = bnb.nn.Int8Params(linear.weight.detach().half().cpu(), requires_grad=False,
                                         has_fp16_weights=False)
    if linear.bias is not None:
        quantized.bias = nn.Parameter(linear.bias.detach().half().cpu(), requires_grad=False)
    return quantized.to(device)  # bitsandbytes quantizes the weights as they move to the GPU


def kl_estimate(logprob: torch.Tensor, reference_logprob: torch.Tensor, kind: str = "k3") -> torch.Tensor:
    """Per-sample KL(π‖π_ref) estimators on samples from π: k1 = log π − log π_ref; k3 = r − 1 − log r,
    r = π_ref/π (unbiased and always ≥ 0)."""
    log_ratio = reference_logprob - logprob
    if kind == "k1":
        return -log_ratio
    if kind == "k3":
        return torch.exp(log_ratio) - 1 - log_ratio
    raise ValueError(f"kl estimator '{kind}' is unknown; choose k1 or k3")
