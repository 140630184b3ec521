"""Build the optional compiled core (mypyc) in place, next to the pure-Python modules.

Usage: python scripts/build_compiled.py [--clean]

`make install` runs this after `pip install -e .`. It compiles the modules listed in
``streamfeat/_compiled.py::MODULES`` with mypyc into extension modules beside their ``.py``
files (one shared library, ``streamfeat/_native__mypyc*.so``, and one small shim per module),
then writes ``streamfeat/_native.json`` with each source's SHA-256. At import,
``streamfeat._compiled`` uses the compiled modules only when every hash still matches (an edited
source falls back to the pure code, for all of them), and never when ``STREAMFEAT_PURE=1``.

Without a C compiler, or when mypyc fails, it removes what it built and exits 0 with one line
saying so: the pure-Python code is the reference and the fallback.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from hashlib import sha256
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _modules() -> tuple[str, ...]:
    # read the list without importing streamfeat (which would pick up an old build)
    ns: dict[str, object] = {}
    src = (ROOT / "streamfeat" / "_compiled.py").read_text(encoding="utf-8")
    start = src.index("\nMODULES = (") + 1
    end = src.index(")\n", start) + 1
    exec(src[start:end], ns)  # a literal tuple from our own source
    mods = ns["MODULES"]
    assert isinstance(mods, tuple)
    return tuple(str(m) for m in mods)


def clean() -> None:
    """Remove every compiled artefact from the source tree."""
    pkg = ROOT / "streamfeat"
    for so in pkg.rglob("*.so"):
        so.unlink()
    (pkg / "_native.json").unlink(missing_ok=True)


def build() -> int:
    """Compile the modules in place; return 0 also when falling back to pure Python."""
    clean()
    try:
        from mypyc.build import mypycify
        from setuptools import setup
    except ImportError as exc:
        print(f"compiled core not built (pure Python is used): {exc}")
        return 0
    if shutil.which(os.environ.get("CC", "cc")) is None:
        print("compiled core not built (pure Python is used): no C compiler found")
        return 0
    mods = _modules()
    paths = [str(Path(*m.split(".")).with_suffix(".py")) for m in mods]
    # hashed before compiling: a source edited during the build must make it stale
    hashes = {
        m: sha256((ROOT / p).read_bytes()).hexdigest() for m, p in zip(mods, paths, strict=True)
    }
    old = Path.cwd()
    os.chdir(ROOT)
    tmp = tempfile.mkdtemp(prefix="streamfeat-mypyc-")
    try:
        ext = mypycify(
            ["--config-file", "pyproject.toml", *paths],
            opt_level="3",
            group_name="streamfeat._native",
            target_dir=os.path.join(tmp, "c"),
        )
        setup(
            name="streamfeat-native",
            ext_modules=ext,
            script_args=["-q", "build_ext", "--inplace", "--build-temp", os.path.join(tmp, "o")],
        )
    except (Exception, SystemExit) as exc:  # a failed build must leave the pure code usable
        clean()
        print(f"compiled core not built (pure Python is used): {exc}")
        return 0
    finally:
        os.chdir(old)
        shutil.rmtree(tmp, ignore_errors=True)
    (ROOT / "streamfeat" / "_native.json").write_text(
        json.dumps(hashes, indent=1, sort_keys=True) + "\n", encoding="utf-8"
    )
    print(f"compiled core built: {len(mods)} modules (STREAMFEAT_PURE=1 forces pure Python)")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--clean", action="store_true", help="remove the compiled modules and exit")
    ap.add_argument("--list", action="store_true", help="print the compiled modules' sources")
    args = ap.parse_args()
    if args.list:
        print(" ".join(str(Path(*m.split(".")).with_suffix(".py")) for m in _modules()))
        return 0
    if args.clean:
        clean()
        return 0
    return build()


if __name__ == "__main__":
    sys.exit(main())
