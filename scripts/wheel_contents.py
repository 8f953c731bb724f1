"""Build the pcd-rl wheel from a clean copy of the work tree, and check what it holds.

    python scripts/wheel_contents.py build OUT_DIR   # prints the path of OUT_DIR/dist/pcd_rl-*.whl
    python scripts/wheel_contents.py check WHEEL     # exit 1 naming every missing or extra entry

The wheel must hold every file of the repository's pcdrl/ (modules, shipped configs, chat prompts), the
`pcdrl` console script, and nothing at the top level but `pcdrl` and its .dist-info. `make test-wheel`
(scripts/check_wheel.sh) and tests/test_packaging.py both use it; it needs only the standard library and pip.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "pcdrl"
# Named outright as well, so that a source listing that lost them cannot make the check pass vacuously.
REQUIRED = (
    "pcdrl/__init__.py", "pcdrl/cli.py", "pcdrl/models/backends/__init__.py",
    "pcdrl/behaviors/data/chat_prompts.yaml", "pcdrl/configs/quickstart.yaml",
    "pcdrl/configs/pcd/quickstart.yaml", "pcdrl/configs/data/quickstart.yaml",
    "pcdrl/configs/rl/grpo_concepts.yaml", "pcdrl/configs/eval/eval.yaml",
    "pcdrl/study/templates/item.html", "pcdrl/study/static/style.css",
)
CONSOLE_SCRIPT = "pcdrl = pcdrl.cli:main"


def source_files(repo: Path = REPO) -> list[str]:
    """The files a fresh clone of the work tree would hold: tracked and untracked, less git-ignored and deleted."""
    listed = subprocess.run(["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            check=True, capture_output=True, text=True).stdout.split("\0")
    return sorted({name for name in listed if name and (repo / name).is_file()})


def package_files(repo: Path = REPO) -> list[str]:
    """Every file of the repository's pcdrl/ package, as wheel paths."""
    return [name for name in source_files(repo) if name.startswith(PACKAGE + "/")]


def build_wheel(out_dir: Path, repo: Path = REPO, python: str = sys.executable) -> Path:
    """`pip wheel --no-deps` of a copy of the work tree in ``out_dir/src``: setuptools' build/ folder of the
    checkout could slip stale files into the wheel, and the build must not write into the user's folders."""
    src, dist = out_dir / "src", out_dir / "dist"
    for name in source_files(repo):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / name, src / name)
    subprocess.run([python, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(src)], check=True)
    [wheel] = dist.glob("pcd_rl-*.whl")
    return wheel


def wheel_problems(wheel: Path, expected: list[str]) -> list[str]:
    """What is wrong with ``wheel``, one line each (empty when it is right); ``expected`` = package_files()."""
    with zipfile.ZipFile(wheel) as archive:
        names = [n for n in archive.namelist() if not n.endswith("/")]
        dist_info = sorted({n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info")})
        meta = {n.split("/", 1)[1]: archive.read(n).decode() for n in names
                if len(dist_info) == 1 and n.startswith(dist_info[0] + "/")}
    problems = []
    if len(dist_info) != 1:
        problems.append(f"expected one .dist-info folder, found {dist_info or 'none'}")
    missing = sorted(set(expected) - set(names)) + sorted(set(REQUIRED) - set(expected) - set(names))
    if missing:
        problems.append(f"missing from the wheel ({len(missing)}): {', '.join(missing)} (modules: pyproject's "
                        "[tool.setuptools.packages.find]; data files: a pattern in [tool.setuptools.package-data])")
    extra_top = sorted({n.split("/")[0] for n in names} - {PACKAGE, *dist_info})
    if extra_top:
        problems.append(f"top-level names other than {PACKAGE!r}: {', '.join(extra_top)} "
                        "(pyproject's [tool.setuptools.packages.find] include must stay pcdrl, pcdrl.*)")
    top_level = meta.get("top_level.txt", PACKAGE).split()
    if top_level != [PACKAGE]:
        problems.append(f"top_level.txt lists {top_level}, not just {PACKAGE!r}")
    if CONSOLE_SCRIPT not in meta.get("entry_points.txt", ""):
        problems.append(f"entry_points.txt lacks the console script `{CONSOLE_SCRIPT}`")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    verbs.add_parser("build", help="build the wheel into OUT_DIR/dist").add_argument("out_dir", type=Path)
    verbs.add_parser("check", help="check a wheel's contents against pcdrl/").add_argument("wheel", type=Path)
    args = parser.parse_args()
    if args.verb == "build":
        print(build_wheel(args.out_dir))
        return 0
    expected = package_files()
    problems = wheel_problems(args.wheel, expected)
    for line in problems:
        print(f"wheel check: {args.wheel.name}: {line}", file=sys.stderr)
    if not problems:
        print(f"wheel check: {args.wheel.name} holds all {len(expected)} files of pcdrl/ and nothing else at the top level")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
