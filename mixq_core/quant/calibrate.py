"""Observer calibration: the initial step and zero point of every quantizer.

Weights are calibrated from the weights alone. Activations are calibrated in one forward pass over
a batch of calibration images (256 by default). By default that pass runs the *float* model: every
weight and activation quantizer is off, and each activation quantizer sets its range from the float
values that reach it. This is what QDrop's ``main_imagenet.py`` does
(``enable_calibration_woquantization(model, 'act_fake_quant')`` on 256 images: observers on, all fake
quantization off). ``on_float=False`` keeps engine 1's pass through the fake-quantized model instead,
where a quantizer downstream sees the quantization error of everything upstream. This is all that
round-to-nearest (``method="rtn"``) does.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from .modules import activation_quantizers, quant_layers, set_quant_state


@torch.no_grad()
def calibrate_weights(model: nn.Module) -> None:
    """Initialise each layer's per-channel weight quantizer from its (folded) float weight."""
    for layer in quant_layers(model):
        layer.weight_quantizer.initialize(layer.weight)


@torch.no_grad()
def calibrate_activations(model: nn.Module, images: torch.Tensor, on_float: bool = True) -> None:
    """Initialise every activation quantizer in one forward pass over ``images``.

    ``on_float`` (default, QDrop's way): the pass runs with all fake quantization off, so each range is
    found on the float model's activations. Otherwise weights are quantized and each quantizer
    quantizes as soon as its range is set. Quantizers that the forward pass does not reach stay
    uninitialised (they pass values through); a warning names how many.
    """
    quantizers = activation_quantizers(model)
    for quantizer in quantizers:
        quantizer.initialized = False
        quantizer.calibrating = True
    if on_float:
        set_quant_state(model, weights=False, activations=False)
    try:
        model(images)
    finally:
        set_quant_state(model, weights=True, activations=True)
    unreached = [q for q in quantizers if not q.initialized]
    for quantizer in unreached:
        quantizer.calibrating = False
    if unreached:
        warnings.warn(f"{len(unreached)} activation quantizers were not reached by the forward pass and stay "
                      "in float", stacklevel=2)
