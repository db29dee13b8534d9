"""Style transfer in the workers: losses against numpy, the network's switches, the loss net's weights and
a resumed trial against an uninterrupted one."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from workers.style import losses
from workers.style.network import TransformerNet, build_transformer, parse_variant, valid_variants
from workers.style.perceptual import PerceptualNet, PerceptualNetError, load_weights
from workers.style.spec import StyleTrialSpec
from workers.style.trial import run_style_trial

CONTENT = "stylized_shapes[n_per_class=4,image_size=16]"


def numpy_gram(features: np.ndarray) -> np.ndarray:
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w).astype(np.float64)
    return np.einsum("nip,njp->nij", flat, flat) / (c * h * w)


def test_gram_matrix_and_losses_match_numpy():
    rng = np.random.default_rng(0)
    output = [rng.normal(size=(2, c, s, s)).astype(np.float32) for c, s in ((4, 8), (6, 4), (8, 2), (8, 1))]
    content = [rng.normal(size=a.shape).astype(np.float32) for a in output]
    style = [rng.normal(size=(1, *a.shape[1:])).astype(np.float32) for a in output]
    as_torch = [torch.from_numpy(a) for a in output]
    np.testing.assert_allclose(losses.gram_matrix(as_torch[0]).numpy(), numpy_gram(output[0]), rtol=1e-5)

    expected_content = 1e5 * np.mean((output[1].astype(np.float64) - content[1]) ** 2)  # relu2_2
    got_content = losses.content_loss(as_torch, [torch.from_numpy(a) for a in content], 1e5).item()
    assert got_content == pytest.approx(expected_content, rel=1e-5)

    style_grams = [torch.from_numpy(numpy_gram(s).astype(np.float32)) for s in style]
    expected_style = 1e10 * sum(np.mean((numpy_gram(o) - numpy_gram(s)) ** 2)
                                for o, s in zip(output, style, strict=True))
    assert losses.style_loss(as_torch, style_grams, 1e10).item() == pytest.approx(expected_style, rel=1e-4)


def test_normalize_batch_matches_numpy():
    images = np.random.default_rng(1).uniform(0, 255, size=(2, 3, 4, 4)).astype(np.float32)
    mean, std = np.array(losses.IMAGENET_MEAN)[:, None, None], np.array(losses.IMAGENET_STD)[:, None, None]
    np.testing.assert_allclose(losses.normalize_batch(torch.from_numpy(images)).numpy(),
                               (images / 255.0 - mean) / std, rtol=1e-5, atol=1e-6)


def test_variants_norms_and_placements():
    from srm_models import SRM

    assert valid_variants()[:2] == ["bn", "in"] and {"bn+se", "bn+srm", "bn+cbam", "bn+ge"} <= set(valid_variants())
    assert parse_variant("bn+srm") == ("bn", "srm") and parse_variant("in") == ("in", None)
    for bad in ("gn", "bn+", "bn+none", "in+nothing"):
        with pytest.raises(ValueError, match="valid: bn, in"):
            parse_variant(bad)
    bn, instance = build_transformer("bn"), build_transformer("in")
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in bn.modules()) == 15
    assert sum(isinstance(m, torch.nn.InstanceNorm2d) and m.affine for m in instance.modules()) == 15
    residual, everywhere = TransformerNet("bn", "srm"), TransformerNet("bn", "srm", "all_norms")
    assert sum(isinstance(m, SRM) for m in residual.modules()) == 5  # one per residual block
    assert sum(isinstance(m, SRM) for m in everywhere.modules()) == 15  # one after every normalization
    image = torch.rand(2, 3, 16, 16) * 255
    assert residual(image).shape == everywhere(image).shape == (2, 3, 16, 16)
    from srm_models import GE

    gathered = build_transformer("bn+ge", "all_norms", image_size=16)  # GE-θ is built for each map's size
    assert sum(isinstance(m, GE) for m in gathered.modules()) == 15 and gathered(image).shape == image.shape
    with pytest.raises(ValueError, match="needs the image size"):
        build_transformer("bn+ge")


def test_vgg16_weights_are_checked_and_loaded(tmp_path):
    from torchvision.models import vgg16

    reference = vgg16(weights=None)
    torch.save(reference.state_dict(), tmp_path / "vgg16.pth")  # torchvision's full state dict
    net = PerceptualNet(load_weights(tmp_path / "vgg16.pth"))
    image = torch.randn(1, 3, 32, 32)
    expected = reference.features[:23](image)
    assert [f.shape[1] for f in net(image)] == [64, 128, 256, 512]
    torch.testing.assert_close(net(image)[-1], expected)
    torch.testing.assert_close(net(image)[1], reference.features[:9](image))
    torch.save({"features.0.weight": torch.zeros(3)}, tmp_path / "small.pth")
    with pytest.raises(PerceptualNetError, match="lacks VGG-16 tensors"):
        load_weights(tmp_path / "small.pth")
    # the random loss net is the same for every trial, whatever the caller's RNG state
    torch.manual_seed(5)
    first = PerceptualNet()
    torch.manual_seed(6)
    again = PerceptualNet().state_dict().values()
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again, strict=True))


class Crash(RuntimeError):
    pass


def test_a_resumed_trial_matches_an_uninterrupted_one(tmp_path):
    spec = StyleTrialSpec(dataset=CONTENT, style_image="generated:mosaic", variant={"kind": "bn+srm"}, seed=3,
                          protocol="style_quick",
                          overrides={"image_size": 16, "steps": 24, "report_every": 6, "held_out": 3},
                          perceptual_net="random")
    whole = run_style_trial(spec, data_dir=tmp_path, checkpoint_dir=tmp_path / "whole", progress=False)

    def crash_after_two(metrics, checkpoint):
        if metrics["epoch"] == 2:
            raise Crash("the worker died")

    with pytest.raises(Crash):
        run_style_trial(spec, data_dir=tmp_path, checkpoint_dir=tmp_path / "resumed", report=crash_after_two,
                        progress=False)
    resumed = run_style_trial(spec, data_dir=tmp_path, checkpoint_dir=tmp_path / "resumed", progress=False)
    assert whole["resumed_from_epoch"] == 0 and resumed["resumed_from_epoch"] == 2
    assert len(whole["history"]) == 4 and [h["step"] for h in whole["history"]] == [6, 12, 18, 24]
    for key in ("style_loss_final", "content_loss_final", "total_loss_final", "held_out_style_loss",
                "held_out_total_loss"):
        assert resumed[key] == whole[key], key
    drop = ("images_per_s", "epoch_time_s")
    assert [{k: v for k, v in h.items() if k not in drop} for h in resumed["history"]] == \
        [{k: v for k, v in h.items() if k not in drop} for h in whole["history"]]
    assert resumed["stylized_png"] == whole["stylized_png"] and resumed["content_hash"] == whole["content_hash"]
    assert whole["num_train"] == 13 and whole["num_eval"] == 3 and whole["perceptual_net"] == "random (seed 0)"
    assert whole["history"][-1]["style_loss"] < whole["history"][0]["style_loss"]  # it learns the style
    other = StyleTrialSpec(**{**spec.to_dict(), "seed": 4})
    with pytest.raises(ValueError, match="belongs to another trial"):
        run_style_trial(other, data_dir=tmp_path, checkpoint_dir=tmp_path / "whole", progress=False)
