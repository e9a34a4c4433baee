"""What the report reads from grid.csv: its input error, the grid made ready, and a model's grid rows.

Every part of the report (the numbers, the figures) reads the grid the same way: rows numbered as in the file
(`_grid_row`), model ids as strings, each method's models once, and a model's coordinates from its grid rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from peo.aspects import DEFAULT_ASPECTS, Aspects
from peo.errors import PeoError
from peo.evaluation_stats import finite_or_none


class ReportInputError(PeoError, ValueError):
    """grid.csv / answers.parquet are not what the sweep writes (see assets/FORMAT.md)."""


def prepared_grid(grid: pd.DataFrame) -> pd.DataFrame:
    """grid.csv with each row's number in the file (`_grid_row`) and model ids as strings."""
    grid = grid.reset_index(drop=True).copy()
    grid["_grid_row"] = np.arange(len(grid))
    grid["model_id"] = grid["model_id"].astype(str)
    return grid


def distinct_models(grid: pd.DataFrame, method: str) -> pd.DataFrame:
    """`method`'s grid rows, one per model (its first)."""
    return grid[grid["method"] == method].drop_duplicates("model_id")


def grid_coordinates(rows: pd.DataFrame, aspects: Aspects = DEFAULT_ASPECTS) -> dict[str, Any]:
    """Coordinates of a model in one method: its first grid row (the run's point columns, free λs then ϕ per aspect,
    and its coefficients), and every grid point that maps to it."""
    first = rows.iloc[0]
    points = [{column: finite_or_none(row.get(column)) for column in aspects.point_columns}
              for _, row in rows.iterrows()]
    return {"grid_row": int(first["_grid_row"]),
            **{column: finite_or_none(first.get(column)) for column in aspects.point_columns},
            **{column: finite_or_none(first.get(column)) for column in aspects.coefficient_columns},
            "grid_points": points}
