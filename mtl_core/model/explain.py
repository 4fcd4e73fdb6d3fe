"""Why this label? One score per word of a sentence for one head's label: > 0 pushes towards it, < 0 away.

text -> word pieces (cut at max_tokens, as for prediction) -> the words as typed, each with its
(start, end) span in the original text -> a method's score per word -> Explanation (to_api() for callers)

Methods (METHODS), each through the path the head uses (MultiTaskModel.forward / logits_from_embeddings):
  occlusion             p(label | text) - p(label | text without the word), calibrated probabilities;
                        every leave-one-word-out variant in one batch. Unit: probability.
  integrated_gradients  Sundararajan et al. (2017) on the input embeddings, target = the label's logit,
                        baseline = the sentence with every word piece replaced by [PAD]; the midpoint rule
                        with `steps` points, all in one batch. Unit: logit. Completeness: the words'
                        scores + `rest` add up to `gap` = logit(text) - logit(baseline).
  gradient_x_input      the same gradient code at the text only (one step): (x - x') . dlogit/dx. Unit: logit.

Words. The tokenizer splits at whitespace and at every punctuation character ("don't" -> don ' t). Those
pre-tokens are joined again where they touch (no character between them), so "don't", "e-mail", "$20.00"
and "#tag" stay whole, except that opening punctuation at the start of such a run and closing punctuation
at its end are words of their own: "PIN?" -> PIN ?, "(card)" -> ( card ), "great!!!" -> great !!!. A "?"
or "!" can carry a label by itself, and a reader sees it as apart from the word before it. Spans come from
the tokenizer's character offsets, widened over characters it drops (the combining accents it strips,
emoji variation selectors, zero-width joiners), so text[start:end] is each word exactly as typed (accents,
emoji and characters outside the vocabulary included), only whitespace lies between words, and the words
can be laid over the original text.

Sentences longer than the encoder's max_tokens are cut as for prediction; words past the cut, and a word
the cut splits, get no score (Explanation.truncated says the text goes on).
"""
from __future__ import annotations

import unicodedata
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from transformers import BatchEncoding

from mtl_core.model.encoder import SentenceEncoder, check_sentences
from mtl_core.model.model import MultiTaskModel

IG_STEPS = 32  # completeness error on the shipped model ~0.001 logit (benchmarks/explain.py measures it)
# Probability units a reader can take at face value ("without this word: 12 points less sure"), one
# forward batch, no gradients. Its faithfulness and cost against the others: benchmarks/explain.py.
DEFAULT_METHOD = "occlusion"


# ---- words ---------------------------------------------------------------------------------------

def opens(token: str) -> bool:
    """Punctuation that opens a word: brackets, opening quotes, and ASCII quotes (which open and close)."""
    return bool(token) and all(unicodedata.category(c) in ("Ps", "Pi") or c in "'\"" for c in token)


def closes(token: str) -> bool:
    """Punctuation that ends a word: closing brackets and quotes, . , ! ? : ; and the like."""
    return bool(token) and all(unicodedata.category(c) in ("Pe", "Pf", "Po") for c in token)


def touching_runs(spans: Sequence[tuple[int, int]]) -> list[list[int]]:
    """Indices of the spans, grouped where one span ends exactly where the next starts."""
    runs: list[list[int]] = []
    for i, (start, _) in enumerate(spans):
        if runs and spans[i - 1][1] == start:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def split_punctuation(tokens: Sequence[str], run: list[int]) -> list[list[int]]:
    """A run of touching pre-tokens as up to three words: opening punctuation, the word, closing punctuation."""
    start, end = 0, len(run)
    while start < end and opens(tokens[run[start]]):
        start += 1
    while end > start and closes(tokens[run[end - 1]]):
        end -= 1
    if start == end:  # punctuation only ("...", "?!"): one word
        return [run]
    return [part for part in (run[:start], run[start:end], run[end:]) if part]


def cover_dropped(text: str, spans: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Widen each span over the characters beside it that the tokenizer dropped: the combining accents it
    strips from decomposed text ("e\u0301"), emoji variation selectors, zero-width joiners, control
    characters. Only whitespace is then left between words, so none of the text is orphaned."""
    widened: list[tuple[int, int]] = []
    for i, (start, end) in enumerate(spans):
        before = widened[-1][1] if widened else 0
        after = spans[i + 1][0] if i + 1 < len(spans) else len(text)
        while start > before and not text[start - 1].isspace():
            start -= 1
        while end < after and not text[end].isspace():
            end += 1
        widened.append((start, end))
    return widened


def group_pretokens(text: str, spans: Sequence[tuple[int, int]]) -> list[list[int]]:
    """The words shown, as lists of pre-token indices (the rule is in the module docstring)."""
    tokens = [text[start:end] for start, end in spans]
    return [word for run in touching_runs(spans) for word in split_punctuation(tokens, run)]


def pretoken_pieces(encoding: BatchEncoding) -> list[list[int]]:
    """Positions of each pre-token's word pieces, in order; [CLS] and [SEP] belong to none."""
    pieces: dict[int, list[int]] = {}
    for position, word in enumerate(encoding.word_ids()):
        if word is not None:
            pieces.setdefault(word, []).append(position)
    return [pieces[w] for w in sorted(pieces)]


@dataclass(frozen=True)
class WordPieces:
    """One sentence as the model reads it (ids, cut at max_tokens) and as its author typed it (words and
    their spans in the original text), linked by the positions in ids of each word's pieces."""

    text: str
    ids: list[int]  # [CLS] pieces [SEP], exactly as encoder.tokenize_ids gives them
    words: list[str]  # the words whose pieces all fit before the cut, in order
    spans: list[tuple[int, int]]  # text[start:end] == word
    pieces: list[list[int]]  # positions in ids of each word's pieces
    truncated: bool  # longer than max_tokens: the words after the cut have no entry

    def without(self, drop: Collection[int]) -> list[int]:
        """ids with every piece of the words numbered in `drop` removed; [CLS], [SEP] and the rest kept."""
        gone = {p for w in drop for p in self.pieces[w]}
        return [x for p, x in enumerate(self.ids) if p not in gone]

    def only(self, keep: Collection[int]) -> list[int]:
        """[CLS], the pieces of the words numbered in `keep` (in sentence order), [SEP]."""
        kept = sorted(p for w in keep for p in self.pieces[w])
        return [self.ids[0]] + [self.ids[p] for p in kept] + [self.ids[-1]]


def segment_words(encoder: SentenceEncoder, text: str) -> WordPieces:
    """`text` as the words shown, each with its span and its word-piece positions in the model's input."""
    with encoder._tokenizer_lock:  # the tokenizer's settings are shared state (SentenceEncoder.__init__)
        encoding = encoder.tokenizer(text, truncation=False, return_offsets_mapping=True, verbose=False)
    tokenized = encoder.tokenize_ids([text])  # the model's input, with its own cut at max_tokens
    ids = tokenized.ids[0]
    offsets, pretokens = encoding["offset_mapping"], pretoken_pieces(encoding)
    spans = cover_dropped(text, [(offsets[p[0]][0], offsets[p[-1]][1]) for p in pretokens])
    groups = [g for g in group_pretokens(text, spans)
              if pretokens[g[-1]][-1] < len(ids) - 1]  # every piece before the final [SEP]: not cut
    word_spans = [(spans[g[0]][0], spans[g[-1]][1]) for g in groups]
    return WordPieces(text, ids, [text[s:e] for s, e in word_spans], word_spans,
                      [[p for i in g for p in pretokens[i]] for g in groups], tokenized.truncated[0])


# ---- methods -------------------------------------------------------------------------------------

@torch.inference_mode()
def class_probabilities(model: MultiTaskModel, encoder: SentenceEncoder, ids: list[list[int]],
                        task: str) -> np.ndarray:
    """One head's calibrated probabilities for sentences given as ids, in one padded batch: (N, C)."""
    logits = model(**encoder.collate(ids), tasks=[task]).logits[task]
    return model.probabilities(task, logits).cpu().numpy()


@dataclass(frozen=True)
class Attribution:
    scores: list[float]  # one per word
    rest: float = 0.0  # gradient methods: attribution on the kept pieces of a word the cut splits
    gap: float | None = None  # gradient methods: logit(text) - logit(baseline)


def occlusion(model: MultiTaskModel, encoder: SentenceEncoder, words: WordPieces, task: str, label: int,
              steps: int) -> Attribution:
    """Leave one word out (all its pieces): the drop in the label's probability. `steps`: unused."""
    variants = [words.ids] + [words.without([i]) for i in range(len(words.words))]
    probs = class_probabilities(model, encoder, variants, task)[:, label]  # (W + 1, C) -> (W + 1,)
    return Attribution((probs[0] - probs[1:]).tolist())


def embedding_attributions(model: MultiTaskModel, encoder: SentenceEncoder, words: WordPieces, task: str,
                           label: int, alphas: torch.Tensor) -> Attribution:
    """Per word, the sum over its pieces and the hidden dimension of (x - x') * the mean over `alphas` of
    dlogit/dx at x' + alpha (x - x'); x: the input embeddings, x': the baseline's, where [PAD] replaces
    every word piece. [CLS] and [SEP] stay, and the baseline keeps the text's attention mask, so the two
    differ in the words' content only (x = x' at [CLS] and [SEP]: they get exactly 0). Gradients need fp32
    and grad mode, whatever the caller's mode."""
    pad = encoder.tokenizer.pad_token_id
    baseline = [words.ids[0]] + [pad] * (len(words.ids) - 2) + [words.ids[-1]]
    with torch.inference_mode(False), torch.enable_grad():
        batch = encoder.collate([words.ids, baseline])
        x, base = encoder.bert.embeddings(input_ids=batch["input_ids"]).detach()  # (2, T) -> (2, T, H)
        alphas = alphas.to(x)
        path = (base + alphas[:, None, None] * (x - base)).requires_grad_()  # (m, T, H)
        inputs = torch.cat([path, x[None], base[None]])  # (m + 2, T, H): the ends give the gap
        mask = batch["attention_mask"][:1].expand(len(inputs), -1)  # (1, T) -> (m + 2, T)
        logits = model.logits_from_embeddings(inputs, mask, task)[:, label]  # (m + 2,)
        grads, = torch.autograd.grad(logits[:-2].sum(), path)  # (m, T, H)
    per_piece = ((x - base) * grads.mean(dim=0)).sum(dim=-1)  # (T, H) -> (T,)
    in_words = {p for pieces in words.pieces for p in pieces}
    rest = float(per_piece[[p for p in range(len(words.ids)) if p not in in_words]].sum())
    gap = logits[-2:].detach()  # logit(text), logit(baseline)
    return Attribution([float(per_piece[p].sum()) for p in words.pieces], rest, float(gap[0] - gap[1]))


def integrated_gradients(model: MultiTaskModel, encoder: SentenceEncoder, words: WordPieces, task: str,
                         label: int, steps: int) -> Attribution:
    """Integrated gradients with the midpoint rule (error ~ 1/steps^2 on smooth paths), all steps in one batch."""
    alphas = (torch.arange(steps) + 0.5) / steps  # (m,)
    return embedding_attributions(model, encoder, words, task, label, alphas)


def gradient_x_input(model: MultiTaskModel, encoder: SentenceEncoder, words: WordPieces, task: str,
                     label: int, steps: int) -> Attribution:
    """(x - x') . dlogit/dx at the text: a first-order shortcut to integrated gradients, one step, no
    completeness. `steps`: unused."""
    return embedding_attributions(model, encoder, words, task, label, torch.ones(1))


@dataclass(frozen=True)
class Method:
    run: Callable[[MultiTaskModel, SentenceEncoder, WordPieces, str, int, int], Attribution]
    unit: str  # what a score measures


METHODS = {"occlusion": Method(occlusion, "probability"),
           "integrated_gradients": Method(integrated_gradients, "logit"),
           "gradient_x_input": Method(gradient_x_input, "logit")}


# ---- the public call -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Explanation:
    """Why one sentence got (or would get) one head's label: a score per word, in the method's unit."""

    text: str
    task: str
    label: str
    probability: float  # calibrated p(label | text)
    method: str
    unit: str  # "probability" (occlusion) or "logit" (gradient methods)
    words: list[str]  # the scored words; text[start:end] == word
    spans: list[tuple[int, int]]
    scores: list[float]  # > 0: pushes towards the label; < 0: away from it
    truncated: bool  # the text goes on past the encoder's cut; those words have no score
    rest: float = 0.0  # gradient methods: on the kept pieces of a word the cut splits ([CLS]/[SEP]: 0)
    gap: float | None = None  # gradient methods: logit(text) - logit(all-[PAD] baseline)

    def to_api(self) -> dict:
        record = {"text": self.text, "task": self.task, "label": self.label, "probability": self.probability,
                  "method": self.method, "unit": self.unit, "truncated": self.truncated,
                  "words": [{"word": w, "start": s, "end": e, "score": x}
                            for w, (s, e), x in zip(self.words, self.spans, self.scores)],
                  "rest": self.rest}
        if self.gap is not None:
            record["gap"] = self.gap
        return record


def check_request(model: MultiTaskModel, task: str, label: str | None, method: str, steps: int) -> None:
    if task not in model.task_names:
        raise ValueError(f"unknown task {task!r}; valid: {model.task_names}")
    labels = model.config.head(task).labels
    if label is not None and label not in labels:
        raise ValueError(f"unknown label {label!r} for task {task!r}; valid: {labels}")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid: {list(METHODS)}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if model.training:
        raise ValueError("the model is in training mode, where dropout makes scores random; call model.eval()")


def explain_sentence(model: MultiTaskModel, encoder: SentenceEncoder, text: str, task: str,
                     label: str | None, method: str, steps: int) -> Explanation:
    words = segment_words(encoder, text)
    probs = class_probabilities(model, encoder, [words.ids], task)[0]  # (C,)
    labels = model.config.head(task).labels
    index = int(probs.argmax()) if label is None else labels.index(label)
    chosen = METHODS[method]
    result = chosen.run(model, encoder, words, task, index, steps)
    return Explanation(text, task, labels[index], float(probs[index]), method, chosen.unit, words.words,
                       words.spans, result.scores, words.truncated, result.rest, result.gap)


def explain(model: MultiTaskModel, encoder: SentenceEncoder, sentences: Sequence[str], task: str,
            label: str | None = None, method: str = DEFAULT_METHOD, steps: int = IG_STEPS) -> list[Explanation]:
    """Word scores for `task`'s `label` (None: each sentence's predicted label) by `method` (one of METHODS);
    `encoder` is the model's; `steps`: integrated gradients' points. The model must be in eval mode."""
    check_request(model, task, label, method, steps)
    return [explain_sentence(model, encoder, text, task, label, method, steps)
            for text in check_sentences(sentences)]
