"""``tcdml.distributed``: rank shares, and the gathers on one process and in a 2-process gloo group."""

from __future__ import annotations

import json
import socket

import pytest
import torch
import torch.multiprocessing as mp

from tcdml.distributed import (
    all_reduce_sum,
    gather_rows,
    gather_with_grad,
    is_distributed,
    rank_and_world,
    rank_share,
)

WORLD = 2


@pytest.mark.parametrize("n", [0, 1, 5, 7, 100])
@pytest.mark.parametrize("world", [1, 2, 3, 8])
def test_rank_shares_tile_the_rows_in_order(n: int, world: int) -> None:
    shares = [rank_share(n, rank, world) for rank in range(world)]
    assert [row for share in shares for row in share] == list(range(n))
    assert max(map(len, shares)) - min(map(len, shares)) <= 1


def test_one_process_communicates_nothing() -> None:
    assert not is_distributed() and rank_and_world() == (0, 1)
    x = torch.arange(6.0).reshape(3, 2).requires_grad_()
    assert gather_rows(x) is x
    gathered, offset = gather_with_grad(x)
    assert gathered is x and offset == 0
    count = torch.tensor(4)
    total = all_reduce_sum(count)
    assert total.item() == 4 and total is not count


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, port: int, out_dir: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        local = torch.full((rank + 2, 3), float(rank))  # unequal rows: 2 on rank 0, 3 on rank 1
        x = local.clone().requires_grad_()
        gathered, offset = gather_with_grad(x)
        # d/dx of sum over ranks of (rank + 1) * sum(gathered): every row gets 1 + 2 = 3
        ((rank + 1) * gathered.sum()).backward()
        result = {
            "rank_and_world": list(rank_and_world()),
            "rows": gather_rows(local)[:, 0].tolist(),
            "labels": gather_rows(torch.tensor([rank] * (rank + 1))).tolist(),
            "offset": offset,
            "grad": x.grad[:, 0].tolist(),
            "sum": all_reduce_sum(torch.tensor(rank + 1)).item(),
        }
        with open(f"{out_dir}/rank{rank}.json", "w") as handle:
            json.dump(result, handle)
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes(tmp_path) -> None:
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    for rank in range(WORLD):
        got = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert got["rank_and_world"] == [rank, WORLD]
        assert got["rows"] == [0.0, 0.0, 1.0, 1.0, 1.0]
        assert got["labels"] == [0, 1, 1]
        assert got["offset"] == [0, 2][rank]
        assert got["grad"] == [3.0] * (rank + 2)
        assert got["sum"] == 3
