"""judge_true_pmi: the judge's calibrated score of the true option alone, and what it lets the judge skip."""
import pytest
import torch

from pcdrl.runtime.config_loader import ConfigError
from pcdrl.rewards import BUILTIN, RewardBatch, check_weights, combine
from pcdrl.rewards.registry import needs_every_option
from pcdrl.rewards.terms import reads, term_reads
from pcdrl.rl.train_config import RLTrainConfig
from pcdrl.simulators.config import JudgeConfig


def true_only_batch(**extra):
    return RewardBatch(judge_probs=None, answers=[0, 2], concepts=[[1, 2], [3]],
                       judge_true_scores=[1.25, -0.5], **extra)


def test_true_pmi_is_the_true_options_calibrated_score():
    values = BUILTIN["judge_true_pmi"](true_only_batch())
    assert values.dtype == torch.float64 and values.tolist() == [1.25, -0.5]  # no float32 rounding of the PMI
    combined = combine({"judge_true_pmi": 2.0, "sparsity": 0.1}, true_only_batch())
    assert combined.total.tolist() == pytest.approx([2.5 - 0.2, -1.0 - 0.1])


def test_true_pmi_refuses_raw_or_missing_scores():
    with pytest.raises(ValueError, match="needs PMI-calibrated judge scores, got calibration 'none'"):
        BUILTIN["judge_true_pmi"](true_only_batch(judge_calibration="none"))
    with pytest.raises(ValueError, match="needs the batch's judge_true_scores"):
        BUILTIN["judge_true_pmi"](RewardBatch(judge_probs=[[0.5, 0.5]], answers=[0], concepts=[[1]]))


@pytest.mark.parametrize("name", ["judge_correct", "judge_logprob", "brier"])
def test_probability_terms_refuse_a_true_only_batch(name):
    with pytest.raises(ValueError, match=f"reward '{name}' needs the judge's probability for every option"):
        BUILTIN[name](true_only_batch())


def test_terms_declare_what_they_read():
    assert not needs_every_option(check_weights({"judge_true_pmi": 1.0, "sparsity": 0.1, "fidelity": 0.5,
                                                 "grounding": 0.2}))
    assert needs_every_option(check_weights({"judge_true_pmi": 1.0, "judge_correct": 0.0}))  # zero weights are logged
    assert needs_every_option({"plugin": lambda batch: torch.zeros(len(batch))})  # undeclared: assumed to read all
    assert term_reads(reads("judge_true_scores")(lambda batch: None)) == {"judge_true_scores"}
    with pytest.raises(ValueError, match="unknown RewardBatch fields"):
        reads("judge_prob")


def test_config_refuses_true_pmi_with_an_uncalibrated_judge():
    with pytest.raises(ConfigError, match="rewards.judge_true_pmi needs judge.calibration=pmi: with calibration none "
                                          "the judge's scores are raw log-likelihoods, and there is no no-explanation "
                                          "baseline to subtract"):
        RLTrainConfig(rewards={"judge_true_pmi": 1.0}, judge=JudgeConfig(calibration="none"))
    assert RLTrainConfig(rewards={"judge_true_pmi": 1.0}).judge.calibration == "pmi"
    assert RLTrainConfig(rewards={"judge_logprob": 1.0}, judge=JudgeConfig(calibration="none")).judge.calibration == "none"
