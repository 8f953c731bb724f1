"""`pcdrl eval` on formula runs (policy.kind=formulas): the formula each row shows per held-out item, and their stats.

    held-out items ─► S's activations, read once ─► pooled rows, and each item's fired vector (the truth definition)
    pretrained: the warm start's target, the greedy conjunction of fired labelled concepts (`greedy_conjunction`)
    rl:         each run's formula policy from its checkpoint, decoding greedily (temperature 0), masked as in training
    random:     the concept runs' random draw of labelled concepts, as many as the conjunctions hold, joined by AND
                (not checked for truth: it is the "any labels at all" baseline)

The judge reads `to_text(formula, labels)` under the template's formula header, as in training
(`judge_eval.explanation_for`); the label controls print the same trees with shuffled or paraphrased labels.
An item on which no labelled concept fired has no true conjunction, hence no pretrained row: it is left out of
every row (rows are compared on the same items) and its id is listed in the summary.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from pcdrl.behaviors.encoded import encode_items, load_labelled_pcd
from pcdrl.evaluation.eval_runs import RunRef
from pcdrl.evaluation.judge_eval import random_concept_sets
from pcdrl.explanations import And, Formula, FormulaError, Literal, concepts, holds_each, size, to_id_text, to_text
from pcdrl.rl.formula_policy import greedy_conjunction
from pcdrl.rl.formula_rollout import (FormulaSetup, conjunction_size, greedy_formulas, items_fired,
                                      load_formula_policy)

NOTES = (
    "fidelity control skipped: it scores concept labels under W_enc before and after RL, and a formula policy "
    "leaves W_enc frozen",
)


@dataclass
class FormulaSets:
    """Each row's formula per kept held-out item (the rows of a concept run hold concept ids instead)."""

    items: list[dict]
    """The held-out items scored: those with at least one fired labelled concept."""
    pretrained: list[Formula]
    rl: list[list[Formula]]
    """One list per run (seed)."""
    random: list[Formula]
    labels: dict[int, str]
    fired: torch.Tensor
    """[N, n_concepts] bool: the kept items' fired vectors."""
    skipped: list[str]
    """Ids of held-out items left out: no labelled concept fired on them."""
    activations: list[torch.Tensor] = field(default_factory=list)
    """S's residual at each kept item's read positions ([P_i, d], CPU), as read once: the examples' evidence
    (formula_evidence.py) re-encodes from these instead of running S again."""
    pcd: object = None
    """The `PCD` they were read with: its encoder and tokenizer, for the examples' evidence."""
    pooled: torch.Tensor | None = None
    """[N, d] the kept items' pooled activations, and `allowed` the labelled concepts: what the matched
    concept-set row's policies read (matched_rows.py)."""
    allowed: torch.Tensor | None = None

    def concept_ids(self) -> tuple[list[list[int]], list[list[list[int]]]]:
        """The concepts each pretrained and rl formula names (for the concept-usage counts and plot)."""
        return ([sorted(concepts(f)) for f in self.pretrained],
                [[sorted(concepts(f)) for f in run] for run in self.rl])


def _conjunction(ids: list[int]) -> Formula:
    return Literal(ids[0]) if len(ids) == 1 else And(tuple(Literal(c) for c in ids))


def formula_sets(runs: list[RunRef], items: list[dict], seed: int) -> FormulaSets:
    """Read S once for all items; the warm start's targets, each run's greedy formulas and the random draw."""
    config = runs[0].config
    labelled = load_labelled_pcd(config.pcd)
    encoded = encode_items(labelled, items, config.data)
    fired, allowed, pooled = items_fired(labelled.pcd, encoded.activations), labelled.allowed.cpu(), encoded.pooled
    policies = [load_formula_policy(run.config, labelled.pcd.encoder, pooled.shape[1], run.checkpoint) for run in runs]
    k = conjunction_size(config)
    with torch.no_grad():  # the concept head is the frozen W_enc: the warm start's ranking in every run
        logits = policies[0].concept_head(pooled).cpu()
    pretrained, keep = [], []
    for i in range(len(items)):
        try:
            pretrained.append(greedy_conjunction(logits[i], fired[i], allowed, k))
            keep.append(i)
        except FormulaError:
            pass
    if not keep:
        raise ValueError(f"no labelled concept fired on any of the {len(items)} held-out items, so no formula row "
                         f"has a true conjunction to show; check the PCD's labels ({config.pcd})")
    kept = set(keep)
    skipped = [items[i]["id"] for i in range(len(items)) if i not in kept]
    items, pooled, fired = [items[i] for i in keep], pooled[keep], fired[keep]
    rl = []
    for run, policy in zip(runs, policies):
        setup = FormulaSetup(policy, policy, run.config, allowed, fired, fired, {})  # what greedy decoding reads
        rl.append(greedy_formulas(policy, setup, pooled, fired))
    drawn = [_conjunction(ids) for ids in random_concept_sets(items, labelled.labels, k, seed)]
    return FormulaSets(items, pretrained, rl, drawn, labelled.labels, fired, skipped,
                       activations=[encoded.activations[i] for i in keep], pcd=labelled.pcd, pooled=pooled,
                       allowed=labelled.allowed)


def formula_entry(formula: Formula, labels: dict[int, str]) -> dict:
    """What one row shows for one item: the formula (id form, for the journal's readers), the text the judge reads
    (`to_text` with these labels) and its concepts' labels."""
    ids = sorted(concepts(formula))
    return {"formula": to_id_text(formula), "text": to_text(formula, labels), "concepts": ids,
            "labels": [labels[c] for c in ids]}


def formula_stats(sets: FormulaSets, truth: str) -> dict:
    """Mean size (literals) and share true on the kept held-out items, per row (rl: over every seed)."""
    rows = {"pretrained": [sets.pretrained], "rl": sets.rl, "random": [sets.random]}
    stats = {"truth": truth, "n_items": len(sets.items), "skipped_items": sets.skipped,
             "mean_size": {}, "true_share": {}}
    for name, runs in rows.items():
        formulas = [f for run in runs for f in run]
        true = torch.cat([holds_each(run, sets.fired) for run in runs])
        stats["mean_size"][name] = round(sum(map(size, formulas)) / len(formulas), 4)
        stats["true_share"][name] = round(true.float().mean().item(), 4)
    stats["notes"] = list(NOTES)
    return stats
