"""Writing files atomically: the one place in pyx_gru that writes a file.

Saved cells, models and optimisers, checkpoints, the results and journal of
``compare``, a ``History``'s JSON, the benchmark's results and the data
caches all go through :func:`write_atomically`: the data goes to a new
temporary file beside the target, is flushed to disk, and is renamed over
the target (``os.replace``, atomic on POSIX). A reader sees the old file or
the whole new one, never a part, and a write that fails (a full disk, an
exception in the writer, Ctrl-C) leaves the old file as it was and no
temporary file behind.
"""
import os
import pathlib
import secrets

__all__ = ["write_atomically", "write_text"]


def write_atomically(path, write):
    """Call ``write(f)`` on a new temporary file beside ``path``, then rename
    it to ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write; its directory must exist.
    write : callable
        Called once with the temporary file, open for writing bytes.

    Raises
    ------
    OSError
        When the file cannot be created (naming ``path``, not the hidden
        temporary file), or whatever ``write`` raises; in every case the
        temporary file is removed and ``path`` is untouched.
    """
    path = pathlib.Path(os.fspath(path))
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    # O_EXCL: never follow or reuse an existing name; mode 0o666 less the umask,
    # as for any new file.
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        # name the file asked for, not the hidden temporary one
        raise type(exc)(exc.errno, f"cannot write {str(path)!r}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def write_text(path, text):
    """Write ``text`` to ``path`` as UTF-8, atomically (:func:`write_atomically`)."""
    data = text.encode("utf-8")
    write_atomically(path, lambda f: f.write(data))
