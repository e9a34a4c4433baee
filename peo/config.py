"""Run configuration: one YAML file per profile, parsed strictly into dataclasses.

Every field has a documented default here; a profile file only states what it changes. Unknown keys and
out-of-range values are rejected up front with the dotted key that is wrong, before any work starts.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import yaml

from peo.data.sources import LOADERS
from peo.errors import PeoError
from peo.names import ADAPTERS, ASPECTS


class ConfigError(PeoError, ValueError):
    """A config value that cannot be used; the message names the file and the dotted key."""


@dataclass
class DataSource:
    format: str = "hh"  # a key of peo.data.sources.LOADERS: hh | alpaca_eval | pku | pairs
    path: str | None = None  # file or folder; relative to `data.root`
    hub: str | None = None  # a hub dataset name instead of a path (where a hub is reachable)
    split: str | None = None  # with `hub`: the dataset split (default train)
    derive_cross_model_pairs: bool | None = None  # AlpacaEval only: also pairs between two compared models
    limit: int | None = None  # read at most this many kept pairs


@dataclass
class SplitSizes:
    """Prompt-disjoint split fractions (by a hash of the prompt) and caps on pairs per split."""

    fractions: dict[str, float] = field(
        default_factory=lambda: {"evaluator": 0.45, "policy": 0.35, "dev": 0.1, "test": 0.1}
    )
    # aspect → its own fractions, replacing `fractions` for that aspect: a source with few prompts (AlpacaEval has
    # 678 instructions) needs most of them in `test` to give many test prompts; default none
    fractions_per_aspect: dict[str, dict[str, float]] = field(default_factory=dict)
    evaluator_pairs: int = 600  # Bradley-Terry training pairs per evaluator
    evaluator_test_pairs: int = 300  # held-out pairs for evaluator accuracy (from the `test` split)
    policy_pairs: int = 400  # DPO training pairs per aspect
    policy_pairs_per_aspect: dict[str, int] = field(default_factory=dict)  # e.g. {harm: 220}: overrides policy_pairs
    dev_prompts: int = 16  # sweep prompts per aspect for choosing the front (and tuning anything)
    test_prompts: int = 100  # sweep prompts per aspect for every reported figure (from the `test` split)
    pairs_per_prompt: int = 2  # cap for sources with many pairs per prompt (AlpacaEval): DPO pairs
    evaluator_pairs_per_prompt: int = 2  # the same cap for the evaluators' training pairs
    test_pairs_per_prompt: int = 4  # the same cap for the held-out pairs (evaluator accuracy, policy check)

    def fractions_of(self, aspect: str) -> dict[str, float]:
        return self.fractions_per_aspect.get(aspect, self.fractions)


@dataclass
class DataConfig:
    root: str = "../shared/data"  # relative to the repository root unless absolute
    help: DataSource = field(default_factory=lambda: DataSource(format="alpaca_eval", path="alpaca_eval"))
    harm: DataSource = field(
        default_factory=lambda: DataSource(format="hh", path="hh-rlhf/harmless-base-test.jsonl.gz")
    )
    skip_bad_rows: bool = False  # False: a bad row stops the run with file/line/field
    # aspect → a `pairs`-format file (e.g. `peo votes export`), relative to `root`, added to that aspect's DPO
    # training pairs (precompute/extra_pairs.py); default none
    extra_pairs: dict[str, str] = field(default_factory=dict)
    max_prompt_tokens: int = 160
    max_response_tokens: int = 192
    splits: SplitSizes = field(default_factory=SplitSizes)


@dataclass
class LoraSettings:
    """The LoRA adapters' shape (peo.train.dpo.peft_lora_config turns it into PEFT's LoraConfig)."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )


@dataclass
class DPOSettings:
    """DPO training of each policy (peo.train.dpo.train_dpo turns it into TRL's DPOConfig)."""

    beta: float = 0.1
    learning_rate: float = 5e-4
    epochs: float = 1.0
    batch_size: int = 4
    grad_accum: int = 1
    max_steps: int = -1  # -1: derived from epochs
    save_steps: int = 20  # checkpoint interval (a killed run resumes from the last one)
    epochs_per_policy: dict[str, float] = field(default_factory=dict)  # e.g. {help: 2}: overrides `epochs`
    heldout_pairs: int = 200  # held-out pairs of its own aspect for each policy's implicit-reward accuracy
    dtype: str = "float32"  # float32 | bfloat16; bf16 only pays on CPUs with native bf16 matmul


@dataclass
class HFEvaluatorSettings:
    """A Hugging Face sequence-classification reward model used as an evaluator instead of a trained head
    (peo/hf_evaluator.py, docs/evaluators.md). Loaded by AutoModelForSequenceClassification, safetensors only,
    never remote code."""

    hf_model: str = ""  # required: a hub id (owner/name) or a local folder (relative to the repository root)
    revision: str | None = None  # a hub id's branch, tag or commit; null = main (the commit used is recorded)
    # which way the model's score runs: better | worse; null = the kind's own way (reward: higher is better;
    # cost: higher is worse, i.e. more harmful). `better` on a cost evaluator flips a harmlessness reward model.
    higher_is: str | None = None
    # shift so 0 is the midpoint of chosen/rejected scores on the evaluator's training pairs, as the built-in heads
    # are (the safe share, cost <= 0, then means what it means for them); false keeps the model's own zero
    center: bool = True
    max_length: int = 512  # tokens of the rendered conversation; longer ones keep their end (and BOS)
    batch_size: int = 8  # answers per forward pass
    dtype: str = "float32"  # float32 | bfloat16
    # a Jinja chat template for the reward model (e.g. safe-rlhf's "BEGINNING OF CONVERSATION: USER: …
    # ASSISTANT:…"); null = the reward model's own chat template, else the base model's
    chat_template: str | None = None
    label: int | None = None  # models with several labels: the label whose log-odds is the score (required)


@dataclass
class EvaluatorConfig:
    """Bradley-Terry heads on frozen reference-model features (see peo/train/evaluator.py for why); `reward` or
    `cost` set to a reward model replaces that head (the other fields then concern the remaining head only)."""

    l2_grid: list[float] = field(default_factory=lambda: [1e-4, 1e-3, 1e-2, 1e-1])  # chosen by 5-fold CV
    # candidate hidden-state layer sets (0 = embeddings, -1 = final); the set is chosen with l2 by 5-fold CV
    # on the training pairs only. One forward pass computes every layer named here.
    layer_sets: list[list[int]] = field(default_factory=lambda: [[-1]])
    max_length: int = 320  # tokens of prompt + answer fed to the feature extractor
    batch_size: int = 16
    reward: HFEvaluatorSettings | None = None  # null: the built-in head on helpfulness pairs
    cost: HFEvaluatorSettings | None = None  # null: the built-in head on harmlessness pairs


@dataclass
class SweepConfig:
    lambdas: list[float] = field(default_factory=lambda: [round(0.1 * i, 1) for i in range(11)])
    phi_help: list[float] = field(default_factory=lambda: [0.0, 0.5, 1.0])
    phi_harm: list[float] = field(default_factory=lambda: [0.0, 0.5, 1.0])
    max_new_tokens: int = 64
    # decoding of the sweep and the app's default (greedy unless the app's user sets a temperature)
    repetition_penalty: float = 1.0  # > 1: CTRL's penalty on tokens already in prompt or answer
    no_repeat_ngram_size: int = 0  # > 0: no n-gram of this size twice in one text
    max_loop_share: float = 0.1  # points whose dev answers loop more often are left out of the front
    # points whose benign dev evasion share (answers that do not address an ordinary request, peo.evasion) exceeds
    # the reference's by more than this are left out of the front; null = no evasion filter
    max_benign_evasion_excess: float | None = 0.1
    # ExPO (Zheng et al.): θ_ref + α·Δ_joint, the single-vector extrapolation PEO is compared with; [] = none
    expo_alphas: list[float] = field(default_factory=lambda: [0.5, 1.0, 1.5, 2.0])
    batch_size: int = 64  # rows per generation batch; rows may carry different coefficients
    # answers per evaluator forward pass when the sweep scores its answers; null = the feature extractor's 16. On
    # a GPU scoring at 16 took as long as generating (bench/README.md, "The gpu precompute profile")
    score_batch_size: int | None = None
    dtype: str = "float32"
    max_models: int = 400  # refuse grids that would take longer than any profile should


@dataclass
class ReportConfig:
    n_boot: int = 1000


@dataclass
class RunConfig:
    name: str = "cpu"
    seed: int = 0
    base_model: str = "smollm2-135m-instruct"  # a local HF folder, a hub id, `smollm2-135m-instruct` or `tiny`
    threads: int | None = None  # torch threads; None = all cores
    out: str = "assets"  # relative to the repository root unless absolute
    work_dir: str = "runs/{name}"  # checkpoints and intermediate files (git-ignored)
    data: DataConfig = field(default_factory=DataConfig)
    lora: LoraSettings = field(default_factory=LoraSettings)
    dpo: DPOSettings = field(default_factory=DPOSettings)
    evaluator: EvaluatorConfig = field(default_factory=EvaluatorConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    report: ReportConfig = field(default_factory=ReportConfig)


def _build(cls: type, raw: Any, where: str, source: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: '{where or 'top level'}' must be a mapping, got {type(raw).__name__}")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        key = f"{where}.{unknown[0]}" if where else unknown[0]
        raise ConfigError(f"{source}: unknown key '{key}' (allowed here: {', '.join(sorted(names))})")
    values = {}
    for name, value in raw.items():
        key = f"{where}.{name}" if where else name
        values[name] = _coerce(hints[name], value, key, source)
    return cls(**values)


def _coerce(hint: Any, value: Any, key: str, source: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key, source)
    args = get_args(hint)
    if type(None) in args:
        if value is None:
            return None
        hint = next(a for a in args if a is not type(None))
        if dataclasses.is_dataclass(hint):
            return _build(hint, value, key, source)
    origin = get_origin(hint)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{source}: '{key}' must be a list, got {value!r}")
        return [_coerce(get_args(hint)[0], v, f"{key}[{i}]", source) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: '{key}' must be a mapping, got {value!r}")
        return {str(k): _coerce(get_args(hint)[1], v, f"{key}.{k}", source) for k, v in value.items()}
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{source}: '{key}' must be a finite number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: '{key}' must be an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: '{key}' must be true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: '{key}' must be a string, got {value!r}")
        return value
    return value


def _check(cfg: RunConfig, source: str) -> None:
    def bad(key: str, why: str) -> ConfigError:
        return ConfigError(f"{source}: '{key}' {why}")

    for key, values in (("sweep.lambdas", cfg.sweep.lambdas),):
        if not values or any(not 0.0 <= v <= 1.0 for v in values):
            raise bad(key, f"must be a non-empty list of values in [0, 1], got {values}")
    for key, values in (("sweep.phi_help", cfg.sweep.phi_help), ("sweep.phi_harm", cfg.sweep.phi_harm)):
        if not values or any(v < 0.0 or v > 10.0 for v in values):
            raise bad(key, f"must be a non-empty list of values in [0, 10], got {values}")
    alphas = cfg.sweep.expo_alphas
    if any(not 0.0 < a <= 10.0 for a in alphas) or len(set(alphas)) != len(alphas):
        raise bad("sweep.expo_alphas", f"must be distinct values in (0, 10], got {alphas}")
    splits = cfg.data.splits
    if set(splits.fractions_per_aspect) - set(ASPECTS):
        raise bad("data.splits.fractions_per_aspect", f"names {' or '.join(ASPECTS)}, got "
                  f"{sorted(splits.fractions_per_aspect)}")
    checked = [("data.splits.fractions", splits.fractions)]
    checked += [(f"data.splits.fractions_per_aspect.{a}", f) for a, f in splits.fractions_per_aspect.items()]
    for key, fractions in checked:
        if not isinstance(fractions, dict) or set(fractions) != {"evaluator", "policy", "dev", "test"}:
            raise bad(key, f"must name exactly evaluator, policy, dev, test; got {fractions}")
        if any(v <= 0 for v in fractions.values()) or abs(sum(fractions.values()) - 1.0) > 1e-6:
            raise bad(key, f"must be positive and sum to 1, got {fractions}")
    for name in ("evaluator_pairs", "evaluator_test_pairs", "policy_pairs", "dev_prompts", "test_prompts",
                 "pairs_per_prompt", "evaluator_pairs_per_prompt", "test_pairs_per_prompt"):
        if getattr(cfg.data.splits, name) < 1:
            raise bad(f"data.splits.{name}", "must be at least 1 (a zero-sized split)")
    per_aspect = cfg.data.splits.policy_pairs_per_aspect
    if set(per_aspect) - set(ASPECTS) or any(n < 1 for n in per_aspect.values()):
        raise bad("data.splits.policy_pairs_per_aspect", f"names {' or '.join(ASPECTS)} with at least 1 pair, "
                  f"got {per_aspect}")
    for key, dtype in (("dpo.dtype", cfg.dpo.dtype), ("sweep.dtype", cfg.sweep.dtype)):
        if dtype not in ("float32", "bfloat16"):
            raise bad(key, f"must be float32 or bfloat16, got {dtype!r}")
    for aspect in ASPECTS:
        source_key, src = f"data.{aspect}", getattr(cfg.data, aspect)
        if src.format not in LOADERS:
            raise bad(f"{source_key}.format", f"must be one of {', '.join(LOADERS)}; got {src.format!r}")
        if (src.path is None) == (src.hub is None):
            raise bad(source_key, "needs exactly one of 'path' or 'hub'")
    if set(cfg.data.extra_pairs) - set(ASPECTS) or not all(cfg.data.extra_pairs.values()):
        raise bad("data.extra_pairs", f"maps {' or '.join(ASPECTS)} to a pairs file, got {cfg.data.extra_pairs}")
    if not 0.0 <= cfg.sweep.max_loop_share <= 1.0:
        raise bad("sweep.max_loop_share", f"must be in [0, 1], got {cfg.sweep.max_loop_share}")
    excess = cfg.sweep.max_benign_evasion_excess
    if excess is not None and not 0.0 <= excess <= 1.0:
        raise bad("sweep.max_benign_evasion_excess", f"must be in [0, 1] or null, got {excess}")
    if cfg.sweep.repetition_penalty <= 0 or cfg.sweep.no_repeat_ngram_size < 0:
        raise bad("sweep", "repetition_penalty must be > 0 and no_repeat_ngram_size >= 0")
    unknown = set(cfg.dpo.epochs_per_policy) - set(ADAPTERS)
    if unknown or any(v <= 0 for v in cfg.dpo.epochs_per_policy.values()):
        names = f"{', '.join(ADAPTERS[:-1])} or {ADAPTERS[-1]}"
        raise bad("dpo.epochs_per_policy", f"names {names} with epochs > 0, got {cfg.dpo.epochs_per_policy}")
    if not cfg.evaluator.layer_sets or any(not layers for layers in cfg.evaluator.layer_sets):
        raise bad("evaluator.layer_sets",
                  f"must be a non-empty list of non-empty layer lists, got {cfg.evaluator.layer_sets}")
    for kind in ("reward", "cost"):
        _check_hf_evaluator(getattr(cfg.evaluator, kind), f"evaluator.{kind}", bad)
    if cfg.lora.r < 1 or cfg.lora.alpha <= 0:
        raise bad("lora", f"r must be >= 1 and alpha > 0, got r={cfg.lora.r}, alpha={cfg.lora.alpha}")
    if not cfg.evaluator.l2_grid or any(v <= 0 for v in cfg.evaluator.l2_grid):
        raise bad("evaluator.l2_grid", f"must be a non-empty list of positive numbers, got {cfg.evaluator.l2_grid}")
    for key, value in (("dpo.beta", cfg.dpo.beta), ("dpo.learning_rate", cfg.dpo.learning_rate)):
        if value <= 0:
            raise bad(key, f"must be > 0, got {value}")
    score_batch = cfg.sweep.score_batch_size
    for key, value in (("dpo.batch_size", cfg.dpo.batch_size), ("evaluator.batch_size", cfg.evaluator.batch_size),
                       ("sweep.batch_size", cfg.sweep.batch_size), ("sweep.max_new_tokens", cfg.sweep.max_new_tokens),
                       ("sweep.score_batch_size", 1 if score_batch is None else score_batch)):
        if value < 1:
            raise bad(key, f"must be >= 1, got {value}")
    n_models = len(cfg.sweep.lambdas) * len(cfg.sweep.phi_help) * len(cfg.sweep.phi_harm)
    if n_models > cfg.sweep.max_models:
        raise bad("sweep", f"grid has {n_models} points, more than sweep.max_models={cfg.sweep.max_models}")


def _check_hf_evaluator(hf: HFEvaluatorSettings | None, key: str, bad) -> None:
    if hf is None:
        return
    if not hf.hf_model.strip():
        raise bad(f"{key}.hf_model", "is required: a hub id (owner/name) or a local model folder")
    if hf.higher_is not in (None, "better", "worse"):
        raise bad(f"{key}.higher_is", f"must be better, worse or null, got {hf.higher_is!r}")
    if hf.dtype not in ("float32", "bfloat16"):
        raise bad(f"{key}.dtype", f"must be float32 or bfloat16, got {hf.dtype!r}")
    for name in ("max_length", "batch_size"):
        if getattr(hf, name) < 1:
            raise bad(f"{key}.{name}", f"must be >= 1, got {getattr(hf, name)}")
    if hf.label is not None and hf.label < 0:
        raise bad(f"{key}.label", f"must be a label index >= 0 or null, got {hf.label}")
    if hf.chat_template is not None and not hf.chat_template.strip():
        raise bad(f"{key}.chat_template", "must be a Jinja chat template or null")


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Read a profile YAML; `overrides` (dotted keys) win over the file."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot read config: {err}") from err
    for dotted, value in (overrides or {}).items():
        node = raw
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    cfg = _build(RunConfig, raw, "", str(path))
    _check(cfg, str(path))
    return cfg


def config_to_dict(cfg: RunConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)
