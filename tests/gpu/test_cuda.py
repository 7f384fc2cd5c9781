"""The CUDA paths give the CPU's results (``pytest -m gpu``; skipped on a machine without CUDA).

The evaluator's device path (the one pass on the GPU) and the losses' forward and backward on CUDA, each
against the same computation on the CPU, on real data (scikit-learn's digits).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from tcdml.losses import build_loss
from tcdml.metrics import evaluate

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (no GPU on this machine)"),
]


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    pixels, labels = load_digits(return_X_y=True)
    return pixels.astype(np.float32), labels


@pytest.mark.parametrize("mode", ["histogram", "exact"])
def test_evaluate_on_cuda_equals_cpu(digits, mode: str) -> None:
    x, y = digits
    on_cpu = evaluate(x, y, mode=mode, device="cpu").to_dict()
    on_gpu = evaluate(x, y, mode=mode, device="cuda").to_dict()
    for key in ("recall@1", "recall@4", "map@r", "opis", "eps_opis", "t_lo", "t_hi"):
        assert on_gpu[key] == pytest.approx(on_cpu[key], rel=1e-4, abs=1e-6), key


@pytest.mark.parametrize("name", ["smooth_ap", "recall_at_k", "tcm", "arcface"])
def test_losses_on_cuda_equal_cpu(digits, name: str) -> None:
    x, y = digits
    torch.manual_seed(0)
    params = {"num_classes": 10, "embedding_size": 64} if name == "arcface" else {}
    tcm = None if name == "tcm" else {"margins": "fixed"}
    results = []
    for device in ("cpu", "cuda"):
        torch.manual_seed(0)
        loss = build_loss(name, tcm=tcm, **params).to(device)
        embeddings = torch.nn.functional.normalize(torch.from_numpy(x[:256]).to(device), dim=1)
        embeddings.requires_grad_(True)
        value = loss(embeddings, torch.from_numpy(y[:256]).to(device))
        value.backward()
        results.append((float(value.detach()), embeddings.grad.detach().cpu()))
    assert results[1][0] == pytest.approx(results[0][0], rel=1e-4, abs=1e-6)
    torch.testing.assert_close(results[1][1], results[0][1], rtol=1e-3, atol=1e-5)
