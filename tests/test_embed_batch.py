"""BatchEmbedder: the crawl's batching stage, driven with a real (tiny, random) CLIP encoder."""

import io
import json
import threading
import time

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from cumpair.embed import BatchEmbedder, BatchEmbedderClosed, EncoderSet
from cumpair.embed.clip import ClipEncoder

TINY = "cumpair-test-tiny-clip-batch"
TINY_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="module")
def encoders(tmp_path_factory) -> EncoderSet:
    folder = tmp_path_factory.mktemp("clip")
    config = folder / f"{TINY}.json"
    config.write_text(json.dumps(TINY_CONFIG))
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    checkpoint = folder / "tiny.pt"
    torch.save(open_clip.create_model(TINY).state_dict(), checkpoint)
    clip = ClipEncoder(TINY, checkpoint, threads=1)
    return EncoderSet(kind="clip", image=clip, text=clip, text_to_image=clip)


def _jpeg(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


def test_batched_vectors_equal_direct_encoding(encoders):
    images = [_jpeg(i) for i in range(7)]
    with BatchEmbedder(encoders, batch_size=4, max_wait=0.05) as embedder:
        futures = [
            embedder.submit(images[0:3], "red kettle"),
            embedder.submit(images[3:4], "blue drill"),
            embedder.submit(images[4:7], None),
        ]
        results = [future.result(timeout=30) for future in futures]
    direct = encoders.image.encode_images(images)
    np.testing.assert_allclose(results[0].image_vectors, direct[0:3], atol=1e-5)
    np.testing.assert_allclose(results[2].image_vectors, direct[4:7], atol=1e-5)
    np.testing.assert_allclose(results[0].main_image_vector, direct[0], atol=1e-5)
    np.testing.assert_allclose(
        results[1].text_vector, encoders.text.encode_texts(["blue drill"])[0], atol=1e-5
    )
    assert results[2].text_vector is None
    assert results[0].image_positions == (0, 1, 2)
    assert embedder.stats()["images"] == 7 and embedder.stats()["texts"] == 2


def test_broken_image_drops_only_its_own_vector(encoders):
    with BatchEmbedder(encoders, batch_size=8, max_wait=0.05) as embedder:
        result = embedder.submit([_jpeg(1), b"\xff\xd8\xff broken jpeg", _jpeg(2)], "kettle")
        result = result.result(timeout=30)
        only_bad = embedder.submit([b"nope"], None).result(timeout=30)
    assert result.image_positions == (0, 2)
    assert result.image_vectors.shape == (2, 32)
    assert list(result.image_errors) == [1] and "Error" in result.image_errors[1]
    assert result.text_vector is not None
    assert only_bad.main_image_vector is None and list(only_bad.image_errors) == [0]
    assert embedder.stats()["image_errors"] == 2


def test_partial_batch_waits_at_most_max_wait(encoders):
    with BatchEmbedder(encoders, batch_size=1000, max_wait=0.2) as embedder:
        started = time.monotonic()
        embedder.submit([_jpeg(3)], "x").result(timeout=10)
        assert time.monotonic() - started < 5


def test_flush_embeds_a_partial_batch_without_waiting(encoders):
    with BatchEmbedder(encoders, batch_size=1000, max_wait=3600) as embedder:
        future = embedder.submit([_jpeg(4)], "x")
        time.sleep(0.3)
        assert not future.done()
        embedder.flush(timeout=30)
        assert future.done() and future.result().image_vectors.shape == (1, 32)


def test_close_flushes_pending_items_and_refuses_new_ones(encoders):
    embedder = BatchEmbedder(encoders, batch_size=1000, max_wait=3600)
    futures = [embedder.submit([_jpeg(i)], f"item {i}") for i in range(3)]
    embedder.close(timeout=30)
    assert all(future.done() and not future.exception() for future in futures)
    with pytest.raises(BatchEmbedderClosed):
        embedder.submit([_jpeg(9)], "late")
    embedder.close()  # idempotent


def test_submit_blocks_while_max_pending_inputs_wait(encoders):
    with BatchEmbedder(encoders, batch_size=4, max_pending=4, max_wait=3600) as embedder:
        for i in range(3):
            embedder.submit([_jpeg(i)])
        with pytest.raises(TimeoutError):
            embedder.submit([_jpeg(5), _jpeg(6)], timeout=0.2)
        embedder.flush(timeout=30)
        future = embedder.submit([_jpeg(5), _jpeg(6)], timeout=5)  # room again
        embedder.flush(timeout=30)
        assert future.result().image_vectors.shape == (2, 32)


def test_many_threads_can_submit_at_once(encoders):
    results = []
    with BatchEmbedder(encoders, batch_size=8, max_pending=16, max_wait=0.05) as embedder:

        def crawl(worker: int) -> None:
            for i in range(10):
                future = embedder.submit([_jpeg(worker * 100 + i)], f"w{worker} item {i}")
                results.append(future.result(timeout=60))

        threads = [threading.Thread(target=crawl, args=(w,)) for w in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert len(results) == 40
    assert all(r.image_vectors.shape == (1, 32) and r.text_vector is not None for r in results)
    assert embedder.stats()["images"] == 40


def test_model_failure_fails_that_batch_and_the_embedder_goes_on(encoders, monkeypatch):
    calls = {"n": 0}
    real = encoders.image.embed_prepared

    def flaky(pixels):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("model exploded")
        return real(pixels)

    monkeypatch.setattr(encoders.image, "embed_prepared", flaky)
    with BatchEmbedder(encoders, batch_size=1, max_wait=0) as embedder:
        first = embedder.submit([_jpeg(1)], "a")
        with pytest.raises(RuntimeError, match="exploded"):
            first.result(timeout=30)
        assert embedder.submit([_jpeg(2)], "b").result(timeout=30).image_vectors.shape == (1, 32)
    assert embedder.stats()["batch_errors"] == 1


def test_item_without_images_or_text_resolves_at_once(encoders):
    with BatchEmbedder(encoders) as embedder:
        result = embedder.submit([], "").result(timeout=1)
    assert result.image_vectors.shape == (0, 32) and result.text_vector is None
    with pytest.raises(TypeError), BatchEmbedder(encoders) as embedder:
        embedder.submit(b"bytes are one image, not a list")


def test_a_blocked_submitter_gets_room_as_soon_as_the_model_takes_a_batch(encoders, monkeypatch):
    # Preparation and model work must overlap: a batch frees its room in the queue when the
    # model takes it, not when the model is done with it.
    started, release = threading.Event(), threading.Event()
    real = encoders.image.embed_prepared

    def held(pixels):
        if not started.is_set():  # hold the first batch until the test lets it go
            started.set()
            assert release.wait(30)
        return real(pixels)

    monkeypatch.setattr(encoders.image, "embed_prepared", held)
    accepted = threading.Event()
    # The partial batch falls due after max_wait, by the model thread's own clock: nothing
    # else wakes the blocked submitter.
    with BatchEmbedder(encoders, batch_size=4, max_pending=4, max_wait=2.0) as embedder:
        futures = [embedder.submit([_jpeg(i)], f"item {i}") for i in range(2)]  # 4 inputs: full

        def submit_one_more() -> None:
            futures.append(embedder.submit([_jpeg(2)], "item 2", timeout=30))
            accepted.set()

        threads = [threading.Thread(target=submit_one_more)]
        threads[0].start()
        try:
            assert not accepted.wait(0.3)  # blocked: four inputs wait, max_pending is 4
            assert started.wait(30)  # the model took the queued inputs and holds them
            assert accepted.wait(5), "submit stayed blocked while the model ran the batch"
        finally:
            release.set()
            for thread in threads:
                thread.join(30)
        embedder.flush(timeout=30)
    assert [f.result(timeout=30).image_vectors.shape for f in futures] == [(1, 32)] * 3


def test_two_workers_run_batches_side_by_side_with_the_same_vectors(encoders, monkeypatch):
    real = encoders.image.embed_prepared
    running, peak, lock = [0], [0], threading.Lock()
    both_in = threading.Barrier(2, timeout=30)

    def counted(pixels):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        try:
            both_in.wait()  # only returns once two batches are in the model at once
            return real(pixels)
        finally:
            with lock:
                running[0] -= 1

    images = [_jpeg(i) for i in range(8)]
    direct = encoders.image.encode_images(images)
    monkeypatch.setattr(encoders.image, "embed_prepared", counted)
    with BatchEmbedder(encoders, batch_size=4, max_wait=3600, workers=2) as embedder:
        futures = [embedder.submit([image]) for image in images]  # two full batches
        results = [future.result(timeout=30) for future in futures]
    assert peak[0] == 2
    np.testing.assert_allclose(
        np.concatenate([r.image_vectors for r in results]), direct, atol=1e-5
    )


def test_default_workers_fill_the_cores_with_the_encoders_calls(encoders, monkeypatch):
    import cumpair.embed.base as base
    import cumpair.embed.batch as batch

    monkeypatch.setattr(base, "default_threads", lambda: 4)
    assert encoders.image.threads == 1
    assert batch.default_workers(encoders) == 4
    monkeypatch.setattr(encoders.image, "threads", 4)
    assert batch.default_workers(encoders) == 1
    with pytest.raises(ValueError, match="workers"):
        BatchEmbedder(encoders, workers=0)


def test_inputs_embedded_before_come_from_the_cache_without_a_model_call(encoders, tmp_path):
    from cumpair.vision.cache import VisionCache

    photo = tmp_path / "photo.jpg"
    photo.write_bytes(_jpeg(11))
    images = [str(photo), _jpeg(12)]
    with BatchEmbedder(
        encoders, batch_size=4, max_wait=0.05, cache=VisionCache(tmp_path / "c.sqlite", max_bytes=0)
    ) as first:
        cold = first.submit(images, "green lamp").result(timeout=30)
    with BatchEmbedder(
        encoders, batch_size=4, max_wait=0.05, cache=VisionCache(tmp_path / "c.sqlite", max_bytes=0)
    ) as second:
        warm = second.submit(images, "green lamp").result(timeout=30)
        changed = second.submit([_jpeg(13)], "green lamp").result(timeout=30)
    assert first.stats()["cache_misses"] == 3 and first.stats()["images"] == 2
    stats = second.stats()
    assert stats["cache_hits"] == 4  # both images and the text, then the text again
    assert stats["cache_misses"] == 1 and stats["images"] == 1  # only the changed photo ran
    assert "texts" not in stats
    np.testing.assert_array_equal(warm.image_vectors, cold.image_vectors)
    np.testing.assert_array_equal(warm.text_vector, cold.text_vector)
    np.testing.assert_allclose(
        changed.image_vectors[0], encoders.image.encode_images([_jpeg(13)])[0], atol=1e-5
    )
