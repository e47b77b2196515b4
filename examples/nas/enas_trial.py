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
from nas.enas_child import EnasChild, parse_katib_text


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
    fits(parse_katib_text(args.nn_config), d, args.dataset)
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


def fits(config: dict, d: data.ImageData, dataset: str) -> None:
    """Exit saying so where the experiment's graphConfig does not describe the data set:
    the network would fail inside PyTorch (a channel count) or train on the wrong classes."""
    c, h, w = d.shape
    sizes, classes = [int(v) for v in config["input_sizes"]], [int(v) for v in config["output_sizes"]]
    declared = (sizes + [1, 1, 1])[:3] if len(sizes) >= 3 else [sizes[0], sizes[-1], 1]  # as EnasChild reads it
    problems = []
    if declared != [h, w, c]:
        problems.append(f"inputSizes {sizes} (the data set's images are [{h}, {w}, {c}])")
    if classes[:1] != [d.num_classes]:
        problems.append(f"outputSizes {classes} (the data set has [{d.num_classes}] classes)")
    if problems:
        raise SystemExit(f"the experiment's nasConfig.graphConfig does not fit --dataset {dataset}: "
                         + "; ".join(problems) + ". Give graphConfig those sizes, or the trial --dataset cifar10 "
                         "--data-dir <the CIFAR-10 python pickles> (Katib's CIFAR-10 examples)")


if __name__ == "__main__":
    main()
