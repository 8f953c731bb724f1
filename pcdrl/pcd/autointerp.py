"""Auto-interp scoring: can a simulator LM, reading only a label, tell where the concept fires?

For each concept, the simulator sees held-out contexts: the concept's strongest firings and
random contexts where it is silent. Two ways to ask it, both calibrated by subtracting the
same prompt without a description (so a context that is easy anyway earns nothing):

- ``likelihood`` (default): log p(marked token | description, text before it). A label helps
  exactly when it makes the words the concept fires on more predictable: a pointwise mutual
  information, robust for small LMs that follow instructions poorly.
- ``yes_no``: log p(Yes) - log p(No) for "does the marked word match the description?".

The score is detection AUROC per concept (and the Pearson correlation with the true
activation), averaged over concepts.

Output side: the same held-out positions, scored on the token S writes next (greedy) instead of the
token where the concept fires, always by likelihood: does the label make S's next word more
predictable where the concept fires than where it is silent?
"""
from __future__ import annotations

import random

SIMULATOR_TEMPLATE = (
    "A feature of a language model is described as: {label}\n"
    "Text: {context}\n"
    "Question: does the word in [[double brackets]] match the description? Answer Yes or No.\n"
    "Answer:"
)
NO_LABEL = "(no description given)"
LIKELIHOOD_TEMPLATE = "Words described as: {label}\nText: {before}"


def simulator_prompt(label: str, context: str) -> str:
    return SIMULATOR_TEMPLATE.format(label=label, context=context)


def likelihood_prompt(label: str, before: str) -> str:
    return LIKELIHOOD_TEMPLATE.format(label=label, before=before)


def derangement(n: int, seed: int) -> list[int]:
    """A permutation with no fixed point: every concept gets another concept's label."""
    if n < 2:
        raise ValueError("the shuffled-label control needs at least 2 labelled concepts")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return [order[(order.index(i) + 1) % n] for i in range(n)]
