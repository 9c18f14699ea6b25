"""`kaiga campaign plan | run | status`: a campaign's cells counted and estimated, made (resumably) and reported.

The commands share `kaiga serve`'s database (`--db`, default SQLite in $KAIGA_HOME) and gallery, so a campaign's
images are gallery images with their records, and a server on the same database sees them. See
kaiga/campaigns/ and docs/CAMPAIGNS.md.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Annotated, Optional

import typer

campaign_app = typer.Typer(help=(
    "Campaigns: one prompt with {slots} over axes of values and seeds (PLAN.yaml), every cell an image in the "
    "gallery. A rerun or a resume after a crash makes only the missing cells. Example plan:\n\n"
    "prompt: \"a {colour} car in the {scene}\"\n\naxes: {colour: [red, blue], scene: [city, forest]}\n\nseeds: 2"),
    no_args_is_help=True)

# Seconds a cell takes at batch 1 on 2 CPU cores, for `plan`'s estimate before a model has made anything here:
# bench/results/generate.json (scenes-diffusion, 20 steps: 483 ms) and bench/results/families.json (batch 16),
# plus ~50 ms a cell for the gallery, watermark and signature. Once cells are made, their own times are used.
FIRST_ESTIMATE_S = {"diffusion": 0.53, "gan": 0.06, "vae": 0.06, "transformer": 0.45}

_Plan = Annotated[Path, typer.Argument(help="The plan: a YAML (or JSON) file with prompt, axes and seeds.")]
_Db = Annotated[Optional[str], typer.Option("--db", help="SQLAlchemy URL of the database (default: SQLite in $KAIGA_HOME, as kaiga serve).")]
TELLING_FIRST = 50  # --teach-taste orders this many images by what they tell; the rest follow in the plan's order


def _load(path: Path):
    from kaiga.campaigns.plan import PlanError, load_plan
    from kaiga.cli_common import _input_path, fail

    _input_path(path, "plan")
    try:
        return load_plan(path)
    except PlanError as e:
        fail(str(e))


def _keyed(plan):
    """The plan's cells with their keys (each model resolved and hashed once), every cell checked against its
    model as `kaiga generate` checks a request (no weight loaded); one line for what a model cannot make."""
    from kaiga.campaigns.plan import PlanError, check_cells, with_keys
    from kaiga.cli_common import fail
    from kaiga.model_files import ModelError, model_hash, resolve_model
    from kaiga.studio import Studio

    try:
        cells = with_keys(plan.cells(), lambda model: model_hash(resolve_model(model)))
    except ModelError as e:
        fail(f"model: {e}")
    try:
        check_cells(cells, Studio(watermark=False).check)
    except PlanError as e:
        fail(str(e))
    return cells


def _model_name(model: str | None) -> str:
    from kaiga.model_files import resolve_model

    return resolve_model(model).name


def _seconds_per_cell(queue, cells) -> tuple[float, str]:
    """(seconds a cell, where the figure comes from): this database's last made cells of the model, else the
    bench's figure for its family."""
    from sqlalchemy import select

    from kaiga.model_files import resolve_model
    from kaiga.store.tables import Job, JobStatus

    ref = resolve_model(cells[0].request.model)
    with queue.db.session() as s:
        rows = s.execute(select(Job.started, Job.finished).where(Job.model == ref.name,
                                                                 Job.status == JobStatus.DONE.value)
                         .order_by(Job.finished.desc()).limit(50)).all()
    times = [(f - st).total_seconds() for st, f in rows if st and f]
    if times:
        return sum(times) / len(times), f"the mean of the last {len(times)} images {ref.name} made here"
    steps = cells[0].request.steps or 20
    base = FIRST_ESTIMATE_S.get(ref.family, 0.5) * (steps / 20 if ref.family == "diffusion" else 1)
    return base, f"the bench's figure for a {ref.family} model on 2 CPU cores"


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h} h {m} min" if h else f"{m} min {s} s" if m else f"{s} s"


@campaign_app.command("plan")
def plan_cmd(path: _Plan, db: _Db = None):
    """Count a plan's cells and estimate the time they take, before anything runs (and say how many are made)."""
    from kaiga.campaigns.runner import status
    from kaiga.cli_common import _open_db, out
    from kaiga.store.jobs import JobQueue

    plan = _load(path)
    cells = _keyed(plan)
    queue = JobQueue(_open_db(db))
    made = status(queue, plan, cells)
    todo = len(cells) - made.done
    seconds, source = _seconds_per_cell(queue, cells)
    shape = " × ".join(f"{len(v)} {k}" for k, v in {**plan.axis_values(), "seeds": plan.seed_list()}.items())
    out.print(f"{plan.name}: {len(cells)} cells ({shape}); {made.done} made, {todo} to make", highlight=False,
              soft_wrap=True)
    out.print(f"estimated time: {_duration(todo * seconds)} at {seconds:.2f} s a cell ({source})", highlight=False,
              soft_wrap=True)


@campaign_app.command("run")
def run_cmd(path: _Plan, db: _Db = None,
            out_dir: Annotated[Optional[Path], typer.Option("--out", help="Folder for the contact sheets (default: campaigns/NAME).")] = None,
            device: Annotated[Optional[str], typer.Option(help="cpu, cuda, cuda:N or mps (default: the best there is).")] = None,
            threads: Annotated[Optional[int], typer.Option(min=1, help="CPU threads for torch (default: as kaiga generate; with --ray: 1 a worker).")] = None,
            ray_address: Annotated[Optional[str], typer.Option("--ray", metavar="ADDRESS", help="Make the cells on a Ray cluster: 'auto' (the running one), 'local' (start one on this machine) or its address. Every node needs the database (--db; PostgreSQL across machines), the gallery folder and the models.")] = None,
            workers: Annotated[Optional[int], typer.Option(min=1, max=4096, help="With --ray: model-holding workers (default: the cluster's GPUs with --device cuda, else its CPUs / --threads).")] = None,
            lease: Annotated[float, typer.Option(min=1.0, help="With --ray: seconds without a heartbeat after which a dead worker's cell goes back to the queue.")] = 30.0):
    """Make every cell of the plan not made yet, one image a cell into the gallery, then the contact sheets (one
    per pair of axes). Stopped (Ctrl-C, kill -9, a crash), the same command continues where it stopped; a failed
    cell is tried once more, then reported while the rest go on. With --ray the same cells are made on a Ray
    cluster into the same database and gallery, so a campaign can move between this machine and a cluster."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from kaiga.campaigns.on_ray import RayError, run_on_ray
    from kaiga.campaigns.runner import run_campaign, status
    from kaiga.cli_common import _check_device, _open_db, _use_threads, _writable_folder, err, fail, out
    from kaiga.provenance.credentials import sign_by_default
    from kaiga.server.settings import ServerSettings
    from kaiga.store.campaigns import CampaignPlans
    from kaiga.store.gallery import Gallery
    from kaiga.store.jobs import JobQueue
    from kaiga.store.uploads import UploadStore
    from kaiga.worker import Worker

    if out_dir is not None:
        _writable_folder(out_dir, "--out")
    plan = _load(path)
    sheets_dir = out_dir or Path("campaigns") / plan.name
    _writable_folder(sheets_dir, "--out")
    cells = _keyed(plan)
    _check_device(device)
    if ray_address is None:
        _use_threads(threads)
    elif importlib.util.find_spec("ray") is None:
        fail("--ray: Ray is not installed; pip install 'kaiga[cluster]' (ray==2.58.0)")
    database = _open_db(db)
    settings = ServerSettings(db_url=db)

    queue = JobQueue(database)
    gallery = Gallery(database, settings.gallery_dir(), finish=sign_by_default)
    CampaignPlans(database).save(plan.name, plan.model_dump(mode="json"))
    before = status(queue, plan, cells)
    if ray_address is not None:
        ray_spec, ray_workers = _join_ray(queue, plan, settings, ray_address, workers, threads or 1, lease, device)
    bar = Progress(TextColumn(f"[bold]{plan.name}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                   TimeRemainingColumn(), console=err)

    def make_worker(campaign):
        from kaiga.model_files import resolve_model

        return Worker(queue, gallery, lambda name: resolve_model(name).path, device=device, campaign=campaign,
                      uploads=UploadStore(settings.uploads_dir()))

    with bar:
        task = bar.add_task("cells", total=len(cells), completed=before.done, info="")

        def on_cell(job):
            bar.update(task, advance=1 if job.status == "done" else 0,
                       info="" if job.status == "done" else f"a cell {job.status}: {(job.error or '')[:60]}")

        try:
            if ray_address is None:
                result = run_campaign(queue, plan, cells, make_worker, on_cell, _model_name)
            else:
                result = run_on_ray(queue, plan, cells, ray_spec, ray_workers, on_cell, _model_name)
        except KeyboardInterrupt:
            fail(f"stopped: {status(queue, plan, cells).done} of {len(cells)} cells made; run the same command "
                 "to go on", code=130)
        except RayError as e:
            fail(str(e))
        finally:
            if ray_address is not None:
                import ray

                ray.shutdown()
    written = _write_sheets(plan, cells, result, gallery, sheets_dir)
    out.print(f"{plan.name}: {result.done} of {len(cells)} cells made ({result.done - before.done} now), "
              f"{result.counts.get('failed', 0)} failed; sheets in {sheets_dir} ({len(written)})", highlight=False,
              soft_wrap=True)
    for values, error in result.failures[:5]:
        err.print(f"failed: {values}: {error}", highlight=False, markup=False)
    if result.counts.get("failed"):
        raise typer.Exit(1)


def _join_ray(queue, plan, settings, address: str, workers: int | None, threads: int, lease: float,
              device: str | None):
    """Connect to the Ray cluster at `address` (kaiga.campaigns.on_ray) before any work starts; returns the
    actors' spec and how many to run."""
    import os

    from kaiga.campaigns.on_ray import RayError, RayWorkerSpec, connect
    from kaiga.cli_common import err, fail
    from kaiga.paths import model_home

    env = {k: v for k, v in os.environ.items() if k.startswith("KAIGA_")} | {"KAIGA_HOME": str(model_home())}
    spec = RayWorkerSpec(db_url=queue.db.engine.url.render_as_string(hide_password=False),
                         gallery_dir=str(settings.gallery_dir().resolve()),
                         uploads_dir=str(settings.uploads_dir().resolve()), campaign=plan.name, threads=threads,
                         lease_s=lease, device=device, env=env)
    try:
        resources = connect(address)
    except RayError as e:
        fail(str(e))
    gpus = int(resources.get("GPU", 0)) if spec.resources().get("num_gpus") else 0
    count = workers or gpus or max(1, int(resources.get("CPU", 1) // threads))
    err.print(f"{plan.name}: {count} Ray worker(s) on a cluster of {int(resources.get('CPU', 0))} CPUs and "
              f"{int(resources.get('GPU', 0))} GPUs", highlight=False)
    return spec, count


def _write_sheets(plan, cells, result, gallery, folder: Path) -> list[Path]:
    """The contact sheets of the cells made so far, one PNG per pair of axes, under `folder`."""
    import io

    from PIL import Image

    from kaiga.campaigns.sheets import pair_sheets

    images = {}
    for index, ids in result.images.items():
        row = gallery.image(ids[0])
        with Image.open(io.BytesIO((gallery.folder / row.path).read_bytes())) as im:
            images[index] = im.convert("RGB")
    written = []
    folder.mkdir(parents=True, exist_ok=True)
    for stem, sheet in pair_sheets(plan, cells, images) if images else []:
        path = folder / f"{stem}.png"
        sheet.save(path)
        written.append(path)
    return written


@campaign_app.command("status")
def status_cmd(name: Annotated[str, typer.Argument(help="The campaign's name (its plan's `name`, or the plan file's name).")],
               db: _Db = None,
               as_json: Annotated[bool, typer.Option("--json", help="Print the counts as JSON.")] = False):
    """How many of a campaign's cells are made, failed and still to make (and why the failed ones failed)."""
    from kaiga.campaigns.runner import status
    from kaiga.cli_common import out
    from kaiga.store.jobs import JobQueue

    database, plan, cells = _stored(name, db)
    result = status(JobQueue(database), plan, cells)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    counts = result.to_dict()
    out.print(f"{name}: {counts['done']} of {counts['cells']} cells made, {counts['failed']} failed, "
              f"{counts['pending'] + counts['running']} to make", highlight=False)
    for values, error in result.failures:
        out.print(f"failed: {values}: {error}", highlight=False, markup=False)


def _stored(name: str, db: Optional[str]):
    """(database, plan, keyed cells) of a campaign in this database; one line when there is none of that name."""
    from kaiga.campaigns.plan import CampaignPlan
    from kaiga.cli_common import _open_db, fail
    from kaiga.store.campaigns import CampaignPlans

    database = _open_db(db)
    stored = CampaignPlans(database).get(name)
    if stored is None:
        known = ", ".join(CampaignPlans(database).names()) or "none yet"
        fail(f"name: no campaign {name!r} in this database (campaigns: {known}); `kaiga campaign run PLAN.yaml` starts one")
    plan = CampaignPlan.model_validate(stored)
    return database, plan, _keyed(plan)


def _images(database, plan, cells):
    from kaiga.campaigns.review import campaign_images
    from kaiga.server.settings import ServerSettings
    from kaiga.store.gallery import Gallery
    from kaiga.store.jobs import JobQueue

    gallery = Gallery(database, ServerSettings().gallery_dir())
    return campaign_images(JobQueue(database), gallery, plan, cells)


@campaign_app.command("export")
def export_cmd(name: Annotated[str, typer.Argument(help="The campaign's name.")],
               out_dir: Annotated[Path, typer.Option("--out", help="Folder for the images and manifest.csv / manifest.json.")],
               every: Annotated[bool, typer.Option("--all", help="Every made image, not only the approved ones.")] = False,
               db: _Db = None):
    """Write the campaign's approved images (approved by a reviewer, rejected by none; every made one with --all),
    as stored: record, watermark and content credentials inside, named by their cell, with a manifest."""
    from kaiga.campaigns.review import export_images
    from kaiga.cli_common import _writable_folder, out

    _writable_folder(out_dir, "--out")
    database, plan, cells = _stored(name, db)
    images = _images(database, plan, cells)
    rows = export_images(images, out_dir, every)
    out.print(f"{name}: wrote {len(rows)} of {len(images)} made images to {out_dir} (manifest.csv, manifest.json)",
              highlight=False, soft_wrap=True)


def _ids(values: list[str] | None, option: str) -> list[int]:
    from kaiga.cli_common import fail

    ids = []
    for value in values or []:
        for part in value.split(","):
            if not part.strip().isdigit():
                fail(f"{option}: gallery image ids, e.g. {option} 12 or {option} 12,13 (got {value!r})")
            ids.append(int(part))
    return ids


def review_cmd(name: Annotated[str, typer.Argument(help="The campaign's name.")],
               approve: Annotated[Optional[list[str]], typer.Option("--approve", help="Approve these images (gallery ids; repeat or separate with commas).")] = None,
               reject: Annotated[Optional[list[str]], typer.Option("--reject", help="Reject these images.")] = None,
               star: Annotated[Optional[list[str]], typer.Option("--star", help="Star these images.")] = None,
               unstar: Annotated[Optional[list[str]], typer.Option("--unstar", help="Take the star off these images.")] = None,
               note: Annotated[Optional[list[str]], typer.Option("--note", help="ID=TEXT: a note on an image.")] = None,
               rate: Annotated[Optional[list[str]], typer.Option("--rate", help="ID=N: your rating of an image, 1 (worst) to 5 (best); what --personalize learns your taste from, with approvals, rejections and stars.")] = None,
               reviewer: Annotated[Optional[str], typer.Option(help="Whose review this is (default: $USER).")] = None,
               teach_taste: Annotated[bool, typer.Option("--teach-taste", help="Walk through first the images whose ratings (1-5) tell most about your taste, for --personalize (docs/CAMPAIGNS.md measures what that buys).")] = False,
               db: _Db = None):
    """Review a campaign's images: approve, reject, star, note. With no --approve/--reject/--star/--note it walks
    through the images you have not reviewed yet, one at a time (each shown by its file, to open beside), taking
    a key: a approve, r reject, s star, 1-5 rate, n note, k skip, q quit. Several people review under their own names; an
    image someone approved and nobody rejected is what `kaiga campaign export` writes."""
    import getpass

    from kaiga.cli_common import fail, out
    from kaiga.store.reviews import Reviews

    who = reviewer or getpass.getuser()
    database, plan, cells = _stored(name, db)
    images = {im.image_id: im for im in _images(database, plan, cells)}
    reviews = Reviews(database)
    notes = {}
    for item in note or []:
        image_id, sep, text = item.partition("=")
        if not sep or not image_id.strip().isdigit():
            fail(f"--note: ID=TEXT, e.g. --note '12=the sky is too dark' (got {item!r})")
        notes[int(image_id)] = text
    ratings = {}
    for item in rate or []:
        image_id, sep, value = item.partition("=")
        if not sep or not image_id.strip().isdigit() or value.strip() not in tuple("12345"):
            fail(f"--rate: ID=N with N from 1 to 5, e.g. --rate 12=4 (got {item!r})")
        ratings[int(image_id)] = int(value)
    actions = {"approve": _ids(approve, "--approve"), "reject": _ids(reject, "--reject"),
               "star": _ids(star, "--star"), "unstar": _ids(unstar, "--unstar"), "note": list(notes),
               "rate": list(ratings)}
    unknown = sorted({i for ids in actions.values() for i in ids} - set(images))
    if unknown:
        fail(f"image: {unknown[0]} is not an image of campaign {name!r} (its images: ids "
             f"{', '.join(map(str, sorted(images)[:8]))}{' ...' if len(images) > 8 else ''})")
    if any(actions.values()):
        for image_id in actions["approve"]:
            reviews.set(image_id, who, decision="approved")
        for image_id in actions["reject"]:
            reviews.set(image_id, who, decision="rejected")
        for image_id in actions["star"]:
            reviews.set(image_id, who, star=True)
        for image_id in actions["unstar"]:
            reviews.set(image_id, who, star=False)
        for image_id, text in notes.items():
            reviews.set(image_id, who, note=text)
        for image_id, value in ratings.items():
            reviews.set(image_id, who, rating=value)
        done = sum(len(ids) for ids in actions.values())
        out.print(f"{name}: {done} review(s) by {who} recorded", highlight=False)
        return
    todo = [im for im in images.values() if not any(r.reviewer == who and (r.decision or r.rating) for r in im.reviews)]
    if teach_taste and len(todo) > 1:
        from PIL import Image as PILImage

        from kaiga.taste.features import features
        from kaiga.taste.model import most_telling

        first = most_telling(features([PILImage.open(im.path) for im in todo]), TELLING_FIRST)
        chosen = set(first)
        todo = [todo[i] for i in first] + [im for i, im in enumerate(todo) if i not in chosen]
    out.print(f"{name}: {len(todo)} of {len(images)} images to review as {who} "
              "(a approve, r reject, s star, 1-5 rate, n note, k skip, q quit)", highlight=False, soft_wrap=True)
    for k, image in enumerate(todo, 1):
        values = ", ".join(f"{a}={v}" for a, v in image.cell.values.items())
        out.print(f"[{k}/{len(todo)}] image {image.image_id}: {values}\n  {image.path}", highlight=False,
                  markup=False, soft_wrap=True)
        while True:
            key = typer.prompt("  a/r/s/1-5/n/k/q", default="k", show_default=False).strip().lower()[:1]
            if key == "a":
                reviews.set(image.image_id, who, decision="approved")
            elif key == "r":
                reviews.set(image.image_id, who, decision="rejected")
            elif key == "s":
                reviews.set(image.image_id, who, star=True)
                continue  # a star is beside a decision: ask again
            elif key in tuple("12345"):
                reviews.set(image.image_id, who, rating=int(key))
                continue  # a rating is beside a decision too
            elif key == "n":
                reviews.set(image.image_id, who, note=typer.prompt("  note"))
                continue
            elif key == "q":
                return
            elif key != "k":
                out.print("  a approve, r reject, s star, 1-5 rate, n note, k skip, q quit", highlight=False)
                continue
            break


@campaign_app.command("more")
def more_cmd(name: Annotated[str, typer.Argument(help="The campaign's name.")],
             strength: Annotated[str, typer.Option(help="subtle or strong, as `kaiga vary`.")] = "subtle",
             n: Annotated[int, typer.Option("--n", min=1, max=16, help="Variations of each approved image.")] = 4,
             out_dir: Annotated[Optional[Path], typer.Option("--out", help="Folder for the PNGs (default: campaigns/NAME/more).")] = None,
             db: _Db = None,
             threads: Annotated[Optional[int], typer.Option(min=1, help="CPU threads for torch.")] = None):
    """"More like this": `kaiga vary` of every approved image of the campaign (approved by someone, rejected by
    nobody), from its own record; the PNGs go to --out, one line each."""
    from kaiga.cli_common import _remix, _writable_folder, fail
    from kaiga.variations import VARY, vary_plan

    if strength not in VARY:
        fail(f"--strength: subtle or strong (got {strength!r})")
    folder = out_dir or Path("campaigns") / name / "more"
    _writable_folder(folder, "--out")
    database, plan, cells = _stored(name, db)
    approved = [im for im in _images(database, plan, cells) if im.approved]
    if not approved:
        fail(f"name: campaign {name!r} has no approved image yet; `kaiga review {name}` approves some")
    for image in approved:
        _remix(image.path, lambda im, rec: vary_plan(im, rec, strength), folder, n, None, None, None, None, None,
               threads, None, faces_consent=True)
