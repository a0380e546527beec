# Job sizes. Rough per-job estimates from the params, for local resource limits and for schedulers
# (profiles/slurm). Each scales with `attempt`, so a retried job asks for more. No rule lives here.
import json

# How extraction runs (batch size, device, workers, layout). It reaches the command as a resource, not
# as a param: Snakemake reruns a job when its params change, and these do not change what it computes.
EXTRACT_EXECUTION = (config.get("execution") or {}).get("extract") or {}
# Compact, so that Snakemake's job listing (resources: a=1, b=2) stays one comma-separated line.
EXTRACT_EXECUTION_JSON = json.dumps(EXTRACT_EXECUTION, sort_keys=True, separators=(",", ":"))

# The `gpu` resource of the rules that run a model (extract, extract_spatial: execution.extract.device;
# train, icn_compare: train.device). Decided without importing torch, since every job parses this
# file again: cuda wants a GPU; auto wants one when the host shows one (nvidia driver, nvidia-smi,
# CUDA_VISIBLE_DEVICES); cpu never. profiles/default runs one GPU job at a time; profiles/slurm
# sends these rules to the GPU partition.
EXTRACT_GPU = ruleparams.gpu_wanted(EXTRACT_EXECUTION.get("device", "auto"))
TRAIN_GPU = ruleparams.gpu_wanted(config["train"].get("device", "auto"))


def input_side(model):
    """Side length the model sees (its own default when the params set none)."""
    return model_spec(model).input_size or 224


def batch_mb(batch_size, side, floats_per_pixel):
    """Megabytes of float32 activations for one batch, counted in input-sized float planes."""
    return batch_size * side * side * floats_per_pixel * 4 / 1e6


def extract_mem_mb(wildcards, attempt):
    # Framework and model, plus one batch's activations (no gradients; about 16 input planes).
    batch = EXTRACT_EXECUTION.get("batch_size", 256)
    return int((2000 + batch_mb(batch, input_side(wildcards.model), 16)) * attempt)


def extract_runtime(wildcards, input, attempt):
    # Minutes: the image file's size stands for N x pixels; 100 MB of uint8 per CPU minute is ample.
    return int((10 + input.size_mb / 100) * attempt)


def train_mem_mb(wildcards, input, attempt):
    # The whole training set is read into memory, plus activations kept for the backward pass.
    batch = config["train"]["batch_size"]
    return int((2000 + 2 * input.size_mb + batch_mb(batch, input_side(wildcards.model), 64)) * attempt)


def train_runtime(wildcards, input, attempt):
    return int((10 + config["train"]["epochs"] * input.size_mb / 5) * attempt)


def probe_mem_mb(wildcards, input, attempt):
    # Every feature file of the task is read into memory, plus the solver's copies.
    return int((1000 + 3 * input.size_mb) * attempt)


def probe_runtime(wildcards, input, attempt):
    return int((10 + input.size_mb / 20) * attempt)


def align_mem_mb(wildcards, input, attempt):
    # Features of every layer, plus a few N x N similarity matrices.
    return int((1500 + 4 * input.size_mb) * attempt)


def icn_mem_mb(wildcards, input, attempt):
    # Two trainings in turn (baseline, then ICN), each as a train job, plus the pseudo-negatives.
    batch = config["train"]["batch_size"]
    side = config["introspective"]["compare"]["architectures"][wildcards.icn_arch].get("input_size", 224)
    return int((2000 + 3 * input.size_mb + batch_mb(batch, side, 64)) * attempt)


def icn_runtime(wildcards, input, attempt):
    # Two trainings, sampling rounds and FGSM on the test split: about 3 train jobs.
    return int((10 + 3 * config["train"]["epochs"] * input.size_mb / 5) * attempt)
