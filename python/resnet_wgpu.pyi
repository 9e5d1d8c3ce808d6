"""ResNet inference on any GPU through WebGPU (wgpu), matching PyTorch."""

import os
from typing import Any, Iterable, List, Optional, TypedDict, Union

import numpy as np
import numpy.typing as npt

__version__: str

# "class" is a keyword, hence the functional form.
Scored = TypedDict("Scored", {"class": int, "label": str, "prob": float})
"""One of an image's most probable classes."""

Prediction = TypedDict("Prediction", {"image": str, "top": List[Scored]})
"""One image's result, as `resnet classify --json` prints it."""

class Preprocess(TypedDict):
    resize: int
    crop: List[int]
    interp: str
    mean: List[float]
    std: List[float]
    rounding: str
    description: str

class Adapter(TypedDict):
    name: str
    backend: str
    device_type: str
    driver: str
    driver_info: str

class Info(TypedDict):
    architecture: Optional[str]
    weights: str
    classes: int
    labels: List[str]
    features: Optional[int]
    preprocess: Preprocess
    adapter: Adapter

ImageLike = Union[str, "os.PathLike[str]", bytes, bytearray, Any, npt.NDArray[np.uint8]]
"""A path, the bytes of an image file, a PIL.Image.Image or an (H, W, 3) uint8 array."""

class Engine:
    """A ResNet loaded on a GPU through WebGPU (Vulkan, Metal, DX12 or GL).

    weights: a path to a .safetensors checkpoint (torchvision, timm or Hugging Face), its
        bytes, or None for the embedded default model (handwritten digits).
    adapter: part of the GPU's name to pick (case-insensitive); default: the best one.
    backend: "vulkan", "metal", "dx12" or "gl"; default: any.
    checked_shaders: compile every shader with runtime bounds checks (slower).

    Every method releases the GIL while the GPU works; one Engine may be used from several
    threads at once. Bad input raises ValueError, a GPU failure RuntimeError.
    """

    def __init__(
        self,
        weights: Union[None, str, "os.PathLike[str]", bytes, bytearray] = None,
        *,
        adapter: Optional[str] = None,
        backend: Optional[str] = None,
        checked_shaders: bool = False,
    ) -> None: ...
    def run(self, x: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Logits (N, classes) for a preprocessed (N, 3, H, W) float16/32/64 batch; a video
        network takes clips (N, 3, T, H, W)."""
    def features(self, x: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Pooled penultimate features (N, C) for a batch as `run` takes it."""
    def classify(
        self,
        images: Union[ImageLike, Iterable[ImageLike]],
        top_k: int = 5,
        batch_size: int = 16,
    ) -> List[Prediction]:
        """The top_k classes of each image, as `resnet classify --json` prints them:
        [{"image": name, "top": [{"class": int, "label": str, "prob": float}]}]."""
    @property
    def info(self) -> Info:
        """architecture, weights, classes, labels, features, preprocess and adapter."""
