"""The transformer family (DALL-E recipe) on tiny configs: stages, sampling, reranking, files, training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kaiga.data.dataset import write_scenes
from kaiga.families.transformer import DalleTransformer, Stage, TransformerConfig
from kaiga.families.transformer.config import STAGE_ORDER
from kaiga.families.transformer.model import candidate_seed
from kaiga.request import GenerationRequest, RequestError
from kaiga.train.family_task import FamilyTask
from kaiga.train.loop import LoopConfig, train

PROMPT = "a red car in the snow"


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return DalleTransformer.create(TransformerConfig.tiny()).eval()


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    return write_scenes(tmp_path_factory.mktemp("scenes"), n=8)


def arrays(images):
    return [np.asarray(im, dtype=np.int16) for im in images]


def same_images(a, b, tol=1):
    """Equal up to one grey level: a row computed in a different batch may round differently."""
    return len(a) == len(b) and all(np.abs(x - y).max() <= tol for x, y in zip(arrays(a), arrays(b)))


@pytest.mark.parametrize("stage", list(Stage))
def test_each_stage_trains_only_its_part(model, scenes, stage):
    task = FamilyTask(model, scenes, batch_size=4)
    model.set_stage(stage).train()
    model.zero_grad(set_to_none=True)
    loss, logs = model(task.batch(0, 0, torch.Generator().manual_seed(0)))
    loss.backward()
    model.eval()
    assert math.isfinite(loss.item()) and all(math.isfinite(v) for v in logs.values())
    own = {id(p) for p in model.stage_module(stage).parameters()}
    assert all(p.grad is not None for p in model.stage_module(stage).parameters())
    assert all(p.grad is None for p in model.parameters() if id(p) not in own)
    [group] = model.param_groups(LoopConfig(lr=1e-3))
    assert {id(p) for p in group["params"]} == own and group["lr"] == 1e-3
    model.zero_grad(set_to_none=True)


def test_same_seed_same_image_whatever_the_batch(model):
    request = GenerationRequest(prompt=PROMPT)
    seeds = [5, 6, 7, 8, 9]
    together = model.sample(request, seeds, batch_size=5)
    apart = model.sample(request, seeds, batch_size=2)
    alone = model.sample(request, [7])
    assert same_images(together, apart) and same_images(together[2:3], alone)
    assert not same_images(together[:1], together[1:2], tol=0)  # the seed matters


def test_cached_and_uncached_decoding_agree(model):
    codes = {cache: model.draw_codes([PROMPT, "two dogs"], [1, 2], top_k=1, use_cache=cache) for cache in (True, False)}
    assert torch.equal(codes[True], codes[False])
    # Sampled (not greedy) too: the same logits and generators give the same draws.
    codes = {cache: model.draw_codes([PROMPT], [3], top_k=0, use_cache=cache) for cache in (True, False)}
    assert torch.equal(codes[True], codes[False])


def test_top_k_1_is_greedy(model):
    images = model.sample(GenerationRequest(prompt=PROMPT, top_k=1), [0, 1, 2])
    assert same_images(images[:1] * 2, images[1:], tol=0)


def test_sampled_ids_are_image_tokens(model):
    v = model.vocab
    prefix = v.prefix(model.tokenize([PROMPT] * 3))
    from kaiga.families.transformer.prior import image_warpers, sample_codes

    gens = [torch.Generator().manual_seed(s) for s in range(3)]
    codes = sample_codes(model.gpt, v, prefix, gens, 64, image_warpers(2.0, 0, 1.0))
    assert codes.min() >= 0 and codes.max() < v.codes  # so every id is in [first_code, boi)


def test_candidates_keep_the_best_scored(model):
    seeds, n = [11, 12], 4
    best = model.sample(GenerationRequest(prompt=PROMPT, candidates=n), seeds)
    for seed, image in zip(seeds, best):
        cand = [candidate_seed(seed, j) for j in range(n)]
        d = model.config.sampling
        x = model.decode(model.draw_codes([PROMPT] * n, cand, temperature=d.temperature, top_k=d.top_k, top_p=d.top_p))
        scores = model.scorer.similarity(x, model.tokenize([PROMPT] * n))
        assert len(set(scores.tolist())) == n  # the choice is not a tie
        from kaiga.images import to_pil

        assert same_images([image], [to_pil(x)[int(scores.argmax())]])
    assert candidate_seed(11, 0) == 11  # one candidate is the plain draw


def test_progress_and_explain(model):
    seen = []
    model.sample(GenerationRequest(prompt=PROMPT), [1, 2, 3], batch_size=2, on_step=lambda d, t: seen.append((d, t)))
    n = model.config.sampling.candidates  # every candidate's tokens count as work done
    assert seen[-1] == (3 * n * 64, 3 * n * 64) and all(a <= b for (a, _), (b, _) in zip(seen, seen[1:]))
    frames, captions = model.explain(PROMPT, seed=4)
    assert len(frames) == 8 and captions[0] == "tokens 8/64" and captions[-1] == f"tokens 64/64, best of {n}"
    first = np.asarray(frames[0])
    assert (first[8:] == 128).all()  # rows of codes not yet written are grey
    assert same_images(frames[-1:], model.sample(GenerationRequest(prompt=PROMPT), [4]))


def test_refuses_other_sizes(model):
    with pytest.raises(RequestError, match="width"):
        model.sample(GenerationRequest(prompt=PROMPT, width=128), [0])


def test_save_load_round_trip(model, tmp_path):
    model.set_stage(Stage.PRIOR)
    loaded = DalleTransformer.load(model.save(tmp_path / "m"))
    assert loaded.stage is Stage.TOKENIZER and loaded.config == model.config  # the stage is not saved
    request = GenerationRequest(prompt=PROMPT, candidates=2, temperature=0.8, top_p=0.9)
    assert same_images(model.sample(request, [1, 2]), loaded.sample(request, [1, 2]), tol=0)


def test_three_stages_through_the_loop(scenes, tmp_path):
    torch.manual_seed(0)
    from kaiga.train.commands import train_family

    cfg = LoopConfig(steps=3, batch_size=4, warmup_steps=0, sample_every=3, progress=False)
    previous = None
    for stage in STAGE_ORDER:  # as `kaiga train transformer --stage S --init PREVIOUS` runs them
        train_family("transformer", scenes, tmp_path / stage.value, cfg, size="tiny", init=previous, stage=stage.value)
        previous = tmp_path / stage.value
    assert (tmp_path / "prior" / "samples" / "step0000003.png").exists()
    tokenizer, prior, scorer = (DalleTransformer.load(tmp_path / s.value) for s in STAGE_ORDER)
    assert [r["stage"] for r in scorer.info["training"]["runs"]] == ["tokenizer", "prior", "scorer"]
    # Each stage changed its part only.
    assert not torch.equal(tokenizer.gpt.transformer.wte.weight, prior.gpt.transformer.wte.weight)
    assert torch.equal(tokenizer.vq.encoder.conv_in.weight, prior.vq.encoder.conv_in.weight)
    assert torch.equal(prior.gpt.transformer.wte.weight, scorer.gpt.transformer.wte.weight)
    assert not torch.equal(prior.scorer.log_scale, scorer.scorer.log_scale)


def test_training_one_stage_leaves_the_others_untouched(scenes, tmp_path):
    torch.manual_seed(1)
    model = DalleTransformer.create(TransformerConfig.tiny()).set_stage("scorer")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train(FamilyTask(model, scenes, batch_size=4), LoopConfig(steps=3, batch_size=4, warmup_steps=0, sample_every=0,
                                                              progress=False), tmp_path)
    after = model.state_dict()
    changed = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"scorer"}


def test_text_loss_weight_adds_caption_cross_entropy(scenes):
    from dataclasses import replace

    c = TransformerConfig.tiny()
    model = DalleTransformer.create(replace(c, gpt=replace(c.gpt, text_loss_weight=0.125))).set_stage("prior")
    loss, logs = model(FamilyTask(model, scenes, batch_size=4).batch(0, 0, torch.Generator().manual_seed(0)))
    assert math.isclose(loss.item(), logs["image_ce"] + 0.125 * logs["text_ce"], rel_tol=1e-5)


def test_prompts_must_match_seeds(model):
    with pytest.raises(ValueError, match="one prompt per seed"):
        model.sample(GenerationRequest(prompt=PROMPT), [1, 2], prompts=["a dog"])
    assert model.sample(GenerationRequest(prompt=PROMPT), []) == []
