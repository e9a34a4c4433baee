"""Model names of the served family (`peo serve`'s OpenAI `model` field) → adapter scales. Pure: no torch.

A name is a point of the PEO family or a baseline. With the default two aspects (help, harm):

- `peo:lambda=0.25,phi_help=1,phi_harm=0.5` (ϕ left out is 0; `lambda_help=` is read as `lambda=`), or
  `peo:c_help=1.25,c_harm=0.75`;
- `reference`, `dpo-help`, `dpo-harm`, `joint`, `soup:lambda=0.5`, `expo:alpha=1.5`;
- a model id as grid.csv and answers.parquet write it: `c+1.250_+0.750` (a coefficient pair), `joint+1.500`
  (ExPO's α). These hold no comma and no `=`, for tools that split their own arguments on them
  (lm-evaluation-harness's `--model_args`).

With N aspects (meta.json `aspects`, e.g. help, harm, brief) a point names every free λ (each aspect's weight but
the last's, peo.aspects.Aspects.lambda_columns): `peo:lambda_help=0.5,lambda_harm=0.25,phi_brief=0.5`, or every
coefficient: `peo:c_help=…,c_harm=…,c_brief=…`; the soup is `soup:lambda_help=…,lambda_harm=…`, each aspect's DPO
policy `dpo-<aspect>`, and a model id holds N coefficients (`c+0.500_+0.250_+0.750`).

Every value must lie in the range the assets were swept on (meta.json `grid`, and `config.sweep.expo_alphas` for
ExPO's α): the served family is the swept one, so nothing is extrapolated beyond what was evaluated. The free λs
must also stay on the simplex (their sum at most 1). A coefficient tuple is in range when some free λs in the
grid's box on the simplex and ϕs in theirs give it (c_i = λ_i + ϕ_i, the last λ being 1 − the free ones' sum;
peo/coefficients.py): `_by_coefficients` decides that exactly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from itertools import product

from peo.aspects import Aspects
from peo.coefficients import COEFFICIENT_DECIMALS, coefficients, expo_model_id, model_id, on_simplex, scales
from peo.errors import PeoError
from peo.names import EXPO, JOINT, PEO, REFERENCE, SOUP
from peo.records import RunMeta

TOL = 1e-9  # a value this far outside the range still counts as in it (typed decimals)
SIGNED = r"[+-]\d+(?:\.\d+)?"
MODEL_ID = re.compile(rf"^c({SIGNED}(?:_{SIGNED})+)$")  # peo.coefficients.model_id: N coefficients
EXPO_ID = re.compile(rf"^joint({SIGNED})$")  # peo.coefficients.expo_model_id
NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")  # no nan, inf, hex or underscores
TWO_ASPECT_LAMBDA = "lambda"  # the two-aspect spelling of the one free λ (`lambda_<first aspect>` is read as it)
EXPO_AXIS = "expo_alpha"


def baseline_names(aspects: Aspects) -> dict[str, str]:
    """The baselines' served names → their method (peo.aspects.Aspects.baseline_scales' key)."""
    return {"reference": REFERENCE, **{f"dpo-{a}": a for a in aspects.names}, "joint": JOINT}


def syntax(aspects: Aspects) -> tuple[str, ...]:
    """The name forms, in words (GET /v1/models and the unknown-model message)."""
    names = aspects.names
    if len(aspects) == 2:
        help_, harm = names
        return (
            f"peo:lambda=L,phi_{help_}=P,phi_{harm}=Q  (a PEO point; a phi left out is 0)",
            f"peo:c_{help_}=A,c_{harm}=B  (the same family by its coefficients: c_{help_} = L + P, "
            f"c_{harm} = 1 - L + Q)",
            *baseline_names(aspects),
            f"soup:lambda=L  (interpolation only: c_{help_} = L, c_{harm} = 1 - L)",
            "expo:alpha=A  (ExPO: the joint DPO policy extrapolated, reference + A x joint task vector)",
            "c+A_+B or joint+A  (grid.csv's model ids: the coefficients, or ExPO's alpha; no comma or '=' in them)",
        )
    lambdas = ",".join(f"{col}=L{i + 1}" for i, col in enumerate(aspects.lambda_columns))
    phis = ",".join(f"{col}=P{i + 1}" for i, col in enumerate(aspects.phi_columns))
    cs = ",".join(f"{col}=A{i + 1}" for i, col in enumerate(aspects.coefficient_columns))
    last = names[-1]
    return (
        f"peo:{lambdas},{phis}  (a PEO point: every free lambda, their sum at most 1; a phi left out is 0)",
        f"peo:{cs}  (the same family by its coefficients: c_<aspect> = lambda_<aspect> + phi_<aspect>, "
        f"lambda_{last} being 1 minus the free lambdas' sum)",
        *baseline_names(aspects),
        f"soup:{lambdas}  (interpolation only: c_<aspect> = lambda_<aspect>, c_{last} = 1 minus their sum)",
        "expo:alpha=A  (ExPO: the joint DPO policy extrapolated, reference + A x joint task vector)",
        "c" + "_".join(f"+A{i + 1}" for i in range(len(names))) + " or joint+A  (grid.csv's model ids: the "
        "coefficients, or ExPO's alpha; no comma or '=' in them)",
    )




class ModelNameError(PeoError, ValueError):
    """A model name that does not parse or names a model outside the assets' range; the message says which."""


@dataclass(frozen=True)
class FamilyRange:
    """The swept ranges: each free λ and each ϕ (the grid, keyed by Aspects.point_columns) and ExPO's α, with the
    run's aspects."""

    aspects: Aspects
    axes: Mapping[str, tuple[float, ...]] = field(hash=False)  # point column → its swept values, sorted
    expo_alpha: tuple[float, ...] = ()

    @classmethod
    def from_run_meta(cls, run_meta: RunMeta) -> "FamilyRange":
        aspects = run_meta.aspect_set
        missing = [col for col in aspects.point_columns if col not in run_meta.grid]
        if missing:
            raise ModelNameError(f"meta.json grid lacks {', '.join(missing)} (the run's aspects are "
                                 f"{', '.join(aspects.names)}); rerun `python -m precompute run`")
        alphas = (run_meta.config.get("sweep") or {}).get("expo_alphas") or []
        return cls(aspects, {col: tuple(sorted(float(v) for v in run_meta.grid[col])) for col in aspects.point_columns},
                   expo_alpha=tuple(sorted(float(a) for a in alphas)))

    @property
    def syntax(self) -> tuple[str, ...]:
        return syntax(self.aspects)

    def values(self, axis: str) -> tuple[float, ...]:
        return self.expo_alpha if axis == EXPO_AXIS else tuple(self.axes.get(axis, ()))

    def bounds(self, axis: str) -> tuple[float, float]:
        values = self.values(axis)
        if not values:
            raise ModelNameError(f"these assets have no {axis} range (no such models were swept)")
        return values[0], values[-1]

    def describe(self) -> dict:
        """The range as data: each axis' [min, max] and swept values, and each coefficient's [min, max] (what
        /v1/models shows)."""
        out = {}
        for axis in (*self.aspects.point_columns, EXPO_AXIS):
            values = self.values(axis)
            out[axis] = {"min": values[0], "max": values[-1], "swept": list(values)} if values else None
        for col, (lo, hi) in zip(self.aspects.coefficient_columns, self._c_bounds()):
            out[col] = {"min": lo, "max": hi}
        return out

    def _weight_bounds(self) -> list[tuple[float, float]]:
        """Each aspect's λ weight, [min, max], over the grid's box of free λs on the simplex (sum at most 1)."""
        box = [self.bounds(col) for col in self.aspects.lambda_columns]
        low_sum = sum(lo for lo, _ in box)
        free = [(lo, min(hi, 1 - (low_sum - lo))) for lo, hi in box]
        last = (max(0.0, 1 - sum(hi for _, hi in box)), 1 - low_sum)
        return [*free, last]

    def _c_bounds(self) -> list[tuple[float, float]]:
        """Each coefficient's [min, max]: its weight's range plus its ϕ's."""
        phis = [self.bounds(col) for col in self.aspects.phi_columns]
        return [(w_lo + p_lo, w_hi + p_hi) for (w_lo, w_hi), (p_lo, p_hi) in zip(self._weight_bounds(), phis)]


@dataclass(frozen=True)
class ModelPoint:
    """What a model name names: its canonical name, method, adapter scales and grid model id."""

    name: str
    method: str  # peo, soup, expo, or a baseline key (ref, an aspect, joint)
    scales: dict[str, float] = field(hash=False)
    model_id: str  # as in grid.csv (peo.coefficients.model_id; the joint adapter's models: joint, joint+1.500)
    coefficients: tuple[float, ...] | None = None  # c per aspect; None for the joint adapter's models
    point: tuple[float, ...] | None = None  # (free λs …, ϕ per aspect …) when named by them (soup: ϕ = 0)
    alpha: float | None = None  # ExPO's α


def number(text: str | float) -> str:
    """A value as it is written in a canonical name: the shortest decimal that reads back as the same float."""
    return repr(float(text) + 0.0).removesuffix(".0")


def _fields(name: str, body: str, allowed: tuple[str, ...], aliases: Mapping[str, str] | None = None
            ) -> dict[str, float]:
    """key=value pairs of a name's body; `aliases` maps another spelling to its key (`lambda_help` → `lambda`)."""
    aliases = aliases or {}
    if not body.strip():
        raise ModelNameError(f"model {name!r} names no values; expected {', '.join(k + '=…' for k in allowed)}")
    values: dict[str, float] = {}
    for part in body.split(","):
        key, eq, text = part.partition("=")
        key, text = key.strip(), text.strip()
        if not eq or not key:
            raise ModelNameError(f"model {name!r}: {part.strip()!r} is not key=value")
        key = aliases.get(key, key)
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


def _lambda_keys(aspects: Aspects) -> tuple[tuple[str, ...], dict[str, str]]:
    """(the keys a name gives the free λs by, other spellings → key): `lambda` with two aspects, else the columns."""
    if len(aspects) == 2:
        return (TWO_ASPECT_LAMBDA,), {aspects.lambda_columns[0]: TWO_ASPECT_LAMBDA}
    return aspects.lambda_columns, {}


def _free_lambdas(name: str, values: Mapping[str, float], family: FamilyRange) -> tuple[float, ...]:
    """The free λs a name gives, each in its swept range and together on the simplex."""
    keys, _ = _lambda_keys(family.aspects)
    missing = [k for k in keys if k not in values]
    if missing:
        phis = family.aspects.phi_columns
        others = f"{', '.join(phis[:-1])} and {phis[-1]}"
        raise ModelNameError(f"model {name!r}: {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} "
                             f"required ({others} default to 0)")
    lambdas = tuple(_in_range(name, key, values[key], *family.bounds(col))
                    for key, col in zip(keys, family.aspects.lambda_columns))
    if not on_simplex(lambdas):
        raise ModelNameError(f"model {name!r}: {' + '.join(keys)} = {sum(lambdas):g} is over 1: the free lambdas "
                             f"are weights on the simplex (lambda_{family.aspects.names[-1]} = 1 minus their sum)")
    return lambdas


def _lambda_text(keys: tuple[str, ...], lambdas: tuple[float, ...]) -> str:
    return ",".join(f"{k}={number(x)}" for k, x in zip(keys, lambdas))


def parse_model(name: object, family: FamilyRange) -> ModelPoint:
    """The model a name names; ModelNameError (saying why) when it does not parse or lies outside `family`."""
    aspects = family.aspects
    if not isinstance(name, str) or not name.strip():
        raise ModelNameError(f"model must be a non-empty string, got {name!r}; see GET /v1/models")
    name = name.strip()
    baselines = baseline_names(aspects)
    if name in baselines:
        method = baselines[name]
        fixed = dict(aspects.baseline_scales[method])
        if JOINT in fixed:
            return ModelPoint(name, method, fixed, JOINT)
        c = tuple(fixed.get(aspect, 0.0) for aspect in aspects.names)
        return ModelPoint(name, method, fixed, model_id(*c), coefficients=c)
    if match := MODEL_ID.match(name):
        c = tuple(float(x) + 0.0 for x in match[1].split("_"))
        if len(c) != len(aspects):
            raise ModelNameError(f"model {name!r} has {len(c)} coefficients; these assets have {len(aspects)} "
                                 f"aspects ({', '.join(aspects.names)})")
        for baseline in baselines:  # the grid's rows of the reference and the DPO policies carry coefficients too
            point = parse_model(baseline, family)
            if point.coefficients == c:
                return replace(point, name=name)
        return replace(_by_coefficients(name, c, family), name=name)
    if match := EXPO_ID.match(name):
        return replace(parse_model(f"expo:alpha={match[1].lstrip('+')}", family), name=name)
    prefix, colon, body = name.partition(":")
    if not colon or prefix not in (PEO, SOUP, EXPO):
        raise ModelNameError(f"unknown model {name!r}; expected one of: " + "; ".join(family.syntax))
    lambda_keys, aliases = _lambda_keys(aspects)
    if prefix == SOUP:
        lambdas = _free_lambdas(name, _fields(name, body, lambda_keys, aliases), family)
        c = coefficients(lambdas)
        return ModelPoint(f"soup:{_lambda_text(lambda_keys, lambdas)}", SOUP, scales(c, aspects.names),
                          model_id(*c), coefficients=c, point=(*lambdas, *(0.0,) * len(aspects)))
    if prefix == EXPO:
        alpha = _in_range(name, "alpha", _fields(name, body, ("alpha",))["alpha"], *family.bounds(EXPO_AXIS))
        return ModelPoint(f"expo:alpha={number(alpha)}", EXPO, {JOINT: alpha}, expo_model_id(alpha), alpha=alpha)
    c_keys = aspects.coefficient_columns
    values = _fields(name, body, (*lambda_keys, *aspects.phi_columns, *c_keys), aliases)
    if set(c_keys) & set(values):
        if set(values) != set(c_keys):
            every = f"both {' and '.join(c_keys)}" if len(c_keys) == 2 else f"all of {', '.join(c_keys)}"
            raise ModelNameError(f"model {name!r}: name a point by {', '.join(lambda_keys)} (and "
                                 f"{', '.join(aspects.phi_columns)}) or by {every}, not a mix")
        return _by_coefficients(name, tuple(values[k] for k in c_keys), family)
    lambdas = _free_lambdas(name, values, family)
    phis = tuple(_in_range(name, col, values.get(col, 0.0), *family.bounds(col)) for col in aspects.phi_columns)
    c = coefficients(lambdas, phis)
    canonical = f"peo:{_lambda_text(lambda_keys, lambdas)}," + ",".join(
        f"{col}={number(p)}" for col, p in zip(aspects.phi_columns, phis))
    return ModelPoint(canonical, PEO, scales(c, aspects.names), model_id(*c), coefficients=c, point=(*lambdas, *phis))


def lambda_interval(c: tuple[float, ...], family: FamilyRange) -> tuple[list[tuple[float, float]], tuple[float, float]]:
    """For coefficients `c`: each free λ's interval (its swept box cut by its ϕ's range, λ_i = c_i − ϕ_i) and the
    interval their sum must lie in (the last ϕ's range, ϕ_N = c_N − 1 + Σλ, and the simplex, Σλ ≤ 1)."""
    aspects = family.aspects
    free = []
    for i, col in enumerate(aspects.lambda_columns):
        (lam_lo, lam_hi), (p_lo, p_hi) = family.bounds(col), family.bounds(aspects.phi_columns[i])
        free.append((max(lam_lo, c[i] - p_hi), min(lam_hi, c[i] - p_lo)))
    last_lo, last_hi = family.bounds(aspects.phi_columns[-1])
    return free, (1 - c[-1] + last_lo, min(1.0, 1 - c[-1] + last_hi))


def in_family(c: tuple[float, ...], family: FamilyRange) -> bool:
    """Whether some free λs in the grid's box on the simplex and ϕs in theirs give coefficients `c`.

    Exact: given c, each ϕ is fixed by the λs, so the conditions are an interval per free λ and an interval for
    their sum; a box's sums fill the interval [Σ lows, Σ highs], so a point exists iff every λ interval is
    non-empty and that interval meets the sum's.
    """
    free, (sum_lo, sum_hi) = lambda_interval(c, family)
    if any(lo > hi + TOL for lo, hi in free):
        return False
    return max(sum(lo for lo, _ in free), sum_lo) <= min(sum(hi for _, hi in free), sum_hi) + TOL


def _by_coefficients(name: str, c: tuple[float, ...], family: FamilyRange) -> ModelPoint:
    """A point named by its coefficients, refused unless `in_family`."""
    aspects = family.aspects
    if not in_family(c, family):
        raise ModelNameError(_outside_message(name, c, family))
    c = tuple(round(x, COEFFICIENT_DECIMALS) + 0.0 for x in c)
    return ModelPoint("peo:" + ",".join(f"{col}={number(x)}" for col, x in zip(aspects.coefficient_columns, c)),
                      PEO, scales(c, aspects.names), model_id(*c), coefficients=c)


def _outside_message(name: str, c: tuple[float, ...], family: FamilyRange) -> str:
    aspects = family.aspects
    if len(aspects) == 2:
        c_help, c_harm = c
        (lam_lo, lam_hi), (ph_lo, ph_hi), (pa_lo, pa_hi) = (family.bounds(a) for a in aspects.point_columns)
        (h_lo, h_hi), (a_lo, a_hi) = family._c_bounds()
        help_, harm = aspects.names
        return (f"model {name!r}: c_{help_}={c_help:g}, c_{harm}={c_harm:g} is outside the family these assets "
                f"support: no lambda in [{lam_lo:g}, {lam_hi:g}], phi_{help_} in [{ph_lo:g}, {ph_hi:g}] and "
                f"phi_{harm} in [{pa_lo:g}, {pa_hi:g}] gives it (c_{help_} = lambda + phi_{help_} in "
                f"[{h_lo:g}, {h_hi:g}], c_{harm} = 1 - lambda + phi_{harm} in [{a_lo:g}, {a_hi:g}], and "
                f"c_{help_} + c_{harm} - 1 = phi_{help_} + phi_{harm} in [{ph_lo + pa_lo:g}, {ph_hi + pa_hi:g}])")

    def ranges(columns: tuple[str, ...], bounds: list[tuple[float, float]]) -> str:
        return ", ".join(f"{col} in [{lo:g}, {hi:g}]" for col, (lo, hi) in zip(columns, bounds))

    phis = [family.bounds(col) for col in aspects.phi_columns]
    given = ", ".join(f"{col}={x:g}" for col, x in zip(aspects.coefficient_columns, c))
    return (f"model {name!r}: {given} is outside the family these assets support: no "
            f"{ranges(aspects.lambda_columns, [family.bounds(col) for col in aspects.lambda_columns])} (summing to "
            f"at most 1) and {ranges(aspects.phi_columns, phis)} gives it (c_<aspect> = lambda_<aspect> + "
            f"phi_<aspect>, lambda_{aspects.names[-1]} = 1 minus the free lambdas' sum: "
            f"{ranges(aspects.coefficient_columns, family._c_bounds())}, and the sum of the coefficients - 1 = the "
            f"sum of the phis in [{sum(lo for lo, _ in phis):g}, {sum(hi for _, hi in phis):g}])")


def simplex_points(family: FamilyRange) -> list[tuple[float, ...]]:
    """Every swept tuple of free λs on the simplex (sum at most 1), in the grid's order."""
    axes = [family.values(col) for col in family.aspects.lambda_columns]
    return [free for free in product(*axes) if on_simplex(free)]


def catalog(family: FamilyRange) -> list[ModelPoint]:
    """Every named model of the swept grid: the baselines, the soup at each λ, ExPO at each α, PEO at each point."""
    aspects = family.aspects
    keys, _ = _lambda_keys(aspects)
    lambdas = simplex_points(family)
    names = [*baseline_names(aspects), *(f"soup:{_lambda_text(keys, free)}" for free in lambdas),
             *(f"expo:alpha={number(a)}" for a in family.expo_alpha),
             *(f"peo:{_lambda_text(keys, free)}," + ",".join(f"{col}={number(p)}"
                                                             for col, p in zip(aspects.phi_columns, phis))
               for free in lambdas for phis in product(*(family.values(col) for col in aspects.phi_columns)))]
    return [parse_model(n, family) for n in names]
