"""Does an int8 reference give the same KL as the exact one? Measured on the real PCD and questions.

Samples concept sets from a policy (a trained run's latest checkpoint, or the pretrained policy
nudged by a fixed random LoRA so that the KL is not zero), then estimates KL(π‖π_ref) per sample
with the exact reference and with the int8 one, on the same samples.

    OMP_NUM_THREADS=1 python scripts/bench_quantized_kl.py --config configs/rl/grpo_concepts.yaml --run runs/grpo
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks_doc import machine, update_section  # noqa: E402
from pcdrl.runtime.config_loader import load_config  # noqa: E402
from pcdrl.pcd.train_state import latest_checkpoint, load_trainable_state  # noqa: E402
from pcdrl.rl.policy import kl_estimate  # noqa: E402
from pcdrl.rl.sampling import plackett_luce_step_logprobs  # noqa: E402
from pcdrl.rl.train_config import RLTrainConfig  # noqa: E402
from pcdrl.rl.trainer import prepare  # noqa: E402

TOLERANCE = 0.01
"""Stated tolerance: |mean KL(int8) − mean KL(exact)| below this many nats per explanation."""


def measure(prep, samples_per_item: int) -> list[dict]:
    """One set of samples; per estimator, the mean KL against the exact and the int8 reference."""
    policy, pooled = prep.policy, prep.pooled_train.repeat_interleave(samples_per_item, dim=0)
    torch.manual_seed(0)
    chosen = policy.sample(pooled)
    with torch.no_grad():
        logprobs = plackett_luce_step_logprobs(policy.logits(pooled), chosen, policy.config.temperature)
        exact = plackett_luce_step_logprobs(policy.reference_logits(pooled), chosen, policy.config.temperature)
        policy.quantize_reference()
        quantized = plackett_luce_step_logprobs(policy.reference_logits(pooled), chosen, policy.config.temperature)
    rows = []
    for estimator in ("k1", "k3"):
        kl_exact = kl_estimate(logprobs, exact, estimator).sum(1)
        kl_int8 = kl_estimate(logprobs, quantized, estimator).sum(1)
        rows.append({"estimator": estimator, "n": len(chosen), "kl_exact": kl_exact.mean().item(),
                     "kl_int8": kl_int8.mean().item(), "max_sample_diff": (kl_int8 - kl_exact).abs().max().item(),
                     "max_pick_logprob_diff": (quantized - exact).abs().max().item()})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/rl/grpo_concepts.yaml")
    parser.add_argument("--run", default=None, help="a pcdrl train run folder whose latest checkpoint is the policy")
    parser.add_argument("--samples-per-item", type=int, default=4)
    parser.add_argument("--no-doc", action="store_true")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = load_config(RLTrainConfig, args.config, ["heldout_judges=[]", "kl.quantize_reference=false", *args.overrides])
    prep = prepare(cfg)
    if args.run:
        checkpoint = latest_checkpoint(Path(args.run) / "checkpoints")
        if checkpoint is None:
            raise SystemExit(f"{args.run} has no checkpoint (checkpoints/latest.txt); train it first")
        from safetensors.torch import load_file

        load_trainable_state(prep.trainable, load_file(checkpoint / "trainable.safetensors"),
                             {"logit_scale": prep.policy.logit_scale})
        source = f"policy: {checkpoint}"
    else:
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for name, p in prep.policy.head.named_parameters():
                if "lora_B" in name:
                    p.copy_(0.01 * torch.randn(p.shape, generator=generator))
        source = "policy: pretrained + a fixed random LoRA (B ~ 0.01·N(0,1))"
    rows = []
    for m in measure(prep, args.samples_per_item):
        diff = abs(m["kl_int8"] - m["kl_exact"])
        rows.append(f"| {m['estimator']} | {m['n']} | {m['kl_exact']:.4f} | {m['kl_int8']:.4f} | {diff:.4f} | "
                    f"{m['max_sample_diff']:.4f} | {m['max_pick_logprob_diff']:.4f} | {'yes' if diff <= TOLERANCE else 'NO'} |")
    lines = [
        f"`OMP_NUM_THREADS=1 python scripts/bench_quantized_kl.py --config {args.config}"
        + (f" --run {args.run}" if args.run else "") + (" " + " ".join(args.overrides) if args.overrides else "")
        + f"` ({machine()})",
        "",
        f"{source}; {len(prep.train_items)} training items × {args.samples_per_item} samples, temperature "
        f"{cfg.policy.temperature}, k = {cfg.policy.k}. KL is per explanation (summed over its picks), in nats.",
        "",
        f"| estimator | samples | mean KL, exact ref | mean KL, int8 ref | difference | max per-sample difference "
        f"| max per-pick log-prob difference | within {TOLERANCE} |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
    ]
    print("\n".join(lines))
    if not args.no_doc:
        update_section("bench_quantized_kl", "## Quantized KL reference (scripts/bench_quantized_kl.py)\n\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
