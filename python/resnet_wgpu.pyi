"""ResNet inference on any GPU through WebGPU (wgpu), matching PyTorch."""

import os
from typing import Any, Iterable, List, Literal, Optional, Sequence, TypedDict, Union

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

class EnsembleInfo(TypedDict):
    architecture: str
    """Always "ensemble"."""
    classes: int
    labels: List[str]
    combine: str
    ensemble_weights: List[float]
    members: List[Info]
    adapter: Adapter

WeightsLike = Union[str, "os.PathLike[str]", bytes, bytearray]
"""A path to a .safetensors checkpoint, or its bytes."""

ImageLike = Union[str, "os.PathLike[str]", bytes, bytearray, Any, npt.NDArray[np.uint8]]
"""A path, the bytes of an image file, a PIL.Image.Image or an (H, W, 3) uint8 array."""

class Engine:
    """A ResNet loaded on a GPU through WebGPU (Vulkan, Metal, DX12 or GL).

    weights: a path to a .safetensors checkpoint (torchvision, timm or Hugging Face), its
        bytes, or None for the embedded default model (handwritten digits; with video=True,
        the embedded default video model). A list of them is an ensemble: one device, one
        submission per batch, the members' probabilities (combine="probs", the default) or
        logits (combine="logits") averaged, weighted by ensemble_weights (one per member).
    adapter: part of the GPU's name to pick (case-insensitive); default: the best one.
    backend: "vulkan", "metal", "dx12" or "gl"; default: any.
    checked_shaders: compile every shader with runtime bounds checks (slower).

    Every method releases the GIL while the GPU works; one Engine may be used from several
    threads at once. Bad input raises ValueError, a GPU failure RuntimeError.
    """

    def __init__(
        self,
        weights: Union[None, WeightsLike, Sequence[WeightsLike]] = None,
        *,
        adapter: Optional[str] = None,
        backend: Optional[str] = None,
        checked_shaders: bool = False,
        video: bool = False,
        combine: Optional[Literal["probs", "logits"]] = None,
        ensemble_weights: Optional[Sequence[float]] = None,
    ) -> None: ...
    def run(self, x: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Logits (N, classes) for a preprocessed (N, 3, H, W) float16/32/64 batch; a video
        network takes clips (N, 3, T, H, W). An ensemble gives the blend: probabilities
        (combine="probs") or logits (combine="logits"), as `resnet run` with several
        --weights."""
    def features(self, x: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Pooled penultimate features (N, C) for a batch as `run` takes it; ValueError for
        an ensemble (each member has its own embedding)."""
    def classify(
        self,
        images: Union[ImageLike, Iterable[ImageLike]],
        top_k: int = 5,
        batch_size: int = 16,
        *,
        frames: Optional[int] = None,
        clips: int = 1,
        frame_stride: int = 1,
    ) -> List[Prediction]:
        """The top_k classes of each image, as `resnet classify --json` prints them:
        [{"image": name, "top": [{"class": int, "label": str, "prob": float}]}].
        An ensemble preprocesses each image with each member's preset. A video network takes
        paths of videos or frame folders; frames/clips/frame_stride as the CLI's flags and
        batch_size counts clips."""
    @property
    def info(self) -> Union[Info, EnsembleInfo]:
        """architecture, weights, classes, labels, features, preprocess and adapter; for an
        ensemble, classes, labels, combine, ensemble_weights, adapter and members."""
