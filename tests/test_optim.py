"""teacher_wrappers.optim.Adam: torch's fused Adam, the same updates and state dicts, without torch._dynamo."""

import subprocess
import sys
from pathlib import Path

import torch
from torch import nn

from teacher_wrappers.optim import Adam

ROOT = Path(__file__).resolve().parents[1]


def train(optimizer_class, steps=20):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))
    optimizer = optimizer_class(net.parameters(), lr=1e-2, eps=1e-5, fused=True)
    data = torch.randn(steps, 8, 6)
    for step, batch in enumerate(data):
        optimizer.param_groups[0]["lr"] = 1e-2 * (1 - step / steps)  # annealed, as the scripts do
        loss = net(batch).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 0.5)
        optimizer.step()
        if step == steps // 2:  # a checkpoint and back, halfway
            optimizer.load_state_dict(optimizer.state_dict())
    return net.state_dict(), optimizer.state_dict()


def test_the_same_updates_and_state_as_torchs_adam():
    (weights, state), (expected_weights, expected_state) = train(Adam), train(torch.optim.Adam)
    assert all(torch.equal(weights[name], expected_weights[name]) for name in expected_weights)
    assert state["param_groups"] == expected_state["param_groups"]
    for index, expected in expected_state["state"].items():
        assert all(torch.equal(state["state"][index][key], value) for key, value in expected.items())


def test_training_with_it_never_imports_torch_dynamo():
    code = ("import sys, torch; from torch import nn; from teacher_wrappers.optim import Adam\n"
            "net = nn.Linear(3, 2); optimizer = Adam(net.parameters(), lr=0.1, fused=True)\n"
            "net(torch.ones(1, 3)).sum().backward(); optimizer.step(); optimizer.zero_grad()\n"
            "optimizer.load_state_dict(optimizer.state_dict())\n"
            "print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT,
                         env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}).stdout
    assert out.strip() == "False"
