"""Chinese in figures: a CJK font for matplotlib, or English labels where no such font is installed.

matplotlib's default font (DejaVu Sans) has no Chinese characters: a Chinese title drawn with it
comes out as empty boxes, with a warning "Glyph ... missing from font(s) DejaVu Sans". So every
text a figure shows goes through label():

    ax.set_title(label("validation accuracy"))   # "验证准确率" if a CJK font is found, else English

In English, label is the identity. In Chinese, the first label looks for a CJK font (Noto Sans
CJK from Debian's fonts-noto-cjk; Microsoft YaHei, SimHei on Windows; PingFang SC on macOS), puts
it first in the sans-serif list (DejaVu Sans stays behind it for the glyphs it lacks), and
translates; where none is installed it says so once and keeps the figures in English.

It sits in plumbing, beside language.py, because every package that draws (figures, search,
teaching) needs it and may import only downwards.
"""
from pathlib import Path

import matplotlib as mpl
from matplotlib import font_manager

from utils.plumbing.language import _, language

# Family names matplotlib reports, best first: the Simplified Chinese faces before the others.
FAMILIES = ("Noto Sans CJK SC", "Source Han Sans SC", "Noto Sans CJK JP", "Source Han Sans", "Microsoft YaHei",
            "PingFang SC", "SimHei", "WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "Heiti SC", "Arial Unicode MS")
# Their font files, for fonts installed after matplotlib built its font cache (it does not look again).
FILES = ("notosanscjk", "sourcehansans", "msyh", "pingfang", "simhei", "wqy-microhei", "wqy-zenhei", "stheiti",
         "arial unicode")
NO_FONT_NOTE = ("未找到中文字体（例如 Debian/Ubuntu 上：sudo apt-get install fonts-noto-cjk），"
                "图中的文字保留英文。No CJK font found: the figures keep their English labels.")
_found = {}  # "font" -> the family chosen, or None when there is none; filled by the first lookup


def installed_family():
    """The first of FAMILIES that matplotlib can use, registering font files it has not seen; or None."""
    known = {f.name for f in font_manager.fontManager.ttflist}
    if not any(name in known for name in FAMILIES):
        for path in font_manager.findSystemFonts():
            if any(hint in Path(path).name.lower() for hint in FILES):
                try:
                    font_manager.fontManager.addfont(path)
                except (OSError, RuntimeError):  # an unreadable or broken font file: try the next one
                    continue
        known = {f.name for f in font_manager.fontManager.ttflist}
    return next((name for name in FAMILIES if name in known), None)


def chinese_font():
    """The CJK family in use, set first in matplotlib's sans-serif list; None (after one printed note) if none."""
    if "font" not in _found:
        _found["font"] = installed_family()
        if _found["font"] is None:
            print(NO_FONT_NOTE)
    family = _found["font"]
    if family is not None:
        fonts = mpl.rcParams["font.sans-serif"]
        if not fonts or fonts[0] != family:  # again after a style (seaborn's set_theme) reset the list
            mpl.rcParams["font.sans-serif"] = [family, *[f for f in fonts if f != family]]
    return family


def label(text):
    """Text a figure shows, in the reader's language when the figure can draw it; English otherwise."""
    if language() == "en" or chinese_font() is None:
        return text
    return _(text)


def labels(texts):
    """label for each of texts (class names, tick labels), as a list."""
    return [label(t) for t in texts]
