"""`report.html`: one self-contained page (inline SVG plots, base64 JPEG thumbnails).

Contents: a stand-in warning banner when any term used a stand-in, the score table (score, each
term, its weighted part, model, sha256, variant; KID beside FID), the generated / ceiling / ratio
table (the ground truth through the same scorer; the style oracle for style, or why the style
ceiling is unknown), per-term distributions of the per-image values, and image rows (label map |
reference | generated) for the best and worst images by mask accuracy and by style.
"""

from __future__ import annotations

import base64
import html
from typing import Any

import cv2
import numpy as np

from pipeline.core.classes import CLASS_NAMES
from pipeline.core.imageio import load_label, load_photo

from .ceiling import LABELS as CEILING_LABELS, ordered_rows

THUMB = (256, 192)  # (W, H) of each thumbnail
TERM_LABEL = {"mask_accuracy": "mask accuracy", "style": "style (hist. correlation)",
              "aesthetic": "aesthetic", "fid": "FID", "kid": "KID"}


def class_palette() -> np.ndarray:
    """(256, 3) uint8 colours: distinct ones for the 29 classes, grey beyond."""
    rng = np.random.default_rng(29)
    pal = np.full((256, 3), 128, dtype=np.uint8)
    hues = (np.arange(len(CLASS_NAMES)) * 180 // len(CLASS_NAMES)).astype(np.uint8)
    hsv = np.stack([hues, rng.integers(120, 256, len(hues)), rng.integers(140, 256, len(hues))], 1)
    pal[: len(CLASS_NAMES)] = cv2.cvtColor(hsv.astype(np.uint8)[None], cv2.COLOR_HSV2RGB)[0]
    return pal


def _img_tag(rgb: np.ndarray, title: str) -> str:
    thumb = cv2.resize(rgb, THUMB, interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(thumb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    data = base64.b64encode(buf.tobytes()).decode() if ok else ""
    return f'<img src="data:image/jpeg;base64,{data}" title="{html.escape(title)}" alt="{html.escape(title)}">'


def histogram_svg(values: list[float], label: str, bins: int = 20, width: int = 360, height: int = 150) -> str:
    """Inline SVG bar chart of a list of values (with min, mean, max written under it)."""
    v = np.asarray(values, dtype=np.float64)
    lo, hi = float(v.min()), float(v.max())
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    counts, edges = np.histogram(v, bins=bins, range=(lo, hi))
    top = max(int(counts.max()), 1)
    pad, bw = 30, (width - 40) / bins
    bars = []
    for i, c in enumerate(counts):
        h = (height - 2 * pad) * c / top
        x, y = 30 + i * bw, height - pad - h
        bars.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bw - 1:.1f}" height="{h:.1f}" fill="#4a7ab7">'
                    f"<title>{edges[i]:.3f}..{edges[i + 1]:.3f}: {c}</title></rect>")
    return (
        f'<svg width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg" role="img">'
        f'<text x="4" y="14" font-size="12">{html.escape(label)} (n={len(v)})</text>'
        + "".join(bars)
        + f'<line x1="30" y1="{height - pad}" x2="{width - 10}" y2="{height - pad}" stroke="#333"/>'
        f'<text x="30" y="{height - 12}" font-size="11">{lo:.3f}</text>'
        f'<text x="{width - 60}" y="{height - 12}" font-size="11">{hi:.3f}</text>'
        f'<text x="{width / 2 - 40:.0f}" y="{height - 2}" font-size="11">mean {v.mean():.3f}</text>'
        "</svg>"
    )


def _rows(title: str, picks: list, values: dict[str, dict[str, float]], term: str, pal: np.ndarray) -> str:
    out = [f"<h3>{html.escape(title)}</h3><table class='imgs'><tr><th>image</th><th>label map</th>"
           "<th>reference</th><th>generated</th></tr>"]
    for it in picks:
        cells = []
        cells.append(_img_tag(pal[load_label(it.map)], f"map {it.stem}") if it.map else "-")
        cells.append(_img_tag(load_photo(it.ref), f"reference {it.ref.name}") if it.ref else "-")
        cells.append(_img_tag(load_photo(it.generated), f"generated {it.generated.name}"))
        others = ", ".join(f"{TERM_LABEL[k]} {v:.3f}" for k, v in values[it.stem].items())
        out.append(f"<tr><td><b>{html.escape(it.stem)}</b><br>{html.escape(TERM_LABEL[term])}:"
                   f" {values[it.stem][term]:.4f}<br><small>{html.escape(others)}</small></td>"
                   + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    out.append("</table>")
    return "".join(out)


_STYLE = (
    "body{font-family:sans-serif;margin:24px;max-width:1200px}"
    "table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:4px 8px;"
    "vertical-align:top;font-size:13px}.banner{background:#b00020;color:#fff;padding:14px;"
    "font-size:16px;font-weight:bold;margin-bottom:16px}.imgs img{display:block}"
    ".score{font-size:28px}"
)
_PART_KEY = {"aesthetic": "aesthetic_part", "style": "style_part", "fid": "fid_part"}


def _term_row(name: str, info: dict, score_parts: dict) -> str:
    """One row of the score table: the term, its value and weighted part, and its model."""
    e = html.escape
    term = info["term"]
    part = score_parts.get(_PART_KEY.get(term, ""), None)
    part_txt = "multiplies the bracket" if term == "mask_accuracy" else (f"{part:.4f}" if part is not None else "")
    stand = " <b style='color:#b00020'>[STAND-IN]</b>" if info["stand_in"] else ""
    pre = info["preprocessing"]
    pre_txt = pre if isinstance(pre, str) else ", ".join(f"{k}={v}" for k, v in pre.items())
    return (
        f"<tr><td>{e(TERM_LABEL.get(term, term))}{stand}</td><td>{info['value']:.4f}</td>"
        f"<td>{e(part_txt)}</td><td>{e(name)}</td><td>{e(str(info['model']))}</td>"
        f"<td><small>{e(str(info['model_sha256']))}</small></td><td>{e(str(info['variant']))}</td>"
        f"<td><small>{e(pre_txt)}</small></td><td>{info['seconds']}</td></tr>"
    ) + "".join(
        f"<tr><td>{e(TERM_LABEL.get(t, t))}</td><td>{v:.6f}</td><td>informative, not in the A formula</td>"
        f"<td>{e(name)}</td><td colspan='5'><small>{e(_informative_detail(info, t))}</small></td></tr>"
        for t, v in info.get("informative", {}).items()
    )


def _informative_detail(info: dict, term: str) -> str:
    detail = info.get("extra", {}).get(term, {})
    return ", ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in detail.items())


def _fmt(v, row: str) -> str:
    if v is None:
        return "n/a"
    return f"{v:.2f}" if row == "fid" else f"{v:.5f}" if row == "kid" else f"{v:.4f}"


def _ceiling_section(block: dict | None) -> list[str]:
    """The generated / ceiling / ratio table with the ceiling's provenance and the style note."""
    e = html.escape
    if not block:
        return ["<h2>Generated vs ceiling</h2><p>not recorded (scores.json from an older evaluate)</p>"]
    parts = ["<h2>Generated vs ceiling</h2>"]
    if not block["available"]:
        parts.append(f"<p>No ceiling: {e(block['note'])}</p>")
    gt = block.get("ground_truth")
    if gt:
        stand = " <b style='color:#b00020'>[STAND-IN models, like the generated score]</b>" if gt["stand_in"] else ""
        parts.append(f"<p>Ceiling: the {e(str(gt.get('split', 'val')))} split's own ground-truth photos"
                     f" ({gt['counts'].get('images', '?')}) scored through the same scorer: {e(gt.get('folder', ''))}"
                     f" (manifest {e(gt.get('manifest', '')[:12])}, data {e(gt.get('data', '')[:12])}){stand}</p>")
    if block.get("rows") and block["available"]:
        parts.append("<table><tr><th>term</th><th>generated</th><th>ceiling</th><th>ratio</th>"
                     "<th>ceiling from</th><th>note</th></tr>")
        for row, r in ordered_rows(block):
            rt = "n/a" if r["ratio"] is None else f"{r['ratio']:.3f}"
            parts.append(f"<tr><td>{e(CEILING_LABELS[row])}</td><td>{_fmt(r['generated'], row)}</td>"
                         f"<td>{_fmt(r['ceiling'], row)}</td><td><b>{rt}</b></td><td>{e(r['ceiling_from'] or '-')}</td>"
                         f"<td><small>{e(r['note'])}</small></td></tr>")
        parts.append(f"</table><p><small>{e(block['ratio_rule'])}</small></p>")
    style = block.get("style_ceiling") or {}
    if style.get("value") is None and style.get("note"):
        parts.append(f"<p><b>Style:</b> {e(style['note'])}</p>")
    return parts


def _score_section(scores: dict[str, Any]) -> list[str]:
    """The banner, the score, the formula, the term table, the counts and each metric's note."""
    e = html.escape
    parts = []
    if scores.get("stand_in"):
        parts.append(f"<div class='banner'>&#9888; {e(scores['warning'])}</div>")
    s = scores["score"]
    parts.append(f"<p class='score'>A-board score: <b>{s:.4f}</b></p>" if s is not None
                 else f"<p class='score'>A-board score: n/a &mdash; {e(scores['score_note'])}</p>")
    parts.append(f"<p><code>{e(scores['formula'])}</code></p>")
    parts.append("<table><tr><th>term</th><th>value</th><th>weighted part</th><th>metric</th>"
                 "<th>model</th><th>sha256</th><th>variant</th><th>preprocessing</th><th>time (s)</th></tr>")
    parts.extend(_term_row(name, info, scores.get("score_parts") or {}) for name, info in scores["metrics"].items())
    parts.append("</table>")
    parts.append("<p>" + ", ".join(f"{k}: {v}" for k, v in scores["counts"].items())
                 + f"; device {e(scores['device'])}; {scores['timing']['images_per_second']} images/s</p>")
    parts.extend(f"<p><b>{e(name)}:</b> {e(info['note'])}</p>"
                 for name, info in scores["metrics"].items() if info["note"])
    return parts


def _image_sections(scores: dict[str, Any], items: list, per_image: dict[str, dict[str, float]], rows: int) -> list[str]:
    """Per-term histograms, then the best and worst images by mask accuracy and by style."""
    e = html.escape
    parts = []
    standin_terms = {i["term"] for i in scores["metrics"].values() if i["stand_in"]}
    per_terms = [t for t in ("mask_accuracy", "style", "aesthetic") if any(t in v for v in per_image.values())]
    if per_terms:
        parts.append("<h2>Per-image distributions</h2><div>")
        for t in per_terms:
            vals = [v[t] for v in per_image.values() if t in v]
            parts.append(histogram_svg(vals, TERM_LABEL[t] + (" [STAND-IN]" if t in standin_terms else "")))
        parts.append("</div>")
    pal = class_palette()
    for t in ("mask_accuracy", "style"):
        if rows <= 0 or t not in per_terms:
            continue
        ranked = sorted((it for it in items if t in per_image[it.stem]), key=lambda it: per_image[it.stem][t])
        k = min(rows, len(ranked))
        parts.append(f"<h2>Best and worst by {e(TERM_LABEL[t])}</h2>")
        parts.append(_rows(f"best {k}", ranked[::-1][:k], per_image, t, pal))
        parts.append(_rows(f"worst {k}", ranked[:k], per_image, t, pal))
    return parts


def build_report(scores: dict[str, Any], items: list, per_image: dict[str, dict[str, float]], rows: int = 3) -> str:
    """The whole report page as HTML text (see the module docstring)."""
    e = html.escape
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>landscape evaluation</title>"
        f"<style>{_STYLE}</style></head><body>",
        "<h1>Landscape evaluation report</h1>",
        *_score_section(scores),
        *_ceiling_section(scores.get("ceiling")),
        *_image_sections(scores, items, per_image, rows),
        "<h2>Inputs</h2><table>",
        *(f"<tr><td>{e(k)}</td><td>{e(str(v))}</td></tr>" for k, v in scores["inputs"].items()),
        "</table></body></html>\n",
    ]
    return "".join(parts)
