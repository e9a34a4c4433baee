"""`python -m experiments.evaluator_experiments {probes,top-layers,lora,learning-curve} [--config CONFIG]`:
the cost-evaluator experiments behind assets/RUN_NOTES.md ("What is still short").

The shipped cost evaluator (a linear Bradley-Terry head on frozen reference features, 521 HH pairs) reaches
66.6 % on the 326 held-out HH pairs; the target is 70 %. Each experiment uses the run's own splits
(prompt-disjoint, by a hash of the prompt) and is scored on exactly those 326 held-out pairs, which choose nothing:
- `probes`: the profile's layer sets and more, each with l2 chosen by 5-fold CV by prompt, trained on the
  evaluator split within the length limits (as shipped) and on the whole evaluator split, long pairs included
  (858 pairs; the extractor keeps a long prompt's tail and an answer's head);
- `top-layers`: the top layers of the reference model fine-tuned with a scalar head (last token ‖ answer mean)
  on cached states of layer K, the epoch chosen on a prompt-disjoint 15 % of the evaluator split;
- `lora`: a LoRA reward model on every layer (TRL's RewardTrainer, a scalar head on the last token), on the same
  fit / validation slices and the extractor's encoding (a long prompt's tail, an answer's head), the epoch chosen on
  the validation slice; checkpoints and finished epochs in runs/evaluator-lora-lr<lr>-e<epochs>, so a killed run
  resumes (and a run with other settings starts its own folder);
- `learning-curve`: the shipped head's features (its layers; l2 by CV by prompt) trained on shares of every HH pair
  outside the test split (evaluator, policy and dev splits, long pairs included: the most this file can give a
  cost head, which would then share pairs with DPO-Harm), several prompt subsamples per share, and the log-linear
  trend of held-out accuracy in the number of pairs: how many pairs 70 % would take if the trend held.
Nothing here writes assets; results are printed and written as JSON.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import time
from pathlib import Path

import torch

from peo.config import load_config
from peo.data.records import PreferencePair
from peo.data.splits import filter_by_length, split_pairs
from peo.model_source import load_causal_lm, load_tokenizer, resolve_base_model
from peo.names import EVALUATORS_DIR
from peo.scoring import Evaluator, FeatureExtractor, feature_matrix
from peo.train.evaluator import choose_l2, fit_bradley_terry, pair_features, pairwise_accuracy
from precompute.stage_prepare_data import aspect_source, capped_splits

LEARNING_CURVE_SHARES = (0.125, 0.25, 0.5, 1.0)
LEARNING_CURVE_REPEATS = 5  # prompt subsamples per share below 1
PROBE_LAYER_SETS = [[-1], [10], [15], [20], [24], [-1, 20, 10], [-1, 24, 18, 12, 6], [4, 8, 12, 16, 20, 24, 28]]


def harm_splits(cfg) -> tuple[list[PreferencePair], list[PreferencePair], list[PreferencePair]]:
    """(evaluator pairs within the length limits as shipped, the whole evaluator split, the held-out test pairs),
    taken as prepare-data takes them."""
    tokenizer = load_tokenizer(resolve_base_model(cfg.base_model))
    pairs = aspect_source(cfg, "harm").pairs
    kept, _ = filter_by_length(pairs, tokenizer, cfg.data.max_prompt_tokens, cfg.data.max_response_tokens)
    sizes = cfg.data.splits
    shipped = capped_splits(split_pairs(kept, sizes.fractions_of("harm"), cfg.seed), sizes, "harm")
    every = capped_splits(split_pairs(pairs, sizes.fractions_of("harm"), cfg.seed), sizes, "harm")
    return shipped["evaluator"], every["evaluator"], shipped["test"]


def probes(cfg, extractor: FeatureExtractor) -> dict:
    within, every, test = harm_splits(cfg)
    extractor.layers = tuple(dict.fromkeys(x for layers in PROBE_LAYER_SETS for x in layers))
    test_c, test_r = pair_features(extractor, test, "held-out pairs")
    train_c, train_r = pair_features(extractor, every, "evaluator split")
    shipped = {(p.prompt_id, p.chosen, p.rejected) for p in within}
    rows = torch.tensor([(p.prompt_id, p.chosen, p.rejected) in shipped for p in every])
    results = []
    for name, mask in (("within length limits (as shipped)", rows), ("whole split, long pairs included", None)):
        mask = torch.ones(len(every), dtype=torch.bool) if mask is None else mask
        groups = [p.prompt_id for p, m in zip(every, mask.tolist()) if m]
        for layers in PROBE_LAYER_SETS:
            c, r = feature_matrix(train_c, layers)[mask], feature_matrix(train_r, layers)[mask]
            l2, cv = choose_l2(c, r, cfg.evaluator.l2_grid, cfg.seed, groups)
            head = fit_bradley_terry(c, r, l2)
            held_out = pairwise_accuracy(head, feature_matrix(test_c, layers), feature_matrix(test_r, layers))
            results.append({"training": name, "pairs": int(mask.sum()), "layers": layers, "l2": l2,
                            "cv_accuracy": cv[l2], "held_out_accuracy": held_out})
            print(f"{name:35s} {int(mask.sum()):4d} pairs  layers {layers!s:28s} l2 {l2:<6g} CV {cv[l2]:.3f}  "
                  f"held out {held_out:.3f}", flush=True)
    return {"held_out_pairs": len(test), "results": results}


def non_test_pairs(cfg) -> list[PreferencePair]:
    """Every HH pair, long ones included, whose prompt is outside the test split (splits hash the prompt, so the
    shipped test prompts, taken within the length limits, are all in this split's test part)."""
    every = split_pairs(aspect_source(cfg, "harm").pairs, cfg.data.splits.fractions_of("harm"), cfg.seed)
    return [p for name, part in every.items() if name != "test" for p in part]


def log_linear_trend(pairs: list[int], accuracy: list[float]) -> tuple[float, float]:
    """(a, b) of the least-squares line accuracy = a + b·log2(pairs): b is the gain per doubling."""
    x = torch.tensor(pairs, dtype=torch.float64).log2()
    y = torch.tensor(accuracy, dtype=torch.float64)
    b = float(((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum())
    return float(y.mean()) - b * float(x.mean()), b


def learning_curve(cfg, extractor: FeatureExtractor, layers: list[int], target: float = 0.70) -> dict:
    _, _, test = harm_splits(cfg)
    pool = non_test_pairs(cfg)
    if {p.prompt_id for p in pool} & {p.prompt_id for p in test}:
        raise RuntimeError("a held-out prompt is among the training pool: the splits are not prompt-disjoint")
    extractor.layers = tuple(layers)
    test_c, test_r = pair_features(extractor, test, "held-out pairs")
    pool_c, pool_r = pair_features(extractor, pool, "non-test pairs")
    test_c, test_r = feature_matrix(test_c, layers), feature_matrix(test_r, layers)
    pool_c, pool_r = feature_matrix(pool_c, layers), feature_matrix(pool_r, layers)
    prompts = sorted({p.prompt_id for p in pool})
    rows = []
    for share in LEARNING_CURVE_SHARES:
        for repeat in range(1 if share == 1.0 else LEARNING_CURVE_REPEATS):
            kept = set(random.Random(f"{cfg.seed}/{share}/{repeat}").sample(prompts, round(share * len(prompts))))
            mask = torch.tensor([p.prompt_id in kept for p in pool])
            groups = [p.prompt_id for p in pool if p.prompt_id in kept]
            l2, cv = choose_l2(pool_c[mask], pool_r[mask], cfg.evaluator.l2_grid, cfg.seed, groups)
            head = fit_bradley_terry(pool_c[mask], pool_r[mask], l2)
            held_out = pairwise_accuracy(head, test_c, test_r)
            rows.append({"share": share, "repeat": repeat, "pairs": int(mask.sum()), "prompts": len(kept),
                         "l2": l2, "cv_accuracy": cv[l2], "held_out_accuracy": held_out})
            print(f"share {share:<5g} repeat {repeat}  {int(mask.sum()):4d} pairs  l2 {l2:<6g} CV {cv[l2]:.3f}  "
                  f"held out {held_out:.3f}", flush=True)
    a, b = log_linear_trend([r["pairs"] for r in rows], [r["held_out_accuracy"] for r in rows])
    needed = 2 ** ((target - a) / b) if b > 0 else None
    print(f"trend: {a:.3f} + {b:.4f}·log2(pairs); {target:.0%} at ≈ {needed and round(needed)} pairs", flush=True)
    return {"held_out_pairs": len(test), "pool_pairs": len(pool), "layers": layers, "results": rows,
            "trend": {"intercept": a, "gain_per_doubling": b, "target": target,
                      "pairs_for_target": needed}}


class TopLayers(torch.nn.Module):
    """Layers K.. of the reference model, its final norm and a scalar head on (last token ‖ answer mean)."""

    def __init__(self, model, k: int):
        super().__init__()
        self.layers = torch.nn.ModuleList(copy.deepcopy(model.model.layers[k:]))
        self.norm = copy.deepcopy(model.model.norm)
        self.rotary = model.model.rotary_emb
        self.head = torch.nn.Linear(2 * model.config.hidden_size, 1)
        torch.nn.init.zeros_(self.head.weight)
        torch.nn.init.zeros_(self.head.bias)

    def forward(self, states: list[torch.Tensor], n_answer: list[int]) -> torch.Tensor:
        width = max(len(x) for x in states)
        hidden = torch.zeros(len(states), width, states[0].shape[1])
        for i, x in enumerate(states):  # right padding: causal attention never lets a real token see it
            hidden[i, : len(x)] = x
        positions = torch.arange(width)[None].expand(len(states), -1)
        rotary = self.rotary(hidden, positions)
        for layer in self.layers:
            out = layer(hidden, attention_mask=None, position_ids=positions, position_embeddings=rotary)
            hidden = out[0] if isinstance(out, tuple) else out
        hidden = self.norm(hidden)
        pooled = [torch.cat([hidden[i, len(x) - 1], hidden[i, len(x) - n: len(x)].mean(0)])
                  for i, (x, n) in enumerate(zip(states, n_answer))]
        return self.head(torch.stack(pooled)).squeeze(-1)


def layer_states(extractor: FeatureExtractor, pairs: list[PreferencePair], k: int) -> list[tuple]:
    """Per pair: (chosen states, rejected states, chosen answer length, rejected answer length) at layer k."""
    states = extractor.token_states([p.prompt_messages() for p in pairs for _ in (0, 1)],
                                    [answer for p in pairs for answer in (p.chosen, p.rejected)], k)
    out = []
    for j in range(len(pairs)):
        (chosen, n_chosen), (rejected, n_rejected) = states[2 * j], states[2 * j + 1]
        out.append((chosen, rejected, n_chosen, n_rejected))
    return out


def top_layers(cfg, extractor: FeatureExtractor, k: int, epochs: int, lr: float) -> dict:
    _, every, test = harm_splits(cfg)
    torch.manual_seed(cfg.seed)
    start = time.time()
    train_states, test_states = layer_states(extractor, every, k), layer_states(extractor, test, k)
    fit_rows, val_rows = validation_slices(cfg, every)
    fit, val = [train_states[i] for i in fit_rows], [train_states[i] for i in val_rows]
    model = TopLayers(extractor.model, k)
    optimizer = torch.optim.AdamW([{"params": [p for n, p in model.named_parameters() if not n.startswith("head")],
                                    "lr": lr}, {"params": model.head.parameters(), "lr": 1e-3}], weight_decay=0.01)

    def margins(batch):
        return (model([s[0] for s in batch], [s[2] for s in batch])
                - model([s[1] for s in batch], [s[3] for s in batch]))

    @torch.no_grad()
    def accuracy(items) -> float:
        model.eval()
        correct = sum(int((margins(items[i:i + 16]) > 0).sum()) for i in range(0, len(items), 16))
        model.train()
        return correct / len(items)

    curve = []
    for epoch in range(1, epochs + 1):
        random.Random(epoch).shuffle(fit)
        total = 0.0
        for i in range(0, len(fit), 8):
            loss = torch.nn.functional.softplus(-margins(fit[i:i + 8])).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(fit[i:i + 8])
        curve.append({"epoch": epoch, "loss": total / len(fit), "val_accuracy": accuracy(val),
                      "held_out_accuracy": accuracy(test_states), "seconds": round(time.time() - start)})
        print(json.dumps(curve[-1]), flush=True)
    best = chosen_by_validation(curve)
    return {"k": k, "trained_layers": len(model.layers), "lr": lr, "fit_pairs": len(fit), "val_pairs": len(val),
            "held_out_pairs": len(test), "curve": curve, "chosen_by_val": best}


def chosen_by_validation(curve: list[dict]) -> dict:
    """The epoch the validation slice chooses: best validation accuracy, the earlier epoch on a tie."""
    return max(curve, key=lambda row: (row["val_accuracy"], -row["epoch"]))


def validation_slices(cfg, pairs: list[PreferencePair]) -> tuple[list[int], list[int]]:
    """Indices of (fit, validation) pairs: a prompt-disjoint 15 % of the evaluator split chooses the epoch."""
    prompts = sorted({p.prompt_id for p in pairs})
    random.Random(cfg.seed).shuffle(prompts)
    val_prompts = set(prompts[: int(0.15 * len(prompts))])
    return ([i for i, p in enumerate(pairs) if p.prompt_id not in val_prompts],
            [i for i, p in enumerate(pairs) if p.prompt_id in val_prompts])


def lora_reward_model(cfg, extractor: FeatureExtractor, epochs: int, lr: float, work_dir: Path) -> dict:
    """Does training the whole model (through LoRA) beat a linear head on frozen features, on these few pairs?
    Per epoch: accuracy on the validation slice (which chooses the epoch) and on the held-out pairs."""
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, TrainerCallback
    from trl import RewardConfig, RewardTrainer
    from trl.trainer.reward_trainer import DataCollatorForPreference

    from peo.train.common import last_checkpoint
    from peo.train.dpo import peft_lora_config

    _, every, test = harm_splits(cfg)
    fit_rows, val_rows = validation_slices(cfg, every)

    def encoded(pairs):
        return [{"chosen_ids": extractor.encode(p.prompt_messages(), p.chosen)[0],
                 "rejected_ids": extractor.encode(p.prompt_messages(), p.rejected)[0]} for p in pairs]

    train_rows, test_set = encoded(every), encoded(test)
    val_set = [train_rows[i] for i in val_rows]
    fit = Dataset.from_list([train_rows[i] for i in fit_rows])
    tokenizer = extractor.tokenizer
    base = resolve_base_model(cfg.base_model)
    torch.manual_seed(cfg.seed)  # the scalar head's initial weights
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1, dtype=torch.float32,
                                                               use_safetensors=True, trust_remote_code=False)
    pad = "<|endoftext|>"  # not <|im_end|> (the EOS): the head must read the answer's closing token
    tokenizer.pad_token = pad
    model.config.pad_token_id = tokenizer.pad_token_id
    args = RewardConfig(output_dir=str(work_dir), num_train_epochs=epochs, learning_rate=lr,
                        per_device_train_batch_size=8, lr_scheduler_type="linear", warmup_steps=0.05,
                        save_strategy="epoch", logging_steps=10, seed=cfg.seed, data_seed=cfg.seed, report_to=[],
                        use_cpu=not torch.cuda.is_available(), dataloader_num_workers=0, max_length=None)
    start = time.time()
    curve_file = work_dir / "epoch_accuracy.jsonl"  # epochs a killed run already finished
    curve = [json.loads(line) for line in curve_file.read_text().splitlines()] if curve_file.is_file() else []

    collate = DataCollatorForPreference(pad_token_id=tokenizer.pad_token_id)  # the trainer's own batching

    @torch.no_grad()
    def accuracy(net, rows) -> float:
        net.eval()
        right = 0
        for i in range(0, len(rows), 16):
            chunk = rows[i:i + 16]
            batch = collate(chunk)  # chosen rows first, then the rejected ones, right-padded
            rewards = net(input_ids=batch["input_ids"].to(net.device),
                          attention_mask=batch["attention_mask"].to(net.device)).logits.squeeze(-1)
            right += int((rewards[: len(chunk)] > rewards[len(chunk):]).sum())
        net.train()
        return right / len(rows)

    class EpochAccuracy(TrainerCallback):
        def on_epoch_end(self, args, state, control, model=None, **kwargs):
            losses = [h["loss"] for h in state.log_history if "loss" in h]
            curve.append({"epoch": round(state.epoch), "step": state.global_step,
                          "recent_loss": sum(losses[-5:]) / max(1, len(losses[-5:])),
                          "val_accuracy": accuracy(model, val_set), "held_out_accuracy": accuracy(model, test_set),
                          "seconds": round(time.time() - start)})
            print(json.dumps(curve[-1]), flush=True)
            with curve_file.open("a", encoding="utf-8") as out:
                out.write(json.dumps(curve[-1]) + "\n")

    work_dir.mkdir(parents=True, exist_ok=True)
    trainer = RewardTrainer(model=model, args=args, train_dataset=fit, processing_class=tokenizer,
                            peft_config=peft_lora_config(cfg.lora, task_type="SEQ_CLS"), callbacks=[EpochAccuracy()])
    trainer.train(resume_from_checkpoint=last_checkpoint(work_dir))
    best = chosen_by_validation(curve) if curve else None
    return {"lr": lr, "lora_r": cfg.lora.r, "lora_alpha": cfg.lora.alpha, "epochs": epochs,
            "fit_pairs": len(fit_rows), "val_pairs": len(val_rows), "held_out_pairs": len(test),
            "curve": curve, "log": [h for h in trainer.state.log_history if "loss" in h],
            "chosen_by_val": best}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m experiments.evaluator_experiments",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("experiment", choices=("probes", "top-layers", "lora", "learning-curve"))
    parser.add_argument("--config", type=Path, default=Path("precompute/configs/cpu.yaml"))
    parser.add_argument("--k", type=int, default=24, help="top-layers: the first fine-tuned layer (30 in SmolLM2)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=None,
                        help="learning rate of the layers (top-layers: 2e-5) or of the adapter (lora: 1e-4)")
    parser.add_argument("--assets", type=Path, default=Path("assets"), help="learning-curve: the shipped cost head")
    parser.add_argument("--out", type=Path, default=None, help="JSON results (default: print only)")
    args = parser.parse_args()
    cfg = load_config(args.config)
    torch.set_num_threads(cfg.threads or torch.get_num_threads())
    base = resolve_base_model(cfg.base_model)
    extractor = FeatureExtractor(load_causal_lm(base, "float32"), load_tokenizer(base),
                                 max_length=cfg.evaluator.max_length, batch_size=cfg.evaluator.batch_size)
    if args.experiment == "probes":
        result = probes(cfg, extractor)
    elif args.experiment == "learning-curve":
        shipped = Evaluator.load(Path(args.assets) / EVALUATORS_DIR / "cost")  # its layers: the set CV chose
        result = learning_curve(cfg, extractor, list(shipped.layers))
    elif args.experiment == "top-layers":
        result = top_layers(cfg, extractor, args.k, args.epochs, args.lr or 2e-5)
    else:
        lr = args.lr or 1e-4
        work_dir = Path(f"runs/evaluator-lora-lr{lr:g}-e{args.epochs}")
        result = lora_reward_model(cfg, extractor, args.epochs, lr, work_dir)
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
