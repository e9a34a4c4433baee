"""Any Hugging Face sequence-classification reward model as an evaluator (`evaluator.reward_models`).

The model is loaded with transformers' documented recipe only: AutoTokenizer + AutoModelForSequenceClassification,
weights from safetensors (`use_safetensors=True`), never `trust_remote_code`. A checkpoint whose classification
head is not in its weights (a causal LM, or a custom score model such as safe-rlhf's LlamaForScore, whose head is
named `score_head`) is refused: transformers would otherwise fill the head with random numbers and warn.

An answer is read as the conversation (prompt messages + the answer as the assistant's turn) rendered with the
reward model's own chat template, or `chat_template` from config, or else the base model's; the score is the
model's pooled logit (transformers pools at the last token that is not padding). With `num_labels` > 1 the score is
the log-odds of the configured `label`: logit[label] − logsumexp(other logits).

Its scores enter peo exactly as the built-in heads' do (`peo.scoring.Evaluators`): sign-corrected so that reward is
higher for better answers and cost higher for more harmful ones, and shifted by `offset` (the midpoint of the
chosen/rejected scores on the evaluator's training pairs when `center`, else 0: the model's own zero).
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from peo.aspects import DEFAULT_ASPECTS, Better
from peo.atomic import sha256
from peo.errors import PeoError
from peo.model_source import ModelSourceError, check_model_folder, torch_dtype
from peo.scoring import HF_SOURCE

Messages = list[dict[str, str]]
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


class HFEvaluatorError(PeoError, ValueError):
    """A reward model that cannot be used as an evaluator; the message names the config key."""


def project_root() -> Path:
    return Path(__file__).resolve().parents[1]


def resolve_hf_model(spec: str, key: str) -> str:
    """A local folder (absolute, checked: config.json, safetensors, no remote code) or a hub id of the form
    owner/name. Relative folders are relative to the repository root. Errors name `key`."""
    local = Path(spec).expanduser()
    if not local.is_absolute():
        local = project_root() / local
    if local.exists():
        try:
            check_model_folder(local)
        except ModelSourceError as err:
            raise HFEvaluatorError(f"'{key}' = {spec!r}: {err}") from err
        return str(local.resolve())
    if spec.startswith((".", "/", "~")) or not _HUB_ID.match(spec):
        raise HFEvaluatorError(f"'{key}' = {spec!r}: no such folder, and not a hub id of the form owner/name")
    return spec


def weights_record(source: str) -> dict[str, Any]:
    """sha256 and size of each safetensors file of a local folder ({} for a hub id: its commit is recorded)."""
    folder = Path(source)
    if not folder.is_dir():
        return {}
    return {p.name: {"sha256": sha256(p), "bytes": p.stat().st_size} for p in sorted(folder.glob("*.safetensors"))}


def load_reward_model(source: str, key: str, dtype: str = "float32", revision: str | None = None,
                      device: str | torch.device | None = None):
    """(model, tokenizer) by AutoModelForSequenceClassification + AutoTokenizer, safetensors only, no remote code.
    Refuses a checkpoint whose classification head is missing from its weights."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(source, revision=revision, trust_remote_code=False)
        if getattr(config, "auto_map", None):
            raise HFEvaluatorError(f"'{key}' = {source!r}: asks for remote code (auto_map); peo never runs it")
        tokenizer = AutoTokenizer.from_pretrained(source, revision=revision, trust_remote_code=False)
        model, info = AutoModelForSequenceClassification.from_pretrained(
            source, revision=revision, dtype=torch_dtype(dtype), use_safetensors=True, trust_remote_code=False,
            output_loading_info=True)
    except HFEvaluatorError:
        raise
    except Exception as err:  # OSError (no such model, no safetensors), ValueError (not a classification config)
        raise HFEvaluatorError(f"'{key}' = {source!r}: cannot load it as a sequence-classification reward model "
                               f"(AutoModelForSequenceClassification, safetensors only): {err}") from err
    missing = [k for k in info.get("missing_keys", []) if k]
    if missing:
        raise HFEvaluatorError(
            f"'{key}' = {source!r}: its weights lack {', '.join(sorted(missing)[:4])}"
            f"{' …' if len(missing) > 4 else ''}: not a sequence-classification checkpoint (a causal LM, or a custom "
            "score model whose head has another name: see docs/evaluators.md); transformers would fill them randomly")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if model.config.pad_token_id is None:  # transformers pools at the last token that is not padding
        model.config.pad_token_id = tokenizer.pad_token_id
    model.eval()
    if device is not None:
        model.to(device)
    return model, tokenizer


def _commit(model) -> str | None:
    return getattr(model.config, "_commit_hash", None)


@dataclass
class HFEvaluator:
    """score(prompt, answer) = sign · (raw − offset), raw = the reward model's logit (or a label's log-odds)."""

    kind: str  # reward | cost
    model: torch.nn.Module
    tokenizer: Any
    template: str | None  # Jinja chat template used; None = the reward model tokenizer's own
    sign: float
    offset: float = 0.0
    max_length: int = 512
    batch_size: int = 8
    label: int | None = None
    name: str = ""

    def text(self, prompt: Messages, answer: str) -> str:
        """The conversation as the reward model reads it: the prompt, then the answer as the assistant's turn."""
        messages = [*map(dict, prompt), {"role": "assistant", "content": answer}]
        kwargs = {"chat_template": self.template} if self.template is not None else {}
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False, **kwargs)

    def encode(self, prompt: Messages, answer: str) -> list[int]:
        """Token ids of `text`. Special tokens are added only when the rendered text does not already begin with the
        tokenizer's BOS (a template that writes BOS itself would otherwise get it twice). Longer than `max_length`:
        the end is kept (the score is read at the last token), and the first token when it is BOS."""
        text = self.text(prompt, answer)
        bos = self.tokenizer.bos_token
        ids = list(self.tokenizer(text, add_special_tokens=not (bos and text.startswith(bos)))["input_ids"])
        if len(ids) > self.max_length:
            head = ids[:1] if ids[0] == self.tokenizer.bos_token_id else []
            ids = head + ids[len(ids) - (self.max_length - len(head)):]
        return ids

    @torch.inference_mode()
    def raw_scores(self, prompts: Sequence[Messages], answers: Sequence[str], progress=None,
                   desc: str | None = None) -> torch.Tensor:
        """The model's own scores (before sign and offset), in batches of similar length, right-padded."""
        encoded = [self.encode(p, a) for p, a in zip(prompts, answers)]
        out = torch.zeros(len(encoded), dtype=torch.float64)
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        device = next(self.model.parameters()).device
        pad = self.model.config.pad_token_id
        with tqdm(total=len(encoded), desc=desc or f"{self.kind} evaluator ({self.name})", unit="answer",
                  leave=False, disable=len(encoded) <= self.batch_size) as bar:
            for start in range(0, len(order), self.batch_size):
                chunk = order[start:start + self.batch_size]
                width = max(len(encoded[i]) for i in chunk)
                ids = torch.full((len(chunk), width), pad, dtype=torch.long)
                mask = torch.zeros((len(chunk), width), dtype=torch.long)
                for row, i in enumerate(chunk):
                    ids[row, : len(encoded[i])] = torch.tensor(encoded[i])
                    mask[row, : len(encoded[i])] = 1
                logits = self.model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.double().cpu()
                out[chunk] = label_score(logits, self.label)
                bar.update(len(chunk))
                if progress:
                    progress(len(chunk))
        return out

    def scores(self, prompts: Sequence[Messages], answers: Sequence[str], progress=None) -> list[float]:
        return (self.sign * (self.raw_scores(prompts, answers, progress) - self.offset)).tolist()

    @classmethod
    def from_meta(cls, meta: dict, device: str | torch.device | None = None) -> "HFEvaluator":
        """From the evaluator.json that the train-evaluators stage wrote (the model is loaded from where it says)."""
        key = meta.get("config_key", f"evaluator.reward_models.{meta['kind']}.hf_model")
        source = meta["hf_model"]
        recorded = meta.get("weights") or {}
        if recorded:  # a local folder: the files must be the ones the assets were made with (sizes; cheap)
            folder = Path(source)
            now = {p.name: p.stat().st_size for p in folder.glob("*.safetensors")} if folder.is_dir() else {}
            if now != {name: rec["bytes"] for name, rec in recorded.items()}:
                raise HFEvaluatorError(f"{meta['kind']} evaluator: {source} no longer holds the safetensors files "
                                       f"recorded when the assets were made; rerun train-evaluators ('{key}')")
        model, tokenizer = load_reward_model(source, key, meta.get("dtype", "float32"),
                                             meta.get("commit") or meta.get("revision"), device)
        return cls(kind=meta["kind"], model=model, tokenizer=tokenizer, template=meta.get("chat_template_text"),
                   sign=float(meta["sign"]), offset=float(meta["offset"]), max_length=int(meta["max_length"]),
                   batch_size=int(meta["batch_size"]), label=meta.get("label"), name=meta.get("name", source))


def label_score(logits: torch.Tensor, label: int | None) -> torch.Tensor:
    """One score per row: the single logit, or the log-odds of `label` among several."""
    if logits.shape[-1] == 1:
        return logits[:, 0]
    others = torch.cat([logits[:, :label], logits[:, label + 1:]], dim=1)
    return logits[:, label] - torch.logsumexp(others, dim=1)


def direction_sign(better: Better, higher_is: str) -> float:
    """+1 when the model's scale already runs the way the aspect's score does (`better` higher: a reward, higher
    better; lower: a cost, higher worse)."""
    natural = "better" if better == "higher" else "worse"
    return 1.0 if higher_is == natural else -1.0


def build_hf_evaluator(settings, kind: str, base_tokenizer, device=None,
                       better: Better | None = None) -> tuple[HFEvaluator, dict]:
    """The evaluator `kind` of `settings` (peo.config.HFEvaluatorSettings) and the facts to record about it.
    `better`: which way its aspect's score is better (peo.aspects.Aspect.better); None: the default aspects'
    direction for an evaluator of that name (reward: higher, cost: lower)."""
    better = better or DEFAULT_ASPECTS.of_evaluator(kind).better
    key = f"evaluator.reward_models.{kind}"
    source = resolve_hf_model(settings.hf_model, f"{key}.hf_model")
    model, tokenizer = load_reward_model(source, f"{key}.hf_model", settings.dtype, settings.revision, device)
    num_labels = int(model.config.num_labels)
    if num_labels > 1 and settings.label is None:
        raise HFEvaluatorError(f"'{key}.label': {source} has {num_labels} labels ({model.config.id2label}); say "
                               "which one is scored (its log-odds is the score)")
    if settings.label is not None and not 0 <= settings.label < num_labels:
        raise HFEvaluatorError(f"'{key}.label' must be in [0, {num_labels}), got {settings.label}")
    if settings.chat_template is not None:
        template, template_from = settings.chat_template, "config"
    elif tokenizer.chat_template:
        template, template_from = None, "reward model"
    elif getattr(base_tokenizer, "chat_template", None):
        template, template_from = base_tokenizer.chat_template, "base model"
    else:
        raise HFEvaluatorError(f"'{key}.chat_template': neither {source} nor the base model has a chat template; "
                               "give one in config")
    higher_is = settings.higher_is or ("better" if better == "higher" else "worse")
    evaluator = HFEvaluator(kind=kind, model=model, tokenizer=tokenizer, template=template,
                            sign=direction_sign(better, higher_is), max_length=settings.max_length,
                            batch_size=settings.batch_size, label=settings.label,
                            name=settings.hf_model)
    meta = {
        "kind": kind, "source": HF_SOURCE, "config_key": f"{key}.hf_model", "name": settings.hf_model,
        "hf_model": source, "revision": settings.revision,
        "commit": None if Path(source).is_dir() else _commit(model),  # a hub id: the commit its files came from
        "weights": weights_record(source), "architectures": list(model.config.architectures or []),
        "model_class": type(model).__name__, "num_labels": num_labels, "label": settings.label,
        "higher_is": higher_is, "sign": evaluator.sign, "center": settings.center,
        "chat_template": template_from, "chat_template_text": template,
        "max_length": settings.max_length, "batch_size": settings.batch_size, "dtype": settings.dtype,
    }
    return evaluator, meta


def measure(evaluator: HFEvaluator, meta: dict, pairs, test_pairs, center: bool) -> dict:
    """Held-out pairwise accuracy on `test_pairs` (as the built-in heads': the evaluator picks the chosen answer when
    its score is the better one) and, with `center`, the offset: the midpoint of the raw scores of the training
    `pairs`' chosen and rejected answers. Returns `meta` completed."""
    start = time.time()
    kind = evaluator.kind

    def raw(items, which, split):
        return evaluator.raw_scores([p.prompt_messages() for p in items], [getattr(p, which) for p in items],
                                    desc=f"{kind} evaluator ({evaluator.name}): {split} {which}")

    # orient the raw scale so that higher = better, whatever the model's direction (and the aspect's)
    better = 1.0 if meta["higher_is"] == "better" else -1.0
    chosen, rejected = raw(test_pairs, "chosen", "held out"), raw(test_pairs, "rejected", "held out")
    correct = (better * chosen > better * rejected).float()
    offset, train = 0.0, {}
    if center:
        train_chosen, train_rejected = raw(pairs, "chosen", "train"), raw(pairs, "rejected", "train")
        offset = float(((train_chosen + train_rejected) / 2).mean())
        train = {"train_pairs": len(pairs),
                 "train_accuracy": float((better * train_chosen > better * train_rejected).float().mean())}
    evaluator.offset = offset
    return {
        **meta, "offset": offset,
        "offset_from": "midpoint of chosen/rejected raw scores on the training pairs" if center
        else "none: the model's own zero",
        **train,
        "held_out_pairs": len(test_pairs),
        "held_out_prompts": len({p.prompt_id for p in test_pairs}),
        "held_out_accuracy": float(correct.mean()),
        "held_out_correct": correct.int().tolist(),
        "held_out_margin": (chosen - rejected).abs().tolist(),
        "seconds": round(time.time() - start, 1),
    }


# ---------------------------------------------------------------- safe-rlhf score models (beaver-7b)

SCORE_HEAD_RENAMES = {"score_head.weight": "score.weight"}  # safe-rlhf's LlamaForScore → LlamaForSequenceClassification
SAFE_RLHF_TEMPLATE = (  # safe-rlhf's dialogue format: "BEGINNING OF CONVERSATION: USER: {q} ASSISTANT:{a}</s>"
    "BEGINNING OF CONVERSATION: {% for m in messages %}{% if m['role'] == 'user' %}USER: {{ m['content'] }} "
    "ASSISTANT:{% elif m['role'] == 'assistant' %}{{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}")


def convert_score_model(source: Path, target: Path) -> dict:
    """A copy of a local safe-rlhf score-model folder (LlamaForScore: `score_head`, a `normalizer`) that
    AutoModelForSequenceClassification loads as LlamaForSequenceClassification: tensors renamed by
    SCORE_HEAD_RENAMES, the normalizer's buffers dropped (inference does not use them), config.json's architectures
    and num_labels set. Reads and writes safetensors only. A score-head bias cannot be carried (Llama's
    classification head has none): it is refused unless zero, since it only shifts every score."""
    from safetensors.torch import load_file, save_file

    source, target = Path(source), Path(target)
    check_model_folder(source)
    config = json.loads((source / "config.json").read_text(encoding="utf-8"))
    if config.get("model_type") != "llama":
        raise HFEvaluatorError(f"{source}: model_type {config.get('model_type')!r}; only llama score models convert")
    if int(config.get("score_dim", 1)) != 1:
        raise HFEvaluatorError(f"{source}: score_dim {config['score_dim']}; only single-score models convert")
    target.mkdir(parents=True, exist_ok=False)
    renamed, dropped, index = [], [], {}
    for shard in sorted(source.glob("*.safetensors")):
        tensors = load_file(str(shard))
        bias = tensors.pop("score_head.bias", None)
        if bias is not None and bool(bias.abs().max() > 0):
            raise HFEvaluatorError(f"{shard}: score_head has a bias ({bias.tolist()}), which "
                                   "LlamaForSequenceClassification cannot hold")
        out = {}
        for name, tensor in tensors.items():
            if name.startswith("normalizer."):
                dropped.append(name)
                continue
            new = SCORE_HEAD_RENAMES.get(name, name)
            if new != name:
                renamed.append(f"{name} -> {new}")
            out[new] = tensor.contiguous()
            index[new] = shard.name
        save_file(out, str(target / shard.name), metadata={"format": "pt"})
    if not any(r.endswith("score.weight") for r in renamed):
        raise HFEvaluatorError(f"{source}: no score_head.weight: not a safe-rlhf score model")
    index_file = source / "model.safetensors.index.json"
    if index_file.is_file():
        old = json.loads(index_file.read_text(encoding="utf-8"))
        (target / index_file.name).write_text(json.dumps({"metadata": old.get("metadata", {}), "weight_map": index},
                                                         indent=2), encoding="utf-8")
    config.update(architectures=["LlamaForSequenceClassification"], num_labels=1,
                  id2label={"0": "LABEL_0"}, label2id={"LABEL_0": 0})
    (target / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    for other in source.iterdir():  # tokenizer files and the like
        if other.is_file() and other.suffix != ".safetensors" and other.name not in ("config.json", index_file.name):
            shutil.copy2(other, target / other.name)
    record = {"source": str(source), "renamed": renamed, "dropped": dropped}
    (target / "peo_conversion.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    return record


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m peo.hf_evaluator", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    convert = sub.add_parser("convert-score-model", help="a local safe-rlhf score model (e.g. beaver-7b-v1.0-cost) "
                             "as a folder AutoModelForSequenceClassification loads (docs/evaluators.md)")
    convert.add_argument("source", type=Path)
    convert.add_argument("target", type=Path)
    args = parser.parse_args(argv)
    try:
        record = convert_score_model(args.source, args.target)
    except (PeoError, ModelSourceError) as err:
        print(f"error: {err}")
        return 2
    print(f"{args.target}: {', '.join(record['renamed'])}; dropped {len(record['dropped'])} normalizer tensors")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
