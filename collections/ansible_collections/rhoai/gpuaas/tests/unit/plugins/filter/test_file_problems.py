# -*- coding: utf-8 -*-
"""file_problems: the roles' path check names the variable and its value; unset passes."""
from __future__ import annotations

from pathlib import Path

from ansible_collections.rhoai.gpuaas.plugins.filter.file_problems import FilterModule, file_problems


def test_a_missing_file_is_named_and_unset_or_present_pass(tmp_path: Path) -> None:
    present = tmp_path / "kubeconfig"
    present.write_text("")
    given = {"a_kubeconfig": str(tmp_path / "nope"), "b_kubeconfig": "", "c_kubeconfig": str(present),
             "d_kubeconfig": str(tmp_path)}
    assert file_problems(given) == ["a_kubeconfig {0}/nope is not a file".format(tmp_path),
                                    "d_kubeconfig {0} is not a file".format(tmp_path)]
    assert FilterModule().filters()["file_problems"] is file_problems
