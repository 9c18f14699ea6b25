"""`kaiga eval report`: docs/EVAL.md from the JSON files the eval commands write.

Layout of the results (all regenerable by the commands printed in the report):
    docs/eval/<model>/alignment.json   kaiga eval alignment --model <model>
    docs/eval/<model>/alignment-worst.png
    docs/eval/<model>/fidelity.json    kaiga eval fidelity --model <model>
    bench/results/generate.json        kaiga bench
    bench/results/families.json        kaiga eval families
The report only formats numbers; it never computes or edits them. The same files make the tables of
docs/FAMILIES.md and docs/QUALITY.md (`docs_tables`, written between their `<!-- table: NAME -->` and
`<!-- /table -->` markers by `fill_tables`; `python scripts/make_docs_tables.py` runs both).

Example:
    >>> _fmt(0.91234), _fmt(None), _fmt(12.3456, 2)
    ('0.912', '–', '12.35')
    >>> training_seconds({"autoencoder": {"seconds": 60}, "denoiser": {"seconds": 3540}, "data": "scenes"})
    3600.0
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from kaiga.eval.prompts import CATEGORIES

RESULTS_DIR = Path("docs/eval")
ORACLE = "renders"  # the pseudo-model that draws every prompt with the renderer itself


def _fmt(v, digits: int = 3) -> str:
    if v is None or v != v:  # None or NaN
        return "–"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def _model_dirs(results: Path) -> list[Path]:
    """Models with results, the oracle last (it is the ceiling, not a contender)."""
    dirs = sorted(p for p in results.iterdir() if p.is_dir()) if results.exists() else []
    return [d for d in dirs if d.name != ORACLE] + [d for d in dirs if d.name == ORACLE]


def _readout_section(readout_cfg: dict) -> list[str]:
    acc = readout_cfg.get("accuracy", {})
    sets = [k for k in acc if k.startswith("renders")]
    if not sets:
        return ["No accuracy recorded for the readout network."]
    attrs = list(acc[sets[0]].keys())
    rows = [[a] + [_fmt(acc[s].get(a)) for s in sets] for a in attrs]
    weak = [f"Every head right, by {what}: " + ", ".join(f"{k} {_fmt(v)}" for k, v in acc[key].items()) + "."
            for what, key in (("style", "all_right_by_style"), ("layout", "all_right_by_layout")) if key in acc]
    return [
        f"The judge: a {sum(1 for _ in readout_cfg.get('widths', []))}-stage CNN with one head per attribute "
        f"(`kaiga/eval/readout.py`), trained {acc.get('steps', '?')} steps on {acc.get('n_train', '?')} fresh "
        f"renders of every combination; accuracy on {acc.get('n_test', '?')} renders from unseen seeds:",
        "",
        *_table(["attribute"] + [s.replace("renders_", "") for s in sets], rows),
        *(["", *weak, "Where it is weak is where the renders themselves lose the objects: pixel art draws a"
           " 64-pixel picture from 16×16 blocks, so two 22-pixel objects become a few coloured squares."] if weak else []),
    ]


def _everyday_section(models: list[tuple[str, dict, dict | None]]) -> list[str]:
    """(name, alignment-everyday.json, alignment.json): the everyday score beside the main suite's, and the ratio."""
    rows = []
    for name, everyday, main in models:
        base = main["seen"]["overall"] if main else None
        ratio = everyday["seen"]["overall"] / base if base else None
        ignored = everyday.get("prompts_with_ignored_words")
        rows.append([f"`{name}`", f"**{_fmt(everyday['seen']['overall'])}**", _fmt(base), _fmt(ratio, 2),
                     "–" if ignored is None else f"{ignored} of {len(everyday['prompts'])}"]
                    + [_fmt(everyday["seen"]["categories"].get(c), 2) for c in CATEGORIES])
    return _table(["model", "everyday", "main suite (seen)", "everyday / main", "prompts with ignored words"]
                  + [c.replace("_", " ") for c in CATEGORIES], rows)


def _alignment_section(models: list[tuple[str, dict]], root: Path) -> list[str]:
    lines = _table(
        ["model", "seen overall", "held-out overall", "strict seen", "strict held-out"]
        + [c.replace("_", " ") for c in CATEGORIES],
        [[f"`{name}`", f"**{_fmt(r['seen']['overall'])}**", f"**{_fmt(r['held_out']['overall'])}**",
          _fmt(r["seen"].get("strict_overall")), _fmt(r["held_out"].get("strict_overall"))]
         + [_fmt(r["seen"]["categories"].get(c)) for c in CATEGORIES] for name, r in models],
    )
    held = sorted({c for _, r in models for c in r["held_out"]["categories"]})
    lines += ["", "Held-out combinations, per category (each prompt contains one pair never seen in training):", ""]
    lines += _table(["model"] + held, [[f"`{n}`"] + [_fmt(r["held_out"]["categories"].get(c)) for c in held]
                                       for n, r in models])
    for name, r in models:
        grid = root / name / "alignment-worst.png"
        if grid.exists():
            lines += ["", f"Worst prompts of `{name}` (K={r['samples_per_prompt']} images each; under every image, "
                      "what the judge read, green when it passes):", "", f"![worst prompts of {name}](eval/{name}/alignment-worst.png)"]
    return lines


def _fidelity_section(models: list[tuple[str, dict]]) -> list[str]:
    rows = []
    for name, r in models:
        m, floor = r["model"], r["floor"]
        rows.append([f"`{name}`", str(r["n"]), _fmt(m["fid"], 2), _fmt(floor["fid"], 2),
                     _fmt(m["fid"] / floor["fid"], 1) + "×" if floor["fid"] else "–",
                     _fmt(m["kid_mean"], 4), _fmt(floor["kid_mean"], 4), _fmt(m["precision"]), _fmt(m["recall"])])
    return _table(["model", "N", "FID", "floor FID", "FID / floor", "KID", "floor KID", "precision", "recall"], rows)


def _speed_section(bench: dict) -> list[str]:
    rows = []
    for row in bench.get("throughput", []):
        kaiga, stock = row["kaiga"], row["stock"]
        rows.append([str(row["steps"]), str(row["batch"]), _fmt(kaiga["ms_per_image"], 0), _fmt(kaiga["images_per_s"], 2),
                     _fmt(stock["ms_per_image"], 0), _fmt(stock["images_per_s"], 2), _fmt(row["ratio_kaiga_over_stock"], 2)])
    lines = [f"Model `{bench['settings']['model']}` ({bench['settings']['model_hash']}), {bench['environment']['cpu_count']} "
             f"CPU cores, {bench['environment']['date'][:10]}:", ""]
    lines += _table(["steps", "batch", "kaiga ms/image", "kaiga images/s", "stock ms/image", "stock images/s",
                     "kaiga / stock"], rows)
    cold = bench.get("cold_start")
    if cold:
        k, s = cold["kaiga"], cold["stock"]
        lines += ["", *_table(["cold start", "kaiga", "stock", "kaiga / stock"], [
            ["first image, fresh process (s)", _fmt(k["wall_s"], 1), _fmt(s["wall_s"], 1), _fmt(k["wall_s"] / s["wall_s"], 2)],
            ["of which imports (s)", _fmt(k["import_s"], 1), _fmt(s["import_s"], 1), _fmt(k["import_s"] / s["import_s"], 2)],
            ["peak resident memory (MiB)", _fmt(k["peak_rss_mib"], 0), _fmt(s["peak_rss_mib"], 0),
             _fmt(k["peak_rss_mib"] / s["peak_rss_mib"], 2)],
        ])]
    return lines


def comparison_rows(families: dict, results: Path) -> list[dict]:
    """One row per model: its speed and size with its alignment and fidelity results, where measured."""
    rows = []
    for name, m in families["models"].items():
        align = _load(results / name / "alignment.json")
        fid = _load(results / name / "fidelity.json")
        seconds = training_seconds(m.get("training") or {})
        rows.append({
            "model": name, "family": m["family"],
            "seen": align["seen"]["overall"] if align else None,
            "held_out": align["held_out"]["overall"] if align else None,
            "fid": fid["model"]["fid"] if fid else None, "fid_floor": fid["floor"]["fid"] if fid else None,
            "kid": fid["model"]["kid_mean"] if fid else None,
            "ms_per_image": m["ms_per_image"], "speedup": m.get("speedup_over_diffusion"),
            "params": m["params"], "train_hours": seconds / 3600 if seconds else None,
            "train_hardware": training_hardware(m.get("training") or {}),
        })
    return rows


def training_seconds(training: dict) -> float:
    """Wall-clock in a kaiga.json `training` record: FamilyTask's total, or the sum of the diffusion recipe's stages."""
    if "seconds" in training:
        return float(training["seconds"])
    return float(sum(v["seconds"] for v in training.values() if isinstance(v, dict) and "seconds" in v))


def training_hardware(training: dict) -> str:
    """What a kaiga.json `training` record ran on: its runs' devices, else the record's own words, else CPU."""
    devices = list(dict.fromkeys(r["device"] for r in training.get("runs", []) if r.get("device")))
    return ", ".join(devices) or training.get("hardware") or "CPU"


def _trained(hours: float | None, hardware: str) -> str:
    if hours is None:
        return "–"
    return (f"{hours * 60:.0f} min" if hours < 1 else f"{_fmt(hours, 1)} h") + f" ({hardware})"


def families_table(families: dict, results: Path = RESULTS_DIR) -> list[str]:
    """The four-family comparison (also in docs/FAMILIES.md): quality from docs/eval, speed measured together."""
    rows = []
    for r in comparison_rows(families, results):
        fid = (f"{_fmt(r['fid'], 1)} ({_fmt(r['fid'] / r['fid_floor'], 1)}× floor)" if r["fid"] is not None else "–")
        speed = f"{_fmt(r['ms_per_image'], 1)}" + (f" ({r['speedup']}× diffusion)" if r["speedup"] else "")
        trained = _trained(r["train_hours"], r["train_hardware"])
        rows.append([r["family"], f"`{r['model']}`", f"{_fmt(r['seen'])} / {_fmt(r['held_out'])}", fid,
                     _fmt(r["kid"], 1), speed, f"{r['params'] / 1e6:.1f} M", trained])
    s = families["settings"]
    return _table(["family", "model", "alignment seen / held-out", "FID (vs floor)", "KID", f"ms/image at batch {s['batch']}",
                   "parameters", "training (wall-clock, hardware)"], rows)


# The rows of docs/QUALITY.md's alignment table: its label there, the docs/eval folder whose alignment.json it
# reads, and whether it is the shipped model (in bold).
ALIGNMENT_ROWS = (
    ("**scenes-diffusion v5** (shipped)", "scenes-diffusion", True),
    ("scenes-diffusion v4 (GPU, 6 minutes)", "scenes-diffusion-v4", False),
    ("renders through the v4–v5 autoencoder", "scenes-diffusion+autoencoder", False),
    ("scenes-diffusion v3 (CPU, fine-tuned on pairs)", "scenes-diffusion-v3", False),
    ("scenes-diffusion v2 (before the fine-tune)", "scenes-diffusion-v2", False),
    ("scenes-diffusion v1 (4,000 + 300 steps)", "scenes-diffusion-v1", False),
    ("renders through the v1–v3 autoencoder (v2 = v3)", "scenes-diffusion-v3+autoencoder", False),
    (f"{ORACLE} (the judge's ceiling)", ORACLE, False),
)


def alignment_summary(rows: tuple[tuple[str, str, bool], ...] = ALIGNMENT_ROWS,
                      results: Path = RESULTS_DIR) -> list[str]:
    """Seen and held-out overall and every seen category, two decimals, one row per (label, folder, bold)."""
    lines = []
    for label, folder, bold in rows:
        r = json.loads((results / folder / "alignment.json").read_text())
        overall = [_fmt(r[part]["overall"], 2) for part in ("seen", "held_out")]
        lines.append([label] + [f"**{v}**" if bold else v for v in overall]
                     + [_fmt(r["seen"]["categories"].get(c), 2) for c in CATEGORIES])
    return _table(["model", "seen overall", "held-out overall"] + [c.replace("_", " ") for c in CATEGORIES], lines)


def speed_summary(bench: dict) -> list[str]:
    """`kaiga bench`'s throughput against stock diffusers, rounded for reading (EVAL.md has more digits)."""
    rows = [[str(row["steps"]), str(row["batch"]), _fmt(row["kaiga"]["ms_per_image"], 0),
             _fmt(row["kaiga"]["images_per_s"], 1), _fmt(row["stock"]["ms_per_image"], 0),
             _fmt(row["ratio_kaiga_over_stock"], 2)] for row in bench["throughput"]]
    return _table(["steps", "batch", "kaiga ms/image", "kaiga images/s", "stock diffusers ms/image", "kaiga / stock"],
                  rows)


def docs_tables(root: Path = Path(".")) -> dict[str, list[str]]:
    """Every table the docs take from result JSON, by the name its markers give it, from the files under `root`."""
    results = root / RESULTS_DIR
    return {
        "families": families_table(json.loads((root / "bench/results/families.json").read_text()), results),
        "alignment": alignment_summary(ALIGNMENT_ROWS, results),
        "speed": speed_summary(json.loads((root / "bench/results/generate.json").read_text())),
    }


_MARKED_TABLE = re.compile(r"(<!-- table: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /table -->)", re.DOTALL)


def fill_tables(text: str, tables: dict[str, list[str]]) -> str:
    """`text` with the lines between each `<!-- table: NAME -->` and `<!-- /table -->` replaced by tables[NAME].

    >>> fill_tables("a\\n<!-- table: t -->\\nold\\n<!-- /table -->\\nb", {"t": ["| x |"]})
    'a\\n<!-- table: t -->\\n| x |\\n<!-- /table -->\\nb'
    """
    def fill(m: re.Match) -> str:
        if m["name"] not in tables:
            raise KeyError(f"table {m['name']!r}: no such table; known: {', '.join(tables)}")
        return m.group(1) + "\n".join(tables[m["name"]]) + "\n" + m.group(4)

    return _MARKED_TABLE.sub(fill, text)


def write_report(out: Path = Path("docs/EVAL.md"), results: Path = RESULTS_DIR,
                 bench_json: Path = Path("bench/results/generate.json"), readout_cfg: dict | None = None,
                 installed: list[str] | None = None, families_json: Path = Path("bench/results/families.json")) -> Path:
    """Write the report; installed models and sections without results say which command makes them."""
    if readout_cfg is None:
        from kaiga.eval.readout import CONFIG_FILE, bundled_readout

        readout_cfg = json.loads((bundled_readout() / CONFIG_FILE).read_text())
    if installed is None:
        from kaiga.model_files import list_models

        installed = [ref.name for ref in list_models()]
    dirs = _model_dirs(results)
    missing = [name for name in installed if not (results / name / "alignment.json").exists()]
    alignment = [(d.name, r) for d in dirs if (r := _load(d / "alignment.json"))]
    fidelity = [(d.name, r) for d in dirs if (r := _load(d / "fidelity.json"))]
    everyday = [(d.name, r, _load(d / "alignment.json")) for d in dirs if (r := _load(d / "alignment-everyday.json"))]
    bench = _load(bench_json)
    families = _load(families_json)
    lines = [
        "# kaiga evaluation",
        "",
        "Generated by `kaiga eval report` from the JSON files under `docs/eval/` and `bench/results/`; "
        "do not edit by hand. Every number can be regenerated with the command shown beside it.",
        "",
        *([f"Installed models without results yet: {', '.join(f'`{m}`' for m in missing)} "
           "(`kaiga eval alignment --model NAME`, `kaiga eval fidelity --model NAME`).", ""] if missing else []),
        "## The four families side by side",
        "",
        "`kaiga eval families` times every model in one run (default sampling settings; diffusion: DDIM, 20 steps) "
        "and counts parameters; alignment and fidelity come from the sections below; training time is the "
        "wall-clock of the recipe that made the shipped model, recorded in its kaiga.json.",
        "",
        *(families_table(families, results) if families else ["No family comparison yet (`kaiga eval families`)."]),
        "",
        "## The judge (readout network)",
        "",
        *_readout_section(readout_cfg),
        "",
        "## Alignment: does the image show what the prompt asks?",
        "",
        "`kaiga eval alignment --model M`: GenEval-style categories plus scene, weather, time and style; "
        "K images per prompt from fixed seeds. As in GenEval, an image passes when the judge finds every object "
        "the prompt names and the attribute its category tests; *strict* also demands every other attribute the "
        f"prompt names. `{ORACLE}` draws each prompt with the renderer itself: the ceiling this judge allows.",
        "",
        *(_alignment_section(alignment, results) if alignment else ["No alignment results yet."]),
        "",
        "### Everyday English (the everyday suite)",
        "",
        "`kaiga eval alignment --model M --suite everyday`: 120 prompts written by hand outside every caption "
        "template (kaiga/eval/suites/everyday.jsonl: \"a little pooch sitting all by itself\", \"it's raining on a "
        "house in the countryside\", \"a lavender colored kitty\"), 12 per category, scored as above; no prompt "
        "holds a held-out pair, so its score compares with the main suite's seen score. The last column counts "
        "the prompts in which the model's tokenizer did not know a word and dropped it. Target (issue 17): "
        "everyday / main >= 0.90 with no content word ignored.",
        "",
        *(_everyday_section(everyday) if everyday else ["No everyday results yet."]),
        "",
        "## Fidelity: do the images look like the world?",
        "",
        "`kaiga eval fidelity --model M --n N`: FID / KID / precision / recall in the judge's feature space, "
        "against held-out renders; the floor is renders against independent renders at the same N, "
        "what a perfect model would get.",
        "",
        *(_fidelity_section(fidelity) if fidelity else ["No fidelity results yet."]),
        "",
        "KID is in the judge's (unnormalised) feature units; its unbiased estimator can dip below 0 for two "
        "sets from the same distribution, as the floor does.",
        "",
        "## Speed",
        "",
        "`kaiga bench`: kaiga against the stock diffusers StableDiffusionPipeline on the same weights, same run.",
        "",
        *(_speed_section(bench) if bench else ["No benchmark results yet."]),
        "",
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    return out
