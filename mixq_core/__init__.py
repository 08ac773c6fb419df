"""MixQ: data-free post-training quantization with mixup-class prompted diffusion calibration data."""
