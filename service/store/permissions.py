"""The data dir is private to the user taskhook runs as: the dir 0700, the database files 0600.

The database holds callback bodies, API key hashes and webhook secrets, and SQLite creates its
files 0644 less the umask: readable by every local user. SQLite gives ``-wal`` and ``-shm`` the
mode of the main file, whatever the umask, so creating that one 0600 before SQLite opens it is
enough. Modes are set with ``chmod``, not left to ``mkdir``/``open`` and the umask.

What an earlier version left behind (a 0755 dir, 0644 files) is tightened when it is ours. A
directory someone else owns — a shared volume ``TASKHOOK_DATA_DIR`` points at — keeps its mode:
it is theirs to set, and the files taskhook makes inside it are private all the same.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from service.logs import get_logger

DIR_MODE = 0o700
FILE_MODE = 0o600
#: the files SQLite keeps beside a database (WAL mode; a rollback journal if it ever falls back)
_SIDE_FILES = ("-wal", "-shm", "-journal")

log = get_logger("taskhook.store")


def create_private_dir(path: Path) -> bool:
    """Make ``path`` (and missing parents) if it does not exist, the last one 0700; True if it
    did not exist. Says nothing: settings call it before logging is configured."""
    if path.is_dir():
        return False
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    path.chmod(DIR_MODE)
    return True


def secure_data_dir(path: Path) -> None:
    """``create_private_dir``, and an existing dir of ours made 0700 if it is not."""
    if create_private_dir(path):
        return
    info = path.stat()
    mode = stat.S_IMODE(info.st_mode)
    if mode == DIR_MODE:
        return
    if info.st_uid != os.geteuid():
        log.warning("storage.data_dir_shared", path=str(path), mode=oct(mode), owner=info.st_uid)
        return
    if _tighten(path, DIR_MODE):
        log.info("storage.data_dir_tightened", path=str(path), was=oct(mode))


def create_private_database(path: Path) -> None:
    """Create the database file 0600 if it is missing (SQLite takes an empty file as an empty
    database), and tighten it and its side files if they exist with looser modes."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        pass
    else:
        try:
            os.fchmod(fd, FILE_MODE)
        finally:
            os.close(fd)
    for name in (path.name, *(path.name + suffix for suffix in _SIDE_FILES)):
        file = path.with_name(name)
        try:
            info = file.stat()
        except FileNotFoundError:
            continue
        mode = stat.S_IMODE(info.st_mode)
        if mode != FILE_MODE and info.st_uid == os.geteuid() and _tighten(file, FILE_MODE):
            log.info("storage.file_tightened", path=str(file), was=oct(mode))


def _tighten(path: Path, mode: int) -> bool:
    try:
        path.chmod(mode)
    except OSError as exc:  # a read-only mount, say: the service still runs
        log.warning("storage.chmod_failed", path=str(path), error=str(exc))
        return False
    return True
