"""ENAS trial program: builds the child network of one proposal (Katib's ``architecture``
and ``nn_config`` parameters) in PyTorch, trains it and prints ``Training-Accuracy=`` and
``Validation-Accuracy=`` after each epoch (Katib's StdOut format).

    python enas_trial.py --architecture="[[3], [0, 1], …]" --nn_config="{…}" [--num_epochs 4]
                         [--dataset digits|cifar10|npz] [--data-dir PATH]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from nas import data
from nas.enas_child import EnasChild


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--architecture", required=True)
    parser.add_argument("--nn_config", required=True)
    parser.add_argument("--num_epochs", type=int, default=4)
    parser.add_argument("--dataset", default="digits", choices=data.DATASETS)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    d = data.load(args.dataset, args.data_dir, seed=args.seed)
    model = EnasChild(args.architecture, args.nn_config).to(device)
    x_train, y_train, x_test, y_test = (t.to(device) for t in (d.x_train, d.y_train, d.x_test, d.y_test))
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, args.num_epochs)
    generator = torch.Generator(device="cpu").manual_seed(args.seed)
    for epoch in range(1, args.num_epochs + 1):
        for xb, yb in data.batches(x_train, y_train, args.batch_size, generator):
            optimizer.zero_grad()
            F.cross_entropy(model(xb), yb).backward()
            optimizer.step()
        scheduler.step()
        print(f"epoch {epoch}")
        print(f"Training-Accuracy={data.accuracy(model, x_train, y_train):.4f}")
        print(f"Validation-Accuracy={data.accuracy(model, x_test, y_test):.4f}", flush=True)


if __name__ == "__main__":
    main()
