"""Energy-label badges in the style of shields.io, one per (suite, model, variant): SVG, and PNG via Pillow.

The grade (A-E) is relative: it places a point's energy per 1,000 items on a log scale between the
lowest and the highest of its suite's graded points in this run (:func:`evaluator.pareto.energy_grades`);
a point not better than chance gets no grade (:func:`evaluator.pareto.gradable`). A badge names what it
grades: model, variant, suite, accuracy and energy. All text is XML-escaped; file names are sanitised.

>>> svg = badge_svg("energy", "B", grade_colour("B"), title="<m> fp32")
>>> svg.startswith("<svg") and "&lt;m&gt;" in svg and "<m>" not in svg
True
>>> safe_name("../a b/<c>")
'a_b_c'
"""

from __future__ import annotations

import hashlib
import re
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evaluator.meters import method_label
from evaluator.records import SuitePoint
from evaluator.safeio import atomic_write
from evaluator.units import fmt_joules

if TYPE_CHECKING:
    from evaluator.records import RunResult

#: Grade colours, A (least energy) green to E (most) red; "" (no grade) grey.
GRADE_COLOURS: dict[str, str] = {
    "A": "#2e7d32", "B": "#689f38", "C": "#c49000", "D": "#e65100", "E": "#c62828", "": "#757575",
}
LABEL_COLOUR = "#555555"
_NARROW = set("fijlrt.,:;'!|()[] ")
_WIDE = set("mwMW@%#")


def grade_colour(grade: str) -> str:
    """Background colour for an energy grade."""
    return GRADE_COLOURS.get(grade, GRADE_COLOURS[""])


def _text_width(text: str) -> int:
    """Approximate rendered width in px at 11 px Verdana-like sans (no font metrics needed)."""
    w = 0.0
    for ch in text:
        w += 4.0 if ch in _NARROW else 9.5 if ch in _WIDE else 7.6 if ch.isupper() or ch.isdigit() else 6.6
    return int(round(w))


def badge_svg(label: str, value: str, colour: str, title: str = "") -> str:
    """A two-part flat badge ``label | value``; ``title`` becomes the tooltip and accessible name."""
    lw, vw = _text_width(label) + 12, _text_width(value) + 12
    width = lw + vw
    t = escape(title or f"{label}: {value}")
    uid = hashlib.sha1(f"{label}\0{value}\0{title}".encode()).hexdigest()[:8]  # ids unique when inlined
    lab, val, col = escape(label), escape(value), escape(colour)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" role="img" aria-label="{t}">'
        f"<title>{t}</title>"
        f'<linearGradient id="s{uid}" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/>'
        '<stop offset="1" stop-opacity=".1"/></linearGradient>'
        f'<clipPath id="r{uid}"><rect width="{width}" height="20" rx="3" fill="#fff"/></clipPath>'
        f'<g clip-path="url(#r{uid})"><rect width="{lw}" height="20" fill="{LABEL_COLOUR}"/>'
        f'<rect x="{lw}" width="{vw}" height="20" fill="{col}"/>'
        f'<rect width="{width}" height="20" fill="url(#s{uid})"/></g>'
        '<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11">'
        f'<text x="{lw / 2:.1f}" y="15" fill="#010101" fill-opacity=".3">{lab}</text>'
        f'<text x="{lw / 2:.1f}" y="14">{lab}</text>'
        f'<text x="{lw + vw / 2:.1f}" y="15" fill="#010101" fill-opacity=".3">{val}</text>'
        f'<text x="{lw + vw / 2:.1f}" y="14">{val}</text></g></svg>'
    )


#: PNG badges are drawn at this multiple of the SVG's 20 px height (sharp on high-DPI screens and slides).
PNG_SCALE = 2
_FONT_FILES = ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "DejaVuSans.ttf", "Verdana.ttf", "Arial.ttf")


def _png_font(size: int) -> Any:
    from PIL import ImageFont

    for name in _FONT_FILES:
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)  # Pillow's own scalable font: no system font needed


def _hex_rgb(colour: str) -> tuple[int, int, int]:
    c = colour.lstrip("#")
    if not re.fullmatch(r"[0-9a-fA-F]{6}", c):
        return (117, 117, 117)
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def badge_png(label: str, value: str, colour: str, scale: int = PNG_SCALE) -> bytes:
    """The same two-part badge as :func:`badge_svg`, rasterised with Pillow (PNG bytes, transparent corners)."""
    import io

    from PIL import Image, ImageDraw

    font = _png_font(11 * scale)
    probe = ImageDraw.Draw(Image.new("RGBA", (1, 1)))
    lw = int(probe.textlength(label, font=font)) + 12 * scale
    vw = int(probe.textlength(value, font=font)) + 12 * scale
    h = 20 * scale
    img = Image.new("RGBA", (lw + vw, h), (0, 0, 0, 0))
    body = Image.new("RGBA", img.size, _hex_rgb(LABEL_COLOUR) + (255,))
    ImageDraw.Draw(body).rectangle((lw, 0, lw + vw, h), fill=_hex_rgb(colour) + (255,))
    mask = Image.new("L", img.size, 0)
    ImageDraw.Draw(mask).rounded_rectangle((0, 0, lw + vw - 1, h - 1), radius=3 * scale, fill=255)
    img.paste(body, (0, 0), mask)
    draw = ImageDraw.Draw(img)
    for text, centre in ((label, lw / 2), (value, lw + vw / 2)):
        draw.text((centre, h / 2 + scale), text, font=font, anchor="mm", fill=(1, 1, 1, 77))  # shadow
        draw.text((centre, h / 2), text, font=font, anchor="mm", fill=(255, 255, 255, 255))
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _point_label(point: SuitePoint) -> str:
    return f"{point.model} {point.variant} | {point.suite}"


def _point_value(point: SuitePoint) -> str:
    """What the badge says of its cell: grade, accuracy and energy (or why it has no grade)."""
    est = " est." if point.is_estimate else ""
    figures = f"{point.accuracy:.0%} acc, {fmt_joules(point.energy_j_per_1k)} J/1k items{est}"
    if not point.grade:
        why = "not above chance" if point.above_chance is False else "no grade"
        return f"{why}: {figures}"
    return f"energy {point.grade}: {figures}"


def point_badge_png(point: SuitePoint) -> bytes:
    """The energy label of one suite point as a PNG, for slides and documents.

    It names its cell: ``model variant | suite`` and ``energy B: 62% acc, 1,234 J/1k items est.``.
    """
    return badge_png(_point_label(point), _point_value(point), grade_colour(point.grade))


def point_badge_svg(point: SuitePoint) -> str:
    """The energy label of one suite point (as :func:`point_badge_png`), with a title spelling it out."""
    title = (f"{point.model} {point.variant} on {point.suite}: energy grade {point.grade or 'none'}, accuracy "
             f"{point.accuracy:.1%} (95% CI {point.accuracy_ci_low:.1%}-{point.accuracy_ci_high:.1%}), "
             f"{fmt_joules(point.energy_j_per_1k)} J per 1,000 items "
             f"({method_label(point.energy_method, point.is_estimate)}); A = least energy among this suite's "
             f"points that are better than chance, E = most")
    return badge_svg(_point_label(point), _point_value(point), grade_colour(point.grade), title)


def safe_name(text: str, max_len: int = 60) -> str:
    """A file-name-safe form of a name: letters, digits, '.', '_', '+', '-'; no leading dots."""
    s = re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("._") or "x"
    return s[:max_len]


def badge_filename(point: SuitePoint) -> str:
    """``<suite>-<model>-<variant>.svg`` with each part sanitised."""
    return f"{safe_name(point.suite)}-{safe_name(point.model)}-{safe_name(point.variant)}.svg"


def write_badges(result: RunResult, out_dir: Path) -> list[Path]:
    """Write ``badges/<suite>-<model>-<variant>.svg`` and ``.png`` for every suite point.

    Names are made unique if two raw names sanitise to the same file name. Returns the SVG and PNG paths.
    """
    folder = Path(out_dir) / "badges"
    folder.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    seen: set[str] = set()
    for suite in sorted(result.frontiers):
        for p in result.frontiers[suite]:
            name = badge_filename(p)
            if name in seen:  # two raw names sanitised to the same file name
                digest = hashlib.sha1(f"{p.suite}\0{p.model}\0{p.variant}".encode()).hexdigest()[:8]
                name = f"{name[:-4]}-{digest}.svg"
            seen.add(name)
            path = folder / name
            atomic_write(path, point_badge_svg(p))
            png = path.with_suffix(".png")
            atomic_write(png, point_badge_png(p))
            paths += [path, png]
    return paths


__all__ = ["PNG_SCALE", "badge_filename", "badge_png", "badge_svg", "grade_colour", "point_badge_png",
           "point_badge_svg", "safe_name", "write_badges"]
