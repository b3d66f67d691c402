"""The detector's structure, shapes and input checks (full-size and tiny models)."""

import pytest
import torch

from acrn.models import ModelConfig, build_detector


@pytest.fixture(scope="module")
def full_model():
    torch.manual_seed(0)
    return build_detector()


def test_full_model_size_and_output_shape(full_model):
    sd = full_model.state_dict()
    assert len(sd) == 654
    assert sum(p.numel() for p in full_model.parameters()) == 92_232_057
    # derived widths of the paper's config
    cfg = full_model.cfg
    assert (cfg.slow_out_channels, cfg.fast_out_channels) == (2048, 256)
    assert (cfg.acrn_in_channels, cfg.head_in_channels, cfg.featmap_stride) == (4608, 2304, 16)
    full_model.eval()
    imgs = torch.randn(2, 3, 4, 32, 32)
    rois = torch.tensor([[0, 1.0, 2.0, 20.0, 30.0], [1, 0.0, 0.0, 31.0, 31.0], [1, 5, 5, 9, 9]])
    with torch.no_grad():
        out = full_model(imgs, rois)
    assert out.shape == (3, 81)
    assert torch.isfinite(out).all()


def test_tiny_train_and_eval():
    torch.manual_seed(0)
    cfg = ModelConfig.tiny()
    model = build_detector(cfg)
    assert cfg.acrn_in_channels == 2 * cfg.backbone_out_channels
    imgs = torch.randn(2, 3, 8, 64, 64)
    rois = torch.tensor([[0, 3.0, 4.0, 40.0, 60.0], [1, 10.0, 10.0, 30.0, 30.0]])
    model.train()
    out = model(imgs, rois)
    assert out.shape == (2, 81)
    out.sum().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None for g in grads)
    model.eval()
    with torch.no_grad():
        a = model(imgs, rois)
        b = model(imgs[1:], torch.tensor([[0, 10.0, 10.0, 30.0, 30.0]]))
    # eval is deterministic and RoIs of one clip do not depend on the other clip
    torch.testing.assert_close(a[1:], b, rtol=1e-4, atol=1e-5)


def test_empty_rois_give_empty_output():
    model = build_detector(ModelConfig.tiny())
    out = model(torch.randn(1, 3, 8, 32, 32), torch.zeros(0, 5))
    assert out.shape == (0, 81)
    out.sum().backward()  # attached to the graph


@pytest.mark.parametrize(
    "imgs,rois,msg",
    [
        (torch.randn(3, 8, 32, 32), torch.zeros(1, 5), "imgs: expected"),
        (torch.randn(1, 3, 6, 32, 32), torch.zeros(1, 5), "multiple of resample_rate"),
        (torch.randn(1, 3, 8, 32, 32), torch.zeros(1, 4), "rois: expected"),
        (torch.randn(1, 3, 8, 32, 32), torch.tensor([[1.0, 0, 0, 5, 5]]), "batch index 1.0"),
        (torch.randn(1, 3, 8, 32, 32), torch.zeros(1, 5, dtype=torch.long), "floating point"),
    ],
)
def test_bad_shapes_raise_clear_errors(imgs, rois, msg):
    model = build_detector(ModelConfig.tiny())
    with pytest.raises(ValueError, match=msg):
        model(imgs, rois)


def test_config_validation():
    with pytest.raises(ValueError, match="stage_blocks"):
        ModelConfig(stage_blocks=(1, 1, 1))
    with pytest.raises(ValueError, match="temporal_pool_mode"):
        ModelConfig(temporal_pool_mode="sum")
    with pytest.raises(ValueError, match="channel_ratio"):
        ModelConfig(base_channels=12, channel_ratio=8)


def test_dtypes_bf16_autocast_and_fp64():
    torch.manual_seed(0)
    model = build_detector(ModelConfig.tiny()).eval()
    imgs = torch.randn(1, 3, 8, 64, 64)
    rois = torch.tensor([[0, 3.3, 4.4, 40.7, 50.1]])
    with torch.no_grad():
        ref = model(imgs, rois)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(imgs, rois)
        high = model.double()(imgs.double(), rois)
    assert low.dtype == torch.bfloat16 and high.dtype == torch.float64
    torch.testing.assert_close(high.float(), ref, rtol=1e-4, atol=1e-5)
    assert (low.float() - ref).abs().max() <= 0.05 * ref.abs().max()
