"""MixQ: data-free post-training quantization with mixup-class prompted diffusion calibration data.

The public API, re-exported by name. Submodules hold the rest.
"""

from .analysis import diversity_metrics as diversity_metrics
from .analysis import frechet_distance as frechet_distance
from .analysis import score_synthetic as score_synthetic
from .data import eval_dataset as eval_dataset
from .data import fashion_mnist as fashion_mnist
from .data import load_source as load_source
from .data import make_loader as make_loader
from .data import subset as subset
from .errors import MixQError as MixQError
from .experiment import ExperimentConfig as ExperimentConfig
from .experiment import ablation_configs as ablation_configs
from .experiment import grid_configs as grid_configs
from .experiment import run as run
from .experiment import run_fp_evaluation as run_fp_evaluation
from .experiment import run_grid as run_grid
from .generator import train_generator as train_generator
from .models import create_mini_model as create_mini_model
from .models import evaluate as evaluate
from .models import load_mini_model as load_mini_model
from .models import load_model as load_model
from .profiles import load_profile as load_profile
from .prompts import PromptConfig as PromptConfig
from .prompts import load_vocabulary as load_vocabulary
from .prompts import make_prompts as make_prompts
from .quant import QuantConfig as QuantConfig
from .quant import quantize as quantize
from .results import load_records as load_records
from .synthesis import load_pipeline as load_pipeline
from .synthesis import synthesize as synthesize
from .synthesis import synthesize_set as synthesize_set

__version__ = "0.1.0"
