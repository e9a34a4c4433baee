"""PEO's coordinates: a point (λ, ϕ_help, ϕ_harm) is the model θ_ref + c_help·Δ_help + c_harm·Δ_harm.

θ_G+ = λ·θ_help + (1−λ)·θ_harm + ϕ_help·Δ_help + ϕ_harm·Δ_harm, and θ_i = θ_ref + Δ_i, so
c_help = λ + ϕ_help and c_harm = 1 − λ + ϕ_harm. Points with equal coefficients are the same model.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

from peo.names import ASPECTS, JOINT

COEFFICIENT_DECIMALS = 6  # coefficients are compared after rounding, so 0.1 + 0.5 and 0.6 are one model


@dataclass(frozen=True)
class Point:
    lambda_help: float
    phi_help: float = 0.0
    phi_harm: float = 0.0

    @property
    def coefficients(self) -> tuple[float, float]:
        return coefficients(self.lambda_help, self.phi_help, self.phi_harm)

    @property
    def scales(self) -> dict[str, float]:
        return scales(self.coefficients)


def coefficients(lambda_help: float, phi_help: float = 0.0, phi_harm: float = 0.0) -> tuple[float, float]:
    """(c_help, c_harm) of a PEO point."""
    c_help = round(lambda_help + phi_help, COEFFICIENT_DECIMALS)
    c_harm = round(1.0 - lambda_help + phi_harm, COEFFICIENT_DECIMALS)
    return c_help + 0.0, c_harm + 0.0  # + 0.0 turns -0.0 into 0.0


def scales(coefficients: tuple[float, ...]) -> dict[str, float]:
    """Adapter scales of the model θ_ref + Σ c_i·Δ_i: one per aspect adapter, in ASPECTS' order.

    The one place a point's coefficients become the scales that the sweep, the app's columns, export and serve
    hand to peo.adapter_mix.
    """
    if len(coefficients) != len(ASPECTS):
        raise ValueError(f"{len(coefficients)} coefficients for {len(ASPECTS)} aspects ({', '.join(ASPECTS)})")
    return dict(zip(ASPECTS, coefficients))


def model_id(c_help: float, c_harm: float) -> str:
    """Name of the model at these coefficients; shared by every point that maps there."""
    return f"c{c_help:+.3f}_{c_harm:+.3f}"


def expo_model_id(alpha: float) -> str:
    """Name of ExPO's model θ_ref + α·Δ_joint: α = 1 is the joint DPO policy itself, so it shares that model."""
    return JOINT if alpha == 1.0 else f"{JOINT}{alpha:+.3f}"


def grid_points(lambdas: list[float], phi_help: list[float], phi_harm: list[float]) -> list[Point]:
    return [Point(lam, ph, pa) for lam, ph, pa in product(lambdas, phi_help, phi_harm)]


def soup_points(lambdas: list[float]) -> list[Point]:
    """Interpolation only (ϕ = 0): the weight-soup baseline."""
    return [Point(lam, 0.0, 0.0) for lam in lambdas]


def unique_models(points: list[Point]) -> dict[str, tuple[float, float]]:
    """model_id → coefficients, in first-seen order: what a sweep actually has to generate."""
    models: dict[str, tuple[float, float]] = {}
    for point in points:
        c = point.coefficients
        models.setdefault(model_id(*c), c)
    return models
