"""Where a command may write, and the one way it writes there.

Every command checks its output folder (or file) here first, so a path it
cannot write is one line naming the option, not a traceback after minutes
of work, and a refused run leaves no new folder behind. The check also
refuses the filesystem root, system folders and the home folder itself (an
unset variable in ``--out $DIR``), a link as the output folder, and an
output that would land on one of the command's inputs.

Then every file is written through :func:`atomic_open` (or the helpers on
top of it): a new file, created exclusively next to the target, renamed over
it. A link planted where an output goes is replaced, never followed, and a
kill leaves the previous file or the new one, never half of one. Folders are
made by :func:`make_dir`, which refuses a link where a folder of the output
should be (a ``hardened_rtl`` link to a folder elsewhere would otherwise
receive the files).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import tempfile
from pathlib import Path

from fkhw.errors import InputError


class OutputError(InputError):
    """An output path a command cannot write, naming the option."""


# folders no command's output belongs in: a campaign written into one of them is an accident (an unset
# variable in `--out $DIR/x` gives /x; `--out $DIR` gives the working folder, which is allowed)
SYSTEM_FOLDERS = ("/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32", "/proc",
                  "/root", "/run", "/sbin", "/sys", "/usr", "/var")


# --- checks before any work ---------------------------------------------------

def _nearest_existing(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _check_folder(folder: Path, path: Path, option: str) -> None:
    """``folder`` (where ``path`` goes) exists or can be made, and is writable."""
    anchor = _nearest_existing(folder)
    if not anchor.is_dir():
        raise OutputError(f"{option} {path}: cannot write there ({anchor} is a file, not a folder)")
    if not os.access(anchor, os.W_OK | os.X_OK):
        raise OutputError(f"{option} {path}: cannot write there ({anchor} is not writable)")
    try:  # permissions are not the whole story (root, read-only mounts, pseudo filesystems): try it
        with tempfile.TemporaryFile(dir=anchor):
            pass
    except OSError as e:
        raise OutputError(f"{option} {path}: cannot write there ({anchor}: {e.strerror or e})") from None


def _system_folder(real: str) -> str | None:
    """What is wrong with writing a command's files straight into ``real`` (a resolved folder), or None."""
    if real == os.path.realpath("/"):
        return "the filesystem root"
    if real in {os.path.realpath(p) for p in SYSTEM_FOLDERS}:
        return f"{real} is a system folder"
    return None


def _check_not_root(path: Path, option: str, folder: bool) -> None:
    real = os.path.realpath(path if folder else path.parent)
    why = _system_folder(real)
    if why is None and folder and real == os.path.realpath(Path.home()):
        why = "your home folder itself"
    if why is not None:
        what = "" if folder else "a file in "
        raise OutputError(f"{option} {path}: cannot write there ({what}{why}; give a folder of its own)")


def _check_inputs(path: Path, option: str, inputs, folder: bool) -> None:
    """``path`` is none of ``inputs`` ((option, path) pairs; a None path is
    skipped) and, as an output folder, holds none of their files: the
    command would write over them."""
    real = os.path.realpath(path)
    for in_option, p in inputs:
        if p is None:
            continue
        r = os.path.realpath(p)
        if r == real:
            raise OutputError(f"{option} {path}: is the input {p} ({in_option}); writing there would overwrite it")
        if folder and os.path.dirname(r) == real and os.path.isfile(r):
            raise OutputError(f"{option} {path}: holds the input {p} ({in_option}), which the outputs could "
                              "overwrite; give another folder")


def check_out_dir(path, option: str = "--out", inputs=()) -> Path:
    """``path`` is a folder, or can be made one, and can be written; it is
    not a link, a system folder, an input or the folder of an input file
    (``inputs``: (option, path) pairs of what the command reads)."""
    path = Path(path)
    _check_not_root(path, option, folder=True)
    if path.is_symlink():
        raise OutputError(f"{option} {path}: is a link (to {os.readlink(path)}); give the folder itself")
    if path.exists() and not path.is_dir():
        raise OutputError(f"{option} {path}: exists and is not a folder")
    _check_inputs(path, option, inputs, folder=True)
    if path.is_dir() and not os.access(path, os.W_OK | os.X_OK):
        raise OutputError(f"{option} {path}: cannot write there (folder is not writable)")
    _check_folder(path, path, option)
    return path


def check_out_file(path, option: str = "--out", inputs=()) -> Path:
    """``path`` is a file (or nothing yet) whose folder can be written, not
    in a system folder and none of ``inputs`` ((option, path) pairs). A
    link there is replaced by the file, never followed."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{option} {path}: is a folder, give a file name")
    _check_not_root(path, option, folder=False)
    _check_inputs(path, option, inputs, folder=False)
    if path.exists() and not path.is_symlink() and not os.access(path, os.W_OK):
        raise OutputError(f"{option} {path}: cannot write there (file is not writable)")
    _check_folder(path.parent, path, option)
    if not path.parent.is_dir():  # named here, not later as the temporary file a writer could not open in it
        raise OutputError(f"{option} {path}: no folder {path.parent} (create it first)")
    return path


# --- writing ------------------------------------------------------------------

def _link_error(path: Path) -> OutputError:
    try:
        target = os.readlink(path)
    except OSError:
        target = "?"
    return OutputError(f"{path}: is a link (to {target}), not a folder fkhw made; fkhw writes no output through a "
                       "link: remove it or choose another --out")


def make_dir(path, root=None) -> Path:
    """Make the folder ``path`` (and its missing parents). ``path`` must not
    be a link, nor any folder from ``root`` (an output folder ``path`` lies
    in, itself included) down to it: a link there would send the outputs
    elsewhere. Folders above ``root`` (or above ``path``) are the user's."""
    path = Path(path)
    if root is None:
        chain = [path]
    else:
        root = Path(root)
        rel = path.relative_to(root)  # a path outside root is a bug in the caller: let it raise
        chain = [root] + [root.joinpath(*rel.parts[:i]) for i in range(1, len(rel.parts) + 1)]
    chain[0].parent.mkdir(parents=True, exist_ok=True)
    for p in chain:
        with contextlib.suppress(FileExistsError):
            p.mkdir()  # never follows a link: an existing one (even dangling) is FileExistsError
        if p.is_symlink():
            raise _link_error(p)
        if not p.is_dir():
            raise OutputError(f"{p}: exists and is not a folder")
    return path


def _new_file_beside(path: Path) -> tuple[int, Path]:
    """A new, empty file in ``path``'s folder, made with O_EXCL (a link
    there, planted or not, makes it fail instead of being followed); its
    mode is what ``open(path, "w")`` would give (umask applied)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(path))


@contextlib.contextmanager
def atomic_path(path):
    """A temporary file name beside ``path`` for a writer that wants a name
    (h5py, Keras): renamed over ``path`` when the block ends without an
    error, removed otherwise."""
    path = Path(path)
    fd, tmp = _new_file_beside(path)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)  # replaces a link at ``path``, never writes through it
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_open(path, mode: str = "w", **kwargs):
    """``open(path, mode)`` for writing (``"w"`` or ``"wb"``; ``newline``,
    ``encoding`` as for open), through a new file renamed over ``path`` when
    the block ends without an error."""
    if mode not in ("w", "wb", "wt"):
        raise ValueError(f"atomic_open writes whole files: mode {mode!r}")
    path = Path(path)
    fd, tmp = _new_file_beside(path)
    try:
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path, text: str) -> Path:
    with atomic_open(path, "w") as f:
        f.write(text)
    return Path(path)


def write_bytes(path, data: bytes) -> Path:
    with atomic_open(path, "wb") as f:
        f.write(data)
    return Path(path)


def write_json(path, obj, indent=2, **kwargs) -> Path:
    """``obj`` as JSON with a final newline (``kwargs``: for json.dumps)."""
    return write_text(path, json.dumps(obj, indent=indent, **kwargs) + "\n")


def save_figure(fig, path, **kwargs) -> Path:
    """``fig.savefig(path, **kwargs)``, the format taken from the suffix."""
    path = Path(path)
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format=kwargs.pop("format", path.suffix.lstrip(".") or None), **kwargs)
    return path


def save_npz(path, compressed: bool = False, **arrays) -> Path:
    """``np.savez(path, **arrays)`` (or savez_compressed); the name is kept as given."""
    import numpy as np

    with atomic_open(path, "wb") as f:
        (np.savez_compressed if compressed else np.savez)(f, **arrays)
    return Path(path)


def save_npy(path, array) -> Path:
    import numpy as np

    with atomic_open(path, "wb") as f:
        np.save(f, array)
    return Path(path)


def copy_file(src, dst) -> Path:
    """A copy of ``src`` at ``dst`` (contents only, like shutil.copyfile)."""
    import shutil

    with open(src, "rb") as fin, atomic_open(dst, "wb") as fout:
        shutil.copyfileobj(fin, fout)
    return Path(dst)


def open_new(path, mode: str = "w"):
    """A file a process writes as it runs (a log someone may follow): any
    file or link at ``path`` is removed and a new file made in its place
    (O_EXCL: never through a link). The caller closes it."""
    path = Path(path)
    path.unlink(missing_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    return os.fdopen(os.open(path, flags, 0o666), mode)


def open_lock(path, mode: int = 0o644) -> int:
    """A lock file's descriptor (read-write, created if missing), never
    through a link: a link at ``path`` is refused (OutputError)."""
    path = Path(path)
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0),
                       mode)
    except OSError as e:
        if e.errno == errno.ELOOP or path.is_symlink():
            raise OutputError(f"{path}: the lock file is a link (to {os.readlink(path)}); fkhw opens no lock "
                              "through a link: remove it") from None
        raise


def check_no_links(folder, option: str = "--out") -> None:
    """A folder another program (hls4ml, a vendor tool) will write into
    holds no link: that program would follow it."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for top, dirs, files in os.walk(folder):
        for name in dirs + files:
            p = Path(top) / name
            if p.is_symlink():
                raise OutputError(f"{option} {folder}: holds the link {p} (to {os.readlink(p)}), which the files "
                                  "written there would follow; remove it or choose another folder")
