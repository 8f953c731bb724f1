"""The formula policy: a small GRU that writes a formula token by token from an item's pooled activation.

It reads the same pooled vector as the concept-set policy (`pcdrl.pcd.concepts.pooled_inputs`): the question
never reaches it. Its tokens are those of `pcdrl.explanations.grammar` (concepts, NOT, AND, OR, `)`, END), and
every step is masked by the grammar state, so each sample is a well-formed formula within the `FormulaConfig`,
over allowed concepts, and, given the items' `fired` vectors, true on its item.

One step reads the previous token (every concept shares one embedding), the kinds of token the grammar allows
now, and the rank of the best new concept still allowed. A concept's logit is gain(GRU state) x its item score,
plus a per-concept offset. The item score comes from a concept head: a frozen copy of the PCD's W_enc when given
one, plus a low-rank update, as the concept-set policy's LoRA, so the warm start begins from the pretrained
ranking. The policy writes a concept at most once unless the grammar leaves nothing else (`allow_repeats`).
About 75k trainable parameters for a 576-wide model and 1,000 concepts: it trains on 2 CPU cores.

- `sample`: formulas, with per-token log-probs (temperature 0 is greedy decoding);
- `log_probs` / `evaluate_tokens`: the same per-token log-probs recomputed from the tokens (masks replayed by
  `grammar.walk`), with the value head's estimate for each prefix, for token-level PPO with GAE;
- `greedy_conjunction` and `warm_start`: teach the policy to write today's greedy concept set as a conjunction,
  keeping only the concepts that fired, so RL starts where concept sets are; `frozen_copy` of the warm-started
  policy is the KL reference.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from pcdrl.explanations import And, Formula, FormulaConfig, FormulaError, Literal
from pcdrl.explanations.grammar import (KINDS, OPERATOR_NAMES, PAD, Limits, Vocab, advance, check_start, classes, concept_kinds,
                                        decode, encode, kind_of, max_length, start, token_mask, walk)


RANK_STEPS = tuple(range(1, 17)) + (24, 32, 48, 64, 128)
"""Thresholds of the rank feature (`FormulaPolicy.best_rank`): every k up to 16, then coarser."""


@dataclass
class FormulaPolicyConfig:
    """Sizes of the formula policy's network."""

    hidden: int = 64
    """GRU state size."""
    embed: int = 32
    """Token embedding size."""
    concept_rank: int = 8
    """Rank of the trainable update to the concept head (a frozen copy of W_enc), as the concept-set policy's
    LoRA rank."""
    allow_repeats: bool = False
    """Let a concept appear twice in one formula. Off: a concept already written is masked while anything else
    is allowed (a repeat is redundant in all but XOR-like formulas, and the warm start kept writing the top
    concept again instead of stopping)."""

    def __post_init__(self) -> None:
        from pcdrl.runtime.config_loader import at_least

        at_least("formula_policy.hidden", self.hidden, 1)
        at_least("formula_policy.embed", self.embed, 1)
        at_least("formula_policy.concept_rank", self.concept_rank, 1)


class FormulaPolicy(nn.Module):
    def __init__(self, d_model: int, n_concepts: int, config: FormulaPolicyConfig | None = None,
                 concept_head: nn.Linear | None = None):
        super().__init__()
        self.config = config = config or FormulaPolicyConfig()
        self.vocab = Vocab(n_concepts)
        self.initial = nn.Linear(d_model, config.hidden)
        # Every concept shares one embedding (then NOT, AND, OR, ')', END, "begin"): with one row per concept the
        # warm start memorised which concepts each training item continues with, instead of learning to stop.
        self.embed = nn.Embedding(len(OPERATOR_NAMES) + 2, config.embed)
        self.cell = nn.GRUCell(config.embed + len(KINDS) + len(RANK_STEPS), config.hidden)
        self.readout = nn.Linear(config.hidden, len(OPERATOR_NAMES))  # logits of NOT, AND, OR, ')', END
        self.value_head = nn.Linear(config.hidden, 1)
        # The item scores: the PCD's W_enc (frozen) plus a low-rank update, as the concept-set policy's LoRA.
        self.concept_head = copy.deepcopy(concept_head) if concept_head is not None else nn.Linear(d_model, n_concepts)
        self.concept_head.requires_grad_(concept_head is None)
        if self.concept_head.out_features != n_concepts:
            raise ValueError(f"concept_head has {self.concept_head.out_features} outputs for {n_concepts} concepts")
        self.concept_down = nn.Linear(d_model, config.concept_rank, bias=False)
        self.concept_up = nn.Linear(config.concept_rank, n_concepts, bias=False)
        nn.init.zeros_(self.concept_up.weight)
        # A concept's logit is gain(h) * its item score + a per-concept offset: the GRU decides how sharply (and in
        # which direction, e.g. under NOT) to follow the item scores, not which concept to name. A free readout
        # per concept memorised the warm-start items instead (all 200 training items reproduced, none of 100
        # held-out ones). The gain starts at 3: temperature 0.3 in units of the scores' spread, the concept-set
        # policy's default.
        self.gain = nn.Linear(config.hidden, 1)
        with torch.no_grad():
            self.gain.weight.zero_()
            self.gain.bias.fill_(3.0)
        self.offset = nn.Parameter(torch.zeros(n_concepts))
        self.register_buffer("logit_scale", torch.ones(()))

    @property
    def begin(self) -> int:
        return self.vocab.size

    @torch.no_grad()
    def fit_logit_scale(self, pooled: torch.Tensor, allowed: torch.Tensor | None = None) -> None:
        """Divide the concept head's scores by their mean spread on these items, as `ConceptSetPolicy` does: a
        pretrained W_enc's pooled logits differ by hundredths, too little to move a softmax."""
        scores = self.concept_head(pooled).float()
        scores = scores[:, allowed] if allowed is not None else scores
        self.logit_scale.fill_(scores.std(dim=1).mean().clamp(min=1e-6).item())

    def item_scores(self, pooled: torch.Tensor) -> torch.Tensor:
        """[N, n_concepts]: each concept's item-level score (the concept head, scaled)."""
        return (self.concept_head(pooled) + self.concept_up(self.concept_down(pooled))).float() / self.logit_scale

    def trainable_parameters(self) -> list[nn.Parameter]:
        """What RL trains: every parameter but the frozen concept head (the value head gets no gradient in GRPO)."""
        return [p for p in self.parameters() if p.requires_grad]

    def concept_head_parameters(self) -> list[nn.Parameter]:
        """The parameters that rank concepts per item: the concept head, its low-rank update and the per-concept
        offsets (which the warm start leaves alone by default)."""
        return [p for m in (self.concept_head, self.concept_down, self.concept_up) for p in m.parameters()] + \
            [self.offset]

    @staticmethod
    def best_rank(scores: torch.Tensor, mask: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """[N, len(RANK_STEPS)]: whether the best new concept the mask allows now has at least 1, 2, ... allowed
        concepts scoring above it (its rank, as a thermometer). The greedy set stops at a rank (k), so this is
        what the decision to write `)` needs: one bit per candidate k. A feature, not a path for gradients."""
        scores = scores.detach()
        best = scores.masked_fill(~mask, float("-inf")).amax(-1, keepdim=True)
        above = ((scores > best) & allowed).sum(-1, keepdim=True)
        return (above >= torch.tensor(RANK_STEPS, device=scores.device)).float()

    def mask(self, grammar_mask: torch.Tensor, used: torch.Tensor) -> torch.Tensor:
        """bool [N, vocab]: the grammar's mask, less the concepts already written (``used`` bool [N, n]) while
        any other token remains (never a dead end: what is left is allowed by the grammar)."""
        if self.config.allow_repeats:
            return grammar_mask
        n = self.vocab.n_concepts
        fresh = torch.cat([grammar_mask[:, :n] & ~used, grammar_mask[:, n:]], dim=1)
        return torch.where(fresh.any(-1, keepdim=True), fresh, grammar_mask)

    def step(self, hidden, previous, kinds, mask, scores, allowed):
        """One token: (new hidden [N, H], unmasked logits [N, vocab]). ``kinds`` [N, 7] and ``mask`` [N, vocab]
        are what may come now (`mask`); ``allowed`` [N, n] the items' allowed concepts."""
        n = self.vocab.n_concepts
        kind = torch.where(previous < n, torch.zeros_like(previous), previous - n + 1)
        x = torch.cat([self.embed(kind), kinds.float(), self.best_rank(scores, mask[:, :n], allowed)], dim=1)
        hidden = self.cell(x, hidden)
        concept_logits = self.gain(hidden) * scores + self.offset
        return hidden, torch.cat([concept_logits, self.readout(hidden)], dim=1)


@dataclass
class FormulaSamples:
    tokens: torch.Tensor
    """[N, T] token ids, PAD (-1) after END."""
    logprobs: torch.Tensor
    """[N, T] log-prob of each token under the sampling distribution (0 after END; 0 for forced tokens)."""
    mask: torch.Tensor
    """[N, T] True up to and including END."""
    formulas: list[Formula]
    """The decoded formulas."""


@dataclass
class TokenOutputs:
    logprobs: torch.Tensor
    """[N, T] per-token log-probs (0 on padding)."""
    values: torch.Tensor
    """[N, T] the value head's estimate of each prefix, before its token (GAE needs [N, T+1]: append zeros)."""
    entropy: torch.Tensor
    """[N, T] entropy of each step's masked distribution (0 on padding and for forced tokens)."""
    mask: torch.Tensor
    """[N, T] True up to and including END."""


def sample(policy: FormulaPolicy, pooled: torch.Tensor, cfg: FormulaConfig, allowed: torch.Tensor | None = None,
           fired: torch.Tensor | None = None, temperature: float = 1.0,
           generator: torch.Generator | None = None) -> FormulaSamples:
    """One formula per row of ``pooled`` [N, d]. ``allowed``: bool [n] or [N, n] (labelled concepts);
    ``fired``: bool [N, n] turns the truth mask on. Temperature 0 decodes greedily (log-probs then at
    temperature 1). Deterministic given ``generator``."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 is greedy), got {temperature}")
    n, device = policy.vocab.n_concepts, pooled.device
    allowed, fired = _item_masks(pooled.shape[0], n, allowed, fired)
    limits, has = _limits_and_has(cfg, allowed, fired)
    allowed_d = allowed.to(device)
    states = [start() for _ in range(pooled.shape[0])]
    hidden, scores = torch.tanh(policy.initial(pooled)), policy.item_scores(pooled)
    previous = torch.full((pooled.shape[0],), policy.begin, dtype=torch.long, device=device)
    used = torch.zeros(scores.shape, dtype=torch.bool, device=device)
    tokens, logprobs = [], []
    with torch.no_grad():
        for _ in range(max_length(cfg)):
            alive = torch.tensor([not s.ended for s in states])
            if not alive.any():
                break
            kinds = torch.tensor([classes(s, limits, *h) if not s.ended else _END_ONLY for s, h in zip(states, has)])
            mask = policy.mask(token_mask(kinds, allowed, fired).to(device), used)
            hidden, logits = policy.step(hidden, previous, kinds.to(device), mask, scores, allowed_d)
            masked = logits.masked_fill(~mask, float("-inf"))
            if temperature == 0:
                chosen = masked.argmax(-1)
                logp = torch.log_softmax(masked, -1)
            else:
                uniform = torch.rand(masked.shape, generator=generator, dtype=torch.float64).clamp_(1e-12, 1 - 1e-12)
                chosen = (masked.double() / temperature - torch.log(-torch.log(uniform)).to(device)).argmax(-1)
                logp = torch.log_softmax(masked / temperature, -1)
            step_logp = logp.gather(1, chosen.unsqueeze(1)).squeeze(1)
            alive = alive.to(device)
            tokens.append(torch.where(alive, chosen, torch.full_like(chosen, PAD)))
            logprobs.append(torch.where(alive, step_logp, torch.zeros_like(step_logp)))
            for row, token in enumerate(chosen.tolist()):
                if not states[row].ended:
                    states[row] = advance(states[row], kind_of(token, policy.vocab, _row(fired, row)))
            is_concept = alive & (chosen < n)
            used[is_concept, chosen[is_concept]] = True
            previous = chosen
    tokens, logprobs = torch.stack(tokens, 1), torch.stack(logprobs, 1)
    return FormulaSamples(tokens, logprobs, tokens != PAD, [decode(row, policy.vocab) for row in tokens.tolist()])


def evaluate_tokens(policy: FormulaPolicy, pooled: torch.Tensor, tokens: torch.Tensor, cfg: FormulaConfig,
                    allowed: torch.Tensor | None = None, fired: torch.Tensor | None = None,
                    temperature: float = 1.0) -> TokenOutputs:
    """Per-token log-probs, prefix values and entropies of given sequences [N, T] (PAD after END), with
    gradients. The masks are recomputed from the tokens exactly as `sample` built them, so the log-probs of a
    sampled batch equal those `sample` returned. Temperature 0 is read as 1, as in `sample`."""
    temperature = temperature or 1.0
    n, device = policy.vocab.n_concepts, pooled.device
    allowed, fired = _item_masks(pooled.shape[0], n, allowed, fired)
    rows = [walk(row, policy.vocab, cfg, allowed[i], _row(fired, i)) for i, row in enumerate(tokens.tolist())]
    allowed_d = allowed.to(device)
    valid = tokens != PAD
    hidden, scores = torch.tanh(policy.initial(pooled)), policy.item_scores(pooled)
    previous = torch.full((pooled.shape[0],), policy.begin, dtype=torch.long, device=device)
    used = torch.zeros(scores.shape, dtype=torch.bool, device=device)
    logprobs, values, entropies = [], [], []
    for t in range(tokens.shape[1]):
        kinds = torch.tensor([r[t] if t < len(r) else _END_ONLY for r in rows])
        mask = policy.mask(token_mask(kinds, allowed, fired).to(device), used)
        # V(prefix before token t), from the state `hidden` holds. Detached: the value loss trains the head only,
        # so the critic cannot move the policy the clip is meant to bound.
        values.append(policy.value_head(hidden.detach()).squeeze(-1))
        hidden, logits = policy.step(hidden, previous, kinds.to(device), mask, scores, allowed_d)
        logp = torch.log_softmax(logits.masked_fill(~mask, float("-inf")) / temperature, -1)
        current = tokens[:, t].clamp(min=0).masked_fill(~valid[:, t], policy.vocab.END)
        zero = torch.zeros(len(current), device=device)
        refused = valid[:, t] & ~mask.gather(1, current.unsqueeze(1)).squeeze(1)
        if refused.any():
            row = int(refused.nonzero()[0])
            raise FormulaError(f"row {row} repeats concept c{int(current[row])} at position {t}, which the policy "
                               f"does not write while anything else is allowed (FormulaPolicyConfig.allow_repeats)")
        logprobs.append(torch.where(valid[:, t], logp.gather(1, current.unsqueeze(1)).squeeze(1), zero))
        plogp = torch.where(mask, logp.exp() * logp, torch.zeros_like(logp))
        entropies.append(torch.where(valid[:, t], -plogp.sum(-1), zero))
        is_concept = valid[:, t] & (current < n)
        used[is_concept, current[is_concept]] = True
        previous = current
    return TokenOutputs(torch.stack(logprobs, 1), torch.stack(values, 1), torch.stack(entropies, 1), valid)


def log_probs(policy: FormulaPolicy, pooled: torch.Tensor, tokens: torch.Tensor, cfg: FormulaConfig,
              allowed: torch.Tensor | None = None, fired: torch.Tensor | None = None,
              temperature: float = 1.0) -> torch.Tensor:
    """[N, T] per-token log-probs of ``tokens`` under the policy (0 on padding), for the PPO/GRPO update."""
    return evaluate_tokens(policy, pooled, tokens, cfg, allowed, fired, temperature).logprobs


# --- warm start -------------------------------------------------------------------------------------------------

def greedy_conjunction(pooled_logits_row: torch.Tensor, fired_row: torch.Tensor, allowed: torch.Tensor | None,
                       k: int) -> Formula:
    """Today's greedy concept set as a formula that is true on the item: the k highest pooled logits among the
    allowed concepts, keeping only those that fired, in rank order, joined by AND. If none of them fired, the
    highest-pooled allowed concept that fired. (The pooled top-k need not have fired at any read position;
    docs/formulas.md, "Truth against the activations".)"""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    usable = torch.ones_like(fired_row) if allowed is None else allowed
    logits = pooled_logits_row.detach().float().masked_fill(~usable, float("-inf"))
    top = logits.topk(min(k, int(usable.sum()))).indices.tolist()
    kept = [c for c in top if bool(fired_row[c])]
    if not kept:
        candidates = logits.masked_fill(~fired_row, float("-inf"))
        if not torch.isfinite(candidates).any():
            raise FormulaError("no allowed concept fired on this item, so no conjunction is true on it; "
                               "leave the item out of the warm start")
        kept = [int(candidates.argmax())]
    return Literal(kept[0]) if len(kept) == 1 else And(tuple(Literal(c) for c in kept))


def warm_start(policy: FormulaPolicy, pooled_rows: torch.Tensor, target_formulas: list[Formula],
               cfg: FormulaConfig, steps: int = 150, lr: float = 3e-2, allowed: torch.Tensor | None = None,
               fired: torch.Tensor | None = None, train_concept_head: bool = False) -> list[float]:
    """Teacher-forced training (masked cross-entropy per token) until the policy writes ``target_formulas[i]``
    for row i; returns the loss at each step. Each target must pass the masks (fit ``cfg``, use allowed concepts,
    be true on its item when ``fired`` is given): a target that does not is refused, naming its row.

    What ranks concepts per item (`concept_head_parameters`) stays fixed unless ``train_concept_head``: the
    greedy set already follows it, and training it lets the policy memorise its items. With a random PCD of 300
    concepts (k=8), 150 steps on 200 items reproduced all 200 and 90 of 100 held-out items with it fixed, and
    196 and 0 with it trained."""
    if len(target_formulas) != pooled_rows.shape[0]:
        raise ValueError(f"{len(target_formulas)} target formulas for {pooled_rows.shape[0]} items")
    sequences = [encode(f, policy.vocab) for f in target_formulas]
    masks = _item_masks(pooled_rows.shape[0], policy.vocab.n_concepts, allowed, fired)
    for i, seq in enumerate(sequences):
        try:
            walk(seq, policy.vocab, cfg, masks[0][i], _row(masks[1], i))
        except FormulaError as err:
            raise FormulaError(f"warm-start target {i} cannot be sampled: {err}") from err
    width = max(map(len, sequences))
    tokens = torch.tensor([s + [PAD] * (width - len(s)) for s in sequences], device=pooled_rows.device)
    skip = set() if train_concept_head else {id(p) for p in policy.concept_head_parameters()}
    optimizer = torch.optim.Adam([p for p in policy.parameters() if p.requires_grad and id(p) not in skip], lr=lr)
    losses = []
    for _ in range(steps):
        out = evaluate_tokens(policy, pooled_rows, tokens, cfg, allowed, fired)
        loss = -(out.logprobs.sum() / out.mask.sum())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def frozen_copy(policy: FormulaPolicy) -> FormulaPolicy:
    """A copy that never trains: the warm-started policy as the KL reference."""
    frozen = copy.deepcopy(policy)
    for p in frozen.parameters():
        p.requires_grad_(False)
    return frozen.eval()


# --- helpers ----------------------------------------------------------------------------------------------------

_END_ONLY = (False,) * 6 + (True,)  # rows past END: a harmless distribution, never read


def _item_masks(n_items: int, n: int, allowed, fired):
    allowed = torch.ones(n, dtype=torch.bool) if allowed is None else allowed.bool().cpu()
    if allowed.shape[-1] != n:
        raise ValueError(f"allowed has {allowed.shape[-1]} concepts, the policy {n}")
    allowed = allowed.expand(n_items, n) if allowed.dim() == 1 else allowed
    if fired is not None:
        fired = fired.bool().cpu()
        if tuple(fired.shape) != (n_items, n):
            raise ValueError(f"fired must be bool [{n_items}, {n}] (one row per item), got {tuple(fired.shape)}")
    return allowed, fired


def _row(fired, i):
    return None if fired is None else fired[i]


def _limits_and_has(cfg: FormulaConfig, allowed: torch.Tensor, fired):
    limits = Limits.of(cfg)
    lit_true, lit_false = concept_kinds(allowed, fired)
    has = [(bool(t), bool(f), fired is not None) for t, f in zip(lit_true.any(-1), lit_false.any(-1))]
    for i, h in enumerate(has):
        try:
            check_start(limits, *h)
        except FormulaError as err:
            raise FormulaError(f"item {i}: {err}") from err
    return limits, has
