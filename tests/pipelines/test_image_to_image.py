import numpy as np
import pytest
from PIL import Image, ImageDraw

from kaiga.families.diffusion.model import LatentDiffusion
from kaiga.model_files import resolve_model
from kaiga.pipelines.image_to_image import image_to_image, steps_run
from kaiga.request import GenerationRequest, RequestError
from kaiga.store.uploads import UploadStore
from kaiga.studio import Studio

EDIT = "0" * 64  # any hash: the pipeline takes the images themselves


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    return LatentDiffusion.load(tiny_model_dir)


@pytest.fixture(scope="module")
def trained():
    """The bundled model: a trained autoencoder, so "close to the init image" means something."""
    return LatentDiffusion.load(resolve_model(None).path)


def _init(size=(64, 64)) -> Image.Image:
    im = Image.new("RGB", size, (40, 120, 200))
    ImageDraw.Draw(im).rectangle((10, 30, 50, 50), fill=(200, 30, 30))
    return im


def _left_half_white() -> Image.Image:
    mask = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(mask).rectangle((0, 0, 31, 63), fill=255)
    return mask


def _arrays(images):
    return [np.asarray(im, np.int16) for im in images]


@pytest.mark.parametrize("sampler", ["ddim", "euler-a"])
@pytest.mark.parametrize("with_mask", [False, True])
def test_a_seed_gives_the_same_edit_whatever_the_batch(model, sampler, with_mask):
    req = GenerationRequest(prompt="a red car", steps=4, sampler=sampler, n=3, init_image=EDIT, strength=0.8,
                            mask=EDIT if with_mask else None)
    mask = _left_half_white() if with_mask else None
    alone = _arrays(image_to_image(model, req, _init(), [11], mask, batch_size=1))
    together = _arrays(image_to_image(model, req, _init(), [10, 11, 12], mask, batch_size=3))
    in_pairs = _arrays(image_to_image(model, req, _init(), [10, 11, 12], mask, batch_size=2))
    assert np.abs(alone[0] - together[1]).max() <= 1
    assert np.abs(in_pairs[1] - together[1]).max() <= 1
    assert np.abs(together[0] - together[1]).mean() > 1


def test_inpainting_changes_only_the_white_area(trained):
    init = _init()
    req = GenerationRequest(prompt="a green tree in the forest", steps=10, init_image=EDIT, mask=EDIT, strength=1.0)
    [out] = _arrays(image_to_image(trained, req, init, [3], _left_half_white()))
    diff = np.abs(out - np.asarray(init, np.int16))
    assert diff[:, 32:].max() == 0  # kept: the init image's own pixels
    assert diff[:, :32].mean() > 10  # repainted


def test_latent_blending_keeps_the_unmasked_area_before_the_overlay(trained):
    """Before the final pixel overlay, the kept half is already the init image (decoded), the other half not.

    The kept half's mask is grey 127: below half grey, so the latents keep it (the mask convention),
    while the overlay mixes 127/255 of the decoded image with 128/255 of the init image; the decoded
    image is solved for from that mix (to about one grey level), so nothing needs patching.
    """
    init = _init()
    mask = Image.new("L", (64, 64), 127)
    ImageDraw.Draw(mask).rectangle((0, 0, 31, 63), fill=255)
    req = GenerationRequest(prompt="a green tree in the forest", steps=10, init_image=EDIT, mask=EDIT, strength=1.0)
    [out] = image_to_image(trained, req, init, [3], mask)
    out, m, kept = (np.asarray(a, np.float64) for a in (out, mask, init))
    m = m[..., None]
    decoded = (255 * out - (255 - m) * kept) / m  # the overlay: out = (decoded * m + init * (255 - m)) / 255
    diff = np.abs(decoded - kept)
    assert diff[:, 40:].mean() < diff[:, :24].mean() / 2  # away from the seam, where latents mix


def test_more_strength_moves_further_from_the_init_image(trained):
    init = _init()
    distance = {}
    for strength in (0.2, 0.9):
        req = GenerationRequest(prompt="a red car", steps=10, init_image=EDIT, strength=strength)
        outs = _arrays(image_to_image(trained, req, init, [1, 2]))
        distance[strength] = np.mean([np.abs(o - np.asarray(init, np.int16)).mean() for o in outs])
    assert distance[0.2] < distance[0.9] / 1.5


def test_size_progress_and_upscale(model):
    req = GenerationRequest(prompt="a car", steps=4, strength=0.5, init_image=EDIT, width=96, height=64, upscale=2, n=2)
    seen = []
    outs = image_to_image(model, req, _init((100, 30)), [1, 2], on_step=lambda done, total: seen.append((done, total)))
    assert [o.size for o in outs] == [(192, 128)] * 2
    assert steps_run(req) == 2 and seen[-1] == (4, 4)
    with pytest.raises(RequestError, match="width: must be a multiple of 16"):
        image_to_image(model, req.model_copy(update={"width": 72}), _init(), [0])


def test_studio_records_the_edit_and_repeats_it(tiny_model_dir, tmp_path):
    store = UploadStore(tmp_path / "uploads")
    init, mask = store.add(_init()), store.add(_left_half_white())
    studio = Studio(uploads=store)
    req = GenerationRequest(prompt="a red car", steps=4, seed=7, model=str(tiny_model_dir), init_image=init,
                            mask=mask, strength=0.5)
    [first] = studio.generate(req)
    [again] = studio.generate(req)
    rec = first.record
    assert (rec.init_image, rec.mask, rec.strength, rec.steps) == (init, mask, 0.5, 4)
    assert np.array_equal(np.asarray(first.image), np.asarray(again.image))
    with pytest.raises(RequestError, match="init_image: no upload"):
        studio.generate(req.model_copy(update={"init_image": "f" * 64}))


def test_mask_blur_softens_the_seam_and_keeps_the_far_side(trained):
    """A hard mask keeps every pixel right of the seam; mask_blur 4 blends a few columns across it (as A1111's
    overlay), and the far right stays the init image's own."""
    init = _init()
    base = dict(prompt="a green tree in the forest", steps=6, init_image=EDIT, mask=EDIT, strength=1.0)
    [hard] = _arrays(image_to_image(trained, GenerationRequest(**base), init, [3], _left_half_white()))
    [soft] = _arrays(image_to_image(trained, GenerationRequest(**base, mask_blur=4), init, [3], _left_half_white()))
    kept = np.abs(soft - np.asarray(init, np.int16))
    assert np.abs(hard - np.asarray(init, np.int16))[:, 32:].max() == 0
    assert kept[:, 32:36].mean() > 0.5  # the seam is blended into the kept side
    assert kept[:, 48:].max() == 0  # beyond the blur's reach: the init's pixels
    assert np.abs(soft[:, 28:32] - hard[:, 28:32]).mean() > 0.5  # and the repainted edge takes in the kept side
