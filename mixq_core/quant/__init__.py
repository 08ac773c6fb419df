"""Low-bit post-training quantization: quantizers, AdaRound, BRECQ and QDrop block reconstruction.

``quantize(model, QuantConfig(w_bits=2, a_bits=4, method="qdrop"), calib_loader)`` returns the
fake-quantized model and a trace of the reconstruction (losses, gradient norms, held-out probes).
The engine takes modules and batches of image tensors, nothing else: where the images come from
(real data, noise, a synthetic set) is :mod:`mixq_core.data`'s and :mod:`mixq_core.experiment`'s business.
"""

from .calibrate import calibrate_activations as calibrate_activations
from .calibrate import calibrate_weights as calibrate_weights
from .modules import FoldingError as FoldingError
from .modules import NothingToQuantizeError as NothingToQuantizeError
from .modules import QuantAttention as QuantAttention
from .modules import QuantBlock as QuantBlock
from .modules import QuantLayer as QuantLayer
from .modules import QuantWindowAttention as QuantWindowAttention
from .modules import block_types as block_types
from .modules import fold_batchnorm as fold_batchnorm
from .modules import register_block as register_block
from .modules import set_quant_state as set_quant_state
from .modules import wrap_model as wrap_model
from .probes import QuantTrace as QuantTrace
from .probes import ReconstructionError as ReconstructionError
from .probes import UnitTrace as UnitTrace
from .quantizers import RANGE_INITS as RANGE_INITS
from .quantizers import AdaRound as AdaRound
from .quantizers import BetaSchedule as BetaSchedule
from .quantizers import UniformQuantizer as UniformQuantizer
from .quantizers import fake_quantize as fake_quantize
from .quantizers import scale_and_zero_point as scale_and_zero_point
from .reconstruct import ENGINE_VERSION as ENGINE_VERSION
from .reconstruct import METHODS as METHODS
from .reconstruct import QuantConfig as QuantConfig
from .reconstruct import Recipe as Recipe
from .reconstruct import find_units as find_units
from .reconstruct import prepare as prepare
from .reconstruct import quantize as quantize
from .reconstruct import register_method as register_method
from .resume import ResumeError as ResumeError
from .resume import check_resume_dir as check_resume_dir

__all__ = [
    "AdaRound", "BetaSchedule", "ENGINE_VERSION", "FoldingError", "METHODS", "NothingToQuantizeError",
    "QuantAttention", "QuantBlock", "QuantConfig", "QuantLayer", "QuantTrace", "QuantWindowAttention", "RANGE_INITS",
    "Recipe", "ReconstructionError", "ResumeError", "UniformQuantizer", "UnitTrace", "block_types",
    "calibrate_activations", "calibrate_weights", "check_resume_dir", "fake_quantize",
    "find_units", "fold_batchnorm", "prepare", "quantize", "register_block", "register_method",
    "scale_and_zero_point", "set_quant_state", "wrap_model",
]
