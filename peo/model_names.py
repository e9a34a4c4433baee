"""Model names of the served family (`peo serve`'s OpenAI `model` field) → adapter scales. Pure: no torch.

A name is a point of the PEO family or a baseline:

- `peo:lambda=0.25,phi_help=1,phi_harm=0.5` (ϕ left out is 0), or `peo:c_help=1.25,c_harm=0.75`;
- `reference`, `dpo-help`, `dpo-harm`, `joint`, `soup:lambda=0.5`, `expo:alpha=1.5`;
- a model id as grid.csv and answers.parquet write it: `c+1.250_+0.750` (a coefficient pair), `joint+1.500`
  (ExPO's α). These hold no comma and no `=`, for tools that split their own arguments on them
  (lm-evaluation-harness's `--model_args`).

Every value must lie in the range the assets were swept on (meta.json `grid`, and `config.sweep.expo_alphas` for
ExPO's α): the served family is the swept one, so nothing is extrapolated beyond what was evaluated. A
coefficient pair is in range when some (λ, ϕ_help, ϕ_harm) in the grid's box maps to it
(c_help = λ + ϕ_help, c_harm = 1 − λ + ϕ_harm; peo/coefficients.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from itertools import product

from peo.coefficients import coefficients, expo_model_id, model_id, scales
from peo.errors import PeoError
from peo.names import ASPECTS, BASELINE_SCALES, EXPO, JOINT, PEO, REFERENCE, SOUP
from peo.records import RunMeta

TOL = 1e-9  # a value this far outside the range still counts as in it (typed decimals)
MODEL_ID = re.compile(r"^c([+-]\d+(?:\.\d+)?)_([+-]\d+(?:\.\d+)?)$")  # peo.coefficients.model_id
EXPO_ID = re.compile(r"^joint([+-]\d+(?:\.\d+)?)$")  # peo.coefficients.expo_model_id
NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")  # no nan, inf, hex or underscores

# the baselines' names → (method in peo/names.py, adapter scales)
BASELINE_NAMES: dict[str, str] = {"reference": REFERENCE, "dpo-help": "help", "dpo-harm": "harm", "joint": JOINT}
SYNTAX: tuple[str, ...] = (
    "peo:lambda=L,phi_help=P,phi_harm=Q  (a PEO point; a phi left out is 0)",
    "peo:c_help=A,c_harm=B  (the same family by its coefficients: c_help = L + P, c_harm = 1 - L + Q)",
    *BASELINE_NAMES,
    "soup:lambda=L  (interpolation only: c_help = L, c_harm = 1 - L)",
    "expo:alpha=A  (ExPO: the joint DPO policy extrapolated, reference + A x joint task vector)",
    "c+A_+B or joint+A  (grid.csv's model ids: the coefficients, or ExPO's alpha; no comma or '=' in them)",
)


class ModelNameError(PeoError, ValueError):
    """A model name that does not parse or names a model outside the assets' range; the message says which."""


@dataclass(frozen=True)
class FamilyRange:
    """The swept ranges: λ, ϕ_help and ϕ_harm (the grid) and ExPO's α."""

    lambda_help: tuple[float, ...]
    phi_help: tuple[float, ...]
    phi_harm: tuple[float, ...]
    expo_alpha: tuple[float, ...] = ()

    @classmethod
    def from_run_meta(cls, run_meta: RunMeta) -> "FamilyRange":
        grid = run_meta.grid
        alphas = (run_meta.config.get("sweep") or {}).get("expo_alphas") or []
        return cls(*(tuple(sorted(float(v) for v in grid[axis])) for axis in ("lambda_help", "phi_help", "phi_harm")),
                   expo_alpha=tuple(sorted(float(a) for a in alphas)))

    def bounds(self, axis: str) -> tuple[float, float]:
        values = getattr(self, axis)
        if not values:
            raise ModelNameError(f"these assets have no {axis} range (no such models were swept)")
        return values[0], values[-1]

    def describe(self) -> dict:
        """The range as data: each axis' [min, max] and swept values (what /v1/models shows)."""
        out = {}
        for axis in ("lambda_help", "phi_help", "phi_harm", "expo_alpha"):
            values = getattr(self, axis)
            out[axis] = {"min": values[0], "max": values[-1], "swept": list(values)} if values else None
        (lo_h, hi_h), (lo_a, hi_a) = self._c_bounds()
        out["c_help"] = {"min": lo_h, "max": hi_h}
        out["c_harm"] = {"min": lo_a, "max": hi_a}
        return out

    def _c_bounds(self) -> tuple[tuple[float, float], tuple[float, float]]:
        (lam_lo, lam_hi), (ph_lo, ph_hi), (pa_lo, pa_hi) = (self.bounds(a) for a in ("lambda_help", "phi_help",
                                                                                      "phi_harm"))
        return (lam_lo + ph_lo, lam_hi + ph_hi), (1 - lam_hi + pa_lo, 1 - lam_lo + pa_hi)


@dataclass(frozen=True)
class ModelPoint:
    """What a model name names: its canonical name, method, adapter scales and grid model id."""

    name: str
    method: str  # peo, soup, expo, or a baseline key (ref, help, harm, joint)
    scales: dict[str, float] = field(hash=False)
    model_id: str  # as in grid.csv (peo.coefficients.model_id; the joint adapter's models: joint, joint+1.500)
    coefficients: tuple[float, float] | None = None  # (c_help, c_harm); None for the joint adapter's models
    point: tuple[float, float, float] | None = None  # (λ, ϕ_help, ϕ_harm) when named by them (soup: ϕ = 0)
    alpha: float | None = None  # ExPO's α


def number(text: str) -> str:
    """A value as it is written in a canonical name: the shortest decimal that reads back as the same float."""
    return repr(float(text) + 0.0).removesuffix(".0")


def _fields(name: str, body: str, allowed: tuple[str, ...]) -> dict[str, float]:
    if not body.strip():
        raise ModelNameError(f"model {name!r} names no values; expected {', '.join(k + '=…' for k in allowed)}")
    values: dict[str, float] = {}
    for part in body.split(","):
        key, eq, text = part.partition("=")
        key, text = key.strip(), text.strip()
        if not eq or not key:
            raise ModelNameError(f"model {name!r}: {part.strip()!r} is not key=value")
        if key not in allowed:
            raise ModelNameError(f"model {name!r}: unknown key {key!r}; expected {', '.join(allowed)}")
        if key in values:
            raise ModelNameError(f"model {name!r}: {key} is given twice")
        if not NUMBER.match(text):
            raise ModelNameError(f"model {name!r}: {key}={text!r} is not a finite decimal number")
        values[key] = float(text) + 0.0
    return values


def _in_range(name: str, key: str, x: float, lo: float, hi: float) -> float:
    if x < lo - TOL or x > hi + TOL:
        raise ModelNameError(f"model {name!r}: {key}={x:g} is outside the range these assets support: "
                             f"[{lo:g}, {hi:g}]")
    return min(max(x, lo), hi)


def parse_model(name: object, family: FamilyRange) -> ModelPoint:
    """The model a name names; ModelNameError (saying why) when it does not parse or lies outside `family`."""
    if not isinstance(name, str) or not name.strip():
        raise ModelNameError(f"model must be a non-empty string, got {name!r}; see GET /v1/models")
    name = name.strip()
    if name in BASELINE_NAMES:
        method = BASELINE_NAMES[name]
        fixed = dict(BASELINE_SCALES[method])
        if JOINT in fixed:
            return ModelPoint(name, method, fixed, JOINT)
        c = tuple(fixed.get(aspect, 0.0) for aspect in ASPECTS)
        return ModelPoint(name, method, fixed, model_id(*c), coefficients=c)
    if match := MODEL_ID.match(name):
        c = (float(match[1]) + 0.0, float(match[2]) + 0.0)
        for baseline in ("reference", "dpo-help", "dpo-harm"):  # the grid's rows of these carry coefficients too
            point = parse_model(baseline, family)
            if point.coefficients == c:
                return replace(point, name=name)
        return replace(_by_coefficients(name, *c, family), name=name)
    if match := EXPO_ID.match(name):
        return replace(parse_model(f"expo:alpha={match[1].lstrip('+')}", family), name=name)
    prefix, colon, body = name.partition(":")
    if not colon or prefix not in (PEO, SOUP, EXPO):
        raise ModelNameError(f"unknown model {name!r}; expected one of: " + "; ".join(SYNTAX))
    if prefix == SOUP:
        lam = _in_range(name, "lambda", _fields(name, body, ("lambda",))["lambda"], *family.bounds("lambda_help"))
        c = coefficients((lam,))
        return ModelPoint(f"soup:lambda={number(lam)}", SOUP, scales(c, ASPECTS), model_id(*c),
                          coefficients=c, point=(lam, 0.0, 0.0))
    if prefix == EXPO:
        alpha = _in_range(name, "alpha", _fields(name, body, ("alpha",))["alpha"], *family.bounds("expo_alpha"))
        return ModelPoint(f"expo:alpha={number(alpha)}", EXPO, {JOINT: alpha}, expo_model_id(alpha), alpha=alpha)
    values = _fields(name, body, ("lambda", "phi_help", "phi_harm", "c_help", "c_harm"))
    by_c = {"c_help", "c_harm"} & set(values)
    if by_c:
        if set(values) != {"c_help", "c_harm"}:
            raise ModelNameError(f"model {name!r}: name a point by lambda (and phi_help, phi_harm) or by both "
                                 "c_help and c_harm, not a mix")
        return _by_coefficients(name, values["c_help"], values["c_harm"], family)
    if "lambda" not in values:
        raise ModelNameError(f"model {name!r}: lambda is required (phi_help and phi_harm default to 0)")
    lam = _in_range(name, "lambda", values["lambda"], *family.bounds("lambda_help"))
    phi_help = _in_range(name, "phi_help", values.get("phi_help", 0.0), *family.bounds("phi_help"))
    phi_harm = _in_range(name, "phi_harm", values.get("phi_harm", 0.0), *family.bounds("phi_harm"))
    c = coefficients((lam,), (phi_help, phi_harm))
    canonical = f"peo:lambda={number(lam)},phi_help={number(phi_help)},phi_harm={number(phi_harm)}"
    return ModelPoint(canonical, PEO, scales(c, ASPECTS), model_id(*c), coefficients=c,
                      point=(lam, phi_help, phi_harm))


def _by_coefficients(name: str, c_help: float, c_harm: float, family: FamilyRange) -> ModelPoint:
    """In range when some λ in the grid has ϕ_help = c_help − λ and ϕ_harm = c_harm − 1 + λ in theirs."""
    (lam_lo, lam_hi), (ph_lo, ph_hi), (pa_lo, pa_hi) = (family.bounds(a) for a in ("lambda_help", "phi_help",
                                                                                    "phi_harm"))
    lo = max(lam_lo, c_help - ph_hi, 1 - c_harm + pa_lo)
    hi = min(lam_hi, c_help - ph_lo, 1 - c_harm + pa_hi)
    if lo > hi + TOL:
        (h_lo, h_hi), (a_lo, a_hi) = family._c_bounds()
        raise ModelNameError(
            f"model {name!r}: c_help={c_help:g}, c_harm={c_harm:g} is outside the family these assets support: no "
            f"lambda in [{lam_lo:g}, {lam_hi:g}], phi_help in [{ph_lo:g}, {ph_hi:g}] and phi_harm in "
            f"[{pa_lo:g}, {pa_hi:g}] gives it (c_help = lambda + phi_help in [{h_lo:g}, {h_hi:g}], "
            f"c_harm = 1 - lambda + phi_harm in [{a_lo:g}, {a_hi:g}], and c_help + c_harm - 1 = phi_help + "
            f"phi_harm in [{ph_lo + pa_lo:g}, {ph_hi + pa_hi:g}])")
    c = (round(c_help, 6) + 0.0, round(c_harm, 6) + 0.0)
    return ModelPoint(f"peo:c_help={number(c_help)},c_harm={number(c_harm)}", PEO, scales(c, ASPECTS),
                      model_id(*c), coefficients=c)


def catalog(family: FamilyRange) -> list[ModelPoint]:
    """Every named model of the swept grid: the baselines, the soup at each λ, ExPO at each α, PEO at each point."""
    names = [*BASELINE_NAMES, *(f"soup:lambda={number(lam)}" for lam in family.lambda_help),
             *(f"expo:alpha={number(a)}" for a in family.expo_alpha),
             *(f"peo:lambda={number(lam)},phi_help={number(ph)},phi_harm={number(pa)}"
               for lam, ph, pa in product(family.lambda_help, family.phi_help, family.phi_harm))]
    return [parse_model(n, family) for n in names]
