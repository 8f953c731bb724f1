import math

import pytest

from pcdrl.models.backends import BackendConfig
from pcdrl.simulators.config import JudgeConfig
from pcdrl.simulators.judge import DuplicateOptionsError, Judge
from pcdrl.simulators.metrics import brier, correct_logprob, expected_accuracy, softmax
from pcdrl.simulators.render import EmptyExplanationError, Explanation


def test_metrics():
    assert expected_accuracy([0.0, 0.0, 0.0, 0.0], 2) == 0.25  # a uniform judge scores chance exactly
    assert expected_accuracy([1.0, 3.0], 1) == 1.0 and expected_accuracy([1.0, 3.0], 0) == 0.0
    assert sum(softmax([1.0, 2.0, 3.0])) == pytest.approx(1.0)
    assert correct_logprob([0.25, 0.75], 1) == pytest.approx(math.log(0.75))
    assert brier([1.0, 0.0], 0) == 0.0 and brier([0.0, 1.0], 0) == 2.0


@pytest.fixture(scope="module")
def tiny_judge(tiny_model_dir):
    return Judge(JudgeConfig(name="tiny", backend=BackendConfig(model=tiny_model_dir)))


def test_prior_is_uniform_after_calibration_and_explanations_move_it(tiny_judge):
    questions = ["Will it refuse?", "Which next?"]
    options = [["Yes", "No"], ["abc", "de", "fgh"]]
    prior = tiny_judge.answer(questions, options, [None, None])
    assert prior.scores == [[0.0, 0.0], [0.0, 0.0, 0.0]]
    assert prior.probs[1] == pytest.approx([1 / 3] * 3)
    assert prior.raw[1][0] != prior.raw[1][1]  # the raw prior is not uniform: calibration did the work
    explained = tiny_judge.answer(questions, options, [Explanation(labels=("danger",)), Explanation(oracle="abc")])
    for raw, base, score in zip(explained.raw[1], prior.raw[1], explained.scores[1]):
        assert score == pytest.approx(raw - base, abs=1e-5)  # PMI against the no-explanation prompt


def test_uncalibrated_judge_returns_raw_scores(tiny_model_dir):
    judge = Judge(JudgeConfig(backend=BackendConfig(model=tiny_model_dir), calibration="none"))
    answers = judge.answer(["Q?"], [["ab", "c"]], [Explanation(labels=("x",))])
    assert answers.scores == answers.raw


def test_bad_judge_input(tiny_judge):
    with pytest.raises(DuplicateOptionsError, match="duplicate options"):
        tiny_judge.answer(["Q?"], [["Yes", "Yes"]], [None])
    with pytest.raises(EmptyExplanationError):
        tiny_judge.answer(["Q?"], [["Yes", "No"]], [Explanation()])
    with pytest.raises(ValueError, match="1 questions, 2 option lists"):
        tiny_judge.answer(["Q?"], [["a", "b"], ["c", "d"]], [None])


@pytest.mark.real_model
def test_real_judge_reads_an_oracle_explanation():
    """SmolLM2 as judge: told what S writes, it prefers the option that matches (a sanity check of the
    whole scoring path on the real model, not a benchmark)."""
    judge = Judge(JudgeConfig(name="smollm2", backend=BackendConfig(model="smollm2-135m-instruct")))
    options = [["the Lord", "import os", "seven days", "return None"]] * 4
    truths = [0, 1, 2, 3]
    answers = judge.answer(["Which text will the model write next?"] * 4, options,
                           [Explanation(oracle=options[0][t]) for t in truths])
    correct = sum(expected_accuracy(s, t) for s, t in zip(answers.scores, truths))
    assert correct == 4


@pytest.mark.real_model
def test_real_gemma_judge_scores_are_calibrated_and_read_the_oracle():
    """Gemma-3-270m (the other family): the calibrated prior is uniform, and told S's output it finds the option."""
    judge = Judge(JudgeConfig(name="gemma", backend=BackendConfig(model="gemma3-270m", batch_size=4)))
    options = [["And God said", "import numpy as np", "the seventh day", "return self"]] * 2
    prior = judge.answer(["Which text will the model write next?"] * 2, options, [None, None])
    assert prior.probs[0] == pytest.approx([0.25] * 4)
    answers = judge.answer(["Which text will the model write next?"] * 2, options,
                           [Explanation(oracle="import numpy as np"), Explanation(oracle="the seventh day")])
    assert [max(range(4), key=lambda j: s[j]) for s in answers.scores] == [1, 2]


def test_calibration_cache_round_trips(tiny_judge, tiny_model_dir):
    questions, options = ["Which next?"] * 2, [["abc", "de"], ["de", "fgh"]]
    explanations = [Explanation(labels=("x",)), Explanation(labels=("y",))]
    warm = tiny_judge.answer(questions, options, explanations)
    fresh = Judge(JudgeConfig(name="tiny", backend=BackendConfig(model=tiny_model_dir)))
    fresh.load_calibration_state(tiny_judge.calibration_state())
    assert fresh.answer(questions, options, explanations).scores == warm.scores
