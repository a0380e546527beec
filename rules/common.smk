# Targets, per-rule inputs and params built from the validated config. No rule lives here.
import shlex
import sys
from pathlib import Path

# Import the library from this checkout, here and in every job, so the workflow also runs
# where zooprobe is not installed, e.g. inside a --use-conda env. The path goes into the shell
# prefix, not into commands or params, so that moving the checkout does not rerun jobs.
ZOOPROBE_SRC = str(Path(workflow.basedir) / "src")
sys.path.insert(0, ZOOPROBE_SRC)
# Braces are doubled twice: once for this f-string, once for Snakemake's formatting of the command.
shell.prefix(f"export PYTHONPATH={shlex.quote(ZOOPROBE_SRC)}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; ")

from zooprobe.params.config import (  # noqa: E402
    ConfigError, alignment_kind, analysis_design, analysis_design_keys, check_config, expand_path, model_config_keys,
    model_entries, sweep_members)
from zooprobe.io.fetch import cached_sha256  # noqa: E402
from zooprobe.params.spec import ModelSpec  # noqa: E402
from zooprobe.workflow import ruleparams  # noqa: E402
from zooprobe.workflow.ruleparams import as_json  # noqa: E402

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
ALIGN_BENCHMARKS = (config.get("align") or {}).get("benchmarks", {})
DENSE_DATASETS = (config.get("dense") or {}).get("datasets", [])
ICN_COMPARE = (config.get("introspective") or {}).get("compare") or {}
ICN_PROBE = (config.get("introspective") or {}).get("probe") or {}

# Each stage's settings: its section but the keys that reach the job as other params (or not at all).
PROBE_SETTINGS = ruleparams.section_settings(config, "probe", skip=("tasks",))
ALIGN_SETTINGS = ruleparams.section_settings(config, "align", skip=("benchmarks",))
DENSE_SETTINGS = ruleparams.section_settings(config, "dense", skip=("datasets", "grid", "feature_dtype"))
ICN_PROBE_SETTINGS = ruleparams.section_settings(config, "introspective.probe", skip=("tasks",))

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


# Checkpoint hashes computed when a run is planned, keyed by each file's size, mtime and ctime.
SHA256_CACHE = Path(".snakemake/zooprobe-sha256.json")

# Every section but execution: how the jobs ran is not part of what the report reports.
SCIENCE_SECTIONS = [section for section in config if section != "execution"]


def from_config(*keys, derive=None):
    """A rule param read from the named config keys, e.g. ``from_config("extract")``.

    See zooprobe.workflow.ruleparams.from_config: keys are dotted paths into params.yaml (with
    wildcards) or functions of the wildcards returning keys; `zooprobe dvc-sync` lists exactly these
    keys as the stage's DVC params.
    """
    return ruleparams.from_config(config, *keys, derive=derive)


def benchmark_file(rule_name, pattern):
    """Where Snakemake writes a job's time and memory: logs/benchmarks/<rule>/<pattern>.tsv.

    Under logs/, like the logs: timings differ from run to run, so they are not results, and DVC
    does not track them (dvc-sync lists a job's outputs only)."""
    return f"logs/benchmarks/{rule_name}/{pattern}.tsv"


# ----------------------------------------------------------------------------- targets
def all_targets():
    return ["results/report/index.html", "results/scores.csv", *icn_table_files()]


def feature_file(model, dataset):
    return f"data/features/{model}/{dataset}.h5"


def dataset_file(name):
    return f"data/datasets/{name}.h5"


def probe_results():
    return expand("results/probes/{model}/{task}.h5", model=MODELS, task=TASKS)


def cka_results():
    return expand("results/analysis/cka/{task}.json", task=TASKS)


def task_sets(task):
    """A probe task's ID set, then its OOD sets: the sets its scores (and its CKA) are read on."""
    return list(dict.fromkeys([TASKS[task]["id"], *TASKS[task].get("ood", [])]))


# The cka stage takes the models in name order: its matrices, and its command, then do not depend on the
# order the params list the models in (a params file rewritten with sorted keys reruns nothing).
def cka_probe_files(wildcards):
    return [f"results/probes/{model}/{wildcards.task}.h5" for model in sorted(MODELS)]


def cka_probe_args(wildcards):
    """MODEL=PATH of every model's probe result on a task."""
    return [f"{model}=results/probes/{model}/{wildcards.task}.h5" for model in sorted(MODELS)]


def cka_feature_files(wildcards):
    return [feature_file(model, name) for model in sorted(MODELS) for name in task_sets(wildcards.task)]


def cka_feature_args(wildcards):
    """MODEL:SET=PATH of every model's features on each set of a task, one shell word each (quoted with :q)."""
    return [f"{model}:{name}={feature_file(model, name)}" for model in sorted(MODELS)
            for name in task_sets(wildcards.task)]


def cka_estimator_keys(wildcards):
    """analyse.cka_estimator where the params set it (else the biased estimator, and no key is read)."""
    return ["analyse.cka_estimator"] if "cka_estimator" in config["analyse"] else []


def cka_estimator(wildcards):
    return config["analyse"].get("cka_estimator", "biased")


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


def dense_results():
    return expand("results/dense/{model}/{dataset}.json", model=MODELS, dataset=DENSE_DATASETS)


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


# ----------------------------------------------------------------------------- input functions
def dataset_inputs(wildcards):
    """Files a dataset is built from: the set a shift or corruption copies, or an image folder."""
    entry = config["datasets"][wildcards.dataset]
    if entry["source"] in ("shift", "corrupt"):
        return {"base": dataset_file(entry["of"])}
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


def training_set(wildcards):
    """The dataset file a trained model learns from (its entry's train_on)."""
    return dataset_file(MODEL_SPECS[wildcards.model].train_on)


def benchmark_dataset(wildcards):
    """The dataset file of an alignment benchmark's stimuli."""
    return dataset_file(ALIGN_BENCHMARKS[wildcards.benchmark]["dataset"])


def benchmark_features(wildcards):
    """A model's features on an alignment benchmark's stimuli."""
    return feature_file(wildcards.model, ALIGN_BENCHMARKS[wildcards.benchmark]["dataset"])


def benchmark_tables(wildcards):
    """The folder of published prediction tables an alignment benchmark compares."""
    return expand_path(ALIGN_BENCHMARKS[wildcards.benchmark]["tables"])


def task_id_name(wildcards):
    """The in-distribution dataset of a probe task."""
    return TASKS[wildcards.task]["id"]


def task_probe_kind(wildcards):
    """The probe kind of a probe task: linear (the torch probe), sklearn (scikit-learn, for comparison), knn or head."""
    return TASKS[wildcards.task]["probe"]


def task_id_features(wildcards):
    return feature_file(wildcards.model, task_id_name(wildcards))


def task_ood_features(wildcards):
    return [feature_file(wildcards.model, name) for name in TASKS[wildcards.task].get("ood", [])]


def task_transfer_features(wildcards):
    return [feature_file(wildcards.model, name) for name in TASKS[wildcards.task].get("transfer", [])]


def icn_ood_datasets(wildcards):
    """The OOD dataset files an ICN comparison scores on."""
    return [dataset_file(name) for name in ICN_COMPARE["datasets"][wildcards.dataset].get("ood", [])]


# ----------------------------------------------------------------------------- params
def model_keys(wildcards):
    """The params keys of a model's entry: models.<name>, or its architecture in the sweep."""
    return model_config_keys(config, wildcards.model)


def head_keys(wildcards):
    """The params keys that say which dataset a model's own head predicts: its entry under models
    (train_on, head_dataset). A sweep model's is its dataset, fixed by its name."""
    return [] if wildcards.model in sweep_members(config) else model_config_keys(config, wildcards.model)


def model_spec(name):
    """The model's spec, built from the config as it is now (params derived from it stay in step).

    check_config above has already checked its architecture."""
    return ModelSpec.from_config(name, model_entries(config)[name])


def model_spec_json(wildcards):
    """A model's entry as its jobs receive it. A local checkpoint without a pinned checkpoint_sha256 gets
    its file's sha256 (cached by size, mtime and ctime), so replacing the file reruns the jobs that read
    it even when the new file is older (cp -p, rsync, untar), and the job checks the file against it."""
    entry = dict(model_entries(config)[wildcards.model])
    if entry.get("checkpoint") and not entry.get("checkpoint_sha256"):
        entry["checkpoint_sha256"] = cached_sha256(expand_path(entry["checkpoint"]), cache=SHA256_CACHE)
    return as_json(entry)


def checkpoint_url(wildcards):
    return model_spec(wildcards.model).checkpoint_url


def checkpoint_sha256(wildcards):
    return model_spec(wildcards.model).checkpoint_sha256


def weights_flag(wildcards, input):
    """--weights FILE when the model has a weights file, else nothing."""
    return ["--weights", input.weights] if input.weights else []


def base_flag(wildcards, input):
    """--base FILE for a dataset copied from another (shift, corrupt), else nothing."""
    return ["--base", input.base] if "base" in input.keys() else []


def download_dir_flag(wildcards):
    return ["--download-dir", f"data/downloads/{wildcards.dataset}"]



def ood_feature_args(wildcards):
    """NAME=PATH of the features of each OOD set of a probe task, one shell word each (quoted with :q)."""
    return [f"{name}={feature_file(wildcards.model, name)}" for name in TASKS[wildcards.task].get("ood", [])]


def transfer_feature_args(wildcards):
    """NAME=PATH of the features of each transfer set of a probe task (probes trained on the set itself)."""
    return [f"{name}={feature_file(wildcards.model, name)}" for name in TASKS[wildcards.task].get("transfer", [])]


def icn_ood_args(wildcards):
    """NAME=PATH of each OOD dataset of an ICN comparison."""
    return [f"{name}={dataset_file(name)}" for name in ICN_COMPARE["datasets"][wildcards.dataset].get("ood", [])]


def score_head_flag(wildcards):
    """--score-head: score the model's own head too when it predicts the task's label space."""
    return ["--score-head"] if model_spec(wildcards.model).head_label_space == TASKS[wildcards.task]["id"] else []


def published_flag(wildcards):
    """--published JSON: the published-table row a model entry names (published: {table, name, img_size})."""
    if wildcards.model in sweep_members(config):
        return []
    published = model_entries(config)[wildcards.model].get("published")
    return ["--published", as_json(published)] if published else []


def icn_model_keys(wildcards):
    """An introspective model's training also reads the sampler and rounds."""
    return ["introspective.model"] if model_spec(wildcards.model).introspective else []


def icn_model_flag(wildcards):
    if not model_spec(wildcards.model).introspective:
        return []
    return ["--introspective", as_json(config["introspective"]["model"])]


def analysis_design_json(wildcards):
    return as_json(analysis_design(config))


def analysis_design_config_keys(wildcards):
    return analysis_design_keys(config)


def science_config_json(wildcards):
    return as_json({section: config[section] for section in SCIENCE_SECTIONS})


def spatial_flags(wildcards):
    """--spatial-grid and --feature-dtype of extract_spatial: the dense section's grid and storage type."""
    return ["--spatial-grid", as_json(config["dense"]["grid"]), "--feature-dtype", config["dense"]["feature_dtype"]]


def rule_threads(rule_name):
    """CPU threads of a rule's jobs: execution.threads.<rule> (schema-checked), else 1."""
    return int(((config.get("execution") or {}).get("threads") or {}).get(rule_name, 1))
