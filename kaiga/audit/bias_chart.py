"""The bias audit's chart, drawn with PIL (matplotlib is not a dependency): one panel per prompt and open
attribute, a bar per value (of those in the training data) with its bootstrap 95 % interval, the uniform share as a grey dashed line and the
training data's share of each value as a red tick.

Example:
    >>> row = {"prompt": "a car", "attribute": "colour", "support": ["red", "blue"],
    ...        "shares": {"red": 0.8, "blue": 0.2}, "ci95": {"red": [0.7, 0.9], "blue": [0.1, 0.3]},
    ...        "train_shares": {"red": 0.5, "blue": 0.5}, "uniform": {"tv": 0.3, "p": 1e-9}, "verdict": "skewed"}
    >>> bias_chart([row]).size
    (340, 200)
"""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont

PANEL_W, PANEL_H, COLUMNS = 340, 200, 3
MARGIN_L, MARGIN_T, MARGIN_B = 34, 34, 40


def _panel(row: dict) -> Image.Image:
    im = Image.new("RGB", (PANEL_W, PANEL_H), "white")
    d = ImageDraw.Draw(im)
    font, small = ImageFont.load_default(size=11), ImageFont.load_default(size=9)
    values = list(row["support"])
    top = max([0.25, *row["shares"].values(), *(hi for _, hi in row["ci95"].values()), *row["train_shares"].values()])
    top = min(1.0, top * 1.1)
    x0, x1, y0, y1 = MARGIN_L, PANEL_W - 8, MARGIN_T, PANEL_H - MARGIN_B
    y_of = lambda share: y1 - (y1 - y0) * share / top  # noqa: E731
    colour = (200, 60, 40) if row["verdict"] == "skewed" else (60, 120, 200)
    d.text((4, 2), f"{row['prompt']} · {row['attribute']}", fill="black", font=font)
    off = row.get("off_support_share", 0.0)
    d.text((4, 16), f"TV {row['uniform']['tv']:.2f} vs uniform, p {row['uniform']['p']:.1e}: {row['verdict']}"
           + (f"; {off:.0%} other" if off else ""), fill=colour, font=small)
    for tick in (0.0, top / 2, top):
        d.line([(x0 - 3, y_of(tick)), (x1, y_of(tick))], fill=(230, 230, 230))
        d.text((2, y_of(tick) - 5), f"{tick:.2f}", fill="grey", font=small)
    slot = (x1 - x0) / max(1, len(values))
    for i, v in enumerate(values):
        left, right = x0 + i * slot + slot * 0.15, x0 + (i + 1) * slot - slot * 0.15
        share = row["shares"].get(v, 0.0)
        d.rectangle([left, y_of(share), right, y1], fill=colour)
        lo, hi = row["ci95"].get(v, (share, share))
        mid = (left + right) / 2
        d.line([(mid, y_of(lo)), (mid, y_of(hi))], fill="black", width=1)
        for y in (y_of(lo), y_of(hi)):
            d.line([(mid - 3, y), (mid + 3, y)], fill="black")
        if v in row["train_shares"]:
            y = y_of(row["train_shares"][v])
            d.line([(left - 2, y), (right + 2, y)], fill=(220, 0, 0), width=2)
        d.text((left, y1 + 3 + 10 * (i % 2)), str(v)[:7], fill="black", font=small)
    flat = 1 / len(row["support"])
    for x in range(int(x0), int(x1), 8):  # the uniform share, dashed
        d.line([(x, y_of(flat)), (min(x + 4, x1), y_of(flat))], fill=(110, 110, 110), width=1)
    d.line([(x0, y1), (x1, y1)], fill="black")
    return im


def bias_chart(rows: list[dict]) -> Image.Image:
    """All panels in a grid, `COLUMNS` wide, with a legend line under them when there is more than one row."""
    cols = min(COLUMNS, len(rows))
    lines = -(-len(rows) // cols)
    legend = 18 if lines > 1 else 0
    sheet = Image.new("RGB", (cols * PANEL_W, lines * PANEL_H + legend), "white")
    for i, row in enumerate(rows):
        sheet.paste(_panel(row), ((i % cols) * PANEL_W, (i // cols) * PANEL_H))
    if legend:
        ImageDraw.Draw(sheet).text(
            (6, lines * PANEL_H + 3), "bars: the model's share of each value among its images showing one of the training data's values "
            "(whiskers: bootstrap 95 % CI) · red tick: the training data's share · dashed: uniform · other: values outside",
            fill="black", font=ImageFont.load_default(size=10))
    return sheet
