"""The line a check prints for an empty blank reads as one sentence in Chinese, whether the blank is a
name (Linear.backward) or a phrase (the parts above, then train both networks); English is unchanged."""

from utils.plumbing.language import _
from utils.teaching import checks_common, verdict


def phrases():
    return [_("the parts above, then train the network with {name}").format(name=_("one hidden layer")),
            _("the parts above, then train both networks"),
            _("{e} (the end-to-end run uses every part above; skipped until they are written)").format(e="fit")]


def test_a_name_and_a_phrase_read_well_in_chinese(zh):
    assert checks_common.unwritten("Linear.backward") == "还没有实现：先写好 Linear.backward，再重新运行这个单元格"
    for line in map(checks_common.unwritten, phrases()):
        assert line.startswith("还没有实现：先写好") and line.endswith("，再重新运行这个单元格"), line
        assert "然后" not in line and "写好 上" not in line, line
    assert checks_common.unwritten(phrases()[0]) == "还没有实现：先写好上面的各部分并训练单隐藏层网络，再重新运行这个单元格"
    assert checks_common.unwritten(phrases()[2]).startswith("还没有实现：先写好 fit 等函数（")


def test_the_grader_says_the_same_in_chinese(zh):
    def blank():
        raise NotImplementedError(_("the parts above, then train both networks"))
    assert verdict.run_check(blank, (), {}) == ["not implemented", "写好上面的各部分并训练两个网络"]
    assert verdict.run_check(lambda: print(checks_common.unwritten("fit")), (), {}) == [
        "not implemented", "先写好 fit，再重新运行这个单元格"]


def test_the_english_is_unchanged(en):
    assert checks_common.unwritten("Linear.backward") == "not implemented yet: write Linear.backward, then rerun this cell"
    assert [checks_common.unwritten(p) for p in phrases()] == [
        "not implemented yet: write the parts above, then train the network with one hidden layer, then rerun this cell",
        "not implemented yet: write the parts above, then train both networks, then rerun this cell",
        "not implemented yet: write fit (the end-to-end run uses every part above; skipped until they are written), "
        "then rerun this cell"]
    assert checks_common.tidy("a b 中 文") == "a b 中文"
