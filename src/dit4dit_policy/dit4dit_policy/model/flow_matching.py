"""
Flow matching with DiT4DiT's three decoupled timesteps.

Convention for both branches: tau = 0 is data, tau = 1 is noise; x_tau = (1 - tau) x0 + tau eps,
target velocity eps - x0; sampling integrates x <- x - dt * v from tau = 1 down.

- tau_v ~ U(0, 1): the video loss (the reported runs; the YAML default logit-normal is not used).
- tau_f ~ 0.995, fixed: the feature pass, at training and inference alike.
- tau_a = u / 0.999, u ~ Beta(1.5, 1): the action loss (density rises toward noise, mean 0.6006).
"""

import torch

from .config import ObjectiveConfig


def _beta(cfg: ObjectiveConfig):
    dist = torch.distributions.Beta(torch.tensor(cfg.action_time_alpha),
                                    torch.tensor(cfg.action_time_beta))

    def sample(n, device=None):
        return (dist.sample((n,)) / cfg.action_time_s).to(device)
    return sample


def _uniform(cfg: ObjectiveConfig):
    def sample(n, device=None):
        return torch.rand(n, device=device)
    return sample


def _logit_normal(cfg: ObjectiveConfig):
    def sample(n, device=None):
        return torch.sigmoid(torch.randn(n, device=device))
    return sample


TIME_SAMPLERS = {'beta': _beta, 'uniform': _uniform, 'logit_normal': _logit_normal}


def time_sampler(name: str, cfg: ObjectiveConfig):
    """Return ``sample(n, device=None) -> [n]`` (global RNG: seed it) for a named distribution."""
    try:
        return TIME_SAMPLERS[name](cfg)
    except KeyError:
        raise ValueError(f'unknown time sampler {name!r}; valid: '
                         f'{", ".join(sorted(TIME_SAMPLERS))}') from None


def interpolate(x0: torch.Tensor, noise: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """Return x_tau = (1 - tau) x0 + tau noise, tau broadcast from [B]."""
    tau = tau.reshape(-1, *([1] * (x0.dim() - 1))).to(x0.dtype)
    return (1 - tau) * x0 + tau * noise


def euler_schedule(steps: int):
    """Return the flow times of K Euler steps from noise: 1, 1 - 1/K, ..., 1/K, and dt = 1/K."""
    return [1 - i / steps for i in range(steps)], 1.0 / steps


def euler_timesteps(steps: int, buckets: int = 1000):
    """
    Return the integer timesteps the action DiT sees at the K Euler steps.

    As the official sampler computes them: ``int(tau * buckets)`` in Python floats at
    tau = 1 - i/K.

    For K = 4 that is 1000, 750, 500, 250; for K = 5 the last is 199 and for K = 10 it is 99
    (float rounding of 1 - i/K), not the 200 and 100 a float32 floor of the same tau gives.
    """
    return [int(tau * buckets) for tau in euler_schedule(steps)[0]]
