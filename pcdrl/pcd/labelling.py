"""`pcdrl label CHECKPOINT`: write a human-readable label per concept and score it (auto-interp).

    held-out windows ─► S ─► encoder ─► top-activating contexts per concept
        even windows ─► explainer LM (or token statistics) ─► label
        even windows ─► S's next-token predictions where it fires ─► output tokens (label.kind, docs/labels.md)
        odd windows  ─► simulator LM reads only the label ─► detection AUROC, vs shuffled labels
                        (input side: the token where it fires; output side: the token S writes next)
"""
from __future__ import annotations

import random
import time
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.console import Console
from torch import nn

from pcdrl.runtime.config_loader import from_dict
from pcdrl.runtime.progress import progress_bar
from pcdrl.runtime.rundir import RunDir
from pcdrl.models import load_model, load_tokenizer
from pcdrl.models.scoring import continuation_and_next_logprobs, continuation_logprobs, generate_greedy, next_token_logprobs
from pcdrl.pcd.autointerp import (
    NO_LABEL, derangement, likelihood_prompt, simulator_prompt,
)
from pcdrl.pcd.checkpoint import write_concepts
from pcdrl.pcd.config import CorpusConfig, WindowConfig
from pcdrl.pcd.corpus import build_windows
from pcdrl.pcd.examples import (
    Firing, firings_by_concept, render_context, split_at, split_by_window, token_statistics_label, top_firing_tokens,
)
from pcdrl.pcd.labels_config import LabelConfig, LabelRunConfig
from pcdrl.pcd.model import PCD
from pcdrl.pcd.next_tokens import OUTPUT_TOP, NextTokens, decoder_next_tokens, subject_next_tokens
from pcdrl.pcd.output_labels import distinct, output_phrase, render_label, token_text
from pcdrl.pcd.stats import auroc, bootstrap_ci, pearson

console = Console(stderr=True)

EXPLAINER_PROMPT = (
    "Below are short text excerpts. In each one, a word is marked with [[double brackets]].\n"
    "{examples}\n"
    "In three to six words, what do the marked words have in common?"
)


def label_checkpoint(checkpoint: str | Path, cfg: LabelRunConfig, out: str | Path) -> dict:
    started = time.time()
    label_cfg = cfg.label
    if label_cfg.threads:
        torch.set_num_threads(label_cfg.threads)
    run = RunDir(out, cfg, command=f"pcdrl label {checkpoint}")
    pcd = PCD.from_pretrained(checkpoint)
    pcd.eval()
    windows = labelling_windows(pcd, label_cfg)
    firings = _encode_windows(pcd, windows, label_cfg)

    selected = _select_concepts(firings, label_cfg)
    if len(selected) < 2:
        raise ValueError(
            f"only {len(selected)} concepts fire at least {label_cfg.min_examples} times on each half of the "
            f"labelling text; raise label.label_windows or lower label.min_examples"
        )
    unscored = _unscored_concepts(firings, set(selected)) if label_cfg.label_all else []
    nexts = subject_next_tokens(pcd, windows, pcd.training_data["window"]["prefix_len"])
    sides = _label_sides(pcd, windows, firings, selected + unscored, nexts, label_cfg)
    lm_labels = _lm_labels(pcd, windows, firings, selected, label_cfg) if label_cfg.labeller == "lm" else {}
    for concept, text in lm_labels.items():
        sides[concept].update(input_label=text, label=_render(label_cfg, text, sides[concept], lm=True))
    labels = {c: sides[c]["label"] for c in selected}

    scores = score_labels(pcd, windows, firings, selected, labels, label_cfg, next_tokens=nexts)
    concepts = _concepts_json(pcd, windows, firings, selected, sides, scores, label_cfg)
    if label_cfg.label_all:
        concepts["concepts"] += _unscored_entries(pcd, windows, firings, unscored, sides, label_cfg)
        concepts["concepts"].sort(key=lambda entry: entry["id"])
    write_concepts(checkpoint, concepts)
    run.log({"stage": "scored", "concepts": len(selected)})
    summary = _summary(scores, selected, firings, pcd, label_cfg, time.time() - started)
    run.write_summary(summary)
    run.close()
    return summary


# --- text ------------------------------------------------------------------------------------


def labelling_windows(pcd: PCD, cfg: LabelConfig) -> torch.Tensor:
    """Windows of the pretraining corpus that pretraining never trained on, as prefix+middle token rows."""
    data = pcd.training_data
    if not data:
        raise ValueError("the checkpoint has no training_data in config.json; re-save it with this version of pcdrl pretrain")
    corpus = from_dict(CorpusConfig, {**data["corpus"], "max_windows": max(cfg.label_windows, data["corpus"]["max_windows"])})
    window = from_dict(WindowConfig, data["window"])
    seen = build_windows(from_dict(CorpusConfig, data["corpus"]), window, pcd.tokenizer, seed=data["seed"]).train
    candidates = build_windows(corpus, window, pcd.tokenizer, seed=data["seed"] + 7919)
    rows = torch.cat([candidates.heldout, candidates.train])
    seen_rows = {tuple(r) for r in seen.tolist()}
    kept = [r for r in rows.tolist() if tuple(r) not in seen_rows][: cfg.label_windows]
    console.log(f"labelling on {len(kept)} windows unseen in pretraining")
    return torch.tensor(kept, dtype=torch.long)[:, : window.prefix_len + window.middle_len]


def _encode_windows(pcd: PCD, windows: torch.Tensor, cfg: LabelConfig) -> dict[int, list[Firing]]:
    return read_and_encode(pcd, windows, [pcd.encoder.W_enc])[0]


@torch.no_grad()
def read_and_encode(pcd: PCD, windows: torch.Tensor, linears: list[nn.Linear]) -> list[dict[int, list[Firing]]]:
    """Firings of every concept under each linear, with k = pcd.encoder.k: TopK over its pre-activations on the
    normalised activations, as `PCD.encode` does. S is read once per batch, whatever the number of linears:
    reading S is the expensive part."""
    prefix = pcd.training_data["window"]["prefix_len"]
    indices, values = [[] for _ in linears], [[] for _ in linears]
    with progress_bar() as bar:
        task = bar.add_task("encoding", total=len(windows), status="")
        for start in range(0, len(windows), 32):
            acts = pcd.read_activations(windows[start : start + 32], slice(prefix, windows.shape[1]))
            normalised = pcd.encoder.normalize(acts.to(pcd.device))
            for i, linear in enumerate(linears):
                bias = None if linear.bias is None else linear.bias.to(pcd.device)
                top = F.linear(normalised, linear.weight.to(pcd.device), bias).topk(pcd.encoder.k, dim=-1)
                indices[i].append(top.indices.cpu())
                values[i].append(top.values.cpu())
            bar.advance(task, len(acts))
    return [firings_by_concept(torch.cat(i), torch.cat(v), offset=prefix) for i, v in zip(indices, values)]


def _select_concepts(firings: dict[int, list[Firing]], cfg: LabelConfig) -> list[int]:
    eligible = sorted(
        c for c, fs in firings.items()
        if len(split_by_window(fs, 0)) >= cfg.min_examples and len(split_by_window(fs, 1)) >= cfg.min_examples
    )
    rng = random.Random(cfg.seed)
    return sorted(rng.sample(eligible, min(cfg.max_concepts, len(eligible))))


# --- labels ----------------------------------------------------------------------------------


def _unscored_concepts(firings: dict[int, list[Firing]], scored: set[int]) -> list[int]:
    """Concepts outside the scored sample that fire at least twice on the explaining half."""
    return [c for c, fs in sorted(firings.items()) if c not in scored and len(split_by_window(fs, 0)) >= 2]


def _label_sides(pcd: PCD, windows, firings, concepts: list[int], nexts: NextTokens, cfg: LabelConfig) -> dict[int, dict]:
    """Per concept, from the explaining half: where it fires, what S predicts next there, what the decoder
    reads from it alone, and the token-statistics label of ``cfg.kind`` built from them."""
    explain = {c: split_by_window(firings[c], 0) for c in concepts}
    medians = [torch.tensor([f.value for f in explain[c]]).median().item() for c in concepts]
    decoded = decoder_next_tokens(pcd, concepts, medians)
    sides = {}
    for concept in concepts:
        outputs = nexts.output_tokens(explain[concept], top=OUTPUT_TOP, min_p=cfg.output_min_p)
        side = {
            "input_tokens": top_firing_tokens(pcd.tokenizer, windows, explain[concept], max(cfg.words, cfg.both_words)),
            "input_label": token_statistics_label(pcd.tokenizer, windows, explain[concept], cfg.words),
            "output_words": distinct([token_text(pcd.tokenizer.decode([o.token_id])) for o in outputs]),
            "output_tokens": [{"token": pcd.tokenizer.decode([o.token_id]), "p_fires": round(o.p_fires, 6),
                               "p_base": round(o.p_base, 6), "lift": round(o.lift, 3)} for o in outputs],
            "decoder_tokens": [{"token": pcd.tokenizer.decode([t]), "p": round(p, 6)} for t, p in decoded[concept]],
        }
        side["token_label"] = side["input_label"]
        side["output_label"] = output_phrase(side["output_words"][: cfg.words])
        side["label"] = _render(cfg, side["input_label"], side, lm=False)
        sides[concept] = side
    return sides


def _render(cfg: LabelConfig, input_label: str, side: dict, *, lm: bool) -> str:
    return render_label(cfg.kind, input_label, side["output_words"], words=cfg.words, both_words=cfg.both_words,
                        input_words=None if lm else side["input_tokens"])


def _lm_labels(pcd: PCD, windows, firings, selected: list[int], cfg: LabelConfig) -> dict[int, str]:
    explainer = load_model(cfg.explainer_model)
    tokenizer = load_tokenizer(cfg.explainer_model)
    prompts = []
    for concept in selected:
        examples = split_by_window(firings[concept], 0)[: cfg.explain_examples]
        lines = "\n".join(
            f"{i + 1}. {render_context(pcd.tokenizer, windows[f.window], f.position, cfg.context_after)}"
            for i, f in enumerate(examples)
        )
        prompts.append(_chat(tokenizer, EXPLAINER_PROMPT.format(examples=lines)))
    with console.status(f"explainer writing {len(prompts)} labels"):
        answers = generate_greedy(explainer, tokenizer, prompts, max_new_tokens=16, batch_size=cfg.batch_size)
    labels = {}
    for concept, answer in zip(selected, answers):
        text = answer.strip().split("\n")[0].strip(" .\"'")
        labels[concept] = text or token_statistics_label(pcd.tokenizer, windows, split_by_window(firings[concept], 0))
    return labels


def _chat(tokenizer, message: str) -> str:
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template([{"role": "user", "content": message}], tokenize=False, add_generation_prompt=True)
    return f"{message}\nAnswer:"


# --- scoring ---------------------------------------------------------------------------------


def free_negatives(windows: torch.Tensor, prefix: int, fired_at: set[tuple[int, int]]) -> int:
    """Positions of the scoring half (odd windows, after the prefix) where the concept is silent."""
    total = len(range(1, len(windows), 2)) * (windows.shape[1] - prefix)
    return total - sum(1 for w, p in fired_at if w % 2 == 1 and p >= prefix)


def score_labels(
    pcd: PCD, windows, firings, selected: list[int], labels: dict[int, str], cfg: LabelConfig,
    *, negatives_avoid: dict[int, list[Firing]] | None = None, shuffled_control: bool = True,
    next_tokens: NextTokens | None = None,
) -> dict:
    """Detection AUROC and Pearson per concept, for real labels and (``shuffled_control``) for shuffled ones.

    Negatives are drawn where the concept is silent: where it has no entry in ``negatives_avoid``, by
    default ``firings``. Passing the same ``negatives_avoid`` to two calls draws the same negatives in both.
    With ``next_tokens``, the same cases are also scored on the output side (result["output"]): the
    likelihood simulator (whatever ``cfg.simulator_method``) scores the token S writes next (greedy) given
    the text up to and including the position, so a label earns credit for predicting what S will write.
    """
    rng = random.Random(cfg.seed + 1)
    prefix = pcd.training_data["window"]["prefix_len"]
    cases = []  # (concept, window, position, true activation, is_positive)
    for concept in selected:
        fired_at = {(f.window, f.position) for f in (negatives_avoid or firings)[concept]}
        for f in split_by_window(firings[concept], 1)[: cfg.score_positives]:
            cases.append((concept, f.window, f.position, f.value, True))
        if free_negatives(windows, prefix, fired_at) < cfg.score_negatives:
            # Rejection sampling below would never finish: the concept fires (nearly) everywhere.
            raise ValueError(f"concept {concept} fires on all but {free_negatives(windows, prefix, fired_at)} scored "
                             f"positions; it needs {cfg.score_negatives} silent ones as negatives")
        negatives = 0
        while negatives < cfg.score_negatives:
            w = rng.randrange(1, len(windows), 2)  # odd windows only: the scoring half
            p = rng.randrange(prefix, windows.shape[1])
            if (w, p) not in fired_at:
                cases.append((concept, w, p, 0.0, False))
                negatives += 1

    named = {"real": [labels[c[0]] for c in cases]}
    if shuffled_control:
        shuffled_from = derangement(len(selected), cfg.seed)
        shuffled = {c: labels[selected[j]] for c, j in zip(selected, shuffled_from)}
        named["shuffled"] = [shuffled[c[0]] for c in cases]
    variants = [*named.values(), [NO_LABEL] * len(cases)]  # the last one calibrates the others
    simulator = load_model(cfg.simulator_model)
    tokenizer = load_tokenizer(cfg.simulator_model)
    split = [split_at(pcd.tokenizer, windows[w], p) for _, w, p, _, _ in cases]
    prompts = [likelihood_prompt(label, before) for variant in variants for label, (before, _) in zip(variant, split)]
    tokens = [token for _ in variants for _, token in split]
    if next_tokens is not None:
        # One pass scores both sides: the output side's context is the input side's prompt plus the token itself.
        written = [_written(pcd.tokenizer, int(next_tokens.greedy[w, p - prefix])) for _, w, p, _, _ in cases]
        with console.status(f"simulator scoring {len(prompts)} prompts on the firing token and S's next token"):
            raw, raw_output = continuation_and_next_logprobs(
                simulator, tokenizer, prompts, tokens, written * len(variants), batch_size=cfg.batch_size)
    elif cfg.simulator_method == "likelihood":
        with console.status(f"simulator (likelihood) scoring {len(prompts)} prompts"):
            raw = continuation_logprobs(simulator, tokenizer, prompts, tokens, batch_size=cfg.batch_size)
    if cfg.simulator_method == "yes_no":
        contexts = [render_context(pcd.tokenizer, windows[w], p, cfg.context_after) for _, w, p, _, _ in cases]
        prompts = [simulator_prompt(label, ctx) for variant in variants for label, ctx in zip(variant, contexts)]
        with console.status(f"simulator (yes_no) scoring {len(prompts)} prompts"):
            logprobs = next_token_logprobs(simulator, tokenizer, prompts, [" Yes", " No"], batch_size=cfg.batch_size)
        raw = logprobs[:, 0] - logprobs[:, 1]
    result = _per_concept(raw, named, cases, selected)
    if next_tokens is not None:
        result["output"] = _per_concept(raw_output, named, cases, selected)
    if shuffled_control:
        result["shuffled_from"] = {c: selected[j] for c, j in zip(selected, shuffled_from)}
    return result


def _written(tokenizer, token_id: int) -> str:
    # A token that decodes to nothing (a lone byte of a multi-byte character) cannot be scored as text.
    return tokenizer.decode([token_id]) or tokenizer.eos_token


def _per_concept(raw: torch.Tensor, named: dict, cases: list[tuple], selected: list[int]) -> dict:
    """AUROC and Pearson per concept of each named variant, calibrated against the last (no label)."""
    raw = raw.view(len(named) + 1, len(cases))
    calibrated = {name: raw[i] - raw[-1] for i, name in enumerate(named)}
    concept_of = torch.tensor([c[0] for c in cases])
    activation = torch.tensor([c[3] for c in cases])
    positive = torch.tensor([c[4] for c in cases])
    result = {name: {"auroc": {}, "pearson": {}} for name in calibrated}
    for name, scores in calibrated.items():
        for concept in selected:
            rows = concept_of == concept
            result[name]["auroc"][concept] = auroc(scores[rows], positive[rows])
            result[name]["pearson"][concept] = pearson(scores[rows], activation[rows])
    return result


_SIDE_KEYS = ("input_label", "output_label", "token_label", "input_tokens", "output_tokens", "decoder_tokens")


def _concepts_json(pcd, windows, firings, selected, sides, scores, cfg: LabelConfig) -> dict:
    total_tokens = len(windows) * (windows.shape[1] - pcd.training_data["window"]["prefix_len"])
    entries = []
    for concept in selected:
        examples = split_by_window(firings[concept], 0)[:3]
        entries.append({
            "id": concept,
            "label": sides[concept]["label"],
            "kind": cfg.kind,
            **{key: sides[concept][key] for key in _SIDE_KEYS},
            "labeller": cfg.labeller,
            "scored": True,
            "autointerp_auroc": scores["real"]["auroc"][concept],
            "autointerp_pearson": scores["real"]["pearson"][concept],
            "autointerp_auroc_shuffled": scores["shuffled"]["auroc"][concept],
            "autointerp_output_auroc": scores["output"]["real"]["auroc"][concept],
            "autointerp_output_auroc_shuffled": scores["output"]["shuffled"]["auroc"][concept],
            "firing_rate": len(firings[concept]) / total_tokens,
            "top_examples": [render_context(pcd.tokenizer, windows[f.window], f.position, cfg.context_after) for f in examples],
        })
    return {**pcd.concepts, "labeller": cfg.labeller, "label_kind": cfg.kind, "label_config": asdict(cfg), "concepts": entries}


def _unscored_entries(pcd, windows, firings, unscored: list[int], sides, cfg: LabelConfig) -> list[dict]:
    """Token-statistics labels of ``cfg.kind`` for concepts outside the scored sample (cheap: no LM runs)."""
    total_tokens = len(windows) * (windows.shape[1] - pcd.training_data["window"]["prefix_len"])
    entries = []
    for concept in unscored:
        explain_half = split_by_window(firings[concept], 0)
        entries.append({
            "id": concept, "label": sides[concept]["label"], "kind": cfg.kind,
            **{key: sides[concept][key] for key in _SIDE_KEYS}, "labeller": "tokens", "scored": False,
            "firing_rate": len(firings[concept]) / total_tokens,
            "top_examples": [render_context(pcd.tokenizer, windows[f.window], f.position, cfg.context_after)
                             for f in explain_half[:3]],
        })
    return entries


def _summary(scores, selected, firings, pcd, cfg: LabelConfig, wall: float) -> dict:
    real = torch.tensor([scores["real"]["auroc"][c] for c in selected])
    shuffled = torch.tensor([scores["shuffled"]["auroc"][c] for c in selected])
    real_r = torch.tensor([scores["real"]["pearson"][c] for c in selected])
    shuffled_r = torch.tensor([scores["shuffled"]["pearson"][c] for c in selected])
    out = torch.tensor([scores["output"]["real"]["auroc"][c] for c in selected])
    out_shuffled = torch.tensor([scores["output"]["shuffled"]["auroc"][c] for c in selected])
    return {
        "autointerp_score": real.nanmean().item(),
        "autointerp_score_shuffled": shuffled.nanmean().item(),
        "autointerp_score_ci95": bootstrap_ci(real),
        "autointerp_score_shuffled_ci95": bootstrap_ci(shuffled),
        "autointerp_gain_over_shuffled_ci95": bootstrap_ci(real - shuffled),
        "autointerp_pearson": real_r.nanmean().item(),
        "autointerp_pearson_shuffled": shuffled_r.nanmean().item(),
        "autointerp_output_score": out.nanmean().item(),
        "autointerp_output_score_shuffled": out_shuffled.nanmean().item(),
        "autointerp_output_score_ci95": bootstrap_ci(out),
        "autointerp_output_score_shuffled_ci95": bootstrap_ci(out_shuffled),
        "autointerp_output_gain_over_shuffled_ci95": bootstrap_ci(out - out_shuffled),
        "metric": f"detection AUROC, simulator '{cfg.simulator_method}' calibrated against no label; mean over concepts",
        "output_metric": "the same cases, scored by the likelihood simulator on the token S writes next (greedy) "
                         "instead of the token where the concept fires",
        "kind": cfg.kind,
        "simulator_method": cfg.simulator_method,
        "labeller": cfg.labeller,
        "explainer_model": cfg.explainer_model if cfg.labeller == "lm" else None,
        "simulator_model": cfg.simulator_model,
        "concepts_labelled": len(selected),
        "concepts_firing": len(firings),
        "n_concepts": pcd.config.n_concepts,
        "wall_seconds": wall,
    }
