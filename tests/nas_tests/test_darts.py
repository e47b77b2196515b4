"""DARTS: the proposals Katib's service makes, and one bi-level step on a tiny supernet."""

from __future__ import annotations

import re

import torch

from katib.controller import admit
from nas import parse_katib_text
from nas.darts import Search, SearchSettings, Supernet
from suggestion import get_algorithm
from tests.nas_tests.conftest import example


def test_darts_hands_each_trial_katibs_three_parameters():
    from katib.controller import admit

    exp = admit(example("darts"))
    out = get_algorithm("darts").suggest(exp, [], 1, {})
    assert len(out) == 1
    p = out[0].parameters
    assert set(p) == {"algorithm-settings", "search-space", "num-layers"}
    settings = parse_katib_text(p["algorithm-settings"])
    assert settings["num_epochs"] == 4 and settings["w_momentum"] == 0.9 and settings["num_workers"] == 4
    assert parse_katib_text(p["search-space"])[-1] == "skip_connection" and p["num-layers"] == "3"


def test_one_step_updates_both_weights_and_alphas():
    torch.manual_seed(0)
    net = Supernet(["separable_convolution_3x3", "max_pooling_3x3", "skip_connection"], 1, 10, layers=3,
                   init_channels=4, nodes=2, stem_multiplier=1)
    search = Search(net, SearchSettings(num_epochs=1, alpha_lr=0.01, w_lr=0.05))
    alphas = [a.detach().clone() for a in net.alphas()]
    weights = [w.detach().clone() for w in net.weights()]
    x, y = torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,))
    loss = search.step((x, y), (x.flip(0), y.flip(0)))
    assert loss > 0
    assert all(not torch.equal(a, b) for a, b in zip(alphas, net.alphas(), strict=True))
    assert sum(not torch.equal(a, b) for a, b in zip(weights, net.weights(), strict=True)) > len(weights) // 2


def test_genotype_is_katibs_format():
    torch.manual_seed(1)
    net = Supernet(["separable_convolution_3x3", "dilated_convolution_3x3", "skip_connection"], 1, 10, layers=2,
                   init_channels=4, nodes=3, stem_multiplier=1)
    text = str(net.genotype())
    assert re.fullmatch(r"([\w-]+)=(Genotype.*)", f"Best-Genotype={text}")
    assert text.startswith("Genotype(normal=[[(") and text.endswith("reduce_concat=range(2, 5))")
    assert "'none'" not in text  # the zero operation is never chosen
    # Each node keeps its two strongest incoming edges, from distinct earlier states.
    for node in net.genotype().normal:
        assert len(node) == 2 and node[0][1] != node[1][1]


def test_the_found_genotype_builds_a_network_that_trains():
    from nas.darts import Network

    torch.manual_seed(2)
    supernet = Supernet(["separable_convolution_3x3", "max_pooling_3x3", "skip_connection"], 1, 10, layers=3,
                        init_channels=4, nodes=2, stem_multiplier=1)
    net = Network(supernet.genotype(), 1, 10, layers=3, init_channels=4, stem_multiplier=1)
    assert len(net.cells) == 3 and sum(c.reduction for c in net.cells) == 2
    x, y = torch.randn(6, 1, 8, 8), torch.randint(0, 10, (6,))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    losses = []
    for _ in range(15):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] / 2  # it learns (here: memorises six images)


def test_filter_sizes_a_darts_cell_cannot_build_are_refused_naming_the_field():
    # '3.0' (a double range, or a categorical) became separable_convolution_3.0x3.0 and an
    # even size a cell whose output shrank: both were admitted and died inside the trial,
    # after its search; so did a space whose only operation is none (no genotype).
    import pytest

    from katib.errors import ValidationError

    for values in (["3.0"], ["4"], ["3", "6"]):
        doc = example("darts")
        ops = doc["spec"]["nasConfig"]["operations"]
        conv = next(op for op in ops if op["operationType"] != "skip_connection")
        conv["parameters"] = [{"name": "filter_size", "parameterType": "categorical", "feasibleSpace": {"list": values}}]
        with pytest.raises(ValidationError, match="DARTS filter_size must be an odd whole number"):
            admit(doc)
    doc = example("darts")
    doc["spec"]["nasConfig"]["operations"] = [{"operationType": "none"}]
    with pytest.raises(ValidationError, match="an operation other than none"):
        admit(doc)


def test_a_darts_trial_that_reports_no_genotype_is_told_what_line_is_expected(tmp_path):
    # The hint gave a number as the example line ("Best-Genotype=0.93") for a text objective.
    from katib.controller import Controller
    from katib.store import Store

    doc = example("darts")
    container = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["command"] = ["sh", "-c", "echo searched ${trialParameters.numberLayers} layers",
                            "${trialParameters.algorithmSettings}", "${trialParameters.searchSpace}"]
    container.pop("args", None)
    store = Store(str(tmp_path / "k.db"))
    ctl = Controller(store, runs_root=tmp_path / "runs", tick=0.05)
    rec, _ = ctl.submit(admit(doc), tmp_path)
    ctl.run(rec.namespace, rec.name)
    (t,) = store.list_trials(rec.id)
    assert t.state == "MetricsUnavailable"
    assert "Best-Genotype=Genotype(normal=[...], ...)" in t.conditions[-1].message, t.conditions[-1].message
    store.close()
