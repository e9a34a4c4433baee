"""The PEO demo app: the precomputed Pareto front, a point picker and a side-by-side chat (see app/ui.py).

Logic lives in plain functions (app/callbacks.py, app/engine.py, app/figure.py) that the tests call without a
server; app/ui.py lays out the Gradio Blocks and app/__main__.py launches it.
"""
