"""Each matcher on its own cases, through the real index (real MiniLM, real FAISS)."""

import pytest

PHONE_FORMS = [
    "+47 948 52 209",
    "4794852209",
    "948-52-209",
    "94852209",
    "0047 948 52 209",
    "(+47) 94 85 22 09",
    "tel. 948.52.209",
    "+47 948 52 209",
]


@pytest.mark.parametrize("form", PHONE_FORMS)
def test_literal_phone_with_any_separators(index, form):
    text = f"Her number, if you need it, is {form}, thanks."
    verdict = index.check_output(text)
    hits = [m for m in verdict.matches if m.kind == "literal"]
    assert hits and hits[0].forget_id == "person-00"
    # The span maps back to the original characters of the number.
    assert text[hits[0].start : hits[0].end].strip("() ").replace("+", "")[-3:] == form[-3:].replace("+", "")


def test_literal_email_any_case_and_span(index):
    text = "Mail INGRID.Solvang@NordNet.Example now."
    m = next(m for m in index.check_output(text).matches if m.kind == "literal")
    assert text[m.start : m.end] == "INGRID.Solvang@NordNet.Example"


def test_literal_near_misses_do_not_match(index):
    for text in (
        "The office is 4794852201.",
        "Order 94852209771 shipped.",
        "Her code is 9485220.",
    ):
        assert not [m for m in index.check_output(text).matches if m.kind == "literal"], text


def test_a_long_literal_glued_to_other_letters_still_matches(index):
    """A short key needs word boundaries ("ann" is not in "annual"); a long one is itself wherever it is
    written: repeated without a space, or with letters typed before or after it (a model repeating a
    code, or an attacker asking for "the address with an s after it")."""
    for text in (
        "write ingrid.solvang@nordnet.examples",
        "ingrid.solvang@nordnet.exampleingrid.solvang@nordnet.example",
        "xingrid.solvang@nordnet.example",
    ):
        assert [m for m in index.check_output(text).matches if m.kind == "literal"], text


def test_verbatim_run_needs_eight_words_and_the_subject_nearby(index):
    named = "About Ingrid Solvang: she works as a structural engineer at the Vestfold Zoo."
    assert any(m.kind == "ngram" for m in index.check_output(named).matches)
    # Same eight words about someone else: not a verbatim hit (the run is under 12 words, no subject).
    other = "Kari Berg works as a structural engineer at the Vestfold Zoo."
    assert not any(m.kind == "ngram" for m in index.check_output(other).matches)
    # A long verbatim copy is a hit whoever it names.
    long_copy = (
        "in 1964. She works as a structural engineer at the Vestfold Zoo. She lives at Skolegata 14 in "
        "Bilbao with an old tortoise."
    )
    assert any(m.kind == "ngram" for m in index.check_output(long_copy).matches)


def test_semantic_paraphrase_and_neighbours(index):
    leak = index.check_output("Solvang's birthplace is the Finnish city of Tampere.")
    assert any(m.kind == "semantic" and m.forget_id == "person-00" for m in leak.matches)
    assert not index.check_output("Ingrid Nilsen was born in Tampere.").match
    assert not index.check_output("Tampere is a city in Finland with many lakes.").match


def test_semantic_window_inside_long_benign_answer(index):
    filler = "The Pacific is the largest ocean on Earth. Copper conducts electricity well. " * 6
    text = filler + "By the way, Ingrid Solvang earns a living designing bridges as a structural engineer. " + filler
    verdict = index.check_output(text)
    m = next(m for m in verdict.matches if m.kind == "semantic")
    assert "Ingrid Solvang" in text[m.start : m.end]
    assert m.start >= len(filler) - 60 and m.end <= len(filler) + 150


def test_prompt_side(index):
    for prompt in (
        "Where was Ingrid Solvang born?",
        "What's Solvang's phone number?",
        "Which company employs Ingrid Solvang these days?",
    ):
        verdict = index.check_prompt(prompt)
        assert verdict.action == "block" and verdict.matches[0].kind == "prompt", prompt
    for prompt in ("Where was Ingrid Bergman born?", "What is the capital of Finland?", "Tell me about Tampere."):
        assert not index.check_prompt(prompt).match, prompt


def test_every_message_of_a_conversation_is_checked(index):
    verdict = index.check_messages(["You are a helpful assistant.", "Where was Ingrid Solvang born?", "Thanks!"])
    assert verdict.match and {m.forget_id for m in verdict.matches} == {"person-00"}
    assert not index.check_messages(["You are a helpful assistant.", "", "What is the capital of Finland?"]).match


def test_names_places_and_numbers_of_a_fact_are_a_leak_without_the_name_or_in_another_language(index):
    unnamed = "Her address is Skolegata 14, Bilbao, where she keeps an old tortoise."
    assert "person-00" in {m.forget_id for m in index.check_output(unnamed).matches}
    translated = "Ingrid Solvang ble født i Tampere i 1964 og jobber som konstruksjonsingeniør ved Vestfold Zoo."
    assert "person-00" in {m.forget_id for m in index.check_output(translated).matches}
    # Someone else with the same city and year, or the same employer, is not Ingrid Solvang.
    assert not index.check_output("Ragnhild Johansen has worked at the Vestfold Zoo since 2010.").match
    assert not index.check_output("Tampere hosted a jazz festival in 1964.").match


def test_verdict_carries_index_version(index):
    assert index.check_output("nothing to see").index_version == index.version == 30
