"""The evaluators: Bradley-Terry scalar heads on the frozen reference model's features, one per aspect of the run.

Every evaluator reads the same features of (prompt, answer) from one forward pass of the reference model:
the final hidden state at the last token and its mean over the answer's tokens. Each evaluator is a linear
head on those standardized features, signed by its aspect's direction: reward = helpfulness head; cost =
−(harmlessness head), so higher cost means more harmful. All are centred on their held-out pairs, so 0 means
"between a chosen and a rejected answer" and the safe share (cost ≤ 0) has a meaning.

Any evaluator may instead be a Hugging Face sequence-classification reward model (`evaluator.reward_models`
in config; peo/hf_evaluator.py): `Evaluators` serves both kinds through one interface.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from peo.aspects import Aspects
from peo.atomic import write_json, write_with
from peo.chat_template import encode_chat, token_ids
from peo.layout import AssetLayout
from peo.model_source import load_causal_lm, load_tokenizer
from peo.names import HEAD_META, HEAD_WEIGHTS

Messages = list[dict[str, str]]
HF_SOURCE = "hf_model"  # evaluator.json `source` of a Hugging Face reward model (peo.hf_evaluator)


class FeatureExtractor:
    """Features of answers in context, from the frozen reference model (one forward pass per batch).

    For each hidden-state layer in `layers` (0 = embeddings, -1 = the final normed state): the state at the
    last token ‖ its mean over the answer's tokens. The same pass can also return the answer's summed token
    log-probabilities, which the aspect-policy check uses as the reference side of the implicit reward.
    """

    def __init__(self, model: torch.nn.Module, tokenizer, max_length: int = 320, batch_size: int = 16,
                 as_reference: Callable[[], AbstractContextManager] = nullcontext, layers: Sequence[int] = (-1,)):
        """`as_reference`: a context in which `model` is the reference model, e.g. a policy's
        `PeftModel.disable_adapter` so that the app scores with the policy's own weights instead of a copy."""
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.batch_size = batch_size
        self.as_reference = as_reference
        self.layers = tuple(dict.fromkeys(int(x) for x in layers))

    @classmethod
    def load(cls, base_model: str, device: str | None = None, **kwargs) -> "FeatureExtractor":
        model = load_causal_lm(base_model, "float32")
        if device:
            model.to(device)
        return cls(model, load_tokenizer(base_model), **kwargs)

    @property
    def layer_dim(self) -> int:
        return 2 * self.model.config.hidden_size

    def encode(self, prompt: Messages, answer: str) -> tuple[list[int], int]:
        """(token ids, answer token count) as every evaluator reads an answer: its head (at most half of
        `max_length`) and EOS, after as much of the prompt's end as fits."""
        prompt_ids = encode_chat(self.tokenizer, prompt)
        answer_ids = token_ids(self.tokenizer, answer)
        answer_ids = answer_ids[: max(1, self.max_length // 2)] + [self.tokenizer.eos_token_id]
        prompt_ids = prompt_ids[-(self.max_length - len(answer_ids)):]  # keep the end of a long prompt
        return prompt_ids + answer_ids, len(answer_ids)

    def _forward(self, encoded: list[tuple[list[int], int]], hidden_states: bool) -> Iterator[tuple]:
        """The reference model over `encoded` in batches of similar length, right-padded (a row's last real token
        is at its length − 1; causal attention never lets a real token see padding). Yields each batch's
        (indices into `encoded`, ids, mask, answer mask, model output), inside `as_reference`."""
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))
        device = next(self.model.parameters()).device
        pad = self.tokenizer.pad_token_id
        for start in range(0, len(order), self.batch_size):
            chunk = order[start:start + self.batch_size]
            width = max(len(encoded[i][0]) for i in chunk)
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            answer_mask = torch.zeros((len(chunk), width))
            for row, i in enumerate(chunk):
                tokens, n_answer = encoded[i]
                ids[row, : len(tokens)] = torch.tensor(tokens)
                mask[row, : len(tokens)] = 1
                answer_mask[row, len(tokens) - n_answer: len(tokens)] = 1
            with self.as_reference():
                yield chunk, ids, mask, answer_mask, self.model.model(
                    input_ids=ids.to(device), attention_mask=mask.to(device), output_hidden_states=hidden_states)

    @torch.inference_mode()
    def features(self, prompts: Sequence[Messages], answers: Sequence[str], progress=None,
                 with_logps: bool = False) -> dict[int, torch.Tensor] | tuple[dict[int, torch.Tensor], torch.Tensor]:
        """layer → (n, 2·hidden) features; with `with_logps`, also each answer's summed token log-probs."""
        encoded = [self.encode(p, a) for p, a in zip(prompts, answers)]
        out = {layer: torch.zeros(len(encoded), self.layer_dim) for layer in self.layers}
        logps = torch.zeros(len(encoded), dtype=torch.float64)
        every_layer = len(self.layers) > 1 or self.layers != (-1,)
        for chunk, ids, mask, answer_mask, result in self._forward(encoded, every_layer):
            if with_logps:
                logps[chunk] = self._answer_logps(result.last_hidden_state, ids, encoded, chunk)
            states = result.hidden_states if result.hidden_states is not None else (result.last_hidden_state,)
            rows = torch.arange(len(chunk))
            for layer in self.layers:
                hidden = states[layer].float().cpu()
                last = hidden[rows, mask.sum(1) - 1]
                mean = (hidden * answer_mask[..., None]).sum(1) / answer_mask.sum(1, keepdim=True)
                out[layer][chunk] = torch.cat([last, mean], dim=1)
            if progress:
                progress(len(chunk))
        return (out, logps) if with_logps else out

    @torch.inference_mode()
    def token_states(self, prompts: Sequence[Messages], answers: Sequence[str],
                     layer: int) -> list[tuple[torch.Tensor, int]]:
        """Per answer: layer `layer`'s hidden state at each of its tokens, and the answer's token count: the input
        of a head that reads more than the pooled features (experiments/evaluator_experiments.py)."""
        encoded = [self.encode(p, a) for p, a in zip(prompts, answers)]
        out: list[tuple[torch.Tensor, int]] = [(torch.empty(0), 0)] * len(encoded)
        for chunk, _, mask, _, result in self._forward(encoded, hidden_states=True):
            hidden = result.hidden_states[layer].float().cpu()
            for row, i in enumerate(chunk):
                out[i] = (hidden[row, : int(mask[row].sum())].clone(), encoded[i][1])
        return out

    def _answer_logps(self, hidden: torch.Tensor, ids: torch.Tensor, encoded, chunk) -> torch.Tensor:
        """Σ log p(answer token | everything before it), row by row (the vocabulary is large)."""
        sums = []
        for row, i in enumerate(chunk):
            tokens, n_answer = encoded[i]
            end = len(tokens)
            logits = self.model.lm_head(hidden[row, end - n_answer - 1: end - 1]).float()
            target = ids[row, end - n_answer: end].to(logits.device)
            sums.append(torch.log_softmax(logits, -1).gather(1, target[:, None]).sum().item())
        return torch.tensor(sums, dtype=torch.float64)


def feature_matrix(features: dict[int, torch.Tensor], layers: Sequence[int]) -> torch.Tensor:
    """The columns an evaluator reads: its layers' features side by side."""
    return torch.cat([features[int(layer)] for layer in layers], dim=1)


@dataclass
class BradleyTerryHead:
    """score(x) = w · (x − mu) / sigma + b, trained so that σ(score(chosen) − score(rejected)) → 1."""

    w: torch.Tensor
    b: float
    mu: torch.Tensor
    sigma: torch.Tensor

    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        return ((features - self.mu) / self.sigma) @ self.w + self.b

    def save(self, folder: Path, meta: dict) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {"w": self.w.contiguous(), "mu": self.mu.contiguous(), "sigma": self.sigma.contiguous(),
                   "b": torch.tensor([self.b])}
        write_with(folder / HEAD_WEIGHTS, lambda tmp: save_file(tensors, tmp))
        write_json(folder / HEAD_META, meta)

    @classmethod
    def load(cls, folder: Path) -> "BradleyTerryHead":
        path = folder / HEAD_WEIGHTS
        if not path.is_file():
            raise FileNotFoundError(f"{folder}: no {HEAD_WEIGHTS}; evaluators are loaded only from safetensors")
        t = load_file(str(path))
        return cls(w=t["w"], b=float(t["b"][0]), mu=t["mu"], sigma=t["sigma"])


@dataclass
class Evaluator:
    head: BradleyTerryHead
    sign: float  # +1 reward, −1 cost
    offset: float  # midpoint of chosen/rejected raw scores on the training pairs
    layers: tuple[int, ...] = (-1,)  # hidden-state layers whose features the head reads
    max_length: int = 320  # tokens of prompt + answer its features were taken from

    def scores(self, features: dict[int, torch.Tensor]) -> list[float]:
        return (self.sign * (self.head(feature_matrix(features, self.layers)) - self.offset)).tolist()

    @classmethod
    def load(cls, folder: Path) -> "Evaluator":
        meta = json.loads((folder / HEAD_META).read_text(encoding="utf-8"))
        return cls(BradleyTerryHead.load(folder), sign=float(meta["sign"]), offset=float(meta["offset"]),
                   layers=tuple(int(x) for x in meta.get("layers", [-1])), max_length=int(meta.get("max_length", 320)))


class Evaluators:
    """One evaluator per aspect of the run, by evaluator name (`reward`, `cost`, …), each a built-in head
    (`Evaluator`: every head shares one forward pass of the reference model) or a Hugging Face reward model
    (`peo.hf_evaluator.HFEvaluator`, its own forward pass)."""

    def __init__(self, extractor: FeatureExtractor | None, evaluators: Mapping[str, object]):
        self.extractor = extractor  # None when no evaluator is a built-in head
        self.evaluators = dict(evaluators)  # evaluator name → evaluator, in the order of the run's aspects

    @classmethod
    def load(cls, base_model: str, assets: str | Path, aspects: Aspects, device: str | None = None,
             batch_size: int | None = None) -> "Evaluators":
        """The evaluators of `aspects` (the run's: config `aspect_set`, or meta.json's `RunMeta.aspect_set`), with
        their own copy of the reference model (only when a built-in head needs its features), reading
        `batch_size` answers a forward pass (None: the extractor's default)."""
        evaluators = _load_evaluators(Path(assets), aspects, device)
        heads = _heads(evaluators.values())
        sizes = {"batch_size": batch_size} if batch_size else {}
        extractor = FeatureExtractor.load(base_model, device, max_length=heads[0].max_length,
                                          layers=sum((h.layers for h in heads), ()), **sizes) if heads else None
        return cls(extractor, evaluators)

    @classmethod
    def on_policy(cls, policy, tokenizer, assets: str | Path, aspects: Aspects) -> "Evaluators":
        """The evaluators of `aspects`, sharing the weights of a LoRA policy (a PeftModel) whose base is the
        reference: features are taken with its adapters disabled, which is exactly the reference, so no second
        copy of the model is loaded. A Hugging Face reward model is loaded beside it, on the policy's device."""
        evaluators = _load_evaluators(Path(assets), aspects, next(policy.parameters()).device)
        heads = _heads(evaluators.values())
        extractor = FeatureExtractor(policy.base_model.model, tokenizer, max_length=heads[0].max_length,
                                     as_reference=policy.disable_adapter,
                                     layers=sum((h.layers for h in heads), ())) if heads else None
        return cls(extractor, evaluators)

    def score(self, prompts: Sequence[Messages], answers: Sequence[str],
              progress=None) -> dict[str, list[float]]:
        """Evaluator name → each answer's score; `progress(n)` is called as the first pass over the answers
        advances."""
        features = None
        if self.extractor is not None:
            features = self.extractor.features(prompts, answers, progress)
            progress = None
        out = {}
        for name, evaluator in self.evaluators.items():
            if isinstance(evaluator, Evaluator):
                out[name] = evaluator.scores(features)
            else:
                out[name] = evaluator.scores(prompts, answers, progress)
                progress = None
        return out


def _heads(evaluators: Iterable[object]) -> list[Evaluator]:
    return [e for e in evaluators if isinstance(e, Evaluator)]


def load_evaluator(folder: Path, device=None):
    """The evaluator an assets folder holds: a built-in head, or the Hugging Face reward model evaluator.json
    names (loaded from where it says, onto `device`)."""
    meta = json.loads((folder / HEAD_META).read_text(encoding="utf-8"))
    if meta.get("source") == HF_SOURCE:
        from peo.hf_evaluator import HFEvaluator

        return HFEvaluator.from_meta(meta, device)
    return Evaluator.load(folder)


def _load_evaluators(assets: Path, aspects: Aspects, device=None) -> dict[str, object]:
    layout = AssetLayout(assets)
    return {name: load_evaluator(layout.evaluator(name), device) for name in aspects.evaluators}
