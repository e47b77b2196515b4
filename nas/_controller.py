"""ENAS' controller (Pham et al., 2018, macro search space) in PyTorch: an LSTM that, layer
after layer, samples an operation id and, from the second layer on, one skip-connection bit
per earlier layer (by attention over the earlier layers' hidden states). It learns by
REINFORCE with a moving-average baseline, an entropy bonus and a KL penalty that keeps the
skip rate near ``skip_target``; the settings are Katib's.

An architecture is Katib's nested list: ``[[op0], [op1, skip0], [op2, skip0, skip1], …]``.
"""

from __future__ import annotations

import base64
import io
import statistics
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class ControllerSettings:
    hidden_size: int = 64
    temperature: float | None = 5.0
    tanh_const: float | None = 2.25
    entropy_weight: float | None = 1e-5
    baseline_decay: float = 0.999
    learning_rate: float = 5e-5
    skip_target: float = 0.4
    skip_weight: float | None = 0.8
    train_steps: int = 50


class Controller(nn.Module):
    def __init__(self, num_layers: int, num_operations: int, settings: ControllerSettings) -> None:
        super().__init__()
        h = settings.hidden_size
        self.num_layers, self.num_operations, self.s = num_layers, num_operations, settings
        self.lstm = nn.LSTMCell(h, h)
        self.g_emb = nn.Parameter(torch.empty(1, h).uniform_(-0.1, 0.1))
        self.w_emb = nn.Embedding(num_operations, h)
        self.w_soft = nn.Linear(h, num_operations, bias=False)
        self.w_attn_1 = nn.Linear(h, h, bias=False)
        self.w_attn_2 = nn.Linear(h, h, bias=False)
        self.v_attn = nn.Linear(h, 1, bias=False)
        for p in self.parameters():
            nn.init.uniform_(p, -0.1, 0.1)

    def _squash(self, logits: torch.Tensor) -> torch.Tensor:
        if self.s.temperature:
            logits = logits / self.s.temperature
        if self.s.tanh_const:
            logits = self.s.tanh_const * torch.tanh(logits)
        return logits

    def forward(
        self, architecture: list[list[int]] | None = None, generator: torch.Generator | None = None
    ) -> tuple[list[list[int]], torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample an architecture, or score the given one. Returns the architecture, its
        log-probability, the entropy of the choices made and the skip penalty (KL of the
        skip probabilities from ``skip_target``)."""
        h = self.s.hidden_size
        hx, cx = torch.zeros(1, h), torch.zeros(1, h)
        inputs: torch.Tensor = self.g_emb
        anchors: list[torch.Tensor] = []  # hidden states of earlier layers
        anchors_w: list[torch.Tensor] = []  # their attention projections
        arc: list[list[int]] = []
        log_prob = torch.zeros(())
        entropy = torch.zeros(())
        skip_penalty = torch.zeros(())
        target = torch.tensor([self.s.skip_target, 1 - self.s.skip_target])
        for layer in range(self.num_layers):
            hx, cx = self.lstm(inputs, (hx, cx))
            dist = torch.distributions.Categorical(logits=self._squash(self.w_soft(hx))[0])
            op = int(architecture[layer][0]) if architecture else int(torch.multinomial(dist.probs, 1, generator=generator))
            log_prob = log_prob + dist.log_prob(torch.tensor(op))
            entropy = entropy + dist.entropy()
            choice = [op]
            inputs = self.w_emb(torch.tensor([op]))
            hx, cx = self.lstm(inputs, (hx, cx))
            if layer > 0:
                query = torch.tanh(torch.cat(anchors_w, 0) + self.w_attn_2(hx))
                logit = self._squash(self.v_attn(query)).squeeze(1)  # (layer,)
                p_skip = torch.sigmoid(logit)
                if architecture:
                    skips = torch.tensor([float(b) for b in architecture[layer][1:layer + 1]])
                else:
                    skips = torch.bernoulli(p_skip.detach(), generator=generator)
                bern = torch.distributions.Bernoulli(probs=p_skip.clamp(1e-6, 1 - 1e-6))
                log_prob = log_prob + bern.log_prob(skips).sum()
                entropy = entropy + bern.entropy().sum()
                probs = torch.stack([p_skip, 1 - p_skip], 1).clamp(1e-6, 1)
                skip_penalty = skip_penalty + (probs * (probs / target).log()).sum()
                choice += [int(b) for b in skips.tolist()]
                chosen = skips.unsqueeze(1) * torch.cat(anchors, 0)
                inputs = chosen.sum(0, keepdim=True) / (1.0 + skips.sum())
            else:
                inputs = self.g_emb
            anchors.append(hx)
            anchors_w.append(self.w_attn_1(hx))
            arc.append(choice)
        return arc, log_prob, entropy, skip_penalty


class EnasLearner:
    """The controller, its optimiser and baseline: sample, learn from rewards, and travel as
    a JSON-able dict (weights as base64) so a restarted service carries on."""

    def __init__(self, num_layers: int, num_operations: int, settings: ControllerSettings,
                 state: dict[str, Any] | None = None, seed: int | None = None) -> None:
        if seed is not None:
            torch.manual_seed(seed)
        self.settings = settings
        self.controller = Controller(num_layers, num_operations, settings)
        self.optimizer = torch.optim.Adam(self.controller.parameters(), lr=settings.learning_rate)
        self.baseline: float | None = None
        self.steps = 0
        self.rewards_seen: list[float] = []
        if state and "weights" in state:
            blob = torch.load(io.BytesIO(base64.b64decode(state["weights"])), weights_only=True)
            self.controller.load_state_dict(blob["controller"])
            self.optimizer.load_state_dict(blob["optimizer"])
            self.baseline = state.get("baseline")
            self.steps = int(state.get("steps", 0))
            self.rewards_seen = list(state.get("rewards", []))

    def state(self) -> dict[str, Any]:
        buffer = io.BytesIO()
        torch.save({"controller": self.controller.state_dict(), "optimizer": self.optimizer.state_dict()}, buffer)
        return {"weights": base64.b64encode(buffer.getvalue()).decode(), "baseline": self.baseline, "steps": self.steps,
                "rewards": self.rewards_seen}

    def sample(self, count: int, generator: torch.Generator | None = None) -> list[list[list[int]]]:
        with torch.no_grad():
            return [self.controller(generator=generator)[0] for _ in range(count)]

    def learn(self, architectures: list[list[list[int]]], rewards: list[float]) -> dict[str, float]:
        """REINFORCE on finished architectures with their rewards (higher is better):
        ``train_steps`` Adam steps on the batch, then the baseline moves towards them."""
        if not architectures:
            return {}
        s = self.settings
        if self.baseline is None:
            self.baseline = sum(rewards) / len(rewards)
        # Advantages in units of the rewards' spread so far: the same learning rate suits
        # accuracies in [0, 1] and in percent, and one collapsed network (10 %) doesn't swamp
        # the signal among good ones.
        self.rewards_seen += rewards
        spread = statistics.pstdev(self.rewards_seen) if len(self.rewards_seen) > 1 else 0.0
        scale = spread if spread > 1e-8 else 1.0
        advantages = torch.tensor([max(-3.0, min(3.0, (r - self.baseline) / scale)) for r in rewards])
        loss_value = 0.0
        for _ in range(s.train_steps):
            terms = [self.controller(a) for a in architectures]
            log_probs = torch.stack([t[1] for t in terms])
            entropy = torch.stack([t[2] for t in terms]).mean()
            skip_penalty = torch.stack([t[3] for t in terms]).mean()
            loss = -(log_probs * advantages).mean()
            if s.entropy_weight:
                loss = loss - s.entropy_weight * entropy
            if s.skip_weight:
                loss = loss + s.skip_weight * skip_penalty
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            loss_value = float(loss.detach())
        for r in rewards:
            self.baseline = s.baseline_decay * self.baseline + (1 - s.baseline_decay) * r
        self.steps += s.train_steps
        return {"loss": loss_value, "baseline": float(self.baseline), "steps": float(self.steps)}
