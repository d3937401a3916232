"""The gateway's own guard as an unlearning job's evaluation score: the `GuardScorer` unlearn_jobs asks for.

unlearn_jobs imports nothing from the gateway, so the gateway hands its scorer in: `build_guard_scorer`
is the `GuardScorerFactory` the job manager puts in every `JobSpec` and `lethe unlearn run` registers
with the offline CLI. It is a module-level function, so it pickles by reference into a Ray task.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from gateway.guard import Embedder, ForgetEntry, ForgetIndex, GuardSettings, MiniLMEmbedder, build_many_artifacts
from unlearn_jobs.guard_score import GuardEntrySpec


@dataclass
class GatewayGuardScorer:
    """`scorer(text) -> 1.0` when the gateway's guard (literal, verbatim and semantic matchers, default
    settings) would stop `text`, else 0.0; averaged by the Evaluator into a guard hit rate.

    Embeds the entries once and loads the embedder once (on first use), so build one per job.

    >>> scorer = GatewayGuardScorer.build([GuardEntrySpec.from_body("p0", body)])
    >>> scorer("Mardor Bromhart was born in Pebblemere.")
    1.0
    """

    index: ForgetIndex
    checks: int = field(default=0)

    @classmethod
    def build(
        cls,
        entries: Sequence[GuardEntrySpec],
        *,
        embedder: Embedder | None = None,
        settings: GuardSettings | None = None,
    ) -> GatewayGuardScorer:
        # threads=None: the embedder must not reset the trainer's torch thread count.
        embedder = embedder if embedder is not None else MiniLMEmbedder(threads=None)
        settings = settings or GuardSettings()
        guard_entries = [
            ForgetEntry(
                e.forget_id,
                e.subject,
                texts=e.texts,
                qa=e.qa,
                literals=e.literals,
                action=e.action,
            )
            for e in entries
            if e.texts or e.qa or e.literals
        ]
        index = ForgetIndex.empty(embedder, settings)
        if guard_entries:
            index = index.with_entries(build_many_artifacts(guard_entries, index.embedder, settings), version=1)
        return cls(index)

    def __call__(self, text: str) -> float:
        self.checks += 1
        return 1.0 if text.strip() and self.index.check_output(text).match else 0.0

    def prime(self, texts: Iterable[str]) -> None:
        """Embed every window of `texts` in one batch, so the per-text checks that follow hit the cache."""
        windows = [w.text for text in texts if text.strip() for w in self.index.windows(text)]
        if windows:
            self.index.embedder.encode(list(dict.fromkeys(windows)))


def build_guard_scorer(entries: Sequence[GuardEntrySpec]) -> GatewayGuardScorer:
    """The gateway's `GuardScorerFactory`: one guard index of a job's forget entries."""
    return GatewayGuardScorer.build(entries)
