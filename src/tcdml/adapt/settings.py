"""``AdaptSettings``: every option of ``tcdml adapt train``, checked when built: a ``ParameterError`` named by
the option (``--batch-size``; the library and the CLI share that vocabulary).

The TCM options use the vocabulary of ``configs/loss/tcm.yaml`` (``margins: auto``, ``target_far``,
``target_frr``, ``lambda_pos``, ``lambda_neg``) and ``configs/loss/tcm-fixed.yaml`` (``margins: fixed``,
``margin_pos``, ``margin_neg``). Unset lambdas follow those two recipes: 3 with auto margins, 1 with fixed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from tcdml.checks import check_choice, check_int, check_real, require
from tcdml.deploy.kinds import MAX_WIDTH

#: Validation objectives ``select`` accepts (docs/adapt.md, "Which epoch is kept").
SELECT = ("recall@1-opis", "recall@1", "opis")
KINDS = ("residual", "linear")
#: Widths a head may have: ``input_size`` / ``embedding_size`` as in an export's manifest, ``hidden`` up to
#: 65,536 (a residual head of 1,024 inputs is then 0.5 GB of float32 weights).
MAX_HIDDEN = 1 << 16
MARGINS = ("auto", "fixed")
#: configs/loss/tcm.yaml (auto) and configs/loss/tcm-fixed.yaml (fixed): lambdas when none is given.
RECIPE_LAMBDA = {"auto": 3.0, "fixed": 1.0}


def _integer(name: str, value: Any, low: int, high: int | None = None) -> None:
    check_int(f"--{name.replace('_', '-')}", value, low=low, high=high)


def _number(name: str, value: Any, low: float, high: float, *, open_low: bool, open_high: bool) -> None:
    check_real(
        f"--{name.replace('_', '-')}", value, low=low, high=high, open_low=open_low, open_high=open_high
    )


@dataclass(frozen=True)
class AdaptSettings:
    """Options of ``train_adapter`` (their CLI names are the field names with ``-`` for ``_``).

    Head: ``kind`` (residual | linear), ``hidden`` (residual width), ``embedding_size`` (linear output;
    default the input size). Loss: ``loss`` (a ``tcdml.losses`` registry name) with ``loss_params``; ``tcm``
    adds the TCM regulariser with ``margins`` auto (``target_far``, ``target_frr``) or fixed (``margin_pos``,
    ``margin_neg``) and ``lambda_pos`` / ``lambda_neg``. Optimisation: AdamW at ``lr`` with
    ``weight_decay`` for ``epochs`` epochs of m-per-class batches of ``batch_size`` = P x ``m_per_class``,
    ``seed`` for the init and the batches. Validation: ``val_ratio`` of the classes held out with
    ``val_seed`` when no validation file is given; ``select`` picks the epoch.
    """

    kind: str = "residual"
    hidden: int = 512
    embedding_size: int | None = None
    loss: str = "smooth_ap"
    loss_params: dict[str, Any] = field(default_factory=dict)
    tcm: bool = False  # off by default: docs/study.md, "Consistency" (TCM did not earn its place here)
    margins: str = "auto"
    target_far: float = 0.1
    target_frr: float = 0.5
    margin_pos: float = 0.9
    margin_neg: float = 0.5
    lambda_pos: float | None = None
    lambda_neg: float | None = None
    epochs: int = 10
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 256
    m_per_class: int = 4
    seed: int = 0
    val_ratio: float = 0.2
    val_seed: int = 0
    select: str = "recall@1-opis"

    def __post_init__(self) -> None:
        for name, choices in (("kind", KINDS), ("margins", MARGINS), ("select", SELECT)):
            check_choice(f"--{name}", getattr(self, name), choices)
        require(isinstance(self.tcm, bool), "--tcm", self.tcm, "true or false")
        _integer("hidden", self.hidden, 1, MAX_HIDDEN)
        if self.embedding_size is not None:
            _integer("embedding-size", self.embedding_size, 1, MAX_WIDTH)
        ok = isinstance(self.loss, str) and self.loss.strip() != ""
        require(ok, "--loss", self.loss, "a loss name (tcdml.losses.available_losses())")
        require(isinstance(self.loss_params, dict), "--loss-param", self.loss_params, "KEY=VALUE pairs")
        _integer("epochs", self.epochs, 0)
        _number("lr", self.lr, 0.0, 10.0, open_low=True, open_high=False)
        _number("weight-decay", self.weight_decay, 0.0, 1.0, open_low=False, open_high=False)
        _integer("m-per-class", self.m_per_class, 2)
        _integer("batch-size", self.batch_size, 2 * self.m_per_class)
        multiple = self.batch_size % self.m_per_class == 0
        require(multiple, "--batch-size", self.batch_size, f"a multiple of --m-per-class={self.m_per_class}")
        _integer("seed", self.seed, 0)
        _integer("val-seed", self.val_seed, 0)
        _number("val-ratio", self.val_ratio, 0.0, 1.0, open_low=True, open_high=True)
        for name in ("target-far", "target-frr"):
            _number(name, getattr(self, name.replace("-", "_")), 0.0, 1.0, open_low=True, open_high=True)
        for name in ("margin-pos", "margin-neg"):
            _number(name, getattr(self, name.replace("-", "_")), -1.0, 1.0, open_low=False, open_high=False)
        for name in ("lambda-pos", "lambda-neg"):
            value = getattr(self, name.replace("-", "_"))
            if value is not None:
                _number(name, value, 0.0, 1e6, open_low=False, open_high=False)

    @property
    def classes_per_batch(self) -> int:
        """P = ``batch_size / m_per_class`` (fewer when the training set has fewer classes)."""
        return self.batch_size // self.m_per_class

    def tcm_params(self) -> dict[str, Any] | None:
        """The ``loss.tcm`` mapping (``with_tcm``'s keyword arguments), None without TCM."""
        if not self.tcm:
            return None
        lambdas = {
            "lambda_pos": RECIPE_LAMBDA[self.margins] if self.lambda_pos is None else float(self.lambda_pos),
            "lambda_neg": RECIPE_LAMBDA[self.margins] if self.lambda_neg is None else float(self.lambda_neg),
        }
        if self.margins == "auto":
            targets = {"target_far": float(self.target_far), "target_frr": float(self.target_frr)}
            return {"margins": "auto", **targets, **lambdas}
        margins = {"margin_pos": float(self.margin_pos), "margin_neg": float(self.margin_neg)}
        return {"margins": "fixed", **margins, **lambdas}

    def to_dict(self) -> dict[str, Any]:
        """Every field, plus the resolved ``loss.tcm`` mapping under ``tcm_params``."""
        return {**asdict(self), "tcm_params": self.tcm_params()}
