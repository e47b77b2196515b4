"""The NAS algorithms over Katib's ``nasConfig``: ``enas`` and ``darts``.

``enas`` proposes whole architectures sampled by an LSTM controller (see
``nas.Controller``), which learns by REINFORCE from the finished trials' objective values
(negated when minimising). Its weights, optimiser and baseline travel in the algorithm
state the controller persists, with the names of the trials already learned from, so a
restarted server carries on learning where it stopped. Each proposal is Katib's pair of
trial parameters: ``architecture`` (``[[27], [29, 0], …]``) and ``nn_config`` (JSON with
the graph and the embedding of each operation used), both written with single quotes as
Katib's service writes them.

``darts`` searches inside one trial (the bi-level optimisation of a supernet, see
``nas.darts``): it hands each trial Katib's three parameters ``algorithm-settings`` (JSON),
``search-space`` (the primitives, e.g. ``separable_convolution_3x3``) and ``num-layers``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import Any

from katib.errors import FieldError
from katib.spec import Experiment

from ._base import Algorithm, Assignment, Setting, TrialView, integer, number, seed


def _none_or(parse: Any) -> Any:
    def parsed(text: str) -> Any:
        return None if text == "None" else parse(text)

    return parsed


def _open_unit(text: str) -> float:
    value = number(0, 1, low_open=True)(text)
    if value >= 1:
        raise ValueError(f"must be < 1 (got {text}): the skip rate's KL penalty divides by 1 - target")
    return value


class _NasAlgorithm(Algorithm):
    searches_nas = True
    #: Whether the graph's input and output sizes are needed.
    needs_sizes = True

    def validate(self, experiment: Experiment) -> list[FieldError]:
        from nas import validate_nas_config

        errors = super().validate(experiment)
        if self.name == "enas" and importlib.util.find_spec("torch") is None:
            errors.append(FieldError("spec.algorithm.algorithmName",
                                     "enas needs PyTorch (its controller is an LSTM): pip install 'katib[nas]'"))
        if experiment.spec.nas_config is not None:
            errors += validate_nas_config(experiment.spec.nas_config, sizes=self.needs_sizes)
        return errors

    def exhausted(self, experiment: Experiment, trials: Sequence[TrialView], state: dict[str, Any] | None = None) -> bool:
        return False  # maxTrialCount ends a NAS experiment


#: The most work ``enas`` may plan for one suggestion: ``enas_work``'s estimate, in units of
#: 40–55 ns of one core (measured on a loaded 2-core machine), so 6–8 minutes at most.
ENAS_MAX_WORK = 1 << 33
ENAS_WORK_RULE = ("controller_train_steps × parallelTrialCount × numLayers × "
                  "(controller_hidden_size² + controller_hidden_size × operations / 8 + 256 × (numLayers + 128))")


def enas_work(train_steps: int, batch: int, num_layers: int, hidden_size: int, operations: int) -> int:
    """The controller's training work for one suggestion, as ``ENAS_WORK_RULE``: it trains on
    each trial finished since the last (at most ``batch``, the parallel trials) for
    ``train_steps`` steps, and each step walks the layers with two LSTM cells (``hidden²``),
    the operation logits (``hidden × operations``) and attention over the earlier layers; the
    constant is the fixed cost of a layer's step (about 1.5 ms, the same as hidden size 180)."""
    per_layer = hidden_size * hidden_size + hidden_size * operations // 8 + 256 * (num_layers + 128)
    return train_steps * batch * num_layers * per_layer


def _batch(experiment: Experiment) -> int:
    """The most finished trials one suggestion learns from: the parallel trials."""
    return max(1, experiment.spec.parallel_trial_count or 3)  # 3: Katib's default


class ENAS(_NasAlgorithm):
    """Katib's ``enas``; see the module docstring."""

    name = "enas"
    settings = {
        "controller_hidden_size": Setting(integer(1, 512), 64),  # bounds: the server trains the controller
        "controller_temperature": Setting(_none_or(number(0, low_open=True)), 5.0),
        "controller_tanh_const": Setting(_none_or(number(0, low_open=True)), 2.25),
        "controller_entropy_weight": Setting(_none_or(number(0, low_open=True)), 1e-5),
        "controller_baseline_decay": Setting(number(0, 1, low_open=True), 0.999),
        "controller_learning_rate": Setting(number(0, 1, low_open=True), 5e-5),
        "controller_skip_target": Setting(_open_unit, 0.4),
        "controller_skip_weight": Setting(_none_or(number(0, low_open=True)), 0.8),
        "controller_train_steps": Setting(integer(1, 1000), 50),
        "controller_log_every_steps": Setting(integer(1), 10),
        "random_state": Setting(seed),  # extension: reproducible proposals
    }

    def validate(self, experiment: Experiment) -> list[FieldError]:
        """The settings one by one, then their product: ``enas_work`` at most ``ENAS_MAX_WORK``."""
        from nas._space import operation_count

        errors = super().validate(experiment)
        nas = experiment.spec.nas_config
        if errors or nas is None or nas.graph_config is None or not nas.graph_config.num_layers:
            return errors
        s = self.parsed_settings(experiment)
        steps, hidden, layers = s["controller_train_steps"], s["controller_hidden_size"], nas.graph_config.num_layers
        batch, operations = _batch(experiment), operation_count(nas)
        work = enas_work(steps, batch, layers, hidden, operations)
        if work > ENAS_MAX_WORK:
            errors.append(FieldError(
                "spec.algorithm.algorithmSettings",
                f"enas would train its controller for about {work:.2e} units of work per suggestion ({ENAS_WORK_RULE}: "
                f"{steps} × {batch} × {layers} × ({hidden}² + {hidden} × {operations} / 8 + 256 × ({layers} + 128))); "
                f"at most {ENAS_MAX_WORK} (2^33, minutes of one CPU): lower controller_train_steps, "
                "controller_hidden_size, numLayers or parallelTrialCount"))
        return errors

    def suggest(
        self,
        experiment: Experiment,
        trials: Sequence[TrialView],
        count: int,
        state: dict[str, Any] | None = None,
    ) -> list[Assignment]:
        import torch

        from nas import ControllerSettings, EnasLearner, NasSpace, katib_text, parse_katib_text

        state = {} if state is None else state
        s = self.parsed_settings(experiment)
        assert experiment.spec.nas_config is not None
        space = NasSpace.from_config(experiment.spec.nas_config)
        settings = ControllerSettings(
            hidden_size=s["controller_hidden_size"], temperature=s["controller_temperature"],
            tanh_const=s["controller_tanh_const"], entropy_weight=s["controller_entropy_weight"],
            baseline_decay=s["controller_baseline_decay"], learning_rate=s["controller_learning_rate"],
            skip_target=s["controller_skip_target"], skip_weight=s["controller_skip_weight"],
            train_steps=s["controller_train_steps"],
        )
        learner = EnasLearner(space.num_layers, len(space.operations), settings, state.get("controller"), s["random_state"])
        learned: list[str] = state.setdefault("learned", [])
        done = set(learned)
        maximize = experiment.spec.objective is not None and experiment.spec.objective.type == "maximize"
        fresh = [t for t in trials if t.state in ("Succeeded", "EarlyStopped") and t.objective is not None
                 and t.name not in done and "architecture" in t.parameters]
        fresh = fresh[:_batch(experiment)]  # the rest next time: one suggestion's work stays within enas_work
        if fresh:
            arcs = [parse_katib_text(t.parameters["architecture"]) for t in fresh]
            rewards = [t.objective if maximize else -t.objective for t in fresh]  # type: ignore[operator]
            learner.learn(arcs, rewards)  # type: ignore[arg-type]
            learned += [t.name for t in fresh]
        generator = torch.Generator()
        generator.manual_seed(hash((s["random_state"], len(trials))) & 0x7FFFFFFF if s["random_state"] is not None
                              else int(torch.seed() & 0x7FFFFFFF))
        seen = {t.parameters.get("architecture") for t in trials}
        out: list[Assignment] = []
        for _ in range(count):
            for _attempt in range(20):  # a repeat of a known architecture is drawn again
                arc = learner.sample(1, generator)[0]
                text = katib_text(arc)
                if text not in seen:
                    break
            else:  # the controller has converged: explore with one changed layer instead of repeating
                arc = _mutated(arc, len(space.operations), seen, generator)
                text = katib_text(arc)
            seen.add(text)
            out.append(Assignment({"architecture": text, "nn_config": katib_text(space.nn_config(arc))}))
        state["controller"] = learner.state()
        return out


def _mutated(arc: list[list[int]], operations: int, seen: set[str | None], generator: Any) -> list[list[int]]:
    """``arc`` with one layer's operation (or one skip bit) changed, preferring one not seen."""
    import torch

    from nas import katib_text

    candidate = arc
    for _ in range(50):
        candidate = [list(layer) for layer in arc]
        layer = int(torch.randint(len(arc), (1,), generator=generator))
        slot = int(torch.randint(len(arc[layer]), (1,), generator=generator))
        if slot == 0:
            candidate[layer][0] = (arc[layer][0] + 1 + int(torch.randint(max(1, operations - 1), (1,), generator=generator))) % operations
        else:
            candidate[layer][slot] = 1 - arc[layer][slot]
        if katib_text(candidate) not in seen:
            return candidate
    return candidate


class DARTS(_NasAlgorithm):
    """Katib's ``darts``; see the module docstring."""

    name = "darts"
    needs_sizes = False  # the trial reads its data's shapes
    # As Katib's service: a setting it does not know is not checked, and goes to the trial
    # with the others (Katib's test_darts_service.py passes num_epoch).
    ignores_unknown_settings = True
    settings = {
        "num_epochs": Setting(integer(1), 50),
        "w_lr": Setting(number(0), 0.025),
        "w_lr_min": Setting(number(0), 0.001),
        "w_momentum": Setting(number(0), 0.9),
        "w_weight_decay": Setting(number(0), 3e-4),
        "w_grad_clip": Setting(number(0), 5.0),
        "alpha_lr": Setting(number(0), 3e-4),
        "alpha_weight_decay": Setting(number(0), 1e-3),
        "batch_size": Setting(_none_or(integer(1)), 128),
        "num_workers": Setting(integer(0), 4),
        "init_channels": Setting(integer(1), 16),
        "print_step": Setting(integer(1), 50),
        "num_nodes": Setting(integer(1), 4),
        "stem_multiplier": Setting(integer(1), 3),
    }

    def validate(self, experiment: Experiment) -> list[FieldError]:
        from nas import DARTS_OPERATIONS

        errors = super().validate(experiment)
        for i, op in enumerate(experiment.spec.nas_config.operations or [] if experiment.spec.nas_config else []):
            path = f"spec.nasConfig.operations[{i}]"
            if op.operation_type not in DARTS_OPERATIONS:
                errors.append(FieldError(f"{path}.operationType",
                                         f"{op.operation_type} is not a DARTS primitive (use {', '.join(DARTS_OPERATIONS)})"))
            elif op.operation_type not in ("skip_connection", "none") and not any(
                    p.name == "filter_size" for p in op.parameters or []):
                errors.append(FieldError(f"{path}.parameters", f"DARTS needs the filter_size of {op.operation_type}"))
        if errors or not experiment.spec.nas_config:
            return errors
        from nas import NasSpace

        try:
            space = NasSpace.from_config(experiment.spec.nas_config)
        except ValueError:
            return errors  # the shared checks above say what is wrong
        for i, (type_, values) in enumerate(space.specs):
            for k in values.get("filter_size", []) if type_ not in ("skip_connection", "none") else []:
                if not (str(k).isdigit() and int(str(k)) % 2 == 1):  # a primitive's name, and padding k // 2
                    errors.append(FieldError(f"spec.nasConfig.operations[{i}].parameters",
                                             f"a DARTS filter_size must be an odd whole number (got {k!r}): the cell "
                                             f"builds {type_}_{k}x{k}, which keeps its input's size only when odd"))
        if space.specs and all(type_ == "none" for type_, _ in space.specs):
            errors.append(FieldError("spec.nasConfig.operations",
                                     "DARTS needs an operation other than none: a cell of zero operations has no genotype"))
        return errors

    def suggest(
        self,
        experiment: Experiment,
        trials: Sequence[TrialView],
        count: int,
        state: dict[str, Any] | None = None,
    ) -> list[Assignment]:
        from nas import NasSpace, katib_text

        assert experiment.spec.nas_config is not None
        space = NasSpace.from_config(experiment.spec.nas_config)
        given = experiment.spec.algorithm.settings() if experiment.spec.algorithm else {}
        unknown = {k: None if v == "None" else v for k, v in given.items() if k not in self.settings}
        params = {
            "algorithm-settings": katib_text({**self.parsed_settings(experiment), **unknown}),
            "search-space": katib_text(space.darts_primitives()),
            "num-layers": str(space.num_layers),
        }
        return [Assignment(dict(params)) for _ in range(count)]
