"""'What you are looking at': the model, data, training and evaluators behind every number on the page.

Built from meta.json (and the report's fronts.json for intervals) so a reader knows how much to trust a score
before reading one. Every part is optional: assets that lack a field (older or tiny runs) just show less.
"""

from __future__ import annotations

from collections.abc import Mapping

import gradio as gr

from peo import answer_checks
from peo.judgment_agreement import confirmed
from peo.records import FrontsReport, JudgmentAgreement, JudgmentAgreements, RunMeta
from peo.scoring import HF_SOURCE

MISSING = "–"
# meta.json data.<aspect>.used_per_split keys → what each count is (precompute's split names)
SPLIT_USES = {"evaluator": "evaluator pairs", "policy": "DPO pairs", "test": "held-out pairs", "dev": "dev prompts",
              "test_prompts": "test prompts"}


def _shown(value) -> object:
    return MISSING if value is None else value


def _interval(interval, spec: str = ".0%") -> str:
    if not isinstance(interval, (list, tuple)) or len(interval) != 2:
        return ""
    return f" [{format(interval[0], spec)}, {format(interval[1], spec)}]"


def model_line(meta: RunMeta) -> str:
    torch_version, device = meta.versions.get("torch"), meta.machine.get("device")
    where = ", ".join(x for x in (f"torch {torch_version}" if torch_version else "", device or "") if x)
    return f"- **Reference model**: `{meta.base_model or MISSING}`" + (f" (trained with {where})" if where else "")


def data_lines(meta: RunMeta) -> list[str]:
    """Per aspect: where its pairs come from and how many went to each use."""
    lines = []
    for aspect in meta.aspect_set.names:
        data = meta.data.get(aspect)
        if data is None:
            continue
        configured = (meta.config.get("data") or {}).get(aspect)  # the profile's source spec, as run
        source = ((data.source.path if data.source else None)
                  or (configured.get("path") if isinstance(configured, dict) else None) or MISSING)
        sizes = ", ".join(f"{SPLIT_USES.get(name, name)} {n}" for name, n in data.used_per_split.items())
        lines.append(f"- **{aspect} data**: `{source}`" + (f": {sizes}" if sizes else ""))
    return lines


def training_lines(meta: RunMeta) -> list[str]:
    """Per DPO policy: steps, epochs, pairs, and its held-out implicit-reward accuracy with interval."""
    lines = []
    dpo, lora = meta.config.get("dpo") or {}, meta.config.get("lora") or {}
    for policy, label in meta.aspect_set.baseline_labels.items():
        info = meta.training.get(policy)
        if info is None:
            continue
        epochs = (dpo.get("epochs_per_policy") or {}).get(policy, dpo.get("epochs"))
        parts = [f"{_shown(info.steps)} steps", f"{_shown(info.pairs)} pairs"]
        if epochs is not None:
            parts.insert(1, f"{epochs:g} epoch(s)")
        for aspect, held in info.heldout.items():
            if held.accuracy is not None:
                parts.append(f"held-out {aspect} accuracy {held.accuracy:.0%}{_interval(held.interval)}"
                             f" on {_shown(held.pairs)} pairs")
        lines.append(f"- **{label}** (DPO, LoRA r={_shown(lora.get('r'))}): " + ", ".join(parts))
    return lines


def evaluator_lines(meta: RunMeta, fronts: FrontsReport | None) -> list[str]:
    """Each evaluator's held-out pairwise accuracy with its interval (fronts.json), else meta.json's point value."""
    lines = []
    ci = fronts.ci if fronts else FrontsReport.model_fields["ci"].default
    for aspect, kind in zip(meta.aspect_set.names, meta.aspect_set.evaluators):
        report = fronts.evaluators.get(kind) if fronts else None
        model = meta.evaluators.get(kind)
        accuracy = next((x.held_out_accuracy for x in (report, model) if x and x.held_out_accuracy is not None), None)
        if accuracy is None:
            continue
        pairs = next((x.held_out_pairs for x in (report, model) if x and x.held_out_pairs is not None), MISSING)
        interval = _interval(report.interval if report else None)
        source = (f" — {model.name} ({model.model_class or 'sequence classification'})"
                  if model and model.source == HF_SOURCE and model.name else "")
        agreement = fronts.judgment_agreement if fronts else None
        lines.append(f"- **{kind} evaluator** ({aspect}){source}: picks the preferred answer of {accuracy:.0%}"
                     f"{interval}{f' ({ci:.0%} interval)' if interval else ''} of {pairs} held-out pairs"
                     + judgment_text(agreement.by_evaluator.get(kind) if agreement else None,
                                     *judgments_counted(agreement)))
    return lines


def judgments_counted(agreement: JudgmentAgreements | Mapping | None) -> tuple[int | None, int | None]:
    """(k, n): of the n blind judgments, the k made on the shipped answers (fronts.json judgment_agreement's
    judgments_on_shipped_answers and judgments); (None, None) for a fronts.json written before they were counted."""
    if agreement is None:
        return None, None
    get = agreement.get if isinstance(agreement, Mapping) else (lambda key: getattr(agreement, key, None))
    k, n = get("judgments_on_shipped_answers"), get("judgments")
    return (int(k), int(n)) if isinstance(k, int) and isinstance(n, int) else (None, None)


def judgment_text(entry: JudgmentAgreement | Mapping | None, on_shipped: int | None = None,
                  judgments: int | None = None) -> str:
    """The evaluator's agreement with the blind judgments (report/blind_judgments.jsonl), what it allows, and which
    answers it is about: `on_shipped` of the `judgments` were made on the shipped answers (judgments_counted).
    None of them: the figure is an earlier run's evaluator heads on that run's answers, not this evaluator.
    `entry` as fronts.json holds it, or as peo.judgment_agreement.agreement returns it (a dict)."""
    if isinstance(entry, Mapping):
        entry = JudgmentAgreement.from_json(entry, "judgment agreement")
    if not entry or not entry.decisive:
        return ""
    figure = f"{entry.share:.0%}{_interval(entry.interval)} of {entry.decisive} decisive pairs"
    if judgments and on_shipped == 0:
        return (f"; the {judgments} blind judgments were made on answers of an earlier run (different answers and "
                f"evaluator heads): that run's {entry.judged_on} head agreed with them on {figure}, which is about "
                "that head, **not this evaluator**")
    text = f"; agrees with blind {entry.judged_on} judgments on {figure}"
    if judgments and on_shipped is not None and on_shipped < judgments:
        text += f" (counted on the {on_shipped} of {judgments} judgments made on the answers shipped here)"
    if confirmed(entry.model_dump()) is False:
        text += (f" — **not distinguishable from chance: the front's {entry.judged_on} differences are not "
                 "confirmed by judgment**")
    return text


def prompts_line(fronts: FrontsReport | None, meta: RunMeta) -> str:
    n = fronts.n_prompts if fronts else {}
    limit = meta.generation.get("max_new_tokens")
    text = (f"- **Prompts**: fronts chosen on {n.get('dev', MISSING)} dev prompts; every figure is on "
            f"{n.get('test', MISSING)} held-out test prompts (help and harm prompts)")
    return text + (f"; answers cut at {limit} new tokens" if limit else "")


def loop_rule_line(fronts: FrontsReport | None) -> str:
    """The loop rule, from peo.answer_checks' own constants, so the page and the check cannot disagree."""
    limit = fronts.max_loop_share if fronts else None
    rule = (f"- **Loops**: an answer loops when it is empty, or its last {answer_checks.LOOP_TAIL_WORDS} words repeat "
            f"some {answer_checks.LOOP_NGRAM}-word sequence {answer_checks.LOOP_REPEATS}+ times or are "
            f"{answer_checks.LOOP_MIN_WORDS}+ words of which fewer than {answer_checks.LOOP_MIN_DISTINCT:.0%} are "
            f"distinct")
    return rule + (f"; models looping in more than {limit:.0%} of answers are kept off the front" if limit is not None
                   else "")


def scoring_rule_line(fronts: FrontsReport | None) -> str:
    """How a point's reward and cost are made: each evaluator where its aspect lives (split-aware)."""
    kinds = fronts.n_prompts_by_kind.get("test", {}) if fronts else {}
    sizes = (f" ({kinds['benign']} benign and {kinds['harmful']} harmful test prompts)"
             if "benign" in kinds and "harmful" in kinds else "")
    return ("- **Scores are split-aware**: a point's reward is the helpfulness evaluator's mean over the benign "
            "(helpfulness) prompts only, its cost the harmlessness evaluator's mean over the harmful prompts only"
            f"{sizes}; ± and intervals resample each prompt set on its own. Fronts are chosen on dev prompts by "
            "the same rule. (The older means over every prompt, in grid.csv as `reward_all_mean` / "
            "`cost_all_mean`, let the cost head reward a point for declining ordinary requests.)")


def evasion_rule_line(fronts: FrontsReport | None) -> str:
    """The evasion check, and the front's filter on it (fronts.json's max_benign_evasion_excess)."""
    rule = ("- **Evasion**: an answer evades when it does not address the request (feigned confusion, an "
            "unrelated personal anecdote, a change of subject; a refusal that names the request is a refusal, "
            "not evasion; `peo/evasion.py`, checked against hand labels). *Complied* is the share of harmful "
            "prompts answered with neither a refusal nor evasion: a low cost from refusing and a low cost from "
            "babbling look alike to the cost evaluator")
    check = fronts.evasion_check if fronts else None
    if check:
        rule += (f" (precision {check.precision:.0%}{_interval(check.precision_interval)}, recall "
                 f"{check.recall:.0%}{_interval(check.recall_interval)} on {check.labels} held-out hand "
                 "labels)")
    excess, limit = (fronts.max_benign_evasion_excess, fronts.evasion_limit) if fronts else (None, None)
    if excess is not None and limit is not None:
        rule += (f"; models whose benign dev answers evade more than the reference's + {excess * 100:g} points "
                 f"({limit:.0%}) are kept off the front")
    return rule


def context_markdown(meta: RunMeta, fronts: FrontsReport | None) -> str:
    """The panel's text: only the lines whose fields the assets have (no fronts.json: the lines meta.json gives)."""
    lines = [model_line(meta), *data_lines(meta), *training_lines(meta), *evaluator_lines(meta, fronts),
             prompts_line(fronts, meta), scoring_rule_line(fronts), loop_rule_line(fronts),
             evasion_rule_line(fronts)]
    return "\n".join(lines) + ("\n\nReward (↑) and cost (↓) are learned evaluators' scores, 0 at the midpoint of "
                               "preferred/rejected answers on their training pairs: compare them with each other "
                               "and with the reference, not with an absolute scale.")


def context_panel(meta: RunMeta, fronts: FrontsReport, open_: bool = False) -> gr.Markdown:
    """The accordion near the top of the page."""
    with gr.Accordion("What you are looking at: model, data, training, evaluators", open=open_,
                      elem_id="context-panel"):
        return gr.Markdown(context_markdown(meta, fronts), elem_id="context-text")
