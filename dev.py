#!/usr/bin/env python3
"""Set up and run stockpile on this machine with nothing but Python 3.11+.

    python3 dev.py run    # virtual environment, install, migrate, demo data, serve on localhost
    python3 dev.py test   # virtual environment, install, the whole test suite (pytest arguments pass through)

Both create ``.venv`` next to this file on first use and reinstall only when pyproject.toml changes.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
INSTANCE = ROOT / "instance"


def ensure_environment() -> None:
    if sys.version_info < (3, 11):
        sys.exit(f"stockpile needs Python 3.11 or newer; this is {sys.version.split()[0]}.")
    if not PYTHON.exists():
        print("Creating the virtual environment in .venv …", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    stamp = VENV / ".installed"
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == wanted:
        return
    print("Installing stockpile and its dependencies …", flush=True)
    subprocess.run([PYTHON, "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True)
    subprocess.run([PYTHON, "-m", "pip", "install", "--quiet", "-e", f"{ROOT}[dev]"], check=True)
    stamp.write_text(wanted)


def local_secret_key() -> str:
    """A random key kept in instance/ so sign-ins survive restarts of the local server."""
    INSTANCE.mkdir(exist_ok=True)
    path = INSTANCE / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def flask(*args: str, env: dict[str, str]) -> None:
    subprocess.run([BIN / "flask", "--app", "stockpile", *args], check=True, env=env, cwd=ROOT)


def run(args: list[str]) -> None:
    ensure_environment()
    env = {**os.environ, "SECRET_KEY": os.environ.get("SECRET_KEY") or local_secret_key()}
    flask("db", "upgrade", env=env)
    flask("demo", "--if-empty", env=env)
    port = os.environ.get("PORT", "5000")
    print(f"\nstockpile is at http://127.0.0.1:{port}/ — sign in with a demo user above. Ctrl+C stops it.\n",
          flush=True)
    flask("run", "--host", "127.0.0.1", "--port", port, *args, env=env)


def test(args: list[str]) -> None:
    ensure_environment()
    result = subprocess.run([PYTHON, "-m", "pytest", *args], cwd=ROOT)
    sys.exit(result.returncode)


def main() -> None:
    commands = {"run": run, "test": test}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    try:
        commands[sys.argv[1]](sys.argv[2:])
    except subprocess.CalledProcessError as exc:
        sys.exit(exc.returncode)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
