from types import SimpleNamespace

import pytest

from xformer.models import create_model, list_models

CLASSIFIERS = list_models()
XFORMER_VARIANTS = [name for name in CLASSIFIERS if name.startswith(("xformer", "mobilevit"))]


@pytest.fixture(scope="session")
def xformer_s():
    return create_model("xformer_s")


@pytest.fixture(scope="session")
def sample_photo():
    from xformer.samples import sample_images

    return sample_images()[1]  # chelsea.png, a cat


PTE_CALIBRATION_IMAGES = 128


@pytest.fixture(scope="session")
def digits_pte(tmp_path_factory):
    """xformer_xxs trained on digits (64x64), its calibration folder and its fp32 and int8 .pte files: the
    ExecuTorch tests and the Android goldens share one export (lowering takes most of a minute per file)."""
    pytest.importorskip("executorch", reason="the 'executorch' extra is not installed")
    from xformer.export import export

    from .digits import load_digits_data, train_digits_model

    data = load_digits_data()
    model = train_digits_model(data)
    calib = tmp_path_factory.mktemp("pte_calib")
    for i, image in enumerate(data.train_images[:PTE_CALIBRATION_IMAGES]):
        image.save(calib / f"{i:04d}.png")
    records = export(model, formats="pte", precisions=["fp32", "int8"], out_dir=tmp_path_factory.mktemp("pte"),
                     calib=str(calib))
    return SimpleNamespace(data=data, model=model, calib=calib, records={r.precision: r for r in records})
