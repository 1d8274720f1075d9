"""gpuctl.yaml: discovery by walking up, validation errors naming file, field and problem."""

from __future__ import annotations

import pytest

from gpuctl.errors import ConfigError, ExitCode
from gpuctl.project import ProjectFile, find_project_root, load_project_file, write_project_file


def test_found_by_walking_up(tmp_path):
    write_project_file(tmp_path, ProjectFile(model="llama-3-8b"))
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert find_project_root(deep) == tmp_path
    assert load_project_file(find_project_root(deep)).model == "llama-3-8b"


def test_state_dir_alone_marks_a_project(tmp_path):
    (tmp_path / ".gpuctl").mkdir()
    (tmp_path / "sub").mkdir()
    assert find_project_root(tmp_path / "sub") == tmp_path


def test_absent_file_gives_empty_defaults(tmp_path):
    assert load_project_file(tmp_path) == ProjectFile()


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("engine: triton\n", "field 'engine': Input should be 'vllm', 'sglang' or 'tgi'"),
        ("ttl: forever\n", "field 'ttl': 'forever' is not a duration"),
        ("colour: red\n", "field 'colour': unknown field"),
        ("model: [unclosed\n", "not valid YAML at line 2"),
        ("- a\n- b\n", "expected a mapping"),
    ],
)
def test_invalid_file_names_file_field_problem(tmp_path, content, needle):
    (tmp_path / "gpuctl.yaml").write_text(content)
    with pytest.raises(ConfigError) as excinfo:
        load_project_file(tmp_path)
    assert str(tmp_path / "gpuctl.yaml") in excinfo.value.message
    assert needle in excinfo.value.message
    assert excinfo.value.exit_code == ExitCode.USAGE
