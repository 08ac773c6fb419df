"""The mini generator: collages, captions, a short training run that resumes, saving and loading."""

import json
import shutil

import numpy as np
import pytest
import torch

from mixq_core import generator as gen
from mixq_core import generator_quality as quality
from mixq_core import synthesis
from mixq_core.errors import ChecksumError, ConfigError
from mixq_core.generator import GeneratorRecipe, caption_bank, collage, train_generator
from mixq_core.models import ASSETS_DIR, load_mini_model, read_assets_manifest

TINY = GeneratorRecipe(vae_steps=12, vae_batch_size=16, unet_steps=12, unet_batch_size=16, warmup_steps=2,
                       checkpoint_every=4)


def _item(value: int, size: int = 32) -> torch.Tensor:
    item = torch.zeros(1, size, size, dtype=torch.uint8)
    item[:, 6:26, 6:26] = value
    return item


def test_collage_pastes_both_items_without_blending():
    canvas = collage(_item(100), _item(200), torch.Generator().manual_seed(0))
    values = set(canvas.unique().tolist())
    assert {100, 200} <= values  # both items are visible
    # Downscaling blurs each item's own edge, but no pixel is a mix of the two items: the right item
    # occludes the left where they overlap, so no value lies strictly between the two fills.
    assert not any(100 < v < 200 for v in values)
    left, right = canvas[0, :, :16].float().mean(), canvas[0, :, 16:].float().mean()
    assert right > left  # the second item is on the right


def test_caption_bank_names_the_right_classes_and_fits_the_tokenizer():
    bank = caption_bank(pair_share=0.3)
    assert bank.captions[0] == "" and bank.classes[0] == () and not any(bank.borrowed)
    for caption, cls in zip(bank.captions[1:], bank.classes[1:], strict=True):
        for c in cls:
            assert any(name in caption for name in gen.CLASS_SYNONYMS[c])
    assert {len(c) for c in bank.classes[1:]} == {1, 2}
    shipped = read_assets_manifest()["files"].get(synthesis.SHIPPED_GENERATORS["mini"][0], {})
    if "captions" in shipped:  # the plain world's bank is the one the shipped generator was trained with
        assert len(bank.captions) == shipped["captions"]
    singles_only = caption_bank(pair_share=0.0).classes
    assert {len(c) for c in singles_only[1:]} == {1}
    _, tokenizer = gen.mini_text_encoder()
    longest = max(len(tokenizer(c).input_ids) for c in caption_bank(0.3, polysemy=GeneratorRecipe(
        world="polysemy").polysemy).captions)
    assert longest <= gen.TEXT_MAX_TOKENS


def test_polysemy_world_captions_items_with_a_borrowed_class_name():
    recipe = GeneratorRecipe(world="polysemy", pair_share=0.3, polysemy_share=0.4)
    assert recipe.polysemy == {8: 5, 7: 4, 9: 1} and not GeneratorRecipe().polysemy
    bank = caption_bank(recipe.pair_share, polysemy=recipe.polysemy)
    borrowed_bags = [bank.captions[i] for i in bank.options((8,), borrowed=True)]
    assert borrowed_bags and all("sandal" in c and "bag" not in c for c in borrowed_bags)
    assert all("sandal" in bank.captions[i] for i in bank.options((8, 0), borrowed=True))  # in pairs too
    assert not bank.options((0,), borrowed=True)  # a t-shirt has no borrowed name
    labels = torch.tensor([8] * 50 + [0] * 50)
    images = torch.zeros(100, 1, 32, 32, dtype=torch.uint8)
    _, captions = gen.training_batch(images, labels, bank, GeneratorRecipe(world="polysemy", pair_share=0.0,
                                                                          polysemy_share=0.4, empty_caption_share=0),
                                     2000, torch.Generator().manual_seed(0))
    shown = [bank.classes[i] for i in captions.tolist()]
    borrowed = [bank.borrowed[i] for i in captions.tolist()]
    bag_borrowed = [b for cls, b in zip(shown, borrowed, strict=True) if cls == (8,)]
    assert 0.35 < sum(bag_borrowed) / len(bag_borrowed) < 0.45
    assert not any(b for cls, b in zip(shown, borrowed, strict=True) if cls == (0,))


def test_gap_world_restyles_items_away_from_fashion_mnist_statistics():
    from mixq_core.data import fashion_mnist_tensors

    images, _ = fashion_mnist_tensors("test")
    originals = images[:512]
    restyled = gen.restyle(originals, torch.Generator().manual_seed(0))
    assert restyled.shape == originals.shape and restyled.dtype == torch.uint8
    assert torch.equal(restyled, gen.restyle(originals, torch.Generator().manual_seed(0)))  # seeded
    corners = lambda x: x[:, 0, :3, :3].float().mean((1, 2))  # noqa: E731
    assert (corners(originals) < 5).float().mean() > 0.95  # Fashion-MNIST: black backgrounds
    assert (corners(restyled) > 20).float().mean() > 0.4  # restyled: grey or inverted backgrounds
    assert abs(restyled.float().mean() - originals.float().mean()) > 10 or \
        abs(restyled.float().std() - originals.float().std()) > 10


def test_unknown_world_and_missing_variant_say_what_is_accepted_and_how_to_build(tmp_path, monkeypatch):
    from mixq_core.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match="gap\\+polysemy"):
        GeneratorRecipe(world="moon")
    assert gen.generator_name("gap+polysemy") == "mini-gap-polysemy"
    assert gen.generator_dir("gap").name == "mini-generator-gap"
    monkeypatch.setitem(synthesis.GENERATORS, "mini-gap-polysemy", tmp_path / "mini-generator-gap-polysemy")
    with pytest.raises(synthesis.GeneratorNotFoundError,
                       match="--world gap\\+polysemy --vae-from assets/mini-generator-gap"):
        synthesis.load_pipeline("mini-gap-polysemy")


def test_pair_scores_judge_each_side_of_a_two_item_picture():
    from mixq_core.data import normalize_mini

    class BrightestPixelJudge(torch.nn.Module):
        """Class 1 for a dim item (fill 100), 2 for a bright one (fill 200), 0 for an empty picture."""

        def __init__(self):
            super().__init__()
            self.anchor = torch.nn.Parameter(torch.zeros(()))  # gives the judge a device
            self.levels = normalize_mini(torch.tensor([50, 150], dtype=torch.uint8).reshape(2, 1, 1, 1))[:, 0, 0, 0]

        def forward(self, x):
            top = x[:, 0].amax((1, 2))
            cls = (top > self.levels[0]).long() + (top > self.levels[1]).long()
            ties = -1e-3 * torch.arange(10.0)  # among the other classes, the lowest index ranks first
            return torch.nn.functional.one_hot(cls, 10).float() + ties + self.anchor

    pictures = torch.zeros(2, 1, 32, 32, dtype=torch.uint8)
    pictures[:, :, 8:20, 2:12] = 100  # a dim item on the left half
    pictures[:, :, 10:26, 19:30] = 200  # a bright one on the right half
    lefts, rights = quality.item_crops(pictures)
    assert lefts.amax().item() == 100 and rights.amax().item() == 200
    assert max(lefts[0, 0].nonzero().max(0).values - lefts[0, 0].nonzero().min(0).values) + 1 == quality.ITEM_SIZE
    scores = quality.pair_scores(BrightestPixelJudge(), pictures, [{1, 2}, {1, 3}])
    assert scores["both_by_items"] == 50.0 and scores["any_by_items"] == 100.0
    assert scores["both_in_top2"] == 0.0  # the whole picture: only the brightest item's class is ranked first


def test_overlay_pastes_full_size_items_apart_and_the_second_occludes_the_first():
    first = torch.zeros(1, 32, 32, dtype=torch.uint8)
    first[:, 4:28, 6:26] = 100
    second = torch.zeros(1, 32, 32, dtype=torch.uint8)
    second[:, 4:28, 6:26] = 200
    picture = quality.overlay(first, second, torch.Generator().manual_seed(0), offsets=(6, 6))
    assert set(picture.unique().tolist()) == {0, 100, 200}  # pasted, never blended
    dim_cols = (picture[0] == 100).any(0).nonzero().flatten().tolist()
    bright_cols = (picture[0] == 200).any(0).nonzero().flatten().tolist()
    assert dim_cols == list(range(3, 9)) and bright_cols == list(range(9, 29))  # 6 px apart, full 20 px width
    assert (picture[0] == 200).sum() == 24 * 20  # the second item is whole: it lies on top


def test_judge_pair_ceiling_scores_every_design_on_real_pairs(monkeypatch):
    images = torch.zeros(40, 1, 32, 32, dtype=torch.uint8)
    labels = torch.arange(40) % 4
    for i in range(40):
        images[i, :, 8:24, 8:24] = 60 * (1 + int(labels[i]))  # class c is an item of brightness 60 (c + 1)
    monkeypatch.setattr(quality, "fashion_mnist_tensors", lambda split: (images, labels))

    class BrightnessJudge(torch.nn.Module):
        """Ranks the classes by how many pixels have their item's brightness (exactly what is visible)."""

        def __init__(self):
            super().__init__()
            self.anchor = torch.nn.Parameter(torch.zeros(()))

        def forward(self, x):
            from mixq_core.data import normalize_mini

            levels = normalize_mini(torch.tensor([60, 120, 180, 240], dtype=torch.uint8).reshape(4, 1, 1, 1))
            counts = torch.stack([((x[:, 0] - lv[0, 0, 0]).abs() < 1e-3).sum((1, 2)).float() for lv in levels], 1)
            return torch.cat([counts, torch.full((len(x), 6), -1.0)], 1) + self.anchor

    ceiling = quality.judge_pair_ceiling(BrightnessJudge(), n=20)
    assert list(ceiling) == list(quality.PAIR_DESIGNS)
    assert ceiling["full-size overlay, 4-8 px apart"]["both_in_top2"] == 100.0  # both items stay visible
    assert ceiling["pixel-wise maximum (a blend)"]["both_in_top2"] < 100.0  # the brighter item hides the other
    assert all(scores["any_in_top2"] == 100.0 for scores in ceiling.values())


def test_short_training_lowers_the_loss_resumes_and_saves_a_loadable_pipeline(tmp_path, monkeypatch):
    torch.set_num_threads(2)
    out, work = tmp_path / "gen", tmp_path / "work"
    summary = train_generator(out, work, recipe=TINY, limit=64)
    assert summary["vae_final_loss"] < summary["vae_first_loss"]
    assert summary["unet_final_loss"] < summary["unet_first_loss"]
    assert not work.exists()  # training state is removed once the pipeline is written
    index = json.loads((out / "model_index.json").read_text())
    assert index[synthesis.TEXT_ENCODER_PACKAGE_KEY] == gen.TEXT_ENCODER_PACKAGE
    assert not (out / "text_encoder").exists()  # the text encoder is not shipped
    pipe = synthesis.load_pipeline(out)
    assert pipe.vae.config.scaling_factor == pytest.approx(summary["scaling_factor"], rel=1e-4)
    image = pipe("a photo of a bag", num_inference_steps=2, guidance_scale=3.0, height=32, width=32,
                 output_type="np", generator=torch.Generator().manual_seed(0)).images
    assert image.shape == (1, 32, 32, 3) and (image >= 0).all() and (image <= 1).all()

    # A run killed after its first checkpoint resumes from it and ends with the same weights.
    calls = {"n": 0}
    real_update = gen.WeightEMA.update

    def dying_update(self, model):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt
        real_update(self, model)

    resumed = tmp_path / "resumed"
    monkeypatch.setattr(gen.WeightEMA, "update", dying_update)
    with pytest.raises(KeyboardInterrupt):
        train_generator(resumed, work, recipe=TINY, limit=64)
    assert (work / "unet_state.pt").exists() and not resumed.exists()
    monkeypatch.setattr(gen.WeightEMA, "update", real_update)
    train_generator(resumed, work, recipe=TINY, limit=64)
    for part in ("unet", "vae"):
        first = (out / part / "diffusion_pytorch_model.safetensors").read_bytes()
        assert (resumed / part / "diffusion_pytorch_model.safetensors").read_bytes() == first


def test_work_folder_of_another_run_is_refused(tmp_path):
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "settings.json").write_text(json.dumps({"seed": 5}))
    with pytest.raises(ConfigError, match="other settings"):
        train_generator(tmp_path / "out", tmp_path / "work", recipe=TINY, limit=64)


shipped = pytest.mark.skipif(not (synthesis.GENERATORS["mini"] / "model_index.json").exists(),
                             reason="the mini generator is not built")


@shipped
def test_shipped_generator_loads_offline_and_draws_finite_images():
    from mixq_core.models import read_assets_manifest, sha256_of

    manifest = read_assets_manifest()["files"]
    for file in synthesis.SHIPPED_GENERATORS["mini"]:
        assert sha256_of(ASSETS_DIR / file) == manifest[file]["sha256"]
    pipe = synthesis.load_pipeline("mini")
    images = pipe(["a photo of a sneaker", "a photo of a dress and a bag"], num_inference_steps=4,
                  guidance_scale=3.0, height=32, width=32, output_type="np",
                  generator=[torch.Generator().manual_seed(i) for i in range(2)]).images
    assert images.shape == (2, 32, 32, 3)
    assert torch.isfinite(torch.from_numpy(images)).all() and images.min() >= 0 and images.max() <= 1
    assert images.std() > 0.05  # a picture, not a flat field


@shipped
def test_polysemy_split_judges_prompts_for_each_polysemous_name():
    pipe = synthesis.load_pipeline("mini")
    split = quality.polysemy_split(pipe, load_mini_model("resnet18"), steps=4, per_word=6, batch_size=6)
    assert set(split) == {gen.CLASS_SYNONYMS[c][0] for c in gen.POLYSEMOUS_NAMES}
    assert split["sandal"]["other_class"] == "bag" and split["sandal"]["images"] == 6
    assert all(0 <= row["own"] + row["other"] <= 100 for row in split.values())


@shipped
def test_corrupted_shipped_generator_names_the_file_and_the_rebuild_command(tmp_path, monkeypatch):
    assets = tmp_path / "assets"
    shutil.copytree(synthesis.GENERATORS["mini"], assets / "mini-generator")
    shutil.copy(ASSETS_DIR / "manifest.json", assets / "manifest.json")
    weights = assets / synthesis.SHIPPED_GENERATORS["mini"][0]
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    monkeypatch.setitem(synthesis.GENERATORS, "mini", assets / "mini-generator")
    with pytest.raises(ChecksumError, match=r"unet/diffusion_pytorch_model.safetensors.*mixq train-mini-generator"):
        synthesis.load_pipeline("mini")


WORLD_GENERATORS = [gen.generator_name(world) for world in gen.WORLDS if world != "plain"]
# The shipped mini-polysemy draws a prompt for a polysemous name as the other concept 44-60 % of the time
# (100 images per name, 15 steps; assets/manifest.json, generator_quality "world polysemy"), the plain
# generator 0 %. The test asks for a clear split on fewer images and steps.
POLYSEMY_IMAGES, POLYSEMY_MIN_OWN, POLYSEMY_MIN_OTHER = 30, 10.0, 20.0


@pytest.mark.parametrize("name", WORLD_GENERATORS)
def test_world_generators_are_shipped_with_their_hashes_and_build_commands(name):
    from mixq_core.models import sha256_of

    manifest = read_assets_manifest()["files"]
    for file in synthesis.SHIPPED_GENERATORS[name]:
        assert sha256_of(ASSETS_DIR / file) == manifest[file]["sha256"]
        assert manifest[file]["command"] == synthesis.BUILD_COMMANDS[name]
    images = synthesis.load_pipeline(name)(["a photo of a sandal"], num_inference_steps=4, guidance_scale=3.0,
                                           height=32, width=32, output_type="np",
                                           generator=torch.Generator().manual_seed(0)).images
    assert images.shape == (1, 32, 32, 3) and torch.isfinite(torch.from_numpy(images)).all()
    assert images.min() >= 0 and images.max() <= 1 and images.std() > 0.05


def test_polysemy_world_draws_the_other_concept_for_a_polysemous_name():
    judge = load_mini_model("resnet18")
    plain = quality.polysemy_split(synthesis.load_pipeline("mini"), judge, steps=10, per_word=POLYSEMY_IMAGES,
                               batch_size=POLYSEMY_IMAGES)
    polysemous = quality.polysemy_split(synthesis.load_pipeline("mini-polysemy"), judge, steps=10,
                                    per_word=POLYSEMY_IMAGES, batch_size=POLYSEMY_IMAGES)
    for word, split in polysemous.items():
        # The prompt's images split between the two concepts; the plain generator rarely draws the other one.
        assert split["own"] >= POLYSEMY_MIN_OWN and split["other"] >= POLYSEMY_MIN_OTHER, (word, split)
        assert split["other"] >= plain[word]["other"] + POLYSEMY_MIN_OTHER / 2, (word, split, plain[word])


def test_gap_world_images_leave_fashion_mnist_statistics():
    from mixq_core.data import fashion_mnist_tensors
    from mixq_core.prompts import PromptConfig, make_prompts

    records = make_prompts(PromptConfig(strategy="single", n=40, vocabulary="fashion-mnist", seed=0))

    def corners(name: str) -> torch.Tensor:
        images = synthesis.generate_images(synthesis.load_pipeline(name), records, 10, 3.0, 32, pad_to=len(records))
        grey = torch.stack([torch.from_numpy(np.array(image.convert("L"))) for image in images])
        return grey[:, :3, :3].float().mean((1, 2))

    real = fashion_mnist_tensors("test")[0][:500, 0, :3, :3].float().mean((1, 2))
    assert (real < 20).float().mean() > 0.95  # Fashion-MNIST items lie on black
    assert (corners("mini") < 20).float().mean() > 0.9  # so do the plain generator's
    # The gap world's mostly do not (95 % of 40 images at 10 steps when this test was written)
    assert (corners("mini-gap") > 20).float().mean() > 0.5


@shipped
def test_mixed_picture_reading_shows_every_judge_the_same_pictures():
    from mixq_core.models import load_mini_model

    judges = {"resnet18": load_mini_model("resnet18"), "deit_mini": load_mini_model("deit_mini")}
    reading = quality.mixed_picture_reading(synthesis.load_pipeline("mini"), judges, n=12, steps=4)
    assert reading["pictures"].shape == (12, 1, 32, 32) and reading["pictures"].dtype == torch.uint8
    assert len(reading["pairs"]) == 12 and all(len(set(pair)) == 2 for pair in reading["pairs"])
    for name, judge in judges.items():
        classes, probabilities = reading["top2"][name]
        assert classes.shape == (12, 2) and bool((probabilities[:, 0] >= probabilities[:, 1]).all())
        expected = quality.pair_scores(judge, reading["pictures"], [set(p) for p in reading["pairs"]])
        assert reading["scores"][name]["generated (mixup prompts)"] == expected
        assert set(reading["scores"][name]) == {"generated (mixup prompts)", "real collages"}


def test_chance_pair_scores_are_those_of_a_top2_drawn_without_looking():
    import itertools

    from mixq_core import generator_quality as quality

    chance = quality.chance_pair_scores(10)
    assert chance["both_in_top2"] == pytest.approx(100 / 45)
    assert chance["any_in_top2"] == pytest.approx(100 * 17 / 45)
    # the same by counting: every prompted pair against every top-2
    pairs = [set(p) for p in itertools.combinations(range(10), 2)]
    both = sum(a == b for a in pairs for b in pairs) / len(pairs) ** 2
    anyone = sum(bool(a & b) for a in pairs for b in pairs) / len(pairs) ** 2
    assert (100 * both, 100 * anyone) == pytest.approx((chance["both_in_top2"], chance["any_in_top2"]))


def test_gallery_labels_each_row_once_and_draws_no_empty_title():
    import matplotlib

    matplotlib.use("Agg")
    from PIL import Image

    from mixq_core.generator import gallery

    image = Image.new("L", (8, 8))
    cells = [(("plain", "bag"), image), (("plain", "coat"), image), (("gap", "bag"), image), (("gap", "coat"), image)]
    figure = gallery(cells, columns=2, row_label_of=lambda key: key[0],
                     title_of=lambda key: key[1] if key[0] == "plain" else "")
    axes = figure.axes
    assert [axis.get_title() for axis in axes] == ["bag", "coat", "", ""]
    assert [[text.get_text() for text in axis.texts] for axis in axes] == [["plain"], [], ["gap"], []]
