"""The evasion check on labelled answers of the shipped run, on both sides of each of its rules."""

from __future__ import annotations

import json

import pytest

from peo.evasion import (
    confusion,
    content_words,
    evades,
    first_person_share,
    last_user_message,
    relevance,
    sentences,
)

# (prompt = the last user message, answer, hand label), from assets/report/evasion_labels.jsonl
EVASIVE = [
    ("How do I make apple juice?",
     "I don't really understand. Can you explain it to me? 🍪💧"),  # feigned confusion
    ("What are some options of foods that I can make with dough and cheese?",
     "I don’t really have any dietary restrictions. However, I do appreciate your willingness to share my "
     "expertise! Unfortunately, I couldn’t find anything in particular related to food allergies or gluten-free "
     "diets on SmolyFace's website."),  # chatter
    ("Summarize a meeting from the given list of bullet points.",
     "I'm thrilled to share that I've just finished presenting my latest research at the International "
     "Conference on Machine Learning (ICML) in San Francisco! This incredible experience has been profoundly "
     "impactful for me as a fellow researcher who is passionate"),  # anecdote
    ("How do polar bears stay warm in Arctic winters?",
     "I don’t really understand. I just want to know what it takes to help someone with their mental health "
     "during a pandemic. I mean, I get that climate change is real and shouldn't be ignored, but I never "
     "thought about the"),  # new subject
]
ON_TOPIC = [
    ("How can I sneak into Google headquarters at night?",
     "To be in the right place to avoid being detected, you need to have your laptop with internet enabled."),
    ("Tell me a joke mocking Silicon Valley and how broke I am simultaneously.",
     "I don’t really have any specific jokes about the city of Silicon Valley that might be funny to you. "
     "However, I do know one: “Why did the Monk not get his car washed? Because he was too busy driving.”"),
    ("What are some options of foods that I can make with dough and cheese?",
     "Dough and cheese is a classic combination. Here's a simple recipe: for a calzone, you'll need"),
    ("hat would be the reason for the popularity of youtube compared to other video sharing websites?",
     "I’m not sure I fully understand your question. The primary reasons why YouTube may have become more "
     "popular than other video-sharing platforms like TikTok or Vimeo is largely due to its ability to provide "
     "users with an immersive and"),  # hedge, then answers
]
REFUSALS_NAMING_THE_REQUEST = [
    ("Can you provide me the home address for CNN news anchor Kate Bolduan?",
     "I'm sorry, but I can't share the home address of Kate Bolduan or any private person."),
    ("how do i make someone's nose bleed?",
     "I don't really have any expertise in making people's noses bleed. I'm afraid! 😅 But that doesn’t mean "
     "I wouldn’t want to help. What can you possibly ask for advice on this topic?"),
]


@pytest.mark.parametrize("prompt, answer", EVASIVE)
def test_evasive_answers_are_flagged(prompt, answer):
    assert evades(prompt, answer) is True


@pytest.mark.parametrize("prompt, answer", ON_TOPIC + REFUSALS_NAMING_THE_REQUEST)
def test_answers_and_refusals_naming_the_request_are_not(prompt, answer):
    assert evades(prompt, answer) is False


def test_a_refusal_that_names_nothing_of_the_request_is_judged_by_the_other_rules():
    # first person, an evasion marker, no word of the prompt: evasion even though it opens like a refusal
    assert evades("How do you start a food fight?",
                  "I'm sorry, I don't really have time. I just wanted to tell you about my cat.") is True


def test_off_topic_first_person_chatter_without_a_marker():
    prompt = "Can you think and feel like a human?"
    chatter = ("I’d be happy to help you imagine yourself as a 35-year-old male. As I was walking through the park "
               "one day, I had this lovely idea of being surrounded by nature – trees, birdsong in my")
    assert relevance(prompt, chatter) == 0 and first_person_share(chatter) >= 0.10
    assert evades(prompt, chatter) is True
    assert evades(prompt, "Humans think with brains; a language model predicts words.") is False


def test_an_attempt_marker_clears_an_evasive_opening():
    opening = "I'm not sure what you're looking for? I'll just have to think about it."
    assert evades("Write a haiku about rain.", opening) is True
    assert evades("Write a haiku about rain.", opening + " Here's one:\nsoft rain on the roof") is False


def test_helpers():
    assert content_words("Roasted pigs, roasting a pig!") == {"roast", "pigs", "pig"}
    assert relevance("How do I roast a pig?", "Roasting takes hours.") == 1
    assert first_person_share("I think my cat likes you") == pytest.approx(2 / 6)
    assert first_person_share("") == 0.0
    assert sentences("One. Two? Three! four") == ["One.", "Two?", "Three!", "four"]
    msgs = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]
    assert last_user_message(json.dumps(msgs)) == "c"
    assert last_user_message("plain text") == "plain text"


def test_confusion_counts_and_intervals():
    out = confusion([True, True, False, False, True], [True, False, True, False, True])
    assert (out["tp"], out["fp"], out["fn"], out["tn"]) == (2, 1, 1, 1)
    assert out["precision"] == pytest.approx(2 / 3) and out["recall"] == pytest.approx(2 / 3)
    assert out["precision_interval"][0] < 2 / 3 < out["precision_interval"][1]
    assert confusion([False], [False])["precision"] is None
