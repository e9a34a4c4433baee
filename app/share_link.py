"""Share links: the page's URL carries the picked point and the chat columns, and opening such a URL restores them.

`?lambda_help=0.4&phi_help=0.5&phi_harm=0&columns=peo,ref,help` (the point's columns: a parameter per free λ and
per ϕ of the run's aspects): the address bar follows every pick (history
.replaceState, no reload), so a reload or a copied link lands on the same point. Opening a link picks its point
through the page's one pick path (app/ui.py pick_updates), so sliders, number boxes, figure, summary and state
agree, and a later "Pick this point" picks the link's point. Values come from the visitor: they are parsed and
range-checked like a typed value; a bad link is refused beside the picker and keeps the start point.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

import gradio as gr

from app import callbacks as cb
from app.data import AppInputError, as_pick
from peo.aspects import DEFAULT_ASPECTS, Aspects
from peo.records import Pick

POINT_PARAMS = DEFAULT_ASPECTS.point_columns  # ("lambda_help", "phi_help", "phi_harm"): Aspects.point_columns
COLUMNS_PARAM = "columns"

# Writes the query into the address bar (no reload), so the current URL is always the share link.
URL_JS = """
(q) => {
  if (typeof q !== 'string' || !q) return [];
  const url = window.location.pathname + '?' + q + window.location.hash;
  if (url !== window.location.pathname + window.location.search + window.location.hash) {
    window.history.replaceState(window.history.state, '', url);
  }
  return [];
}
"""

COPY_JS = """
() => {
  const url = window.location.href;
  if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(url).catch(() => {});
  return url;
}
"""


@dataclass
class SharePanel:
    copy: gr.Button
    link: gr.Textbox  # the link just copied, shown so it can be copied by hand where the clipboard is refused
    query: gr.Textbox  # the current query string, read by URL_JS


def share_panel() -> SharePanel:
    with gr.Row():
        copy = gr.Button("Copy link to this point", size="sm", scale=1, elem_id="copy-link")
        link = gr.Textbox(show_label=False, interactive=False, scale=4, elem_id="share-link",
                          placeholder="the link to the picked point and chat columns")
    query = gr.Textbox("", visible="hidden", elem_id="share-query")
    return SharePanel(copy, link, query)


def share_query(point: Pick, columns, aspects: Aspects = DEFAULT_ASPECTS) -> str:
    """The query string of a point (λ, ϕ_help, ϕ_harm as picked: the point columns) and the chat columns."""
    params = {key: f"{float(getattr(point, key)):g}" for key in aspects.point_columns}
    cols = [c for c in (columns or []) if c in aspects.chat_columns]
    if cols:
        params[COLUMNS_PARAM] = ",".join(cols)
    return urlencode(params, safe=",")


def parse_query(params: dict, aspects: Aspects = DEFAULT_ASPECTS) -> tuple[tuple[float, ...] | None,
                                                                           list[str] | None]:
    """(point or None, columns or None) from query parameters; AppInputError naming a bad one. A point column
    the link lacks is 0."""
    point = None
    if any(key in params for key in aspects.point_columns):
        values = []
        for key in aspects.point_columns:
            raw = params.get(key, "0")
            try:
                x = float(str(raw)[:32])
            except ValueError:
                raise AppInputError(f"link parameter {key}: expected a number, got {str(raw)[:32]!r}") from None
            if not math.isfinite(x):
                raise AppInputError(f"link parameter {key}: expected a finite number")
            values.append(x)
        point = tuple(values)
    columns = None
    if COLUMNS_PARAM in params:
        columns = cb.check_columns([c for c in str(params[COLUMNS_PARAM])[:200].split(",") if c], aspects)
    return point, columns


def wire_share_link(app: cb.App, demo: gr.Blocks, panel: SharePanel, chat, point_state: gr.State,
                    pick_outputs: list, pick_updates: Callable) -> None:
    """On load: restore the link's point (through `pick_updates` into `pick_outputs`, app/ui.py's one pick path) and
    columns; on every pick or column change: update the address bar."""

    def restore(current, request: gr.Request):
        try:
            point, columns = parse_query(dict(request.query_params) if request else {}, app.aspects)
            if point is not None:
                cb.pick(app, *point)  # range-checked here, so the refusal names the link
        except AppInputError as err:
            return (*pick_updates(app, None, current, refused=f"this link's point was not restored: {err}"),
                    gr.update())
        cols = gr.update(value=columns) if columns is not None else gr.update()
        if point is None:
            return (*[gr.update()] * len(pick_outputs), cols)
        return (*pick_updates(app, point, current), cols)

    demo.load(restore, point_state, [*pick_outputs, chat.columns], api_visibility="private")

    def query(point, columns):
        return share_query(as_pick(point), columns, app.aspects)

    for trigger in (point_state.change, chat.columns.change):
        trigger(query, [point_state, chat.columns], panel.query, queue=False, api_visibility="private").then(
            None, panel.query, None, js=URL_JS, api_visibility="private")
    panel.copy.click(None, None, panel.link, js=COPY_JS, api_visibility="private")
