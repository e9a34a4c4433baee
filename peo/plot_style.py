"""How the project's methods look in every figure: the report's matplotlib plots and the app's plotly front
use the same colours, so a reader who learnt one reads the other."""

from __future__ import annotations

COLORS: dict[str, str] = {
    "peo": "#1f5fbf", "peo_light": "#9ab8e6", "soup": "#e07b00",
    "ref": "#222222", "help": "#2a9d3a", "harm": "#c0262d", "joint": "#7b3fa0",
    "expo": "#b04fd6",    # ExPO: the joint policy extrapolated (θ_ref + α·Δ_joint)
    "other": "#b0b0b0",   # grid points off every front (report)
    "loops": "#9a9a9a",   # points whose answers loop more often than allowed (app)
    "picked": "#f2c200",  # the app's picked point
    "offgrid": "#00a0a0",  # off-grid points the app scored on demand
}
