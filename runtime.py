"""runtime.py: what the command lines share so that a run stops, fails and resumes cleanly.

  STOP           one interruption flag for the whole program: the first Ctrl-C (or
                 SIGTERM) asks the current unit of work (a step, a training chunk, an
                 evaluation) to finish and the program to save and stop; a second stops at once
  FolderLock     one writer per folder: a second run on the same folder is refused, or
                 waits, and a lock whose process is gone is taken over with a warning
  atomic_write   write to a temporary file, then rename; on any failure, no temporary file
                 is left and the error names the file
  read_json      read a file the program wrote earlier, naming it if it is damaged
  ArgumentParser argparse with one-line errors
  progress_bar   a tqdm bar on stderr that leaves no trace, or none

None of this changes a result; it only decides what happens when something goes wrong. It
is its own file because compare_methods.py, train_tiny.py and bench.py all need it, and a
reader of the methods never does.
"""
import argparse
import json
import os
import shlex
import shutil
import signal
import sys
import time

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; runs are then not protected from each other
    fcntl = None

MAX_SEED = 2**31 - 1   # well inside torch's range, with room for the offsets added to a seed


class UserError(ValueError):
    """A problem the user can fix (bad argument, folder in use): one line, exit status 2."""


class FileProblem(Exception):
    """A file that cannot be read or written (damaged, disk full): one line, exit status 1."""


class RunFailed(Exception):
    """A run or a worker process that failed (a worker killed, an error in one): one line,
    or the worker's traceback; exit status 1."""


class Interrupted(Exception):
    """Raised by a unit of work that stopped on request after saving its progress."""


# ---------------------------------------------------------------- interruption

class _Stop:
    """The interruption flag. `with STOP:` installs the handlers (nesting is fine);
    work checks `STOP.requested` between units."""

    def __init__(self):
        self.requested, self._depth, self._saved = False, 0, {}

    def __enter__(self):
        if self._depth == 0:
            self.requested = False
            self._saved = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        self._depth += 1
        return self

    def _handle(self, signum, frame):
        if self.requested:  # the second Ctrl-C stops at once
            raise KeyboardInterrupt
        self.requested = True
        print("\nstopping after this unit of work (Ctrl-C again to stop at once) ...", file=sys.stderr)

    def __exit__(self, *exc):
        self._depth -= 1
        if self._depth == 0:
            for s, h in self._saved.items():
                signal.signal(s, h)
            self.requested = False   # a later run in the same process starts afresh


STOP = _Stop()


def resume_command(script, argv):
    """The exact command that continues a stopped run, quoted for a POSIX shell."""
    args = [a for a in argv if a != "--resume"]
    return shlex.join(["python", script, *args, "--resume"])


# ---------------------------------------------------------------- locks

def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


class FolderLock:
    """An exclusive lock on `folder` (a file `name` inside it, holding the owner's PID).

    wait=False: if another live process holds it, raise UserError naming the folder and
    that PID. wait=True: wait for it, saying so once. A lock file whose PID is gone (the
    owner was killed) is taken over with a warning."""

    def __init__(self, folder, name=".lock", wait=False, purpose="a run"):
        self.path, self.folder, self.wait, self.purpose = os.path.join(folder, name), folder, wait, purpose
        self.f = None

    def __enter__(self):
        if fcntl is None:
            return self
        os.makedirs(self.folder, exist_ok=True)
        self.f = open(self.path, "a+")
        said = False
        while True:
            try:
                fcntl.flock(self.f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                owner = self._owner()
                if not self.wait or owner == os.getpid() or STOP.requested:
                    self.f.close()
                    if STOP.requested:
                        raise Interrupted(f"stopped while waiting for {self.folder}") from None
                    raise UserError(f"{self.folder} is in use by process {owner} ({self.purpose}); "
                                    f"wait for it to finish, or choose another folder") from None
                if not said:
                    print(f"waiting for process {owner}, which holds {self.folder} ({self.purpose}) ...",
                          file=sys.stderr)
                    said = True
                time.sleep(0.2)
        owner = self._owner()
        if owner is not None and owner != os.getpid() and not _pid_alive(owner):
            print(f"warning: taking over the lock on {self.folder} left by process {owner}, which is gone",
                  file=sys.stderr)
        self.f.seek(0)
        self.f.truncate()
        self.f.write(str(os.getpid()))
        self.f.flush()
        return self

    def _owner(self):
        try:
            with open(self.path) as f:
                text = f.read().strip()
            return int(text) if text else None
        except (OSError, ValueError):
            return None

    def __exit__(self, *exc):
        if self.f is not None:
            self.f.seek(0)
            self.f.truncate()  # an empty lock file is a released one
            fcntl.flock(self.f, fcntl.LOCK_UN)
            self.f.close()
            self.f = None


# ---------------------------------------------------------------- files

def atomic_write(path, write, mode="w"):
    """Call write(f) on a temporary file beside `path`, then rename it to `path`. On any
    failure (a full disk, Ctrl-C) the temporary file is removed; an OSError becomes a
    FileProblem that names `path`."""
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, mode) as f:
            write(f)
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.remove(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise FileProblem(f"could not write {path}: {e.strerror or e}") from None
        raise


def write_json(path, obj):
    atomic_write(path, lambda f: json.dump(obj, f, indent=1))


def read_json(path, fix):
    """A JSON object the program wrote earlier; a damaged file is one FileProblem naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        why = e.strerror if isinstance(e, OSError) \
            else "not valid JSON" if isinstance(e, json.JSONDecodeError) else "not UTF-8 text"
        raise FileProblem(f"{path} is unreadable ({why}); {fix}") from None
    if not isinstance(obj, dict):
        raise FileProblem(f"{path} does not hold a JSON object; {fix}")
    return obj


def remove_stale_temporaries(folder):
    """Delete `*.tmp<pid>` files in `folder` whose writer is gone (killed mid-write)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        stem, _, pid = name.rpartition(".tmp")
        if stem and pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            try:
                os.remove(os.path.join(folder, name))
            except OSError:
                pass


def check_folder(folder, need_mb=50):
    """An output folder: created if missing, writable, with at least need_mb MB free."""
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise UserError(f"{folder!r} is a file; an output folder is expected there")
    try:
        os.makedirs(folder, exist_ok=True)
        probe = os.path.join(folder, f".write-test-{os.getpid()}")
        open(probe, "w").close()
        os.remove(probe)
    except OSError as e:
        raise UserError(f"output folder {folder!r} is not writable ({e.strerror})") from None
    free_mb = shutil.disk_usage(folder).free / 2**20
    if free_mb < need_mb:
        raise UserError(f"only {free_mb:.0f} MB free in {folder!r}; this needs about {need_mb} MB")


def check_file(path, need_mb=1):
    """An output file: not a folder, in a writable folder with room for it."""
    if os.path.isdir(path) or not os.path.basename(path):   # '' or 'dir/': no file name
        raise UserError(f"{path!r} is a folder; give a file name")
    check_folder(os.path.dirname(os.path.abspath(path)), need_mb)


# ---------------------------------------------------------------- command lines

class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are one line (no usage block), exit status 2."""

    def error(self, message):
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def check_range(name, value, lo, hi):
    if value is not None and not lo <= value <= hi:
        raise UserError(f"{name} must lie between {lo:,} and {hi:,}, got {value:,}")


def progress_bar(total, desc, enabled):
    """A progress bar on stderr that disappears when done; a silent one when not enabled."""
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, disable=not enabled, leave=False, dynamic_ncols=True, file=sys.stderr)
