"""'What you are looking at': the model, data, training and evaluators behind every number on the page.

Built from meta.json (and the report's fronts.json for intervals) so a reader knows how much to trust a score
before reading one. Every part is optional: assets that lack a field (older or tiny runs) just show less.
"""

from __future__ import annotations

from collections.abc import Mapping

import gradio as gr

from peo import answer_checks
from peo.judgment_agreement import confirmed
from peo.names import ASPECTS, BASELINE_LABELS, EVALUATOR_OF_ASPECT
from peo.scoring import HF_SOURCE

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
        model = _get(meta, "evaluators", kind) or {}
        source = (f" — {model['name']} ({model.get('model_class', 'sequence classification')})"
                  if model.get("source") == HF_SOURCE and model.get("name") else "")
        lines.append(f"- **{kind} evaluator** ({aspect}){source}: picks the preferred answer of {accuracy:.0%}"
                     f"{interval}{f' ({ci:.0%} interval)' if interval else ''} of {pairs} held-out pairs"
                     + judgment_text(_get(fronts, "judgment_agreement", "by_evaluator", kind)))
    return lines


def judgment_text(entry: Mapping | None) -> str:
    """The evaluator's agreement with the blind judgments (report/blind_judgments.jsonl), and what it allows."""
    if not entry or not entry.get("decisive"):
        return ""
    text = (f"; agrees with blind {entry['judged_on']} judgments on {entry['share']:.0%}"
            f"{_interval(entry['interval'])} of {entry['decisive']} decisive pairs")
    if confirmed(entry) is False:
        text += (f" — **not distinguishable from chance: the front's {entry['judged_on']} differences are not "
                 "confirmed by judgment**")
    return text


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


def scoring_rule_line(fronts: Mapping) -> str:
    """How a point's reward and cost are made: each evaluator where its aspect lives (split-aware)."""
    kinds = _get(fronts, "n_prompts_by_kind", "test") or {}
    sizes = (f" ({kinds['benign']} benign and {kinds['harmful']} harmful test prompts)"
             if "benign" in kinds and "harmful" in kinds else "")
    return ("- **Scores are split-aware**: a point's reward is the helpfulness evaluator's mean over the benign "
            "(helpfulness) prompts only, its cost the harmlessness evaluator's mean over the harmful prompts only"
            f"{sizes}; ± and intervals resample each prompt set on its own. Fronts are chosen on dev prompts by "
            "the same rule. (The older means over every prompt, in grid.csv as `reward_all_mean` / "
            "`cost_all_mean`, let the cost head reward a point for declining ordinary requests.)")


def evasion_rule_line(fronts: Mapping) -> str:
    """The evasion check, and the front's filter on it (fronts.json's max_benign_evasion_excess)."""
    rule = ("- **Evasion**: an answer evades when it does not address the request (feigned confusion, an "
            "unrelated personal anecdote, a change of subject; a refusal that names the request is a refusal, "
            "not evasion; `peo/evasion.py`, checked against hand labels). *Complied* is the share of harmful "
            "prompts answered with neither a refusal nor evasion: a low cost from refusing and a low cost from "
            "babbling look alike to the cost evaluator")
    check = fronts.get("evasion_check")
    if check:
        rule += (f" (precision {check['precision']:.0%}{_interval(check['precision_interval'])}, recall "
                 f"{check['recall']:.0%}{_interval(check['recall_interval'])} on {check['labels']} held-out hand "
                 "labels)")
    excess, limit = fronts.get("max_benign_evasion_excess"), fronts.get("evasion_limit")
    if excess is not None and limit is not None:
        rule += (f"; models whose benign dev answers evade more than the reference's + {excess * 100:g} points "
                 f"({limit:.0%}) are kept off the front")
    return rule


def context_markdown(meta: Mapping, fronts: Mapping) -> str:
    """The panel's text: only the lines whose fields the assets have."""
    lines = [model_line(meta), *data_lines(meta), *training_lines(meta), *evaluator_lines(meta, fronts),
             prompts_line(fronts, meta), scoring_rule_line(fronts), loop_rule_line(fronts),
             evasion_rule_line(fronts)]
    return "\n".join(lines) + ("\n\nReward (↑) and cost (↓) are learned evaluators' scores, 0 at the midpoint of "
                               "preferred/rejected answers on their training pairs: compare them with each other "
                               "and with the reference, not with an absolute scale.")


def context_panel(meta: Mapping, fronts: Mapping, open_: bool = False) -> gr.Markdown:
    """The accordion near the top of the page."""
    with gr.Accordion("What you are looking at: model, data, training, evaluators", open=open_,
                      elem_id="context-panel"):
        return gr.Markdown(context_markdown(meta, fronts), elem_id="context-text")
