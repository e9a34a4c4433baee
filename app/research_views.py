"""The research views below the front: on-demand scoring of an off-grid point, the side-by-side comparison of
generations and the coefficient-space figure; and the reference distribution the chat's score lines use.

Kept apart from app/ui.py's panels: they listen to the pick (`point_state`), and a click in the coefficient
figure picks through the page's own pick path (app/ui.py pick_updates), so every way to pick agrees.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gradio as gr

from app import callbacks as cb
from app.aspect_text import parse_pair
from app.coefficient_figure import click_point, coefficient_json, coefficient_panel
from app.compare_view import CompareView, compare_panel, wire_compare
from app.data import as_pick
from app.figure import figure_json
from app.offgrid_scoring import ScorePanel, score_panel, wire_score
from peo.aspects import DEFAULT_ASPECTS
from peo.plot_style import COLORS
from peo.records import Pick
from peo.votes import VoteStore


@dataclass
class ResearchViews:
    scored_state: gr.State  # list of off-grid points scored on demand in this session (offgrid_scoring.summarize)
    score: ScorePanel
    compare: CompareView
    coefficient_plot: gr.HTML | None  # the (c_help, c_harm) plane: two aspects only


def research_views(app, start_info: Pick, scored_state: gr.State, plot_js: str, plot_head: str,
                   votes: VoteStore) -> ResearchViews:
    """Lay the views out (inside the Blocks). `scored_state` is the page's: the pick path draws its points too;
    `votes`: the page's votes database, whose human votes the compare view shows beside its win record."""
    data = app.data
    score = score_panel()
    compare = compare_panel(data.answers, data.grid, start_info, COLORS, votes.votes())
    coefficient_plot = None
    if data.aspects == DEFAULT_ASPECTS:  # a plane of (c_help, c_harm): a run of other aspects has no such view
        coefficient_plot = coefficient_panel(data.grid, data.front_model_ids(), start_info, plot_js, plot_head)
    return ResearchViews(scored_state, score, compare, coefficient_plot)


def wire_views(app, views: ResearchViews, front_plot: gr.HTML, summary: gr.Markdown, pick_outputs: list,
               point_state: gr.State, pick_updates: Callable, votes: VoteStore, pair: gr.Dropdown | gr.State) -> None:
    """Every view follows the pick; scored points are drawn on the front and the picked one's figures replace its
    summary's "no precomputed scores"; a coefficient click picks.

    `pick_updates(app, values, current, refused=None, scored=None)` and `pick_outputs` are the page's one pick path
    (app/ui.py), so a click here updates the same components, in the same way, as a click on the front. `pair`:
    the front figure's choice of evaluators, which every redraw of it keeps.
    """
    data = app.data
    wire_score(app, views.score, point_state, views.scored_state)
    wire_compare(views.compare, data.answers, data.grid, COLORS, point_state, views.scored_state, votes.votes)

    # a pick draws the front with the scored points itself (pick_updates); a newly scored point redraws it here
    def redraw_front(info, scored, chosen):
        return (figure_json(data, as_pick(info), scored, parse_pair(chosen)),
                cb.pick_summary(as_pick(info), data, scored or ()))

    views.scored_state.change(redraw_front,
                              [point_state, views.scored_state, pair], [front_plot, summary],
                              api_visibility="private", show_progress="hidden")
    if views.coefficient_plot is None:
        return
    point_state.change(lambda info: coefficient_json(data.grid, data.front_model_ids(), as_pick(info)), point_state,
                       views.coefficient_plot, api_visibility="private", show_progress="hidden")

    def do_click(current, scored, chosen, evt: gr.EventData):
        try:
            values = click_point(getattr(evt, "_data", None) or {}, data.point_columns)
        except (KeyError, TypeError, ValueError):
            return pick_updates(app, None, current, refused="that marker is not a PEO grid point", pair=chosen)
        return pick_updates(app, values, current, scored=scored, pair=chosen)

    views.coefficient_plot.click(do_click, [point_state, views.scored_state, pair], pick_outputs,
                                 api_visibility="private")
