"""Out of scope: does a sentence belong to any of the intent head's labels at all?

A scorer maps sentences to scores (higher = more like the Banking77 requests the head was trained on);
a threshold chosen on in-scope dev data turns a score into a decision. The shipped detector is the
cosine k-NN score on the shown embedding (k = 10 nearest Banking77 training sentences), chosen on dev
among the scorers below (python -m mtl_core evaluate prints them all).

  msp(probs)                                   calibrated max softmax probability
  energy(logits, temperature)                  T * logsumexp(logits / T)          (Liu et al., 2020)
  knn_similarity(features, reference, k)       mean cosine of the k nearest reference sentences
  label_centroids(reference, index)            a task from examples scores the cosine to the nearest of these
  fit_mahalanobis / mahalanobis_score          -min_c (x - mu_c)^T Sigma^-1 (x - mu_c), tied Sigma
                                               (Lee et al., 2018; Podolskiy et al., 2021)
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file
from sklearn.metrics import roc_auc_score

SCOPE_STEM = "scope"  # the intent head's files: scope.safetensors, scope_sentences.json
DEV_RECALL = 0.985  # the threshold accepts this share of the in-scope dev sentences
KNN_K = 10


# ---- scorers: features in, scores (N,) out ----------------------------------------------------------

def msp(probs: np.ndarray) -> np.ndarray:
    """Max class probability: (N, C) -> (N,)."""
    return probs.max(axis=1)


def energy(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Negative free energy T * logsumexp(logits / T): (N, C) -> (N,)."""
    z = logits.astype(np.float64) / temperature
    top = z.max(axis=1, keepdims=True)  # (N, 1), for a stable logsumexp
    return temperature * (top[:, 0] + np.log(np.exp(z - top).sum(axis=1)))


def knn_similarity(features: np.ndarray, reference: np.ndarray, k: int = KNN_K, chunk: int = 256) -> np.ndarray:
    """Mean cosine similarity to the k most similar reference rows; both inputs unit length.

    features (N, H), reference (M, H) -> (N,). Computed in chunks of N so memory stays chunk x M
    (256 x 9,003 floats: 9 MB, whatever the request size).
    """
    out = np.empty(len(features), dtype=np.float32)
    k = min(k, len(reference))
    for start in range(0, len(features), chunk):
        sims = features[start:start + chunk].astype(np.float32) @ reference.T  # (n, M)
        top = np.partition(sims, -k, axis=1)[:, -k:]  # (n, k)
        out[start:start + chunk] = top.mean(axis=1)
    return out


def fit_mahalanobis(features: np.ndarray, labels: np.ndarray, shrinkage: float = 0.001
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Class means (C, H) and the precision (H, H) of the tied (pooled within-class) covariance.

    Ridge: Sigma <- (1 - shrinkage) * Sigma + shrinkage * (trace(Sigma) / H) * I (chosen on dev: 0.001).
    """
    x = features.astype(np.float64)
    classes = np.unique(labels)
    means = np.stack([x[labels == c].mean(axis=0) for c in classes])  # (C, H)
    centred = x - means[np.searchsorted(classes, labels)]  # (N, H)
    sigma = centred.T @ centred / len(x)  # (H, H)
    h = sigma.shape[0]
    sigma = (1 - shrinkage) * sigma + shrinkage * np.trace(sigma) / h * np.eye(h)
    return means, np.linalg.inv(sigma)


def mahalanobis_score(features: np.ndarray, means: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """-min over classes of the squared Mahalanobis distance: (N, H) -> (N,)."""
    x = features.astype(np.float64)
    xp, mp = x @ precision, means @ precision  # (N, H), (C, H)
    # (x - m)^T P (x - m) = x^T P x - 2 x^T P m + m^T P m, for every pair: (N, C)
    d = (xp * x).sum(axis=1)[:, None] - 2 * xp @ means.T + (mp * means).sum(axis=1)[None, :]
    return -d.min(axis=1)


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Each row divided by its L2 norm (an all-zero row stays zero)."""
    return x / np.clip(np.linalg.norm(x, axis=1, keepdims=True), 1e-12, None)


def label_indices(labels: list[str]) -> np.ndarray:
    """Each label's index among the distinct labels in order of first appearance: (M,) strings -> (M,) ints."""
    index = {name: i for i, name in enumerate(dict.fromkeys(labels))}
    return np.array([index[label] for label in labels], dtype=np.int64)


def label_sums(reference: np.ndarray, index: np.ndarray, num_labels: int | None = None) -> np.ndarray:
    """The sum of each label's rows: (M, H) with label indices (M,) -> (C, H), in float64."""
    sums = np.zeros((num_labels or index.max() + 1, reference.shape[1]), dtype=np.float64)
    np.add.at(sums, index, reference)
    return sums


def label_centroids(reference: np.ndarray, index: np.ndarray, num_labels: int | None = None) -> np.ndarray:
    """The unit-length mean of each label's rows: (M, H) with label indices (M,) -> (C, H), in float32."""
    return unit_rows(label_sums(reference, index, num_labels)).astype(np.float32)


def leave_one_out_centroid_scores(x: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Each row's centroid score (cosine to the nearest label centroid) with itself left out of its own
    label's centroid: (N, H), (N,) -> (N,). What a row would score had it not been fitted on."""
    sums = label_sums(x, index)  # (C, H)
    sims = x @ unit_rows(sums).T  # (N, C): against every label's full centroid
    own = unit_rows(sums[index] - x)  # (N, H): its own label's centroid without it
    sims[np.arange(len(x)), index] = (own * x).sum(axis=1)
    return sims.max(axis=1)


# ---- thresholds and metrics -------------------------------------------------------------------------

def threshold_at_recall(in_scope_scores: np.ndarray, recall: float) -> float:
    """The highest threshold that accepts (score >= t) at least a `recall` share of the in-scope scores (N,)."""
    ordered = np.sort(in_scope_scores)
    rejected = int(np.floor(round((1.0 - recall) * len(ordered), 9)))  # how many may fall below t
    return float(ordered[min(rejected, len(ordered) - 1)])


def ood_metrics(in_scores: np.ndarray, out_scores: np.ndarray, threshold: float | None = None) -> dict:
    """AUROC (in-scope = positive), FPR@95 (share of out-of-scope accepted when 95% of in-scope is kept),
    and at `threshold` (accept: score >= threshold): false rejection of in-scope, recall of out-of-scope."""
    y = np.r_[np.ones(len(in_scores)), np.zeros(len(out_scores))]  # (N_in + N_out,)
    at_95 = threshold_at_recall(in_scores, 0.95)
    result = {"auroc": float(roc_auc_score(y, np.r_[in_scores, out_scores])),
              "fpr_at_95": float((out_scores >= at_95).mean())}
    if threshold is not None:
        result["false_rejection"] = float((in_scores < threshold).mean())
        result["oos_recall"] = float((out_scores < threshold).mean())
    return result


# ---- the shipped detector ---------------------------------------------------------------------------

def as_stored(reference: np.ndarray) -> np.ndarray:
    """The reference embeddings as a checkpoint stores them (fp16), back in float32: a threshold is fitted on
    the scores the loaded detector will compute."""
    return reference.astype(np.float16).astype(np.float32)


@dataclass(frozen=True)
class ScopeConfig:
    """What a checkpoint's config.json stores under "scope"."""

    threshold: float  # accept (in scope) when scope_score >= threshold
    head: str  # the task whose labels "in scope" means
    method: str = f"knn (k={KNN_K}, mean cosine to the nearest in-scope training sentences)"
    space: str = "embedding"  # the shown all-MiniLM-L6-v2 embedding
    k: int = KNN_K
    dev_recall: float = DEV_RECALL
    fitted_on: str = ""  # in words: the reference sentences and the dev set of the threshold
    files: str = SCOPE_STEM  # the checkpoint's files <files>.safetensors and <files>_sentences.json
    # True: the score is the cosine to the nearest label centroid of the reference sentences (a task from
    # examples: fit_centroids) instead of the mean cosine of the k nearest sentences (fit_knn)
    centroids: bool = False

    def paths(self, directory: str | Path) -> tuple[Path, Path]:
        directory = Path(directory)
        return directory / f"{self.files}.safetensors", directory / f"{self.files}_sentences.json"


class ScopeDetector:
    """k-NN scope score against reference sentences (unit-length embeddings), and the decision."""

    def __init__(self, config: ScopeConfig, reference: np.ndarray, texts: list[str], labels: list[str]):
        if not (len(reference) == len(texts) == len(labels)):
            raise ValueError(f"reference ({len(reference)}), texts ({len(texts)}) and labels ({len(labels)}) differ")
        self.config = config
        self.reference = reference.astype(np.float32)  # (M, H); stored as fp16 (no decision changes)
        self.texts = texts
        self.labels = labels
        self.centroids = label_centroids(self.reference, label_indices(labels)) if config.centroids else None  # (C, H)

    @classmethod
    def fit_knn(cls, reference: np.ndarray, texts: list[str], labels: list[str], dev_embeddings: np.ndarray,
                fitted_on: str, head: str) -> "ScopeDetector":
        """A built-in task's detector: the k-NN score against its training sentences (`reference`); threshold
        = the score at which DEV_RECALL of its in-scope dev sentences are accepted (no out-of-scope data)."""
        reference = as_stored(reference)
        threshold = threshold_at_recall(knn_similarity(dev_embeddings, reference), DEV_RECALL)
        return cls(ScopeConfig(threshold=threshold, head=head, fitted_on=fitted_on), reference, texts, labels)

    @classmethod
    def fit_centroids(cls, reference: np.ndarray, texts: list[str], labels: list[str], head: str,
                      recall: float) -> "ScopeDetector":
        """A task from examples alone (no dev set): score = cosine to the nearest label centroid of the
        examples (`reference`); the threshold accepts `recall` of the examples' own scores, each with itself
        left out of its centroid, which stand in for unseen in-scope sentences."""
        reference = as_stored(reference)
        threshold = threshold_at_recall(leave_one_out_centroid_scores(reference, label_indices(labels)), recall)
        config = ScopeConfig(threshold=threshold, head=head, k=1, dev_recall=recall, files=f"{SCOPE_STEM}_{head}",
                             method="cosine to the nearest label centroid of the task's examples",
                             fitted_on=f"leave-one-out over its {len(reference):,} examples", centroids=True)
        return cls(config, reference, texts, labels)

    def scores(self, embeddings: np.ndarray) -> np.ndarray:
        """(N, H) unit-length embeddings -> (N,) scope scores."""
        if self.centroids is not None:
            return (embeddings.astype(np.float32) @ self.centroids.T).max(axis=1)  # (N, C) -> (N,)
        return knn_similarity(embeddings, self.reference, self.config.k)


    def nearest(self, embedding: np.ndarray, k: int = 1) -> list[tuple[str, str, float]]:
        """The k most similar reference sentences to one embedding (H,): [(text, label, cosine)], closest first."""
        sims = self.reference @ embedding.astype(np.float32)  # (M,)
        top = np.argsort(-sims, kind="stable")[:k]
        return [(self.texts[i], self.labels[i], float(sims[i])) for i in top]

    def save(self, directory: str | Path) -> dict:
        """Write the reference files into a checkpoint folder; returns the config.json "scope" section."""
        weights, sentences = self.config.paths(directory)
        save_file({"reference": self.reference.astype(np.float16)}, str(weights))
        sentences.write_text(json.dumps({"texts": self.texts, "labels": self.labels}) + "\n",
                                                 encoding="utf-8")
        return asdict(self.config)

    @classmethod
    def load(cls, directory: str | Path, section: dict) -> "ScopeDetector":
        """From a checkpoint folder and its config.json "scope" section; ValueError/OSError when broken."""
        config = ScopeConfig(**section)
        weights, sentences_path = config.paths(directory)
        try:
            reference = load_file(str(weights))["reference"]
        except (SafetensorError, KeyError) as err:
            raise ValueError(f"{weights} is corrupt ({err})") from err
        sentences = json.loads(sentences_path.read_text(encoding="utf-8"))
        return cls(config, reference, sentences["texts"], sentences["labels"])
