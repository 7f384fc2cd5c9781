"""Build a loss by name from config: tcdml's losses and any pytorch-metric-learning loss, with or without TCM.

Config (a mapping, e.g. one YAML file under ``configs/loss/``)::

    name: arcface                 # required
    params: {num_classes: 100, embedding_size: 512, margin: 28.6}   # optional, the loss's keyword arguments
    tcm: {margin_pos: 0.9, margin_neg: 0.5}    # optional: true / a mapping adds TCM, false / null does not

Names are matched ignoring case, ``_``, ``-`` and a trailing ``loss``: ``"proxy_anchor"``,
``"ProxyAnchorLoss"`` and ``"proxyanchor"`` are one loss. tcdml's own losses take precedence (``smooth_ap``,
``recall_at_k``, ``tcm``); ``"pml:<name>"`` forces the pytorch-metric-learning class (e.g.
``"pml:SmoothAP"``). A ``distance`` parameter may be the string ``"cosine"``, ``"dot"`` or ``"lp"``.

A new loss is one ``register_loss(MyLoss, "my_loss")`` call (tcdml's own are the calls below it).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from torch import nn

from tcdml.errors import ParameterError, TcdmlInputError

from .composite import with_tcm
from .recall_at_k import RecallAtKSurrogateLoss
from .smooth_ap import SmoothAPLoss
from .tcm import TCMLoss
from .tcm_settings import TCMSettings

#: tcdml's own losses and those added with ``register_loss``, by normalised name (they win over PML's).
NATIVE: dict[str, type[nn.Module]] = {}
# Short names people use for PML classes whose names say more.
ALIASES = {"triplet": "tripletmargin", "lifted": "liftedstructure"}
CONFIG_KEYS = {"name", "params", "tcm"}


def _key(name: str) -> str:
    key = name.lower().replace("_", "").replace("-", "").replace(" ", "")
    key = key.removesuffix("loss") if key != "loss" else key
    return ALIASES.get(key, key)


def register_loss(loss_class: type[nn.Module], *names: str) -> None:
    """Make ``loss_class`` buildable by each of ``names`` (matched as the module docstring says).

    This one call is all a new loss needs: ``build_loss`` / ``build_loss_from_config`` (hence configs,
    ``tcdml train`` and studies), ``required_params`` and ``available_losses`` all read the registry. The
    class takes its parameters as keyword arguments and follows the calling contract of docs/extend.md.
    Raises ``TcdmlInputError`` when a name is already taken by another class (a PML name is shadowed).
    """
    if not (isinstance(loss_class, type) and issubclass(loss_class, nn.Module)) or not names:
        raise TcdmlInputError(f"register_loss: expected an nn.Module class and a name, got {loss_class!r}")
    for name in names:
        taken = NATIVE.get(_key(name))
        if taken is not None and taken is not loss_class:
            raise TcdmlInputError(f"register_loss: loss name {name!r} is taken by {taken.__name__}")
    NATIVE.update((_key(name), loss_class) for name in names)


register_loss(SmoothAPLoss, "smooth_ap")
register_loss(RecallAtKSurrogateLoss, "recall_at_k", "recall_at_k_surrogate")
register_loss(TCMLoss, "tcm", "threshold_consistent_margin")


def _pml_losses() -> dict[str, type[nn.Module]]:
    from pytorch_metric_learning import losses as pml_losses

    base = pml_losses.BaseMetricLossFunction
    found = {}
    for attr in dir(pml_losses):
        cls = getattr(pml_losses, attr)
        if inspect.isclass(cls) and issubclass(cls, base) and cls is not base and attr != "GenericPairLoss":
            found[_key(attr)] = cls
    return found


def available_losses() -> list[str]:
    """All names ``build_loss`` accepts, in canonical (normalised) form; PML ones also as ``pml:<name>``."""
    return sorted(set(NATIVE) | set(_pml_losses()))


def _distance(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    from pytorch_metric_learning import distances

    choices = {
        "cosine": distances.CosineSimilarity,
        "dot": distances.DotProductSimilarity,
        "lp": distances.LpDistance,
    }
    if value not in choices:
        raise TcdmlInputError(f"unknown distance {value!r}; choose one of {sorted(choices)}")
    return choices[value]()


def _resolve(name: str) -> type[nn.Module]:
    forced_pml = name.lower().startswith("pml:")
    key = _key(name[4:] if forced_pml else name)
    if not forced_pml and key in NATIVE:
        return NATIVE[key]
    pml = _pml_losses()
    if key in pml:
        return pml[key]
    raise TcdmlInputError(f"unknown loss {name!r}; see tcdml.losses.available_losses()")


def required_params(name: str) -> list[str]:
    """The constructor parameters of loss ``name`` that have no default (e.g. ArcFace's ``num_classes``).

    Raises ``TcdmlInputError`` for an unknown name.
    """
    signature = inspect.signature(_resolve(name).__init__)
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [
        p.name for p in list(signature.parameters.values())[1:] if p.default is p.empty and p.kind in kinds
    ]


def accepted_params(name: str) -> set[str] | None:
    """The keyword parameters loss ``name``'s constructor accepts, without building it: the named parameters
    of every ``__init__`` along its class's MRO that passes ``**kwargs`` on (None when the chain stays open,
    i.e. anything may be accepted). Raises ``TcdmlInputError`` for an unknown name."""
    names: set[str] = set()
    for cls in _resolve(name).__mro__:
        if cls is object or "__init__" not in vars(cls):
            continue
        parameters = list(inspect.signature(vars(cls)["__init__"]).parameters.values())[1:]
        names.update(p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            return names
    return None


#: Constructor parameters of proxy / classifier losses (ArcFace, ProxyAnchor, ...) that training fills in
#: from the data and the model (``fill_runtime_params``).
RUNTIME_PARAMS = ("num_classes", "embedding_size")


def fill_runtime_params(
    name: str, params: Mapping[str, Any], *, num_classes: int, embedding_size: int
) -> dict[str, Any]:
    """``params`` of loss ``name`` with each of ``RUNTIME_PARAMS`` the loss requires and ``params`` lacks
    set from the training classes (``num_classes``: how many the training split has) and the model
    (``embedding_size``); the one rule ``tcdml train``, ``tcdml study`` and ``tcdml adapt`` share.

    A value given that disagrees raises ``ParameterError`` (name: the parameter; expected: the value).
    """
    known = {"num_classes": num_classes, "embedding_size": embedding_size}
    source = {"num_classes": "the training classes", "embedding_size": "the model's embedding size"}
    filled = dict(params)
    for key in RUNTIME_PARAMS:
        if key in filled and filled[key] != known[key]:
            expected = f"{known[key]} ({source[key]}; leave it out to have it filled)"
            raise ParameterError(f"{key}={filled[key]!r}, expected {expected}", key, filled[key], expected)
        if key not in filled and key in required_params(name):
            filled[key] = known[key]
    return filled


def build_loss(name: str, *, tcm: bool | Mapping[str, float] | None = None, **params: Any) -> nn.Module:
    """Build the loss ``name`` with keyword ``params``; ``tcm`` (true or a mapping) wraps it in ``with_tcm``.

    A loss that owns parameters (ArcFace's class weights, ProxyAnchor's proxies) keeps them: pass the returned
    module's ``parameters()`` to the optimiser. Missing or unknown parameters raise a ``TcdmlInputError``.
    """
    cls = _resolve(name)
    if "distance" in params:
        params["distance"] = _distance(params["distance"])
    missing = [p for p in required_params(name) if p not in params]
    if missing:
        raise TcdmlInputError(f"loss {name!r} needs parameter(s): {', '.join(missing)}")
    try:
        loss = cls(**params)
    except TypeError as error:
        raise TcdmlInputError(f"bad parameters for loss {name!r}: {error}") from None
    if tcm is None or tcm is False:
        return loss
    if isinstance(loss, TCMLoss):
        raise TcdmlInputError("tcm cannot be added to the TCM loss itself")
    try:
        settings = TCMSettings() if tcm is True else TCMSettings.from_mapping(tcm)
    except TcdmlInputError as error:
        raise TcdmlInputError(f"bad tcm parameters: {error}") from None
    return with_tcm(loss, **settings.loss_kwargs())


def build_loss_from_config(config: Mapping[str, Any]) -> nn.Module:
    """Build a loss from a config mapping ``{name, params?, tcm?}`` (module docstring); unknown keys raise."""
    unknown = sorted(set(config) - CONFIG_KEYS)
    if unknown:
        raise TcdmlInputError(
            f"unknown loss config key(s): {', '.join(unknown)} (allowed: name, params, tcm)"
        )
    if "name" not in config:
        raise TcdmlInputError("loss config needs a 'name'")
    params = config.get("params") or {}
    if not isinstance(params, Mapping):
        raise TcdmlInputError(f"loss config 'params' must be a mapping, got {type(params).__name__}")
    return build_loss(str(config["name"]), tcm=config.get("tcm"), **dict(params))
