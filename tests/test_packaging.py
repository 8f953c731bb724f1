"""The wheel holds the whole `pcdrl` package and nothing else at the top level. A cheap guard (one `pip wheel`,
seconds); `make test-wheel` installs the wheel into a fresh venv and runs a tiny pipeline from it."""
import importlib.util
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("wheel_contents", REPO / "scripts" / "wheel_contents.py")
wheel_contents = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(wheel_contents)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    return wheel_contents.build_wheel(tmp_path_factory.mktemp("wheel"))


def test_wheel_holds_every_module_config_and_prompt_and_no_other_top_level_name(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.relative_to(REPO).as_posix() for p in (REPO / "pcdrl").rglob("*.py") if "__pycache__" not in p.parts}
    configs = {p.relative_to(REPO).as_posix() for p in (REPO / "pcdrl" / "configs").rglob("*.yaml")}
    assert "pcdrl/models/backends/__init__.py" in modules and len(configs) >= 10, "the repository listing itself"
    assert not modules - names, f"modules missing from the wheel: {sorted(modules - names)}"
    assert not configs - names, f"shipped configs missing from the wheel: {sorted(configs - names)}"
    assert "pcdrl/behaviors/data/chat_prompts.yaml" in names
    others = {n.split("/")[0] for n in names} - {"pcdrl"}
    assert len(others) == 1 and others.pop().endswith(".dist-info"), "only pcdrl/ and the wheel's .dist-info"
    assert wheel_contents.wheel_problems(wheel, wheel_contents.package_files()) == []


def test_wheel_check_names_each_missing_file_and_each_extra_top_level_name(tmp_path):
    expected = ["pcdrl/__init__.py", "pcdrl/cli.py", "pcdrl/models/backends/__init__.py",
                "pcdrl/configs/rl/grpo_concepts.yaml"]
    bad = tmp_path / "pcd_rl-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(bad, "w") as archive:
        for name in ["pcdrl/__init__.py", "pcdrl/cli.py", "models/__init__.py", "configs/__init__.py"]:
            archive.writestr(name, "")
        archive.writestr("pcd_rl-0.1.0.dist-info/top_level.txt", "configs\nmodels\npcdrl\n")
        archive.writestr("pcd_rl-0.1.0.dist-info/entry_points.txt", "[console_scripts]\npcdrl = pcdrl.cli:main\n")
    problems = "\n".join(wheel_contents.wheel_problems(bad, expected))
    assert "pcdrl/models/backends/__init__.py" in problems and "pcdrl/configs/rl/grpo_concepts.yaml" in problems
    assert "pcdrl/behaviors/data/chat_prompts.yaml" in problems, "REQUIRED files count even when not expected"
    assert "top-level names other than 'pcdrl': configs, models" in problems
    assert "top_level.txt lists ['configs', 'models', 'pcdrl']" in problems
    assert "console script" not in problems
