"""Synthesis with a tiny random Stable Diffusion: sets on disk, resumption, reproducibility, GenQ, metrics."""

import json
import math
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from mixq_core import synthesis
from mixq_core.analysis import diversity_metrics, energy_score, logits_and_features, score_synthetic
from mixq_core.cli import main
from mixq_core.data import mini_image_transform, read_manifest, synthetic_folder
from mixq_core.errors import ConfigError, DatasetLayoutError
from mixq_core.prompts import PromptConfig, make_prompts
from mixq_core.synthesis import (
    GeneratorNotFoundError,
    class_similarity,
    filter_by_energy,
    genq_quotas,
    load_pipeline,
    lowest_energy,
    parse_shard,
    synthesize,
    synthesize_set,
)
from mixq_core.testing import tiny_classifier, tiny_sd_pipeline

STEPS = 3  # enough to exercise the multistep solver; pictures are noise anyway


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run fastest single-threaded, and threads only contend on a busy CI machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def pipe():
    return tiny_sd_pipeline("clip")


@pytest.fixture(scope="module")
def bert_pipeline_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bert-pipeline")
    tiny_sd_pipeline("bert").save_pretrained(folder)
    return folder


def pixels(folder, record_id):
    with Image.open(folder / "images" / f"{record_id}.png") as image:
        return np.asarray(image.convert("RGB"))


def run(pipe, records, out, **kwargs):
    kwargs.setdefault("steps", STEPS)
    kwargs.setdefault("guidance", 3.0)
    kwargs.setdefault("batch_size", 4)
    return synthesize(pipe, records, out, **kwargs)


# ----------------------------------------------------------------------------- writing a set


@pytest.mark.parametrize("strategy", ["single", "mixup", "mixup-embed"])
def test_writes_n_images_and_a_manifest_the_data_interface_reads(pipe, tmp_path, strategy):
    records = make_prompts(PromptConfig(strategy=strategy, n=10, seed=1))
    summary = run(pipe, records, tmp_path, generator_name="tiny")
    assert summary["complete"] and summary["generated"] == 10
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == [f"{i:06d}.png" for i in range(10)]
    lines = read_manifest(tmp_path)
    assert [line["id"] for line in lines] == [r.id for r in records]
    for line, record in zip(lines, records, strict=True):
        assert line["file"] == f"images/{record.id}.png"
        assert line["classes"] == list(record.classes) and line["prompt"] == record.text
        assert line["seed"] == record.seed and line["strategy"] == strategy
        assert (line["generator"], line["steps"], line["guidance"], line["resolution"]) == ("tiny", STEPS, 3.0, 32)
    dataset = synthetic_folder(tmp_path)
    image, label = dataset[3]
    assert len(dataset) == 10 and image.shape == (3, 32, 32) and torch.isfinite(image).all()
    assert label == records[3].classes[0]


def test_config_json_records_what_made_the_set(pipe, tmp_path):
    records = make_prompts(PromptConfig(strategy="mixup", n=10))
    run(pipe, records, tmp_path, set_config={"prompts": {"strategy": "mixup"}})
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["steps"] == STEPS and config["guidance"] == 3.0 and config["n_records"] == 10
    assert config["prompts"] == {"strategy": "mixup"} and len(config["records_sha256"]) == 64


# ----------------------------------------------------------------------------- resumption and refusal


def test_interrupted_run_resumes_to_exactly_n_valid_unique_images(pipe, tmp_path):
    records = make_prompts(PromptConfig(strategy="mixup", n=20, seed=4))
    out = tmp_path / "set"

    def stop_after_two_batches(written):
        if written >= 6:
            raise KeyboardInterrupt("killed")

    with pytest.raises(KeyboardInterrupt):
        run(pipe, records, out, batch_size=3, callback=stop_after_two_batches)
    assert len(list((out / "images").glob("*.png"))) == 6
    assert not (out / "manifest.jsonl").exists()  # an incomplete set is never published
    # What a hard kill can leave: a temporary file mid-write, and a damaged image.
    (out / "images" / ".000007.png.tmpabc").write_bytes(b"\x89PNG half")
    (out / "images" / "000001.png").write_bytes((out / "images" / "000001.png").read_bytes()[:60])

    summary = run(pipe, records, out, batch_size=3)
    assert summary["complete"] and summary["already_present"] == 5 and summary["generated"] == 15
    files = sorted((out / "images").iterdir())
    assert [f.name for f in files] == [f"{i:06d}.png" for i in range(20)]  # no temporaries, no duplicates
    lines = read_manifest(out)
    assert len({line["id"] for line in lines}) == 20 == len(lines)

    reference = tmp_path / "uninterrupted"
    run(pipe, records, reference, batch_size=3)
    for record in records:
        assert np.array_equal(pixels(out, record.id), pixels(reference, record.id)), record.id


def test_rerun_of_a_complete_set_generates_nothing(pipe, tmp_path):
    records = make_prompts(PromptConfig(strategy="single", n=10))
    run(pipe, records, tmp_path)
    summary = run(pipe, records, tmp_path)
    assert summary["generated"] == 0 and summary["already_present"] == 10 and summary["complete"]


def test_refuses_a_folder_holding_another_configuration(pipe, tmp_path):
    records = make_prompts(PromptConfig(strategy="single", n=10))
    run(pipe, records, tmp_path)
    with pytest.raises(ConfigError, match="another configuration.*steps"):
        run(pipe, records, tmp_path, steps=STEPS + 1)
    other = make_prompts(PromptConfig(strategy="mixup", n=10))
    with pytest.raises(ConfigError, match="records_sha256"):
        run(pipe, other, tmp_path)
    stranger = tmp_path / "not-a-set"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty and has no config.json"):
        run(pipe, records, stranger)


# ----------------------------------------------------------------------------- reproducibility


def test_same_record_same_pixels_in_two_runs_any_order_or_shard(pipe, tmp_path):
    records = make_prompts(PromptConfig(strategy="mixup", n=10, seed=5))
    run(pipe, records, tmp_path / "a", batch_size=4)
    run(pipe, records, tmp_path / "b", batch_size=4)
    for shard in ("1/3", "0/3", "2/3"):  # other batch compositions, other order
        summary = run(pipe, records, tmp_path / "c", batch_size=4, shard=parse_shard(shard))
    assert summary["complete"]
    for record in records:
        reference = pixels(tmp_path / "a", record.id)
        assert np.array_equal(reference, pixels(tmp_path / "b", record.id))
        assert np.array_equal(reference, pixels(tmp_path / "c", record.id))
    assert len({pixels(tmp_path / "a", r.id).tobytes() for r in records}) == 10  # per-image seeds differ


def test_batch_size_changes_pixels_by_float_rounding_at_most(pipe, tmp_path):
    """Same starting noise at any batch size; only batched-kernel rounding may flip a grey level.

    Bit-identity across *different* batch sizes is not promised (see the synthesis module doc):
    CPU convolutions round differently for different batch shapes.
    """
    records = make_prompts(PromptConfig(strategy="mixup", n=10, seed=6))
    run(pipe, records, tmp_path / "b1", batch_size=1)
    run(pipe, records, tmp_path / "b4", batch_size=4)
    differing = total = 0
    for record in records:
        one, four = pixels(tmp_path / "b1", record.id).astype(int), pixels(tmp_path / "b4", record.id).astype(int)
        assert np.abs(one - four).max() <= 1
        differing += int((one != four).sum())
        total += one.size
    assert differing <= total // 1000


def test_exact_mode_gives_bit_identical_pixels_at_any_batch_size(pipe, tmp_path):
    records = make_prompts(PromptConfig(strategy="mixup", n=10, seed=6))
    run(pipe, records, tmp_path / "b1", batch_size=1)
    run(pipe, records, tmp_path / "b3", batch_size=3, exact=True)
    run(pipe, records, tmp_path / "b4", batch_size=4, exact=True)
    for record in records:
        reference = pixels(tmp_path / "b1", record.id)
        assert np.array_equal(reference, pixels(tmp_path / "b3", record.id))
        assert np.array_equal(reference, pixels(tmp_path / "b4", record.id))
    manifest = [json.loads(line) for line in (tmp_path / "b4" / "manifest.jsonl").read_text().splitlines()]
    assert {entry["batch_size"] for entry in manifest} == {1}  # what actually went through the pipeline


def test_mixup_embed_with_all_weight_on_one_prompt_matches_that_text_prompt(pipe, tmp_path):
    text = make_prompts(PromptConfig(strategy="single", n=10, seed=9))
    embed = make_prompts(PromptConfig(strategy="mixup-embed", n=10, seed=9))
    pure = [type(e)(index=e.index, text=e.text, classes=(t.classes[0], e.classes[1]), class_names=e.class_names,
                    strategy=e.strategy, seed=e.seed, components=(t.text, e.components[1]), weights=(1.0, 0.0))
            for t, e in zip(text, embed, strict=True)]
    run(pipe, text, tmp_path / "text", batch_size=1)
    run(pipe, pure, tmp_path / "embed", batch_size=1)
    for record in text:
        diff = np.abs(pixels(tmp_path / "text", record.id).astype(int) - pixels(tmp_path / "embed", record.id))
        assert diff.max() <= 1


def test_near_partners_from_the_generators_text_encoder(pipe, tmp_path):
    similarity = class_similarity(pipe, "fashion-mnist")
    assert similarity.shape == (10, 10) and np.allclose(similarity, similarity.T)
    assert np.allclose(np.diag(similarity), 1.0)
    config = PromptConfig(strategy="mixup", n=10, partners="near", partner_temperature=0.0)
    summary = synthesize_set(config, tmp_path, pipe=pipe, steps=2, guidance=3.0, batch_size=5)
    assert summary["complete"]
    lines = read_manifest(tmp_path)
    pairs = {tuple(line["classes"]) for line in lines}
    nearest = {c: max((d for d in range(10) if d != c), key=lambda d: similarity[c, d]) for c in range(10)}
    assert sum(nearest[a] == b for a, b in pairs) >= 3  # the assignment favours each class's nearest names
    assert json.loads((tmp_path / "config.json").read_text())["prompts"]["partners"] == "near"


# ----------------------------------------------------------------------------- loading pipelines


def test_load_pipeline_with_a_bert_text_encoder(bert_pipeline_dir, tmp_path):
    pipe = load_pipeline(bert_pipeline_dir, device="cpu")
    assert type(pipe.text_encoder).__name__ == "BertModel"
    assert type(pipe.scheduler).__name__ == "DPMSolverMultistepScheduler"
    assert pipe.scheduler.config.algorithm_type == "dpmsolver++"
    assert getattr(pipe, "safety_checker", None) is None and pipe.dtype == torch.float32
    records = make_prompts(PromptConfig(strategy="mixup-embed", n=10))
    assert run(pipe, records, tmp_path, batch_size=5)["complete"]


def test_missing_pipeline_files_are_named(bert_pipeline_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(bert_pipeline_dir, broken)
    for weights in (broken / "unet").glob("*.safetensors"):
        weights.unlink()
    (broken / "tokenizer" / "tokenizer.json").unlink()
    with pytest.raises(GeneratorNotFoundError, match=r"lacks tokenizer/tokenizer.json\|.*unet/\*.safetensors"):
        load_pipeline(broken)


def test_missing_mini_generator_says_how_to_build_it(monkeypatch, tmp_path):
    monkeypatch.setitem(synthesis.GENERATORS, "mini", tmp_path / "mini-generator")
    with pytest.raises(GeneratorNotFoundError, match="does not exist.*mixq train-mini-generator"):
        load_pipeline("mini")


def test_hub_pipeline_offline_names_what_the_cache_lacks(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(GeneratorNotFoundError, match="offline.*lacks model_index.json"):
        load_pipeline("mixq-tests/no-such-pipeline")


@pytest.mark.parametrize("text", ["2/2", "1", "a/b", "-1/3"])
def test_bad_shards(text):
    with pytest.raises(ConfigError, match="shard"):
        parse_shard(text)


# ----------------------------------------------------------------------------- GenQ


def test_lowest_energy_keeps_the_lowest_per_class():
    classes = [0, 0, 0, 1, 1, 1, 0, 1]
    energies = [5.0, -1.0, 2.0, 0.5, 0.4, 9.0, -3.0, 0.4]
    assert lowest_energy(classes, energies, {0: 2, 1: 2}) == [1, 4, 6, 7]  # tie at 0.4 → both, by index
    assert lowest_energy(classes, energies, {0: 1, 1: 1}) == [4, 6]
    with pytest.raises(ConfigError, match="candidates"):
        lowest_energy(classes, energies, {0: 5})


def test_energy_score_is_negative_logsumexp():
    logits = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    assert torch.allclose(energy_score(logits), -torch.logsumexp(logits, 1))
    assert energy_score(logits, temperature=2.0)[1].item() == pytest.approx(-2.0 * math.log(3.0))


def test_genq_set_keeps_the_lowest_energy_images_of_each_class(pipe, tmp_path):
    model = tiny_classifier()
    config = PromptConfig(strategy="genq", n=10, overgenerate=3, seed=2)
    summary = synthesize_set(config, tmp_path, pipe=pipe, generator="tiny", steps=STEPS, guidance=3.0,
                             batch_size=6, filter_model=model, filter_model_name="tiny-classifier")
    assert summary["filter"]["kept"] == 10 and summary["filter"]["candidates"] == 30
    candidates = [json.loads(line) for line in (tmp_path / "candidates.jsonl").read_text().splitlines()]
    kept = read_manifest(tmp_path)
    assert len(candidates) == 30 and len(kept) == 10
    assert sorted(line["classes"][0] for line in kept) == list(range(10))  # one per class: balanced
    # Recompute every candidate's energy independently: each kept image beats its class's other two.
    images = torch.stack([mini_image_transform(Image.open(tmp_path / c["file"])) for c in candidates])
    energies = energy_score(model(images)).tolist()
    energy_of = {c["id"]: e for c, e in zip(candidates, energies, strict=True)}
    for line in kept:
        rivals = [energy_of[c["id"]] for c in candidates if c["classes"] == line["classes"]]
        assert line["energy"] == pytest.approx(energy_of[line["id"]], abs=1e-5)
        assert energy_of[line["id"]] == pytest.approx(min(rivals), abs=1e-6)
    assert json.loads((tmp_path / "config.json").read_text())["filter"]["model"] == "tiny-classifier"
    assert len(synthetic_folder(tmp_path)) == 10


def test_genq_without_a_model_is_refused(pipe, tmp_path):
    with pytest.raises(ConfigError, match="--model"):
        synthesize_set(PromptConfig(strategy="genq", n=10), tmp_path, pipe=pipe)


def test_genq_quotas_follow_the_first_n_records():
    records = make_prompts(PromptConfig(strategy="genq", n=20, overgenerate=2))
    assert genq_quotas(records, 20) == dict.fromkeys(range(10), 2)


def test_filter_by_energy_needs_candidates(tmp_path):
    with pytest.raises(DatasetLayoutError, match="candidates.jsonl"):
        filter_by_energy(tmp_path, tiny_classifier(), {0: 1})


# ----------------------------------------------------------------------------- analysis


def test_score_synthetic_counts_agreement_with_the_prompts(pipe, tmp_path):
    records = make_prompts(PromptConfig(strategy="mixup", n=10))
    run(pipe, records, tmp_path)
    model = tiny_classifier(seed=1)
    images = torch.stack([mini_image_transform(Image.open(tmp_path / "images" / f"{r.id}.png")) for r in records])
    top2 = model(images).topk(2, dim=1).indices.tolist()
    lines = read_manifest(tmp_path)
    # Rewrite the prompted classes: images 0-3 exactly the model's top-2, 4-6 its top-1 and an
    # outsider, 7-9 two outsiders.
    for i, (line, (a, b)) in enumerate(zip(lines, top2, strict=True)):
        outsiders = [c for c in range(10) if c not in (a, b)]
        line["classes"] = [a, b] if i < 4 else [a, outsiders[0]] if i < 7 else outsiders[:2]
    (tmp_path / "manifest.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    scores = score_synthetic(model, tmp_path, topk=2)
    assert scores == {"top1": 70.0, "all_in_topk": 40.0, "any_in_topk": 70.0, "topk": 2, "n_images": 10}


def test_diversity_metrics_separate_identical_from_varied_images():
    model = tiny_classifier()
    identical = torch.utils.data.TensorDataset(torch.ones(16, 3, 32, 32), torch.zeros(16))
    varied = torch.utils.data.TensorDataset(torch.randn(16, 3, 32, 32, generator=torch.Generator().manual_seed(0)),
                                            torch.zeros(16))
    flat, rich = diversity_metrics(model, identical), diversity_metrics(model, varied)
    assert flat["n_images"] == rich["n_images"] == 16
    assert flat["top1_coverage"] == pytest.approx(0.1) and flat["top1_entropy"] == pytest.approx(0.0, abs=1e-9)
    assert flat["feature_trace_cov"] == pytest.approx(0.0, abs=1e-9)
    assert flat["feature_mean_distance"] == pytest.approx(0.0, abs=1e-6)
    assert rich["feature_trace_cov"] > 0 and rich["feature_mean_distance"] > 0
    for metrics in (flat, rich):
        assert 0 <= metrics["mean_entropy"] <= math.log(10) + 1e-6


def test_penultimate_features_come_from_the_classifier_input():
    model = tiny_classifier()
    logits, features = logits_and_features(model, [torch.randn(5, 3, 32, 32)])
    assert logits.shape == (5, 10) and features.shape == (5, 8)
    assert torch.allclose(model[-1](features), logits, atol=1e-6)


# ----------------------------------------------------------------------------- command line


def test_cli_synthesize_writes_and_resumes_a_set(bert_pipeline_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(synthesis.GENERATORS, "mini", bert_pipeline_dir)
    monkeypatch.setitem(synthesis.SHIPPED_GENERATORS, "mini", [])  # a stand-in: no shipped hashes to check
    argv = ["synthesize", "--profile", "mini", "--strategy", "mixup", "--n", "10", "--out", str(tmp_path / "set"),
            "--steps", "2", "--batch-size", "5", "--device", "cpu", "--seed", "3"]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["complete"] and first["generated"] == 10 and first["strategy"] == "mixup"
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["generated"] == 0
    lines = read_manifest(tmp_path / "set")
    assert len(lines) == 10 and all(line["guidance"] == 3.0 and line["generator"] == "mini" for line in lines)
    assert main(argv[:-2] + ["--seed", "4"]) == 2
    assert "another configuration" in capsys.readouterr().err
