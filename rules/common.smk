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

from zooprobe.config import ConfigError, check_config, expand_path  # noqa: E402

try:
    MODEL_SPECS = check_config(config)
except ConfigError as error:
    raise WorkflowError(f"invalid params: {error}") from None

DATASETS = list(config["datasets"])
MODELS = list(config["models"])
TASKS = config["probe"]["tasks"]


wildcard_constraints:
    dataset="|".join(DATASETS),
    model="|".join(MODELS),
    task="|".join(TASKS),


def as_json(value):
    """Params reach the CLI as JSON; sorted keys keep the command (and its hash) stable."""
    return json.dumps(value, sort_keys=True)


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


def all_targets():
    return ["results/report/index.html", "results/scores.csv"]
