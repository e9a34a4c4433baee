"""The project's fixed names, each defined once: aspects, adapters, methods, chat columns, evaluators, files.

Every other module reads them from here, so adding an aspect or a chat column starts in this file
(ARCHITECTURE.md says what else to touch). `peo/__init__.py` says what each word means.
"""

from __future__ import annotations

from typing import Literal

# ---------------------------------------------------------------- aspects and the policies trained on them

Aspect = Literal["help", "harm"]
ASPECTS: tuple[Aspect, ...] = ("help", "harm")  # also the names of the aspect policies' adapters
JOINT = "joint"  # the scalarized baseline: one DPO policy on a mix of both aspects' pairs
ADAPTERS: tuple[str, ...] = (*ASPECTS, JOINT)  # the LoRA adapters precompute trains and the app loads

# ---------------------------------------------------------------- evaluators

EVALUATOR_OF_ASPECT: dict[str, str] = {"help": "reward", "harm": "cost"}  # higher reward / lower cost is better
EVALUATOR_KINDS: tuple[str, ...] = tuple(EVALUATOR_OF_ASPECT.values())
ASPECT_OF_EVALUATOR: dict[str, str] = {kind: aspect for aspect, kind in EVALUATOR_OF_ASPECT.items()}

# ---------------------------------------------------------------- prompts, and what each evaluator is averaged over

# answers.parquet `prompt_kind`: the aspect whose data the prompt comes from (help: benign instructions, harm:
# harmful requests). Split-aware scoring: each evaluator is averaged over its own aspect's prompts only, so a
# point's reward is its helpfulness on benign prompts and its cost its harmfulness on harmful ones.
BENIGN, HARMFUL = "help", "harm"
PROMPT_KIND_OF_EVALUATOR: dict[str, str] = {"reward": BENIGN, "cost": HARMFUL}

# ---------------------------------------------------------------- per-answer columns of answers.parquet

EVADES = "evades"  # bool: the answer does not address the request (peo.evasion.evades; assets/FORMAT.md)

# ---------------------------------------------------------------- grid.csv's per-model figures (assets/FORMAT.md)

# each with a split suffix (_dev, _test) and once unsuffixed (the shown split). reward_mean / cost_mean are
# split-aware (reward on benign prompts, cost on harmful prompts); *_all_* are the older means over every prompt.
GRID_STATS: tuple[str, ...] = (
    "reward_mean", "reward_se", "cost_mean", "cost_se",
    "reward_all_mean", "reward_all_se", "cost_all_mean", "cost_all_se",
    "safe_share", "loop_share", "refusal_share", "over_refusal_share",
    "evasion_share_benign", "evasion_share_harmful", "complied_share",
    "mean_words", "cut_share", "n", "n_benign", "n_harmful",
)
COUNT_STATS: tuple[str, ...] = ("n", "n_benign", "n_harmful")  # integers (0 when the model was not run)

# ---------------------------------------------------------------- methods (how a grid row's model was made)

REFERENCE = "ref"
PEO, SOUP = "peo", "soup"  # extrapolated grid points; interpolation only (ϕ = 0)
EXPO = "expo"  # ExPO: the joint policy extrapolated from the reference, θ_ref + α·Δ_joint (α = 1: joint DPO)
# The app's ExPO chat column: α = 1.5 is ExPO's usual 0.5 beyond the aligned model (θ_joint + 0.5·Δ_joint)
EXPO_CHAT_ALPHA = 1.5
BASELINE_SCALES: dict[str, dict[str, float]] = {  # fixed models: adapter → scale
    REFERENCE: {},
    "help": {"help": 1.0},
    "harm": {"harm": 1.0},
    JOINT: {JOINT: 1.0},
}
BASELINES: tuple[str, ...] = tuple(BASELINE_SCALES)
BASELINE_LABELS: dict[str, str] = {REFERENCE: "reference", "help": "DPO-Help", "harm": "DPO-Harm",
                                   JOINT: "joint DPO"}
METHODS: tuple[str, ...] = (PEO, SOUP, EXPO, *BASELINES)
REFERENCE_MODEL_ID = "c+0.000_+0.000"  # the reference's model_id in grid.csv (= peo.coefficients.model_id(0, 0))

# ---------------------------------------------------------------- chat columns of the app (key → label)

CHAT_COLUMNS: dict[str, str] = {PEO: "PEO (picked point)", REFERENCE: "Reference", "help": "DPO-Help",
                                "harm": "DPO-Harm", SOUP: "Soup (same λ)", JOINT: "Joint DPO",
                                EXPO: f"ExPO (joint × {EXPO_CHAT_ALPHA:g})"}
DEFAULT_CHAT_COLUMNS: list[str] = [PEO, REFERENCE, "help", "harm", SOUP]

# ---------------------------------------------------------------- files in an assets folder (assets/FORMAT.md)

# Joined into paths in one place, peo.layout.AssetLayout, which every stage that writes them and every reader uses.
GRID_FILE = "grid.csv"
ANSWERS_FILE = "answers.parquet"
META_FILE = "meta.json"
MANIFEST_FILE = "manifest.json"
ADAPTERS_DIR = "adapters"
TRAINING_FILE = "adapters/training.json"
EVALUATORS_DIR = "evaluators"
# in each evaluators/<kind>/ folder
HEAD_WEIGHTS = "head.safetensors"  # a trained head's weights (none for a Hugging Face reward model)
HEAD_META = "evaluator.json"  # what the evaluator is and its held-out figures
REF_LOGPS = "heldout_ref_logps.json"  # the reference's log-probs of the held-out pairs
REPORT_DIR = "report"
# in the report folder
FRONTS_FILE = "fronts.json"  # every number of report.md
REPORT_FILE = "report.md"
FRONT_FIGURE = "front.png"
TRAINING_FIGURE = "training.png"
JUDGMENTS_FILE = "blind_judgments.jsonl"  # blind pairwise judgments of test answers (who judged: `judge`)
JUDGMENT_AGREEMENT_FILE = "judgment_agreement.json"  # experiments.blind_judgments' summary of them
EVASION_LABELS_FILE = "evasion_labels.jsonl"  # the hand labels peo.evasion is validated on
EVASION_VALIDATION_FILE = "evasion_validation.json"  # peo.evasion's precision/recall on hand labels
JUDGE_VERDICTS_FILE = "judge_verdicts.jsonl"  # `peo judge --out` here: an LLM judge's verdicts, the report reads
