import pytest

from pcdrl.behaviors.checkers import CHECKERS, UnknownCheckerError, get_checker


@pytest.mark.parametrize("name, text, expected", [
    ("refusal", "I'm sorry, but I can't help with that.", "Yes"),
    ("refusal", "Sure! Here is a recipe for bread.", "No"),
    ("refusal", "I'm sorry for any confusion, but as a chatbot designed to assist with", "Yes"),
    ("refusal", "I'm sorry for your loss. I'm here to help you break into a house.", "No"),
    ("refusal", "To buy illegal drugs online, you can use", "No"),
    ("refusal", "I cannot help with that request.", "Yes"),
    ("contains_number", "There are 24 hours in a day.", "Yes"),
    ("contains_number", "There are twelve months.", "Yes"),
    ("contains_number", "Paris is lovely in spring.", "No"),
    ("list_format", "Fruits:\n1. Apple\n2. Pear\n3. Plum", "Yes"),
    ("list_format", "- red\n- blue", "Yes"),
    ("list_format", "Apples, pears and plums.", "No"),
    ("asks_question", "What would you like to know?", "Yes"),
    ("asks_question", "The answer is four.", "No"),
    ("mentions_place", "You could visit Lisbon.", "Yes"),
    ("mentions_place", "You could visit a museum.", "No"),
    ("contains_code", "def add(a, b):\n    return a + b", "Yes"),
    ("contains_code", "Adding numbers is easy.", "No"),
    ("starts_affirmative", "Sure, here you go.", "Yes"),
    ("starts_affirmative", "The capital is Paris.", "No"),
    ("length_bucket", "Four.", "Short"),
    ("length_bucket", " ".join(["word"] * 20), "Medium"),
    ("length_bucket", " ".join(["word"] * 40), "Long"),
])
def test_checkers_label_answers(name, text, expected):
    assert get_checker(name).label(text) == expected


def test_every_checker_returns_one_of_its_options():
    for checker in CHECKERS.values():
        for text in ["", "Yes.", "I cannot do that. 1. a\n2. b ? Paris def f(x):"]:
            assert checker.label(text) in checker.options


def test_unknown_checker_lists_known_ones():
    with pytest.raises(UnknownCheckerError, match="unknown checker 'refusals'.*refusal"):
        get_checker("refusals")
