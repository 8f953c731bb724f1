"""Scoring only the true option gives that option exactly the score it gets when every option is scored."""
import math

import pytest

from pcdrl.models.backends import BackendConfig
from pcdrl.simulators.config import JudgeConfig
from pcdrl.simulators.judge import Judge
from pcdrl.simulators.render import Explanation

QUESTIONS = ["Which next?", "Will it refuse?", "Which next?", "Which next?"]
OPTIONS = [["abc", "de", "fghij"], ["Yes", "No"], ["abc", "de", "fghij"], ["x", "yz", "a longer option"]]
EXPLANATIONS = [Explanation(labels=("danger", "the words \"of\", \"and\"")), Explanation(labels=("x",)), None,
                Explanation(oracle="yz")]


def assert_true_only_matches(judge, questions, options, explanations, truth):
    full = judge.answer(questions, options, explanations)
    state = judge.calibration_state()
    only = judge.answer(questions, options, explanations, only=truth)
    assert judge.calibration_state() == state, "true-only scoring fills the same calibration cache"
    for row, answer in enumerate(truth):
        # Bitwise: the same prefix forwards, and the option's tail is scored row by row alike.
        assert only.scores[row][answer] == full.scores[row][answer]
        assert only.raw[row][answer] == full.raw[row][answer]
    return full, only


def test_true_only_scores_equal_full_scores(tiny_model_dir):
    judge = Judge(JudgeConfig(backend=BackendConfig(model=tiny_model_dir, batch_size=2)))
    truth = [2, 0, 1, 2]
    full, only = assert_true_only_matches(judge, QUESTIONS, OPTIONS, EXPLANATIONS, truth)
    assert only.only == truth and full.only is None
    assert math.isnan(only.scores[0][0]) and all(math.isnan(p) for p in only.probs[0])  # not scored: no softmax
    assert not only.complete(0) and full.complete(0)
    assert only.complete(2) and only.probs[2] == full.probs[2]  # the no-explanation row is the cached baseline
    with pytest.raises(ValueError, match=r"only: option indices out of range \(row, index\): \[\(1, 2\)\]"):
        judge.answer(QUESTIONS, OPTIONS, EXPLANATIONS, only=[0, 2, 0, 0])
    with pytest.raises(ValueError, match="only: 1 option indices for 4 questions"):
        judge.answer(QUESTIONS, OPTIONS, EXPLANATIONS, only=[0])


@pytest.mark.real_model
def test_real_smollm2_true_only_scores_equal_full_scores():
    judge = Judge(JudgeConfig(name="smollm2", backend=BackendConfig(model="smollm2-135m-instruct")))
    labels = [f'the words "{a}", "{b}", "{c}"' for a, b, c in
              [("of", "and", "And"), ("the", "The", "a"), ("God", "Lord", "said"), ("import", "def", "return")]]
    options = [["And God said unto Moses", "import numpy as np", "the seventh day was", "return self.value"]] * 3
    explanations = [Explanation(labels=tuple(labels)), Explanation(labels=tuple(labels[::-1])),
                    Explanation(labels=tuple(labels[1:3]))]
    assert_true_only_matches(judge, ["Which text will the model write next?"] * 3, options, explanations, [0, 1, 3])
