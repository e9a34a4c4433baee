"""What the app reads from the assets once at start: grid, answers, report fronts, the grid's range."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from peo.assets import Assets, load_assets
from peo.coefficients import coefficients, model_id

TOL = 1e-9


class AppInputError(ValueError):
    """A user input the app refuses; the message says what is allowed."""


@dataclass
class AppData:
    assets: Assets
    fronts: dict = field(default_factory=dict)

    @classmethod
    def load(cls, root: str | Path | None = None) -> "AppData":
        assets = load_assets(root)
        path = assets.root / "report" / "fronts.json"
        fronts = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        return cls(assets=assets, fronts=fronts)

    @property
    def grid(self) -> pd.DataFrame:
        return self.assets.grid

    @property
    def answers(self) -> pd.DataFrame:
        return self.assets.answers

    def axis_range(self, axis: str) -> tuple[float, float]:
        """(min, max) of 'lambda_help', 'phi_help' or 'phi_harm' over the grid the assets were swept on."""
        values = [float(v) for v in self.assets.grid_values[axis]]
        return min(values), max(values)

    def grid_axis(self, axis: str) -> list[float]:
        return sorted(float(v) for v in self.assets.grid_values[axis])

    def front_model_ids(self, method: str = "peo") -> list[str]:
        return list(self.fronts.get("fronts", {}).get(method, {}).get("model_ids", []))

    def hypervolume(self, method: str) -> tuple[float, list[float] | None] | None:
        front = self.fronts.get("fronts", {}).get(method)
        if not front:
            return None
        return float(front["hypervolume"]), front.get("interval")

    def model_stats(self, mid: str) -> dict | None:
        """Precomputed means of the evaluated model `mid`, or None when it was not evaluated."""
        rows = self.grid[self.grid["model_id"].astype(str) == mid]
        if rows.empty:
            return None
        row = rows.iloc[0]
        out = {}
        for key in ("reward_mean", "reward_se", "cost_mean", "cost_se", "safe_share"):
            value = float(row[key]) if key in row and pd.notna(row[key]) else None
            out[key] = value
        out["n"] = int(row["n"]) if "n" in row and pd.notna(row["n"]) else 0
        return out

    def sample_answers(self, mid: str, limit: int = 20) -> pd.DataFrame:
        """Precomputed answers of model `mid`: kind, last user turn, answer, reward, cost."""
        sub = self.answers[self.answers["model_id"].astype(str) == mid].head(limit)
        prompts = [last_user_turn(p) for p in sub["prompt"]]
        return pd.DataFrame({"kind": sub["prompt_kind"].tolist(), "prompt": prompts, "answer": sub["answer"].tolist(),
                             "reward": sub["reward"].round(3).tolist(), "cost": sub["cost"].round(3).tolist()})

    def check_point(self, lambda_help, phi_help, phi_harm) -> tuple[float, float, float]:
        """The point as floats; AppInputError when not a number or outside the grid's range."""
        point = []
        for name, value in (("lambda_help", lambda_help), ("phi_help", phi_help), ("phi_harm", phi_harm)):
            try:
                x = float(value)
            except (TypeError, ValueError):
                raise AppInputError(f"{name} must be a number, got {value!r}") from None
            if not math.isfinite(x):
                raise AppInputError(f"{name} must be a finite number, got {value!r}")
            lo, hi = self.axis_range(name)
            if x < lo - TOL or x > hi + TOL:
                raise AppInputError(f"{name}={x:g} is outside the range these assets support: [{lo:g}, {hi:g}]")
            point.append(min(max(x, lo), hi))
        return point[0], point[1], point[2]

    def on_grid(self, lambda_help: float, phi_help: float, phi_harm: float) -> bool:
        return all(any(abs(x - g) <= 1e-6 for g in self.grid_axis(axis))
                   for axis, x in (("lambda_help", lambda_help), ("phi_help", phi_help), ("phi_harm", phi_harm)))

    def point_info(self, lambda_help, phi_help, phi_harm) -> dict:
        """Everything /pick returns about a point (see callbacks.pick)."""
        lam, ph, pa = self.check_point(lambda_help, phi_help, phi_harm)
        c_help, c_harm = coefficients(lam, ph, pa)
        mid = model_id(c_help, c_harm)
        stats = self.model_stats(mid)
        return {
            "lambda_help": lam, "phi_help": ph, "phi_harm": pa,
            "c_help": c_help, "c_harm": c_harm, "model_id": mid,
            "in_range": True,  # out-of-range points raise AppInputError instead
            "on_grid": self.on_grid(lam, ph, pa),
            "precomputed": stats,
            "on_front": mid in self.front_model_ids("peo"),
        }

    def front_table(self) -> pd.DataFrame:
        """The PEO front's points (cost ascending), one row per evaluated model: what the table lets you pick."""
        rows = []
        front = self.fronts.get("fronts", {}).get("peo", {})
        for p in front.get("points", []):
            rows.append({"λ": p.get("lambda_help"), "ϕ_help": p.get("phi_help"), "ϕ_harm": p.get("phi_harm"),
                         "c_help": p.get("c_help"), "c_harm": p.get("c_harm"),
                         "reward": round(float(p["reward_mean"]), 3), "cost": round(float(p["cost_mean"]), 3),
                         "model_id": p.get("model_id")})
        if not rows:  # no report: fall back to the grid's own non-dominated PEO points
            from peo.pareto import pareto_front

            peo = self.grid[self.grid["method"] == "peo"].drop_duplicates("model_id")
            if not peo.empty:
                for i in pareto_front(peo["reward_mean"].to_numpy(), peo["cost_mean"].to_numpy()):
                    r = peo.iloc[int(i)]
                    rows.append({"λ": r["lambda_help"], "ϕ_help": r["phi_help"], "ϕ_harm": r["phi_harm"],
                                 "c_help": r["c_help"], "c_harm": r["c_harm"], "reward": round(r["reward_mean"], 3),
                                 "cost": round(r["cost_mean"], 3), "model_id": r["model_id"]})
        return pd.DataFrame(rows, columns=["λ", "ϕ_help", "ϕ_harm", "c_help", "c_harm", "reward", "cost", "model_id"])


def last_user_turn(prompt_json: str) -> str:
    try:
        messages = json.loads(prompt_json)
    except (TypeError, ValueError):
        return str(prompt_json)
    users = [m.get("content", "") for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    return users[-1] if users else ""
