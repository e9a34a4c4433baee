"""Run configuration: one YAML file per profile, parsed strictly into pydantic models.

Every field has a documented default, its bounds and a description here; a profile file only states what it
changes. Unknown keys, wrong types and out-of-range values are rejected up front with the file and the dotted key
that is wrong, before any work starts (ConfigError). A check that concerns several fields is a validator of the
model that holds them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from peo.aspects import DEFAULT_ASPECTS, Aspect, Aspects, check_aspects
from peo.coefficients import grid_points
from peo.data.sources import LOADERS
from peo.decoding import SweepDecoding
from peo.errors import PeoError

Dtype = Literal["float32", "bfloat16"]
SPLITS = ("evaluator", "policy", "dev", "test")


class ConfigError(PeoError, ValueError):
    """A config value that cannot be used; the message names the file and the dotted key."""


class _Bad(ValueError):
    """Raised by a validator: `why` a value is refused; `key` (dotted, relative to where the validator runs)
    narrows the key the message names."""

    def __init__(self, why: str, key: str = ""):
        super().__init__(why)
        self.why, self.key = why, key


class _Strict(BaseModel):
    """No unknown keys, no coercion (a string is not a number, 2.0 is not an integer), finite numbers, read-only."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class AspectSettings(_Strict):
    """One aspect of the run (peo/aspects.py): the name of its evaluator and which way that evaluator is better."""

    evaluator: str = Field(description="the evaluator's name: its score column in answers.parquet and grid.csv "
                                       "(e.g. reward), and its folder under evaluators/")
    better: Literal["higher", "lower"] = Field(
        description="higher: a higher score is better (a reward); lower: a lower one is (a cost, minus the head "
                    "trained on the aspect's pairs)")
    label: str = Field("", description="the aspect in words (e.g. helpfulness); empty: its name")


def _default_aspects() -> dict[str, AspectSettings]:
    return {a.name: AspectSettings(evaluator=a.evaluator, better=a.better, label=a.label) for a in DEFAULT_ASPECTS}


def _unknown_names(value: dict, names: tuple[str, ...], what: str, key: str) -> None:
    unknown = sorted(set(value) - set(names))
    if unknown:
        raise _Bad(f"names {', '.join(unknown)}; the run's {what} are {', '.join(names)}", key)


class DataSource(_Strict):
    format: str = Field("hh", description="a key of peo.data.sources.LOADERS: hh | alpaca_eval | pku | pairs")
    path: str | None = Field(None, description="file or folder; relative to `data.root`")
    hub: str | None = Field(None, description="a hub dataset name instead of a path (where a hub is reachable)")
    split: str | None = Field(None, description="with `hub`: the dataset split (default train)")
    derive_cross_model_pairs: bool | None = Field(
        None, description="AlpacaEval only: also pairs between two compared models")
    limit: int | None = Field(None, description="read at most this many kept pairs")

    @field_validator("format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        if value not in LOADERS:
            raise _Bad(f"must be one of {', '.join(LOADERS)}; got {value!r}")
        return value

    @model_validator(mode="after")
    def _one_place(self) -> DataSource:
        if (self.path is None) == (self.hub is None):
            raise _Bad("needs exactly one of 'path' or 'hub'")
        return self


def _check_fractions(fractions: dict[str, float], key: str = "") -> None:
    if set(fractions) != set(SPLITS):
        raise _Bad(f"must name exactly {', '.join(SPLITS)}; got {fractions}", key)
    if any(v <= 0 for v in fractions.values()) or abs(sum(fractions.values()) - 1.0) > 1e-6:
        raise _Bad(f"must be positive and sum to 1, got {fractions}", key)


class SplitSizes(_Strict):
    """Prompt-disjoint split fractions (by a hash of the prompt) and caps on pairs per split."""

    fractions: dict[str, float] = Field(
        default_factory=lambda: {"evaluator": 0.45, "policy": 0.35, "dev": 0.1, "test": 0.1},
        description="each split's share of the prompts: evaluator, policy, dev, test; positive, summing to 1")
    fractions_per_aspect: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="aspect → its own fractions, replacing `fractions` for that aspect: a source with few prompts "
                    "(AlpacaEval has 678 instructions) needs most of them in `test` to give many test prompts; "
                    "default none")
    evaluator_pairs: int = Field(600, ge=1, description="Bradley-Terry training pairs per evaluator")
    evaluator_test_pairs: int = Field(
        300, ge=1, description="held-out pairs for evaluator accuracy (from the `test` split)")
    policy_pairs: int = Field(400, ge=1, description="DPO training pairs per aspect")
    policy_pairs_per_aspect: dict[str, int] = Field(
        default_factory=dict, description="e.g. {harm: 220}: overrides policy_pairs")
    dev_prompts: int = Field(
        16, ge=1, description="sweep prompts per aspect for choosing the front (and tuning anything)")
    test_prompts: int = Field(
        100, ge=1, description="sweep prompts per aspect for every reported figure (from the `test` split)")
    pairs_per_prompt: int = Field(
        2, ge=1, description="cap for sources with many pairs per prompt (AlpacaEval): DPO pairs")
    evaluator_pairs_per_prompt: int = Field(2, ge=1, description="the same cap for the evaluators' training pairs")
    test_pairs_per_prompt: int = Field(
        4, ge=1, description="the same cap for the held-out pairs (evaluator accuracy, policy check)")

    @field_validator("fractions")
    @classmethod
    def _fractions(cls, value: dict[str, float]) -> dict[str, float]:
        _check_fractions(value)
        return value

    @field_validator("fractions_per_aspect")
    @classmethod
    def _fractions_per_aspect(cls, value: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for aspect, fractions in value.items():
            _check_fractions(fractions, aspect)
        return value

    @field_validator("policy_pairs_per_aspect")
    @classmethod
    def _policy_pairs_per_aspect(cls, value: dict[str, int]) -> dict[str, int]:
        if any(n < 1 for n in value.values()):
            raise _Bad(f"needs each aspect with at least 1 pair, got {value}")
        return value

    def fractions_of(self, aspect: str) -> dict[str, float]:
        return self.fractions_per_aspect.get(aspect, self.fractions)


class DataConfig(_Strict):
    root: str = Field("../shared/data", description="relative to the repository root unless absolute")
    sources: dict[str, DataSource] = Field(
        default_factory=lambda: {"help": DataSource(format="alpaca_eval", path="alpaca_eval"),
                                 "harm": DataSource(format="hh", path="hh-rlhf/harmless-base-test.jsonl.gz")},
        description="aspect → where its preference pairs come from: one entry per aspect of `aspects`, in any "
                    "order (default: AlpacaEval for help, HH-RLHF harmless-base for harm)")
    skip_bad_rows: bool = Field(False, description="False: a bad row stops the run with file/line/field")
    extra_pairs: dict[str, str] = Field(
        default_factory=dict,
        description="aspect → a `pairs`-format file (e.g. `peo votes export`), relative to `root`, added to that "
                    "aspect's DPO training pairs (precompute/extra_pairs.py); default none")
    max_prompt_tokens: int = Field(160, description="prompts longer than this are left out")
    max_response_tokens: int = Field(192, description="answers longer than this are left out")
    splits: SplitSizes = Field(default_factory=SplitSizes, description="split fractions and sizes")

    @field_validator("extra_pairs")
    @classmethod
    def _extra_pairs(cls, value: dict[str, str]) -> dict[str, str]:
        if not all(value.values()):
            raise _Bad(f"maps aspects to a pairs file, got {value}")
        return value


class LoraSettings(_Strict):
    """The LoRA adapters' shape (peo.train.dpo.peft_lora_config turns it into PEFT's LoraConfig)."""

    r: int = Field(16, ge=1, description="the adapters' rank")
    alpha: int = Field(32, gt=0, description="LoRA's scaling numerator (the update is scaled by alpha / r)")
    dropout: float = Field(0.0, description="dropout on the adapters' input during training")
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        description="the linear layers that get an adapter")


class DPOSettings(_Strict):
    """DPO training of each policy (peo.train.dpo.train_dpo turns it into TRL's DPOConfig)."""

    beta: float = Field(0.1, gt=0, description="DPO's KL strength")
    learning_rate: float = Field(5e-4, gt=0, description="AdamW's learning rate")
    epochs: float = Field(1.0, description="passes over the training pairs")
    batch_size: int = Field(4, ge=1, description="pairs per device step")
    grad_accum: int = Field(1, description="steps per optimizer update")
    max_steps: int = Field(-1, description="-1: derived from epochs")
    save_steps: int = Field(20, description="checkpoint interval (a killed run resumes from the last one)")
    epochs_per_policy: dict[str, float] = Field(default_factory=dict,
                                                description="e.g. {help: 2}: overrides `epochs`")
    heldout_pairs: int = Field(
        200, description="held-out pairs of its own aspect for each policy's implicit-reward accuracy")
    dtype: Dtype = Field("float32", description="float32 | bfloat16; bf16 only pays on CPUs with native bf16 matmul")

    @field_validator("epochs_per_policy")
    @classmethod
    def _epochs_per_policy(cls, value: dict[str, float]) -> dict[str, float]:
        if any(v <= 0 for v in value.values()):
            raise _Bad(f"needs epochs > 0 per policy, got {value}")
        return value


class HFEvaluatorSettings(_Strict):
    """A Hugging Face sequence-classification reward model used as an evaluator instead of a trained head
    (peo/hf_evaluator.py, docs/evaluators.md). Loaded by AutoModelForSequenceClassification, safetensors only,
    never remote code."""

    hf_model: str = Field("", validate_default=True, description="required: a hub id (owner/name) or a local "
                                                                 "folder (relative to the repository root)")
    revision: str | None = Field(
        None, description="a hub id's branch, tag or commit; null = main (the commit used is recorded)")
    higher_is: str | None = Field(
        None, description="which way the model's score runs: better | worse; null = the kind's own way (reward: "
                          "higher is better; cost: higher is worse, i.e. more harmful). `better` on a cost "
                          "evaluator flips a harmlessness reward model.")
    center: bool = Field(
        True, description="shift so 0 is the midpoint of chosen/rejected scores on the evaluator's training pairs, "
                          "as the built-in heads are (the safe share, cost <= 0, then means what it means for "
                          "them); false keeps the model's own zero")
    max_length: int = Field(
        512, ge=1, description="tokens of the rendered conversation; longer ones keep their end (and BOS)")
    batch_size: int = Field(8, ge=1, description="answers per forward pass")
    dtype: Dtype = Field("float32", description="float32 | bfloat16")
    chat_template: str | None = Field(
        None, description="a Jinja chat template for the reward model (e.g. safe-rlhf's \"BEGINNING OF "
                          "CONVERSATION: USER: … ASSISTANT:…\"); null = the reward model's own chat template, else "
                          "the base model's")
    label: int | None = Field(
        None, description="models with several labels: the label whose log-odds is the score (required)")

    @field_validator("hf_model")
    @classmethod
    def _hf_model(cls, value: str) -> str:
        if not value.strip():
            raise _Bad("is required: a hub id (owner/name) or a local model folder")
        return value

    @field_validator("higher_is")
    @classmethod
    def _higher_is(cls, value: str | None) -> str | None:
        if value not in (None, "better", "worse"):
            raise _Bad(f"must be better, worse or null, got {value!r}")
        return value

    @field_validator("label")
    @classmethod
    def _label(cls, value: int | None) -> int | None:
        if value is not None and value < 0:
            raise _Bad(f"must be a label index >= 0 or null, got {value}")
        return value

    @field_validator("chat_template")
    @classmethod
    def _chat_template(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise _Bad("must be a Jinja chat template or null")
        return value


class EvaluatorConfig(_Strict):
    """Bradley-Terry heads on frozen reference-model features (see peo/train/evaluator.py for why); `reward` or
    `cost` set to a reward model replaces that head (the other fields then concern the remaining head only)."""

    l2_grid: list[float] = Field(default_factory=lambda: [1e-4, 1e-3, 1e-2, 1e-1],
                                 description="candidate L2 strengths, chosen by 5-fold CV; positive")
    layer_sets: list[list[int]] = Field(
        default_factory=lambda: [[-1]],
        description="candidate hidden-state layer sets (0 = embeddings, -1 = final); the set is chosen with l2 by "
                    "5-fold CV on the training pairs only. One forward pass computes every layer named here.")
    max_length: int = Field(320, description="tokens of prompt + answer fed to the feature extractor")
    batch_size: int = Field(16, ge=1, description="texts per feature-extractor forward pass")
    reward_models: dict[str, HFEvaluatorSettings] = Field(
        default_factory=dict,
        description="evaluator name (e.g. cost) → a Hugging Face reward model that replaces that evaluator's "
                    "built-in head; default none: every evaluator is a head trained on its aspect's pairs")

    @field_validator("l2_grid")
    @classmethod
    def _l2_grid(cls, value: list[float]) -> list[float]:
        if not value or any(v <= 0 for v in value):
            raise _Bad(f"must be a non-empty list of positive numbers, got {value}")
        return value

    @field_validator("layer_sets")
    @classmethod
    def _layer_sets(cls, value: list[list[int]]) -> list[list[int]]:
        if not value or any(not layers for layers in value):
            raise _Bad(f"must be a non-empty list of non-empty layer lists, got {value}")
        return value


class SweepConfig(SweepDecoding, _Strict):
    """The grid of models the sweep answers with, and its decoding (max_new_tokens, repetition_penalty and
    no_repeat_ngram_size are peo.decoding's declaration): greedy, the sweep's and the app's default."""

    lambdas: list[float] = Field(default_factory=lambda: [round(0.1 * i, 1) for i in range(11)],
                                 description="λ, the helpfulness weight of the joint direction, in [0, 1]")
    phi: dict[str, list[float]] = Field(
        default_factory=lambda: {"help": [0.0, 0.5, 1.0], "harm": [0.0, 0.5, 1.0]},
        description="aspect → the extrapolations ϕ along its task vector, in [0, 10]: one entry per aspect")
    max_loop_share: float = Field(
        0.1, ge=0, le=1, description="points whose dev answers loop more often are left out of the front")
    max_benign_evasion_excess: float | None = Field(
        0.1, ge=0, le=1,
        description="points whose benign dev evasion share (answers that do not address an ordinary request, "
                    "peo.evasion) exceeds the reference's by more than this are left out of the front; null = no "
                    "evasion filter")
    expo_alphas: list[float] = Field(
        default_factory=lambda: [0.5, 1.0, 1.5, 2.0],
        description="ExPO (Zheng et al.): θ_ref + α·Δ_joint, the single-vector extrapolation PEO is compared with; "
                    "distinct values in (0, 10]; [] = none")
    batch_size: int = Field(64, ge=1, description="rows per generation batch; rows may carry different coefficients")
    score_batch_size: int | None = Field(
        None, ge=1,
        description="answers per evaluator forward pass when the sweep scores its answers; null = the feature "
                    "extractor's 16. On a GPU scoring at 16 took as long as generating (bench/README.md, \"The gpu "
                    "precompute profile\")")
    dtype: Dtype = Field("float32", description="float32 | bfloat16")
    max_models: int = Field(400, description="refuse grids that would take longer than any profile should")

    @field_validator("lambdas")
    @classmethod
    def _lambdas(cls, value: list[float]) -> list[float]:
        if not value or any(not 0.0 <= v <= 1.0 for v in value):
            raise _Bad(f"must be a non-empty list of values in [0, 1], got {value}")
        return value

    @field_validator("phi")
    @classmethod
    def _phis(cls, value: dict[str, list[float]]) -> dict[str, list[float]]:
        for aspect, values in value.items():
            if not values or any(v < 0.0 or v > 10.0 for v in values):
                raise _Bad(f"must be a non-empty list of values in [0, 10], got {values}", aspect)
        return value

    @field_validator("expo_alphas")
    @classmethod
    def _expo_alphas(cls, value: list[float]) -> list[float]:
        if any(not 0.0 < a <= 10.0 for a in value) or len(set(value)) != len(value):
            raise _Bad(f"must be distinct values in (0, 10], got {value}")
        return value

    def phis(self, aspects: tuple[str, ...]) -> list[list[float]]:
        """ϕ values per aspect, in the aspects' order."""
        return [self.phi[a] for a in aspects]


class ReportConfig(_Strict):
    n_boot: int = Field(1000, description="bootstrap resamples for every confidence interval")
    votes_dir: str | None = Field(
        None, description="a folder of the app's votes (its --votes-dir, e.g. data/votes): the report sets the "
        "human votes beside each win rate and measures the LLM judge's agreement with them; none: no votes. "
        "The report is not redone when votes are added: run `--stage report --force`")


class RunConfig(_Strict):
    aspects: dict[str, AspectSettings] = Field(
        default_factory=_default_aspects,
        description="aspect → its evaluator and which way it is better, in order (peo/aspects.py); default: help "
                    "(reward, higher) and harm (cost, lower). Each aspect gets a DPO policy, an evaluator and a "
                    "coefficient; `data.sources` and `sweep.phi` name the same aspects")
    name: str = Field("cpu", description="the profile's name; `{name}` in paths")
    seed: int = Field(0, description="seeds training, splits and sampling")
    base_model: str = Field(
        "smollm2-135m-instruct",
        description="a local HF folder, a hub id, `smollm2-135m-instruct` or `tiny`")
    threads: int | None = Field(None, description="torch threads; None = all cores")
    out: str = Field("assets", description="relative to the repository root unless absolute")
    work_dir: str = Field("runs/{name}", description="checkpoints and intermediate files (git-ignored)")
    data: DataConfig = Field(default_factory=DataConfig)
    lora: LoraSettings = Field(default_factory=LoraSettings)
    dpo: DPOSettings = Field(default_factory=DPOSettings)
    evaluator: EvaluatorConfig = Field(default_factory=EvaluatorConfig)
    sweep: SweepConfig = Field(default_factory=SweepConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)

    @field_validator("aspects")
    @classmethod
    def _aspect_names(cls, value: dict[str, AspectSettings]) -> dict[str, AspectSettings]:
        problems = check_aspects([(name, a.evaluator) for name, a in value.items()])
        if problems:
            raise _Bad("; ".join(problems))
        return value

    @model_validator(mode="after")
    def _same_aspects(self) -> RunConfig:
        """Every section that names aspects names this run's, and the grid is not too large."""
        names = tuple(self.aspects)
        for key, value in (("data.sources", self.data.sources), ("sweep.phi", self.sweep.phi)):
            if set(value) != set(names):
                raise _Bad(f"must name exactly the aspects ({', '.join(names)}); got {', '.join(value) or 'none'}",
                           key)
        for key, value, allowed, what in (
                ("data.extra_pairs", self.data.extra_pairs, names, "aspects"),
                ("data.splits.fractions_per_aspect", self.data.splits.fractions_per_aspect, names, "aspects"),
                ("data.splits.policy_pairs_per_aspect", self.data.splits.policy_pairs_per_aspect, names, "aspects"),
                ("dpo.epochs_per_policy", self.dpo.epochs_per_policy, self.aspect_set.adapters, "policies"),
                ("evaluator.reward_models", self.evaluator.reward_models, self.aspect_set.evaluators, "evaluators")):
            _unknown_names(value, allowed, what, key)
        n_models = len(grid_points(self.sweep.lambdas, self.sweep.phis(names)))
        if n_models > self.sweep.max_models:
            raise _Bad(f"grid has {n_models} points, more than sweep.max_models={self.sweep.max_models}", "sweep")
        return self

    @property
    def aspect_set(self) -> Aspects:
        """The run's aspects as peo.aspects reads them."""
        return Aspects(tuple(Aspect(name, a.evaluator, a.better, a.label or name) for name, a in self.aspects.items()))


def _dotted(loc: tuple) -> str:
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key


def _model_at(loc: tuple) -> type[BaseModel] | None:
    """The model class that holds the key at `loc` (None past a model, e.g. inside a list)."""
    model: Any = RunConfig
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            return None
        model = next((a for a in (field.annotation, *getattr(field.annotation, "__args__", ()))
                      if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if model is None:
            return None
    return model


_TYPES = {"float_type": "must be a finite number", "float_parsing": "must be a finite number",
          "finite_number": "must be a finite number", "int_type": "must be an integer",
          "int_from_float": "must be an integer", "int_parsing": "must be an integer",
          "bool_type": "must be true or false", "bool_parsing": "must be true or false",
          "string_type": "must be a string", "list_type": "must be a list", "dict_type": "must be a mapping"}
_BOUNDS = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}


def _message(error: dict) -> str:
    """One pydantic error as "'dotted.key' why", the way every config error reads."""
    loc, kind, got, ctx = tuple(error["loc"]), error["type"], error.get("input"), error.get("ctx") or {}
    key = _dotted(loc)
    if kind == "value_error" and isinstance(ctx.get("error"), _Bad):
        bad = ctx["error"]
        key = ".".join(k for k in (key, bad.key) if k)
        return f"'{key or 'top level'}' {bad.why}"
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1])
        allowed = f" (allowed here: {', '.join(sorted(model.model_fields))})" if model else ""
        return f"unknown key '{key}'{allowed}"
    if kind in ("model_type", "model_attributes_type"):
        return f"'{key or 'top level'}' must be a mapping, got {type(got).__name__}"
    if kind in _TYPES:
        return f"'{key}' {_TYPES[kind]}, got {got!r}"
    for name, sign in _BOUNDS.items():
        if kind == name:
            limit = next(iter(ctx.values()))
            limit = f"{limit:g}" if isinstance(limit, float) else limit
            return f"'{key}' must be {sign} {limit}, got {got!r}"
    if kind == "literal_error":
        return f"'{key}' must be {ctx['expected'].replace(chr(39), '')}, got {got!r}"
    return f"'{key}' {error['msg'][0].lower()}{error['msg'][1:]}, got {got!r}"


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Read a profile YAML; `overrides` (dotted keys) win over the file."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot read config: {err}") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: 'top level' must be a mapping, got {type(raw).__name__}")
    for dotted, value in (overrides or {}).items():
        node = raw
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(f"{path}: {'; '.join(_message(e) for e in err.errors())}") from None


def config_to_dict(cfg: RunConfig) -> dict[str, Any]:
    return cfg.model_dump()
