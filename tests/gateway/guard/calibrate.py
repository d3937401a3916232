"""Calibrates the semantic and prompt thresholds on the dev split and reports them on the test split.

`python tests/gateway/guard/calibrate.py` prints the grid's best points; the chosen values are the defaults
of GuardSettings and are documented in docs/guard.md.
"""

from __future__ import annotations

import itertools
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from gateway.guard import ForgetEntry, ForgetIndex, GuardSettings, MiniLMEmbedder  # noqa: E402
from gateway.guard.matchers.semantic import semantic_hit  # noqa: E402
from tests.support.guard_sets import load, load_entries  # noqa: E402


def entries() -> list[ForgetEntry]:
    return load_entries("forget_set")


def candidates(index: ForgetIndex, text: str):
    """Threshold-free evidence of one probe: lexical matches, and semantic candidates per window."""
    windows = index.windows(text)
    lexical = {m.forget_id for m in index.find(text, windows, windowed=False)}
    semantic = next(m for m in index.matchers if m.kind == "semantic")
    from gateway.guard.matchers.base import CheckedText

    checked = CheckedText(text, windows, index.embedder.encode, index.settings)
    cands = []
    for window, hits in zip(windows, semantic.store.search(checked.window_vectors, 8)):
        ww = checked.window_words(window)
        cands += [(score, row.forget_id, row.subject, row.facts, ww) for score, row in hits]
    return lexical, cands


def flagged(lexical, cands, settings) -> set[str]:
    return set(lexical) | {
        fid for score, fid, subj, facts, ww in cands if semantic_hit(score, subj, facts, ww, settings)
    }


def main() -> None:
    import torch

    torch.set_num_threads(2)
    from gateway.guard import CachedEmbedder
    from gateway.guard.artifacts import build_many_artifacts

    embedder = CachedEmbedder(MiniLMEmbedder(threads=2), max_items=100_000)
    index = ForgetIndex.empty(embedder)
    index = index.with_entries(build_many_artifacts(entries(), embedder), 1)
    import pickle

    cache = Path("/tmp/guard_evidence.pkl")
    if cache.exists() and "--fresh" not in sys.argv:
        evidence = pickle.loads(cache.read_bytes())
    else:
        evidence = {}
        every = [p["text"] for s in ("dev", "test") for n in ("leaks", "cleans") for p in load(f"{n}_{s}")]
        embedder.encode(sorted({w.text for t in every for w in index.windows(t)}))  # one batch, then cached
        for split in ("dev", "test"):
            evidence[split] = (
                [(p, candidates(index, p["text"])) for p in load(f"leaks_{split}")],
                [(p, candidates(index, p["text"])) for p in load(f"cleans_{split}")],
            )
        cache.write_bytes(pickle.dumps(evidence))
    for split in ("dev", "test"):
        leaks, cleans = evidence[split]
        print(split, "lexical fp:", [p["text"] for p, c in cleans if c[0]])
        print(split, "lexical recall:", np.mean([p["forget_id"] in c[0] for p, c in leaks]))

    def arrays(items, leak):
        rows, lex = [], []
        for j, (p, (lexical, cands)) in enumerate(items):
            lex.append(p["forget_id"] in lexical if leak else bool(lexical))
            for score_, fid, subj, facts, ww in cands:
                if leak and fid != p["forget_id"]:
                    continue
                rows.append((j, score_, bool(subj), bool(subj) and subj <= ww, len(facts & ww)))
        a = np.array(rows, dtype=np.float64).reshape(-1, 5)
        return a, np.array(lex, dtype=bool)

    packed = {s: (arrays(evidence[s][0], True), arrays(evidence[s][1], False)) for s in evidence}

    def decide(a, lex, st):
        j, sc, known, present, nf = a.T
        strong = sc >= st.semantic_strong
        with_subject = (
            (known == 1)
            & (present == 1)
            & ((sc >= st.semantic_subject) | ((nf > 0) & (sc >= st.semantic_subject_fact)))
        )
        without = (known == 0) & (
            ((nf > 0) & (sc >= st.semantic_subject)) | ((nf > 1) & (sc >= st.semantic_subject_fact))
        )
        ok = strong | with_subject | without
        out = lex.copy()
        out[j[ok].astype(int)] = True
        return out

    def score(split, settings):
        (la, ll), (ca, cl) = packed[split]
        hit = decide(la, ll, settings)
        fp = decide(ca, cl, settings)
        leaks, cleans = evidence[split]
        return float(np.mean(hit)), float(np.mean(fp)), leaks, cleans, hit, fp

    base = GuardSettings()
    grid = []
    for sf, s, strong in itertools.product(
        np.arange(0.30, 0.66, 0.05), np.arange(0.40, 0.86, 0.05), np.arange(0.80, 0.99, 0.02)
    ):
        if not sf <= s <= strong:
            continue
        st = replace(
            base, semantic_subject_fact=round(sf, 2), semantic_subject=round(s, 2), semantic_strong=round(strong, 2)
        )
        recall, fpr, *_ = score("dev", st)
        grid.append((recall, -fpr, st))
    feasible = [g for g in grid if -g[1] <= 0.02]
    if not feasible:
        print("no point with fp <= 2%; lowest fp:", sorted(grid, key=lambda g: g[1])[-5:])
        return
    best_recall = max(g[0] for g in feasible)
    # Among the points with the best dev recall, take the one in the middle of the feasible box (margin).
    best = [g for g in feasible if g[0] == best_recall]
    print(f"dev: best recall {best_recall:.3f} at fp<=2% over {len(best)} grid points")
    for key in ("semantic_subject_fact", "semantic_subject", "semantic_strong"):
        values = sorted({getattr(g[2], key) for g in best})
        print(f"  {key}: {values[0]}..{values[-1]}")
    # One threshold at a time around the defaults: the dev range that keeps recall 1.0 and fp <= 2%.
    for key in ("semantic_subject_fact", "semantic_subject", "semantic_strong"):
        ok = []
        for v in np.round(np.arange(0.20, 1.00, 0.01), 2):
            try:
                st = replace(base, **{key: float(v)})
            except ValueError:
                continue
            recall, fpr, *_ = score("dev", st)
            if recall == 1.0 and fpr <= 0.02:
                ok.append(float(v))
        print(
            f"  1-D dev range of {key} (default {getattr(base, key)}): {ok[0] if ok else None}..{ok[-1] if ok else None}"
        )
    for name, st in (("defaults", base),):
        for split in ("dev", "test"):
            recall, fpr, leaks, cleans, hit, fp = score(split, st)
            print(f"{name} {split}: recall {recall:.3f}  fp {fpr:.3f}")
            missed = [p for (p, _), h in zip(leaks, hit) if not h]
            false = [p for (p, _), f in zip(cleans, fp) if f]
            for p in missed:
                print("   MISS", p["category"], p["text"][:110])
            for p in false:
                print("   FP  ", p["category"], p["text"][:110])
            by_cat = {}
            for (p, _), h in zip(leaks, hit):
                by_cat.setdefault(p["category"], []).append(h)
            print("   recall by category:", {k: round(float(np.mean(v)), 3) for k, v in by_cat.items()})

    # Prompt side.
    for split in ("dev", "test"):
        pl = load(f"prompts_leak_{split}")
        pc = load(f"prompts_clean_{split}")
        rec = np.mean([p["forget_id"] in {m.forget_id for m in index.check_prompt(p["text"]).matches} for p in pl])
        fpr = np.mean([index.check_prompt(p["text"]).match for p in pc])
        print(f"prompt {split}: recall {rec:.3f} fp {fpr:.3f}")


if __name__ == "__main__":
    main()
