"""The reader's language (utils/plumbing/language.py): chosen by NN_LANG or the locale, with a catalog that
has the standard Chinese class names and keeps every {field} of its templates."""
import re

import pytest

from utils.core.datasets import CIFAR10_CLASSES, CLASS_NAMES
from utils.plumbing import language, paths, po
from utils.teaching.prose import say

TEMPLATE = "The best epoch is {best_epoch} of {num_epochs}: validation accuracy {accuracy}."


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("NN_LANG", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize("env, expected", [
    ({}, "en"), ({"LANG": "zh_CN.UTF-8"}, "zh"), ({"LANG": "en_US.UTF-8"}, "en"),
    ({"LANG": "zh_CN.UTF-8", "LC_ALL": "C"}, "en"), ({"NN_LANG": "zh"}, "zh"), ({"NN_LANG": "zh-CN"}, "zh"),
    ({"NN_LANG": "en", "LANG": "zh_CN.UTF-8"}, "en"), ({"NN_LANG": "zh_CN.UTF-8", "LANG": "C"}, "zh")])
def test_the_language_comes_from_nn_lang_then_the_locale(clean_env, env, expected):
    for name, value in env.items():
        clean_env.setenv(name, value)
    assert language.language() == expected


def test_an_unknown_nn_lang_is_an_error_naming_the_choices(clean_env):
    clean_env.setenv("NN_LANG", "fr")
    with pytest.raises(ValueError, match=r"NN_LANG='fr'.*expected 'en' or 'zh'"):
        language.language()


def test_messages_are_chinese_in_chinese_and_english_otherwise(clean_env):
    assert language._("Trouser") == "Trouser"
    clean_env.setenv("NN_LANG", "zh")
    assert language._("Trouser") == "裤子"
    assert language._("a sentence nobody translated") == "a sentence nobody translated"


def test_fuzzy_and_empty_translations_are_not_used(clean_env, tmp_path):
    path = tmp_path / "messages.po"
    po.write(path, [po.Entry("", "Language: zh_CN\n"), po.Entry("Coat", "外套", flags={"fuzzy"}, previous="Cape"),
                    po.Entry("Bag", ""), po.Entry("Dress", "连衣裙")])
    clean_env.setattr(language, "catalog_path", lambda lang: path)
    clean_env.setenv("NN_LANG", "zh")
    assert [language._(w) for w in ("Coat", "Bag", "Dress")] == ["Coat", "Bag", "连衣裙"]


def test_the_class_names_have_their_standard_chinese_names(clean_env):
    clean_env.setenv("NN_LANG", "zh")
    assert [language._(c) for c in CLASS_NAMES] == ["T恤/上衣", "裤子", "套头衫", "连衣裙", "外套", "凉鞋", "衬衫",
                                                    "运动鞋", "包", "短靴"]
    assert [language._(c) for c in CIFAR10_CLASSES] == ["飞机", "汽车", "鸟", "猫", "鹿", "狗", "青蛙", "马", "船",
                                                        "卡车"]


def test_every_translation_keeps_the_fields_of_its_english_and_the_catalog_reads_back_as_written(tmp_path):
    entries = po.read(language.catalog_path("zh"))
    fields = re.compile(r"\{[^{}]*\}")
    bad = [e.msgid for e in entries if e.msgid and sorted(fields.findall(e.msgid)) != sorted(fields.findall(e.msgstr))]
    assert not bad, f"these translations lose or add a {{field}} of their English: {bad}"
    untranslated = [e.msgid for e in entries if e.msgid and (not e.msgstr or e.fuzzy)]
    assert not untranslated, f"messages.po has entries without an up-to-date translation: {untranslated}"
    po.write(tmp_path / "copy.po", entries)
    assert po.read(tmp_path / "copy.po") == entries


def test_a_multi_line_entry_with_quotes_and_a_previous_text_survives_a_round_trip(tmp_path):
    entry = po.Entry('Line "one"\n\tline \\two\n', "第一行\n", "nb/ab12", {"fuzzy"}, "Old\ntext\n", ["note"])
    po.write(tmp_path / "x.po", [po.Entry("", "Language: zh_CN\n"), entry])
    assert po.read(tmp_path / "x.po")[1] == entry
    (tmp_path / "y.po").write_text('msgid "a"\nmsgstr "b"\nwhat is this\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"y.po, line 3: expected msgctxt, msgid, msgstr"):
        po.read(tmp_path / "y.po")


def test_say_fills_a_template_after_translating_it(clean_env, capsys):
    say(TEMPLATE, best_epoch=7, num_epochs=10, accuracy="90.1%")
    clean_env.setenv("NN_LANG", "zh")
    say(TEMPLATE, best_epoch=7, num_epochs=10, accuracy="90.1%")
    assert capsys.readouterr().out.splitlines() == ["The best epoch is 7 of 10: validation accuracy 90.1%.",
                                                    "最佳一轮是第 7 轮（共 10 轮）：验证准确率 90.1%。"]


def test_no_english_message_has_two_different_translations_across_the_catalogs():
    # The catalogs of LC_MESSAGES are read together, first file first: a second, different translation of
    # the same English would be silently ignored in one part of the code and used in another.
    seen = {}
    for path in language.catalog_paths("zh"):
        for e in po.read(path):
            if e.msgid and e.msgstr and not e.fuzzy and not e.obsolete and e.context is None:
                seen.setdefault(e.msgid, {}).setdefault(e.msgstr, []).append(path.name)
    clashes = {english: chinese for english, chinese in seen.items() if len(chinese) > 1}
    assert not clashes, "one English, two translations (make them agree):\n" + "\n".join(
        f"  {english!r}: {chinese}" for english, chinese in clashes.items())


def test_a_chinese_notebook_speaks_chinese_and_draws_into_static_zh_unless_told_otherwise(clean_env, tmp_path):
    clean_env.setenv("NN_LANG", "en")  # recorded, so the NN_LANG chinese_edition() sets is undone afterwards
    clean_env.setenv("NN_STATIC_DIR", "")
    clean_env.delenv("NN_STATIC_DIR")
    language.chinese_edition()
    assert language.language() == "zh" and paths.static_dir() == paths.ROOT / "static" / "zh"
    clean_env.setenv("NN_STATIC_DIR", str(tmp_path))  # make run-zh and the tests say where
    language.chinese_edition()
    assert paths.static_dir() == tmp_path
