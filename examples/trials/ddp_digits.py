"""Data-parallel training with torch.distributed (gloo, CPU) on scikit-learn's digits.

Run as the replicas of a PyTorchJob: each process reads MASTER_ADDR, MASTER_PORT,
WORLD_SIZE and RANK (set by the training operator on a cluster, by katib's local
executor here), trains on its shard, and gradients are averaged across processes. Rank 0
prints ``Validation-accuracy=…`` after each epoch.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
import torch.distributed as dist
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()

    dist.init_process_group("gloo")  # env:// : MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    torch.set_num_threads(1)

    x, y = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    scaler = StandardScaler().fit(x_train)
    train = TensorDataset(torch.tensor(scaler.transform(x_train), dtype=torch.float32), torch.tensor(y_train))
    x_val_t = torch.tensor(scaler.transform(x_val), dtype=torch.float32)
    y_val_t = torch.tensor(y_val)
    sampler = DistributedSampler(train, num_replicas=world, rank=rank, shuffle=True, seed=0)
    loader = DataLoader(train, batch_size=32, sampler=sampler)

    model = DistributedDataParallel(nn.Sequential(nn.Linear(64, args.hidden), nn.ReLU(), nn.Linear(args.hidden, 10)))
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(1, args.epochs + 1):
        sampler.set_epoch(epoch)
        model.train()
        for xb, yb in loader:
            optimizer.zero_grad()
            loss_fn(model(xb), yb).backward()  # DDP averages the gradients across processes
            optimizer.step()
        model.eval()
        with torch.no_grad():
            logits = model(x_val_t)
            accuracy = (logits.argmax(1) == y_val_t).float().mean().item()
            val_loss = loss_fn(logits, y_val_t).item()
        if rank == 0:
            print(f"epoch {epoch}: Validation-accuracy={accuracy:.4f} loss={val_loss:.4f} world-size={world}", flush=True)
    dist.barrier()  # every rank is done before any tears the group down
    dist.destroy_process_group()
    # gloo's threads can race the interpreter's teardown ("terminate called without an
    # active exception"): leave without running it, everything is written.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
