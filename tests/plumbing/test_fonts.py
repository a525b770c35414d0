"""Chinese figure text renders with a CJK font (utils/plumbing/fonts.py), or stays English with one note."""
import warnings

import matplotlib
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from utils.plumbing import fonts
from utils.plumbing.language import _


@pytest.fixture
def chinese(monkeypatch):
    monkeypatch.setenv("NN_LANG", "zh")
    monkeypatch.setattr(fonts, "_found", {})
    with matplotlib.rc_context():
        yield monkeypatch


def missing_glyph_warnings(title, names):
    """Draw a figure with these texts; the 'Glyph ... missing from font' warnings matplotlib gave."""
    fig, ax = plt.subplots()
    ax.set_title(title)
    ax.bar(range(len(names)), range(len(names)))
    ax.set_xticks(range(len(names)), names)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig.canvas.draw()
    plt.close(fig)
    return [str(w.message) for w in caught if "missing from font" in str(w.message)]


def test_chinese_labels_render_without_missing_glyphs(chinese):
    if fonts.installed_family() is None:
        pytest.skip("no CJK font installed (Debian: apt-get install fonts-noto-cjk; make run-zh does it as root)")
    title = fonts.label("validation accuracy")
    names = fonts.labels(["T-shirt/top", "Ankle boot", "Sneaker"])
    assert (title, names) == ("验证准确率", ["T恤/上衣", "短靴", "运动鞋"])
    assert missing_glyph_warnings(title, names) == []


def test_without_the_cjk_font_the_same_labels_would_be_empty_boxes(chinese):
    matplotlib.rcParams["font.sans-serif"] = ["DejaVu Sans"]  # what a figure gets when nobody chose a font
    assert missing_glyph_warnings(_("validation accuracy"), [_("Sneaker")]) != []


def test_without_any_cjk_font_the_labels_stay_english_with_one_note(chinese, capsys):
    chinese.setattr(fonts, "FAMILIES", ("No Such Font SC",))
    assert [fonts.label("validation accuracy"), fonts.label("Sneaker")] == ["validation accuracy", "Sneaker"]
    assert capsys.readouterr().out.count("fonts-noto-cjk") == 1
    assert missing_glyph_warnings("validation accuracy", ["Sneaker"]) == []


def test_in_english_label_is_the_english(monkeypatch):
    monkeypatch.setenv("NN_LANG", "en")
    assert fonts.label("Sneaker") == "Sneaker"
