"""The adapter heads: small modules on top of a frozen model's embeddings.

Both heads map (N, D_in) float32 embeddings of any model to (N, D_out) L2-normalised embeddings; their input
is L2-normalised first (``x^ = x / ||x||``), so the scale of the input model's vectors does not matter:

- ``residual`` (default): ``y = normalize(x^ + W2 gelu(W1 x^ + b1) + b2)``, ``W1`` (hidden x D_in) with
  PyTorch's default init, ``W2`` (D_in x hidden) and ``b2`` zero-initialised, so the untrained head is
  exactly ``normalize(x)``; D_out = D_in.
- ``linear``: ``y = normalize(W x^ + b)``, ``b = 0`` at init and ``W`` (D_out x D_in) initialised to the
  identity when D_out = D_in, to ``[I; 0]`` when D_out > D_in (the input padded with zeros: the same
  cosines), and, by ``init_projection``, to the top D_out right-singular vectors of the normalised training
  embeddings when D_out < D_in (the projection that keeps most of their energy: uncentred PCA).

Both are computed with one normalisation (``normalize(x^ + r) = normalize(x + ||x|| r)``, the same function),
so the untrained heads give ``torch.nn.functional.normalize(x)`` bit for bit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tcdml.adapt.settings import KINDS, MAX_WIDTH
from tcdml.errors import TcdmlInputError


def _norm(x: torch.Tensor) -> torch.Tensor:
    """(N, 1) row norms, at least ``F.normalize``'s eps."""
    return x.norm(dim=1, keepdim=True).clamp_min(1e-12)


class ResidualAdapter(nn.Module):
    """``y = normalize(x^ + W2 gelu(W1 x^ + b1) + b2)``, ``x^ = normalize(x)``; ``W2``, ``b2`` start at 0."""

    def __init__(self, input_size: int, hidden: int) -> None:
        super().__init__()
        self.up = nn.Linear(input_size, hidden)
        self.down = nn.Linear(hidden, input_size)
        nn.init.zeros_(self.down.weight)
        nn.init.zeros_(self.down.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = _norm(x)
        # normalize(x^ + r) = normalize(x + ||x|| r): one normalisation, so r = 0 gives normalize(x) exactly.
        return F.normalize(x + norm * self.down(F.gelu(self.up(x / norm))), dim=1)


class LinearAdapter(nn.Module):
    """``y = normalize(W x^ + b)``, ``x^ = normalize(x)``; ``W`` starts as ``eye(D_out, D_in)``, b as 0."""

    def __init__(self, input_size: int, embedding_size: int) -> None:
        super().__init__()
        self.proj = nn.Linear(input_size, embedding_size)
        with torch.no_grad():
            self.proj.weight.copy_(torch.eye(embedding_size, input_size))
            self.proj.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # normalize(W x^ + b) = normalize(W x + ||x|| b): W = I, b = 0 gives normalize(x) exactly.
        return F.normalize(F.linear(x, self.proj.weight) + _norm(x) * self.proj.bias, dim=1)


def check_head_size(kind: str, input_size: int, embedding_size: int, hidden: int | None) -> None:
    """Refuse, before it is built, a head wider than ``MAX_WIDTH`` inputs or whose training (float32
    weights, gradients and AdamW's two moments: 16 bytes a parameter) needs more memory than is available."""
    from tcdml.io.embeddings_file import check_memory

    if input_size > MAX_WIDTH:
        raise TcdmlInputError(
            f"embeddings of dimension {input_size:,}: an adapter takes at most {MAX_WIDTH:,} inputs"
        )
    if kind == "residual":
        parameters = 2 * input_size * (hidden or 0) + (hidden or 0) + input_size
    else:
        parameters = embedding_size * (input_size + 1)
    check_memory(f"the {kind} adapter head", {"weights, gradients and optimiser state": 16 * parameters})


def build_head(kind: str, input_size: int, embedding_size: int, hidden: int | None) -> nn.Module:
    """An untrained head of ``kind`` (module docstring); ``hidden`` is the residual head's width."""
    if kind == "residual":
        if embedding_size != input_size:
            raise TcdmlInputError(
                f"--embedding-size={embedding_size}: a residual adapter keeps the input size {input_size} "
                "(use --kind linear to change it)"
            )
        if hidden is None or hidden < 1:
            raise TcdmlInputError(f"--hidden={hidden}: expected a positive integer")
        return ResidualAdapter(input_size, hidden)
    if kind == "linear":
        return LinearAdapter(input_size, embedding_size)
    raise TcdmlInputError(f"--kind={kind!r}: expected one of {', '.join(KINDS)}")


def init_projection(head: nn.Module, embeddings: np.ndarray) -> None:
    """Set a linear head with D_out < D_in to the top D_out right-singular vectors of the normalised
    ``embeddings`` (the rows of ``W``; ``tcdml.models.head.principal_directions``); any other head is left
    as built."""
    from tcdml.models.head import principal_directions

    proj = getattr(head, "proj", None)
    if proj is None or proj.out_features >= proj.in_features:
        return
    with torch.no_grad():
        proj.weight.copy_(torch.from_numpy(principal_directions(embeddings, proj.out_features)))


@torch.no_grad()
def transform(head: nn.Module, embeddings: np.ndarray | torch.Tensor, rows: int = 65536) -> torch.Tensor:
    """``head(embeddings)`` in eval mode, float32, in blocks of ``rows`` (bounded memory); training mode of
    ``head`` is restored afterwards."""
    x = torch.as_tensor(embeddings).float()
    was_training = head.training
    head.eval()
    try:
        return torch.cat([head(x[start : start + rows]) for start in range(0, len(x), rows)])
    finally:
        head.train(was_training)


def head_meta(kind: str, input_size: int, embedding_size: int, hidden: int | None) -> dict[str, Any]:
    """The head's part of ``adapter.json`` (``tcdml.adapt.folder``)."""
    return {
        "kind": kind,
        "input_size": int(input_size),
        "hidden": int(hidden) if kind == "residual" and hidden is not None else None,
        "embedding_size": int(embedding_size),
        "activation": "gelu" if kind == "residual" else None,
        "normalize_input": True,
    }
