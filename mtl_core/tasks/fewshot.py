"""A new task from a few labelled examples: a head fitted on their shown embeddings, no backbone training.

examples (text, label) -> check_examples -> embed (the shown all-MiniLM-L6-v2 embedding, unit length)
  -> every candidate method, scored by stratified cross-validation on the examples (candidates() lists them)
  -> the best one refitted on all examples -> ExampleHead (model/heads.py) + temperature from the held-out folds
  -> out-of-scope detector: cosine to the nearest label centroid, threshold from the examples' own
     leave-one-out scores -> ExampleTask (the head, its config, the detector and a TaskReport)

The head reads the embedding the app shows, not the task layers (which were fine-tuned on Banking77), so
a task adds no encoder cost: one more (H, C) product on the same pass. Measured on the standard few-shot
splits: benchmarks/fewshot.py, docs/fewshot.md.
"""
from __future__ import annotations

import logging
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from sklearn.model_selection import StratifiedKFold
from torch import nn

from mtl_core.errors import InputError
from mtl_core.model.config import HeadConfig
from mtl_core.model.heads import ExampleHead, HeadInputs, scaled_softmax
from mtl_core.tasks.improve import Improver
from mtl_core.tasks.scope import ScopeDetector, label_centroids, label_indices

log = logging.getLogger(__name__)

MAX_LABELS = 200
MAX_EXAMPLES = 20_000
MAX_LABEL_CHARS = 100
MIN_PER_LABEL = 2  # one example cannot be cross-validated, nor give its label a scope threshold
FOLDS = 5
LARGE_TASK, LARGE_TASK_FOLDS = 1000, 3  # from this many examples 3 folds (each holds out >= 333): keeps a
# 1,500-example task's build within 10 s on 2 cores (benchmarks/fewshot.py)
TASK_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")  # it names CSV columns (<name>_score) and files
RECORD_FIELDS = ("text", "truncated")  # the keys of a prediction record beside its tasks (serving/records.py)
SCOPE_RECALL = 0.95  # the threshold accepts this share of the examples' leave-one-out scores
# ... of an improved task's: its layers were trained on the examples, so their scores run high, and 0.95 rejected
# 9.7-10.8% of the BANKING77 / CLINC150 10-shot dev sentences; 0.98 rejects 3.2-5.5% (benchmarks/fewshot.py)
SCOPE_RECALL_IMPROVED = 0.98
LOGREG_C = 10.0  # inverse L2 strength, as scikit-learn's C
ADAPTER_STEPS, ADAPTER_LR, SUPCON_TAU = 10, 1e-3, 0.05  # chosen on the few-shot splits' dev sets
TEMPERATURES = np.geomspace(0.5, 20, 40)  # never much sharper than fitted: perfect folds would push it to 0


# ---- checking the examples ---------------------------------------------------------------------------

def check_name(name: str, taken: list[str]) -> str:
    name = (name or "").strip()
    if not TASK_NAME.match(name):
        raise InputError(f"task name {name!r} must start with a lowercase letter and use only a-z, 0-9 and _ "
                         "(at most 40 characters): it names the CSV columns <name>, <name>_score, ...")
    if name in taken:
        raise InputError(f"the model already has a task named {name!r}; choose another name (taken: {taken})")
    if name in RECORD_FIELDS:
        raise InputError(f"{name!r} is a field of every prediction record; choose another task name")
    return name


def check_examples(texts: list[str], labels: list[str]) -> tuple[list[str], list[str], int]:
    """(texts, labels, duplicates dropped): whitespace-trimmed pairs, empty ones and exact repeats removed.
    InputError with the reason for anything a head cannot be fitted on."""
    pairs, seen = [], set()
    for text, label in zip(texts, labels, strict=True):
        text, label = " ".join(str(text).split()), str(label).strip()
        if text and label and (text, label) not in seen:
            seen.add((text, label))
            pairs.append((text, label))
    duplicates = sum(1 for t, y in zip(texts, labels) if str(t).strip() and str(y).strip()) - len(pairs)
    if len(pairs) > MAX_EXAMPLES:
        raise InputError(f"{len(pairs):,} examples; at most {MAX_EXAMPLES:,} per task")
    counts = Counter(label for _, label in pairs)
    check_labels(counts)
    conflicts = [t for t, n in Counter(t for t, _ in pairs).items() if n > 1]
    if conflicts:
        raise InputError(f"{len(conflicts)} example(s) have two different labels, e.g. {conflicts[0]!r}; "
                         "give each example one label")
    return [t for t, _ in pairs], [y for _, y in pairs], duplicates


def check_labels(counts: Counter) -> None:
    if len(counts) < 2:
        found = f"only the label {next(iter(counts))!r}" if counts else "no examples"
        raise InputError(f"{found}: a task needs at least 2 labels, each with at least {MIN_PER_LABEL} examples")
    if len(counts) > MAX_LABELS:
        raise InputError(f"{len(counts):,} labels; at most {MAX_LABELS} per task")
    long = [label for label in counts if len(label) > MAX_LABEL_CHARS]
    if long:
        raise InputError(f"label {long[0][:40]!r}… has {len(long[0])} characters; at most {MAX_LABEL_CHARS}")
    few = sorted(label for label, n in counts.items() if n < MIN_PER_LABEL)
    if few:
        shown = ", ".join(repr(label) for label in few[:5]) + (" …" if len(few) > 5 else "")
        raise InputError(f"{len(few)} label(s) have fewer than {MIN_PER_LABEL} examples ({shown}); give each label "
                         f"at least {MIN_PER_LABEL} (5-10 work well)")


# ---- the candidate heads -------------------------------------------------------------------------------

def fit_logistic(x: torch.Tensor, y: torch.Tensor, num_labels: int, c: float = LOGREG_C) -> dict[str, torch.Tensor]:
    """Multinomial logistic regression (L2, as scikit-learn's C), full-batch L-BFGS: (N, H) -> linear weights."""
    torch.manual_seed(0)
    linear = torch.nn.Linear(x.shape[1], num_labels)
    torch.nn.init.zeros_(linear.weight), torch.nn.init.zeros_(linear.bias)
    optimiser = torch.optim.LBFGS(linear.parameters(), lr=1, max_iter=200, history_size=20,
                                  line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        optimiser.zero_grad()
        value = (torch.nn.functional.cross_entropy(linear(x), y, reduction="sum")
                 + 0.5 / c * linear.weight.pow(2).sum())
        value.backward()
        return value

    optimiser.step(loss)
    return {"linear.weight": linear.weight.detach().clone(), "linear.bias": linear.bias.detach().clone()}


def fit_centroid(x: torch.Tensor, y: torch.Tensor, num_labels: int, scale: float = 20.0) -> dict[str, torch.Tensor]:
    """Nearest centroid by cosine, written as a linear layer: logits = scale * cos(x, centroid) (the
    temperature fitted afterwards sets the confidence; the scale only keeps it in the grid's range)."""
    centroids = torch.from_numpy(label_centroids(x.numpy(), y.numpy(), num_labels))  # (C, H), as the scope's
    return {"linear.weight": scale * centroids, "linear.bias": torch.zeros(num_labels)}


def fit_knn(x: torch.Tensor, y: torch.Tensor, num_labels: int) -> dict[str, torch.Tensor]:
    return {"examples": x.clone(), "example_labels": y.clone()}


def fit_adapter(x: torch.Tensor, y: torch.Tensor, steps: int = ADAPTER_STEPS, lr: float = ADAPTER_LR,
                tau: float = SUPCON_TAU) -> torch.Tensor:
    """A SetFit-style contrastive tune on the cached embeddings, not the encoder: a residual adapter
    x -> normalise(x + x A^T), A (H, H) from zero, trained full-batch with the supervised contrastive loss
    (Khosla et al., 2020) so that examples of one label move together. Few, small steps: on the few-shot
    splits' dev sets longer tuning over-fits (benchmarks/fewshot.py). Returns A as a Linear weight."""
    torch.manual_seed(0)
    adapter = torch.nn.Linear(x.shape[1], x.shape[1], bias=False)
    torch.nn.init.zeros_(adapter.weight)
    optimiser = torch.optim.Adam(adapter.parameters(), lr=lr)
    same = (y[:, None] == y[None, :]).float()  # (N, N)
    positives = same - torch.eye(len(x))
    for _ in range(steps):
        z = torch.nn.functional.normalize(x + adapter(x), dim=1)  # (N, H)
        logits = (z @ z.T / tau).fill_diagonal_(-1e9)  # (N, N), an example is not its own neighbour
        log_p = logits - torch.logsumexp(logits, dim=1, keepdim=True)
        loss = -((log_p * positives).sum(1) / positives.sum(1).clamp(min=1)).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return adapter.weight.detach().clone()


def fit_adapted_logistic(x: torch.Tensor, y: torch.Tensor, num_labels: int) -> dict[str, torch.Tensor]:
    """fit_adapter, then logistic regression on the adapted embeddings."""
    weight = fit_adapter(x, y)
    features = torch.nn.functional.normalize(x + x @ weight.T, dim=1)
    return {"adapter.weight": weight, **fit_logistic(features, y, num_labels)}


@dataclass(frozen=True)
class Candidate:
    name: str
    params: dict  # the ExampleHead's params, without num_examples
    fit: Callable[[torch.Tensor, torch.Tensor, int], dict[str, torch.Tensor]]


def candidates() -> list[Candidate]:
    """The methods a task chooses among (by cross-validation on its examples)."""
    return [Candidate("nearest centroid", {"method": "linear"}, fit_centroid),
            Candidate("k-NN (k=5)", {"method": "knn", "k": 5}, fit_knn),
            Candidate("logistic regression", {"method": "linear"}, fit_logistic),
            Candidate("contrastive adapter + logistic regression", {"method": "linear", "adapter": True},
                      fit_adapted_logistic)]


def label_text(label: str) -> str:
    """A label as a sentence-like text, embedded as one more example of it: 'card_arrival' -> 'card arrival'."""
    return label.replace("_", " ").rstrip("?").strip().lower() or label


def build_head(candidate: Candidate, name: str, labels: list[str], x: torch.Tensor, y: torch.Tensor,
               temperature: float = 1.0, layers: nn.ModuleList | None = None) -> tuple[HeadConfig, ExampleHead]:
    """The candidate fitted on (x, y); `layers`: an improved task's own top layers, which produced x."""
    params = {**candidate.params, "num_examples": len(x), "candidate": candidate.name}
    if layers is not None:
        params["layers"] = len(layers)
    config = HeadConfig(name, list(labels), kind="examples", reads="embedding" if layers is None else "own layers",
                        params=params, temperature=temperature, trained=True)
    head = ExampleHead(config, x.shape[1], layers)
    head.load_state_dict(candidate.fit(x, y, len(labels)), strict=False)  # a linear head has no k-NN buffers
    return config, head.eval()


@torch.inference_mode()
def head_logits(head: ExampleHead, x: torch.Tensor) -> torch.Tensor:
    return head(HeadInputs(pooled=x, embedding=x))


# ---- cross-validation, scope, report --------------------------------------------------------------------

@dataclass
class TaskReport:
    """What a person needs to trust (or fix) a task: how well it separates its labels, and where not."""

    name: str
    method: str
    cv_accuracy: float  # mean over the folds, on the examples held out of each fold
    cv_spread: float  # sample standard deviation over the folds
    folds: int
    counts: dict[str, int]
    confused: list[tuple[str, str, int]]  # (true label, predicted label, how often), most frequent first
    candidates: dict[str, float]  # every method's cross-validated accuracy
    scope_threshold: float
    duplicates_dropped: int = 0
    seconds: float = 0.0
    scope_recall: float = SCOPE_RECALL  # the share of the examples' own scores the threshold accepts
    improved: dict = field(default_factory=dict)  # an improved task's {"layers", "steps", "seconds"}; else empty

    def to_dict(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        """The report as plain text, for the command line."""
        out = [f"task {self.name!r}: {len(self.counts)} labels, {sum(self.counts.values()):,} examples "
               f"({self.duplicates_dropped} duplicates dropped), built in {self.seconds:.1f} s",
               f"head: {self.method}; {self.folds}-fold cross-validated accuracy "
               f"{100 * self.cv_accuracy:.1f}% ± {100 * self.cv_spread:.1f}",
               "methods (cross-validated accuracy): " +
               ", ".join(f"{m} {100 * a:.1f}%" for m, a in self.candidates.items()),
               f"out of scope below cosine {self.scope_threshold:.3f} to the nearest label centroid "
               f"({100 * self.scope_recall:.0f}% of the examples reach it, each left out of its centroid)",
               "examples per label: " + ", ".join(f"{label} {n}" for label, n in self.counts.items())]
        if self.improved:
            out.append(f"improved: its own copy of the top {self.improved['layers']} encoder layers, trained "
                       f"{self.improved['steps']} contrastive steps on the examples in {self.improved['seconds']:.0f} s; "
                       "the head above was chosen and cross-validated on the shown embedding, then fitted on their "
                       "output (on the standard 10-shot splits that adds 0.5-0.9 points: docs/fewshot.md)")
        if self.confused:
            out.append("most confused: " + "; ".join(f"{t} -> {p} ({n}x)" for t, p, n in self.confused))
        return out


@dataclass(frozen=True)
class Examples:
    """A task's embedded examples (N, H) with label indices (N,), and its label names embedded (C, H)."""

    x: torch.Tensor
    y: torch.Tensor
    names: torch.Tensor

    def training_set(self, idx: np.ndarray | slice = slice(None)) -> tuple[torch.Tensor, torch.Tensor]:
        """Examples idx plus every label's name as one more example of it (a small, steady gain on the
        few-shot splits: benchmarks/fewshot.py)."""
        return torch.cat([self.x[idx], self.names]), torch.cat([self.y[idx], torch.arange(len(self.names))])


def cross_validate(candidate: Candidate, data: Examples, labels: list[str],
                   folds: StratifiedKFold) -> tuple[list[float], np.ndarray]:
    """Per-fold accuracies and the out-of-fold logits (N, C) of one candidate."""
    x, y = data.x, data.y
    out = np.zeros((len(x), len(labels)), dtype=np.float32)
    accuracies = []
    for train, held_out in folds.split(np.zeros(len(y)), y.numpy()):
        _, head = build_head(candidate, "cv", labels, *data.training_set(train))
        out[held_out] = head_logits(head, x[held_out]).numpy()
        accuracies.append(float((out[held_out].argmax(1) == y.numpy()[held_out]).mean()))
    return accuracies, out


def grid_search_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature of TEMPERATURES with the lowest negative log-likelihood of the held-out logits.
    A bounded grid, not training's unbounded fit (training.metrics.fit_temperature): a few examples' folds can
    be separated perfectly, and then the likelihood keeps rising as T -> 0, towards certainty the task has
    not earned."""
    z = torch.from_numpy(logits)
    nll = [float(torch.nn.functional.cross_entropy(z / t, torch.from_numpy(y))) for t in TEMPERATURES]
    return float(TEMPERATURES[int(np.argmin(nll))])


def most_confused(y: np.ndarray, predicted: np.ndarray, labels: list[str], top: int = 5) -> list[tuple[str, str, int]]:
    pairs = Counter((labels[t], labels[p]) for t, p in zip(y, predicted) if t != p)
    return [(t, p, n) for (t, p), n in pairs.most_common(top)]


@dataclass
class ExampleTask:
    """A fitted task: its head config, the head, its out-of-scope detector and the report."""

    config: HeadConfig
    head: ExampleHead
    scope: ScopeDetector
    report: TaskReport
    key: str = field(default_factory=lambda: uuid.uuid4().hex)  # tells this task's cached rows from another's

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def improved(self) -> bool:
        """Whether it has its own top layers (improve.py): then it reads their output, not the embedding."""
        return self.head.layers is not None

    def probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        """Calibrated probabilities (N, C) from the vectors its head reads (N, H): the shown embeddings, or for
        an improved task its own layers' output."""
        logits = head_logits(self.head, torch.from_numpy(np.ascontiguousarray(embeddings, dtype=np.float32)))
        return scaled_softmax(logits, self.config.temperature).numpy()

    def examples(self) -> tuple[list[str], list[str]]:
        """The (texts, labels) it was fitted on: the detector keeps them."""
        return self.scope.texts, self.scope.labels


def fit_task(name: str, texts: list[str], labels: list[str], embed: Callable[[list[str]], np.ndarray],
             taken: Sequence[str] = (), seed: int = 0,
             check_outputs: Callable[[str, list[str]], None] | None = None,
             improver: Improver | None = None) -> ExampleTask:
    """Check the examples, embed them with `embed` (the shown embedding, (N, H) unit rows), choose the head
    by stratified cross-validation among candidates(), refit it on every example, fit its scope.
    With an `improver`, then train the task's own top layers on the examples (improve.py) and fit the chosen
    head, its temperature and its scope on their output instead. The method is still chosen on the shown
    embedding: cross-validation on the trained layers' output is optimistic (they saw every held-out example),
    and there it picked nearest centroid, 1.4 points below logistic regression on BANKING77's dev set.
    `taken`: the names of the tasks served beside it. `check_outputs(name, label names)`: raises InputError
    when they would clash with the other tasks' outputs (the caller knows the output layout, e.g. CSV
    columns); called before anything is embedded."""
    start = time.perf_counter()
    name = check_name(name, list(taken))
    texts, labels, duplicates = check_examples(texts, labels)
    names = list(dict.fromkeys(labels))  # label order: first appearance
    if check_outputs is not None:
        check_outputs(name, names)
    y = torch.from_numpy(label_indices(labels))  # indices into names
    data = embedded_examples(embed, texts, names, y)
    counts = Counter(labels)
    wanted = LARGE_TASK_FOLDS if len(texts) >= LARGE_TASK else FOLDS
    folds = StratifiedKFold(n_splits=min(wanted, min(counts.values())), shuffle=True, random_state=seed)
    scored = {c.name: (c, *cross_validate(c, data, names, folds)) for c in candidates()}
    best, accuracies, held_out_logits = max(scored.values(), key=lambda s: np.mean(s[1]))
    layers, improved, recall = None, {}, SCOPE_RECALL
    if improver is not None:
        layers, improved = improved_layers(improver, texts, y.numpy(), seed)
        data = embedded_examples(improver.embedder(layers), texts, names, y)
        held_out_logits = cross_validate(best, data, names, folds)[1]  # for the temperature only
        recall = SCOPE_RECALL_IMPROVED
    config, head = build_head(best, name, names, *data.training_set(),
                              grid_search_temperature(held_out_logits, y.numpy()), layers)
    # no out-of-scope data is needed (the centroid score was chosen on CLINC150's dev sentences against its dev
    # oos queries, among k-NN and combined scores: benchmarks/fewshot.py)
    scope = ScopeDetector.fit_centroids(data.x.numpy(), texts, labels, name, recall)
    report = TaskReport(name, best.name, float(np.mean(accuracies)), float(np.std(accuracies, ddof=1)),
                        folds.get_n_splits(), {label: counts[label] for label in names},
                        most_confused(y.numpy(), scored[best.name][2].argmax(1), names),
                        {n: float(np.mean(s[1])) for n, s in scored.items()}, scope.config.threshold, duplicates,
                        time.perf_counter() - start, recall, improved)
    log.info("task %s: %s, cv accuracy %.3f", name, best.name, report.cv_accuracy)
    return ExampleTask(config, head, scope, report)


def embedded_examples(embed: Callable[[list[str]], np.ndarray], texts: list[str], names: list[str],
                      y: torch.Tensor) -> Examples:
    """The examples and the label names through `embed`, in one call."""
    vectors = np.ascontiguousarray(embed(texts + [label_text(n) for n in names]), dtype=np.float32)
    return Examples(torch.from_numpy(vectors[:len(texts)]), y, torch.from_numpy(vectors[len(texts):]))


def improved_layers(improver: Improver, texts: list[str], y: np.ndarray, seed: int) -> tuple[nn.ModuleList, dict]:
    """The task's own trained layers, and what the report says of them."""
    start = time.perf_counter()
    layers = improver.train(texts, y, seed)
    return layers, {"layers": len(layers), "steps": improver.settings.steps, "seconds": time.perf_counter() - start}
