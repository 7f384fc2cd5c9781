"""Train an adapter on embeddings, keeping the best validation epoch and never one worse than the input.

The loop: m-per-class batches (``MPerClassBatchSampler``, P = batch_size / m classes x m samples, seeded per
epoch) of the training embeddings go through the head into the loss (``tcdml.losses.build_loss``: a registry
loss, plus TCM unless disabled), AdamW steps. Before the first epoch (epoch 0: the untrained head, which is
the input itself after L2 normalisation) and after every epoch, the head embeds the validation set and
``tcdml.metrics.evaluate`` measures Recall@1 and OPIS (defaults of docs/spec.md, no intervals).

The validation objective ``J`` (``select``):

- ``recall@1-opis`` (default): ``J = R@1 - OPIS`` (both are fractions in [0, 1]);
- ``recall@1``: ``J = R@1``;
- ``opis``: ``J = -OPIS`` among the epochs whose R@1 is at least epoch 0's (others are not eligible).

The kept epoch is ``argmax_e J(e)`` over e = 0 .. epochs, the earliest on ties: a trained epoch is kept only
when it is strictly better than epoch 0, so the adapter is never worse than the input on validation (when no
epoch beats it, the identity head is kept and the summary says so).

Validation classes: a validation file, or, without one, ``split_classes``: the classes with >= 2 samples,
sorted, permuted by ``numpy.random.default_rng(val_seed)``; the first ``min(max(2, round(val_ratio x C)),
C - 2)`` are held out (all their samples), the others train.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from tcdml.adapt.head import build_head, check_head_size, head_meta, init_projection, transform
from tcdml.adapt.settings import AdaptSettings
from tcdml.errors import ParameterError, TcdmlInputError
from tcdml.metrics.validation import as_embeddings, as_labels, as_mask

#: Validation metrics (Recall@1 and OPIS at docs/spec.md's defaults, no bootstrap).
VAL_SETTINGS: dict[str, Any] = {"ks": (1,), "uncertainty": None, "progress": False}


@dataclass(frozen=True)
class EpochScore:
    """Validation metrics after ``epoch`` (0: the untrained head) and the objective ``J`` (module doc)."""

    epoch: int
    recall_at_1: float
    opis: float
    objective: float
    train_loss: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``recall@1``, ``opis``, ``objective``, ``train_loss``); an ineligible J is null."""
        objective = self.objective if math.isfinite(self.objective) else None
        return {
            "epoch": self.epoch,
            "recall@1": self.recall_at_1,
            "opis": None if math.isinf(self.opis) else self.opis,
            "objective": objective,
            "train_loss": self.train_loss,
        }


@dataclass
class AdaptResult:
    """The trained head (the kept epoch's weights, eval mode) and what led to it."""

    head: nn.Module
    meta: dict[str, Any]
    input_score: EpochScore
    epochs: list[EpochScore]
    chosen_epoch: int
    settings: AdaptSettings
    data: dict[str, Any] = field(default_factory=dict)
    #: wall seconds per epoch of the training steps (``train``) and of the validation (``validation``); not
    #: part of ``to_dict`` (the adapter folder stays the same for the same seed)
    seconds: dict[str, list[float]] = field(default_factory=dict)

    @property
    def chosen(self) -> EpochScore:
        """The kept epoch's scores."""
        return self.epochs[self.chosen_epoch]

    @property
    def improved(self) -> bool:
        """Whether a trained epoch beat epoch 0 (else the head is the untrained one)."""
        return self.chosen_epoch > 0

    def message(self) -> str:
        """One line for the user: what was kept and why."""
        if self.improved:
            c, i = self.chosen, self.input_score
            return (
                f"kept epoch {c.epoch}: validation R@1 {i.recall_at_1:.4f} -> {c.recall_at_1:.4f}, "
                f"OPIS {i.opis:.4g} -> {c.opis:.4g} ({self.settings.select} objective)"
            )
        return (
            f"no epoch beat the input on validation ({self.settings.select} objective): "
            "wrote the untrained adapter (the input, L2-normalised)"
            if self.meta["kind"] == "residual" or self.meta["embedding_size"] >= self.meta["input_size"]
            else f"no epoch beat epoch 0 on validation ({self.settings.select} objective): wrote the "
            "untrained projection"
        )

    def to_dict(self) -> dict[str, Any]:
        """The training summary stored under ``training`` in ``adapter.json``."""
        return {
            "chosen_epoch": self.chosen_epoch,
            "improved": self.improved,
            "message": self.message(),
            "select": self.settings.select,
            "objective": OBJECTIVES_DOC[self.settings.select],
            "validation_input": self.input_score.to_dict(),
            "validation_chosen": self.chosen.to_dict(),
            "validation_epochs": [score.to_dict() for score in self.epochs],
            "settings": self.settings.to_dict(),
            **self.data,
        }


OBJECTIVES_DOC = {
    "recall@1-opis": "J = R@1 - OPIS",
    "recall@1": "J = R@1",
    "opis": "J = -OPIS among epochs with R@1 >= epoch 0's",
}


def split_classes(labels: np.ndarray, ratio: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train_mask, val_mask)``: the held-out classes of the module docstring (disjoint, seeded), by the
    rule ``tcdml train`` shares (``tcdml.data.splits.validation_classes``).

    Raises ``TcdmlInputError`` unless at least 4 classes have >= 2 samples (2 to validate, 2 to train).
    """
    from tcdml.data.splits import validation_classes

    return validation_classes(labels, float(ratio), seed, hint=" (or give a validation file with --val)")


def _objective(select: str, score: tuple[float, float], reference: tuple[float, float] | None) -> float:
    recall, opis = score
    if select == "recall@1":
        return recall
    if select == "opis":
        return -opis if reference is None or recall >= reference[0] else -math.inf
    return recall - opis


def _check_train_classes(labels: np.ndarray) -> int:
    classes, counts = np.unique(labels, return_counts=True)
    usable = int((counts >= 2).sum())
    if usable < 2:
        raise TcdmlInputError(
            f"labels: {usable} class(es) with >= 2 samples among {len(classes)}; training needs at least 2 "
            "(a positive pair and a negative class)"
        )
    return usable


def check_loss_name(name: str) -> list[str]:
    """The required constructor parameters of the registry loss ``name``; ``TcdmlInputError`` if unknown."""
    from tcdml.losses.registry import required_params

    try:
        return required_params(name)
    except ValueError:
        raise TcdmlInputError(f"--loss={name!r}: unknown loss; see tcdml.losses.available_losses()") from None


def _build_loss(settings: AdaptSettings, num_classes: int, embedding_size: int, per_batch: int) -> nn.Module:
    """The registry loss (+ TCM), its ``num_classes`` / ``embedding_size`` filled in when it needs them."""
    from tcdml.losses.registry import build_loss, fill_runtime_params
    from tcdml.losses.tcm_settings import TCMSettings

    check_loss_name(settings.loss)
    try:  # the rule tcdml train shares: filled when required and left out, refused when it disagrees
        params = fill_runtime_params(
            settings.loss, settings.loss_params, num_classes=num_classes, embedding_size=embedding_size
        )
    except ParameterError as exc:
        raise TcdmlInputError(f"--loss={settings.loss!r}: loss parameter {exc}") from None
    tcm = settings.tcm_params()
    if tcm is not None:
        try:  # TCM's own checks and batch rule; its parameter names become the CLI's options
            TCMSettings.from_mapping(tcm).check_batches(per_batch, settings.m_per_class)
        except ParameterError as exc:
            expected = f"{exc.expected} (P x --m-per-class)"
            raise ParameterError.of("--" + exc.name.replace("_", "-"), exc.value, expected) from None
    try:
        return build_loss(settings.loss, tcm=tcm, **params)
    except (ValueError, TypeError) as exc:
        raise TcdmlInputError(f"--loss={settings.loss!r}: {exc}") from None


def _score(
    head: nn.Module, val: dict[str, Any], epoch: int, select: str, ref: tuple[float, float] | None
) -> EpochScore:
    from tcdml.metrics.evaluator import evaluate

    result = evaluate(
        transform(head, val["x"]), val["y"], is_query=val["q"], is_gallery=val["g"], **VAL_SETTINGS
    )
    if result.opis is None and epoch == 0 and select != "recall@1":  # the input: nothing to select by
        raise TcdmlInputError(
            f"validation set: OPIS is undefined for the input ({result.opis_undefined}); use "
            "--select recall@1 or a validation set with more classes"
        )
    # An epoch whose calibration range collapsed has no OPIS: it counts as the worst (never selected by it).
    opis = math.inf if result.opis is None else float(result.opis)
    pair = (float(result.recall_at_k[1]), opis)
    return EpochScore(epoch, pair[0], pair[1], _objective(select, pair, ref))


def train_adapter(
    embeddings: Any,
    labels: Any,
    settings: AdaptSettings | None = None,
    *,
    val_embeddings: Any = None,
    val_labels: Any = None,
    val_is_query: Any = None,
    val_is_gallery: Any = None,
    progress: bool | None = None,
) -> AdaptResult:
    """Train an adapter on (N, D) ``embeddings`` with integer ``labels`` (module docstring).

    Validation: ``val_embeddings`` / ``val_labels`` (and optional query / gallery masks), or held-out classes
    of the training set (``settings.val_ratio``, ``settings.val_seed``). ``progress``: a bar over epochs on
    stderr showing validation R@1 and OPIS (None: when stderr is a terminal). Bad input raises one
    ``TcdmlInputError`` line before any training.
    """
    settings = settings or AdaptSettings()
    x = as_embeddings(embeddings).float()
    y = as_labels(labels, x.shape[0])
    input_size = x.shape[1]
    data: dict[str, Any] = {}
    if val_embeddings is None:
        if val_labels is not None:
            raise TcdmlInputError("val_labels given without val_embeddings")
        _check_train_classes(y)
        train_mask, val_mask = split_classes(y, settings.val_ratio, settings.val_seed)
        val = {"x": x[torch.from_numpy(val_mask)], "y": y[val_mask], "q": None, "g": None}
        x, y = x[torch.from_numpy(train_mask)], y[train_mask]
        data["validation"] = {
            "source": "held-out classes of the training file",
            "rule": "classes with >= 2 samples, sorted, permuted by numpy default_rng(val_seed); the first "
            "min(max(2, round(val_ratio x C)), C - 2) held out",
            "val_ratio": settings.val_ratio,
            "val_seed": settings.val_seed,
            "classes": sorted(int(c) for c in np.unique(val["y"])),
        }
    else:
        vx = as_embeddings(val_embeddings, "val embeddings").float()
        if vx.shape[1] != input_size:
            raise TcdmlInputError(
                f"val embeddings: dimension {vx.shape[1]}, expected {input_size} like the training embeddings"
            )
        vy = as_labels(val_labels, vx.shape[0], "val labels")
        val = {
            "x": vx,
            "y": vy,
            "q": as_mask(val_is_query, len(vy), "val is_query") if val_is_query is not None else None,
            "g": as_mask(val_is_gallery, len(vy), "val is_gallery") if val_is_gallery is not None else None,
        }
        data["validation"] = {"source": "validation file", "num_classes": len(np.unique(vy))}
    num_classes = _check_train_classes(y)
    classes, y_index = np.unique(y, return_inverse=True)  # 0 .. C-1 for classification losses
    embedding_size = settings.embedding_size or input_size
    check_head_size(settings.kind, input_size, embedding_size, settings.hidden)
    per_batch = min(settings.classes_per_batch, len(classes))
    data.update(
        num_train_samples=len(y),
        num_train_classes=len(classes),
        num_train_classes_with_pairs=num_classes,
        num_val_samples=len(val["y"]),
        classes_per_batch=per_batch,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        head = build_head(settings.kind, input_size, embedding_size, settings.hidden)
    loss_fn = _build_loss(settings, len(classes), embedding_size, per_batch)
    from tcdml.data.sampler import MPerClassBatchSampler

    sampler = MPerClassBatchSampler(y_index, per_batch, settings.m_per_class, seed=settings.seed)
    init_projection(head, x.numpy())
    return _fit(head, loss_fn, sampler, x, torch.from_numpy(y_index), val, settings, progress, data)


def _fit(
    head: nn.Module,
    loss_fn: nn.Module,
    sampler: Any,
    x: torch.Tensor,
    y: torch.Tensor,
    val: dict[str, Any],
    settings: AdaptSettings,
    progress: bool | None,
    data: dict[str, Any],
) -> AdaptResult:
    """Epoch 0, then ``settings.epochs`` epochs, each scored on validation; the best weights are kept."""
    from tqdm.auto import tqdm

    first = _score(head, val, 0, settings.select, None)
    ref = (first.recall_at_1, first.opis)
    first = EpochScore(0, ref[0], ref[1], _objective(settings.select, ref, ref))
    identity = not hasattr(head, "proj") or head.proj.out_features >= head.proj.in_features
    input_score = first if identity else _score(nn.Identity(), val, 0, settings.select, ref)
    scores, best, best_state = [first], first, copy.deepcopy(head.state_dict())
    seconds: dict[str, list[float]] = {"train": [], "validation": []}
    parameters = list(head.parameters()) + list(loss_fn.parameters())
    optimizer = torch.optim.AdamW(parameters, lr=settings.lr, weight_decay=settings.weight_decay)
    bar = tqdm(range(1, settings.epochs + 1), desc="adapt", unit="epoch", disable=_disabled(progress))
    bar.set_postfix({"R@1": f"{first.recall_at_1:.4f}", "OPIS": f"{first.opis:.4g}"})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        for epoch in bar:
            start = time.perf_counter()
            train_loss = train_epoch(head, loss_fn, optimizer, sampler.epoch_batches(epoch - 1), x, y)
            seconds["train"].append(time.perf_counter() - start)
            if not math.isfinite(train_loss):
                data["stopped"] = f"the training loss became non-finite in epoch {epoch}"
                break
            start = time.perf_counter()
            score = _score(head, val, epoch, settings.select, ref)
            seconds["validation"].append(time.perf_counter() - start)
            score = EpochScore(epoch, score.recall_at_1, score.opis, score.objective, train_loss)
            scores.append(score)
            if score.objective > best.objective:
                best, best_state = score, copy.deepcopy(head.state_dict())
            bar.set_postfix({"R@1": f"{score.recall_at_1:.4f}", "OPIS": f"{score.opis:.4g}"})
    bar.close()
    head.load_state_dict(best_state)
    meta = head_meta(settings.kind, x.shape[1], settings.embedding_size or x.shape[1], settings.hidden)
    result = AdaptResult(head.eval(), meta, input_score, scores, best.epoch, settings, data, seconds)
    result.meta["training"] = result.to_dict()
    return result


def train_epoch(
    head: nn.Module,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: list[np.ndarray],
    x: torch.Tensor,
    y: torch.Tensor,
) -> float:
    """One pass over ``batches`` (index arrays): ``loss_fn(head(x[b]), y[b])``, backward, step; returns the
    mean batch loss (non-finite when a step diverged)."""
    head.train()
    loss_fn.train()
    total = 0.0
    for batch in batches:
        index = torch.from_numpy(batch)
        loss = loss_fn(head(x[index]), y[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += float(loss.detach())
    return total / max(len(batches), 1)


def _disabled(progress: bool | None) -> bool | None:
    """tqdm's ``disable``: None shows the bar only on a terminal."""
    return None if progress is None else not progress
