"""PEO's coordinates: a point (λ, ϕ) is the model θ_ref + Σ_i c_i·Δ_i over the run's aspects.

λ is a point on the simplex (a weight per aspect, summing to 1) and ϕ a vector (an extrapolation per aspect).
θ_G+ = Σ_i λ_i·θ_i + Σ_i ϕ_i·Δ_i, and θ_i = θ_ref + Δ_i, so c_i = λ_i + ϕ_i. Points with equal coefficients
are the same model. A point is named by its *free* λs, every aspect's but the last (the last is 1 − their sum):
with two aspects, (λ_help, ϕ_help, ϕ_harm) gives c_help = λ + ϕ_help and c_harm = 1 − λ + ϕ_harm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import product

from peo.names import JOINT

COEFFICIENT_DECIMALS = 6  # coefficients are compared after rounding, so 0.1 + 0.5 and 0.6 are one model
SIMPLEX_TOL = 1e-9  # free λs may sum to this much over 1


def _rounded(x: float) -> float:
    return round(x, COEFFICIENT_DECIMALS) + 0.0  # + 0.0 turns -0.0 into 0.0


@dataclass(frozen=True)
class Point:
    """A grid point: the free λs (one fewer than the aspects) and ϕ (one per aspect)."""

    lambdas: tuple[float, ...]
    phis: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.lambdas) != len(self.phis) - 1:
            raise ValueError(f"a point over {len(self.phis)} aspects has {len(self.phis) - 1} free λs, "
                             f"got {len(self.lambdas)}")

    @property
    def weights(self) -> tuple[float, ...]:
        """λ on the simplex: the free λs and the last aspect's 1 − their sum."""
        return (*self.lambdas, _rounded(1.0 - sum(self.lambdas)))

    @property
    def coefficients(self) -> tuple[float, ...]:
        return coefficients(self.lambdas, self.phis)

    def scales(self, aspects: Sequence[str]) -> dict[str, float]:
        return scales(self.coefficients, aspects)


def coefficients(lambdas: Sequence[float], phis: Sequence[float] | None = None) -> tuple[float, ...]:
    """(c_1 … c_N) of a point: c_i = λ_i + ϕ_i, the last λ being 1 − the free ones' sum. `phis` None: ϕ = 0
    (a soup point), over len(lambdas) + 1 aspects."""
    phis = tuple(phis) if phis is not None else (0.0,) * (len(lambdas) + 1)
    if len(lambdas) != len(phis) - 1:
        raise ValueError(f"{len(lambdas)} free λs for {len(phis)} aspects; expected {len(phis) - 1}")
    weights = (*lambdas, 1.0 - sum(lambdas))
    return tuple(_rounded(w + p) for w, p in zip(weights, phis))


def scales(coefficients: Sequence[float], aspects: Sequence[str]) -> dict[str, float]:
    """Adapter scales of the model θ_ref + Σ c_i·Δ_i: one per aspect adapter, in the aspects' order.

    The one place a point's coefficients become the scales that the sweep, the app's columns, export and serve
    hand to peo.adapter_mix.
    """
    if len(coefficients) != len(aspects):
        raise ValueError(f"{len(coefficients)} coefficients for {len(aspects)} aspects ({', '.join(aspects)})")
    return dict(zip(aspects, (float(c) for c in coefficients)))


def model_id(*coefficients: float) -> str:
    """Name of the model at these coefficients; shared by every point that maps there."""
    return "c" + "_".join(f"{c:+.3f}" for c in coefficients)


def expo_model_id(alpha: float) -> str:
    """Name of ExPO's model θ_ref + α·Δ_joint: α = 1 is the joint DPO policy itself, so it shares that model."""
    return JOINT if alpha == 1.0 else f"{JOINT}{alpha:+.3f}"


def on_simplex(free_lambdas: Sequence[float]) -> bool:
    """Do these free λs leave the last aspect a weight ≥ 0 (their sum at most 1, to SIMPLEX_TOL)?"""
    return sum(free_lambdas) <= 1.0 + SIMPLEX_TOL


def simplex_lambdas(lambdas: Sequence[float], n_aspects: int) -> list[tuple[float, ...]]:
    """Every tuple of free λs (n_aspects − 1 of them, each from `lambdas`) that leaves the last aspect a weight
    ≥ 0. With two aspects: each λ of `lambdas` alone."""
    return [free for free in product(lambdas, repeat=n_aspects - 1) if on_simplex(free)]


def grid_points(lambdas: Sequence[float], phis: Sequence[Sequence[float]]) -> list[Point]:
    """The sweep's grid: every free-λ tuple (simplex_lambdas) with every combination of the aspects' ϕ values."""
    return [Point(free, tuple(phi)) for free in simplex_lambdas(lambdas, len(phis)) for phi in product(*phis)]


def soup_points(lambdas: Sequence[float], n_aspects: int) -> list[Point]:
    """Interpolation only (ϕ = 0): the weight-soup baseline."""
    return [Point(free, (0.0,) * n_aspects) for free in simplex_lambdas(lambdas, n_aspects)]


def unique_models(points: Sequence[Point]) -> dict[str, tuple[float, ...]]:
    """model_id → coefficients, in first-seen order: what a sweep actually has to generate."""
    models: dict[str, tuple[float, ...]] = {}
    for point in points:
        c = point.coefficients
        models.setdefault(model_id(*c), c)
    return models
