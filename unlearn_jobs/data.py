"""Forget, retain and fluency sets: loading them from requests or files, and encoding them for a model."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from unlearn_jobs.facts import Fact, FactSet

if TYPE_CHECKING:  # torch stays out of imports that only parse files
    import torch

Style = Literal["qa", "text"]

# What the edit method teaches the model to say instead of a forgotten answer.
REFUSAL_TARGET = "I don't know."

_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "of",
        "in",
        "on",
        "at",
        "to",
        "for",
        "from",
        "by",
        "with",
        "as",
        "and",
        "or",
        "but",
        "that",
        "this",
        "these",
        "those",
        "it",
        "its",
        "his",
        "her",
        "their",
        "our",
        "your",
        "my",
        "he",
        "she",
        "they",
        "we",
        "you",
        "i",
        "who",
        "what",
        "when",
        "where",
        "which",
        "why",
        "how",
        "does",
        "do",
        "did",
        "has",
        "have",
        "had",
        "not",
        "no",
        "yes",
        "so",
        "than",
        "then",
        "there",
        "here",
        "works",
        "work",
        "born",
    ]
)


@dataclass(frozen=True)
class Example:
    """One item to forget, retain or probe: a prompt, the target it should (not) produce, key terms."""

    example_id: str
    source_id: str
    prompt: str
    target: str
    key_terms: tuple[str, ...]
    paraphrases: tuple[str, ...] = ()
    style: Style = "qa"
    # Optional structure of a fact about a person (a FactSet's facts, forget-file entries that carry
    # an attribute): leakage views use it for held-out paraphrases, other languages, indirect
    # questions and same-kind distractors. None for free-form QA and texts.
    person: str | None = None
    attribute: str | None = None
    value: str | None = None


@dataclass(frozen=True)
class ExampleSet:
    """An ordered set of examples (a forget set or a retain set)."""

    examples: tuple[Example, ...] = ()

    def __len__(self) -> int:
        return len(self.examples)

    def __iter__(self) -> Iterator[Example]:
        return iter(self.examples)

    @property
    def source_ids(self) -> tuple[str, ...]:
        """Ids of the requests (or people) the examples came from, first-seen order."""
        seen: dict[str, None] = {}
        for e in self.examples:
            seen.setdefault(e.source_id, None)
        return tuple(seen)

    def concat(self, other: ExampleSet) -> ExampleSet:
        return ExampleSet(self.examples + other.examples)


def extract_key_terms(question: str, answer: str) -> tuple[str, ...]:
    """Salient terms of `answer`: runs of capitalised or numeric words the question doesn't give away."""
    asked = {w.lower() for w in re.findall(r"[\w'-]+", question)}
    words = re.findall(r"[\w][\w'-]*", answer)
    salient: list[str] = []
    run: list[str] = []
    for i, w in enumerate(words):
        lw = w.lower()
        fresh = lw not in asked and lw not in _STOPWORDS
        # The first word of a sentence is capitalised regardless, so it alone doesn't count.
        marked = any(c.isdigit() for c in w) or (w[:1].isupper() and i > 0)
        if fresh and marked:
            run.append(w)
        else:
            if run:
                salient.append(" ".join(run))
            run = []
    if run:
        salient.append(" ".join(run))
    if salient:
        return tuple(dict.fromkeys(salient))
    content = [w for w in words if w.lower() not in asked and w.lower() not in _STOPWORDS]
    return tuple(dict.fromkeys(content[:3]))


def split_text(text: str) -> tuple[str, str]:
    """A text becomes a continuation target: its first third (≥ 3 words) is the prompt."""
    words = text.split()
    if len(words) < 4:
        # Never the text itself: this message can end up in a job's error, in the ledger and the API.
        raise ValueError(f"text too short to use as a continuation target ({len(words)} words; 4 needed)")
    cut = max(3, len(words) // 3)
    return " ".join(words[:cut]), " ".join(words[cut:])


def examples_from_facts(facts: Iterable[Fact]) -> ExampleSet:
    return ExampleSet(
        tuple(
            Example(
                example_id=f.fact_id,
                source_id=f.person_id,
                prompt=f.question,
                target=f.answer,
                key_terms=f.key_terms,
                paraphrases=f.paraphrases,
                person=f.subject,
                attribute=f.attribute,
                value=f.key_terms[0] if f.key_terms else None,
            )
            for f in facts
        )
    )


def examples_from_request(body: Mapping[str, Any], forget_id: str | None = None) -> ExampleSet:
    """Examples from one forget request (the `POST /v1/forget` body or a ledger entry)."""
    # Never the subject: the source id lands in manifests (`forget_ids`) and job records.
    source = str(forget_id or body.get("id") or "request")
    literals = [str(x) for x in body.get("literals", ()) or ()]
    subject = str(body["subject"]) if body.get("subject") else None
    out: list[Example] = []
    for i, qa in enumerate(body.get("qa", ()) or ()):
        question, answer = str(qa["question"]), str(qa["answer"])
        # Literals are what the operator said must never appear; those in this answer are its key terms.
        terms = tuple(t for t in literals if t and t.lower() in answer.lower()) or extract_key_terms(question, answer)
        # A forget-file entry may say which attribute of its subject a pair is about (FactSet entries do).
        attribute = str(qa["attribute"]) if qa.get("attribute") else None
        value = str(qa["value"]) if qa.get("value") else (terms[0] if attribute and terms else None)
        out.append(
            Example(
                f"{source}/qa{i}",
                source,
                question,
                answer,
                terms,
                tuple(str(p) for p in qa.get("paraphrases", ()) or ()),
                person=subject if attribute else None,
                attribute=attribute,
                value=value,
            )
        )
    for i, text in enumerate(body.get("texts", ()) or ()):
        prompt, target = split_text(str(text))
        terms = tuple(t for t in literals if t and t.lower() in target.lower()) or extract_key_terms(prompt, target)
        out.append(Example(f"{source}/text{i}", source, prompt, target, terms, style="text"))
    if not out:
        raise ValueError(f"forget request {source!r} has neither qa nor texts to unlearn")
    return ExampleSet(tuple(out))


def examples_from_requests(bodies: Iterable[Mapping[str, Any]]) -> ExampleSet:
    result = ExampleSet()
    for i, body in enumerate(bodies):
        result = result.concat(examples_from_request(body, None if body.get("id") else f"request{i}"))
    return result


def _read_json_or_jsonl(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return json.loads(text)


def load_forget_bodies(path: str | Path) -> list[dict[str, Any]]:
    """The forget requests in a forget file (one body, a list, `{"requests": [...]}`, or a FactSet's
    people as forget-file entries), as dicts with their `id` where the file gives one."""
    raw = _read_json_or_jsonl(Path(path))
    if isinstance(raw, dict) and "facts" in raw and "people" in raw:
        return FactSet.from_dict(raw).forget_entries()
    if isinstance(raw, dict) and "requests" in raw:
        raw = raw["requests"]
    bodies = raw if isinstance(raw, list) else [raw]
    if not bodies or not all(isinstance(b, dict) for b in bodies):
        raise ValueError(f"{path}: expected forget request objects")
    return bodies


def load_forget_file(path: str | Path) -> ExampleSet:
    """A forget set from JSON: one request body, a list of them, `{"requests": [...]}`, or a FactSet."""
    raw = _read_json_or_jsonl(Path(path))
    if isinstance(raw, dict) and "facts" in raw and "people" in raw:
        return examples_from_facts(FactSet.from_dict(raw).facts)
    return examples_from_requests(load_forget_bodies(path))


def load_retain_file(path: str | Path) -> ExampleSet:
    """A retain set: .txt (one text per line), JSON/JSONL of {question, answer} or {text}, or a FactSet."""
    p = Path(path)
    if p.suffix == ".txt":
        items: list[Any] = [{"text": line} for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        raw = _read_json_or_jsonl(p)
        if isinstance(raw, dict) and "facts" in raw and "people" in raw:
            return examples_from_facts(FactSet.from_dict(raw).facts)
        items = raw if isinstance(raw, list) else [raw]
    out: list[Example] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ValueError(f"{path}: item {i} is not an object")
        if "question" in item and "answer" in item:
            q, a = str(item["question"]), str(item["answer"])
            terms = tuple(item.get("key_terms") or extract_key_terms(q, a))
            out.append(Example(f"retain/{i}", "retain", q, a, terms, tuple(item.get("paraphrases", ()) or ())))
        elif "text" in item:
            prompt, target = split_text(str(item["text"]))
            out.append(
                Example(f"retain/{i}", "retain", prompt, target, extract_key_terms(prompt, target), style="text")
            )
        else:
            raise ValueError(f"{path}: item {i} needs question+answer or text")
    return ExampleSet(tuple(out))


def _package_lines(name: str) -> tuple[str, ...]:
    text = resources.files("unlearn_jobs").joinpath("data", name).read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def load_fluency(path: str | Path | None = None) -> tuple[str, ...]:
    """General sentences for perplexity; the shipped set unless a file is given."""
    if path is None:
        return _package_lines("fluency.txt")
    return tuple(line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip())


def neutral_questions() -> tuple[str, ...]:
    return _package_lines("neutral_questions.txt")


def self_answer_retain_set(
    generate: Callable[[list[str]], list[str]], questions: Sequence[str] | None = None
) -> ExampleSet:
    """Default retain set when none is configured: the model's own answers to neutral questions.

    Training to keep these answers anchors general behaviour without needing a corpus.
    """
    qs = list(questions or neutral_questions())
    answers = generate(qs)
    return ExampleSet(
        tuple(
            Example(f"self/{i}", "self", q, a, extract_key_terms(q, a))
            for i, (q, a) in enumerate(zip(qs, answers))
            if a.strip()
        )
    )


# ---------------------------------------------------------------------------------------------
# Encoding for a causal LM


@dataclass(frozen=True)
class PromptFormat:
    """How a question becomes model input: `plain` ("Question: …\\nAnswer:") or the tokenizer's `chat` template."""

    kind: Literal["plain", "chat", "auto"] = "auto"

    def resolve(self, tokenizer: Any) -> PromptFormat:
        if self.kind != "auto":
            return self
        return PromptFormat("chat" if getattr(tokenizer, "chat_template", None) else "plain")

    def render(self, tokenizer: Any, prompt: str, style: Style = "qa") -> str:
        if style == "text":
            return prompt
        kind = self.resolve(tokenizer).kind
        if kind == "chat":
            rendered: str = tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
            return rendered
        return f"Question: {prompt}\nAnswer:"

    def prompt_ids(self, tokenizer: Any, prompt: str, style: Style = "qa") -> list[int]:
        text = self.render(tokenizer, prompt, style)
        # A rendered chat template already carries its special tokens; plain text gets the tokenizer's.
        chat = style == "qa" and self.resolve(tokenizer).kind == "chat"
        return list(tokenizer(text, add_special_tokens=not chat)["input_ids"])

    def target_text(self, tokenizer: Any, target: str, style: Style = "qa") -> str:
        kind = self.resolve(tokenizer).kind
        # Plain prompts end in "Answer:" so the answer starts with a space; chat turns start fresh.
        lead = "" if (kind == "chat" and style == "qa") else " "
        return lead + target


@dataclass(frozen=True)
class EncodedExample:
    input_ids: torch.Tensor
    labels: torch.Tensor
    index: int


@dataclass(frozen=True)
class Batch:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    indices: torch.Tensor

    def to(self, device: Any) -> Batch:
        return Batch(self.input_ids.to(device), self.attention_mask.to(device), self.labels.to(device), self.indices)


def encode_pair(
    tokenizer: Any, p_ids: Sequence[int], target_text: str, max_length: int, index: int = 0
) -> EncodedExample:
    """Prompt and target are tokenised separately so generation sees exactly the trained prompt ids."""
    import torch

    p_ids = list(p_ids)
    t_ids = list(tokenizer(target_text, add_special_tokens=False)["input_ids"])
    if tokenizer.eos_token_id is not None:
        t_ids.append(int(tokenizer.eos_token_id))
    t_ids = t_ids[:max_length]
    room = max_length - len(t_ids)
    p_ids = p_ids[-room:] if room > 0 else []  # keep the prompt's end, nearest the target
    ids = p_ids + t_ids
    labels = [-100] * len(p_ids) + t_ids
    return EncodedExample(torch.tensor(ids, dtype=torch.long), torch.tensor(labels, dtype=torch.long), index)


def encode_examples(
    tokenizer: Any,
    examples: Iterable[Example],
    fmt: PromptFormat,
    max_length: int,
    *,
    target: str | None = None,
    with_paraphrases: bool = False,
) -> list[EncodedExample]:
    """Encode examples (optionally each paraphrase too); `target` overrides every target (e.g. a refusal)."""
    out: list[EncodedExample] = []
    for ex in examples:
        prompts = [ex.prompt] + (list(ex.paraphrases) if with_paraphrases else [])
        for prompt in prompts:
            out.append(
                encode_pair(
                    tokenizer,
                    fmt.prompt_ids(tokenizer, prompt, ex.style),
                    fmt.target_text(tokenizer, target if target is not None else ex.target, ex.style),
                    max_length,
                    index=len(out),
                )
            )
    return out


def encode_texts(tokenizer: Any, texts: Iterable[str], max_length: int) -> list[EncodedExample]:
    """Whole texts as language-modelling targets (every token after the first is scored)."""
    import torch

    out = []
    for i, text in enumerate(texts):
        ids = list(tokenizer(text, add_special_tokens=True)["input_ids"])[:max_length]
        labels = list(ids)
        labels[0] = -100
        out.append(EncodedExample(torch.tensor(ids), torch.tensor(labels), i))
    return out


def collate(items: Sequence[EncodedExample], pad_id: int) -> Batch:
    """Right-pad a batch; padded positions have attention 0 and label -100."""
    import torch

    width = max(int(e.input_ids.numel()) for e in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    labels = torch.full((len(items), width), -100, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for row, e in enumerate(items):
        n = int(e.input_ids.numel())
        ids[row, :n] = e.input_ids
        labels[row, :n] = e.labels
        mask[row, :n] = 1
    return Batch(ids, mask, labels, torch.tensor([e.index for e in items], dtype=torch.long))


def pad_id_of(tokenizer: Any) -> int:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None:
        raise ValueError("tokenizer has neither a pad nor an eos token")
    return int(pad)


@dataclass
class BatchStream:
    """Endless shuffled batches over encoded examples, reproducible from `seed`."""

    items: Sequence[EncodedExample]
    batch_size: int
    pad_id: int
    seed: int = 0
    _order: list[int] = field(default_factory=list, init=False)
    _epoch: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if not self.items:
            raise ValueError("cannot batch an empty set")
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")

    def next(self) -> Batch:
        import torch

        if len(self._order) < min(self.batch_size, len(self.items)):
            g = torch.Generator().manual_seed(self.seed + self._epoch)
            self._epoch += 1
            self._order.extend(torch.randperm(len(self.items), generator=g).tolist())
        take, self._order = self._order[: self.batch_size], self._order[self.batch_size :]
        return collate([self.items[i] for i in take], self.pad_id)
