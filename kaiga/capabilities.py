"""What a model can make, declared once per model in its `kaiga.json`, and the one check of a request against it.

The Studio checks every request here before it runs, and the server before it queues a job, so a
request a model cannot serve is refused the same way, with a message naming the field, whichever
interface it came through. No torch import: the server checks requests without loading a model.

Example:
    >>> caps = Capabilities.from_info({"family": "gan", "native_size": 64})
    >>> caps.max_size, caps.edits, caps.samplers
    (64, False, ())
    >>> from kaiga.request import GenerationRequest
    >>> try:
    ...     check_request(caps, GenerationRequest(prompt="a red car", width=128))
    ... except Exception as e:
    ...     print(e)
    width: a gan model makes 64×64 images only (got 128)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from kaiga.prompt_syntax import is_composed
from kaiga.request import FAMILY_OPTIONS, GenerationRequest, RequestError

# The keys of kaiga.json that `Capabilities` reads and writes.
CAPABILITY_KEYS = ("family", "native_size", "max_size", "size_multiple", "samplers", "edits", "options", "defaults")
# A model's defaults for the request fields left out (None), where its kaiga.json has no `defaults`:
# kaiga's own diffusion models. Stable Diffusion downloads get diffusers' (steps 50, guidance 7.5) from
# `LatentDiffusion.from_components`.
DEFAULTS = {"steps": 20, "guidance": 3.0, "upscale": 1}
# The request fields that only a denoising family (`Capabilities.denoises`) reads.
DENOISING_FIELDS = ("sampler", "steps", "guidance", "negative_prompt")
VIEW_PIXELS = 256  # the CLI enlarges smaller images to at least this for a screen (`view_upscale`)


@dataclass(frozen=True)
class Capabilities:
    family: str
    native_size: int = 64  # pixels; a request without width/height gets this
    max_size: int = 64  # pixels, either side
    size_multiple: int = 8  # width and height must divide by it (the latent and UNet downsampling)
    samplers: tuple[str, ...] = ()  # empty: a diffusion model takes every one; the other families have none
    edits: bool = False  # image-to-image, inpainting
    options: tuple[str, ...] = ()  # the family options of the request (FAMILY_OPTIONS) that it reads
    defaults: tuple[tuple[str, int | float], ...] = tuple(DEFAULTS.items())  # steps, guidance, upscale
    # a distilled student (kaiga train distill) reads the guidance scale itself: no unconditional branch
    folds_guidance: bool = False

    @property
    def default(self) -> dict:
        """The model's defaults by field name: steps, guidance, upscale."""
        return dict(self.defaults)

    @property
    def denoises(self) -> bool:
        """A denoising family (diffusion): it reads sampler, steps, guidance and the negative prompt. (Not
        `samplers`: a Stable Diffusion folder declares none and takes every one.)"""
        return self.family == "diffusion"

    @property
    def one_size(self) -> bool:
        return self.max_size == self.native_size and not self.edits

    @classmethod
    def from_info(cls, info: dict) -> "Capabilities":
        """From a model's `kaiga.json`; keys an older file lacks take the family's defaults."""
        family = info.get("family", "diffusion")
        native = int(info.get("native_size", 64))
        diffusion = family == "diffusion"
        return cls(
            family=family,
            native_size=native,
            max_size=int(info.get("max_size", 2048 if diffusion else native)),
            size_multiple=int(info.get("size_multiple") or _size_multiple_from_config(info.get("config"))),
            samplers=tuple(info.get("samplers", ())),
            edits=bool(info.get("edits", diffusion)),
            options=tuple(info.get("options", () if diffusion else FAMILY_OPTIONS)),
            defaults=tuple({**DEFAULTS, **(info.get("defaults") or {})}.items()),
            folds_guidance=bool(info.get("folds_guidance", False)),
        )

    def to_info(self) -> dict:
        """The kaiga.json keys (JSON has no tuples)."""
        info = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        info["defaults"] = self.default
        return info

    def view_upscale(self, request: GenerationRequest) -> int:
        """An enlargement that shows the request's images at `VIEW_PIXELS` or more (the CLI's default upscale):
        4 for the bundled 64-pixel models, 1 for Stable Diffusion's 512."""
        width, height = output_size(self, request)
        return max(self.default["upscale"], -(-VIEW_PIXELS // max(width, height)))


def _size_multiple_from_config(config: dict | None) -> int:
    """kaiga.json files written before `size_multiple`: the VAE's × the UNet's downsampling of a diffusion config."""
    if not config or "vae" not in config or "unet" not in config:
        return 8
    depth = len(config["vae"]["block_out_channels"]) - 1 + len(config["unet"]["block_out_channels"]) - 1
    return 2**depth


def check_request(caps: Capabilities, request: GenerationRequest) -> None:
    """RequestError naming the first field of `request` that the model cannot serve."""
    if request.is_edit and not caps.edits:
        raise RequestError(f"init_image: image edits need a diffusion model; this is a {caps.family} model")
    for name in ("width", "height"):
        v = getattr(request, name)
        if v is None:
            continue
        if caps.one_size and v != caps.native_size:
            raise RequestError(f"{name}: a {caps.family} model makes {caps.native_size}×{caps.native_size} "
                               f"images only (got {v})")
        if v % caps.size_multiple:
            raise RequestError(f"{name}: must be a multiple of {caps.size_multiple} for this model (got {v})")
        if v > caps.max_size:
            raise RequestError(f"{name}: at most {caps.max_size} for this model (got {v})")
    if caps.folds_guidance and request.negative_prompt.strip():
        raise RequestError("negative_prompt: this model folds guidance into its UNet (a distilled few-step model) and "
                           "has no unconditional branch to steer away from; leave it empty")
    if caps.folds_guidance and is_composed(request.prompt):
        raise RequestError("prompt: a composed prompt (AND, ::, [a:b:when]) is summed against the unconditional "
                           "branch, which this distilled model does not have")
    if caps.samplers and request.sampler.value not in caps.samplers:
        raise RequestError(f"sampler: this model supports {', '.join(caps.samplers)} (got {request.sampler.value!r})")
    steps = request.steps or caps.default["steps"]
    if request.is_edit and int(steps * request.denoise_strength) < 1:  # as the request checks given steps
        raise RequestError(f"strength: {request.denoise_strength:g} × {steps} steps runs no step; "
                           f"raise strength or steps")


def ignored_fields(caps: Capabilities, request: GenerationRequest) -> list[str]:
    """The fields `request` sets that this model does not read (steps on a GAN, truncation on diffusion):
    they are dropped before it runs (`with_defaults`), named in a warning, and not written into the record."""
    unread = [] if caps.denoises else list(DENOISING_FIELDS)
    unread += [name for name in FAMILY_OPTIONS if name not in caps.options]
    defaults = GenerationRequest.model_fields
    return [name for name in unread
            if name in request.model_fields_set and getattr(request, name) != defaults[name].default]


def with_defaults(caps: Capabilities, request: GenerationRequest) -> GenerationRequest:
    """`request` as the model runs it: the model's defaults for steps and guidance where it left them out,
    and the fields the model does not read (`ignored_fields`) back at their defaults (None: not used)."""
    update = {name: GenerationRequest.model_fields[name].default for name in ignored_fields(caps, request)}
    filled = ("steps", "guidance", "upscale") if caps.denoises else ("upscale",)
    update |= {name: caps.default[name] for name in filled if getattr(request, name) is None}
    return request.model_copy(update=update) if update else request


def output_size(caps: Capabilities, request: GenerationRequest) -> tuple[int, int]:
    """Width and height of the request's images: its own, else the model's native size."""
    return request.width or caps.native_size, request.height or caps.native_size
