"""Class vocabularies and the prompt strategies that turn them into calibration prompts.

A calibration set is described by a :class:`PromptConfig` and expanded by :func:`make_prompts`
into a list of :class:`PromptRecord` (text, class ids, strategy, own seed). Strategies are
chosen by name from :data:`STRATEGIES`:

- ``single``: one class per prompt, ``"a photo of a {c}"``.
- ``mixup``: ``k`` classes per prompt (default 2), ``"a photo of a {c1} and a {c2}"``: the
  method of the paper (arXiv 2507.21947).
- ``mixup-embed``: our ablation: ``k`` single-class prompts whose text-encoder embeddings are
  interpolated with Dirichlet(α) weights; the record carries the prompts and the weights.
- ``genq``: the GenQ baseline (ECCV 2024): single-class prompts, over-generated; the images
  are afterwards filtered by the full-precision model's energy score
  (:func:`mixq_core.synthesis.filter_by_energy`).

How classes are drawn. Prompts come in *rounds* of ``C`` prompts, ``C`` being the number of
classes in use. A round takes a random order ``π`` of the classes; its prompt ``j`` holds
``π[j]`` first and, for each further slot ``s``, a partner ``π[(j + d_s) mod C]`` with
distinct non-zero offsets ``d_s`` drawn per round. Every slot of a round is therefore a
permutation of the classes: each class appears exactly once per slot and round, so it is
the first (label) class as often as any other, and no prompt repeats a class. With
``partners="near"`` or ``"far"`` the partner permutations are instead chosen to maximise or
minimise the summed text-embedding similarity to the first class (a linear assignment),
still one appearance per class and slot. This is why ``n`` must be a multiple of ``C``
(``allow_unbalanced=True`` accepts any ``n``; counts then differ by at most one per slot).

Determinism: the records depend only on the config (and the similarity matrix, for near/far
partners). Each record's ``seed`` is a hash of the set seed and the record index, so the
same index gets the same starting noise in every strategy (paired comparisons), and a shard
or a resumed run regenerates exactly the same images.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

import numpy as np

from .errors import ConfigError, UnknownNameError, unknown_name

# ----------------------------------------------------------------------------- vocabularies

# The names the prompts say, in label order. They are the Fashion-MNIST class names, lower-cased
# and singular ("T-shirt/top" → "t-shirt"), as a caption would name the object.
FASHION_MNIST_PROMPT_NAMES = (
    "t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot",
)


@dataclass(frozen=True)
class Vocabulary:
    """The classes of a label space: what prompts call each class, and its other names.

    ``names[i]`` is the text a prompt uses for class ``i``; ``synonyms[i]`` are all the
    names (and identifiers such as ImageNet WordNet ids) that :meth:`resolve` accepts.
    """

    name: str
    names: tuple[str, ...]
    synonyms: tuple[tuple[str, ...], ...]

    def __len__(self) -> int:
        return len(self.names)

    def resolve(self, classes) -> tuple[int, ...]:
        """Class ids for ``classes``: ints (ids) or strings (names, synonyms, numeric ids).

        Raises :class:`UnknownNameError` for a name no class has, with close matches, and
        for a name shared by several classes (ImageNet has two "crane"s), listing them.
        """
        index: dict[str, list[int]] = {}
        for class_id, names in enumerate(self.synonyms):
            for key in {n.lower() for n in names}:
                index.setdefault(key, []).append(class_id)
        ids = []
        for item in classes:
            text = str(item).strip()
            if text.isdigit() and int(text) < len(self):
                ids.append(int(text))
                continue
            matches = index.get(text.lower(), [])
            if not matches:
                close = difflib.get_close_matches(text.lower(), index, n=5)
                hint = f"; close matches: {', '.join(close)}" if close else ""
                raise UnknownNameError(f"unknown class {text!r} in vocabulary {self.name} "
                                       f"(accepted: class names, synonyms or ids 0..{len(self) - 1}){hint}")
            if len(matches) > 1:
                described = ", ".join(f"{i} ({' / '.join(self.synonyms[i][:2])})" for i in matches)
                raise UnknownNameError(f"class name {text!r} is ambiguous in vocabulary {self.name}: "
                                       f"it names classes {described}; pass the id or another synonym instead")
            ids.append(matches[0])
        if len(set(ids)) != len(ids):
            raise ConfigError(f"classes {list(classes)} name some class twice")
        return tuple(ids)


def _fashion_mnist_vocabulary() -> Vocabulary:
    official = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                "Ankle boot")
    synonyms = tuple((prompt, label) for prompt, label in zip(FASHION_MNIST_PROMPT_NAMES, official, strict=True))
    return Vocabulary("fashion-mnist", FASHION_MNIST_PROMPT_NAMES, synonyms)


def _imagenet_vocabulary() -> Vocabulary:
    """ImageNet-1k from timm's bundled class info: prompts use each class's first WordNet lemma."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    synonyms = []
    for i, wnid in enumerate(info.label_names()):
        lemmas = tuple(lemma.strip() for lemma in info.index_to_description(i).split(","))
        synonyms.append(lemmas + (wnid,))
    return Vocabulary("imagenet-1k", tuple(s[0] for s in synonyms), tuple(synonyms))


VOCABULARIES: dict[str, Callable[[], Vocabulary]] = {
    "fashion-mnist": _fashion_mnist_vocabulary,
    "imagenet-1k": _imagenet_vocabulary,
}


@cache
def load_vocabulary(name: str) -> Vocabulary:
    """The vocabulary registered as ``name`` (``fashion-mnist`` or ``imagenet-1k``)."""
    if name not in VOCABULARIES:
        raise unknown_name("vocabulary", name, VOCABULARIES)
    return VOCABULARIES[name]()


# ----------------------------------------------------------------------------- config and records


@dataclass(frozen=True)
class PromptConfig:
    """Everything that decides a set's prompts; serialisable with :meth:`to_dict`.

    Args:
        strategy: a name in :data:`STRATEGIES`.
        n: images in the finished set (for ``genq``, after filtering).
        vocabulary: a name in :data:`VOCABULARIES`.
        k: classes per prompt; ``None`` takes the strategy's default (2 for the mixup
            strategies, 1 otherwise). ``single`` and ``genq`` accept only 1.
        seed: the set seed; records and their image seeds derive from it.
        templates: prompt templates, one drawn per prompt; ``{c1}``…``{ck}`` (or ``{c}`` when
            a template takes one class) mark the class names. Empty: the default for ``k``.
            For ``mixup-embed`` they are the single-class templates of the mixed prompts.
        classes: restrict the set to these classes (names or ids); ``None``: all.
        partners: ``random``, or ``near`` / ``far`` to pick mixup partners by text-embedding
            similarity (needs the similarity matrix in :func:`make_prompts`).
        partner_temperature: randomness of near/far pairing: Gumbel noise of this scale is
            added to the similarities before the assignment; 0 gives the same optimal
            pairing in every round.
        alpha: concentration of the Dirichlet that draws ``mixup-embed`` weights
            (1.0: uniform over the simplex; for k = 2 the Beta(α, α) of mixup).
        overgenerate: ``genq`` generates ``overgenerate × n`` candidates and keeps the
            ``n`` of lowest energy, the same number per class. 2 (keep the better half)
            is our choice: the filter then has real choice at twice the generation cost.
        allow_unbalanced: accept an ``n`` that is not a multiple of the number of classes.
    """

    strategy: str = "mixup"
    n: int = 1000
    vocabulary: str = "fashion-mnist"
    k: int | None = None
    seed: int = 0
    templates: tuple[str, ...] = ()
    classes: tuple[str, ...] | None = None
    partners: str = "random"
    partner_temperature: float = 0.05
    alpha: float = 1.0
    overgenerate: int = 2
    allow_unbalanced: bool = False

    def to_dict(self) -> dict:
        """Plain JSON-ready dict (tuples as lists)."""
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> PromptConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`ConfigError`."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown prompt config keys {sorted(unknown)}; accepted: {sorted(known)}")
        values = dict(data)
        for key in ("templates", "classes"):
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        return cls(**values)


@dataclass(frozen=True)
class PromptRecord:
    """One image to generate.

    ``text`` is the prompt (for ``mixup-embed``, a readable description of the mixture);
    ``classes`` are class ids, the first being the label; ``seed`` fixes the image's
    starting noise. ``components`` and ``weights`` are set for ``mixup-embed`` only: the
    single-class prompts whose embeddings are mixed, and their weights (summing to 1,
    largest first, so the label class dominates).
    """

    index: int
    text: str
    classes: tuple[int, ...]
    class_names: tuple[str, ...]
    strategy: str
    seed: int
    components: tuple[str, ...] = field(default=())
    weights: tuple[float, ...] = field(default=())

    @property
    def id(self) -> str:
        """File stem of the record's image: the zero-padded index."""
        return f"{self.index:06d}"

    def to_dict(self) -> dict:
        """JSON-ready dict; ``components`` and ``weights`` only when set."""
        data = {"id": self.id, "prompt": self.text, "classes": list(self.classes),
                "class_names": list(self.class_names), "strategy": self.strategy, "seed": self.seed}
        if self.components:
            data["components"] = list(self.components)
            data["weights"] = list(self.weights)
        return data


def record_seed(set_seed: int, index: int) -> int:
    """The image seed of record ``index``: a hash of both, stable across machines and versions."""
    digest = hashlib.sha256(f"mixq-image:{set_seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1  # 63 bits: fits any torch.Generator seed


# ----------------------------------------------------------------------------- templates


def default_template(k: int) -> str:
    """``"a photo of a {c1}"``, ``"… of a {c1} and a {c2}"``, ``"… of a {c1}, a {c2} and a {c3}"``."""
    slots = [f"a {{c{i}}}" for i in range(1, k + 1)]
    listed = slots[0] if k == 1 else ", ".join(slots[:-1]) + " and " + slots[-1]
    return f"a photo of {listed}"


def check_template(template: str, k: int) -> None:
    """Raise :class:`ConfigError` unless ``template`` holds exactly the fields ``{c1}``…``{ck}``."""
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise ConfigError(f"template {template!r} is not a valid format string: {exc}") from None
    expected = {f"c{i}" for i in range(1, k + 1)}
    if fields != expected and not (k == 1 and fields == {"c"}):
        shown = ", ".join("{" + f + "}" for f in sorted(expected))
        raise ConfigError(f"template {template!r} must contain exactly {shown}" + (" (or {c})" if k == 1 else "")
                          + f" for {k} class(es) per prompt; it has {sorted(fields)}")


def fill_template(template: str, names: tuple[str, ...]) -> str:
    """The template with ``{c1}``… (or ``{c}``) replaced by ``names`` in order."""
    return template.format(c=names[0], **{f"c{i}": name for i, name in enumerate(names, start=1)})


# ----------------------------------------------------------------------------- class grouping


def _round_offsets(num_classes: int, k: int, rng: np.random.Generator) -> list[int]:
    """``k - 1`` distinct partner offsets in ``1..C-1``: one round's pairing rule."""
    return (rng.permutation(num_classes - 1)[: k - 1] + 1).tolist()


def _assigned_partners(similarity: np.ndarray, k: int, near: bool, temperature: float,
                       rng: np.random.Generator) -> np.ndarray:
    """Partner permutations ``(C, k-1)`` maximising (near) or minimising (far) similarity.

    Column ``s`` is a permutation of the classes (balance), never equal to the row's class
    or to an earlier column (no repeats): forbidden entries get a prohibitive cost. Such an
    assignment always exists because the allowed entries form a regular bipartite graph.
    """
    from scipy.optimize import linear_sum_assignment

    num_classes = similarity.shape[0]
    sign = -1.0 if near else 1.0  # linear_sum_assignment minimises the cost
    partners = np.empty((num_classes, k - 1), dtype=np.int64)
    forbidden = np.eye(num_classes, dtype=bool)
    for slot in range(k - 1):
        noise = temperature * rng.gumbel(size=similarity.shape)
        cost = sign * similarity - noise
        cost[forbidden] = 1e9
        rows, cols = linear_sum_assignment(cost)
        partners[rows, slot] = cols
        forbidden[rows, cols] = True
    return partners


def balanced_groups(class_ids: tuple[int, ...], n: int, k: int, rng: np.random.Generator,
                    partners: str = "random", similarity: np.ndarray | None = None,
                    temperature: float = 0.05) -> list[tuple[int, ...]]:
    """``n`` tuples of ``k`` distinct classes from ``class_ids``, balanced per slot (see module doc).

    ``similarity`` is indexed like ``class_ids`` (``C × C``) and needed for near/far partners.
    """
    num_classes = len(class_ids)
    groups: list[tuple[int, ...]] = []
    while len(groups) < n:
        order = rng.permutation(num_classes)
        if partners == "random":
            offsets = _round_offsets(num_classes, k, rng)
            rounds = [(order[j], *(order[(j + d) % num_classes] for d in offsets)) for j in range(num_classes)]
        else:
            table = _assigned_partners(similarity, k, partners == "near", temperature, rng)
            rounds = [(order[j], *table[order[j]]) for j in range(num_classes)]
        groups.extend(tuple(class_ids[i] for i in group) for group in rounds)
    return groups[:n]


# ----------------------------------------------------------------------------- strategies

Strategy = Callable[[PromptConfig, Vocabulary, tuple[int, ...], np.random.Generator, "np.ndarray | None"],
                    list[dict]]
STRATEGIES: dict[str, Strategy] = {}
# Classes per prompt each strategy uses when the config leaves k unset, and whether k may differ.
DEFAULT_K = {"single": 1, "genq": 1, "mixup": 2, "mixup-embed": 2}
MULTI_CLASS = {"mixup", "mixup-embed"}  # strategies whose prompts name k ≥ 2 classes (read by mixq_core.sources)


def register_strategy(name: str):
    """Decorator adding a prompt strategy to :data:`STRATEGIES` under ``name``."""

    def add(builder: Strategy) -> Strategy:
        STRATEGIES[name] = builder
        return builder

    return add


def _pick_template(templates: tuple[str, ...], rng: np.random.Generator) -> str:
    return templates[0] if len(templates) == 1 else templates[int(rng.integers(len(templates)))]


def _text_prompts(config, vocab, class_ids, rng, similarity, count, k, templates) -> list[dict]:
    """Shared body of the text strategies: balanced groups, each filled into a template."""
    groups = balanced_groups(class_ids, count, k, rng, config.partners, similarity, config.partner_temperature)
    return [{"classes": group,
             "text": fill_template(_pick_template(templates, rng), tuple(vocab.names[c] for c in group))}
            for group in groups]


@register_strategy("single")
def _single(config, vocab, class_ids, rng, similarity) -> list[dict]:
    return _text_prompts(config, vocab, class_ids, rng, similarity, config.n, 1, _templates(config, 1))


@register_strategy("mixup")
def _mixup(config, vocab, class_ids, rng, similarity) -> list[dict]:
    k = effective_k(config)
    return _text_prompts(config, vocab, class_ids, rng, similarity, config.n, k, _templates(config, k))


@register_strategy("genq")
def _genq(config, vocab, class_ids, rng, similarity) -> list[dict]:
    # Candidates come in whole rounds too, so every class gets overgenerate × n / C of them.
    count = config.n * config.overgenerate
    return _text_prompts(config, vocab, class_ids, rng, similarity, count, 1, _templates(config, 1))


@register_strategy("mixup-embed")
def _mixup_embed(config, vocab, class_ids, rng, similarity) -> list[dict]:
    k = effective_k(config)
    templates = _templates(config, 1)
    groups = balanced_groups(class_ids, config.n, k, rng, config.partners, similarity, config.partner_temperature)
    prompts = []
    for group in groups:
        # Sorting a symmetric Dirichlet draw keeps its distribution of weight sets; giving the
        # largest weight to the first class makes the label the dominant class of the mixture.
        weights = tuple(float(w) for w in np.sort(rng.dirichlet([config.alpha] * k))[::-1])
        components = tuple(fill_template(_pick_template(templates, rng), (vocab.names[c],)) for c in group)
        text = " + ".join(f"{w:.3f}*[{c}]" for w, c in zip(weights, components, strict=True))
        prompts.append({"classes": group, "text": text, "components": components, "weights": weights})
    return prompts


# ----------------------------------------------------------------------------- validation and entry point


def effective_k(config: PromptConfig) -> int:
    """Classes per prompt: ``config.k`` or the strategy's default."""
    return DEFAULT_K.get(config.strategy, 1) if config.k is None else config.k


def _templates(config: PromptConfig, k: int) -> tuple[str, ...]:
    return config.templates or (default_template(k),)


def selected_classes(config: PromptConfig, vocab: Vocabulary) -> tuple[int, ...]:
    """The class ids a set draws from: ``config.classes`` resolved, or all of the vocabulary."""
    return tuple(range(len(vocab))) if config.classes is None else vocab.resolve(config.classes)


def validate(config: PromptConfig, vocab: Vocabulary) -> tuple[int, ...]:
    """Check ``config`` against ``vocab``; return the class ids in use. Raises :class:`ConfigError`."""
    if config.strategy not in STRATEGIES:
        raise unknown_name("prompt strategy", config.strategy, STRATEGIES)
    class_ids = selected_classes(config, vocab)
    num_classes = len(class_ids)
    k = effective_k(config)
    if config.strategy not in MULTI_CLASS and k != 1:
        raise ConfigError(f"strategy {config.strategy!r} puts one class in each prompt, so k must be 1 (got {k}); "
                          f"use mixup or mixup-embed for several classes")
    if not 1 <= k <= num_classes:
        raise ConfigError(f"k = {k} classes per prompt is outside 1..{num_classes} (the number of classes in use): "
                          "a prompt cannot name a class twice")
    if config.n < 1:
        raise ConfigError(f"n must be a positive number of images, got {config.n}")
    if config.seed < 0:
        raise ConfigError(f"seed must be ≥ 0, got {config.seed}")
    if config.n % num_classes and not config.allow_unbalanced:
        nearest = sorted({max(config.n // num_classes, 1) * num_classes, -(-config.n // num_classes) * num_classes})
        raise ConfigError(f"n = {config.n} is not a multiple of the {num_classes} classes in use, so strategy "
                          f"{config.strategy!r} cannot use every class equally often; use "
                          f"{' or '.join(map(str, nearest))}, or allow_unbalanced (--allow-unbalanced)")
    if config.partners not in ("random", "near", "far"):
        raise unknown_name("partner rule", config.partners, ("random", "near", "far"))
    if config.partners != "random" and config.strategy not in MULTI_CLASS:
        raise ConfigError(f"partners={config.partners!r} needs a mixup strategy; {config.strategy!r} has no partners")
    if config.strategy == "genq" and (not isinstance(config.overgenerate, int) or config.overgenerate < 1):
        raise ConfigError(f"overgenerate must be an integer ≥ 1, got {config.overgenerate!r}")
    if config.strategy == "mixup-embed" and not config.alpha > 0:
        raise ConfigError(f"alpha must be > 0 (the Dirichlet concentration), got {config.alpha}")
    template_k = 1 if config.strategy == "mixup-embed" else k
    for template in _templates(config, template_k):
        check_template(template, template_k)
    return class_ids


def make_prompts(config: PromptConfig, similarity: np.ndarray | None = None) -> list[PromptRecord]:
    """The records of the set described by ``config``; identical for identical arguments.

    ``similarity`` (``V × V`` over the whole vocabulary, e.g. cosine similarity of the text
    embeddings of ``"a photo of a {c}"``) is needed for ``partners="near"`` / ``"far"``.
    """
    vocab = load_vocabulary(config.vocabulary)
    class_ids = validate(config, vocab)
    if config.partners != "random":
        if similarity is None:
            raise ConfigError(f"partners={config.partners!r} needs the class similarity matrix "
                              "(mixq_core.synthesis.class_similarity(pipe, vocabulary))")
        similarity = np.asarray(similarity, dtype=np.float64)
        if similarity.shape != (len(vocab), len(vocab)):
            raise ConfigError(f"similarity must be {len(vocab)}×{len(vocab)} for {vocab.name}, got {similarity.shape}")
        similarity = similarity[np.ix_(class_ids, class_ids)]
    # Seeding numpy with the strategy name too keeps sets of different strategies independent.
    rng = np.random.default_rng([config.seed, *config.strategy.encode()])
    prompts = STRATEGIES[config.strategy](config, vocab, class_ids, rng, similarity)
    return [
        PromptRecord(index=i, text=p["text"], classes=tuple(int(c) for c in p["classes"]),
                     class_names=tuple(vocab.names[c] for c in p["classes"]), strategy=config.strategy,
                     seed=record_seed(config.seed, i), components=p.get("components", ()),
                     weights=p.get("weights", ()))
        for i, p in enumerate(prompts)
    ]


def cosine_similarity(embeddings) -> np.ndarray:
    """``V × V`` cosine similarity of the rows of ``embeddings`` (array or tensor ``(V, D)``)."""
    x = np.asarray(embeddings, dtype=np.float64)
    x = x / np.linalg.norm(x, axis=1, keepdims=True).clip(min=1e-12)
    return x @ x.T


def class_usage(records: list[PromptRecord], num_classes: int) -> np.ndarray:
    """``(k, C)`` counts: how often each class appears in each slot of the prompts."""
    k = max(len(r.classes) for r in records)
    counts = np.zeros((k, num_classes), dtype=np.int64)
    for record in records:
        for slot, class_id in enumerate(record.classes):
            counts[slot, class_id] += 1
    return counts
