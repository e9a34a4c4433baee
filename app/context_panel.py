"""'What you are looking at': the model, data, training and evaluators behind every number on the page.

Built from meta.json (and the report's fronts.json for intervals) so a reader knows how much to trust a score
before reading one. Every part is optional: assets that lack a field (older or tiny runs) just show less.
"""

from __future__ import annotations

from collections.abc import Mapping

import gradio as gr

from peo import answer_checks
from peo.names import ASPECTS, BASELINE_LABELS, EVALUATOR_OF_ASPECT

MISSING = "–"
# meta.json data.<aspect>.used_per_split keys → what each count is (precompute's split names)
SPLIT_USES = {"evaluator": "evaluator pairs", "policy": "DPO pairs", "test": "held-out pairs", "dev": "dev prompts",
              "test_prompts": "test prompts"}


def _get(tree: Mapping | None, *keys, default=None):
    """tree[k1][k2]… or `default` when any level is absent (assets from other runs hold less)."""
    for key in keys:
        if not isinstance(tree, Mapping) or key not in tree:
            return default
        tree = tree[key]
    return tree


def _interval(interval, spec: str = ".0%") -> str:
    if not isinstance(interval, (list, tuple)) or len(interval) != 2:
        return ""
    return f" [{format(interval[0], spec)}, {format(interval[1], spec)}]"


def model_line(meta: Mapping) -> str:
    base = meta.get("base_model") or MISSING
    torch_version = _get(meta, "versions", "torch")
    device = _get(meta, "machine", "device")
    where = ", ".join(x for x in (f"torch {torch_version}" if torch_version else "", device or "") if x)
    return f"- **Reference model**: `{base}`" + (f" (trained with {where})" if where else "")


def data_lines(meta: Mapping) -> list[str]:
    """Per aspect: where its pairs come from and how many went to each use."""
    lines = []
    for aspect in ASPECTS:
        data = _get(meta, "data", aspect)
        if not isinstance(data, Mapping):
            continue
        source = _get(data, "source", "path") or _get(meta, "config", "data", aspect, "path") or MISSING
        used = _get(data, "used_per_split") or {}
        sizes = ", ".join(f"{SPLIT_USES.get(name, name)} {n}" for name, n in used.items())
        lines.append(f"- **{aspect} data**: `{source}`" + (f": {sizes}" if sizes else ""))
    return lines


def training_lines(meta: Mapping) -> list[str]:
    """Per DPO policy: steps, epochs, pairs, and its held-out implicit-reward accuracy with interval."""
    lines = []
    dpo = _get(meta, "config", "dpo") or {}
    for policy, label in ((k, v) for k, v in BASELINE_LABELS.items() if _get(meta, "training", k)):
        info = meta["training"][policy]
        epochs = _get(dpo, "epochs_per_policy", policy, default=dpo.get("epochs"))
        parts = [f"{info.get('steps', MISSING)} steps", f"{info.get('pairs', MISSING)} pairs"]
        if epochs is not None:
            parts.insert(1, f"{epochs:g} epoch(s)")
        for aspect, held in (_get(info, "heldout") or {}).items():
            if isinstance(held, Mapping) and "accuracy" in held:
                parts.append(f"held-out {aspect} accuracy {held['accuracy']:.0%}{_interval(held.get('interval'))}"
                             f" on {held.get('pairs', MISSING)} pairs")
        lines.append(f"- **{label}** (DPO, LoRA r={_get(meta, 'config', 'lora', 'r', default=MISSING)}): "
                     + ", ".join(parts))
    return lines


def evaluator_lines(meta: Mapping, fronts: Mapping) -> list[str]:
    """Each evaluator's held-out pairwise accuracy with its interval (fronts.json), else meta.json's point value."""
    lines = []
    ci = fronts.get("ci", 0.95)
    for aspect, kind in EVALUATOR_OF_ASPECT.items():
        report = _get(fronts, "evaluators", kind) or {}
        accuracy = report.get("held_out_accuracy", _get(meta, "evaluators", kind, "held_out_accuracy"))
        if accuracy is None:
            continue
        pairs = report.get("held_out_pairs", _get(meta, "evaluators", kind, "held_out_pairs", default=MISSING))
        interval = _interval(report.get("interval"))
        lines.append(f"- **{kind} evaluator** ({aspect}): picks the preferred answer of {accuracy:.0%}"
                     f"{interval}{f' ({ci:.0%} interval)' if interval else ''} of {pairs} held-out pairs")
    return lines


def prompts_line(fronts: Mapping, meta: Mapping) -> str:
    n = fronts.get("n_prompts") or {}
    limit = _get(meta, "generation", "max_new_tokens")
    text = (f"- **Prompts**: fronts chosen on {n.get('dev', MISSING)} dev prompts; every figure is on "
            f"{n.get('test', MISSING)} held-out test prompts (help and harm prompts)")
    return text + (f"; answers cut at {limit} new tokens" if limit else "")


def loop_rule_line(fronts: Mapping) -> str:
    """The loop rule, from peo.answer_checks' own constants, so the page and the check cannot disagree."""
    limit = fronts.get("max_loop_share")
    rule = (f"- **Loops**: an answer loops when it is empty, repeats some {answer_checks.LOOP_NGRAM}-word sequence "
            f"{answer_checks.LOOP_REPEATS}+ times, or has {answer_checks.LOOP_MIN_WORDS}+ words of which fewer than "
            f"{answer_checks.LOOP_MIN_DISTINCT:.0%} are distinct")
    return rule + (f"; models looping in more than {limit:.0%} of answers are kept off the front" if limit is not None
                   else "")


def context_markdown(meta: Mapping, fronts: Mapping) -> str:
    """The panel's text: only the lines whose fields the assets have."""
    lines = [model_line(meta), *data_lines(meta), *training_lines(meta), *evaluator_lines(meta, fronts),
             prompts_line(fronts, meta), loop_rule_line(fronts)]
    return "\n".join(lines) + ("\n\nReward (↑) and cost (↓) are learned evaluators' scores, 0 at the midpoint of "
                               "preferred/rejected answers on their training pairs: compare them with each other "
                               "and with the reference, not with an absolute scale.")


def context_panel(meta: Mapping, fronts: Mapping, open_: bool = False) -> gr.Markdown:
    """The accordion near the top of the page."""
    with gr.Accordion("What you are looking at: model, data, training, evaluators", open=open_,
                      elem_id="context-panel"):
        return gr.Markdown(context_markdown(meta, fronts), elem_id="context-text")
