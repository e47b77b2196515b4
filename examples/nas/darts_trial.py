"""DARTS trial program: the whole architecture search of Katib's ``darts`` algorithm in one
trial. Reads Katib's three parameters, builds the supernet of the given primitives, runs the
bi-level search (alphas on one half of the training data, weights on the other) and after
each epoch prints the supernet's ``Validation-Accuracy=`` and the genotype derived so far,
``Best-Genotype=Genotype(normal=[…], …)`` (collected with Katib's filter
``([\\w-]+)=(Genotype.*)``). Then the network that genotype describes is trained from
scratch for ``--eval-epochs`` and its accuracy printed as ``Genotype-Accuracy=``.

    python darts_trial.py --algorithm-settings="{'num_epochs': 5, …}" \\
        --search-space="['separable_convolution_3x3', 'skip_connection']" --num-layers=3 \\
        [--dataset digits|cifar10|npz] [--data-dir PATH]
"""

from __future__ import annotations

import argparse

import torch

from nas import data, parse_katib_text
from nas.darts import Network, Search, SearchSettings, Supernet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algorithm-settings", required=True)
    parser.add_argument("--search-space", required=True)
    parser.add_argument("--num-layers", required=True)
    parser.add_argument("--dataset", default="digits", choices=data.DATASETS)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--eval-epochs", type=int, default=3, help="epochs to train the found network (0: skip)")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    settings = parse_katib_text(args.algorithm_settings)
    primitives = parse_katib_text(args.search_space)
    s = SearchSettings.from_dict(settings)
    d = data.load(args.dataset, args.data_dir, seed=args.seed)
    channels, _, _ = d.shape
    net = Supernet(primitives, channels, d.num_classes, int(args.num_layers.strip("\"'")),
                   init_channels=int(settings.get("init_channels", 16)), nodes=int(settings.get("num_nodes", 4)),
                   stem_multiplier=int(settings.get("stem_multiplier", 3))).to(device)
    search = Search(net, s)
    half = len(d.x_train) // 2
    x_w, y_w = d.x_train[:half].to(device), d.y_train[:half].to(device)
    x_a, y_a = d.x_train[half:].to(device), d.y_train[half:].to(device)
    x_test, y_test = d.x_test.to(device), d.y_test.to(device)
    generator = torch.Generator(device="cpu").manual_seed(args.seed)
    print_step = int(settings.get("print_step", 50))
    best_accuracy, best_genotype = -1.0, None
    for epoch in range(1, s.num_epochs + 1):
        pairs = zip(data.batches(x_w, y_w, s.batch_size, generator), data.batches(x_a, y_a, s.batch_size, generator),
                    strict=False)  # the halves may differ by one batch
        for step, (train, val) in enumerate(pairs, 1):
            loss = search.step(train, val)
            if step % print_step == 0:
                print(f"epoch {epoch} step {step} loss {loss:.4f}")
        search.end_epoch()
        accuracy = data.accuracy(net, x_test, y_test)
        genotype = net.genotype()
        if accuracy > best_accuracy:
            best_accuracy, best_genotype = accuracy, genotype
        print(f"epoch {epoch} genotype {genotype}")
        print(f"Validation-Accuracy={accuracy:.4f}")
        print(f"Best-Genotype={best_genotype}", flush=True)
    if args.eval_epochs and best_genotype is not None:
        # The architecture found, as a network of its own, trained from scratch on all the training data.
        model = Network(best_genotype, channels, d.num_classes, int(args.num_layers.strip("\"'")),
                        init_channels=int(settings.get("init_channels", 16)),
                        stem_multiplier=int(settings.get("stem_multiplier", 3))).to(device)
        optimizer = torch.optim.SGD(model.parameters(), lr=s.w_lr, momentum=s.w_momentum, weight_decay=s.w_weight_decay)
        x_train, y_train = d.x_train.to(device), d.y_train.to(device)
        for epoch in range(1, args.eval_epochs + 1):
            for xb, yb in data.batches(x_train, y_train, s.batch_size, generator):
                optimizer.zero_grad()
                torch.nn.functional.cross_entropy(model(xb), yb).backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), s.w_grad_clip)
                optimizer.step()
            print(f"genotype network epoch {epoch}")
            print(f"Genotype-Accuracy={data.accuracy(model, x_test, y_test):.4f}", flush=True)


if __name__ == "__main__":
    main()
