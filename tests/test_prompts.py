"""Prompt strategies: balance, no repeated class, determinism, errors."""

import numpy as np
import pytest

from mixq_core.errors import ConfigError, UnknownNameError
from mixq_core.prompts import (
    STRATEGIES,
    PromptConfig,
    class_usage,
    cosine_similarity,
    default_template,
    load_vocabulary,
    make_prompts,
)


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_every_class_equally_often_in_every_slot(strategy):
    records = make_prompts(PromptConfig(strategy=strategy, n=60, seed=3))
    usage = class_usage(records, 10)
    assert (usage == usage[0, 0]).all(), usage  # first (label) class and partners alike
    assert all(len(set(r.classes)) == len(r.classes) for r in records)


@pytest.mark.parametrize("k", [2, 3, 10])
def test_mixup_k_classes_never_repeated(k):
    records = make_prompts(PromptConfig(strategy="mixup", n=100, k=k, seed=1))
    assert len(records) == 100
    assert all(len(r.classes) == k and len(set(r.classes)) == k for r in records)
    assert (class_usage(records, 10) == 10).all()  # 100 prompts / 10 classes, in each of the k slots
    assert records[0].text.count(" and ") == 1 and records[0].text.startswith("a photo of a ")


def test_mixup_text_names_its_classes_in_order():
    vocab = load_vocabulary("fashion-mnist")
    for record in make_prompts(PromptConfig(strategy="mixup", n=20)):
        c1, c2 = (vocab.names[c] for c in record.classes)
        assert record.text == f"a photo of a {c1} and a {c2}"
        assert record.class_names == (c1, c2)


def test_pairs_vary_across_rounds():
    records = make_prompts(PromptConfig(strategy="mixup", n=200, seed=0))
    assert len({r.classes for r in records}) > 40  # not the same 10 pairs over and over


def test_same_config_same_records_and_seeds_differ_per_image():
    config = PromptConfig(strategy="mixup-embed", n=30, k=3, seed=7)
    first, second = make_prompts(config), make_prompts(config)
    assert first == second
    assert len({r.seed for r in first}) == 30
    assert make_prompts(PromptConfig(strategy="mixup-embed", n=30, k=3, seed=8)) != first


def test_same_index_same_seed_across_strategies():
    """Paired comparisons: image i of every strategy starts from the same noise."""
    single = make_prompts(PromptConfig(strategy="single", n=10, seed=2))
    mixup = make_prompts(PromptConfig(strategy="mixup", n=10, seed=2))
    assert [r.seed for r in single] == [r.seed for r in mixup]


def test_mixup_embed_weights_are_a_distribution_led_by_the_label():
    records = make_prompts(PromptConfig(strategy="mixup-embed", n=50, k=3, alpha=0.5))
    for record in records:
        assert len(record.components) == 3 and len(record.weights) == 3
        assert sum(record.weights) == pytest.approx(1.0)
        assert list(record.weights) == sorted(record.weights, reverse=True)
        names = load_vocabulary("fashion-mnist").names
        assert record.components == tuple(f"a photo of a {names[c]}" for c in record.classes)


def test_genq_overgenerates_balanced_candidates():
    records = make_prompts(PromptConfig(strategy="genq", n=20, overgenerate=3))
    assert len(records) == 60
    assert (class_usage(records, 10) == 6).all()
    assert all(r.strategy == "genq" and len(r.classes) == 1 for r in records)


def test_templates_are_configurable_and_checked():
    templates = ("a {c1} next to a {c2}", "a picture of a {c1} with a {c2}")
    records = make_prompts(PromptConfig(strategy="mixup", n=40, templates=templates))
    next_to = sum(" next to a " in r.text for r in records)
    picture = sum(r.text.startswith("a picture of a ") for r in records)
    assert next_to > 5 and picture > 5 and next_to + picture == 40
    with pytest.raises(ConfigError, match=r"\{c2\}"):
        make_prompts(PromptConfig(strategy="mixup", n=10, templates=("a photo of a {c1}",)))
    assert default_template(3) == "a photo of a {c1}, a {c2} and a {c3}"
    single = make_prompts(PromptConfig(strategy="single", n=10, templates=("a sketch of a {c}",)))
    assert single[0].text.startswith("a sketch of a ")


def test_near_and_far_partners_follow_similarity_and_stay_balanced():
    embeddings = np.random.default_rng(0).normal(size=(10, 6))
    similarity = cosine_similarity(embeddings)
    mean_sim = {}
    for partners in ("near", "far", "random"):
        config = PromptConfig(strategy="mixup", n=100, k=2, partners=partners)
        records = make_prompts(config, similarity=similarity if partners != "random" else None)
        assert (class_usage(records, 10) == 10).all()
        assert all(r.classes[0] != r.classes[1] for r in records)
        mean_sim[partners] = np.mean([similarity[r.classes[0], r.classes[1]] for r in records])
    assert mean_sim["near"] > mean_sim["random"] + 0.2 > mean_sim["far"] + 0.4
    with pytest.raises(ConfigError, match="similarity"):
        make_prompts(PromptConfig(strategy="mixup", n=10, partners="near"))


def test_restricted_classes_and_imagenet_vocabulary():
    vocab = load_vocabulary("imagenet-1k")
    assert len(vocab) == 1000 and vocab.names[0] == "tench"
    assert vocab.resolve(["kite", "n01440764", 517]) == (21, 0, 517)
    config = PromptConfig(strategy="mixup", vocabulary="imagenet-1k", n=4, classes=("kite", "517", "tench", "goldfish"))
    records = make_prompts(config)
    assert {c for r in records for c in r.classes} == {21, 517, 0, 1}
    assert (class_usage(records, 1000)[:, [21, 517, 0, 1]] == 1).all()


def test_unknown_and_ambiguous_class_names():
    with pytest.raises(UnknownNameError, match="close matches: kite"):
        load_vocabulary("imagenet-1k").resolve(["kit"])
    with pytest.raises(UnknownNameError, match="ambiguous.*134.*517"):
        load_vocabulary("imagenet-1k").resolve(["crane"])
    with pytest.raises(UnknownNameError, match="unknown class 'kite'"):
        make_prompts(PromptConfig(strategy="mixup", n=10, classes=("coat", "kite")))


@pytest.mark.parametrize(("config", "message"), [
    (PromptConfig(strategy="mixup", k=0, n=10), "outside 1..10"),
    (PromptConfig(strategy="mixup", k=11, n=10), "outside 1..10"),
    (PromptConfig(strategy="mixup", k=3, n=6, classes=("coat", "bag")), "outside 1..2"),
    (PromptConfig(strategy="single", k=2, n=10), "k must be 1"),
    (PromptConfig(strategy="mixup", n=1024), "not a multiple of the 10 classes.*1020 or 1030"),
    (PromptConfig(strategy="genq", n=25), "not a multiple"),
    (PromptConfig(strategy="genq", n=10, overgenerate=0), "overgenerate"),
    (PromptConfig(strategy="mixup-embed", n=10, alpha=0), "alpha"),
    (PromptConfig(strategy="single", n=10, partners="near"), "needs a mixup strategy"),
])
def test_invalid_configs_say_what_is_accepted(config, message):
    with pytest.raises(ConfigError, match=message):
        make_prompts(config)


def test_unknown_strategy_and_vocabulary():
    with pytest.raises(UnknownNameError, match="accepted: genq, mixup, mixup-embed, single"):
        make_prompts(PromptConfig(strategy="mix"))
    with pytest.raises(UnknownNameError, match="vocabulary"):
        make_prompts(PromptConfig(vocabulary="cifar"))


def test_unbalanced_n_when_allowed_differs_by_at_most_one():
    records = make_prompts(PromptConfig(strategy="mixup", n=1024, allow_unbalanced=True))
    usage = class_usage(records, 10)
    assert len(records) == 1024 and usage.max() - usage.min() <= 1


def test_config_round_trips_through_dict():
    config = PromptConfig(strategy="mixup", n=20, templates=("a {c1} and a {c2}",), classes=("coat", "bag"))
    assert PromptConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="unknown prompt config keys"):
        PromptConfig.from_dict({"strategy": "mixup", "colour": 1})
