"""`vstpipe ofx bundle`: compile the native OpenFX bridge into a bundle editing hosts load.

The bundle is the standard OpenFX layout::

    vstpipe.ofx.bundle/Contents/Info.plist
    vstpipe.ofx.bundle/Contents/<platform>/vstpipe.ofx        (Linux-x86-64, MacOS, ...)
    vstpipe.ofx.bundle/Contents/Resources/effects.json         (what the server reports)
    vstpipe.ofx.bundle/Contents/Resources/<identifier>.png     (each effect's icon)

The binary is compiled from ``native/`` (shipped inside the package) with the system C
compiler. ``effects.json`` holds the server's own answers to ``hello`` and ``describe`` for each
effect and context, and the command that starts the server (this Python, ``-m vstpipe serve``),
so a host scanning its plugin folders sees every effect without starting Python; the server
itself starts with the first instance.
"""

from __future__ import annotations

import inspect
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from . import __version__, effects, ofx, serve
from .errors import OutputError, VstpipeError

BUNDLE_NAME = "vstpipe"
SOURCES = ("plugin.c", "link.c", "json.c")
COMPILER_VARIABLE = "CC"


class CompilerMissing(VstpipeError):
    """No C compiler to build the bundle with."""


@dataclass(frozen=True)
class Bundle:
    path: Path  # the .ofx.bundle folder
    binary: Path  # Contents/<platform>/<name>.ofx
    effects: tuple[str, ...]  # identifiers, one OpenFX plugin each
    install_hint: str  # where to copy it, in one line


def platform_folder(system: str | None = None, machine: str | None = None) -> str:
    """The bundle's binary folder for this platform, as the OpenFX specification names it."""
    system = system or platform.system()
    machine = (machine or platform.machine()).lower()
    wide = machine in ("x86_64", "amd64", "aarch64", "arm64")
    if system == "Darwin":
        return "MacOS"
    if system == "Windows":
        return "Win64" if wide else "Win32"
    if system == "Linux":
        if machine in ("aarch64", "arm64"):
            return "Linux-aarch64"  # OpenFX 1.5.1: future Linux folders are Linux-$(uname -m)
        return "Linux-x86-64" if wide else "Linux-x86"
    raise OutputError(f"the OpenFX bundle layout has no folder for {system} {machine}; "
                      f"build on Linux or macOS")


def install_hint(system: str | None = None) -> str:
    system = system or platform.system()
    folder = {"Darwin": "/Library/OFX/Plugins",
              "Windows": r"C:\Program Files\Common Files\OFX\Plugins"}.get(system,
                                                                        "/usr/OFX/Plugins")
    return (f"copy it into {folder} (every user), or into a folder listed in OFX_PLUGIN_PATH, "
            f"and restart the host")


def find_compiler(environ: dict[str, str] | None = None) -> list[str]:
    """The C compiler command: $CC, else cc, gcc or clang on PATH."""
    environ = dict(os.environ) if environ is None else environ
    named = environ.get(COMPILER_VARIABLE, "").split()
    if named:
        if shutil.which(named[0], path=environ.get("PATH")) is None:
            raise CompilerMissing(f"CC={named[0]!r} is not a program on PATH; set CC to a C "
                                  f"compiler or unset it to use cc, gcc or clang")
        return named
    for name in ("cc", "gcc", "clang"):
        found = shutil.which(name, path=environ.get("PATH"))
        if found:
            return [found]
    raise CompilerMissing("no C compiler found (CC unset; no cc, gcc or clang on PATH); install "
                          "one: `apt-get install gcc` (Debian, Ubuntu), `dnf install gcc` "
                          "(Fedora), `xcode-select --install` (macOS)")


def compile_command(compiler: list[str], sources: list[Path], out: Path,
                    system: str | None = None) -> list[str]:
    system = system or platform.system()
    if system == "Windows":
        raise OutputError("the bridge talks to vstpipe serve over POSIX sockets and processes; "
                          "Windows bundles are not built yet (use WSL's Linux host build)")
    shape = ["-bundle"] if system == "Darwin" else ["-shared", "-fPIC"]
    return [*compiler, "-std=c11", "-O2", "-Wall", "-fvisibility=hidden", *shape,
            "-o", str(out), *map(str, sources), "-lpthread", "-lm"]


def server_command() -> list[str]:
    """How the bridge starts this vstpipe's server."""
    return [sys.executable, "-m", "vstpipe", "serve"]


def catalog_report(catalog: effects.Catalog) -> dict[str, Any]:
    """The server's answers to hello and to describe for each effect and context: the bridge
    mirrors these into the host's property and parameter suites."""
    server = serve.Server(catalog)

    def ask(header: dict[str, Any]) -> dict[str, Any]:
        reply, _ = server.answer(serve.Message(header))
        if not reply.get("ok"):
            raise OutputError(f"vstpipe serve refused {header['op']}: {reply.get('error')}")
        return reply

    hello = ask({"op": "hello"})
    listed = []
    for identifier in hello["effects"]:
        desc = ofx.Descriptor(identifier)
        catalog.get(identifier).describe(desc)
        contexts = {context: ask({"op": "describe", "effect": identifier,
                                  "context": context})["descriptor"]
                    for context in desc.contexts}
        listed.append({"effect": identifier, "contexts": contexts})
    environment = {name: os.environ[name] for name in (effects.PATH_VARIABLE,)
                   if os.environ.get(name)}
    return {"protocol": hello["protocol"], "version": hello["version"],
            "server": server_command(), "environment": environment, "effects": listed,
            "broken": hello["broken"]}


def effect_icon(effect: type[ofx.Effect]) -> Path | None:
    """The effect's icon: its ``icon`` attribute, a PNG path relative to its module's file."""
    name = getattr(effect, "icon", None)
    if not name:
        return None
    try:
        here = Path(inspect.getfile(effect)).parent
    except (TypeError, OSError):
        return None
    path = here / name
    return path if path.is_file() else None


def info_plist(name: str) -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>CFBundleDevelopmentRegion</key><string>English</string>
  <key>CFBundleExecutable</key><string>{name}.ofx</string>
  <key>CFBundleIdentifier</key><string>org.vstpipe.ofx</string>
  <key>CFBundleInfoDictionaryVersion</key><string>6.0</string>
  <key>CFBundleName</key><string>{name}</string>
  <key>CFBundlePackageType</key><string>BNDL</string>
  <key>CFBundleShortVersionString</key><string>{__version__}</string>
  <key>CFBundleVersion</key><string>{__version__}</string>
</dict>
</plist>
"""


def native_sources() -> Path:
    return Path(str(resources.files("vstpipe.native_data")))


def build(out_dir: Path, *, overwrite: bool = False, catalog: effects.Catalog | None = None,
          environ: dict[str, str] | None = None) -> Bundle:
    """Compile the bridge and lay out ``out_dir/vstpipe.ofx.bundle``, all or nothing."""
    out_dir = Path(out_dir)
    target = out_dir / f"{BUNDLE_NAME}.ofx.bundle"
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"--out {out_dir} is a file; give a folder to put the bundle in")
    if target.exists() and not overwrite:
        raise OutputError(f"{target} exists; pass --overwrite to replace it")
    compiler = find_compiler(environ)
    folder = platform_folder()
    catalog = catalog or effects.load_catalog()
    report = catalog_report(catalog)
    if not report["effects"]:
        raise OutputError("no effect loaded, so the bundle would offer none; see "
                          "`vstpipe ofx list`")
    out_dir.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=out_dir))
    try:
        contents = temp / "Contents"
        (contents / folder).mkdir(parents=True)
        (contents / "Resources").mkdir()
        (contents / "Info.plist").write_text(info_plist(BUNDLE_NAME))
        (contents / "Resources" / "effects.json").write_text(json.dumps(report, indent=1))
        for item in report["effects"]:
            icon = effect_icon(catalog.get(item["effect"]))
            if icon is not None:
                shutil.copyfile(icon, contents / "Resources" / f"{item['effect']}.png")
        binary = contents / folder / f"{BUNDLE_NAME}.ofx"
        sources = [native_sources() / name for name in SOURCES]
        command = compile_command(compiler, sources, binary)
        done = subprocess.run(command, capture_output=True, text=True, env=environ, check=False)
        if done.returncode != 0:
            first = (done.stderr.strip().splitlines() or ["no message"])[0]
            raise OutputError(f"{compiler[0]} failed to compile the bridge (exit status "
                              f"{done.returncode}): {first}")
        _replace(temp, target, overwrite)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return Bundle(target, target / "Contents" / folder / binary.name,
                  tuple(item["effect"] for item in report["effects"]), install_hint())


def _replace(temp: Path, target: Path, overwrite: bool) -> None:
    """Move the finished bundle into place; an old one goes only once the new one is there."""
    if not target.exists():
        try:
            temp.rename(target)
        except OSError as exc:
            raise OutputError(f"{target}: cannot move the bundle into place "
                              f"({exc.strerror})") from None
        return
    if not overwrite:
        raise OutputError(f"{target} appeared while the bundle was built; left it as it is; "
                          f"pass --overwrite to replace it")
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    target.rename(old)
    try:
        temp.rename(target)
    except OSError as exc:
        old.rename(target)
        raise OutputError(f"{target}: cannot move the bundle into place ({exc.strerror}); the "
                          f"old one was kept") from None
    shutil.rmtree(old, ignore_errors=True)
