"""Atomic outputs: write under a locked temp name beside the target, claim the target at the end.

Every command that writes a user-named file goes through here, so one set of rules holds:

* the target is claimed at the end, atomically: without ``overwrite`` a hard link that fails
  when the target exists, so a file that appeared there during the work (another render to the
  same path, a user's file) is never replaced and the run fails instead;
* an output that is one of the command's inputs is refused before any work;
* temp names stay within the file system's name limit however long the target's name is;
* each temp file is ``flock``-ed for the life of its writer, so a later run recognises the
  ``.part`` files of a killed writer (no lock held) and removes them, and never touches a live
  writer's file, on this machine or, over NFS, another.
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import stat
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import IO, Final, Self

from vstpipe.errors import OutputError

_SUFFIX: Final = ".part"
_TOKEN_CHARS: Final = 8  # hex characters of randomness in a temp name
_STALE_AFTER_S: Final = 2.0  # a lock-free temp file younger than this may be a writer starting


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def _temp_prefix(target: Path) -> str:
    """``.NAME.`` shortened so that prefix + token + suffix fits the name limit."""
    room = _name_max(target.parent) - len(".") - len(".") - _TOKEN_CHARS - len(_SUFFIX)
    name = target.name.encode()[:room].decode(errors="ignore")  # whole UTF-8 characters only
    return f".{name}."


def check_target(out: Path, inputs: Iterable[Path] = (), *, overwrite: bool = False,
                 what: str = "output") -> None:
    """OutputError if ``out`` is an input, a directory, an unrequested existing file, or unwritable.

    The early, friendly check; :meth:`TempOutput.commit` enforces the same at the end atomically.
    """
    out = Path(out)
    for src in inputs:
        src = Path(src)
        same = (out.exists() and src.exists() and os.path.samefile(src, out)) or (
            out.resolve() == src.resolve())
        if same:
            raise OutputError(f"{out}: is an input of this command ({src}); "
                              f"choose another {what} path")
    if out.is_dir():
        raise OutputError(f"{out}: is a directory; give a file name inside it")
    if out.exists() and not overwrite:
        raise OutputError.about("{out}: already exists; pass {overwrite} to replace it", out=out)
    check_folder(out)


def check_folder(out: Path) -> None:
    """OutputError unless the folder ``out`` is to be written in exists and is writable."""
    parent = Path(out).parent
    if not parent.is_dir():
        raise OutputError(f"{out}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{out}: directory {parent} is not writable")


def check_stream_apart(out: int | IO[bytes], inputs: Iterable[int | IO[bytes] | Path], *,
                       what: str) -> None:
    """OutputError if the file behind ``out`` is one of ``inputs`` (descriptors, streams, paths).

    For commands that write to a stream (stdout) redirected to a file: writing into the very
    file being read (``1<> in.raw``) would eat the input as it goes. Streams without a file
    descriptor (in-memory, as in tests) cannot be files and pass.
    """
    try:
        out_st = os.fstat(_fd(out))
    except (OSError, ValueError):  # io.UnsupportedOperation is both
        return
    if not stat.S_ISREG(out_st.st_mode):
        return  # pipes, terminals, sockets: nothing to clobber
    for item in inputs:
        try:
            st = os.stat(item) if isinstance(item, Path) else os.fstat(_fd(item))
        except (OSError, ValueError):
            continue
        if (st.st_dev, st.st_ino) == (out_st.st_dev, out_st.st_ino):
            name = str(item) if isinstance(item, Path) else "standard input"
            raise OutputError(f"{what} is the same file as {name}, an input of this command; "
                              f"redirect it to another file")


def _fd(stream: int | IO[bytes]) -> int:
    return stream if isinstance(stream, int) else stream.fileno()


def sweep_stale(target: Path) -> list[Path]:
    """Remove the temp files a killed writer of ``target`` left behind; return their paths.

    A temp file whose lock can be taken has no live writer. Files younger than a moment are
    left alone: a writer may have created its file and not yet locked it.
    """
    target = Path(target)
    prefix = _temp_prefix(target)
    removed: list[Path] = []
    try:
        candidates = [p for p in target.parent.iterdir()
                      if p.name.startswith(prefix) and p.name.endswith(_SUFFIX)
                      and len(p.name) == len(prefix) + _TOKEN_CHARS + len(_SUFFIX)]
    except OSError:
        return removed
    now = time.time()
    for path in candidates:
        try:
            if now - path.lstat().st_mtime < _STALE_AFTER_S or not path.is_file():
                continue
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # a live writer holds it
        else:
            path.unlink(missing_ok=True)
            removed.append(path)
        finally:
            os.close(fd)
    return removed


class TempOutput:
    """A locked, uniquely named temp file beside ``target``; commit() claims the target.

    Use as a context manager: leaving it without commit() (an error, Ctrl-C, SIGTERM turned
    into KeyboardInterrupt) deletes the temp file and leaves ``target`` untouched.
    """

    def __init__(self, target: Path, *, overwrite: bool = False) -> None:
        self.target = Path(target)
        self.overwrite = overwrite
        sweep_stale(self.target)
        prefix = _temp_prefix(self.target)
        while True:
            path = self.target.with_name(f"{prefix}{secrets.token_hex(_TOKEN_CHARS // 2)}{_SUFFIX}")
            try:
                # os.open honours the umask, unlike mkstemp's 0600 which would leak into target.
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            except FileExistsError:
                continue
            except OSError as err:
                raise OutputError(f"{self.target}: cannot create a file in "
                                  f"{self.target.parent} ({err.strerror})") from None
            break
        fcntl.flock(fd, fcntl.LOCK_EX)
        self.path = path
        self._lock_fd: int | None = fd
        self.done = False

    def commit(self) -> None:
        """Move the finished temp file onto the target; OutputError if that would clobber."""
        if self.done:
            return
        if self.overwrite:
            try:
                os.replace(self.path, self.target)
            except OSError as err:
                raise OutputError(f"{self.target}: could not move the finished file into "
                                  f"place ({err.strerror})") from None
        else:
            self._link_no_clobber()
        self.done = True
        self._unlock()

    def _link_no_clobber(self) -> None:
        try:
            os.link(self.path, self.target)
        except FileExistsError:
            raise OutputError.about("{target}: appeared while this command ran (another "
                                    "process wrote it); left it as it is, nothing was saved; "
                                    "pass {overwrite} to replace it", target=self.target
                                    ) from None
        except OSError as err:
            if err.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                raise OutputError(f"{self.target}: could not move the finished file into "
                                  f"place ({err.strerror})") from None
            # A file system without hard links (FAT, some FUSE mounts): check, then rename.
            # Not atomic, but the window is this one system call.
            if self.target.exists():
                raise OutputError.about("{target}: appeared while this command ran; left it "
                                        "as it is, nothing was saved; pass {overwrite} to "
                                        "replace it", target=self.target) from None
            os.replace(self.path, self.target)
            return
        self.path.unlink(missing_ok=True)

    def discard(self) -> None:
        """Delete the temp file; the target is left as it was."""
        if self.done:
            return
        self.done = True
        try:
            self.path.unlink(missing_ok=True)
        finally:
            self._unlock()

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            fd, self._lock_fd = self._lock_fd, None
            os.close(fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.discard()  # a no-op after commit()


class TempSequence:
    """A locked temp folder beside an image-sequence ``target`` (a pattern such as
    ``out/%05d.png``); its ``path`` is the same pattern inside it. commit() moves every file
    to its name under the pattern, all or none: without ``overwrite`` a file that exists there
    (checked first, claimed by hard link) fails the commit, and the files already moved are
    taken back. Leaving without commit() deletes the folder and leaves the target's folder
    as it was."""

    def __init__(self, target: Path, *, overwrite: bool = False) -> None:
        self.target = Path(target)
        self.overwrite = overwrite
        self._folder = TempOutput(self.target.with_name(self.target.name.replace("%", "_")),
                                  overwrite=True)  # its locked .part file names the folder
        self.dir = self._folder.path.with_suffix(".dir")
        try:
            self.dir.mkdir()
        except OSError as err:
            self._folder.discard()
            raise OutputError(f"{self.target}: cannot create a folder in "
                              f"{self.target.parent} ({err.strerror})") from None
        self.path = self.dir / self.target.name
        self.done = False
        self.written: list[Path] = []  # the files committed, in order

    def commit(self) -> None:
        if self.done:
            return
        files = sorted(self.dir.iterdir())
        moves = [(f, self.target.with_name(f.name)) for f in files]
        if not self.overwrite:
            taken = [final for _, final in moves if final.exists()]
            if taken:
                raise OutputError.about("{target}: {name} appeared while this command ran; "
                                        "left it as it is, nothing was saved; pass {overwrite} "
                                        "to replace it", target=self.target, name=taken[0].name)
        linked: list[Path] = []
        try:
            for temp, final in moves:
                if self.overwrite:
                    os.replace(temp, final)
                else:
                    os.link(temp, final)
                linked.append(final)
        except OSError as err:
            if not self.overwrite:
                for final in linked:
                    final.unlink(missing_ok=True)
            raise OutputError.about("{target}: could not move {name} into place ({why}); "
                                    "nothing was saved", target=self.target,
                                    name=final.name, why=err.strerror) from None
        self.written = linked
        self.done = True
        self._remove()

    def discard(self) -> None:
        if self.done:
            return
        self.done = True
        self._remove()

    def _remove(self) -> None:
        for leftover in self.dir.iterdir() if self.dir.is_dir() else ():
            leftover.unlink(missing_ok=True)
        if self.dir.is_dir():
            self.dir.rmdir()
        self._folder.discard()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.discard()


def write_bytes(target: Path, data: bytes, *, overwrite: bool = False) -> None:
    """Write ``data`` to ``target`` atomically under the rules above."""
    with TempOutput(target, overwrite=overwrite) as tmp:
        tmp.path.write_bytes(data)
        tmp.commit()
