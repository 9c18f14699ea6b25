"""Latent consistency distillation (kaiga/families/diffusion/consistency.py) on the tiny model: the student starts
as its teacher, learns, and its folder is a model of its own that samples in few steps with guidance folded in."""

import subprocess
import sys

import pytest
import torch

from kaiga.families.diffusion.consistency import (
    boundary_scalings,
    folds_guidance,
    guidance_embedding,
    make_student,
    solver_timesteps,
)
from kaiga.families.diffusion.model import LatentDiffusion, tiny_config
from kaiga.request import GenerationRequest
from kaiga.train.commands import train_consistency
from kaiga.train.loop import LoopConfig


def test_the_student_begins_as_its_teacher_whatever_the_guidance():
    torch.manual_seed(0)
    teacher = LatentDiffusion.create(tiny_config()).unet.eval()
    student = make_student(teacher).eval()
    assert folds_guidance(student) and not folds_guidance(teacher)
    x, t, states = torch.randn(2, 4, 16, 16), torch.tensor([999, 259]), torch.randn(2, 16, teacher.config.cross_attention_dim)
    with torch.no_grad():
        expected = teacher(x, t, encoder_hidden_states=states).sample
        for w in (1.0, 6.0):
            emb = guidance_embedding(torch.full((2,), w))
            torch.testing.assert_close(student(x, t, encoder_hidden_states=states, timestep_cond=emb).sample, expected)


def test_the_boundary_condition_and_the_solver_grid_are_lcm_schedulers():
    from diffusers import LCMScheduler

    from kaiga.families.diffusion.schedulers import DEFAULT_SCHEDULER

    lcm = LCMScheduler.from_config(DEFAULT_SCHEDULER)
    for t in (0, 19, 259, 999):
        c_skip, c_out = boundary_scalings(torch.tensor([t]))
        assert (c_skip.item(), c_out.item()) == pytest.approx(lcm.get_scalings_for_boundary_condition_discrete(t))
    lcm.set_timesteps(4)
    assert set(lcm.timesteps.tolist()) <= set(solver_timesteps(50).tolist())  # it samples where the student learnt


def test_distillation_learns_and_the_student_is_a_model_of_its_own(tiny_model_dir, tiny_scenes, tmp_path):
    loop = LoopConfig(steps=24, batch_size=4, lr=3e-4, warmup_steps=2, log_every=4, sample_every=0, progress=False)
    state = train_consistency(tiny_scenes, tmp_path / "fast", tiny_model_dir, loop)
    import json

    losses = [json.loads(line)["loss"] for line in (tmp_path / "fast" / "log.jsonl").read_text().splitlines()]
    assert state["step"] == 24 and sum(losses[-2:]) < sum(losses[:2]), losses
    student = LatentDiffusion.load(tmp_path / "fast")
    assert folds_guidance(student.unet)
    assert student.info["samplers"] == ["lcm", "ddim"] and student.info["defaults"]["steps"] == 4
    assert student.info["distilled_from"]["model"] == tiny_model_dir.name
    assert student.info["training"]["runs"][-1]["stage"] == "consistency"
    for sampler in ("lcm", "ddim"):
        first, again = (student.sample(GenerationRequest(prompt="a red car", sampler=sampler, steps=2), [5])[0]
                        for _ in range(2))
        assert first.size == (64, 64) and first.tobytes() == again.tobytes()
    # guidance is read by the UNet: another scale, another picture, from one UNet call a step
    g3, g6 = (student.sample(GenerationRequest(prompt="a red car", guidance=g, steps=1), [5])[0] for g in (3.0, 6.0))
    assert g3.tobytes() != g6.tobytes()
    with pytest.raises(ValueError, match="composed prompt"):
        student.sample(GenerationRequest(prompt="a red car AND snow", steps=1), [5])
    # said before any work, as every limit is: what a distilled model has no unconditional branch for
    from kaiga.capabilities import Capabilities, check_request
    from kaiga.request import RequestError

    caps = Capabilities.from_info(student.info)
    assert caps.folds_guidance
    for bad, field in (({"negative_prompt": "blurry"}, "negative_prompt"), ({"prompt": "a red car AND snow"}, "prompt")):
        with pytest.raises(RequestError, match=f"^{field}:"):
            check_request(caps, GenerationRequest(**{"prompt": "a red car", **bad}))


def test_a_student_folder_of_its_unet_alone_shares_the_rest_with_its_teacher(tiny_model_dir, tiny_scenes, tmp_path):
    """How scenes-fast ships (scripts/ship_scenes_fast.py): unet/ and kaiga.json's `shares_with`; the autoencoder,
    text encoder, tokenizer and scheduler are read from the teacher's folder beside it, the same pixels result, and
    the model hash covers the shared weights too."""
    import json
    import shutil

    from kaiga.families.diffusion.folder import FolderError, loaded_files
    from kaiga.model_files import ModelError, load_model, resolve_model

    loop = LoopConfig(steps=2, batch_size=2, lr=3e-4, warmup_steps=1, sample_every=0, progress=False)
    train_consistency(tiny_scenes, tmp_path / "full", tiny_model_dir, loop)
    shutil.copytree(tiny_model_dir, tmp_path / "teacher")
    for part in ("vae", "text_encoder", "tokenizer", "scheduler"):  # the export's copies are fp16: the teacher's here
        shutil.rmtree(tmp_path / "full" / part)
        shutil.copytree(tiny_model_dir / part, tmp_path / "full" / part)
    shared = tmp_path / "fast"
    shutil.copytree(tmp_path / "full" / "unet", shared / "unet")
    shutil.copy2(tmp_path / "full" / "model_index.json", shared)
    info = json.loads((tmp_path / "full" / "kaiga.json").read_text())
    (shared / "kaiga.json").write_text(json.dumps({**info, "shares_with": "teacher"}))
    request = GenerationRequest(prompt="a red car", steps=2)
    full, alone = (LatentDiffusion.load(d).sample(request, [3])[0] for d in (tmp_path / "full", shared))
    assert full.tobytes() == alone.tobytes()
    assert {f.parent.parent.name for f in loaded_files(shared)} == {"fast", "teacher"}
    (shared / "kaiga.json").write_text(json.dumps({**info, "shares_with": "no-such-model"}))
    with pytest.raises(FolderError, match="has no [a-z_]+/ and its shares_with model 'no-such-model' has none"):
        loaded_files(shared)
    with pytest.raises(ModelError):
        load_model(resolve_model(str(shared)), torch.device("cpu"))


def test_kaiga_train_distill(tiny_model_dir, tiny_scenes, tmp_path):
    base = [sys.executable, "-m", "kaiga", "train", "distill", "--data", str(tiny_scenes), "--teacher", str(tiny_model_dir)]
    bad = subprocess.run([*base, "--out", str(tmp_path / "x"), "--guidance-range", "6"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--guidance-range: two numbers" in bad.stderr and "Traceback" not in bad.stderr
    r = subprocess.run([*base, "--out", str(tmp_path / "fast"), "--steps", "3", "--batch-size", "2", "--sample-every", "0"],
                       capture_output=True, text=True, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    assert "distill: 3 steps" in r.stdout and (tmp_path / "fast" / "unet" / "config.json").exists()
