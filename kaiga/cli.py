"""The `kaiga` command line: parse, validate, present. No generation logic of its own.

Example:
    $ kaiga generate "a red car in the snow at night" --seed 7 --n 4 --grid
    $ kaiga info outputs/0000000007-a-red-car-in-the-snow-at-night-1f0c2a9b.png
"""

from __future__ import annotations

import errno
import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from kaiga.cli_common import (  # noqa: F401 (re-exported: the commands and tests use them from here)
    EXIT_USAGE,
    MAX_DEFAULT_THREADS,
    _ascii_letter,
    _Backend,
    _busy_cores,
    _check_backend,
    _check_device,
    _check_precision,
    _cores,
    _Db,
    _Device,
    _given,
    _input_path,
    _open_db,
    _output_stem,
    _pixels_key,
    _remix,
    _RichWarning,
    _save_new,
    _setup_logging,
    _slug,
    _Threads,
    _use_threads,
    _view_upscale,
    _writable_file,
    _writable_folder,
    _write_new,
    default_threads,
    err,
    fail,
    out,
)
from kaiga.cli_options import request_options
from kaiga.request import FAMILY_OPTIONS, field_specs

app = typer.Typer(help="kaiga: an AI image-generation studio. Every image carries how it was made.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
data_app = typer.Typer(help="Make datasets.", no_args_is_help=True)
train_app = typer.Typer(help=(
    "Train models (Accelerate: 1..N processes, CPU or GPU).\n\n"
    "Every item needs a licence. Each line of metadata.jsonl may say \"source\", \"licence\" (an SPDX id such as "
    "CC-BY-4.0, or a licence's name) and \"consent\" (given, not-applicable or unknown); a lineage.json in the "
    "dataset gives defaults for every item, e.g. {\"source\": \"my photos\", \"licence\": \"CC-BY-4.0\", "
    "\"consent\": \"given\"}; scenes renders carry theirs. A dataset with unlicensed items is refused unless "
    "--allow-unlicensed. Items on the opt-out list ($KAIGA_HOME/opt-out.txt, or --opt-out FILE; add with "
    "`kaiga data opt-out IMAGE...`) are left out, matched by perceptual hash, so re-encoded or resized copies "
    "too. The model folder gets a card.json listing its data's sources, licences and consent with counts "
    "(`kaiga card MODEL`)."), no_args_is_help=True)
app.add_typer(data_app, name="data")
eval_app = typer.Typer(help="Measure models: prompt alignment, fidelity, and the report (docs/EVAL.md).",
                       no_args_is_help=True)
app.add_typer(train_app, name="train")
app.add_typer(eval_app, name="eval")
keys_app = typer.Typer(help="API keys of `kaiga serve` (stored hashed; a key is shown once) and the content-signing key.",
                        no_args_is_help=True)
app.add_typer(keys_app, name="keys")
audit_app = typer.Typer(help="Audit a model: near-copies of its training images (memorisation), skews in what it makes (bias).",
                        no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("memorisation")
def audit_memorisation(
    model: Annotated[str, typer.Option(help="Model name (see `kaiga models`) or path: the one to audit.")],
    data: Annotated[Path, typer.Option(help="Its training dataset (a folder with metadata.jsonl).")],
    n: Annotated[int, typer.Option("--n", min=1, max=100_000, help="Images to generate.")] = 200,
    prompts: Annotated[Optional[Path], typer.Option(help="Text file, one prompt a line (default: the dataset's captions, evenly spread).")] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for memorisation.json and memorisation-flagged.png.")] = Path("audit"),
    k: Annotated[int, typer.Option("--k", min=1, max=32, help="Nearest training images kept per generated image.")] = 3,
    false_flag_rate: Annotated[float, typer.Option(min=0.0001, max=0.5, help="Share of never-seen images the threshold may flag (calibrated on fresh scenes renders).")] = 0.01,
    calibration_n: Annotated[int, typer.Option("--calibration-n", min=20, max=100_000, help="Fresh renders the threshold is calibrated on.")] = 500,
    seed: Annotated[int, typer.Option(help="Seed of the first generated image (the others follow) and of the prompts drawn.")] = 0,
    threads: _Threads = None,
):
    """Find generated images that are near-copies of training images (memorisation).

    Each generated image's nearest training images by the judge's features and a tiled pixel distance
    (tiles flat in both left out, so a shared white background is no match); flagged below a threshold
    calibrated on fresh renders at --false-flag-rate. Writes memorisation.json (every flagged pair, the
    threshold and how it was calibrated) and a grid of the flagged pairs (generated | training image).
    """
    _input_path(data, "--data", "folder")
    _input_path(prompts, "--prompts")
    _writable_folder(out_dir, "--out")
    from kaiga.audit.memorisation_run import MemorisationError, run_memorisation

    _use_threads(threads)
    try:
        result = run_memorisation(model, data, out_dir, n=n, prompts_file=prompts, k=k, false_flag_rate=false_flag_rate,
                                  calibration_n=calibration_n, seed=seed, console=err)
    except MemorisationError as e:
        fail(str(e))
    from rich.table import Table

    cal = result["calibration"]
    table = Table("generated", "flagged", "share", "threshold", "calibrated on", title=f"memorisation of {result['model']}")
    table.add_row(str(result["n_generated"]), str(result["n_flagged"]), f"{result['flagged_share']:.1%}",
                  f"{cal['threshold']:.3f}", f"{cal['n_calibration']} {cal['source']} at {cal['false_flag_rate']:.1%}")
    _wide().print(table)
    for row in result["flagged"][:10]:
        near = row["neighbours"][0]
        out.print(f"  {row['prompt']!r} (seed {row['seed']}) ~ {near['file']} (score {near['score']:.3f})",
                  highlight=False, markup=False)
    out.print(f"wrote {out_dir / 'memorisation.json'}" + (f" and {out_dir / 'memorisation-flagged.png'}"
                                                            if result["n_flagged"] else ""), highlight=False)

@app.command()
@request_options()
def generate(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the PNGs.")] = Path("outputs"),
    grid: Annotated[bool, typer.Option("--grid", help="Also write all images as one contact sheet.")] = False,
    device: _Device = None,
    config: Annotated[Optional[Path], typer.Option(help="Config folder for a single-file checkpoint that has none inside (offline).")] = None,
    threads: _Threads = None,
    faces_consent: Annotated[bool, typer.Option("--faces-consent", help="With --init: the people in it consent to show their faces; else faces found in it are blurred first (the record says which).")] = False,
    sref: Annotated[Optional[Path], typer.Option("--sref", help="Take the style of this image (Midjourney's style reference): the scenes judge reads its style and --style becomes that preset.")] = None,
    personalize: Annotated[Optional[str], typer.Option("--personalize", metavar="USER", help="Steer by USER's taste, learned from their ratings, approvals, rejections and stars (kaiga review --rate): what the prompt leaves open is filled with what they like, and each image is the best of --choose-from by their taste.")] = None,
    choose_from: Annotated[int, typer.Option("--choose-from", min=1, max=16, help="With --personalize: each image kept is the best of this many made (1: the prompt shift alone).")] = 4,
    db: Annotated[Optional[str], typer.Option("--db", help="With --personalize: the database holding the reviews (SQLAlchemy URL; default: SQLite in $KAIGA_HOME, as kaiga serve).")] = None,
    precision: Annotated[str, typer.Option(help="fp32 (the default: the same pixels on every run and machine) or bf16: matmuls and convolutions in bfloat16, faster at large batches on CPUs with AMX and on GPUs; pixels differ in low bits and the record says bf16 (kaiga bench --precision bf16 measures both).")] = "fp32",
    backend: _Backend = "eager",
    *, fields: dict,
):
    """Generate images from a prompt with the default model or --model; edit an image with --init.

    Each PNG carries an A1111-compatible `parameters` chunk and a kaiga generation record;
    the same seed and settings give the same image, whatever --n. An edit's record names its
    --init and --mask by SHA-256 (copies kept in $KAIGA_HOME/uploads) and its strength.
    """
    _setup_logging()
    from pydantic import ValidationError

    from kaiga.request import GenerationRequest, RequestError, describe_error
    from kaiga.store.uploads import PENDING

    init, mask = fields.pop("init_image"), fields.pop("mask")  # paths here; the request names them by hash
    _input_path(config, "--config", "folder")  # every path before any work (--init, --mask: read below, before it)
    _writable_folder(out_dir, "--out")
    _check_device(device)
    _check_precision(precision)
    _check_backend(backend)
    try:
        request = GenerationRequest(**fields, init_image=PENDING if init else None, mask=PENDING if mask else None)
        request.require_prompt()
    except ValidationError as e:
        fail(describe_error(e))
    except RequestError as e:
        fail(str(e))
    if init is not None:
        request = request.model_copy(update=_stored_inputs(init, mask, faces_consent))
    record_extra = None
    if sref is not None:
        if request.style.strip():
            fail("--sref: give --style or --sref, not both (--sref chooses the style)")
        style, record_extra = _style_reference(sref)
        request = request.model_copy(update={"style": style})

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from kaiga.capabilities import with_defaults
    from kaiga.model_files import ModelError
    from kaiga.prompt_syntax import count_permutations
    from kaiga.studio import Studio

    taste = _taste_of(personalize, db) if personalize else None  # before any work: they may have rated nothing
    _use_threads(threads)
    try:
        studio = Studio(device=device, config_dir=config, precision=precision, backend=backend)
        studio.check(request)  # before the model loads
        caps = studio.capabilities(request.model)
        if request.upscale is None:
            request = request.model_copy(update={"upscale": caps.view_upscale(request)})
        combos = count_permutations(request.prompt)
        if combos > 1:  # said before any work: how many images the {a|b} groups make
            err.print(f"{combos} prompts × n {request.n} = {combos * request.n} images", highlight=False)
        with Progress(TextColumn("[bold]generating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err, transient=True) as bar:
            task = bar.add_task("gen", total=combos * request.n * (with_defaults(caps, request).steps or 1))

            def on_step(done, total):
                bar.update(task, completed=done, total=total)

            if taste is None:
                images = studio.generate(request, on_step=on_step, record_extra=record_extra)
            else:
                from kaiga.taste.steer import generate_personalised

                images, how = generate_personalised(studio, request, taste, personalize, choose_from, on_step)
                err.print(f"personalised for {personalize} ({taste.ratings.get(personalize, 0)} judgements): "
                          + (f"added {', '.join(how.added)}; " if how.added else "the prompt left as it is; ")
                          + f"each image the best of {choose_from}", highlight=False, soft_wrap=True)
    except (RequestError, ModelError) as e:
        fail(str(e))
    out_dir.mkdir(parents=True, exist_ok=True)
    for img in images:
        path = _save_new(img.image, img.record, out_dir, _output_stem("", [img.record]))
        typer.echo(str(path))  # plain: paths are for scripts too, never wrapped
        if (note := img.record.extra.get("safety", {})).get("flagged"):  # the Studio blurred it (kaiga.safety)
            from kaiga.safety import describe

            err.print(f"[yellow]warning:[/] {path}: {describe(note)}", highlight=False, soft_wrap=True)
    if grid and len(images) > 1:
        from kaiga.images import contact_sheet

        records = [i.record for i in images]
        sheet = _save_new(contact_sheet([i.image for i in images]), records[0], out_dir, _output_stem("grid-", records))
        typer.echo(str(sheet))


def _taste_of(person: str, db: Optional[str]):
    """The tastes learned from the gallery's judgements (kaiga/taste/); a one-line failure when `person` has
    judged nothing yet."""
    from kaiga.server.settings import ServerSettings
    from kaiga.taste.judgements import Judgements

    judgements = Judgements.read(_open_db(db), ServerSettings(db_url=db).gallery_dir())
    if (why := judgements.too_few(person)) is not None:
        fail(f"--personalize {person}: {why}, e.g. kaiga review CAMPAIGN --rate ID=N --reviewer {person}")
    return judgements.taste()


_RemixOut = Annotated[Path, typer.Option("--out", help="Folder for the PNGs.")]
_RemixN = Annotated[int, typer.Option("--n", min=1, max=16, help="How many (Midjourney makes 4).")]
_RemixSeed = Annotated[Optional[int], typer.Option("--seed", min=0, help="Seed of the first; random if omitted.")]
_RemixPrompt = Annotated[Optional[str], typer.Option("--prompt", help="The prompt; default: the image's own (from its record).")]
_RemixChaos = Annotated[Optional[int], typer.Option("--chaos", min=0, max=100, help="How different the results are from each other (0-100).")]
_RemixModel = Annotated[Optional[str], typer.Option("--model", help="Model; default: the image's own if it edits, else the default model.")]
_RemixSteps = Annotated[Optional[int], typer.Option("--steps", min=1, max=150, help="Denoising steps; default: the image's own.")]
_RemixUpscale = Annotated[Optional[int], typer.Option("--upscale", min=1, max=8, help="Enlarge for viewing (the learned upscaler); default: as generate does (4 for the 64-pixel models).")]
_RemixConsent = Annotated[bool, typer.Option("--faces-consent", help="The people in the image consent to show their faces; else faces found in it are blurred first.")]


@app.command()
def vary(
    image: Annotated[Path, typer.Argument(help="A kaiga image (its record gives prompt, model, size), or any PNG/JPEG/WebP.")],
    subtle: Annotated[bool, typer.Option("--subtle", help="Keep the composition and most of the detail (strength 0.35).")] = False,
    strong: Annotated[bool, typer.Option("--strong", help="Keep the layout and colours, redraw the rest (0.75; the default).")] = False,
    region: Annotated[Optional[Path], typer.Option("--region", help="Redraw only where this mask is white (Midjourney's Vary (Region)).")] = None,
    out_dir: _RemixOut = Path("outputs"), n: _RemixN = 4, seed: _RemixSeed = None, prompt: _RemixPrompt = None,
    chaos: _RemixChaos = None, model: _RemixModel = None, steps: _RemixSteps = None, upscale: _RemixUpscale = None,
    threads: _Threads = None,
    device: _Device = None, faces_consent: _RemixConsent = False,
):
    """Variations of an image, as Midjourney's Vary (Subtle / Strong / Region): the same prompt and model."""
    from kaiga.variations import vary_plan

    def plan_of(im, rec, reg=None):  # after the paths are checked
        if subtle and strong:
            fail("--subtle or --strong, not both")
        return vary_plan(im, rec, "subtle" if subtle else "strong", reg)

    _remix(image, plan_of, out_dir, n, seed, prompt, chaos, model, steps, threads, device, faces_consent, mask=region,
           upscale=upscale)


@app.command()
def pan(
    image: Annotated[Path, typer.Argument(help="A kaiga image, or any PNG/JPEG/WebP.")],
    left: Annotated[bool, typer.Option("--left", help="Move the view left.")] = False,
    right: Annotated[bool, typer.Option("--right", help="Move the view right.")] = False,
    up: Annotated[bool, typer.Option("--up", help="Move the view up.")] = False,
    down: Annotated[bool, typer.Option("--down", help="Move the view down.")] = False,
    amount: Annotated[float, typer.Option("--amount", min=0.1, max=0.9, help="How far, as a share of the image.")] = 0.5,
    out_dir: _RemixOut = Path("outputs"), n: _RemixN = 4, seed: _RemixSeed = None, prompt: _RemixPrompt = None,
    chaos: _RemixChaos = None, model: _RemixModel = None, steps: _RemixSteps = None, upscale: _RemixUpscale = None,
    threads: _Threads = None,
    device: _Device = None, faces_consent: _RemixConsent = False,
):
    """Move the view over an image, Midjourney's pan: the revealed strip painted, the rest kept pixel for pixel."""
    from kaiga.variations import pan_plan

    directions = [d for d, on in (("left", left), ("right", right), ("up", up), ("down", down)) if on]

    def plan_of(im, rec):  # after the paths are checked, as every command checks them first
        if len(directions) != 1:
            fail("give one of --left, --right, --up, --down")
        return pan_plan(im, rec, directions[0], amount)

    _remix(image, plan_of, out_dir, n, seed, prompt, chaos, model, steps, threads, device, faces_consent,
           upscale=upscale)


@app.command()
def zoom(
    image: Annotated[Path, typer.Argument(help="A kaiga image, or any PNG/JPEG/WebP.")],
    factor: Annotated[float, typer.Option("--factor", min=1.1, max=4.0, help="How far to zoom out (Midjourney's: 1.5 or 2).")] = 2.0,
    out_dir: _RemixOut = Path("outputs"), n: _RemixN = 4, seed: _RemixSeed = None, prompt: _RemixPrompt = None,
    chaos: _RemixChaos = None, model: _RemixModel = None, steps: _RemixSteps = None, upscale: _RemixUpscale = None,
    threads: _Threads = None,
    device: _Device = None, faces_consent: _RemixConsent = False,
):
    """Zoom out of an image (Midjourney's Zoom Out): it shrinks into the middle, the border is painted around it,
    the result at the model's native size; the middle is kept pixel for pixel."""
    from kaiga.variations import zoom_plan

    _remix(image, lambda im, rec: zoom_plan(im, rec, factor), out_dir, n, seed, prompt, chaos, model, steps, threads,
           device, faces_consent, upscale=upscale)


@app.command()
def blend(
    images: Annotated[list[Path], typer.Argument(help="2 to 4 images (kaiga's, whose records give their prompts, or any PNG/JPEG/WebP).")],
    weights: Annotated[Optional[str], typer.Option("--weights", help="One weight per image, e.g. 2,1 (default: equal).")] = None,
    out_dir: _RemixOut = Path("outputs"), n: _RemixN = 4, seed: _RemixSeed = None, prompt: _RemixPrompt = None,
    chaos: _RemixChaos = None, model: _RemixModel = None, steps: _RemixSteps = None, upscale: _RemixUpscale = None,
    threads: _Threads = None,
    device: _Device = None,
):
    """Blend 2-4 images (Midjourney's /blend): their latents mixed by a diffusion model's autoencoder, then redrawn
    with their prompts composed (`a::1 b::1`); --prompt replaces that prompt."""
    _setup_logging()
    from kaiga.model_files import ModelError
    from kaiga.request import RequestError
    from kaiga.store.uploads import UploadError, read_image_file
    from kaiga.variations import image_record

    _writable_folder(out_dir, "--out")
    _check_device(device)
    try:
        pictures = [read_image_file(path, "images") for path in images]
    except UploadError as e:
        fail(str(e))
    try:
        shares = [float(w) for w in weights.split(",")] if weights else None
    except ValueError:
        fail(f"--weights: numbers separated by commas, one per image (got {weights!r})")
    fields = _given(n=n, seed=seed, prompt=prompt, chaos=chaos, model=model, steps=steps, upscale=upscale)
    from kaiga.studio import Studio

    _use_threads(threads)
    try:
        studio = Studio(device=device)
        fields.setdefault("upscale", _view_upscale(studio, model))
        with err.status(f"[bold]blending[/] {len(images)} images"):
            made = studio.blend(pictures, [image_record(p) for p in images], shares, **fields)
    except (RequestError, ModelError) as e:
        fail(str(e))
    except ValueError as e:
        from kaiga.request import describe_error

        fail(describe_error(e))
    out_dir.mkdir(parents=True, exist_ok=True)
    for img in made:
        typer.echo(str(_save_new(img.image, img.record, out_dir, _output_stem("blend-", [img.record]))))


@app.command()
def describe(
    image: Annotated[Path, typer.Argument(help="An image to describe (PNG, JPEG or WebP).")],
    n: Annotated[int, typer.Option("--n", min=1, max=8, help="How many prompts.")] = 4,
    as_json: Annotated[bool, typer.Option("--json", help="Print the prompts, the reading and the confidence as JSON.")] = False,
):
    """Prompts that would make the image again (Midjourney's /describe), read by the scenes judge.

    The judge reads the image as a scene (objects, colours, place, weather, time, style); the prompts say that
    scene in the words the models were trained on, the first the plainest. Low confidence means the image is not
    much like the scenes world (a photograph); it is said.
    """
    from kaiga.eval.describe import LOW_CONFIDENCE
    from kaiga.eval.describe import describe as describe_image
    from kaiga.store.uploads import UploadError, read_image_file

    try:
        picture = read_image_file(image, "image")
    except UploadError as e:
        fail(str(e))
    d = describe_image(picture, n=n)
    if as_json:
        out.print_json(data=d.to_json())
        return
    for prompt in d.prompts:
        typer.echo(prompt)
    if d.confidence < LOW_CONFIDENCE:
        weakest = min(d.per_attribute, key=d.per_attribute.get)
        err.print(f"[yellow]warning:[/] low confidence ({d.confidence:.2f}, {weakest}): this image is not much like a "
                  f"scenes-world image", highlight=False)


@app.command()
def upscale(
    image: Annotated[Path, typer.Argument(help="The image to enlarge (PNG, JPEG or WebP).")],
    factor: Annotated[int, typer.Option("--factor", min=2, max=8, help="How many times larger (width and height).")] = 4,
    method: Annotated[str, typer.Option("--method", "--upscale-method", help="learned: kaiga's 4x super-resolution network, trained on the scenes world (other factors resize its 4x result with Lanczos); lanczos: the classic filter.")] = "learned",
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the PNG.")] = Path("outputs"),
    threads: _Threads = None,
):
    """Enlarge an image with the learned upscaler (Midjourney's upscale; A1111's Extras tab).

    A kaiga image keeps its record, which then says the enlargement (`upscale`, `extra.upscaler`) and still
    names the model and seed that made it; its watermark and credentials' soft binding stay readable. Other
    images are enlarged and written without a record. At most 4096 pixels a side come out.
    """
    from kaiga.store.uploads import UploadError, read_image_file
    from kaiga.upscaler import MAX_SIDE, METHODS, upscaled_record
    from kaiga.upscaler import upscale as enlarge

    if method not in METHODS:
        fail(f"--method: must be one of {', '.join(METHODS)} (got {method!r})")
    try:
        picture = read_image_file(image, "image")
    except UploadError as e:
        fail(str(e))
    if max(picture.size) * factor > MAX_SIDE:
        fail(f"--factor: {picture.width}x{picture.height} x{factor} would be "
             f"{picture.width * factor}x{picture.height * factor}; at most {MAX_SIDE} pixels a side")
    _writable_folder(out_dir, "--out")
    _use_threads(threads)
    from kaiga.metadata import record_of

    record = record_of(image)  # kaiga's only: an A1111 record has no place for the enlargement
    [big] = enlarge([picture.convert("RGB")], factor, method)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{image.stem}-x{factor}"
    if record is not None:
        path = _save_new(big, upscaled_record(record, factor, method, picture.size), out_dir, stem)
    else:
        import io

        buf = io.BytesIO()
        big.save(buf, format="PNG")
        path = _write_new(buf.getvalue(), out_dir, stem)
    typer.echo(str(path))


@app.command("grid")
@request_options([name for name in field_specs() if name not in ("init_image", "mask", "blend", "strength", "mask_blur", "n")])
def grid_plot(
    x: Annotated[str, typer.Option("--x", help="The columns: FIELD=v1,v2,... for any request field (steps, guidance, "
                                             "sampler, seed, style, stylize, negative_prompt, model, ...); values "
                                             "are CSV, so quote one with commas: style=\"watercolor:0.5,neon:0.5\",plain. "
                                             "prompt=a,b,c replaces a in the prompt by each value (A1111's Prompt S/R).")],
    y: Annotated[Optional[str], typer.Option("--y", help="The rows, as --x.")] = None,
    z: Annotated[Optional[str], typer.Option("--z", help="One sheet per value, as --x.")] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the cells' PNGs and the sheet(s).")] = Path("outputs"),
    device: _Device = None,
    threads: _Threads = None,
    *, fields: dict,
):
    """A1111's X/Y/Z plot: vary up to three request fields over one prompt, one labelled contact sheet.

    Every cell is a normal image with its record (written to --out like `kaiga generate`'s), every cell
    checked before the first is made; the sheet carries the first cell's record and the axes. Example:
    `kaiga grid "a red car in the city" --x steps=5,10,20 --y style=plain,watercolor,neon --seed 3`.
    """
    _setup_logging()
    from pydantic import ValidationError

    from kaiga.model_files import ModelError
    from kaiga.request import GenerationRequest, RequestError, describe_error
    from kaiga.xyz_plot import make_plot, parse_axis

    _writable_folder(out_dir, "--out")
    _check_device(device)
    try:
        base = GenerationRequest(**fields).require_prompt()
        axes = [parse_axis(flag, spec) for flag, spec in (("--x", x), ("--y", y), ("--z", z)) if spec is not None]
    except ValidationError as e:
        fail(describe_error(e))
    except RequestError as e:
        fail(str(e))
    if z is not None and y is None:
        fail("--z: give --y first (z makes one sheet per value of an x × y plot)")
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from kaiga.studio import Studio

    _use_threads(threads)
    try:
        studio = Studio(device=device)
        with Progress(TextColumn("[bold]plotting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err, transient=True) as bar:
            task = bar.add_task("grid", total=None)
            plot = make_plot(studio, base, axes, on_image=lambda d, t: bar.update(task, completed=d, total=t))
    except (RequestError, ModelError) as e:
        fail(str(e))
    out_dir.mkdir(parents=True, exist_ok=True)
    for img in plot.images:
        typer.echo(str(_save_new(img.image, img.record, out_dir, _output_stem("", [img.record]))))
    spec = {a.flag.lstrip("-"): f"{a.field}={','.join(a.values)}" for a in axes}
    for k, (label, sheet) in enumerate(plot.sheets):
        first = plot.images[k * (len(plot.images) // len(plot.sheets))].record
        record = first.model_copy(update={"extra": {**first.extra, "grid": {**spec, **({"sheet": label} if label else {})}}})
        typer.echo(str(_save_new(sheet, record, out_dir, _output_stem("grid-", [record]))))


def _style_reference(path: Path) -> tuple[str, dict]:
    """--sref: the style preset the judge reads in the image, and what the records keep of it."""
    from kaiga.eval.describe import sref_style
    from kaiga.store.uploads import UploadError, read_image_file

    try:
        image = read_image_file(path, "--sref")
    except UploadError as e:
        fail(str(e))
    style, note = sref_style(image)
    err.print(f"--sref: {path.name} reads as {note['read']} (p = {note['confidence']:.2f})", highlight=False)
    return style, {"sref": {"file": path.name, **note}}


def _stored_inputs(init: Path, mask: Optional[Path], faces_consent: bool = False) -> dict:
    """--init and --mask checked (as the server checks uploads) and kept by hash in the upload store; --init
    cleaned as the server's uploads are (faces blurred unless --faces-consent, the report kept beside it)."""
    from kaiga.paths import model_home
    from kaiga.provenance.privacy import clean_upload
    from kaiga.store.uploads import UploadError, UploadStore, read_image_file

    try:
        image = read_image_file(init, "init")
        mask_image = read_image_file(mask, "mask").convert("L") if mask is not None else None
    except UploadError as e:
        fail(str(e))
    image, report = clean_upload(init.read_bytes(), image, faces_consent=faces_consent)  # its size checked above
    store = UploadStore(model_home() / "uploads")
    return {"init_image": store.add(image, report.to_dict()),
            "mask": store.add(mask_image) if mask_image is not None else None}


@app.command()
def explain(
    prompt: Annotated[str, typer.Argument(help="What to draw.")],
    model: Annotated[Optional[str], typer.Option(help="Model name (see `kaiga models`) or path.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the image.")] = 0,
    out_path: Annotated[Path, typer.Option("--out", help="PNG to write: the frames side by side, captioned; or a folder (a path without a suffix), to write explain-<seed>-<prompt>.png in.")] = Path("explain.png"),
    scale: Annotated[int, typer.Option(min=1, max=8, help="Enlarge each frame (nearest) for viewing.")] = 3,
    device: _Device = None,
    threads: _Threads = None,
):
    """Show how the model's family builds an image, frame by frame.

    diffusion: the denoising trajectory (the clean image the model predicts as noise is removed);
    transformer: token-by-token decoding (image tokens drawn so far, the rest grey);
    gan and vae: a latent walk from this seed to the next (what the noise controls, the prompt fixed).
    """
    _setup_logging()
    from pydantic import ValidationError

    from kaiga.request import GenerationRequest, RequestError, describe_error

    try:  # the prompt and seed as generate takes them (not empty, not too long, seed in range)
        GenerationRequest(prompt=prompt, seed=seed, model=model).require_prompt()
    except ValidationError as e:
        fail(describe_error(e))
    except RequestError as e:
        fail(str(e))
    if out_path.is_dir() or not out_path.suffix:  # a folder, as generate's --out
        _writable_folder(out_path, "--out")
        out_path = out_path / f"explain-{seed:010d}-{_slug(prompt)}.png"
    elif out_path.suffix.lower() != ".png":
        fail(f"--out: {out_path} is neither a .png file nor a folder")
    _writable_file(out_path, "--out")
    _check_device(device)
    _use_threads(threads)
    from kaiga.images import captioned_strip
    from kaiga.model_files import ModelError
    from kaiga.studio import Studio

    try:
        shown = Studio(device=device).explain(prompt, model=model, seed=seed)
    except (ModelError, RequestError) as e:
        fail(str(e))
    strip = captioned_strip(shown.frames, shown.captions, scale=scale,
                            title=f"{shown.model} ({shown.family}): {prompt!r}, seed {seed}")
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        strip.save(out_path)
    except OSError as e:
        fail(f"--out: cannot write {out_path} ({e.strerror or e})")
    typer.echo(str(out_path))


@app.command()
def info(image: Annotated[Path, typer.Argument(help="A PNG/JPEG/WebP from kaiga, AUTOMATIC1111 or ComfyUI.")]):
    """Print how an image was made: kaiga records, A1111 parameters or a ComfyUI graph."""
    from kaiga.metadata import MetadataError, describe, read_metadata

    _input_path(image, "image")
    try:
        out.print(describe(read_metadata(image)), highlight=False, markup=False)  # "[hash]" is text, not markup
    except MetadataError as e:
        fail(str(e))


@app.command()
def models(
    paths: Annotated[Optional[list[Path]], typer.Argument(help="Extra model paths to identify.")] = None,
):
    """List bundled models, models in the user's model directory ($KAIGA_HOME/models), and PATHS."""
    from rich.table import Table

    from kaiga.model_files import ModelError, list_models, user_models_dir

    for path in paths or []:
        _input_path(path, "paths", "any")
    try:
        refs = list_models(paths or [])
    except ModelError as e:
        fail(str(e))
    table = Table("name", "family", "format", "source", "path")
    for r in refs:
        table.add_row(r.name, r.family, r.format.value, r.source, str(r.path))
    _wide().print(table)  # names and paths are for copying: never wrapped, whatever the terminal
    out.print(f"user model directory: {user_models_dir()}", highlight=False)
    from kaiga.finetune.lora import list_loras, loras_dir

    found = list_loras()
    if found:  # what --lora NAME[:WEIGHT] can name
        loras = Table("lora", "base model", "rank", "alpha", "layout", "path")
        for path, info in found:
            base = (info.get("base") or {}).get("model", "")
            loras.add_row(path.stem, base, str(info.get("rank", "")), str(info.get("alpha", "")),
                          info.get("layout", ""), str(path))
        _wide().print(loras)
    out.print(f"LoRA directory: {loras_dir()}", highlight=False)
    from kaiga.finetune.embedding import embeddings_dir, list_embeddings

    found = list_embeddings()
    if found:  # the words a prompt can use
        words = Table("embedding (its word)", "base model", "init word", "path")
        for path, info in found:
            words.add_row(path.stem, (info.get("base") or {}).get("model", ""), info.get("init_word", ""), str(path))
        _wide().print(words)
    out.print(f"embedding directory: {embeddings_dir()}", highlight=False)


@app.command()
def styles(
    import_file: Annotated[Optional[Path], typer.Option("--import", help="Add the styles of this file (an AUTOMATIC1111 "
                                                        "styles.csv, a Fooocus style JSON or kaiga's format) to "
                                                        "$KAIGA_HOME/styles/, converted to kaiga's format.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the library as JSON (kaiga's style format).")] = False,
):
    """List the style presets that `--style` takes (kaiga's own and $KAIGA_HOME/styles/), or import a style file.

    Mix them with a share each: `kaiga generate "a red car" --style "watercolor:0.7,neon:0.3"`; `--stylize`
    (0-1000, default 100) sets how strongly style and guidance act. docs/STYLES.md describes the format.
    """
    from rich.table import Table

    from kaiga.styles.library import FORMAT, StyleError, import_styles, load_library, styles_dir

    if import_file is not None:
        _input_path(import_file, "--import", "file")
        try:
            dest, count = import_styles(import_file)
        except StyleError as e:
            fail(str(e))
        out.print(f"imported {count} styles from {import_file} -> {dest}", highlight=False)
        return
    try:
        library = load_library()
    except StyleError as e:
        fail(str(e))
    if as_json:
        out.print_json(data={"format": FORMAT, "styles": [{**s.to_json(), "source": s.source} for s in library.values()]})
        return
    table = Table("name", "group", "prompt", "negative", "source")
    for s in library.values():
        table.add_row(s.name, s.group, s.prompt, s.negative, "kaiga" if s.source == "kaiga" else Path(s.source).name)
    _wide().print(table)
    out.print(f"{len(library)} styles; your own go in {styles_dir()} (`kaiga styles --import FILE`)", highlight=False)


@app.command()
def wildcards(
    as_json: Annotated[bool, typer.Option("--json", help="Print every list with its lines as JSON.")] = False,
):
    """List the wildcard lists a prompt's `__name__` draws from (kaiga's own and $KAIGA_HOME/wildcards/).

    `kaiga generate "a __colour__ __object__ __place__"` draws a line of each list per image, from the image's
    seed (the same seed draws the same lines); a list is a text file, one option a line, `#` a comment, and a
    file in a subfolder is `__folder/name__`. docs/PROMPTS.md describes the whole prompt syntax.
    """
    from rich.table import Table

    from kaiga.request import RequestError
    from kaiga.styles.wildcards import BUNDLED, load_wildcards, wildcard_files, wildcards_dir

    try:
        files, lists = wildcard_files(), load_wildcards()
    except RequestError as e:
        fail(str(e))
    if as_json:
        out.print_json(data={name: {"file": str(files[name]), "lines": lines} for name, lines in lists.items()})
        return
    table = Table("name", "lines", "first lines", "source")
    for name, lines in lists.items():
        source = "kaiga" if files[name].is_relative_to(BUNDLED) else str(files[name])
        table.add_row(f"__{name}__", str(len(lines)), ", ".join(lines[:4]) + (", ..." if len(lines) > 4 else ""), source)
    _wide().print(table)
    out.print(f"{len(lists)} lists; your own go in {wildcards_dir()} (NAME.txt, one option a line)", highlight=False)


@data_app.command("scenes")
def data_scenes(
    n: Annotated[int, typer.Option("--n", min=1, max=10_000_000, help="Number of images.")] = 1000,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write (images, metadata.jsonl, manifest.json).")] = Path("data/scenes"),
    seed: Annotated[int, typer.Option(help="Seed of the stream; the same seed gives the same dataset.")] = 0,
    split: Annotated[str, typer.Option(help="train (no held-out combination), heldout (only those) or any.")] = "train",
    layouts: Annotated[str, typer.Option(help="Shares of single objects, counted rows and pairs, e.g. 0.4,0.2,0.4.")] = "0.6,0.2,0.2",
    captions: Annotated[int, typer.Option("--captions", min=1, max=32, help="Captions per image (the first names everything).")] = 4,
    workers: Annotated[int, typer.Option(min=1, max=256, help="Processes rendering at once; the images are the same for any number.")] = 1,
):
    """Render the procedural scenes world: 64×64 images with captions and exact attributes."""
    if split not in ("train", "heldout", "any"):
        fail(f"split: must be train, heldout or any (got {split!r})")
    try:
        shares = tuple(float(x) for x in layouts.split(","))
        if len(shares) != 3 or min(shares) < 0 or abs(sum(shares) - 1) > 1e-6:
            raise ValueError
    except ValueError:
        fail(f"layouts: three shares (single, count, pair) that sum to 1, e.g. 0.4,0.2,0.4 (got {layouts!r})")
    _writable_folder(out_dir, "--out")
    import time

    from rich.progress import Progress

    from kaiga.data.dataset import write_scenes
    from kaiga.data.world import Mix

    t0 = time.perf_counter()
    with Progress(console=err, transient=True) as bar:
        task = bar.add_task("rendering", total=n)
        write_scenes(out_dir, n, seed=seed, split=split, progress=lambda k: bar.advance(task, k), n_captions=captions,
                     mix=Mix(layouts=shares), workers=workers)
    dt = time.perf_counter() - t0
    out.print(f"wrote {n} images to {out_dir} ({n / dt:.0f} images/s)", highlight=False)


@data_app.command("import")
def data_import(
    source: Annotated[Path, typer.Argument(help="Folder of your images (PNG, JPEG, WebP), with an optional metadata.jsonl.")],
    out_dir: Annotated[Path, typer.Option("--out", help="New or empty folder for the clean copy (outside the source).")],
    consent: Annotated[Optional[Path], typer.Option(help="File listing the images whose people consented to show their faces: one file name a line, relative to the folder; # starts a comment.")] = None,
    faces_consent: Annotated[bool, typer.Option("--faces-consent", help="Everyone in every image consented: faces are found and reported, not blurred.")] = False,
):
    """Import your images as a dataset, privately: metadata stripped, faces blurred, a report of what was removed.

    Each image is written under its own name to --out with only its pixels (and its ICC colour profile): EXIF
    (GPS position, camera make, model and serial, dates), embedded thumbnails, XMP, IPTC, comments and PNG text
    chunks are removed, after the EXIF orientation is applied to the pixels. Faces are found (OpenCV Haar cascades)
    and blurred unless consent is recorded: a "faces_consent": true column on the image's metadata.jsonl line
    (wins over the rest), the --consent file, or --faces-consent for all. A metadata.jsonl (file_name + text, the
    imagefolder format) is carried over, and only the images it lists are imported. --out gets privacy-report.json,
    one entry per image. The source folder is never written to.
    """
    _input_path(source, "DIR", "folder")
    _input_path(consent, "--consent")
    _writable_folder(out_dir, "--out")
    from kaiga.data.ingest import IngestError, import_images, plan_import

    try:
        plan = plan_import(source, out_dir, consent_file=consent, all_consent=faces_consent)
    except (IngestError, UnicodeDecodeError) as e:
        fail(str(e) if isinstance(e, IngestError) else f"--consent: {consent} is not UTF-8 text")
    from rich.progress import Progress
    from rich.table import Table

    with Progress(console=err, transient=True, disable=len(plan.items) < 8) as bar:
        task = bar.add_task("cleaning", total=len(plan.items))
        report = import_images(plan, out_dir, progress=lambda k: bar.advance(task, k))
    table = Table(title=f"{source} → {out_dir}", show_header=True)
    table.add_column("what")
    table.add_column("count", justify="right")
    t = report["totals"]
    for label, key in (("cleaned", "images"), ("EXIF removed", "with_exif"), ("  with GPS", "with_gps"),
                       ("orientation applied", "orientation_applied"), ("thumbnail removed", "with_thumbnail"),
                       ("XMP removed", "with_xmp"), ("IPTC / comment removed", "with_iptc_or_comment"),
                       ("PNG text removed", "with_png_text"), ("faces found", "faces_found"),
                       ("faces blurred", "faces_blurred"), ("faces kept (consent)", "faces_kept_with_consent"),
                       ("skipped (unreadable)", "skipped")):
        table.add_row(label, str(t[key]))
    _wide().print(table)
    out.print(f"report: {out_dir / 'privacy-report.json'}", highlight=False)
    for item in report["skipped"]:
        err.print(f"skipped: {item['error']}", highlight=False, soft_wrap=True, markup=False)
    if report["skipped"]:
        raise typer.Exit(1)


@data_app.command("opt-out")
def data_opt_out(
    images: Annotated[list[Path], typer.Argument(help="Images to keep out of every training run (copies too).")],
    list_file: Annotated[Optional[Path], typer.Option("--list", help="The list to add to (default: $KAIGA_HOME/opt-out.txt, the one training reads).")] = None,
):
    """Add images to the opt-out list as perceptual hashes (the images themselves are not kept)."""
    from kaiga.data.optout import add_to_list, default_list_path

    for image in images:
        _input_path(image, "images")
    path = list_file or default_list_path()
    _writable_file(path, "--list")
    try:
        hashes = add_to_list(path, images)
    except (OSError, ValueError) as e:  # PIL's UnidentifiedImageError is an OSError
        fail(f"images: {e}")
    for image, h in zip(images, hashes):
        out.print(f"{h}  {image}", highlight=False)
    out.print(f"{len(hashes)} added to {path}", highlight=False)


@app.command()
def card(
    model: Annotated[str, typer.Argument(help="A model's name (see `kaiga models`) or folder.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print card.json itself.")] = False,
):
    """Show a model's card: the sources, licences and consent of its training data, with counts, and the card's hash
    (which every image it makes records)."""
    from kaiga.model_files import ModelError, resolve_model
    from kaiga.provenance.card import CARD_FILE, card_hash, describe, read_card

    try:
        ref = resolve_model(model)
    except ModelError as e:
        fail(str(e))
    data = read_card(ref.path) if ref.path.is_dir() else None
    if data is None:
        fail(f"model: {ref.name} has no {CARD_FILE} (trained before kaiga recorded lineage, or not by kaiga)")
    if as_json:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    out.print(f"Model card of {ref.name}: {card_hash(ref.path)} ({ref.path / CARD_FILE})", highlight=False)
    for line in describe(data):
        out.print(line, highlight=False, markup=False, soft_wrap=True)


def _run_paths(data: Optional[Path], out_dir: Path, **folders: Optional[Path]) -> None:
    """A training command's paths, before anything loads: the dataset and `folders` (option -> path)
    exist as folders, and the run folder can be written."""
    _input_path(data, "--data", "folder")
    for option, path in folders.items():
        _input_path(path, f"--{option}", "folder")
    _writable_folder(out_dir, "--out")


def _loop_options(steps, batch_size, lr, checkpoint_every, sample_every, seed, grad_clip: float = 1.0,
                  max_minutes: float | None = None, decay_from: int | None = None, precision: str = "fp32"):
    from kaiga.train.loop import LoopConfig

    if decay_from is not None and decay_from >= steps:
        fail(f"--lr-decay-from: a step before --steps {steps} (got {decay_from})")
    _check_precision(precision)
    return LoopConfig(steps=steps, batch_size=batch_size, lr=lr, checkpoint_every=checkpoint_every,
                      sample_every=sample_every, seed=seed, warmup_steps=min(200, steps // 10), grad_clip=grad_clip,
                      max_seconds=None if max_minutes is None else 60 * max_minutes, decay_from=decay_from,
                      precision=precision)


_Steps = Annotated[int, typer.Option(min=1, help="Optimiser steps in all (a resumed run continues to this).")]
_Batch = Annotated[int, typer.Option("--batch-size", min=1, max=4096, help="Images per step per process.")]
_Data = Annotated[Path, typer.Option(help="Dataset folder: images + metadata.jsonl (see `kaiga data scenes`).")]
_Out = Annotated[Path, typer.Option("--out", help="Run folder: checkpoints, samples, log, final model.")]
_Resume = Annotated[bool, typer.Option(help="Continue from the run folder's checkpoint.")]
_Size = Annotated[str, typer.Option(help="Model size preset: default or tiny (for tests).")]
_DiffusionSize = Annotated[str, typer.Option(help="Model preset: default (v5's architecture), v6 (the pretrained, frozen "
                                                  "all-MiniLM-L6-v2 text encoder and a 16×16×8 latent) or tiny (for tests).")]
_Precision = Annotated[str, typer.Option(help="fp32 or bf16: forward and backward under bfloat16 autocast with float32 master weights (faster on CPUs with AMX and on GPUs; the saved weights are float32 as ever).")]
_DecayFrom = Annotated[Optional[int], typer.Option("--lr-decay-from", min=0, help="From this step the learning rate falls along half a cosine to a tenth of --lr at --steps (default: constant after warmup); it may be added when resuming.")]
_MaxMinutes = Annotated[Optional[float], typer.Option(min=0.01, help="Stop after this many minutes of training even if --steps is not reached; the run checkpoints and exports as at its end (--resume continues it).")]
_CheckpointEvery = Annotated[int, typer.Option(min=1, help="Steps between checkpoints in the run folder (what --resume continues from); one is also written at the end.")]
_SampleEvery = Annotated[int, typer.Option(min=0, help="Steps between sample grids (OUT/samples/step<N>.png), also at the end; 0: none.")]
_AllowUnlicensed = Annotated[bool, typer.Option(
    "--allow-unlicensed", help="Train items without a licence too (the model's card counts them); without it a "
                               "dataset that has any is refused.")]
_OptOut = Annotated[Optional[Path], typer.Option(
    "--opt-out", help="Opt-out list: one perceptual hash (64 hex digits) or image path a line; its images are left "
                      "out, copies too. Default: $KAIGA_HOME/opt-out.txt when it exists.")]


def _admit(data: Path, allow_unlicensed: bool, opt_out: Optional[Path]):
    """The dataset's items that may train (kaiga/data/admit.py), before any model loads; one line when refused."""
    _input_path(opt_out, "--opt-out")
    from kaiga.data.admit import admit
    from kaiga.data.dataset import DatasetError
    from kaiga.data.optout import OptOutError

    try:
        admission = admit(data, allow_unlicensed=allow_unlicensed, opt_out=opt_out)
    except (DatasetError, OptOutError) as e:
        fail(str(e))
    if admission.summary():
        err.print(admission.summary(), highlight=False, markup=False, soft_wrap=True)
    return admission


_Seed = Annotated[int, typer.Option(help="Seed of the training batches (which images, noise and timesteps each step draws): the same seed and settings give the same run, resumed or not.")]


@train_app.command("autoencoder")
def train_autoencoder_cmd(data: _Data, out_dir: _Out, steps: _Steps = 1000, batch_size: _Batch = 32,
              lr: Annotated[float, typer.Option(help="AdamW learning rate.")] = 1e-3,
              checkpoint_every: _CheckpointEvery = 100, sample_every: _SampleEvery = 100, seed: _Seed = 0,
              resume: _Resume = False, size: _DiffusionSize = "default",
              init: Annotated[Optional[Path], typer.Option(help="Start from this trained autoencoder (run or model folder).")] = None,
              decoder_only: Annotated[bool, typer.Option(help="Keep the encoder (and so the latents) fixed; sharpen the decoder.")] = False,
              recipe: Annotated[str, typer.Option(help="sharp: L1 + a perceptual distance over the judge's features + a "
                                                       "patch discriminator (as Stable Diffusion's autoencoder); pixel: "
                                                       "L1 + L2 alone (the v5 autoencoder's recipe).")] = "sharp",
              latent_channels: Annotated[Optional[int], typer.Option(min=1, max=64, help="Channels of the 16×16 latent (default: the size preset's, 4).")] = None,
              kl_weight: Annotated[float, typer.Option(min=0.0, help="Weight of the KL term per pixel.")] = 1e-4,
              perceptual_weight: Annotated[float, typer.Option(min=0.0, help="sharp: weight of the perceptual distance.")] = 1.0,
              adversarial_weight: Annotated[float, typer.Option(min=0.0, help="sharp: weight of the discriminator's verdict in the autoencoder's loss; 0 turns the discriminator off.")] = 0.1,
              disc_start: Annotated[int, typer.Option(min=0, help="sharp: steps of reconstruction losses alone before the discriminator joins.")] = 1000,
              max_minutes: _MaxMinutes = None, threads: _Threads = None, lr_decay_from: _DecayFrom = None,
              allow_unlicensed: _AllowUnlicensed = False, opt_out: _OptOut = None):
    """Train the autoencoder (AutoencoderKL) whose latent space the diffusion model works in.

    The sharp recipe is what makes objects recognisable after a round trip through the latent; see
    docs/AUTOENCODER.md for what each part buys (`bench/autoencoder.py` measures PSNR and reconstruction FID).
    """
    if recipe not in ("sharp", "pixel"):
        fail(f"recipe: must be sharp or pixel (got {recipe!r})")
    _run_paths(data, out_dir, init=init)
    admission = _admit(data, allow_unlicensed, opt_out)
    _use_threads(threads)
    from kaiga.data.dataset import DatasetError
    from kaiga.eval.readout import ReadoutNet
    from kaiga.families.diffusion.sharpening import PerceptualDistance, SharpeningConfig
    from kaiga.train.commands import train_autoencoder

    perceptual = PerceptualDistance(ReadoutNet.load()) if recipe == "sharp" else None
    sharpening = SharpeningConfig(perceptual_weight=perceptual_weight, adversarial_weight=adversarial_weight,
                                  disc_start=disc_start)
    try:
        state = train_autoencoder(data, out_dir, _loop_options(steps, batch_size, lr, checkpoint_every, sample_every, seed,
                                                               max_minutes=max_minutes, decay_from=lr_decay_from),
                                  size=size, resume=resume, init=init, decoder_only=decoder_only, admission=admission,
                                  perceptual=perceptual, sharpening=sharpening, latent_channels=latent_channels,
                                  kl_weight=kl_weight)
    except (DatasetError, ValueError, OSError) as e:
        fail(str(e))
    out.print(f"autoencoder: {state['step']} steps, loss {state['loss']:.4f}, {state['seconds']:.0f} s -> {out_dir / 'vae'}")


@train_app.command("diffusion")
def train_diffusion(data: _Data, out_dir: _Out,
                    vae: Annotated[Optional[Path], typer.Option(help="Trained autoencoder: a `kaiga train autoencoder` run folder or a model folder.")] = None,
                    init: Annotated[Optional[str], typer.Option(help="Fine-tune this model (name or folder) instead of starting from scratch.")] = None,
                    steps: _Steps = 5000, batch_size: _Batch = 32,
                    lr: Annotated[float, typer.Option(help="AdamW learning rate.")] = 5e-4,
                    checkpoint_every: _CheckpointEvery = 100, sample_every: _SampleEvery = 250, seed: _Seed = 0,
                    resume: _Resume = False, size: _DiffusionSize = "default", max_minutes: _MaxMinutes = None,
                    threads: _Threads = None, lr_decay_from: _DecayFrom = None, precision: _Precision = "fp32",
                    allow_unlicensed: _AllowUnlicensed = False, opt_out: _OptOut = None):
    """Train the denoising UNet and text encoder (v-prediction, zero-terminal-SNR, min-SNR-5)."""
    _check_precision(precision)  # before the dataset's items are checked: that takes a while on 40k
    _run_paths(data, out_dir, vae=vae)
    admission = _admit(data, allow_unlicensed, opt_out)
    _use_threads(threads)
    from kaiga.data.dataset import DatasetError
    from kaiga.model_files import ModelFormat, resolve_model
    from kaiga.train.commands import train_denoiser

    try:
        init_path = None
        if init is not None:
            ref = resolve_model(init)
            if ref.format is not ModelFormat.DIFFUSERS_FOLDER:
                fail("init: fine-tuning needs a diffusers model folder")
            init_path = ref.path
        state = train_denoiser(data, out_dir, vae, _loop_options(steps, batch_size, lr, checkpoint_every, sample_every, seed,
                                                                 max_minutes=max_minutes, decay_from=lr_decay_from,
                                                                 precision=precision),
                               size=size, resume=resume, init=init_path, admission=admission)
    except (DatasetError, ValueError, OSError) as e:
        fail(str(e))
    out.print(f"diffusion: {state['step']} steps, loss {state['loss']:.4f}, {state['seconds']:.0f} s -> {out_dir}")


def _diffusion_folder(name: Optional[str], what: str):
    """The model `name` (None: the default) as a diffusion model folder, or a one-line failure saying `what` needs
    one (a GAN, a single-file checkpoint)."""
    from kaiga.model_files import ModelFormat, resolve_model

    ref = resolve_model(name)
    if ref.family != "diffusion" or ref.format is not ModelFormat.DIFFUSERS_FOLDER:
        fail(f"{what} needs a diffusion model folder ({ref.name} is a {ref.family} {ref.format.value})")
    return ref


@train_app.command("distill")
def train_distill(data: _Data, out_dir: _Out,
                  teacher: Annotated[Optional[str], typer.Option(help="The diffusion model to distil (name or folder; default: the default model).")] = None,
                  steps: _Steps = 4000, batch_size: _Batch = 32,
                  lr: Annotated[float, typer.Option(help="AdamW learning rate of the student.")] = 2e-5,
                  guidance_range: Annotated[str, typer.Option("--guidance-range", metavar="LOW,HIGH", help="Guidance scales the student learns, drawn per image (1: the conditional prediction alone); a request's guidance inside it is folded into its UNet.")] = "1,6",
                  solver_steps: Annotated[int, typer.Option("--solver-steps", min=2, max=1000, help="The teacher's DDIM steps over the schedule, one of which each training step takes (LCM's 50; LCMScheduler samples on the same grid).")] = 50,
                  target_decay: Annotated[float, typer.Option("--target-decay", min=0.0, max=1.0, help="EMA decay of the target network the student is pulled towards.")] = 0.95,
                  checkpoint_every: _CheckpointEvery = 100, sample_every: _SampleEvery = 250, seed: _Seed = 0,
                  resume: _Resume = False, max_minutes: _MaxMinutes = None, threads: _Threads = None,
                  lr_decay_from: _DecayFrom = None, precision: _Precision = "fp32",
                  allow_unlicensed: _AllowUnlicensed = False, opt_out: _OptOut = None):
    """Distil a diffusion model into a few-step student (latent consistency distillation, as LCM): guidance folded
    into the UNet, sampled in 1 to 8 steps (default 4) with --sampler lcm or ddim. The student is a model folder of
    its own (--out), e.g. `scenes-fast` when saved in $KAIGA_HOME/models."""
    _check_precision(precision)
    _run_paths(data, out_dir)
    try:
        low, high = (float(v) for v in guidance_range.split(","))
    except ValueError:
        fail(f"--guidance-range: two numbers LOW,HIGH such as 1,6 (got {guidance_range!r})")
    if not 0 <= low <= high <= 30:
        fail(f"--guidance-range: 0 <= LOW <= HIGH <= 30 (got {guidance_range!r})")
    admission = _admit(data, allow_unlicensed, opt_out)
    _use_threads(threads)
    from kaiga.data.dataset import DatasetError
    from kaiga.families.diffusion.consistency import ConsistencyConfig
    from kaiga.model_files import ModelError
    from kaiga.train.commands import train_consistency

    try:
        ref = _diffusion_folder(teacher, "teacher: distillation")
        cfg = ConsistencyConfig(guidance=(low, high), solver_steps=solver_steps, target_decay=target_decay)
        state = train_consistency(data, out_dir, ref.path, _loop_options(
            steps, batch_size, lr, checkpoint_every, sample_every, seed, max_minutes=max_minutes,
            decay_from=lr_decay_from, precision=precision), resume=resume, admission=admission, consistency=cfg)
    except (DatasetError, ModelError, ValueError, OSError) as e:
        fail(str(e))
    out.print(f"distill: {state['step']} steps, loss {state['loss']:.4f}, {state['seconds']:.0f} s -> {out_dir}")


@app.command()
def finetune(data: _Data,
             out_name: Annotated[str, typer.Option("--out", help="A name (saved as $KAIGA_HOME/loras/NAME.safetensors, usable at once as --lora NAME; textual-inversion: $KAIGA_HOME/embeddings/NAME.safetensors, used by any prompt with the word NAME; its run folder in $KAIGA_HOME/runs/NAME) or a path ending in .safetensors (its run folder beside it).")],
             method: Annotated[str, typer.Option(help="lora (peft adapters on the UNet's attention projections) or textual-inversion (one new word, NAME, whose input vector alone is learned: a few KB; needs a model with the pretrained text encoder). dreambooth is not built yet.")] = "lora",
             init_word: Annotated[str, typer.Option("--init-word", help="textual-inversion: an everyday word for the subject (toy, dog, style); the new word starts from its vector, and in each caption its first occurrence becomes NAME.")] = "object",
             model: Annotated[Optional[str], typer.Option(help="The diffusion model to adapt (name or folder; default: the default model).")] = None,
             rank: Annotated[int, typer.Option(min=1, max=256, help="LoRA rank: the adapters' width (file size grows with it).")] = 8,
             alpha: Annotated[float, typer.Option(min=0.0, help="LoRA alpha: the adapters' scale is alpha / rank.")] = 8.0,
             layout: Annotated[str, typer.Option(help="The file's keys: diffusers (what diffusers' load_lora_weights reads) or kohya (what AUTOMATIC1111 and ComfyUI read); kaiga reads both.")] = "diffusers",
             steps: _Steps = 1000, batch_size: _Batch = 16,
             lr: Annotated[Optional[float], typer.Option(help="AdamW learning rate (default: 1e-4 for LoRA adapters, 5e-3 for a textual-inversion vector, as diffusers' scripts use).")] = None,
             checkpoint_every: _CheckpointEvery = 100, sample_every: _SampleEvery = 250, seed: _Seed = 0,
             resume: _Resume = False, max_minutes: _MaxMinutes = None, threads: _Threads = None,
             precision: _Precision = "fp32", allow_unlicensed: _AllowUnlicensed = False, opt_out: _OptOut = None):
    """Fine-tune a diffusion model on your own captioned images (a folder with metadata.jsonl: file_name + text)."""
    from kaiga.finetune.embedding import check_trigger, embeddings_dir
    from kaiga.finetune.lora import LAYOUTS, loras_dir

    if method not in FINETUNE_METHODS:
        fail(f"--method: {' or '.join(FINETUNE_METHODS)} (got {method!r}; dreambooth is to come)")
    inversion = method == "textual-inversion"
    home = embeddings_dir() if inversion else loras_dir()
    if layout not in LAYOUTS:
        fail(f"--layout: one of {', '.join(LAYOUTS)} (got {layout!r})")
    target = Path(out_name).expanduser()
    if target.suffix == ".safetensors":
        out_file, run_dir = target, target.with_suffix("")
    elif target.suffix or "/" in out_name or not out_name.strip():
        fail(f"--out: a name (letters, digits, - and _) or a path ending in .safetensors (got {out_name!r})")
    else:
        from kaiga.paths import model_home

        out_file, run_dir = home / f"{out_name}.safetensors", model_home() / "runs" / out_name
    if inversion:
        try:
            check_trigger(out_file.stem)
        except ValueError as e:
            fail(f"--out: the file's name is the new word; {str(e).removeprefix('embedding: ')}")
    if out_file.exists() and not resume:
        fail(f"--out: {out_file} exists; choose another name, or --resume its run")
    _run_paths(data, run_dir)
    admission = _admit(data, allow_unlicensed, opt_out)
    _use_threads(threads)
    from kaiga.data.dataset import DatasetError
    from kaiga.finetune.train import finetune_lora, finetune_textual_inversion
    from kaiga.model_files import ModelError

    try:
        ref = _diffusion_folder(model, f"model: {'textual inversion' if inversion else 'LoRA fine-tuning'}")
        lr = lr if lr is not None else 5e-3 if inversion else 1e-4
        loop = _loop_options(steps, batch_size, lr, checkpoint_every, sample_every, seed, max_minutes=max_minutes,
                             precision=precision)
        if inversion:
            state = finetune_textual_inversion(ref.path, data, out_file, run_dir, loop, init_word=init_word,
                                               resume=resume, admission=admission)
        else:
            state = finetune_lora(ref.path, data, out_file, run_dir, loop, rank=rank, alpha=alpha, layout=layout,
                                  resume=resume, admission=admission)
    except (DatasetError, ModelError, ValueError, OSError) as e:
        fail(str(e))
    size = out_file.stat().st_size
    how = (f"write {out_file.stem} in a prompt" + ("" if out_file.parent == home else f" (after copying it to {home})")
           if inversion else f"use it with --lora {out_file.stem if out_file.parent == home else out_file}")
    out.print(f"{method}: {state['step']} steps, loss {state['loss']:.4f}, {state['seconds']:.0f} s -> {out_file} "
              f"({size / 1024:.0f} KB); {how}")


FINETUNE_METHODS = ("lora", "textual-inversion")


def _train_family(family: str, data, out_dir, steps, batch_size, lr, checkpoint_every, sample_every, seed, resume,
                  size, init, stage=None, grad_clip: float = 1.0, loss_options: dict | None = None, max_minutes=None,
                  stage_options: dict | None = None, threads: int | None = None, allow_unlicensed: bool = False,
                  opt_out: Optional[Path] = None):
    _run_paths(data, out_dir)  # --init may be a model's name: resolve_model checks it, still before training
    from kaiga.data.dataset import DatasetError
    from kaiga.model_files import ModelError, resolve_model
    from kaiga.train.commands import train_family

    if init is not None:  # a model name (scenes-vae) or a folder, as diffusion's --init takes: before the data
        try:
            ref = resolve_model(str(init))
        except ModelError as e:
            fail(str(e))
        if ref.family != family and (family, ref.family) != ("gan", "vae"):
            fail(f"init: {init} is a {ref.family} model, not a {family} one")
        init = ref.path
    admission = _admit(data, allow_unlicensed, opt_out)
    _use_threads(threads)
    loop = _loop_options(steps, batch_size, lr, checkpoint_every, sample_every, seed, grad_clip, max_minutes)
    try:
        state = train_family(family, data, out_dir, loop, size=size, resume=resume, init=init, stage=stage,
                             loss_options=loss_options, stage_options=stage_options, admission=admission)
    except (DatasetError, ModelError, ValueError, OSError) as e:
        fail(str(e))
    out.print(f"{family}: {state['step']} steps, loss {state['loss']:.4f}, {state['seconds']:.0f} s -> {out_dir}")


_Init = Annotated[Optional[Path], typer.Option(help="Continue from this model (name, such as scenes-vae, or folder: a fine-tune) instead of starting from scratch.")]


@train_app.command("vae")
def train_vae(data: _Data, out_dir: _Out, steps: _Steps = 10000, batch_size: _Batch = 32,
              lr: Annotated[float, typer.Option(help="AdamW learning rate.")] = 1e-3,
              checkpoint_every: _CheckpointEvery = 250, sample_every: _SampleEvery = 1000, seed: _Seed = 0,
              resume: _Resume = False, size: _Size = "default", init: _Init = None, max_minutes: _MaxMinutes = None,
              beta: Annotated[Optional[float], typer.Option(min=0.0, help="Weight of the KL term (default: the config's, 1; higher: the caption decides more, the latent less).")] = None,
              stage: Annotated[str, typer.Option(help="all (every part) or prior (only the prior p(z | text), on a trained VAE given by --init).")] = "all",
              prior_components: Annotated[Optional[int], typer.Option(min=1, max=64, help="Gaussians in the prior p(z | text); a new count starts a new, untrained prior (train it with --stage prior).")] = None,
              threads: _Threads = None, allow_unlicensed: _AllowUnlicensed = False, opt_out: _OptOut = None):
    """Train a conditional VAE (reconstruction + β·KL against a text-conditional prior).

    A mixture prior for a trained VAE, in minutes:
    kaiga train vae --data DIR --out runs/vae-prior --init runs/vae --stage prior --prior-components 16
    """
    if stage not in ("all", "prior"):
        fail(f"stage: must be all or prior (got {stage!r})")
    if stage == "prior" and init is None:
        fail("stage prior needs --init: the trained VAE whose prior to fit")
    _train_family("vae", data, out_dir, steps, batch_size, lr, checkpoint_every, sample_every, seed, resume, size, init,
                  stage=stage, loss_options={"beta": beta} if beta is not None else None, max_minutes=max_minutes,
                  stage_options={"prior_components": prior_components} if prior_components is not None else None,
                  threads=threads, allow_unlicensed=allow_unlicensed, opt_out=opt_out)


@train_app.command("gan")
def train_gan(data: _Data, out_dir: _Out, steps: _Steps = 10000, batch_size: _Batch = 32,
              lr: Annotated[float, typer.Option(help="AdamW learning rate (the generator's; see the config for D's).")] = 2e-4,
              checkpoint_every: _CheckpointEvery = 250, sample_every: _SampleEvery = 1000, seed: _Seed = 0,
              resume: _Resume = False, size: _Size = "default", init: _Init = None, max_minutes: _MaxMinutes = None,
              mismatch: Annotated[Optional[float], typer.Option(min=0.0, max=1.0, help="Share of D's fake term given to real images under wrong captions (matching-aware D, GAN-CLS); default: the config's, 0.")] = None,
              d_lr_ratio: Annotated[Optional[float], typer.Option(min=0.0, help="D's learning rate over G's (default: the config's, 1).")] = None,
              threads: _Threads = None, allow_unlicensed: _AllowUnlicensed = False, opt_out: _OptOut = None):
    """Train a text-conditional GAN (hinge loss, R1, DiffAugment, projection discriminator, EMA generator).

    --init takes a gan to continue, or a vae with a one-Gaussian prior (such as scripts/train_gpu.sh's
    runs/gpu-from-scratch/vae; not the bundled scenes-vae, whose prior is a mixture) to start from: the
    generator is then the VAE's decoder (a VAE-GAN start), its text encoder stays fixed, and D starts untrained.

    No gradient clipping: the loop clips G's and D's gradients as one vector, so D's large
    gradients would shrink every G step; R1 keeps D in check instead.
    """
    options = {"mismatch": mismatch, "d_lr_ratio": d_lr_ratio}
    _train_family("gan", data, out_dir, steps, batch_size, lr, checkpoint_every, sample_every, seed, resume, size, init,
                  grad_clip=0.0, max_minutes=max_minutes,
                  loss_options={k: v for k, v in options.items() if v is not None} or None, threads=threads,
                  allow_unlicensed=allow_unlicensed, opt_out=opt_out)


@train_app.command("transformer")
def train_transformer(data: _Data, out_dir: _Out,
                      stage: Annotated[str, typer.Option(help="tokenizer (VQ), scorer (the reranker) or prior (the GPT over text + image tokens); the tokenizer first, then each stage with --init the previous stage's folder (the prior needs the tokenizer, the scorer only real images).")],
                      steps: _Steps = 5000, batch_size: _Batch = 32,
                      lr: Annotated[float, typer.Option(help="AdamW learning rate.")] = 5e-4,
                      checkpoint_every: _CheckpointEvery = 250, sample_every: _SampleEvery = 1000, seed: _Seed = 0,
                      resume: _Resume = False, size: _Size = "default", init: _Init = None,
                      max_minutes: _MaxMinutes = None, threads: _Threads = None,
                      allow_unlicensed: _AllowUnlicensed = False, opt_out: _OptOut = None):
    """Train one stage of the DALL-E-style model: VQ tokenizer, then GPT prior, then the reranker."""
    if stage not in ("tokenizer", "prior", "scorer"):
        fail(f"stage: must be tokenizer, prior or scorer (got {stage!r})")
    if stage != "tokenizer" and init is None:
        fail(f"stage {stage} needs --init: the folder the previous stage wrote")
    _train_family("transformer", data, out_dir, steps, batch_size, lr, checkpoint_every, sample_every, seed, resume,
                  size, init, stage=stage, max_minutes=max_minutes, threads=threads, allow_unlicensed=allow_unlicensed,
                  opt_out=opt_out)


@train_app.command("readout")
def train_readout_cmd(out_dir: _Out, steps: _Steps = 3000, batch_size: _Batch = 64,
                      lr: Annotated[float, typer.Option(help="AdamW learning rate.")] = 2e-3,
                      n_train: Annotated[int, typer.Option("--n-train", min=100, help="Renders to train on (all kept in memory: 12 KB each).")] = 30000,
                      n_test: Annotated[int, typer.Option("--n-test", min=10, help="Fresh renders per accuracy measurement.")] = 3000,
                      checkpoint_every: _CheckpointEvery = 250, seed: Annotated[int, typer.Option(help="Seed of the training renders; accuracy is measured on seed+1 and seed+2.")] = 100,
                      resume: _Resume = False, threads: _Threads = None):
    """Train the readout network, the judge of `kaiga eval`, on fresh renders; writes OUT/readout/.

    It learns to read every scenes attribute back from an image, with blur and noise so that it
    also reads soft generated images. The bundled judge (kaiga/bundled/scenes-readout) was made
    with the defaults (about 35 minutes on 2 CPU cores); its accuracy is in its readout.json.
    """
    _writable_folder(out_dir, "--out")
    _use_threads(threads)
    from dataclasses import replace

    from rich.progress import Progress

    from kaiga.eval.readout_train import train_readout

    loop = replace(_loop_options(steps, batch_size, lr, checkpoint_every, 0, 0), warmup_steps=min(100, steps // 10))
    with Progress(console=err, transient=True) as bar:
        task = bar.add_task("rendering", total=n_train)
        measured = train_readout(out_dir, loop, n_train=n_train, seed=seed, n_test=n_test, resume=resume,
                                 progress=lambda i, n: bar.update(task, completed=i))
    for name, acc in measured.items():
        if isinstance(acc, dict):
            out.print(f"{name}: " + ", ".join(f"{k} {v:.3f}" for k, v in acc.items()), highlight=False)
    out.print(f"readout network -> {out_dir / 'readout'}")


@train_app.command("watermark")
def train_watermark_cmd(out_dir: _Out, steps: _Steps = 6000, batch_size: _Batch = 32,
                        lr: Annotated[float, typer.Option(help="AdamW learning rate.")] = 3e-3,
                        n_train: Annotated[int, typer.Option("--n-train", min=8, help="Renders to train on (kept in memory: 12 KB each).")] = 4000,
                        checkpoint_every: _CheckpointEvery = 250, seed: _Seed = 0, resume: _Resume = False,
                        max_minutes: _MaxMinutes = None, threads: _Threads = None):
    """Train the invisible watermark (encoder and decoder together, through JPEG, resizing, crops, noise and
    blur); writes OUT/watermark.safetensors and OUT/watermark.json.

    The bundled watermark (kaiga/bundled/watermark) was made with the defaults; bench/watermark.py measures it.
    """
    _writable_folder(out_dir, "--out")
    _use_threads(threads)
    from dataclasses import replace

    from kaiga.train.loop import train
    from kaiga.train.watermark import WatermarkTask

    loop = replace(_loop_options(steps, batch_size, lr, checkpoint_every, 0, seed, max_minutes=max_minutes),
                   ema_decay=0.99)
    state = train(WatermarkTask(pool=n_train, batch_size=batch_size), loop, out_dir, resume=resume)
    out.print(f"watermark after {state['step']} steps (loss {state['loss']:.4f}) -> {out_dir}")


@train_app.command("upscaler")
def train_upscaler_cmd(out_dir: _Out, steps: _Steps = 6000, batch_size: _Batch = 32,
                       lr: Annotated[float, typer.Option(help="AdamW learning rate.")] = 2e-3,
                       n_train: Annotated[int, typer.Option("--n-train", min=2, help="Scene pairs to train on, drawn at 64² and 256² (kept in memory: 208 KB each).")] = 3000,
                       checkpoint_every: _CheckpointEvery = 250, sample_every: _SampleEvery = 1000, seed: _Seed = 0,
                       resume: _Resume = False, max_minutes: _MaxMinutes = None, threads: _Threads = None):
    """Train the learned 4× upscaler on scenes drawn at 64² and at 256²; writes OUT/upscaler.safetensors and
    OUT/upscaler.json (use it with KAIGA_UPSCALER=OUT, or copy it over kaiga/bundled/upscaler).

    The bundled upscaler was made with `--steps 8000` and the other defaults; bench/upscaler.py measures it
    against Lanczos.
    """
    _writable_folder(out_dir, "--out")
    _use_threads(threads)
    from kaiga.train.loop import train
    from kaiga.train.upscaler import UpscalerTask

    loop = _loop_options(steps, batch_size, lr, checkpoint_every, sample_every, seed, max_minutes=max_minutes)
    state = train(UpscalerTask(pool=n_train, batch_size=batch_size), loop, out_dir, resume=resume)
    out.print(f"upscaler after {state['step']} steps (loss {state['loss']:.4f}) -> {out_dir}")


def _wide() -> Console:
    """The terminal's console, or a wide one when output goes to a file: no wrapped table columns in logs."""
    return out if sys.stdout.isatty() else Console(width=160)


def _eval_model(model: Optional[str]):
    """(name, hash, loaded model) of the model to evaluate; name `renders` is the renderer itself."""
    from kaiga.eval.report import ORACLE
    from kaiga.model_files import ModelError
    from kaiga.studio import Studio

    if model == ORACLE:
        return ORACLE, None, None
    try:
        loaded = Studio().load(model)
    except ModelError as e:
        fail(str(e))
    return loaded.ref.name, loaded.hash, loaded.model


def _generator(loaded_model, settings: dict, total: int, bar, label: str):
    """A GenerateFn over the loaded model with the evaluation's (checked) request settings."""
    from kaiga.eval.alignment import model_generate

    task = bar.add_task(label, total=total)
    options = {k: settings[k] for k in FAMILY_OPTIONS if k in settings}
    return model_generate(loaded_model, steps=settings.get("steps"), guidance=settings.get("guidance"),
                          sampler=settings["sampler"], on_image=lambda done: bar.update(task, completed=done),
                          options=options)


def _model_settings(settings: dict, loaded_model) -> dict:
    """The settings as the model runs them, for its results: a denoising model's own steps and guidance where
    the command left them out (20 / 3 for kaiga's, 50 / 7.5 for Stable Diffusion)."""
    from kaiga.capabilities import Capabilities, with_defaults
    from kaiga.request import GenerationRequest

    run = with_defaults(Capabilities.from_info(loaded_model.info), GenerationRequest(prompt="", **settings))
    return {name: getattr(run, name) for name in ("steps", "guidance") if getattr(run, name) is not None} | settings


_EvalModel = Annotated[Optional[str], typer.Option(help="Model name or path (default: the bundled default); `renders` scores the renderer itself (the ceiling).")]
# The request settings an evaluation takes, as `kaiga generate` does (same names, defaults, ranges, help).
EVAL_FIELDS = ("steps", "guidance", "sampler", *FAMILY_OPTIONS)


def _eval_settings(fields: dict) -> dict:
    """The evaluation's request settings, checked by the request type before any model loads, as recorded in
    its results: steps, guidance and sampler, and the family options given (None: the model's default)."""
    from pydantic import ValidationError

    from kaiga.request import GenerationRequest, describe_error

    try:
        GenerationRequest(prompt="the evaluation's prompts", **fields)
    except ValidationError as e:
        fail(describe_error(e))
    return {k: v for k, v in fields.items() if v is not None}


@eval_app.command("alignment")
@request_options(EVAL_FIELDS)
def eval_alignment(
    model: _EvalModel = None,
    samples_per_prompt: Annotated[int, typer.Option("--samples-per-prompt", "-k", min=1, max=64, help="Images per prompt (fixed seeds).")] = 4,
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Result file (default: docs/eval/<model>/alignment.json).")] = None,
    grid: Annotated[Optional[Path], typer.Option(help="Worst-prompts grid PNG (default: beside the JSON).")] = None,
    readout: Annotated[Optional[Path], typer.Option(help="Readout network folder (default: the bundled judge).")] = None,
    through_autoencoder: Annotated[bool, typer.Option("--through-autoencoder", help="Score renders passed through the model's autoencoder instead of generating: the ceiling its latent space allows (results under <model>+autoencoder).")] = False,
    category: Annotated[Optional[list[str]], typer.Option("--category", "-c", help="Score only this category (repeat for several), with the seeds a full run gives its prompts; the result goes to alignment-<categories>.json, never over a full run's.")] = None,
    suite_name: Annotated[str, typer.Option("--suite", help="main: the generated suite (kaiga/eval/prompts.py); everyday: 120 prompts written by hand in words no caption uses (kaiga/eval/suites/everyday.jsonl), scored to alignment-everyday.json.")] = "main",
    threads: _Threads = None,
    *, fields: dict,
):
    """Score prompt-following on the fixed suite: GenEval categories plus scene, weather, time, style.

    Every suite prompt gets K images from fixed seeds; the readout network reads each image and it
    passes when every attribute the prompt asks for is right. Scores are reported for seen and for
    held-out attribute combinations, per category and overall; the worst prompts go to a PNG grid.
    The bundled model at K=4 takes about 5 minutes on 2 CPU cores.

    A quick check of the pair categories only (about a quarter of the time):

        kaiga eval alignment -c two_objects -c position -c colour_attribution

    Everyday English, outside every caption template (each prompt's entry lists the words the model
    ignored):

        kaiga eval alignment --suite everyday
    """
    _writable_file(json_path, "--json")  # before the model loads, as every check here
    _writable_file(grid, "--grid")
    _input_path(readout, "--readout", "folder")
    from rich.progress import Progress
    from rich.table import Table

    from kaiga.eval.alignment import (
        autoencoder_generate,
        check_categories,
        evaluate_alignment,
        oracle_generate,
        write_alignment,
    )
    from kaiga.eval.prompts import CATEGORIES, named_suite
    from kaiga.eval.readout import ReadoutNet
    from kaiga.text.tokenizer import unknown_words

    try:  # before the model loads: a typo should not cost minutes
        check_categories(category)
    except ValueError as e:
        fail(f"--category: {e}")
    try:
        suite, _ = named_suite(suite_name)
    except ValueError as e:
        fail(f"--suite: {e}")
    settings = _eval_settings(fields)
    _use_threads(threads)
    name, model_hash, loaded = _eval_model(model)
    if loaded is not None:
        settings = _model_settings(settings, loaded)
    judge = ReadoutNet.load(readout)
    if through_autoencoder and loaded is None:
        fail("through-autoencoder: give a model whose autoencoder to use (not `renders`)")
    with Progress(console=err, transient=True) as bar:
        if loaded is None:
            generate = oracle_generate(suite)
        elif through_autoencoder:
            generate, name = autoencoder_generate(loaded, suite), f"{name}+autoencoder"
        else:
            generate = _generator(loaded, settings, len(suite) * samples_per_prompt, bar, "generating")
        tokenizer = getattr(loaded, "tokenizer", None) if loaded is not None and not through_autoencoder else None
        ignored = (lambda p: unknown_words(tokenizer, p)) if tokenizer is not None else None
        result, cases = evaluate_alignment(generate, judge, k=samples_per_prompt, suite=suite, categories=category,
                                           suite_name=suite_name, ignored_words=ignored)
    generated = loaded is not None and not through_autoencoder
    result = {"model": name, "model_hash": model_hash,
              "settings": settings if generated else None} | result
    # A partial run has its own file: the report reads alignment.json, which must hold the whole suite.
    stem = ("alignment" + ("-everyday" if suite_name == "everyday" else "")
            + ("-" + "+".join(result["categories"]) if category else ""))
    json_path = json_path or Path("docs/eval") / name / f"{stem}.json"
    grid = grid or json_path.with_name(f"{json_path.stem}-worst.png")
    write_alignment(result, cases, json_path, grid)
    shown = result["categories"] or CATEGORIES
    table = Table("", "overall", *[c.replace("_", " ") for c in shown], title=f"alignment of {name}")
    for split in ("seen", "held_out"):
        if (r := result[split]) is None:
            continue
        for label, overall, cats in ((split, "overall", "categories"), (f"{split} strict", "strict_overall", "strict_categories")):
            table.add_row(label.replace("_", "-"), f"{r[overall]:.3f}",
                          *[f"{r[cats][c]:.2f}" if c in r[cats] else "–" for c in shown])
    _wide().print(table)
    acc = result["readout_accuracy"]
    if acc:
        out.print("judge accuracy on renders: " + ", ".join(f"{k} {v:.3f}" for k, v in acc.items()), highlight=False)
    if "prompts_with_ignored_words" in result:
        out.print(f"prompts with words the model ignored: {result['prompts_with_ignored_words']} of "
                  f"{len(result['prompts'])}", highlight=False)
    out.print(f"wrote {json_path} and {grid}", highlight=False)


@eval_app.command("fidelity")
@request_options(EVAL_FIELDS)
def eval_fidelity(
    model: _EvalModel = None,
    n: Annotated[int, typer.Option("--n", min=10, max=100_000, help="Images to generate, and held-out renders to compare with.")] = 1000,
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Result file (default: docs/eval/<model>/fidelity.json).")] = None,
    readout: Annotated[Optional[Path], typer.Option(help="Readout network folder (default: the bundled judge).")] = None,
    features: Annotated[Optional[Path], typer.Option(help="Also score in this network's feature space: a TorchScript file such as the standard FID Inception (inception-2015-12-05.pt), uint8 images in, features out.")] = None,
    threads: _Threads = None,
    *, fields: dict,
):
    """FID, KID, precision and recall against held-out renders, with the floor at the same N.

    Features are the readout network's (Inception cannot be downloaded here). The model is prompted
    with the captions of N fresh renders; the floor compares those renders with N other renders:
    what a perfect model would score at this N. N=1000 takes about 8 minutes on 2 CPU cores.
    """
    _writable_file(json_path, "--json")  # before the model loads
    _input_path(readout, "--readout", "folder")
    _input_path(features, "--features")

    from rich.progress import Progress

    from kaiga.eval.fidelity import FeatureExtractorError, evaluate_fidelity, torchscript_features
    from kaiga.eval.readout import ReadoutNet

    settings = _eval_settings(fields)
    _use_threads(threads)
    name, model_hash, loaded = _eval_model(model)
    if loaded is not None:
        settings = _model_settings(settings, loaded)
    if loaded is None:
        fail("fidelity: `renders` is the reference itself; its score is the floor printed for every model")
    try:
        extra = torchscript_features(features) if features is not None else None
    except FeatureExtractorError as e:
        fail(str(e))
    judge = ReadoutNet.load(readout)
    with Progress(console=err, transient=True) as bar:
        generate = _generator(loaded, settings, n, bar, "generating")
        result = evaluate_fidelity(generate, judge, n=n, extra_features=extra,
                                   extra_name=features.name if features is not None else "")
    result = {"model_name": name, "model_hash": model_hash,
              "settings": settings} | result
    json_path = json_path or Path("docs/eval") / name / "fidelity.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=1) + "\n")
    m, f = result["model"], result["floor"]
    out.print(f"{name} at N={n}: FID {m['fid']:.2f} (floor {f['fid']:.2f}, ratio {m['fid'] / f['fid']:.1f}), "
              f"KID {m['kid_mean']:.4f} (floor {f['kid_mean']:.4f}), precision {m['precision']:.3f}, "
              f"recall {m['recall']:.3f}", highlight=False)
    if "extra" in result:
        m, f = result["extra"]["model"], result["extra"]["floor"]
        out.print(f"in {result['extra']['features']}: FID {m['fid']:.2f} (floor {f['fid']:.2f}), "
                  f"KID {m['kid_mean']:.4f} (floor {f['kid_mean']:.4f})", highlight=False)
    out.print(f"wrote {json_path}", highlight=False)


@eval_app.command("families")
def eval_families(
    models: Annotated[Optional[list[str]], typer.Argument(help="Models to compare (default: the four bundled scenes models).")] = None,
    batch: Annotated[int, typer.Option(min=1, max=16, help="Images per call.")] = 16,
    repeats: Annotated[int, typer.Option(min=1, max=100, help="Timed calls per model; the median is reported.")] = 3,
    threads: _Threads = None,
    json_path: Annotated[Path, typer.Option("--json", help="Where to write the figures.")] = Path("bench/results/families.json"),
):
    """Time every family's model in one run (ms/image at batch 16, against diffusion) and count parameters.

    `kaiga eval report` joins these figures with each model's alignment and fidelity results into the
    families table of docs/EVAL.md. About a minute on 2 CPU cores.
    """
    _writable_file(json_path, "--json")
    from rich.table import Table

    from kaiga.eval.families import DEFAULT_MODELS, measure_families
    from kaiga.model_files import ModelError

    try:
        result = measure_families(models or DEFAULT_MODELS, batch=batch, repeats=repeats, threads=_use_threads(threads),
                                  on_model=lambda name: err.print(f"[dim]timed {name}[/]", highlight=False))
    except ModelError as e:
        fail(str(e))
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=1) + "\n")
    table = Table("model", "family", "params", f"ms/image (batch {batch})", "images/s", "× diffusion's speed",
                  title=f"families, median of {repeats}, {result['settings']['threads']} threads")
    for name, m in result["models"].items():
        table.add_row(name, m["family"], f"{m['params'] / 1e6:.2f} M", f"{m['ms_per_image']:.2f}",
                      f"{m['images_per_s']:.1f}", f"{m['speedup_over_diffusion']}" if m["speedup_over_diffusion"] else "–")
    _wide().print(table)
    typer.echo(f"wrote {json_path}")


@eval_app.command("report")
def eval_report(
    out_path: Annotated[Path, typer.Option("--out", help="Markdown file to write.")] = Path("docs/EVAL.md"),
    results: Annotated[Path, typer.Option(help="Folder of per-model results (<model>/alignment.json, fidelity.json).")] = Path("docs/eval"),
    bench_json: Annotated[Path, typer.Option("--bench", help="Speed results of `kaiga bench`.")] = Path("bench/results/generate.json"),
    families_json: Annotated[Path, typer.Option("--families", help="Results of `kaiga eval families`.")] = Path("bench/results/families.json"),
):
    """Write docs/EVAL.md (tables and grids) from the JSON files the eval commands and `kaiga bench` wrote."""
    _writable_file(out_path, "--out")
    _input_path(results, "--results", "folder", required=False)  # missing inputs: the report says what makes them
    _input_path(bench_json, "--bench", required=False)
    _input_path(families_json, "--families", required=False)
    from kaiga.eval.report import write_report

    out.print(f"wrote {write_report(out_path, results, bench_json, families_json=families_json)}")



@audit_app.command("bias")
def audit_bias_cmd(
    model: Annotated[Optional[str], typer.Option(help="Model name or path (default: the bundled default).")] = None,
    n: Annotated[int, typer.Option("--n", min=10, max=10_000, help="Images per prompt (seeds 0..N-1).")] = 100,
    prompt: Annotated[Optional[list[str]], typer.Option("--prompt", "-p", help="An under-specified prompt to audit (repeat for several; default: a car, a dog, a pet in the city, a vehicle at night).")] = None,
    data: Annotated[Optional[Path], typer.Option(help="The model's training data (a folder with metadata.jsonl `attributes`): its frequencies are the reference. Default: the scenes world's distribution, which the bundled models were trained on.")] = None,
    balance: Annotated[Optional[str], typer.Option(help="Mitigate: complete each prompt with every value of this open attribute in equal shares (object, colour, scene, weather, time or style).")] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for bias.json and bias.png.")] = Path("audit"),
    threads: _Threads = None,
):
    """Skews in what a model makes where the prompt leaves an attribute open, against uniform and its training data.

    Every prompt gets N images; the judge of `kaiga eval` reads each open attribute; each distribution is
    reported with bootstrap 95 % intervals, TV distance and chi-square p-value against uniform and against
    the training data's frequencies, the amplification over the data, and the judge's own accuracy. Exit 0:
    an audit reports. The default prompts at N=100 take about a minute on 2 CPU cores.
    """
    _input_path(data, "--data", "folder")
    _writable_folder(out_dir, "--out")
    from kaiga.audit.bias import audit_bias, dataset_scenes, table_rows, write_bias
    from kaiga.audit.prompts import DEFAULT_PROMPTS, OPEN_ORDER, parse_prompt

    if balance is not None and balance not in OPEN_ORDER:
        fail(f"--balance: must be one of {', '.join(OPEN_ORDER)} (got {balance!r})")
    prompts = prompt or list(DEFAULT_PROMPTS)
    for text in prompts:  # before the model loads: a typo should not cost its load
        try:
            spec = parse_prompt(text)
        except ValueError as e:
            fail(f"--prompt: {e}")
        if not spec.open:
            fail(f"--prompt: {text!r} leaves nothing open to audit; name fewer attributes")
        if balance is not None and balance not in spec.open:
            fail(f"--balance: {balance} is named in {text!r}, not open (open: {', '.join(spec.open)})")
    try:
        scenes = dataset_scenes(data) if data is not None else None
    except ValueError as e:
        fail(f"--data: {e}")
    _use_threads(threads)
    from kaiga.eval.alignment import model_generate
    from kaiga.eval.readout import ReadoutNet
    from kaiga.text.tokenizer import unknown_words

    name, model_hash, loaded = _eval_model(model)
    if loaded is None:
        fail("--model: `renders` is the renderer, not a model; give a model name or path")
    result = audit_bias(model_generate(loaded), ReadoutNet.load(), prompts, n=n, train_scenes=scenes,
                        balance=balance, unknown_words=lambda p: unknown_words(loaded.tokenizer, p))
    result = {"model": name, "model_hash": model_hash, "data": str(data) if data else None} | result
    json_path, chart = write_bias(result, out_dir)
    from rich.table import Table

    header, *body = table_rows(result)
    table = Table(*header, title=f"bias of {name}, N={n} per prompt" + (f", balanced {balance}" if balance else ""))
    for row in body:
        table.add_row(*row)
    _wide().print(table)
    for p in result["prompts"]:
        if p["unknown_words"]:
            _wide().print(f"note: {name} does not know {', '.join(p['unknown_words'])} (in {p['prompt']!r}): it reads "
                          "the prompt without them", highlight=False, soft_wrap=True)
    out.print(f"wrote {json_path} and {chart}", highlight=False)

def _int_list(text: Optional[str], name: str) -> Optional[tuple[int, ...]]:
    """'4,20' -> (4, 20); ranges are checked by SpeedConfig."""
    if text is None:
        return None
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        fail(f"{name}: a comma-separated list of whole numbers, e.g. 4,20 (got {text!r})")


def _speed_tables(result: dict) -> list:
    """The bench results as Rich tables: throughput, then cold start (when measured)."""
    from rich.table import Table

    s, env = result["settings"], result["environment"]
    t = Table(title=f"generation, {s['width']}×{s['height']} {s['sampler']} cfg {s['guidance']} — {env['device']} "
                    f"({env['device_name']}), {env['torch_threads']} threads, median of {s['repeats']}; "
                    f"kaiga/stock < 1: kaiga faster")
    for col in ("steps", "batch", "kaiga ms/img", "stock ms/img", "kaiga img/s", "stock img/s", "kaiga/stock",
                "max px diff"):
        t.add_column(col, justify="right")
    for c in result["throughput"]:
        k, st = c["kaiga"], c["stock"]
        t.add_row(str(c["steps"]), str(c["batch"]), f"{k['ms_per_image']:.1f}", f"{st['ms_per_image']:.1f}",
                  f"{k['images_per_s']:.2f}", f"{st['images_per_s']:.2f}", f"{c['ratio_kaiga_over_stock']:.3f}",
                  str(c["max_pixel_diff"]))
    tables = [t]
    cold = result["cold_start"]
    if cold is not None:
        cuda = cold["ratio_peak_cuda_kaiga_over_stock"] is not None
        t = Table(title=f"cold start: a fresh process to its first image ({cold['steps']} steps), seconds")
        for col in ("", "wall", "start+exit", "import", "load", "generate", "peak RSS MiB",
                    *(["peak CUDA MiB"] if cuda else []), "loader"):
            t.add_column(col, justify="right")
        for name in ("kaiga", "stock"):
            c = cold[name]
            t.add_row(name, f"{c['wall_s']:.2f}", f"{c['outside_s']:.2f}", f"{c['import_s']:.2f}",
                      f"{c['load_s']:.2f}", f"{c['generate_s']:.2f}", f"{c['peak_rss_mib']:.0f}",
                      *([f"{c['peak_cuda_mib']:.0f}"] if cuda else []), c.get("loader", "Studio"))
        t.add_row("kaiga/stock", f"{cold['ratio_wall_kaiga_over_stock']:.3f}", "", "", "", "",
                  f"{cold['ratio_peak_rss_kaiga_over_stock']:.3f}",
                  *([f"{cold['ratio_peak_cuda_kaiga_over_stock']:.3f}"] if cuda else []), "", style="bold")
        tables.append(t)
    return tables


@app.command()
def bench(
    model: Annotated[Optional[str], typer.Option(help="Model name or path (default: the bundled default model).")] = None,
    json_path: Annotated[Path, typer.Option("--json", show_default=False, help="Where to write every figure (default: bench/results/generate.json under the current folder).")] = Path("bench/results/generate.json"),
    steps: Annotated[Optional[str], typer.Option(help="Sampling steps of the throughput cells, comma-separated (default 4,20; 2 with --quick).")] = None,
    batch_sizes: Annotated[Optional[str], typer.Option("--batch-sizes", help="Images per call, comma-separated, each 1-16 (default 1,16; 1,2 with --quick).")] = None,
    repeats: Annotated[Optional[int], typer.Option(min=1, max=1000, help="Timed calls per side per cell, and cold starts per side; the median is reported (default 3; 1 with --quick).")] = None,
    cold_start: Annotated[bool, typer.Option("--cold-start/--no-cold-start", help="Also time fresh processes to their first image (the slowest part).")] = True,
    size: Annotated[Optional[int], typer.Option(help="Image width and height in pixels (default: the model's native size).")] = None,
    device: _Device = None,
    threads: Annotated[Optional[int], typer.Option(min=1, help="Torch threads, here and in the cold-start processes (default: torch's choice, usually every core).")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="Smoke run: 2 steps, batch 1 and 2, 1 repeat; options given beside it still apply.")] = False,
    precision: Annotated[str, typer.Option(help="kaiga's side computes in fp32 (the same pixels as stock) or bf16 (autocast; stock stays fp32, as diffusers runs by default): the max pixel difference says what it costs.")] = "fp32",
    backend: _Backend = "eager",
):
    """Time kaiga's generation against stock diffusers on the same weights, in one run.

    For each cell (steps × batch size) it times kaiga's text-to-image pipeline
    and diffusers' StableDiffusionPipeline built from the very same loaded
    modules, interleaved, and reports ms/image, images/s and the ratio
    kaiga/stock (below 1: kaiga faster). The cold start is a fresh Python
    process per side that imports, loads the model and makes one image; its
    peak memory is reported too. Both sides make the same pixels (max px
    diff 0 on a CPU), so the ratios compare equal work.

    The full run takes 2-3 minutes on 2 CPU cores with the bundled model
    (--quick: under a minute; a 512-pixel Stable Diffusion model on a CPU:
    hours). Times are wall-clock: leave the machine otherwise idle, or bound
    the cores with --threads. bench/README.md explains every field.
    """
    _writable_file(json_path, "--json")
    _check_device(device)
    _check_precision(precision)
    _check_backend(backend)
    from dataclasses import replace

    from kaiga.eval.speed import FULL, QUICK, ColdStartError, run, write_json

    given = {"model": model, "device": device, "steps": _int_list(steps, "steps"),
             "batch_sizes": _int_list(batch_sizes, "batch-sizes"), "repeats": repeats, "size": size,
             "threads": threads, "precision": precision, "backend": backend}
    try:
        config = replace(QUICK if quick else FULL, cold_start=cold_start,
                         **{k: v for k, v in given.items() if v is not None})
    except ValueError as e:
        fail(str(e).replace("batch_sizes", "batch-sizes"))

    from kaiga.model_files import ModelError
    from kaiga.request import RequestError

    try:
        # Plain lines, not a spinner: a redrawing thread would take CPU from what is being timed.
        result = run(config, on_progress=lambda message: err.print(f"[dim]{message}[/]", highlight=False))
    except (ModelError, RequestError) as e:
        fail(str(e))
    except ColdStartError as e:
        fail(str(e), code=1)
    path = write_json(result, json_path)
    for table in _speed_tables(result):
        _wide().print(table)
    typer.echo(f"wrote {path}")


# --- the studio server: `kaiga serve`, `kaiga keys` ----------------------------------------------

@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on; anything but loopback needs --auth or --api-auth (or --insecure).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port.")] = 7860,
    db: _Db = None,
    auth: Annotated[bool, typer.Option("--auth", help="Require an API key (`kaiga keys create`) on /v1 and /sdapi.")] = False,
    api_auth: Annotated[Optional[list[str]], typer.Option("--api-auth", help="user:password for HTTP Basic auth on /sdapi, as A1111's --api-auth (repeatable).")] = None,
    insecure: Annotated[bool, typer.Option("--insecure", help="Allow a non-loopback address without any auth.")] = False,
    model: Annotated[Optional[str], typer.Option(help="Default model: a name (see `kaiga models`) or a path.")] = None,
    max_queued: Annotated[int, typer.Option(min=1, help="Unfinished jobs before new requests get 429.")] = 64,
    device: _Device = None,
    threads: _Threads = None,
    precision: Annotated[str, typer.Option(help="fp32 (the default) or bf16: the workers generate under bfloat16 autocast, faster at large batches on CPUs with AMX and on GPUs; records say so.")] = "fp32",
    batch_jobs: Annotated[bool, typer.Option("--batch-jobs/--no-batch-jobs", help="Run queued jobs that differ only in their seeds together, in one batch of up to 16 images (each image as its seed makes it alone, to one grey level).")] = True,
    backend: _Backend = "eager",
):
    """Serve the studio over HTTP: OpenAI-compatible /v1, A1111-compatible /sdapi/v1, docs at /docs."""
    from pydantic import ValidationError

    from kaiga.model_files import ModelError
    from kaiga.request import describe_error
    from kaiga.server.settings import ServerSettings, is_loopback

    _check_precision(precision)
    _check_backend(backend)
    try:
        settings = ServerSettings(db_url=db, require_keys=auth, api_auth=tuple(api_auth or ()), default_model=model,
                                  max_queued=max_queued, device=device, precision=precision, batch_jobs=batch_jobs,
                                  backend=backend)
    except ValidationError as e:
        fail(describe_error(e))
    if not is_loopback(host) and not settings.has_auth and not insecure:
        fail(f"host: {host} is reachable from other machines and no auth is set; add --auth (API keys from "
             "`kaiga keys create`) or --api-auth user:password, or --insecure to serve it open anyway")
    _check_device(device)
    from kaiga.safety import SafetySettings, SafetySettingsError

    try:  # a bad KAIGA_SAFETY* would otherwise fail every job, not the start
        SafetySettings.from_env()
    except SafetySettingsError as e:
        fail(str(e))
    database = _open_db(db)  # a bad --db is one line here, not a traceback once the server starts
    import uvicorn

    from kaiga.server.app import create_app
    from kaiga.server.catalog import Catalog
    from kaiga.store.keys import list_keys

    try:
        Catalog(settings.default_model)  # an unknown model is a usage error, before anything starts
        if settings.require_keys and not any(k.revoked is None for k in list_keys(database)):
            err.print("[yellow]warning:[/] --auth but no API key yet: make one with `kaiga keys create`", highlight=False)
    except ModelError as e:
        fail(str(e))
    database.engine.dispose()  # the server opens its own
    _use_threads(threads)
    sock = _bound_socket(host, port)  # bound before "serving on" is printed: a taken port is one line, exit 2
    err.print(f"kaiga serving on http://{host}:{sock.getsockname()[1]} (API docs: /docs)", highlight=False)
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning"))
    server.run(sockets=[sock])


def _bound_socket(host: str, port: int):
    """A listening socket on host:port, as uvicorn would bind it; fail naming --port or --host when it cannot."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: a restart need not wait for TIME_WAIT
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            fail(f"--port: {port} is already in use on {host}; stop what serves there or pick another --port")
        fail(f"--host: cannot listen on {host}:{port} ({e.strerror or e})")
    sock.set_inheritable(True)
    return sock


@keys_app.command("create")
def keys_create(name: Annotated[str, typer.Option(help="What the key is for, shown by `kaiga keys list`.")] = "",
                db: _Db = None):
    """Make an API key and print it: it is stored only as a hash, so this is the one time it is shown."""
    from kaiga.store.keys import create_key

    typer.echo(create_key(_open_db(db), name=name))
    err.print("store it now: kaiga keeps only its SHA-256", highlight=False)


@keys_app.command("list")
def keys_list(db: _Db = None):
    """List API keys (id, name, first characters, created, revoked)."""
    from rich.table import Table

    from kaiga.store.keys import list_keys

    table = Table("id", "name", "starts with", "created", "revoked")
    for k in list_keys(_open_db(db)):
        table.add_row(str(k.id), k.name, k.prefix + "…", f"{k.created:%Y-%m-%d %H:%M}",
                      f"{k.revoked:%Y-%m-%d %H:%M}" if k.revoked else "")
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[int, typer.Argument(help="The key's id (see `kaiga keys list`).")], db: _Db = None):
    """Revoke an API key: requests with it get 401 from then on."""
    from kaiga.store.keys import revoke_key

    if not revoke_key(_open_db(db), key_id):
        fail(f"key_id: no active key {key_id}")
    out.print(f"revoked key {key_id}")


@keys_app.command("init-signing")
def keys_init_signing(force: Annotated[bool, typer.Option(
        "--force", help="Replace an existing signing key (images signed with the old one then verify as untrusted).")] = False):
    """Make, once and offline, the key and certificates that sign content credentials (C2PA) of every image.

    A local root certificate (the trust anchor `kaiga verify` checks against) and a signing certificate
    and key, in $KAIGA_HOME/signing (the key readable by you only). From then on every PNG that
    `kaiga generate` and `kaiga serve` write is signed.
    """
    from kaiga.provenance.credentials import SigningExists, init_signing

    try:
        files = init_signing(force=force)
    except SigningExists as e:
        fail(f"{e}; pass --force to replace it")
    except OSError as e:
        fail(f"cannot write the signing key ({e.strerror or e})")
    out.print(f"signing key:  {files.key}\ncertificates: {files.chain}\ntrust anchor: {files.root}",
              highlight=False, markup=False)


_VERIFY_STATUS = {
    "trusted": "valid, trusted (signed under the local trust anchor)",
    "untrusted": "valid signature, untrusted",
    "tampered": "tampered: the file changed after signing",
    "invalid": "invalid content credentials",
    "none": "no content credentials",
}


def _watermark_line(check: dict) -> str:
    if check["status"] == "unreadable":
        return f"unreadable ({check['reason']})"
    if check["status"] == "not found":
        line = f"not found (best reading p = {check['p_value']:.2g}; marked means p ≤ {check['threshold']:g})"
    else:
        line = (f"found: payload {check['payload']}, p = {check['p_value']:.2g}, {check['bit_errors']} of 63 bits "
                f"corrected ({check['placement']})")
    if check.get("matches_record") is True:
        line += "\nnames this image's record"
    elif "matches_record" in check:
        line += (f"\nthe record says {check['expected']}: {check['expected_agreement']} of 63 bits agree "
                 f"(p = {check['expected_p_value']:.2g})")
    return line


@app.command()
def verify(
    image: Annotated[Path, typer.Argument(help="A PNG or JPEG to check.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON instead of a table.")] = False,
):
    """Check an image's provenance: its signed content credentials (C2PA, against the local trust anchor in
    $KAIGA_HOME/signing), its invisible watermark (found or not, with its p-value, and whether it names the
    image's record) and its generation record. Exit 0 when the credentials are trusted and the watermark is found
    and names the record; 1 otherwise (missing, untrusted or tampered credentials, no watermark, another payload).

    The watermark survives what the credentials do not: a JPEG re-encode, a resize, a crop or a screenshot
    loses the C2PA manifest and the record but keeps the 32-bit payload, which names the record it came from.
    """
    from kaiga.provenance.verify import verify_image

    _input_path(image, "image")
    try:
        data = image.read_bytes()
    except OSError as e:
        fail(f"image: cannot read {image} ({e.strerror or e})")
    result = verify_image(data)
    ok, credentials, watermark, record = result["ok"], result["credentials"], result["watermark"], result["record"]
    record_note = result["record_note"]
    if as_json:
        typer.echo(json.dumps({"image": str(image), "ok": ok, "credentials": credentials, "watermark": watermark,
                               "record": record}, indent=2, ensure_ascii=False))
        raise typer.Exit(0 if ok else 1)
    from rich.markup import escape
    from rich.table import Table

    table = Table("check", "result", title=escape(str(image)), show_lines=True)
    line = _VERIFY_STATUS.get(credentials["status"], credentials["status"])
    if credentials["status"] not in ("trusted", "none"):
        line += f"\n{credentials['reason']}"
    if credentials.get("model"):
        model = credentials["model"]
        line += f"\nmodel {model.get('name')} [{model.get('hash')}], signed by {credentials.get('signer')}"
    if credentials.get("soft_binding"):
        line += f"\nsoft binding: watermark payload {credentials['soft_binding']}"
    table.add_row("content credentials (C2PA)", escape(line), style="green" if credentials["status"] == "trusted" else "red")
    watermark_ok = watermark["status"] == "found" and watermark.get("matches_record", True)
    table.add_row("watermark", escape(_watermark_line(watermark)), style="green" if watermark_ok else "red")
    if record is not None:
        record_note = (f"{record['prompt']}\nmodel {record['model']} [{record['model_hash']}], seed {record['seed']}, "
                       f"{record['width']}x{record['height']}")
    table.add_row("generation record", escape(record_note))
    out.print(table)
    raise typer.Exit(0 if ok else 1)


# --- the entry point ------------------------------------------------------------------------------

def _print_version(value: bool) -> None:
    if value:
        from kaiga.version import __version__

        typer.echo(f"kaiga {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print kaiga's version and exit.")] = False,
):
    pass


def _flags_take_no_value(command) -> None:
    """Show no value type beside a flag (--grid, --help) in `command`'s help and its subcommands': Typer's help
    prints `<bool>` there, as if the flag took a value."""
    help_option = command.get_help_option(command.context_class(command))
    for param in [*command.params, *([help_option] if help_option is not None else [])]:
        if getattr(param, "is_flag", False):
            param.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        _flags_take_no_value(sub)


from kaiga.cli_campaign import campaign_app, review_cmd  # noqa: E402

app.add_typer(campaign_app, name="campaign")
app.command("review")(review_cmd)
from kaiga.cli_worker import worker_cmd  # noqa: E402

app.command("worker")(worker_cmd)
from kaiga.cli_live import live_cmd  # noqa: E402

app.command("live")(live_cmd)


def main():
    command = typer.main.get_command(app)
    _flags_take_no_value(command)
    command(prog_name="kaiga")


if __name__ == "__main__":
    main()
