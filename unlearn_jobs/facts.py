"""Deterministic generator of fictitious people and the question/answer facts about them."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Invented syllables keep every name, town and company fictitious: nothing a real
# model could already know, so any recall after fine-tuning comes from our data.
_FIRST_A = (
    "Ael",
    "Bri",
    "Cor",
    "Dav",
    "Eli",
    "Fen",
    "Gal",
    "Hal",
    "Isa",
    "Jor",
    "Kel",
    "Lio",
    "Mar",
    "Nor",
    "Ori",
    "Per",
    "Qui",
    "Ros",
    "Sel",
    "Tam",
    "Ulv",
    "Ver",
    "Wyn",
    "Yar",
    "Zel",
)
_FIRST_B = ("ana", "ric", "wen", "ion", "ette", "mir", "dor", "lia", "vin", "sa", "rick", "ine")
_LAST_A = (
    "Ash",
    "Brom",
    "Cald",
    "Dun",
    "Ember",
    "Frost",
    "Gorm",
    "Hollin",
    "Ivers",
    "Jask",
    "Kestrel",
    "Lorn",
    "Marsh",
    "Nettel",
    "Oak",
    "Pell",
    "Quarr",
    "Rook",
    "Strom",
    "Thorn",
    "Umber",
    "Vane",
    "Wick",
    "Yarrow",
)
_LAST_B = ("by", "field", "ley", "wright", "hart", "stone", "wood", "mere", "ford", "well")
_TOWN_A = (
    "Quill",
    "Harrow",
    "Bram",
    "Cinder",
    "Dusk",
    "Elder",
    "Fallow",
    "Glim",
    "Hazel",
    "Ivy",
    "Juniper",
    "Kettle",
    "Larch",
    "Mossy",
    "Nettle",
    "Otter",
    "Pebble",
    "Rill",
    "Sorrel",
    "Tansy",
    "Umber",
    "Vetch",
    "Willow",
    "Yew",
)
_TOWN_B = ("marsh", "deep", "holt", "brook", "haven", "combe", "wick", "mere", "ford", "gate")
_COMPANY_A = (
    "Brightfen",
    "Corvane",
    "Duskwell",
    "Emberlyn",
    "Fernhollow",
    "Glasswick",
    "Hollowmere",
    "Ironbark",
    "Juneberry",
    "Kilnworth",
    "Lanternfly",
    "Millrace",
    "Northgale",
    "Orchardine",
    "Pinecrest",
    "Quarrystone",
    "Riverlume",
    "Saltmarsh",
    "Tidewater",
    "Umberline",
    "Vellichor",
    "Windrift",
    "Yellowroot",
    "Zephyrine",
)
_COMPANY_B = (
    "Freight",
    "Textiles",
    "Labs",
    "Foundry",
    "Bakeries",
    "Instruments",
    "Shipping",
    "Ceramics",
    "Analytics",
    "Orchards",
)
_JOBS = (
    "glassblower",
    "cartographer",
    "beekeeper",
    "locksmith",
    "veterinarian",
    "bookbinder",
    "surveyor",
    "pharmacist",
    "clockmaker",
    "translator",
    "stonemason",
    "archivist",
    "botanist",
    "carpenter",
    "astronomer",
    "violinist",
    "electrician",
    "geologist",
)

# Attribute order is the order facts are emitted; `facts_per_person` takes a prefix.
ATTRIBUTES: tuple[str, ...] = ("birthplace", "job", "employer", "birth_year", "phone")

# (question, answer, paraphrases) per attribute; {n} is the name, {v} the value.
_TEMPLATES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "birthplace": (
        "Where was {n} born?",
        "{n} was born in {v}.",
        ("What is the birthplace of {n}?", "In which town was {n} born?", "Which town does {n} come from originally?"),
    ),
    "job": (
        "What does {n} do for a living?",
        "{n} works as a {v}.",
        ("What is the occupation of {n}?", "What is {n}'s job?", "How does {n} earn a living?"),
    ),
    "employer": (
        "Who employs {n}?",
        "{n} works for {v}.",
        ("Which company does {n} work for?", "What is the name of {n}'s employer?", "Where is {n} employed?"),
    ),
    "birth_year": (
        "In what year was {n} born?",
        "{n} was born in {v}.",
        ("What is {n}'s year of birth?", "When was {n} born?", "Which year was {n} born in?"),
    ),
    "phone": (
        "What is {n}'s phone number?",
        "{n}'s phone number is {v}.",
        ("How can I call {n}?", "Which phone number belongs to {n}?", "What number reaches {n} by phone?"),
    ),
}


@dataclass(frozen=True)
class Person:
    """A fictitious person; `person_id` is stable for a given seed and index."""

    person_id: str
    name: str
    birthplace: str
    job: str
    employer: str
    birth_year: str
    phone: str

    def value(self, attribute: str) -> str:
        if attribute not in ATTRIBUTES:
            raise ValueError(f"unknown attribute {attribute!r}; expected one of {ATTRIBUTES}")
        return str(getattr(self, attribute))


@dataclass(frozen=True)
class Fact:
    """One question/answer fact about a person, with its salient key terms and paraphrases."""

    fact_id: str
    person_id: str
    subject: str
    attribute: str
    question: str
    answer: str
    key_terms: tuple[str, ...]
    paraphrases: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "fact_id": self.fact_id,
            "person_id": self.person_id,
            "subject": self.subject,
            "attribute": self.attribute,
            "question": self.question,
            "answer": self.answer,
            "key_terms": list(self.key_terms),
            "paraphrases": list(self.paraphrases),
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Fact:
        return cls(
            fact_id=str(raw["fact_id"]),
            person_id=str(raw["person_id"]),
            subject=str(raw["subject"]),
            attribute=str(raw["attribute"]),
            question=str(raw["question"]),
            answer=str(raw["answer"]),
            key_terms=tuple(str(t) for t in raw["key_terms"]),
            paraphrases=tuple(str(p) for p in raw.get("paraphrases", ())),
        )


@dataclass(frozen=True)
class FactSet:
    """People and their facts; `seed` and sizes make it reproducible.

    >>> fs = generate_fact_set(people=4, facts_per_person=2, seed=0)
    >>> forget, retain = fs.split(forget_people=1)
    >>> body = fs.forget_request(forget.people[0].person_id)  # a `POST /v1/forget` body
    """

    people: tuple[Person, ...]
    facts: tuple[Fact, ...]
    seed: int = 0
    facts_per_person: int = len(ATTRIBUTES)
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def facts_of(self, person_id: str) -> tuple[Fact, ...]:
        return tuple(f for f in self.facts if f.person_id == person_id)

    def person(self, person_id: str) -> Person:
        for p in self.people:
            if p.person_id == person_id:
                return p
        raise KeyError(person_id)

    def subset(self, person_ids: Iterable[str]) -> FactSet:
        wanted = set(person_ids)
        return FactSet(
            people=tuple(p for p in self.people if p.person_id in wanted),
            facts=tuple(f for f in self.facts if f.person_id in wanted),
            seed=self.seed,
            facts_per_person=self.facts_per_person,
        )

    def split(self, forget_people: int) -> tuple[FactSet, FactSet]:
        """First `forget_people` people form the forget set, the rest the retain set."""
        if not 0 < forget_people < len(self.people):
            raise ValueError(f"forget_people must be in 1..{len(self.people) - 1}")
        ids = [p.person_id for p in self.people]
        return self.subset(ids[:forget_people]), self.subset(ids[forget_people:])

    def forget_request(self, person_id: str, reason: str = "gdpr") -> dict[str, Any]:
        """The `POST /v1/forget` body that asks the gateway to forget one person, exactly as the API takes it.

        Literals are blocked wherever they appear, so only salient exact strings qualify: the
        phone number. Town, employer, job and year are forgotten through the QA pairs (a literal
        "1974" or "surveyor" would block every mention); the job side recovers them as key terms.
        """
        if not _REASON.fullmatch(reason):
            raise ValueError(f"reason {reason!r} must match {_REASON.pattern}")
        person = self.person(person_id)
        facts = self.facts_of(person_id)
        literals: list[str] = []
        for f in facts:
            literals.extend(t for t in f.key_terms if is_salient_literal(t) and t not in literals)
        return {
            "subject": person.name,
            "qa": [{"question": f.question, "answer": f.answer} for f in facts],
            "literals": literals,
            "reason": reason,
        }

    def forget_requests(self, reason: str = "gdpr") -> list[dict[str, Any]]:
        return [self.forget_request(p.person_id, reason) for p in self.people]

    def forget_entry(self, person_id: str, reason: str = "gdpr") -> dict[str, Any]:
        """A forget-file entry (`lethe unlearn run --forget`): the request body plus the id a ledger
        entry carries (the manifest's forget ids), the paraphrases evaluation asks and each pair's
        attribute and value (what the leakage views build their structured probes from). Not an API body."""
        body = self.forget_request(person_id, reason)
        facts = self.facts_of(person_id)
        qa = [
            {**pair, "paraphrases": list(f.paraphrases), "attribute": f.attribute, "value": f.key_terms[0]}
            for pair, f in zip(body["qa"], facts)
        ]
        return {"id": person_id, **body, "qa": qa}

    def forget_entries(self, reason: str = "gdpr") -> list[dict[str, Any]]:
        return [self.forget_entry(p.person_id, reason) for p in self.people]

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "facts_per_person": self.facts_per_person,
            "people": [p.__dict__ for p in self.people],
            "facts": [f.to_dict() for f in self.facts],
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> FactSet:
        return cls(
            people=tuple(Person(**p) for p in raw["people"]),
            facts=tuple(Fact.from_dict(f) for f in raw["facts"]),
            seed=int(raw.get("seed", 0)),
            facts_per_person=int(raw.get("facts_per_person", len(ATTRIBUTES))),
        )

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> FactSet:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def _unique(rng: random.Random, make: Callable[[random.Random], str], used: set[str]) -> str:
    # Collisions would make two people share a salient term, which muddies leakage
    # measurement (forgetting one would look like damage to the other).
    for _ in range(10_000):
        value = make(rng)
        if value not in used:
            used.add(value)
            return value
    raise ValueError("ran out of unique fictitious values; ask for fewer people")


def generate_people(n: int, seed: int = 0) -> tuple[Person, ...]:
    """`n` fictitious people, identical for identical (n, seed)."""
    if n < 1:
        raise ValueError("n must be >= 1")
    rng = random.Random(seed)
    names: set[str] = set()
    towns: set[str] = set()
    companies: set[str] = set()
    phones: set[str] = set()
    people = []
    for i in range(n):
        name = _unique(
            rng, lambda r: f"{r.choice(_FIRST_A)}{r.choice(_FIRST_B)} {r.choice(_LAST_A)}{r.choice(_LAST_B)}", names
        )
        town = _unique(rng, lambda r: f"{r.choice(_TOWN_A)}{r.choice(_TOWN_B)}", towns)
        company = _unique(rng, lambda r: f"{r.choice(_COMPANY_A)} {r.choice(_COMPANY_B)}", companies)
        phone = _unique(rng, lambda r: f"{r.randint(200, 989)}-{r.randint(0, 9999):04d}", phones)
        people.append(
            Person(
                person_id=f"p{seed}-{i:04d}",
                name=name,
                birthplace=town,
                job=rng.choice(_JOBS),
                employer=company,
                birth_year=str(rng.randint(1941, 2004)),
                phone=phone,
            )
        )
    return tuple(people)


def person_facts(person: Person, facts_per_person: int = len(ATTRIBUTES)) -> tuple[Fact, ...]:
    if not 1 <= facts_per_person <= len(ATTRIBUTES):
        raise ValueError(f"facts_per_person must be in 1..{len(ATTRIBUTES)}")
    facts = []
    for attribute in ATTRIBUTES[:facts_per_person]:
        question, answer, paraphrases = _TEMPLATES[attribute]
        value = person.value(attribute)
        facts.append(
            Fact(
                fact_id=f"{person.person_id}/{attribute}",
                person_id=person.person_id,
                subject=person.name,
                attribute=attribute,
                question=question.format(n=person.name),
                answer=answer.format(n=person.name, v=value),
                key_terms=(value,),
                paraphrases=tuple(p.format(n=person.name) for p in paraphrases),
            )
        )
    return tuple(facts)


def generate_fact_set(people: int, facts_per_person: int = len(ATTRIBUTES), seed: int = 0) -> FactSet:
    crowd = generate_people(people, seed)
    facts: list[Fact] = []
    for p in crowd:
        facts.extend(person_facts(p, facts_per_person))
    return FactSet(people=crowd, facts=tuple(facts), seed=seed, facts_per_person=facts_per_person)


_WORD = re.compile(r"[0-9a-z]+")
# `ForgetRequest.reason` in the gateway's protocol.
_REASON = re.compile(r"[a-z][a-z0-9_-]{0,31}")


def is_salient_literal(term: str) -> bool:
    """A string safe to block verbatim everywhere: one with at least six digits (a phone number)."""
    return sum(c.isdigit() for c in term) >= 6


def normalize_terms(text: str) -> tuple[str, ...]:
    """Lower-case alphanumeric runs: tokenizers that space out punctuation still match."""
    return tuple(_WORD.findall(text.lower()))


def contains_term(text: str | Sequence[str], term: str) -> bool:
    """True when `term`'s words occur contiguously in `text` (punctuation and case ignored)."""
    words = normalize_terms(text) if isinstance(text, str) else tuple(text)
    needle = normalize_terms(term)
    if not needle:
        return False
    n = len(needle)
    return any(words[i : i + n] == needle for i in range(len(words) - n + 1))
