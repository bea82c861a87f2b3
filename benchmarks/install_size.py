"""What a newcomer downloads and installs: the built wheel with each set of extras, into a fresh virtual
environment with pip's cache off (every distribution fetched as on a first install), timed, counted
and weighed on disk.

    python benchmarks/install_size.py        # about 6 minutes: four full installs

The figure depends on the network and the package index; the distribution count and the size do not.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXTRAS = ("", "[airflow]", "[airflow,mlflow]", "[airflow,mlflow,explain]")


def size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 1e6


def build_wheel(tmp: Path) -> Path:
    source = tmp / "source"  # a copy: no build/ left in the checkout
    for name in ("include", "plugins"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp / "wheels"), str(source)],
        check=True,
    )
    (wheel,) = (tmp / "wheels").glob("fairgate-*.whl")
    return wheel


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        wheel = build_wheel(Path(tmp))
        print("extras | seconds | distributions (fairgate and pip among them) | MB added to the environment | largest")
        for extras in EXTRAS:
            venv = Path(tmp) / "venv"
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            pip = [str(venv / "bin" / "python"), "-m", "pip"]
            empty = size_mb(venv)
            started = time.perf_counter()
            subprocess.run(
                [*pip, "install", "--quiet", "--no-cache-dir", f"fairgate{extras} @ {wheel.as_uri()}"], check=True
            )
            seconds = time.perf_counter() - started
            listed = subprocess.run([*pip, "list", "--format=freeze"], capture_output=True, text=True, check=True)
            site = next((venv / "lib").glob("python3*/site-packages"))
            largest = sorted(((size_mb(p), p.name) for p in site.iterdir() if p.is_dir()), reverse=True)[:3]
            print(
                f"{extras or '(none)'} | {seconds:.0f} | {len(listed.stdout.splitlines())} | "
                f"{size_mb(venv) - empty:,.0f} | " + ", ".join(f"{name} {mb:,.0f}" for mb, name in largest)
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
