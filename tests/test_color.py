import numpy as np
import pytest
import torch

from vstpipe import color

cv2 = pytest.importorskip("cv2")


def _image() -> np.ndarray:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(40, 48, 3), dtype=np.uint8)
    img[:4] = [[0, 0, 0], [255, 255, 255], [255, 0, 0], [3, 2, 1]][0]  # extremes and dark
    img[4:8] = 255
    return img


def test_rgb_to_lab_matches_opencv_8bit():
    img = _image()
    ref = cv2.cvtColor(img, cv2.COLOR_RGB2LAB).astype(np.float64)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].double() / 255
    ours = color.rgb_to_lab(x)[0].permute(1, 2, 0).numpy()
    diff = np.abs(ours - ref)
    # OpenCV rounds to 8 bits (and uses lookup tables): within 1.5 levels, 0.5 on average.
    assert diff.max() < 1.5, np.unravel_index(diff.argmax(), diff.shape)
    assert diff.mean() < 0.5


def test_lab_round_trip_and_opencv_inverse():
    img = _image()
    x = torch.from_numpy(img).permute(2, 0, 1)[None].double() / 255
    back = color.lab_to_rgb(color.rgb_to_lab(x))
    assert (back - x).abs().max().item() < 1e-4
    lab8 = cv2.cvtColor(img, cv2.COLOR_RGB2LAB)
    ref = cv2.cvtColor(lab8, cv2.COLOR_LAB2RGB).astype(np.float64) / 255
    ours = color.lab_to_rgb(torch.from_numpy(lab8).permute(2, 0, 1)[None].double())
    assert np.abs(ours[0].permute(1, 2, 0).numpy() - ref).max() < 2.5 / 255


def test_conversions_are_differentiable_everywhere():
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    x[0, :, 0, 0] = 0.0  # pure black, where pow() has an infinite slope
    x.requires_grad_(True)
    color.lab_to_rgb(color.rgb_to_lab(x)).sum().backward()
    assert torch.isfinite(x.grad).all()
    assert torch.autograd.gradcheck(color.rgb_to_lab, (torch.rand(1, 3, 2, 2, dtype=torch.float64,
                                                                  requires_grad=True) * 0.9 + 0.05,))
