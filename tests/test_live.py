"""kaiga.live.LiveSession on the tiny model: superseded frames, and null fields going back to their defaults."""

from kaiga.live import LiveSession, LiveSettings
from kaiga.studio import Studio


def test_a_frame_made_stale_is_abandoned_unless_the_settings_keep_it(tiny_model_dir):
    studio = Studio(watermark=False)
    live = LiveSession(studio, defaults={"model": str(tiny_model_dir), "steps": 3})
    live.update({"prompt": "a red car"})
    steps_asked = []
    frame = live.render(stale=lambda: steps_asked.append(1) or True)
    assert frame.skipped == "superseded by a newer update" and frame.image is None and len(steps_asked) == 1
    assert live.render().image is not None  # not counted as drawn: the same request is drawn next time

    keeps = LiveSession(studio, LiveSettings(supersede=False), defaults={"model": str(tiny_model_dir), "steps": 3})
    keeps.update({"prompt": "a red car"})
    assert keeps.render(stale=lambda: True).image is not None


def test_a_null_field_goes_back_to_its_default(tiny_model_dir):
    live = LiveSession(Studio(watermark=False), defaults={"model": str(tiny_model_dir)})
    assert live.update({"prompt": "a red car", "steps": 2, "seed": 9}).steps == 2
    request = live.update({"steps": None, "seed": None})
    assert request.steps is None and request.seed == 0 and request.prompt == "a red car"


def test_going_back_to_a_prompt_already_drawn_shows_its_frame_again(tiny_model_dir):
    live = LiveSession(Studio(watermark=False), LiveSettings(keep=2), defaults={"model": str(tiny_model_dir), "steps": 2})
    drawn = {}
    for prompt in ("a red car", "a blue car"):
        live.update({"prompt": prompt})
        drawn[prompt] = live.render()
    live.update({"prompt": "a red car"})  # back, as Backspace does
    again = live.render()
    assert again.cached and again.png == drawn["a red car"].png and again.number == 3 and again.ms == 0.0
    for prompt in ("a green car", "a yellow car"):  # two more: only the last two are kept
        live.update({"prompt": prompt})
        live.render()
    live.update({"prompt": "a blue car"})
    assert not live.render().cached


def test_a_warm_start_redraws_the_previous_frame_when_only_the_prompt_changed(tiny_model_dir):
    studio = Studio(watermark=False)
    live = LiveSession(studio, LiveSettings(warm_start=0.5), defaults={"model": str(tiny_model_dir), "steps": 4})
    live.update({"prompt": "a red car"})
    first = live.render()
    assert not first.warm  # nothing to start from
    live.update({"prompt": "a red car in the snow"})
    warm = live.render()
    assert warm.warm and warm.record["strength"] == 0.5 and warm.record["init_image"]
    assert studio.uploads.open(warm.record["init_image"]).size == (64, 64)  # its init is kept: it can be re-run
    live.update({"seed": 9})  # another seed: a new picture from noise
    assert not live.render().warm
