"""Real photos that ship inside installed packages (scikit-image, matplotlib): parity checks, calibration
and demos use them because no data set can be downloaded here."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from .errors import MissingExtraError

__all__ = ["sample_images"]

# (package, path inside it): colour photographs only, no synthetic or grey test charts.
_PHOTOS = (
    ("skimage", "data/astronaut.png"),
    ("skimage", "data/chelsea.png"),
    ("skimage", "data/coffee.png"),
    ("skimage", "data/rocket.jpg"),
    ("skimage", "data/motorcycle_left.png"),
    ("skimage", "data/hubble_deep_field.jpg"),
    ("skimage", "data/retina.jpg"),
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
)


def sample_images() -> list[Path]:
    """Paths of the sample photos found in this environment, in a fixed order."""
    found = []
    for package, relative in _PHOTOS:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        path = Path(next(iter(spec.submodule_search_locations))) / relative
        if path.is_file():
            found.append(path)
    if not found:
        raise MissingExtraError("sample photos", "samples", "scikit-image / matplotlib")
    return found
