"""How long an ImageNet-track experiment takes on a GPU, said before it starts.

The ``imagenet-colab`` profile is sized with these figures (its comments show the arithmetic), and notebook 08
prints them for the experiment it is about to run. They are estimates for a free Colab GPU, an NVIDIA T4
(65 TFLOPS fp16 with tensor cores, 8.1 TFLOPS fp32, 320 GB/s: NVIDIA's T4 datasheet), not measurements of
this code on one; the progress bars show the real rate once the work runs.

- **Synthesis**: Stable Diffusion v1.5's UNet costs 0.80 TFLOP per image and solver step at 512 px, 1.61 with
  classifier-free guidance; its VAE decoder 2.51 TFLOP per image (``torch.utils.flop_counter`` on the configs
  in ``benchmarks/sd15``). Diffusers' "Torch 2.0" benchmark measures SD v1.5 text-to-image on a T4 at 1.79
  steps/s for a batch of 4 in fp16 (torch 2.0, SDPA, no compile): 0.14 s per image and step, i.e. about
  11.5 TFLOPS sustained. The decoder at that rate is 0.22 s; writing the PNG about 0.1 s.
- **QDrop**: one step of every unit is about one forward and backward pass of the model on a batch of 32
  (resnet18: 341 GFLOP, ``torch.utils.flop_counter``). A T4 has no bf16 in hardware, so reconstruction runs in
  fp32 (``QuantConfig.amp`` applies from compute capability 8): at 5 TFLOPS sustained (cuDNN, 60 % of the fp32
  peak) 70 ms; the element-wise fake quantization and QDrop's masks (about 2.5 M activations per image, some 15
  memory passes each, memory-bound) add about 70 ms, kernel launches for 10 units about 30 ms.
- **Evaluation**: decoding, resizing and cropping ImageNet JPEGs on Colab's 2 CPU cores, read from Google Drive:
  about 100 images/s; two passes (full precision and quantized).
- **Set-up**: downloading SD v1.5's UNet, VAE and text encoder (4.3 GB of fp32 safetensors) and the classifier,
  then loading them: about 3 minutes.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Throughput:
    """Speed figures of one GPU for the ImageNet track (see the module docstring for where each comes from)."""

    gpu: str
    setup_seconds: float  # downloads and loading, once per experiment
    seconds_per_image_step: float  # Stable Diffusion v1.5 at 512 px with guidance: one image, one solver step
    seconds_per_image_decode: float  # the VAE decoder and writing the PNG, per image
    qdrop_seconds_per_step: dict[str, float] = field(default_factory=dict)  # one step of every unit, batch 32
    eval_images_per_second: float = 100.0


T4 = Throughput(gpu="Tesla T4", setup_seconds=180, seconds_per_image_step=0.14, seconds_per_image_decode=0.32,
                qdrop_seconds_per_step={"resnet18": 0.17}, eval_images_per_second=100)


def expected_seconds(profile: dict, model: str, n_images: int, iters: int, generated: bool,
                     speed: Throughput = T4) -> list[dict]:
    """The stages of one experiment of ``profile`` on ``model``: for each its ``work``, the ``seconds_each`` one
    step of that work (an image, a QDrop step) takes on ``speed``'s GPU and the ``minutes`` in all (None where
    ``speed`` has no figure for ``model``).

    ``n_images``: calibration images (generated when ``generated``); ``iters``: QDrop steps per unit. The
    evaluation counts two passes: the full-precision one is reused by later experiments on the same model.
    """
    per_image = profile["steps"] * speed.seconds_per_image_step + speed.seconds_per_image_decode
    per_step = speed.qdrop_seconds_per_step.get(model)
    n_eval = profile.get("eval_limit") or 50_000  # ImageNet's validation set
    stages = [("set-up", "downloads and loading", 1, speed.setup_seconds),
              ("QDrop", f"{iters} steps of every unit", iters, per_step),
              ("evaluation", f"2 passes over {n_eval} val images", 2 * n_eval, 1 / speed.eval_images_per_second)]
    if generated:
        stages.insert(1, ("synthesis", f"{n_images} images × {profile['steps']} steps at {profile['resolution']} px",
                          n_images, per_image))
    return [{"stage": stage, "work": work, "seconds_each": None if each is None else round(each, 3),
             "minutes": None if each is None else round(count * each / 60, 1)} for stage, work, count, each in stages]
