"""The preprocessing contract and its reference implementation."""

import numpy as np
import pytest
from PIL import Image

from xformer import PreprocessSpec, preprocess
from xformer.errors import ImageError
from xformer.models import create_model, imagenet_labels


def test_defaults_follow_the_design_notes():
    spec = create_model("xformer_s").model_config.preprocess
    assert spec.input_size == (256, 256) and spec.resize_size == 288
    assert spec.interpolation == "bicubic" and spec.scale == pytest.approx(1 / 255)
    assert spec.mean == (0, 0, 0) and spec.std == (1, 1, 1) and spec.is_identity_normalization


def test_json_round_trip():
    spec = PreprocessSpec(input_size=(224, 320), resize_size=256, mean=(0.5, 0.4, 0.3), std=(0.2, 0.2, 0.2),
                          channel_order="BGR", layout="NHWC")
    assert PreprocessSpec.from_json(spec.to_json()) == spec


def test_with_input_size_keeps_the_crop_ratio():
    spec = PreprocessSpec()
    assert spec.with_input_size(320).resize_size == 360
    assert spec.with_input_size((512, 1024)).input_size == (512, 1024)


def test_invalid_spec_is_rejected():
    with pytest.raises(ValueError, match="interpolation must be one of"):
        PreprocessSpec(interpolation="lanczos9")


def test_resize_crop_scale_and_layout():
    # Left half red, right half blue: after a center crop both halves remain, scaled to [0, 1].
    pixels = np.zeros((300, 400, 3), np.uint8)
    pixels[:, :200, 0] = 255
    pixels[:, 200:, 2] = 255
    spec = PreprocessSpec(input_size=(64, 64), resize_size=64, interpolation="nearest")
    x = preprocess(pixels, spec)
    assert x.shape == (1, 3, 64, 64) and x.dtype == np.float32
    assert x[0, 0, 32, 0] == 1.0 and x[0, 2, 32, 0] == 0.0
    assert x[0, 2, 32, 63] == 1.0 and x[0, 0, 32, 63] == 0.0
    nhwc = preprocess(pixels, PreprocessSpec(input_size=(64, 64), resize_size=64, interpolation="nearest",
                                             layout="NHWC"))
    np.testing.assert_array_equal(nhwc, x.transpose(0, 2, 3, 1))


def test_mean_std_and_bgr():
    pixels = np.full((32, 32, 3), (255, 0, 51), np.uint8)
    spec = PreprocessSpec(input_size=(32, 32), resize_size=None, mean=(0.5, 0.5, 0.5), std=(0.5, 0.25, 0.5),
                          channel_order="BGR")
    x = preprocess(pixels, spec)[0, :, 0, 0]
    np.testing.assert_allclose(x, [(0.2 - 0.5) / 0.5, (0 - 0.5) / 0.25, (1 - 0.5) / 0.5], rtol=1e-6)


def test_real_photo(sample_photo):
    x = preprocess(sample_photo, PreprocessSpec())
    assert x.shape == (1, 3, 256, 256)
    assert 0.0 <= x.min() and x.max() <= 1.0 and x.std() > 0.05


def test_unreadable_image(tmp_path):
    bad = tmp_path / "not_an_image.jpg"
    bad.write_bytes(b"hello")
    with pytest.raises(ValueError, match="cannot read .* as an image"):
        preprocess(bad, PreprocessSpec())
    with pytest.raises(ImageError, match="image not found"):
        preprocess(tmp_path / "missing.png", PreprocessSpec())


def test_exif_orientation_is_honoured(tmp_path):
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif)
    x = preprocess(path, PreprocessSpec(input_size=(40, 20), resize_size=None))
    assert x.shape == (1, 3, 40, 20)


def test_imagenet_labels():
    labels = imagenet_labels()
    assert len(labels) == 1000 and labels[0] == "tench" and labels[999] == "toilet tissue"
