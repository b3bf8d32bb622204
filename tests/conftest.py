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
