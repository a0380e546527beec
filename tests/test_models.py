import numpy as np
import pytest
import torch

from zooprobe.extract import extract_batches
from zooprobe.models import (HookExtractor, ModelConfigError, ModelSpec, PRE_LOGITS, Preprocessing, create_model,
                             load_checkpoint, pool)

SMALL_ZOO = [("resnet10t", {}), ("zp_vit_tiny", {}), ("zp_mixer_tiny", {}), ("convnext_atto", {})]


@pytest.mark.parametrize("arch,kwargs", SMALL_ZOO)
def test_extractor_returns_one_matrix_per_layer(arch, kwargs):
    spec = ModelSpec(name="m", source="timm", arch=arch, arch_kwargs=kwargs, input_size=32)
    extractor = create_model(spec)
    assert extractor.layer_names[-1] == PRE_LOGITS and len(extractor.layer_names) >= 4
    images = np.random.default_rng(0).integers(0, 256, size=(5, 32, 32, 3), dtype=np.uint8)
    for pooling in ("avg", "avg2x2"):
        ((batch, head),) = extract_batches(extractor, [images], layers=extractor.layer_names, pooling=pooling,
                                           device=torch.device("cpu"), with_head=True)
        assert head.shape == (5,) and head.dtype == np.int64 and head.max() < extractor.num_classes
        assert list(batch) == extractor.layer_names
        for name, values in batch.items():
            assert values.ndim == 2 and values.shape[0] == 5 and values.dtype == np.float32
            assert np.isfinite(values).all()
        if pooling == "avg2x2":
            # 2x2 pooling keeps four cells per channel of a spatial map; pre-logits is a vector already.
            assert batch[extractor.layer_names[0]].shape[1] % 4 == 0


def test_random_init_is_deterministic_by_seed():
    first = create_model(ModelSpec(name="a", source="timm", arch="resnet10t", seed=1, input_size=32))
    again = create_model(ModelSpec(name="b", source="timm", arch="resnet10t", seed=1, input_size=32))
    other = create_model(ModelSpec(name="c", source="timm", arch="resnet10t", seed=2, input_size=32))
    assert first.weights_sha256() == again.weights_sha256() != other.weights_sha256()


def test_preprocessing_comes_from_the_model():
    vit = create_model(ModelSpec(name="v", source="timm", arch="zp_vit_tiny"))
    assert vit.preprocessing.input_size == 32 and vit.preprocessing.mean == (0.5, 0.5, 0.5)
    resnet = create_model(ModelSpec(name="r", source="timm", arch="resnet10t", input_size=48))
    assert resnet.preprocessing.input_size == 48
    x = resnet.preprocessing(torch.full((2, 20, 20, 3), 255, dtype=torch.uint8))
    assert x.shape == (2, 3, 48, 48)
    np.testing.assert_allclose(x[0, :, 0, 0].numpy(), (1 - np.array(resnet.preprocessing.mean))
                               / np.array(resnet.preprocessing.std), rtol=1e-5)


def test_pool_shapes():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    assert pool(x, "avg").shape == (2, 3)
    assert pool(x, "avg2x2").shape == (2, 12)
    torch.testing.assert_close(pool(x, "avg"), x.mean(dim=(2, 3)))
    with pytest.raises(ValueError, match="avg2x2"):
        pool(x, "max")


def test_hook_extractor_reads_named_modules():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.LazyLinear(2))
    prep = Preprocessing(input_size=8, mean=(0.5,) * 3, std=(0.5,) * 3)
    extractor = HookExtractor(net, prep, ["0", "3"])
    images = np.zeros((3, 8, 8, 3), dtype=np.uint8)
    ((batch, head),) = extract_batches(extractor, [images], layers=["0", "3"], pooling="avg",
                                       device=torch.device("cpu"))
    assert head is None
    assert batch["0"].shape == (3, 4) and batch["3"].shape == (3, 2)
    with pytest.raises(ModelConfigError, match="valid"):
        HookExtractor(net, prep, ["nope"])


def test_unknown_architecture_lists_valid_sources_and_suggests():
    with pytest.raises(ModelConfigError) as error:
        ModelSpec.from_config("m", {"source": "timm", "arch": "resnet181"})
    assert "timm, trained, checkpoint" in str(error.value) and "resnet18" in str(error.value)
    with pytest.raises(ModelConfigError, match="valid sources: timm, trained, checkpoint"):
        ModelSpec.from_config("m", {"source": "hub", "arch": "resnet18"})


def test_unknown_layer_lists_valid_layers():
    extractor = create_model(ModelSpec(name="m", source="timm", arch="resnet10t", input_size=32))
    with pytest.raises(ModelConfigError, match="layer4"):
        extractor.select_layers(["layer9"])
    assert extractor.select_layers(["pre_logits", "layer1"]) == ["layer1", "pre_logits"]


def test_checkpoint_round_trip_strips_module_prefix(tmp_path):
    spec = ModelSpec(name="m", source="checkpoint", arch="resnet10t", input_size=32,
                     arch_kwargs={"num_classes": 7}, checkpoint=str(tmp_path / "w.pt"))
    source = create_model(ModelSpec(name="s", source="timm", arch="resnet10t", input_size=32, seed=5,
                                    arch_kwargs={"num_classes": 7}))
    state = {f"module.{k}": v for k, v in source.model.state_dict().items()}
    torch.save({"state_dict": state, "best_prec1": 90.0}, tmp_path / "w.pt")
    loaded = create_model(spec)
    assert loaded.weights_sha256() == source.weights_sha256()
    _, extras = load_checkpoint(tmp_path / "w.pt")
    assert extras == {"best_prec1": 90.0}


class NotATensor:
    pass


def test_checkpoint_with_arbitrary_objects_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "payload": NotATensor()}, path)
    with pytest.raises(ModelConfigError, match="weights_only=True"):
        load_checkpoint(path)
