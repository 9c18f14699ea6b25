"""The family contract (kaiga.families.base), held against every family with a tiny model.

Each family must: compute a finite loss whose gradient reaches its weights; give one native-size
image per seed, the same for the same seed whatever the batch; save and load to the same images;
explain itself in captioned frames; train on the shared loop through FamilyTask; and serve through
the Studio with its family in every image's record.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kaiga.families.registry import FAMILIES, family_class
from kaiga.request import GenerationRequest, RequestError

# Per family: how to make its tiny model, and the training stages its loss has (None: one).
STAGES = {"diffusion": ["autoencoder", "denoiser"], "gan": [None], "vae": [None], "transformer": ["tokenizer", "prior", "scorer"]}


def tiny(family: str):
    torch.manual_seed(0)
    if family == "diffusion":
        from kaiga.families.diffusion.model import LatentDiffusion, tiny_config

        return LatentDiffusion.create(tiny_config())
    cls = family_class(family)
    return cls.create(cls.config_class.tiny())


def request(**kw) -> GenerationRequest:
    return GenerationRequest(prompt="a red car to the left of a blue dog in the snow", steps=2, **kw)


def same(a, b) -> bool:
    """Equal images; batched matrix products may differ in the last float bits, so ±1 grey level."""
    diffs = [np.abs(np.asarray(x, np.int16) - np.asarray(y, np.int16)).max() for x, y in zip(a, b)]
    return len(a) == len(b) and max(diffs) <= 1


def batch(model, n=4):
    g = torch.Generator().manual_seed(0)
    ids = model.tokenize(["a red car in the city", "two dogs on the beach", "a cat", "a bird"][:n])
    return {"pixels": torch.rand(n, 3, 64, 64, generator=g) * 2 - 1, "input_ids": ids, "generator": g}


def test_every_family_is_registered():
    assert sorted(FAMILIES) == sorted(STAGES)


@pytest.mark.parametrize("family", sorted(STAGES))
def test_loss_is_finite_and_reaches_the_weights(family):
    model = tiny(family)
    for stage in STAGES[family]:
        if stage is not None:
            model.set_stage(stage)
        model.zero_grad(set_to_none=True)
        loss, logs = model.loss(batch(model))
        assert loss.ndim == 0 and torch.isfinite(loss), (family, stage)
        assert all(isinstance(v, (int, float)) for v in logs.values())  # numbers the loop can log
        loss.backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert grads and any(g.abs().sum() > 0 for g in grads), (family, stage)


@pytest.mark.parametrize("family", sorted(STAGES))
def test_same_seed_same_image_whatever_the_batch(family):
    model = tiny(family).eval()
    alone = model.sample(request(), [5], batch_size=1)
    # The transformer batches (image, candidate) rows, 4 candidates an image: 3 rows a batch make
    # batches that mix the seeds' rows (with 2, each batch held one seed's rows only).
    together = model.sample(request(), [4, 5, 6], batch_size=3 if family == "transformer" else 2)
    assert [im.size for im in together] == [(64, 64)] * 3
    assert same(alone, together[1:2])
    # Different seeds give different images (else the check above would hold for a model that
    # ignored its seeds): for every family, the transformer too.
    assert not same(together[:1], together[1:2]) and not same(together[1:2], together[2:3])


@pytest.mark.parametrize("family", sorted(STAGES))
def test_save_and_load_give_the_same_images(family, tmp_path):
    model = tiny(family).eval()
    folder = model.save(tmp_path / family)
    loaded = type(model).load(folder)
    assert loaded.info["family"] == family
    assert same(model.sample(request(), [1, 2]), loaded.sample(request(), [1, 2]))


@pytest.mark.parametrize("family", sorted(STAGES))
def test_explain_gives_captioned_frames(family):
    frames, captions = tiny(family).eval().explain("a red car in the city", seed=3)
    assert len(frames) == len(captions) >= 4
    assert all(isinstance(c, str) and c for c in captions)


@pytest.mark.parametrize("family", sorted(STAGES))
def test_trains_on_the_shared_loop(family, tiny_scenes, tmp_path):
    from kaiga.train.family_task import FamilyTask
    from kaiga.train.loop import LoopConfig, train

    model = tiny(family)
    out = tmp_path / "run"
    for stage in STAGES[family]:
        if stage is not None:
            model.set_stage(stage)
        state = train(FamilyTask(model, tiny_scenes, batch_size=4), LoopConfig(steps=2, warmup_steps=0, sample_every=0,
                                                                              progress=False), out)
        assert state["step"] == 2 and np.isfinite(state["loss"])
        (out / "checkpoint" / "state.json").unlink()  # the next stage starts afresh in the same folder
    from kaiga.model_files import load_model, resolve_model

    loaded = load_model(resolve_model(str(out)), torch.device("cpu"))
    assert loaded.info["family"] == family


@pytest.mark.parametrize("family", sorted(STAGES))
def test_studio_serves_the_family_with_its_record(family, tmp_path):
    from kaiga.provenance.watermark import payload_of
    from kaiga.store.uploads import UploadStore
    from kaiga.studio import Studio

    model = tiny(family)
    caps = model.capabilities  # declared by the family, saved in kaiga.json, checked by the Studio
    folder = model.save(tmp_path / f"tiny-{family}")
    studio = Studio(device="cpu", uploads=UploadStore(tmp_path / "uploads"))
    options = {caps.options[0]: 0.5} if caps.options else {}  # an option the family reads
    [img] = studio.generate(request(model=str(folder), seed=9, **options))
    assert img.record.family == family and img.record.seed == 9
    # The family options it read are in the record; the steps only a denoising family reads are named
    # as ignored instead; and the payload of the watermark every image carries.
    extra = dict(img.record.extra)
    assert extra.pop("watermark") == f"{payload_of(img.record):08x}"
    assert extra == options | ({} if caps.denoises else {"ignored_fields": ["steps"]})
    assert img.image.size == (caps.native_size, caps.native_size)
    too_wide = caps.max_size + caps.size_multiple
    refusal = "width: a .* model makes 64×64 images only" if caps.one_size else f"width: at most {caps.max_size}"
    with pytest.raises(RequestError, match=refusal):
        studio.generate(request(model=str(folder), width=too_wide))
    init = studio.uploads.add(img.image)
    if caps.edits:
        [edited] = studio.generate(request(model=str(folder), seed=9, init_image=init, strength=0.5))
        assert edited.record.init_image == init and edited.record.strength == 0.5
    else:
        with pytest.raises(RequestError, match="init_image: image edits need a diffusion model"):
            studio.generate(request(model=str(folder), init_image=init))
