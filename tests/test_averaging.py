"""The moving average of the weights against a hand-written recursion."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from unsup3d_cli.engine.averaging import WeightAverage


def _model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    model[2].bias.requires_grad_(False)  # frozen: not averaged
    return model


def test_average_follows_the_warmed_up_recursion():
    model = _model()
    trainable = [p for p in model.parameters() if p.requires_grad]
    average = WeightAverage(model, decay=0.5)
    expected = [p.detach().clone().double() for p in trainable]
    for t in range(30):  # warm-up, then the plateau: (1 + t) / (10 + t) reaches 0.5 at t = 8
        with torch.no_grad():
            for p in trainable:
                p.add_(torch.randn_like(p))
        d = min(0.5, (1 + t) / (10 + t))
        assert average.current_decay() == pytest.approx(d)
        average.update()
        pairs = zip(expected, trainable, strict=True)
        expected = [d * e + (1 - d) * p.detach().double() for e, p in pairs]
    state = average.state_dict(model)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    for name, value in zip(names, expected, strict=True):
        torch.testing.assert_close(state[name].double(), value, rtol=1e-5, atol=1e-6)
    live = model.state_dict()
    assert torch.equal(state["2.bias"], live["2.bias"])  # frozen: the model's own
    assert torch.equal(state["1.running_mean"], live["1.running_mean"])  # buffer: copied
    assert state.keys() == live.keys()


def test_decay_reaches_its_long_run_value():
    average = WeightAverage(_model(), decay=0.99)
    average.updates = 10_000
    assert average.current_decay() == 0.99


def test_applied_swaps_the_weights_in_and_back():
    model = _model()
    average = WeightAverage(model, decay=0.5)
    with torch.no_grad():
        model[0].weight.add_(1.0)
    average.update()  # decay 0.1 at t = 0: average = 0.1·old + 0.9·new
    trained = {k: v.clone() for k, v in model.state_dict().items()}
    with average.applied():
        inside = {k: v.clone() for k, v in model.state_dict().items()}
    after = model.state_dict()
    assert all(torch.equal(trained[k], after[k]) for k in trained)
    expected = average.state_dict(model)
    assert all(torch.equal(inside[k], expected[k]) for k in expected)
    assert not torch.equal(inside["0.weight"], trained["0.weight"])


def test_applied_restores_the_weights_after_an_error():
    model = _model()
    average = WeightAverage(model, decay=0.5)
    with torch.no_grad():
        model[0].weight.add_(1.0)
    trained = model[0].weight.detach().clone()
    with pytest.raises(RuntimeError), average.applied():
        raise RuntimeError("boom")
    assert torch.equal(model[0].weight, trained)


def test_restore_resumes_the_average():
    model = _model()
    first = WeightAverage(model, decay=0.9)
    for _ in range(3):
        with torch.no_grad():
            model[0].weight.mul_(1.1)
        first.update()
    second = WeightAverage(model, decay=0.9)
    second.restore(first.state_dict(model), first.updates)
    assert second.updates == 3
    a, b = first.state_dict(model), second.state_dict(model)
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.1])
def test_decay_out_of_range_is_refused(decay):
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(_model(), decay)
