"""CLIP through open_clip, proven with a tiny randomly initialised model in a local checkpoint.

The encoder is loaded through the same `create_model_and_transforms(name, pretrained=path)` call
used for real weights; nothing here touches the network.
"""

import json
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from cumpair.embed import EncoderUnavailable, load_encoders
from cumpair.embed.clip import ClipEncoder, clip_weights_available
from cumpair.vision.images import ImageError

TINY = "cumpair-test-tiny-clip"
TINY_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> tuple[Path, Path]:
    """(config json, checkpoint) of a small random open_clip model saved to a local file."""
    folder = tmp_path_factory.mktemp("clip")
    config = folder / f"{TINY}.json"
    config.write_text(json.dumps(TINY_CONFIG))
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    model = open_clip.create_model(TINY)
    checkpoint = folder / "tiny.pt"
    torch.save(model.state_dict(), checkpoint)
    return config, checkpoint


def _photo(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))


def test_clip_kind_loads_local_checkpoint_into_one_shared_space(tiny_clip):
    config, checkpoint = tiny_clip
    encoders = load_encoders(
        "clip", clip_model=TINY, clip_pretrained=checkpoint, clip_model_config=config
    )
    assert encoders.kind == "clip" and encoders.shared_space
    assert encoders.text_to_image is encoders.image
    images = encoders.image.encode_images([_photo(1), _photo(2)])
    texts = encoders.text.encode_texts(["a red kettle", "a blue drill", ""])
    assert images.shape == (2, 32) and texts.shape == (3, 32)
    assert images.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(images, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(texts, axis=1), 1, atol=1e-5)
    assert encoders.image_info.name == f"clip-{TINY}"
    assert encoders.image_info.version.startswith("sha256-")


def test_clip_vectors_come_from_the_checkpoint_weights(tiny_clip):
    _, checkpoint = tiny_clip
    encoder = ClipEncoder(TINY, checkpoint)
    reference, _, preprocess = open_clip.create_model_and_transforms(
        TINY, pretrained=str(checkpoint)
    )
    with torch.no_grad():
        expected = reference.eval().encode_image(preprocess(_photo(3))[None]).numpy()
    expected /= np.linalg.norm(expected)
    np.testing.assert_allclose(encoder.encode_images([_photo(3)]), expected, atol=1e-5)
    # A differently initialised checkpoint is a different vector space: its version differs.
    other = checkpoint.with_name("other.pt")
    torch.manual_seed(1)
    torch.save(open_clip.create_model(TINY).state_dict(), other)
    assert ClipEncoder(TINY, other).version != encoder.version


def test_auto_picks_clip_when_the_checkpoint_exists(tiny_clip):
    config, checkpoint = tiny_clip
    encoders = load_encoders(clip_model=TINY, clip_pretrained=checkpoint, clip_model_config=config)
    assert encoders.kind == "clip"


def test_models_load_once_per_process(tiny_clip):
    _, checkpoint = tiny_clip
    first = load_encoders("clip", clip_model=TINY, clip_pretrained=checkpoint)
    assert load_encoders("clip", clip_model=TINY, clip_pretrained=str(checkpoint)) is first


def test_clip_kind_without_weights_is_a_clear_error(tiny_clip, tmp_path):
    with pytest.raises(EncoderUnavailable, match="cannot load CLIP model"):
        ClipEncoder(TINY, tmp_path / "missing.pt")
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(EncoderUnavailable):
        ClipEncoder(TINY, broken)


def test_weights_in_the_hub_cache_count_as_available(tmp_path):
    tag = "laion2b_s34b_b79k"
    assert not clip_weights_available("ViT-B-32", tag, cache_dir=tmp_path)
    # The layout huggingface_hub writes when open_clip downloads this tag.
    repo = tmp_path / "models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "open_clip_model.safetensors").write_bytes(b"x")
    assert clip_weights_available("ViT-B-32", tag, cache_dir=tmp_path)
    assert not clip_weights_available("ViT-B-32", "no-such-tag", cache_dir=tmp_path)
    assert not clip_weights_available("no-such-model", tag, cache_dir=tmp_path)


def test_bad_image_bytes_raise_image_error(tiny_clip):
    _, checkpoint = tiny_clip
    encoder = ClipEncoder(TINY, checkpoint)
    with pytest.raises(ImageError):
        encoder.encode_images([b"\x89PNG\r\n\x1a\n broken"])
    with pytest.raises(TypeError):
        encoder.encode_texts("not a list")


def test_unknown_kind_is_rejected():
    with pytest.raises(ValueError, match="unknown encoder kind"):
        load_encoders("siglip")
