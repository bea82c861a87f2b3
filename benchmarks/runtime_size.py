"""What the production image's Python layer weighs: ``requirements.txt`` (the runtime pins, what the
Dockerfile installs) into a fresh virtual environment, its size on disk, the largest packages, and
whether any test tool came with it.

    python benchmarks/runtime_size.py        # about 3 minutes: a full install

The apache/airflow base image the Dockerfile starts from is not included (it needs a Docker engine).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEST_TOOLS = ("pytest", "moto", "mypy", "ruff", "playwright")


def size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 1e6


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip"]
        subprocess.run([*pip, "install", "--quiet", "-r", str(REPO / "requirements.txt")], check=True)
        site = next((venv / "lib").glob("python3*/site-packages"))
        packages = sorted(((size_mb(p), p.name) for p in site.iterdir() if p.is_dir()), reverse=True)
        listed = subprocess.run([*pip, "list", "--format=freeze"], capture_output=True, text=True, check=True).stdout
        names = {line.split("==")[0].lower() for line in listed.splitlines()}
        print(f"runtime environment: {size_mb(venv):,.0f} MB, {len(names)} distributions")
        print("largest: " + ", ".join(f"{name} {mb:,.0f} MB" for mb, name in packages[:6]))
        print(f"test tools present: {sorted(n for n in names if n in TEST_TOOLS) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
