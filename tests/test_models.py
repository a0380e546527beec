from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from zooprobe.extract.features import extract_batches
from zooprobe.params.spec import PRE_LOGITS, ModelConfigError, ModelSpec
from zooprobe.zoo.checkpoints import load_checkpoint
from zooprobe.zoo.checks import check_architecture
from zooprobe.zoo.extractors import HookExtractor, Preprocessing
from zooprobe.zoo.factory import create_model
from zooprobe.zoo.pooling import pool

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
        check_architecture(ModelSpec.from_config("m", {"source": "timm", "arch": "resnet181"}))
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


# ----------------------------------------------------------------------------- token pooling
def _sequence_with_cls(n: int = 3, side: int = 4, dim: int = 5) -> torch.Tensor:
    """(n, 1 + side*side, dim) with a class token far from the patch tokens, so including it would show."""
    patches = torch.randn(n, side * side, dim, generator=torch.Generator().manual_seed(0))
    cls = torch.full((n, 1, dim), 100.0)
    return torch.cat([cls, patches], dim=1)


def test_avg_of_a_token_sequence_averages_the_patch_tokens_only():
    sequence = _sequence_with_cls()
    torch.testing.assert_close(pool(sequence, "avg", num_prefix_tokens=1), sequence[:, 1:].mean(dim=1))
    changed = sequence.clone()
    changed[:, 0] = -7.0
    torch.testing.assert_close(pool(changed, "avg", num_prefix_tokens=1), pool(sequence, "avg", num_prefix_tokens=1))


def test_avg2x2_of_a_token_sequence_pools_the_patch_grid_like_a_map():
    sequence = _sequence_with_cls(side=4, dim=5)
    grid = sequence[:, 1:].reshape(3, 4, 4, 5).permute(0, 3, 1, 2)  # (N, C, H, W), row-major patches
    pooled = pool(sequence, "avg2x2", num_prefix_tokens=1)
    assert pooled.shape == (3, 4 * 5)
    torch.testing.assert_close(pooled, pool(grid, "avg2x2"))
    # Channel 0's top-left cell is the mean of patches (0, 0), (0, 1), (1, 0), (1, 1).
    torch.testing.assert_close(pooled[:, 0], sequence[:, [1, 2, 5, 6], 0].mean(dim=1))
    with pytest.raises(ValueError, match="square grid"):
        pool(sequence[:, :-1], "avg2x2", num_prefix_tokens=1)
    with pytest.raises(ValueError, match="num_prefix_tokens"):
        pool(sequence, "avg", num_prefix_tokens=sequence.shape[1])


def _vit_tokens(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The last block's full token sequence of a timm ViT, computed by hand."""
    tokens = model.norm_pre(model._pos_embed(model.patch_embed(x)))
    return model.blocks(tokens)


def test_tiny_vit_has_a_cls_layer_and_pools_patch_tokens_only():
    extractor = create_model(ModelSpec(name="v", source="timm", arch="zp_vit_tiny"))
    names = extractor.layer_names
    assert names[-2:] == ["cls", PRE_LOGITS] and names[:-2] == ["blocks.0", "blocks.1", "blocks.2", "blocks.3"]
    assert extractor.token_pooling() == {"token_pooling": "patch_tokens", "model_prefix_tokens": 1,
                                         "sequence_prefix_tokens": 0, "cls_layer": "cls"}
    images = np.random.default_rng(0).integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8)
    ((avg, _),) = extract_batches(extractor, [images], layers=names, pooling="avg", device=torch.device("cpu"))
    ((avg2x2, _),) = extract_batches(extractor, [images], layers=names, pooling="avg2x2", device=torch.device("cpu"))
    with torch.inference_mode():
        tokens = _vit_tokens(extractor.model, extractor.preprocessing(torch.from_numpy(images)))
    np.testing.assert_allclose(avg["blocks.3"], tokens[:, 1:].mean(dim=1).numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(avg["cls"], tokens[:, 0].numpy(), rtol=1e-4, atol=1e-5)
    assert not np.allclose(avg["blocks.3"], tokens.mean(dim=1).numpy(), atol=1e-3)  # CLS left out
    assert avg2x2["blocks.3"].shape == (4, 4 * 96) and avg2x2["cls"].shape == (4, 96)
    grid = tokens[:, 1:].reshape(4, 8, 8, 96).permute(0, 3, 1, 2)
    np.testing.assert_allclose(avg2x2["blocks.3"], F.adaptive_avg_pool2d(grid, 2).flatten(1).numpy(),
                               rtol=1e-4, atol=1e-5)


def test_models_without_a_class_token_have_no_cls_layer():
    for arch in ("zp_mixer_tiny", "resnet10t"):
        extractor = create_model(ModelSpec(name="m", source="timm", arch=arch, input_size=32))
        assert "cls" not in extractor.layer_names and extractor.token_pooling()["cls_layer"] is None


def test_hooked_transformer_drops_its_class_token_from_pooling():
    from torchvision.models import VisionTransformer

    torch.manual_seed(0)
    model = VisionTransformer(image_size=32, patch_size=8, num_layers=1, num_heads=2, hidden_dim=16, mlp_dim=32,
                              num_classes=3)
    preprocessing = Preprocessing(input_size=32, mean=(0.5,) * 3, std=(0.5,) * 3)
    extractor = HookExtractor(model, preprocessing, ["encoder"], num_classes=3, num_prefix_tokens=1,
                              cls_from="encoder")
    assert extractor.layer_names == ["encoder", "cls"]
    images = np.random.default_rng(1).integers(0, 256, size=(2, 32, 32, 3), dtype=np.uint8)
    ((avg, _),) = extract_batches(extractor, [images], layers=["encoder", "cls"], pooling="avg",
                                  device=torch.device("cpu"))
    ((avg2x2, _),) = extract_batches(extractor, [images], layers=["encoder"], pooling="avg2x2",
                                     device=torch.device("cpu"))
    with torch.inference_mode():
        x = preprocessing(torch.from_numpy(images))
        tokens = model.encoder(torch.cat([model.class_token.expand(2, -1, -1), model._process_input(x)], dim=1))
    np.testing.assert_allclose(avg["encoder"], tokens[:, 1:].mean(dim=1).numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(avg["cls"], tokens[:, 0].numpy(), rtol=1e-4, atol=1e-5)
    assert avg2x2["encoder"].shape == (2, 4 * 16)


def test_layers_lists_every_layer_with_its_shape_and_pooled_width():
    from zooprobe.extract.layers import describe_layers, layers_table

    spec = ModelSpec(name="r", source="timm", arch="resnet10t", input_size=32)
    layers = describe_layers(spec)
    assert [layer.name for layer in layers] == create_model(spec).layer_names
    by_name = {layer.name: layer for layer in layers}
    assert by_name[PRE_LOGITS].shape == (512,) and by_name[PRE_LOGITS].width == 512
    for layer in layers[:-1]:  # maps: (C, H, W), pooled to C columns, or 4C with avg2x2
        assert len(layer.shape) == 3 and layer.width == layer.shape[0]
    quartered = {layer.name: layer.width for layer in describe_layers(spec, pooling="avg2x2")}
    assert all(quartered[layer.name] == 4 * layer.shape[0] for layer in layers[:-1])
    table = layers_table('{"source": "timm", "arch": "resnet10t", "input_size": 32}')
    assert table.splitlines()[0] == f"entry (timm resnet10t): {len(layers)} layers"
    assert any(line.split() == [PRE_LOGITS, "512", "512"] for line in table.splitlines())


def test_layers_looks_a_name_up_in_a_params_file_and_names_the_valid_ones(tmp_path):
    from zooprobe.extract.layers import model_entry

    params = tmp_path / "params.yaml"
    params.write_text("models:\n  r10: {source: timm, arch: resnet10t}\n  vit: {source: timm, arch: zp_vit_tiny}\n")
    assert model_entry("r10", params) == ("r10", {"source": "timm", "arch": "resnet10t"})
    with pytest.raises(ModelConfigError, match="no model 'r18'; valid models: r10, vit"):
        model_entry("r18", params)
    with pytest.raises(ModelConfigError, match="or a model name with --params"):
        model_entry("r10")
    with pytest.raises(ModelConfigError, match="not valid JSON"):
        model_entry('{"source": timm}')


def test_layers_command_prints_the_table(capsys):
    from zooprobe.cli.main import main

    main(["layers", '{"source": "timm", "arch": "zp_mixer_tiny"}', "--pooling", "avg"])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("entry (timm zp_mixer_tiny):") and out[1].split()[0] == "layer"
    with pytest.raises(SystemExit, match="valid models"):
        main(["layers", "nope", "--params", str(Path(__file__).parents[1] / "params.yaml")])
