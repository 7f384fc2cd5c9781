"""Input kinds declared once (``tcdml.deploy.kinds``): names, dtypes, dynamic axes, probe inputs and
contract checks agree with each other, and the exporter writes the axes the kind declares."""

from __future__ import annotations

import numpy as np
import pytest

from tcdml.deploy.kinds import KINDS
from tcdml.errors import ParameterError

CONTRACTS = {
    "image": {"kind": "image", "image_size": 8, "mean": [0.5] * 3, "std": [0.25] * 3},
    "text": {"kind": "text", "tokenizer": "tokenizer.json", "max_length": 16},
    "embedding": {"kind": "embedding", "input_size": 5},
}


@pytest.mark.parametrize("name", sorted(KINDS))
def test_each_kind_is_consistent(name: str) -> None:
    kind = KINDS[name]
    contract = CONTRACTS[name]
    problems: list[str] = []
    try:
        kind.check_contract(contract)
    except ParameterError as exc:
        problems.append(exc.name)
    assert problems == []
    probe = kind.probe(contract)
    assert tuple(probe) == kind.inputs and all(
        array.dtype == np.dtype(kind.dtype) for array in probe.values()
    )
    shape, _ = kind.graph_shape(contract)
    for array in probe.values():
        assert len(shape) == array.ndim and all(
            w is None or w == s for w, s in zip(shape, array.shape, strict=True)
        )
    axes = kind.dynamic_axes("embeddings")
    assert axes["embeddings"] == {0: "batch"} and all((1 in axes[n]) == kind.token_axis for n in kind.inputs)
    if name != "text":
        assert kind.check_batch(probe[kind.inputs[0]], contract).shape == probe[kind.inputs[0]].shape


def test_a_bad_contract_is_named_by_its_key() -> None:
    problems: list[tuple[str, object]] = []
    bad = {**CONTRACTS["image"], "std": [0.25, 0.0, 0.25]}
    with pytest.raises(ParameterError) as caught:
        KINDS["image"].check_contract(bad)
    problems.append((caught.value.name, caught.value.value))
    assert problems == [("std", [0.25, 0.0, 0.25])]
