"""The model registry: every model vstpipe can download, by name, with its files' URLs,
checksums and licence. One ``ModelSpec`` per model; its ``arch`` names a model family
(``vstpipe.model``), which knows the files' roles and layouts.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ModelError

# What --model, presets and keyframes use unless they name a model: adain-vgg19 when it is
# installed or can be downloaded, else the embedded lite model (resolver.resolve says which and
# why). Training starts from FULL_MODEL.
AUTO = "auto"
DEFAULT_MODEL = AUTO
FULL_MODEL = "adain-vgg19"
EMBEDDED_MODEL = "lite"


@dataclass(frozen=True)
class FileSpec:
    role: str  # "encoder" / "decoder", a key of the family's files
    name: str  # published file name, also the name in the cache
    url: str
    sha256: str | None  # None: not published anywhere we trust; the manifest pins first sight
    size: int | None  # bytes
    git_sha1: str | None = None  # git blob id in the upstream repository (`git hash-object`)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    arch: str  # the model family: a key of model.FAMILIES
    files: tuple[FileSpec, ...]
    licence: str
    homepage: str
    description: str
    embedded: bool = False  # ships inside the package (vstpipe/models_data/<name>/): no download


_ADAIN_RELEASE = "https://github.com/naoto0804/pytorch-AdaIN/releases/download/v0.0.0"
_UVC_WEIGHTS = "https://github.com/Liusifei/UVC/raw/master/weights"

# The AdaIN sha256 values are not stated by the upstream repository; they are the values that
# several independent projects pin for these exact release URLs (and the VGG size comes from a
# Git LFS record of the same sha256). The decoder's size was not found, so it stays None.
REGISTRY: dict[str, ModelSpec] = {ms.name: ms for ms in (
    ModelSpec(
        name="adain-vgg19",
        arch="adain-vgg19",
        files=(
            FileSpec("encoder", "vgg_normalised.pth", f"{_ADAIN_RELEASE}/vgg_normalised.pth",
                     "804ca2835ecf7539f0cd2a7ac3c18ce81e6f8468969ae7117ac0c148d286bb4a",
                     80102481),
            FileSpec("decoder", "decoder.pth", f"{_ADAIN_RELEASE}/decoder.pth",
                     "379ca41d59f3a37eed3599bbbc2560c19da5c458870a5ffd3a9dd41aa88f9472",
                     None),
        ),
        licence="MIT",
        homepage="https://github.com/naoto0804/pytorch-AdaIN",
        description="AdaIN (Huang & Belongie 2017): VGG19 to relu4_1 and its decoder, RGB",
    ),
    ModelSpec(
        name="uvc-lab",
        arch="uvc-lab",
        files=(
            FileSpec("encoder", "encoder_single_gpu.pth", f"{_UVC_WEIGHTS}/encoder_single_gpu.pth",
                     "8749f42703a3d1f6bfd8e639103254a4e528c03eb434a3ad73d3dc83c0895f5d",
                     2486942),
            FileSpec("decoder", "decoder_single_gpu.pth", f"{_UVC_WEIGHTS}/decoder_single_gpu.pth",
                     "7b255e36afabc7679413c76fb5eb602f95a0fbe1e55056b870c6d9b79e6e29f0",
                     2485612),
        ),
        licence="MIT",
        homepage="https://github.com/Liusifei/UVC",
        description="UVC colour autoencoder (Li, Liu et al. 2019), reduced relu3_1, OpenCV Lab",
    ),
    # Ships inside the package (models/lite in the repository): what `auto` runs when
    # adain-vgg19 cannot be had. Encoder: Magenta's MobileNetV2 style-predictor trunk
    # (Apache-2.0, NOTICE beside it); decoder: trained by vstpipe (model.json says how).
    ModelSpec(
        name=EMBEDDED_MODEL,
        arch="lite-palette",
        files=(
            FileSpec("encoder", "encoder.safetensors", "package:vstpipe.models_data/lite",
                     "d2f4426f67eb49d3c8be4a08af87acb4ac82782d7504ccbcc689c765c7d2b5ef", 244216),
            FileSpec("decoder", "decoder.safetensors", "package:vstpipe.models_data/lite",
                     "42e0d4e8bd809a5ebb3b9678abfc9283a803d05ad6221934fe5e73c571e5ac01",
                     2191884),
        ),
        licence="Apache-2.0 (encoder, Magenta) and MIT (decoder, vstpipe)",
        homepage="https://github.com/magenta/magenta/tree/main/magenta/models/"
                 "arbitrary_image_stylization",
        description="embedded: Magenta's MobileNetV2 trunk to expanded_conv_6's expansion, "
                    "AdaIN there, on a 1/4 fine path and on the full-resolution lightness, a "
                    "decoder trained by vstpipe, then the palette stage; RGB",
        embedded=True,
    ),
    # Committed to the UVC repository as a plain git blob (no LFS); no sha256 or size is
    # published, so the blob id of that commit pins the bytes instead.
    ModelSpec(
        name="uvc-tracker",
        arch="uvc-tracker",
        files=(
            FileSpec("tracker", "checkpoint_latest.pth.tar",
                     f"{_UVC_WEIGHTS}/checkpoint_latest.pth.tar", None, None,
                     git_sha1="8e2c3c43d05451f0008312dd84e8555b4d1a8eb0"),
        ),
        licence="MIT",
        homepage="https://github.com/Liusifei/UVC",
        description="UVC tracker (ResNet-18, stride 8): the affinity estimator of the paper, "
                    "for `vstpipe finetune --affinity uvc`",
    ),
)}


def spec(name: str) -> ModelSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ModelError(f"unknown model '{name}'; choose from {names()}") from None


def names() -> str:
    return ", ".join(REGISTRY)


def spec_for(name: str, model: ModelSpec | None) -> ModelSpec:
    """The registry entry of ``name``, or ``model`` standing in for it (tests point one at a
    local server); its name must be ``name``."""
    if model is None:
        return spec(name)
    if model.name != name:
        raise ValueError(f"model spec '{model.name}' passed for '{name}'")
    return model
