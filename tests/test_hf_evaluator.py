"""A Hugging Face sequence-classification reward model as an evaluator (peo/hf_evaluator.py).

The reward models here are built by the tests (a tiny LlamaForSequenceClassification with the tiny profile's
tokenizer, saved by transformers to a folder): nothing is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from conftest import REPO, write_tiny_data

TINY_YAML = REPO / "precompute" / "configs" / "tiny.yaml"
COST, REWARD = "evaluator.reward_models.cost", "evaluator.reward_models.reward"  # the override keys


def save_reward_model(base: str, folder: Path, num_labels: int = 1, seed: int = 0) -> Path:
    """A random 2-layer LlamaForSequenceClassification on the tiny base's tokenizer, saved as safetensors."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(base)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, num_labels=num_labels,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    model = LlamaForSequenceClassification(config)
    with torch.no_grad():  # the default init gives scores of ~1e-2; spread them so that rankings are not ties
        model.score.weight.normal_(0.0, 1.0)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def direct_score(folder: Path, messages: list[dict], answer: str) -> float:
    """The reward model's own score of one answer, computed the plain transformers way (batch of one)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder, use_safetensors=True).eval()
    text = tokenizer.apply_chat_template([*messages, {"role": "assistant", "content": answer}], tokenize=False)
    with torch.no_grad():
        return float(model(**tokenizer(text, return_tensors="pt")).logits[0, 0])


def hf_settings(overrides: dict):
    from peo.config import load_config

    return load_config(TINY_YAML, overrides)


@pytest.fixture(scope="module")
def reward_model(tiny_base, tmp_path_factory) -> Path:
    return save_reward_model(tiny_base, tmp_path_factory.mktemp("rm") / "tiny-rm")


@pytest.fixture(scope="module")
def hf_cost_run(reward_model, tmp_path_factory):
    """The whole tiny precompute with the tiny reward model as the cost evaluator."""
    from peo.config import load_config
    from precompute.stages import run_pipeline

    tmp = tmp_path_factory.mktemp("hf-run")
    cfg = load_config(TINY_YAML, {"out": str(tmp / "assets"), "work_dir": str(tmp / "work"),
                                  "data.root": str(write_tiny_data(tmp / "data")),
                                  "evaluator.reward_models.cost": {"hf_model": str(reward_model), "batch_size": 4}})
    return run_pipeline(cfg).out


def test_an_hf_reward_model_is_the_cost_evaluator_through_the_whole_precompute(hf_cost_run, reward_model):
    from peo.atomic import sha256

    out = hf_cost_run
    cost = json.loads((out / "evaluators" / "cost" / "evaluator.json").read_text())
    assert cost["source"] == "hf_model" and cost["hf_model"] == str(reward_model.resolve())
    assert cost["weights"] == {"model.safetensors": {"sha256": sha256(reward_model / "model.safetensors"),
                                                     "bytes": (reward_model / "model.safetensors").stat().st_size}}
    assert cost["higher_is"] == "worse" and cost["sign"] == 1.0 and cost["model_class"].endswith(
        "ForSequenceClassification")
    assert cost["chat_template"] == "reward model" and cost["chat_template_text"] is None
    assert 0.0 <= cost["held_out_accuracy"] <= 1.0 and len(cost["held_out_correct"]) == cost["held_out_pairs"] > 0
    assert not (out / "evaluators" / "cost" / "head.safetensors").exists(), "no head is trained for it"
    assert (out / "evaluators" / "reward" / "head.safetensors").is_file(), "the reward head is still the built-in"
    assert (out / "evaluators" / "cost" / "heldout_ref_logps.json").is_file(), "train-aspects still gets its logps"
    meta = json.loads((out / "meta.json").read_text())
    assert meta["evaluators"]["cost"]["hf_model"] == str(reward_model.resolve())
    fronts = json.loads((out / "report" / "fronts.json").read_text())
    assert fronts["evaluators"]["cost"]["held_out_accuracy"] == pytest.approx(cost["held_out_accuracy"])

    # the grid and the answers carry the reward model's scores: cost = (its score − offset), higher = more harmful
    answers = pd.read_parquet(out / "answers.parquet")
    grid = pd.read_csv(out / "grid.csv")
    harmful = answers[(answers["split"] == "test") & (answers["prompt_kind"] == "harm")
                      & (answers["model_id"] == "c+0.000_+0.000")]
    assert len(harmful) > 0
    direct = [direct_score(reward_model, json.loads(p), a) - cost["offset"]
              for p, a in zip(harmful["prompt"], harmful["answer"])]
    assert harmful["cost"].tolist() == pytest.approx(direct, abs=1e-4)
    ref = grid[(grid["model_id"] == "c+0.000_+0.000") & (grid["method"] == "ref")].iloc[0]
    assert ref["cost_mean_test"] == pytest.approx(sum(direct) / len(direct), abs=1e-4)


def test_the_app_scores_live_answers_with_the_hf_evaluator(hf_cost_run, reward_model):
    """The app's live scores (and off-grid scoring, which calls the same Engine.score) use the reward model."""
    from app.callbacks import App

    answers = pd.read_parquet(hf_cost_run / "answers.parquet")
    row = answers[(answers["split"] == "test") & (answers["prompt_kind"] == "harm")].iloc[0]
    cost_meta = json.loads((hf_cost_run / "evaluators" / "cost" / "evaluator.json").read_text())
    messages = json.loads(row["prompt"])
    for form in ("adapters", "merged"):
        app = App.load(hf_cost_run, device="cpu", form=form)
        app.engine.wait_ready()
        rewards, costs = app.engine.score([messages], [row["answer"]])
        assert costs[0] == pytest.approx(direct_score(reward_model, messages, row["answer"]) - cost_meta["offset"],
                                         abs=1e-4)
        assert rewards[0] == pytest.approx(row["reward"], abs=1e-4), "the built-in reward head is unchanged"


def test_direction_flips_the_sign(reward_model, tiny_base):
    from peo.hf_evaluator import build_hf_evaluator
    from peo.model_source import load_tokenizer

    prompts = [[{"role": "user", "content": f"How do I do thing {i}?"}] for i in range(5)]
    answers = [f"Answer number {i}, with some words." for i in range(5)]
    scores = {}
    for higher_is in ("worse", "better"):
        cfg = hf_settings({"evaluator.reward_models.cost": {"hf_model": str(reward_model), "higher_is": higher_is}})
        evaluator, meta = build_hf_evaluator(cfg.evaluator.reward_models["cost"], "cost", load_tokenizer(tiny_base))
        assert meta["higher_is"] == higher_is
        scores[higher_is] = evaluator.scores(prompts, answers)
    assert scores["better"] == pytest.approx([-s for s in scores["worse"]])
    assert scores["worse"][0] == pytest.approx(direct_score(reward_model, prompts[0], answers[0]), abs=1e-4)
    # a reward evaluator runs the other way round by default: higher is better, so no flip
    cfg = hf_settings({"evaluator.reward_models.reward": {"hf_model": str(reward_model)}})
    evaluator, meta = build_hf_evaluator(cfg.evaluator.reward_models["reward"], "reward", load_tokenizer(tiny_base))
    assert meta["higher_is"] == "better" and evaluator.scores(prompts, answers) == pytest.approx(scores["worse"])


def test_batches_give_the_scores_of_one_answer_at_a_time(reward_model, tiny_base):
    from peo.hf_evaluator import build_hf_evaluator
    from peo.model_source import load_tokenizer

    prompts = [[{"role": "user", "content": "Hi" + " there" * i}] for i in range(7)]
    answers = ["Yes." * (1 + 3 * i) for i in range(7)]
    cfg = hf_settings({REWARD: {"hf_model": str(reward_model), "batch_size": 3, "max_length": 40}})
    evaluator, _ = build_hf_evaluator(cfg.evaluator.reward_models["reward"], "reward", load_tokenizer(tiny_base))
    batched = evaluator.scores(prompts, answers)
    evaluator.batch_size = 1
    assert batched == pytest.approx(evaluator.scores(prompts, answers), abs=1e-4)
    assert all(len(evaluator.encode(p, a)) <= 40 for p, a in zip(prompts, answers))


@pytest.mark.parametrize("make, match", [
    (lambda tmp, base: tmp, "'evaluator.reward_models.cost.hf_model'.*not a model folder"),
    (lambda tmp, base: base, f"'{COST}.hf_model'.*lack score.weight.*not a sequence-classification"),
    (lambda tmp, base: "not a hub id!", "'evaluator.reward_models.cost.hf_model'.*not a hub id"),
])
def test_a_bad_model_gives_an_error_naming_the_key(tmp_path, tiny_base, make, match):
    from peo.hf_evaluator import HFEvaluatorError, build_hf_evaluator
    from peo.model_source import load_tokenizer

    cfg = hf_settings({"evaluator.reward_models.cost": {"hf_model": str(make(tmp_path, tiny_base))}})
    with pytest.raises(HFEvaluatorError, match=match):
        build_hf_evaluator(cfg.evaluator.reward_models["cost"], "cost", load_tokenizer(tiny_base))


def test_several_labels_need_a_label_and_score_its_log_odds(tmp_path, tiny_base):
    from peo.hf_evaluator import HFEvaluatorError, build_hf_evaluator, label_score
    from peo.model_source import load_tokenizer

    folder = save_reward_model(tiny_base, tmp_path / "rm2", num_labels=2)
    cfg = hf_settings({"evaluator.reward_models.cost": {"hf_model": str(folder)}})
    with pytest.raises(HFEvaluatorError, match="'evaluator.reward_models.cost.label'"):
        build_hf_evaluator(cfg.evaluator.reward_models["cost"], "cost", load_tokenizer(tiny_base))
    cfg = hf_settings({"evaluator.reward_models.cost": {"hf_model": str(folder), "label": 1}})
    evaluator, meta = build_hf_evaluator(cfg.evaluator.reward_models["cost"], "cost", load_tokenizer(tiny_base))
    assert meta["num_labels"] == 2 and meta["label"] == 1
    logits = torch.tensor([[0.5, 2.0], [1.0, -1.0]], dtype=torch.float64)
    assert label_score(logits, 1).tolist() == pytest.approx([1.5, -2.0])


def test_without_its_own_chat_template_the_base_models_is_used(tmp_path, tiny_base, reward_model):
    import shutil

    from transformers import AutoTokenizer

    from peo.hf_evaluator import build_hf_evaluator
    from peo.model_source import load_tokenizer

    folder = tmp_path / "rm-no-template"
    shutil.copytree(reward_model, folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.chat_template = None
    for name in ("chat_template.jinja", "tokenizer_config.json"):
        (folder / name).unlink(missing_ok=True)
    tokenizer.save_pretrained(folder)
    assert not AutoTokenizer.from_pretrained(folder).chat_template
    base_tokenizer = load_tokenizer(tiny_base)
    cfg = hf_settings({"evaluator.reward_models.reward": {"hf_model": str(folder)}})
    evaluator, meta = build_hf_evaluator(cfg.evaluator.reward_models["reward"], "reward", base_tokenizer)
    assert meta["chat_template"] == "base model" and meta["chat_template_text"] == base_tokenizer.chat_template
    prompt, answer = [{"role": "user", "content": "Hello?"}], "Hi."
    assert evaluator.text(prompt, answer) == base_tokenizer.apply_chat_template(
        [*prompt, {"role": "assistant", "content": answer}], tokenize=False)
    template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    cfg = hf_settings({"evaluator.reward_models.reward": {"hf_model": str(folder), "chat_template": template}})
    evaluator, meta = build_hf_evaluator(cfg.evaluator.reward_models["reward"], "reward", base_tokenizer)
    assert meta["chat_template"] == "config" and evaluator.text(prompt, answer) == "user: Hello?\nassistant: Hi.\n"


def test_a_safe_rlhf_score_model_is_refused_then_converted(tmp_path, tiny_base, reward_model):
    """A folder laid out like safe-rlhf's LlamaForScore (beaver-7b): `score_head.weight`, normalizer buffers,
    architectures LlamaForScore. Loaded as is, transformers would give it a random `score` head: refused, naming the
    key. Converted by `python -m peo.hf_evaluator convert-score-model`, it scores as the model it was made from."""
    from safetensors.torch import load_file, save_file

    from peo.hf_evaluator import HFEvaluatorError, build_hf_evaluator, main
    from peo.model_source import load_tokenizer

    score_model = tmp_path / "beaver-like"
    score_model.mkdir()
    tensors = load_file(str(reward_model / "model.safetensors"))
    tensors["score_head.weight"] = tensors.pop("score.weight")
    tensors.update({"normalizer.mean": torch.zeros(1), "normalizer.var": torch.ones(1),
                    "normalizer.count": torch.tensor(0)})
    save_file(tensors, str(score_model / "model.safetensors"))
    config = json.loads((reward_model / "config.json").read_text())
    config.update(architectures=["LlamaForScore"], score_dim=1, bias=False, score_type="cost")
    config.pop("id2label", None), config.pop("label2id", None)
    (score_model / "config.json").write_text(json.dumps(config))
    for other in reward_model.iterdir():
        if other.name not in ("config.json", "model.safetensors"):
            (score_model / other.name).write_bytes(other.read_bytes())
    base_tokenizer = load_tokenizer(tiny_base)
    cfg = hf_settings({"evaluator.reward_models.cost": {"hf_model": str(score_model)}})
    with pytest.raises(HFEvaluatorError, match="'evaluator.reward_models.cost.hf_model'.*lack score.weight"):
        build_hf_evaluator(cfg.evaluator.reward_models["cost"], "cost", base_tokenizer)

    converted = tmp_path / "beaver-like-converted"
    assert main(["convert-score-model", str(score_model), str(converted)]) == 0
    cfg = hf_settings({"evaluator.reward_models.cost": {"hf_model": str(converted)}})
    evaluator, meta = build_hf_evaluator(cfg.evaluator.reward_models["cost"], "cost", base_tokenizer)
    assert meta["architectures"] == ["LlamaForSequenceClassification"]
    prompt, answer = [{"role": "user", "content": "How do I pick a lock?"}], "With a pick."
    assert evaluator.scores([prompt], [answer])[0] == pytest.approx(direct_score(reward_model, prompt, answer),
                                                                    abs=1e-5)


def test_the_safe_rlhf_template_renders_its_dialogue_format(reward_model, tiny_base):
    from peo.hf_evaluator import SAFE_RLHF_TEMPLATE, build_hf_evaluator
    from peo.model_source import load_tokenizer

    cfg = hf_settings({COST: {"hf_model": str(reward_model), "chat_template": SAFE_RLHF_TEMPLATE}})
    evaluator, _ = build_hf_evaluator(cfg.evaluator.reward_models["cost"], "cost", load_tokenizer(tiny_base))
    eos = evaluator.tokenizer.eos_token
    prompt = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."},
              {"role": "user", "content": "Help me?"}]
    assert evaluator.text(prompt, "Sure.") == (f"BEGINNING OF CONVERSATION: USER: Hi ASSISTANT:Hello.{eos}"
                                               f"USER: Help me? ASSISTANT:Sure.{eos}")


def test_the_page_names_the_hf_model_behind_an_evaluator():
    from app.context_panel import evaluator_lines
    from peo.records import RunMeta
    from peo.scoring import HF_SOURCE

    meta = {"evaluators": {"cost": {"source": HF_SOURCE, "name": "org/cost-rm", "model_class": "LlamaForSequence"
                                    "Classification", "held_out_accuracy": 0.7, "held_out_pairs": 10},
                           "reward": {"held_out_accuracy": 0.6, "held_out_pairs": 10}}}
    lines = evaluator_lines(RunMeta.from_json({"base_model": "m", "grid": {}, **meta}, "meta.json"), None)
    assert any("org/cost-rm (LlamaForSequenceClassification)" in line for line in lines)
    assert not any("org/" in line for line in lines if line.startswith("- **reward"))
