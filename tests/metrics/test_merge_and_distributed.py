"""The pass is splittable: partial states over disjoint rows merge to the one-pass result, in-process
and across 2 gloo processes."""

from __future__ import annotations

import json
import socket

import numpy as np
import pytest
import torch.multiprocessing as mp

from tcdml.metrics import EvaluationSettings, evaluate
from tcdml.metrics.engine import finish, prepare_inputs, run_prepared
from tests.helpers import clustered_embeddings

COMPARED = ("recall@1", "recall@2", "recall@4", "recall@8", "map@r", "opis", "eps_opis", "t_lo", "t_hi")


def test_merged_partial_states_equal_one_pass() -> None:
    x, y = clustered_embeddings([9, 14, 3, 20, 1, 11], spread=0.8, seed=4)
    settings = EvaluationSettings()
    prepared = prepare_inputs(x, y, None, None, settings)
    n = len(y)
    parts = [
        run_prepared(prepared, settings, range(a, b), ks=settings.ks) for a, b in ((0, 17), (17, 30), (30, n))
    ]
    merged = parts[0].merge(parts[1]).merge(parts[2])
    split = finish(prepared, merged, settings).to_dict()
    whole = evaluate(x, y).to_dict()
    for key in COMPARED:
        assert split[key] == pytest.approx(whole[key], rel=1e-12, abs=1e-15), key
    with pytest.raises(ValueError, match="same query rows twice"):
        parts[0].merge(parts[0])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    import torch.distributed as dist

    from tcdml.metrics.distributed import evaluate_distributed

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        x, y = clustered_embeddings([9, 14, 3, 20, 1, 11], spread=0.8, seed=4)
        # Unequal shards on purpose: rank 0 holds 25 samples, rank 1 the rest.
        shard = slice(0, 25) if rank == 0 else slice(25, len(y))
        result = evaluate_distributed(x[shard], y[shard])
        with open(f"{out_dir}/rank{rank}.json", "w") as handle:
            json.dump(result.to_dict(), handle)
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_equal_one_process(tmp_path) -> None:
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    x, y = clustered_embeddings([9, 14, 3, 20, 1, 11], spread=0.8, seed=4)
    single = evaluate(x, y).to_dict()
    for rank in range(2):
        got = json.loads((tmp_path / f"rank{rank}.json").read_text())
        for key in COMPARED:
            assert got[key] == pytest.approx(single[key], rel=1e-12, abs=1e-15), (rank, key)
        assert got["num_samples"] == len(y) and np.isclose(got["num_left_out_classes"], 1)
