"""MixQ: data-free post-training quantization with mixup-class prompted diffusion calibration data.

The public API, re-exported by name. Submodules hold the rest.
"""

from .data import eval_dataset as eval_dataset
from .data import fashion_mnist as fashion_mnist
from .data import load_source as load_source
from .data import make_loader as make_loader
from .data import subset as subset
from .errors import MixQError as MixQError
from .experiment import run_fp_evaluation as run_fp_evaluation
from .models import create_mini_model as create_mini_model
from .models import evaluate as evaluate
from .models import load_mini_model as load_mini_model
from .models import load_model as load_model
from .profiles import load_profile as load_profile
from .results import load_records as load_records

__version__ = "0.1.0"
