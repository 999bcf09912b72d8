"""Reconstruction metrics (eegalign.generation.recon) and their feature networks.

Known answers and independent computations for the formulas; tiny random networks, saved in the
documented ``--recon-models`` layout, for every metric path; the full-size networks' parameter
names and shapes against torchvision's published weights (built on the meta device: no memory,
no download).
"""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter

from eegalign.generation import recon
from eegalign.generation.featurenets.alexnet import AlexNet
from eegalign.generation.featurenets.efficientnet import EfficientNetB1
from eegalign.generation.featurenets.inception import InceptionV3
from eegalign.generation.featurenets.resnet import ResNet50, swav_state_dict

NETWORK_METRICS = ("alexnet2", "alexnet5", "inception", "clip", "effnet", "swav", "clip_score")


def smooth_image(seed: int, size: int = 425) -> np.ndarray:
    """(size, size, 3) uint8 with spatial structure (blurred noise), so a shift changes it only partly."""
    rng = np.random.default_rng(seed)
    x = gaussian_filter(rng.random((size, size, 3)), sigma=(6, 6, 0))
    x = (x - x.min()) / (x.max() - x.min())
    return (x * 255).round().astype(np.uint8)


def random_images(n: int, seed: int, size: int = 48) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size, size + 8, 3), dtype=np.uint8)) for _ in range(n)]


def independent_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """Wang et al.'s SSIM written out: Gaussian (sigma 1.5, truncate 3.5) local moments, C1 = 0.01^2,
    C2 = 0.03^2 (data range 1), population variances, mean over the map minus a 5-pixel border."""
    g = lambda a: gaussian_filter(a, sigma=1.5, truncate=3.5, mode="reflect")  # noqa: E731
    ux, uy = g(x), g(y)
    vx, vy, vxy = g(x * x) - ux * ux, g(y * y) - uy * uy, g(x * y) - ux * uy
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return float(s[5:-5, 5:-5].mean())


# ----------------------------------------------------------------------------- low level


def test_pixcorr_ssim_identical_images_give_one():
    img = Image.fromarray(smooth_image(0, 300))
    r, s = recon.pixcorr_ssim(img, img.copy())
    assert r == pytest.approx(1.0, abs=1e-9)
    assert s == pytest.approx(1.0, abs=1e-9)


def test_pixcorr_ssim_of_a_shifted_copy_match_independent_computation():
    a = smooth_image(1)  # already 425 px: the resize is the identity
    b = np.roll(a, 7, axis=1)
    r, s = recon.pixcorr_ssim(Image.fromarray(b), Image.fromarray(a))
    expected_r = np.corrcoef(a.ravel().astype(np.float64), b.ravel().astype(np.float64))[0, 1]
    weights = np.array([0.2125, 0.7154, 0.0721])  # ITU-R 709 luma, as skimage.color.rgb2gray
    expected_s = independent_ssim((b / 255.0) @ weights, (a / 255.0) @ weights)
    assert 0.2 < expected_r < 0.99 and 0.1 < expected_s < 0.99  # a genuinely lower value
    assert r == pytest.approx(expected_r, abs=1e-5)
    assert s == pytest.approx(expected_s, abs=1e-4)


def test_ssim_closed_form_for_uniform_images_and_pixcorr_of_constant_is_zero():
    a = Image.new("RGB", (64, 64), (128, 128, 128))
    b = Image.new("RGB", (64, 64), (64, 64, 64))
    r, s = recon.pixcorr_ssim(b, a)
    mu_a, mu_b, c1 = 128 / 255, 64 / 255, 0.01**2
    assert s == pytest.approx((2 * mu_a * mu_b + c1) / (mu_a**2 + mu_b**2 + c1), abs=1e-6)
    assert r == 0.0


# ----------------------------------------------------------------------------- 2-way, pairing


def test_two_way_on_a_constructed_case():
    r = np.array([[0.9, 0.1, 0.5, 0.3],
                  [0.2, 0.8, 0.6, 0.3],
                  [0.3, 0.7, 0.4, 0.3]])  # (U=3 originals, N=4 generated)
    own = np.array([0, 1, 2, 0])
    # j=0: 0.2, 0.3 < 0.9 -> 1; j=1: 0.1 < 0.8, 0.7 < 0.8 -> 1; j=2: 0.5, 0.6 > 0.4 -> 0; j=3: ties -> 0.
    np.testing.assert_allclose(recon.two_way(r, own), [1.0, 1.0, 0.0, 0.0])


def test_two_way_equals_mindeye_formula_on_random_features():
    rng = np.random.default_rng(3)
    reals, preds = rng.normal(size=(7, 50)), rng.normal(size=(7, 50))
    preds[:4] += 2 * reals[:4]  # some identifiable
    r_np = np.corrcoef(reals, preds)[:7, 7:]  # MindEye: r[i, j] = corr(real i, pred j)
    expected = (r_np < np.diag(r_np)).sum(axis=0) / 6
    zr, zp = recon.zscore_rows(torch.tensor(reals)), recon.zscore_rows(torch.tensor(preds))
    r_ours = (zr @ zp.T / 50).double().numpy()
    np.testing.assert_allclose(r_ours, r_np, atol=1e-5)
    np.testing.assert_allclose(recon.two_way(r_ours, np.arange(7)), expected)


def test_shuffled_two_way_is_near_chance():
    rng = np.random.default_rng(4)
    n = 400
    own = recon.shuffled_pairing(np.arange(n), seed=0)
    r = rng.normal(size=(n, n)) + 3 * np.eye(n)  # the true pairing is identifiable
    assert recon.two_way(r, np.arange(n)).mean() > 0.95
    assert abs(recon.two_way(r, own).mean() - 0.5) < 0.03


def test_shuffled_pairing_avoids_identical_images_and_refuses_the_impossible():
    group = np.array([0, 0, 0, 1, 1, 2, 3, 3, 4, 5])
    perm = recon.shuffled_pairing(group, seed=1)
    assert sorted(perm) == list(range(10)) and np.all(group[perm] != group)
    assert recon.shuffled_pairing(np.array([0, 0, 0, 1]), seed=0) is None
    assert recon.shuffled_pairing(np.array([0]), seed=0) is None


def test_pixel_metrics_shuffled_baseline_is_near_chance_on_random_images():
    originals = random_images(8, seed=5)
    eeg = random_images(8, seed=6)
    res = recon.reconstruction_metrics(originals, {"eeg": eeg}, None, n_boot=200)
    assert set(res.summary) == {"eeg", "shuffled"}
    for m in ("pixcorr", "ssim"):
        shuffled = res.summary["shuffled"][m]
        assert res.summary["eeg"][m]["chance"] == pytest.approx(shuffled["value"])
        assert abs(shuffled["value"] - res.summary["eeg"][m]["value"]) < 0.02  # both unrelated to their originals
        lo, hi = shuffled["ci95"]
        assert lo <= shuffled["value"] <= hi
    assert abs(res.summary["shuffled"]["pixcorr"]["value"]) < 0.02
    assert len(res.per_image["eeg"]["ssim"]) == 8
    assert len([n for n in res.notes if "no --recon-models DIR" in n]) == 8  # one per network metric


# ----------------------------------------------------------------------------- tiny networks


def tiny_fid_inception() -> InceptionV3:
    """pytorch-fid's layout: 1008 classes, no auxiliary classifier (tiny widths)."""
    return InceptionV3(width=0.0625, num_classes=1008, aux_logits=False, transform_input=False, fid_variant=True)


def tiny_models_dir(root, only: tuple[str, ...] | None = None):
    """Tiny random networks in the documented layout (SwAV in its release format: ``module.`` + heads)."""
    torch.manual_seed(0)
    want = lambda name: only is None or name in only  # noqa: E731
    if want("alexnet"):
        torch.save(AlexNet((4, 8, 8, 8, 8), hidden=16, num_classes=10).state_dict(), root / "alexnet.pth")
    if want("inception"):
        torch.save(InceptionV3(width=0.0625, num_classes=10).state_dict(), root / "inception_v3.pth")
    if want("effnet"):
        net = EfficientNetB1(stem=8, channels=(8, 8, 8, 16, 16, 16, 16), blocks=(1, 2, 1, 1, 1, 1, 1), last=32, num_classes=10)
        torch.save(net.state_dict(), root / "efficientnet_b1.pth")
    if want("swav"):
        sd = {f"module.{k}": v for k, v in ResNet50(width=4, blocks=(1, 1, 1, 1)).state_dict().items() if not k.startswith("fc.")}
        sd["module.projection_head.0.weight"] = torch.zeros(8, 16)
        sd["module.prototypes.weight"] = torch.zeros(5, 8)
        torch.save(sd, root / "swav_800ep_pretrain.pth.tar")  # the published file name is accepted too
    if want("fid_inception"):
        torch.save(tiny_fid_inception().state_dict(), root / "pt_inception-2015-12-05-6726825d.pth")
    if want("clip"):
        from transformers import CLIPConfig, CLIPModel

        text = dict(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                    max_position_embeddings=16, bos_token_id=0, eos_token_id=1, pad_token_id=1)
        vision = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8)
        CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=12)).save_pretrained(root / "clip")
    return root


def test_input_sizes_are_mindeyes():
    from eegalign.generation.featurenets.registry import INPUT_SIZES

    assert INPUT_SIZES == {"alexnet": 256, "inception": 342, "effnet": 255, "swav": 255, "fid_inception": 299}
    assert recon.PIXEL_SIZE == 425


@pytest.fixture(scope="module")
def small_inputs():
    """Feed the tiny networks small images: the cost of the full sizes is all in the spatial extent."""
    from eegalign.generation.featurenets import registry

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(registry, "INPUT_SIZES", {"alexnet": 96, "inception": 80, "effnet": 64, "swav": 64, "fid_inception": 80})
        yield


@pytest.fixture(scope="module")
def full_result(tmp_path_factory, small_inputs):
    models = tiny_models_dir(tmp_path_factory.mktemp("recon_models"))
    originals = random_images(3, seed=7)
    originals = originals + [originals[0].copy()]  # a stimulus shown twice: deduplicated
    rng = np.random.default_rng(8)
    eeg = [Image.fromarray(np.clip(np.asarray(o, np.int16) + rng.integers(-60, 60, (48, 56, 3)), 0, 255).astype(np.uint8))
           for o in originals]
    return recon.reconstruction_metrics(originals, {"eeg": eeg, "true": [o.copy() for o in originals]}, str(models), n_boot=100)


def test_every_metric_runs_with_tiny_networks(full_result):
    res = full_result
    assert res.notes == []
    assert set(res.summary) == {"eeg", "true", "shuffled"}
    for name in ("eeg", "true"):
        assert list(res.summary[name]) == list(recon.METRICS)
    assert list(res.summary["shuffled"]) == [m for m in recon.METRICS if m != "fid"]
    for name, metrics in res.summary.items():
        for m, entry in metrics.items():
            assert np.isfinite(entry["value"]), (name, m)
            if m == "fid":
                assert entry["ci95"] is None and entry["chance"] is None and m not in res.per_image[name]
            else:
                assert len(res.per_image[name][m]) == 4
                assert entry["ci95"][0] <= entry["value"] <= entry["ci95"][1]
                expected_chance = 0.5 if m in recon.TWO_WAY else res.summary["shuffled"][m]["value"]
                assert entry["chance"] == pytest.approx(expected_chance)


def test_per_image_record_is_what_compare_reads(full_result, tmp_path):
    import json

    from eegalign.generation import compare

    rec = full_result.per_image_record([10, 11, 12, 13])
    assert rec["trials"] == [10, 11, 12, 13] and rec["sets"]["eeg"]["ssim"] == full_result.per_image["eeg"]["ssim"]
    (tmp_path / compare.RECON_PER_IMAGE).write_text(json.dumps(rec))
    run = compare.GenerationRun("r", tmp_path, {"trials": [{"index": i} for i in (10, 11, 12, 13)]})
    scores = compare.per_trial_scores(run, ns=[], ks=[], draws=1, seed=0)
    np.testing.assert_allclose(scores["pixcorr"], full_result.per_image["eeg"]["pixcorr"])
    np.testing.assert_allclose(scores["true.swav"], full_result.per_image["true"]["swav"])
    with pytest.raises(ValueError):
        full_result.per_image_record([1, 2])


def test_true_copies_score_perfectly(full_result):
    true = full_result.summary["true"]
    for m in ("pixcorr", "ssim", "alexnet2", "alexnet5", "inception", "clip", "clip_score"):
        assert true[m]["value"] == pytest.approx(1.0, abs=1e-5), m
    for m in ("effnet", "swav", "fid"):
        assert true[m]["value"] == pytest.approx(0.0, abs=1e-4), m


def test_fid_with_the_network_as_torchmetrics_feature_equals_precomputed_features():
    from torchmetrics.image.fid import FrechetInceptionDistance

    from eegalign.generation.featurenets.registry import IMAGENET_MEAN, IMAGENET_STD

    torch.manual_seed(1)
    net = InceptionV3(width=0.0625, num_classes=10).eval()

    class Wrapped(torch.nn.Module):
        """The Inception pool features of [0, 1] images, as torchmetrics' custom ``feature``."""

        num_features = net.num_features

        def forward(self, x):
            mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
            return net((x - mean) / std)

    real, fake = torch.rand(5, 3, 80, 80), torch.rand(5, 3, 80, 80) * 0.5
    fid = FrechetInceptionDistance(feature=Wrapped(), normalize=True)
    with torch.no_grad():
        fid.update(real, real=True)
        fid.update(fake, real=False)
        expected = float(fid.compute())
        feats = [Wrapped()(x).double().numpy() for x in (real, fake)]
    assert expected > 0
    assert recon.frechet_distance(*feats) == pytest.approx(expected, rel=1e-5)


def test_missing_or_unsafe_weights_give_a_note_and_the_rest_runs(tmp_path, small_inputs):
    tiny_models_dir(tmp_path, only=("alexnet",))
    torch.save({"args": argparse.Namespace(a=1)}, tmp_path / "inception_v3.pth")  # not loadable with weights_only
    originals, eeg = random_images(3, seed=9), random_images(3, seed=10)
    res = recon.reconstruction_metrics(originals, {"eeg": eeg}, str(tmp_path), n_boot=50)
    assert {"pixcorr", "ssim", "alexnet2", "alexnet5"} <= set(res.summary["eeg"])
    assert not set(NETWORK_METRICS[2:]) & set(res.summary["eeg"]) and "fid" not in res.summary["eeg"]
    by_metric: dict[str, list[str]] = {}
    for note in res.notes:
        by_metric.setdefault(note.split(" ")[0].rstrip(":"), []).append(note)
    assert set(by_metric) == {"inception", "fid", "clip", "clip_score", "effnet", "swav"}
    assert "inception_v3.pth could not be loaded" in by_metric["inception"][0]
    assert any("no usable Inception weights" in n for n in by_metric["fid"])
    assert str(tmp_path / "efficientnet_b1.pth") in by_metric["effnet"][0]
    assert str(tmp_path / "clip") in by_metric["clip"][0]


def test_fid_without_the_fid_inception_says_it_is_not_the_standard_fid(tmp_path, small_inputs):
    tiny_models_dir(tmp_path, only=("inception",))
    originals, eeg = random_images(3, seed=11), random_images(3, seed=12)
    res = recon.reconstruction_metrics(originals, {"eeg": eeg}, str(tmp_path), n_boot=50)
    assert res.summary["eeg"]["fid"]["value"] > 0
    assert any(n.startswith("fid uses torchvision's Inception-v3 weights") and "fid_inception.pth" in n for n in res.notes)


def test_check_models_dir(tmp_path):
    from eegalign.errors import WeightsError

    assert recon.check_models_dir(None) == ["pixcorr", "ssim"]
    tiny_models_dir(tmp_path, only=("alexnet",))
    assert recon.check_models_dir(str(tmp_path)) == ["pixcorr", "ssim", "alexnet2", "alexnet5"]
    with pytest.raises(WeightsError, match="--recon-models directory not found"):
        recon.check_models_dir(str(tmp_path / "nope"))


def test_mismatched_set_lengths_are_refused():
    from eegalign.errors import DataError

    with pytest.raises(DataError, match="set 'eeg' has 1 images for 2 originals"):
        recon.reconstruction_metrics(random_images(2, 0), {"eeg": random_images(1, 1)}, None)


# ----------------------------------------------------------------------------- torchvision layout


def meta_state_dict(cls):
    with torch.device("meta"):
        net = cls()
    return net, net.state_dict()


# (class, torchvision's published num_params, {name: shape} spot checks in the published files)
PUBLISHED = [
    (AlexNet, 61_100_840, {
        "features.0.weight": (64, 3, 11, 11), "features.3.weight": (192, 64, 5, 5), "features.6.weight": (384, 192, 3, 3),
        "features.8.weight": (256, 384, 3, 3), "features.10.weight": (256, 256, 3, 3), "features.10.bias": (256,),
        "classifier.1.weight": (4096, 9216), "classifier.4.weight": (4096, 4096), "classifier.6.weight": (1000, 4096),
    }),
    (InceptionV3, 27_161_264, {
        "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3), "Conv2d_1a_3x3.bn.running_var": (32,),
        "Conv2d_4a_3x3.conv.weight": (192, 80, 3, 3), "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
        "Mixed_5d.branch5x5_2.conv.weight": (64, 48, 5, 5), "Mixed_6a.branch3x3.conv.weight": (384, 288, 3, 3),
        "Mixed_6e.branch7x7dbl_5.conv.weight": (192, 192, 1, 7), "Mixed_7a.branch7x7x3_4.conv.weight": (192, 192, 3, 3),
        "Mixed_7c.branch3x3dbl_3b.conv.weight": (384, 384, 3, 1), "Mixed_7c.branch_pool.conv.weight": (192, 2048, 1, 1),
        "AuxLogits.conv1.conv.weight": (768, 128, 5, 5), "AuxLogits.fc.weight": (1000, 768), "fc.weight": (1000, 2048),
    }),
    (EfficientNetB1, 7_794_184, {
        "features.0.0.weight": (32, 3, 3, 3), "features.1.0.block.0.0.weight": (32, 1, 3, 3),
        "features.1.0.block.1.fc1.weight": (8, 32, 1, 1), "features.1.1.block.2.0.weight": (16, 16, 1, 1),
        "features.2.0.block.0.0.weight": (96, 16, 1, 1), "features.3.2.block.1.0.weight": (240, 1, 5, 5),
        "features.6.4.block.2.fc2.weight": (1152, 48, 1, 1), "features.7.1.block.3.1.running_mean": (320,),
        "features.8.0.weight": (1280, 320, 1, 1), "classifier.1.weight": (1000, 1280),
    }),
    (ResNet50, 25_557_032, {
        "conv1.weight": (64, 3, 7, 7), "layer1.0.downsample.0.weight": (256, 64, 1, 1), "layer2.3.conv2.weight": (128, 128, 3, 3),
        "layer3.5.bn3.running_mean": (1024,), "layer4.0.downsample.1.weight": (2048,), "layer4.2.conv3.weight": (2048, 512, 1, 1),
        "fc.weight": (1000, 2048),
    }),
]


@pytest.mark.parametrize("cls,n_params,shapes", PUBLISHED, ids=lambda p: getattr(p, "__name__", ""))
def test_full_size_networks_have_torchvision_names_and_shapes(cls, n_params, shapes):
    net, sd = meta_state_dict(cls)
    assert sum(p.numel() for p in net.parameters()) == n_params
    for name, shape in shapes.items():
        assert tuple(sd[name].shape) == shape, name
    rebuilt = cls.from_state_dict(sd)  # architecture read back from the shapes alone
    assert {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()} == {k: tuple(v.shape) for k, v in sd.items()}


def test_key_sets_follow_torchvision_structure():
    _, alex = meta_state_dict(AlexNet)
    assert set(alex) == {f"features.{i}.{p}" for i in (0, 3, 6, 8, 10) for p in ("weight", "bias")} | {
        f"classifier.{i}.{p}" for i in (1, 4, 6) for p in ("weight", "bias")}
    _, res = meta_state_dict(ResNet50)
    assert len(res) == 320 and all(k.endswith("num_batches_tracked") for k in res if k.count(".") and "bn" in k and res[k].ndim == 0)
    _, inc = meta_state_dict(InceptionV3)
    tops = {k.split(".")[0] for k in inc}
    assert tops == {"Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3", "Mixed_5b", "Mixed_5c",
                    "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e", "AuxLogits", "Mixed_7a", "Mixed_7b",
                    "Mixed_7c", "fc"}
    _, eff = meta_state_dict(EfficientNetB1)
    blocks = [len({k.split(".")[2] for k in eff if k.startswith(f"features.{s}.")}) for s in range(1, 8)]
    assert blocks == [2, 3, 3, 4, 4, 5, 2]  # ceil(B0 depths x 1.1)


def test_fid_inception_layout_and_pooling():
    with torch.device("meta"):
        tv = InceptionV3().state_dict()
        fid_sd = InceptionV3(num_classes=1008, aux_logits=False, transform_input=False, fid_variant=True).state_dict()
    # pytorch-fid's pt_inception-2015-12-05: torchvision's names without AuxLogits, a 1008-way fc
    assert set(fid_sd) == {k for k in tv if not k.startswith("AuxLogits.")}
    assert tuple(fid_sd["fc.weight"].shape) == (1008, 2048)
    torch.manual_seed(2)
    tiny = tiny_fid_inception().eval()
    rebuilt = InceptionV3.from_state_dict(tiny.state_dict())
    assert rebuilt.fid_variant and not rebuilt.transform_input and rebuilt.AuxLogits is None
    plain = InceptionV3(width=0.0625, num_classes=1008, aux_logits=False, transform_input=False).eval()
    plain.load_state_dict(tiny.state_dict())
    x = torch.randn(2, 3, 80, 80)
    with torch.no_grad():  # same weights, TF pooling vs torchvision pooling: different features
        assert not torch.allclose(tiny(x), plain(x))


def test_swav_checkpoint_keeps_the_backbone():
    sd = {"module.conv1.weight": torch.zeros(1), "module.projection_head.0.weight": torch.zeros(1), "module.prototypes.weight": torch.zeros(1)}
    assert set(swav_state_dict(sd)) == {"conv1.weight"}
