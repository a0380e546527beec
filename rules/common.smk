# Targets and per-rule inputs built from the validated config. No rule lives here.
import json
import sys
from pathlib import Path

# Import the library from this checkout, here and in every job, so the workflow also runs
# where zooprobe is not installed, e.g. inside a --use-conda env. The path goes into the shell
# prefix, not into commands or params, so that moving the checkout does not rerun jobs.
ZOOPROBE_SRC = str(Path(workflow.basedir) / "src")
sys.path.insert(0, ZOOPROBE_SRC)
# Braces are doubled twice: once for this f-string, once for Snakemake's formatting of the command.
shell.prefix(f"export PYTHONPATH='{ZOOPROBE_SRC}'${{{{PYTHONPATH:+:$PYTHONPATH}}}}; ")

from zooprobe.params.config import (  # noqa: E402
    ConfigError, alignment_kind, analysis_design, analysis_design_keys, check_config, expand_path, model_config_keys,
    model_entries, sweep_members)
from zooprobe.io.fetch import cached_sha256  # noqa: E402
from zooprobe.params.spec import ModelSpec  # noqa: E402

try:
    # A job (local subprocess, or on SLURM) parses this file again; the process that started it has
    # checked the params in full, so the job skips the checks that import torch and starts seconds sooner.
    in_job = workflow.remote_exec or workflow.subprocess_exec
    if in_job:
        MODEL_SPECS = check_config(config)
    else:
        from zooprobe.zoo.checks import check_zoo  # imports torch: only where the run is planned

        MODEL_SPECS = check_zoo(config)
except ConfigError as error:
    raise WorkflowError(f"invalid params: {error}") from None

DATASETS = list(config["datasets"])
MODELS = list(MODEL_SPECS)  # the models section, then the sweep's models
TASKS = config["probe"]["tasks"]
# Every probe setting but the task list reaches each probe job.
PROBE_SETTINGS = [f"probe.{key}" for key in config["probe"] if key != "tasks"]
ALIGN_BENCHMARKS = (config.get("align") or {}).get("benchmarks", {})
ALIGN_SETTINGS = [f"align.{key}" for key in config.get("align") or {} if key != "benchmarks"]
DENSE_DATASETS = (config.get("dense") or {}).get("datasets", [])
DENSE_SETTINGS = [f"dense.{key}" for key in config.get("dense") or {} if key not in ("datasets", "grid", "feature_dtype")]
ICN_COMPARE = (config.get("introspective") or {}).get("compare") or {}
ICN_PROBE = (config.get("introspective") or {}).get("probe") or {}
ICN_PROBE_SETTINGS = [f"introspective.probe.{key}" for key in ICN_PROBE if key != "tasks"]

# Rules that run where Snakemake runs, not as SLURM jobs: each takes seconds (a submission and a
# queue wait would cost more), and fetch_checkpoint needs the network, which compute nodes often
# lack. README "Running on SLURM" lists where every rule runs; a test checks the list.
localrules:
    all,
    fetch_checkpoint,
    icn_table,
    report,


wildcard_constraints:
    dataset="|".join(DATASETS),
    model="|".join(MODELS),
    task="|".join(TASKS),
    benchmark="|".join(ALIGN_BENCHMARKS) or "no-alignment-benchmarks",
    icn_arch="|".join(ICN_COMPARE.get("architectures", {})) or "no-icn-architectures",
    icn_seed=r"\d+",


def as_json(value):
    """Params reach the CLI as JSON; sorted keys keep the command (and its hash) stable."""
    return json.dumps(value, sort_keys=True)


# Checkpoint hashes computed when a run is planned, keyed by each file's size, mtime and ctime.
SHA256_CACHE = Path(".snakemake/zooprobe-sha256.json")

# How extraction runs (batch size, device, workers, layout). It reaches the command as a resource, not
# as a param: Snakemake reruns a job when its params change, and these do not change what it computes.
EXTRACT_EXECUTION = (config.get("execution") or {}).get("extract") or {}
SCIENCE_SECTIONS = [section for section in config if section != "execution"]
# Compact, so that Snakemake's job listing (resources: a=1, b=2) stays one comma-separated line.
EXTRACT_EXECUTION_JSON = json.dumps(EXTRACT_EXECUTION, sort_keys=True, separators=(",", ":"))


def from_config(*keys, derive=None):
    """A rule param read from the named config keys, e.g. ``from_config("extract")``.

    Keys are dotted paths into params.yaml and may hold wildcards, or be functions of the
    wildcards that return a list of keys (see ``model_keys``). With no ``derive``, the param is
    the one key's value as JSON; ``derive(wildcards)`` computes it from the keys instead.
    `zooprobe dvc-sync` lists exactly these keys as the stage's DVC params, and a test checks that
    a job's params change with nothing else, so Snakemake and DVC agree on what a job reads.
    """
    if derive is None and (len(keys) != 1 or callable(keys[0])):
        raise ValueError("from_config: give one key, or a derive function")

    def param(wildcards):
        if derive is not None:
            return derive(wildcards)
        return as_json(config_value(keys[0].format(**wildcards)))

    def config_keys_for(wildcards):
        found = []
        for key in keys:
            found += key(wildcards) if callable(key) else [key.format(**wildcards)]
        return found

    param.config_keys_for = config_keys_for
    return param


def model_keys(wildcards):
    """The params keys of a model's entry: models.<name>, or its architecture in the sweep."""
    return model_config_keys(config, wildcards.model)


def head_keys(wildcards):
    """The params keys that say which dataset a model's own head predicts: its entry under models
    (train_on, head_dataset). A sweep model's is its dataset, fixed by its name."""
    return [] if wildcards.model in sweep_members(config) else model_config_keys(config, wildcards.model)


def model_spec_json(wildcards):
    """A model's entry as its jobs receive it. A local checkpoint without a pinned checkpoint_sha256 gets
    its file's sha256 (cached by size, mtime and ctime), so replacing the file reruns the jobs that read
    it even when the new file is older (cp -p, rsync, untar), and the job checks the file against it."""
    entry = dict(model_entries(config)[wildcards.model])
    if entry.get("checkpoint") and not entry.get("checkpoint_sha256"):
        entry["checkpoint_sha256"] = cached_sha256(expand_path(entry["checkpoint"]), cache=SHA256_CACHE)
    return as_json(entry)


def config_value(dotted_key):
    value = config
    for part in dotted_key.split("."):
        value = value[part]
    return value


def dataset_inputs(wildcards):
    """Files a dataset is built from: the set a shift or corruption copies, or an image folder."""
    entry = config["datasets"][wildcards.dataset]
    if entry["source"] in ("shift", "corrupt"):
        return {"base": f"data/datasets/{entry['of']}.h5"}
    if entry["source"] == "imagefolder":
        root = expand_path(entry["root"])
        # The order CSV stands for the folder's content; without one, the folder itself.
        return {"files": f"{root}/{entry['order_csv']}" if "order_csv" in entry else root}
    return {}


def model_weights(wildcards):
    """The weights file a model needs: its trained checkpoint, a local file, a download, or none."""
    spec = MODEL_SPECS[wildcards.model]
    if spec.source == "trained":
        return f"data/models/{wildcards.model}.pt"
    if spec.checkpoint:
        return expand_path(spec.checkpoint)
    if spec.checkpoint_url:
        return f"data/weights/{wildcards.model}.pt"
    return []


def feature_file(model, dataset):
    return f"data/features/{model}/{dataset}.h5"


def probe_results():
    return expand("results/probes/{model}/{task}.h5", model=MODELS, task=TASKS)


def align_settings(wildcards):
    return as_json({key.split(".", 1)[1]: config_value(key) for key in ALIGN_SETTINGS})


def aligned_models(benchmark):
    """Models scored on an alignment benchmark: all of them on stimuli; on human labels, those whose
    own head predicts that dataset's classes."""
    dataset = ALIGN_BENCHMARKS[benchmark]["dataset"]
    if alignment_kind(config["datasets"][dataset]) != "labels":
        return MODELS
    return [model for model in MODELS if model_spec(model).head_label_space == dataset]


def alignment_results():
    results = [f"results/alignment/{model}/{benchmark}.json" for benchmark in ALIGN_BENCHMARKS
               for model in aligned_models(benchmark)]
    return results + [f"results/alignment/tables/{benchmark}.json" for benchmark, entry in ALIGN_BENCHMARKS.items()
                      if "tables" in entry]


def dense_settings(wildcards):
    return as_json({key.split(".", 1)[1]: config_value(key) for key in DENSE_SETTINGS})


def dense_results():
    return expand("results/dense/{model}/{dataset}.json", model=MODELS, dataset=DENSE_DATASETS)


def align_mem_mb(wildcards, input, attempt):
    # Features of every layer, plus a few N x N similarity matrices.
    return int((1500 + 4 * input.size_mb) * attempt)


def all_targets():
    return ["results/report/index.html", "results/scores.csv", *icn_table_files()]


def ood_feature_args(wildcards):
    """NAME=PATH of the features of each OOD set of a probe task, one shell word each (quoted with :q)."""
    return [f"{name}={feature_file(wildcards.model, name)}" for name in TASKS[wildcards.task].get("ood", [])]


def transfer_feature_args(wildcards):
    """NAME=PATH of the features of each transfer set of a probe task (probes trained on the set itself)."""
    return [f"{name}={feature_file(wildcards.model, name)}" for name in TASKS[wildcards.task].get("transfer", [])]


# ----------------------------------------------------------------------------- introspective classification
def icn_compare_results():
    return expand("results/introspective/compare/{dataset}/{icn_arch}-s{icn_seed}.json",
                  dataset=ICN_COMPARE.get("datasets", {}), icn_arch=ICN_COMPARE.get("architectures", {}),
                  icn_seed=ICN_COMPARE.get("seeds", []))


def icn_grid_files():
    """The sample grids the report shows: each dataset and architecture's first seed."""
    seeds = ICN_COMPARE.get("seeds", [])[:1]
    return expand("results/introspective/compare/{dataset}/{icn_arch}-s{icn_seed}.npz",
                  dataset=ICN_COMPARE.get("datasets", {}), icn_arch=ICN_COMPARE.get("architectures", {}),
                  icn_seed=seeds)


def icn_probe_results():
    return expand("results/introspective/probe/{model}/{task}.json", model=MODELS, task=ICN_PROBE.get("tasks", []))


def icn_table_files():
    return ["results/introspective/scores.csv", "results/introspective/summary.json"] if ICN_COMPARE or ICN_PROBE else []


def icn_probe_settings(wildcards):
    return as_json({key.split(".", 2)[2]: config_value(key) for key in ICN_PROBE_SETTINGS})


def icn_model_keys(wildcards):
    """An introspective model's training also reads the sampler and rounds."""
    return ["introspective.model"] if model_spec(wildcards.model).introspective else []


def icn_model_flag(wildcards):
    if not model_spec(wildcards.model).introspective:
        return []
    return ["--introspective", as_json(config["introspective"]["model"])]


def model_spec(name):
    """The model's spec, built from the config as it is now (params derived from it stay in step).

    check_config above has already checked its architecture."""
    return ModelSpec.from_config(name, model_entries(config)[name])


def score_head_flag(model, task):
    """Score the model's own head too when it predicts the task's label space."""
    return ["--score-head"] if model_spec(model).head_label_space == TASKS[task]["id"] else []


def probe_settings(wildcards):
    return as_json({key.split(".", 1)[1]: config_value(key) for key in PROBE_SETTINGS})


# ----------------------------------------------------------------------------- job sizes
# Rough per-job estimates from the params, for local resource limits and for schedulers
# (profiles/slurm). Each scales with `attempt`, so a retried job asks for more.
def gpu_wanted(device):
    """1 for a job that will run on a GPU: device cuda, or auto where this host sees one."""
    import torch

    return int(device == "cuda" or (device == "auto" and torch.cuda.is_available()))


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


def icn_mem_mb(wildcards, input, attempt):
    # Two trainings in turn (baseline, then ICN), each as a train job, plus the pseudo-negatives.
    batch = config["train"]["batch_size"]
    side = config["introspective"]["compare"]["architectures"][wildcards.icn_arch].get("input_size", 224)
    return int((2000 + 3 * input.size_mb + batch_mb(batch, side, 64)) * attempt)


def icn_runtime(wildcards, input, attempt):
    # Two trainings, sampling rounds and FGSM on the test split: about 3 train jobs.
    return int((10 + 3 * config["train"]["epochs"] * input.size_mb / 5) * attempt)
