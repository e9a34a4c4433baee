"""The project's fixed names that are not about aspects, each defined once: methods, the joint adapter, per-answer
columns, files.

A run's aspects are config (`aspects:` in a profile, meta.json `aspects`), and every name derived from them
(adapters, baselines and their labels and scales, chat columns, evaluators, grid.csv's figures) is derived in
`peo/aspects.py`; `peo.aspects.DEFAULT_ASPECTS` are the default two, help/reward and harm/cost.
`peo/__init__.py` says what each word means.
"""

from __future__ import annotations

# ---------------------------------------------------------------- the policies trained on the aspects

JOINT = "joint"  # the scalarized baseline: one DPO policy on a mix of every aspect's pairs (an adapter besides theirs)

# ---------------------------------------------------------------- prompts of the default aspects

# answers.parquet `prompt_kind`: the aspect whose data the prompt comes from (help: benign instructions, harm:
# harmful requests). peo.grid_table's text checks (refusals, evasion, safe share) read these two kinds.
BENIGN, HARMFUL = "help", "harm"

# ---------------------------------------------------------------- per-answer columns of answers.parquet

EVADES = "evades"  # bool: the answer does not address the request (peo.evasion.evades; assets/FORMAT.md)

# ---------------------------------------------------------------- methods (how a grid row's model was made)

REFERENCE = "ref"
PEO, SOUP = "peo", "soup"  # extrapolated grid points; interpolation only (ϕ = 0)
EXPO = "expo"  # ExPO: the joint policy extrapolated from the reference, θ_ref + α·Δ_joint (α = 1: joint DPO)
# The app's ExPO chat column: α = 1.5 is ExPO's usual 0.5 beyond the aligned model (θ_joint + 0.5·Δ_joint)
EXPO_CHAT_ALPHA = 1.5
REFERENCE_MODEL_ID = "c+0.000_+0.000"  # the reference's model_id in grid.csv (= peo.coefficients.model_id(0, 0))

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
