"""``python -m srm_models``: the README's demo until the service's ``srm-bench demo`` exists."""
from __future__ import annotations

import re

from srm_models.__main__ import main


def test_demo_prints_both_tables_and_matches_the_paper(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    # 9 backbones (5 ImageNet, 4 CIFAR depths) x 8 kinds (none, se, ge, srm, cbam, eca, gct, simam)
    assert "built all 72 registered models" in out
    assert re.search(r"^srm_resnet50\s+25\.62\s+25\.62 ok", out, re.MULTILINE)
    assert re.search(r"^resnet101\s+44\.55\s+44\.55 ok\s+7\.58\s+7\.58 ok", out, re.MULTILINE)
    assert re.search(r"^ge_cifar_resnet56\s+1\.91\s+1\.91 ok\s+1\.94\s+1\.94 ok", out, re.MULTILINE)
    assert out.rstrip().endswith("every checked count matches the paper")

