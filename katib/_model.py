"""A trial's model, saved where ``katib serve`` finds it: ``katib.save_model`` and
``katib.load_model``.

Each trial gets ``KATIB_ARTIFACT_DIR``, a folder of its own (``<trial dir>/artifacts``).
``save_model`` writes the model there in the file KServe's runtimes read, with a small
manifest (``katib-model.json``) naming the format:

- scikit-learn (or anything with ``predict``, pickled by joblib): ``model.joblib``, what
  KServe's sklearn server loads;
- PyTorch: a TorchScript module as ``model.pt`` (an ``nn.Module`` is scripted), or, for a
  module TorchScript cannot compile, its state dict (``model.pth``) and the function that
  builds it (``factory=``, pickled with cloudpickle: local serving only);
- ONNX: an ``onnx.ModelProto`` (or its bytes, ``format="onnx"``) as ``model.onnx``,
  served with onnxruntime when it is installed.

A trial that writes ``model.joblib``/``model.pkl``, ``model.pt`` or ``model.onnx`` into the
folder itself needs no manifest: the file's name says the format.

>>> import katib
>>> katib.save_model(classifier)                      # doctest: +SKIP  (inside a trial)
>>> katib.load_model("~/.katib/runs/default/exp/exp-abc123/artifacts")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import KatibError

ARTIFACT_DIR_ENV = "KATIB_ARTIFACT_DIR"
MANIFEST = "katib-model.json"
FILES = {"sklearn": "model.joblib", "torchscript": "model.pt", "pytorch": "model.pth", "onnx": "model.onnx"}
# What a trial may write without save_model, by file name (KServe's sklearn server's names).
_BY_NAME = {"model.joblib": "sklearn", "model.pkl": "sklearn", "model.pickle": "sklearn",
            "model.pt": "torchscript", "model.onnx": "onnx"}


@dataclass(frozen=True)
class SavedModel:
    """A saved model: its folder, format (``sklearn``, ``torchscript``, ``pytorch``, ``onnx``) and file."""

    path: Path
    format: str
    file: str

    @property
    def file_path(self) -> Path:
        return self.path / self.file


def save_model(model: Any, path: str | os.PathLike[str] | None = None, *, factory: Any = None,
               format: str | None = None) -> SavedModel:
    """Save ``model`` for ``katib serve`` into this trial's ``KATIB_ARTIFACT_DIR`` (or ``path``).

    ``factory``: for a PyTorch module TorchScript cannot compile, a function returning a
    fresh module of the same shape; the state dict is saved and the module rebuilt to serve.
    ``format`` forces one of ``sklearn``, ``torchscript``, ``pytorch``, ``onnx``."""
    folder = Path(path or os.environ.get(ARTIFACT_DIR_ENV) or "")
    if not str(folder) or str(folder) == ".":
        raise KatibError(f"save_model() needs a folder: inside a trial started by katib {ARTIFACT_DIR_ENV} names "
                         "one; elsewhere pass path=")
    folder = folder.expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    fmt = format or _format_of(model, factory)
    if fmt not in FILES:
        raise KatibError(f"format must be one of {', '.join(FILES)} (got {fmt!r})")
    target = folder / FILES[fmt]
    if fmt == "sklearn":
        import joblib

        joblib.dump(model, target)
    elif fmt == "torchscript":
        import torch

        with _quiet():
            torch.jit.save(_scripted(model), str(target))
    elif fmt == "pytorch":
        import cloudpickle
        import torch

        if factory is None:
            raise KatibError("a PyTorch state dict is served by rebuilding its module: pass factory= (a function "
                             "that returns the module)")
        torch.save(model if isinstance(model, dict) else model.state_dict(), target)
        (folder / "factory.pickle").write_bytes(cloudpickle.dumps(factory))
    else:
        data = model if isinstance(model, (bytes, bytearray)) else model.SerializeToString()
        target.write_bytes(bytes(data))
    (folder / MANIFEST).write_text(json.dumps({"format": fmt, "file": target.name}) + "\n")
    return SavedModel(folder, fmt, target.name)


def _is_torch_module(model: Any) -> bool:
    """Whether ``model`` is a ``torch.nn.Module`` (a user's own subclass included, whose class
    lives in ``__main__`` or their module), without importing torch where it is not loaded."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(model, torch.nn.Module)


def _format_of(model: Any, factory: Any) -> str:
    module = type(model).__module__ or ""
    if module.startswith("torch") or _is_torch_module(model) or (factory is not None and isinstance(model, dict)):
        import torch

        if isinstance(model, torch.jit.ScriptModule):
            return "torchscript"
        if factory is not None:
            return "pytorch"
        if isinstance(model, torch.nn.Module):
            return "torchscript"
    if module.startswith("onnx") or type(model).__name__ == "ModelProto":
        return "onnx"
    if hasattr(model, "predict"):
        return "sklearn"
    raise KatibError(f"save_model() does not know how to save a {type(model).__name__}: it saves scikit-learn "
                     "estimators (anything with predict), PyTorch modules and ONNX models; or write the file into "
                     f"{ARTIFACT_DIR_ENV} yourself")


def _scripted(model: Any) -> Any:
    import torch

    if isinstance(model, torch.jit.ScriptModule):
        return model
    try:
        with _quiet():
            return torch.jit.script(model.eval())
    except Exception as exc:
        raise KatibError(f"TorchScript cannot compile this {type(model).__name__} ({type(exc).__name__}): save its "
                         "state dict instead with save_model(module, factory=<a function that builds it>)") from None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """TorchScript warns that it is deprecated; it is still what Triton's PyTorch backend reads."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="torch")
        yield


def find_model(path: str | os.PathLike[str]) -> SavedModel:
    """The model saved in ``path``: by its manifest, or by the one model file there.

    The folder's trial wrote what is in it: the folder itself must be a folder, not a
    symbolic link, and the model is one of the plain names below in it (``FILES``,
    ``_BY_NAME``), never a path the manifest names elsewhere."""
    with _opened_folder(path) as (folder, dir_fd):
        return _find(folder, dir_fd)


#: The most of a manifest read (it names a format and a file: a few dozen bytes).
_MANIFEST_MAX = 64 * 1024
_NO_FOLLOW = os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


@contextlib.contextmanager
def _opened_folder(path: str | os.PathLike[str]) -> Iterator[tuple[Path, int]]:
    """``path`` opened as a folder, refused if it is a symbolic link (one the trial
    that owns it planted could lead to another tenant's folder). What is read from it
    is read through this descriptor, so swapping the folder afterwards changes nothing."""
    folder = Path(path).expanduser()
    try:
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | _NO_FOLLOW)
    except OSError as exc:
        if os.path.islink(folder):
            raise KatibError(f"{folder} is a symbolic link, not a folder: a model is read from the trial's own "
                             "artifacts folder, never through a link") from None
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            raise KatibError(f"{folder} holds no model: a trial saves one with katib.save_model(model) or writes "
                             f"one of {', '.join(_BY_NAME)} into {ARTIFACT_DIR_ENV}") from None
        raise KatibError(f"cannot read the model folder {folder}: {exc.strerror or exc}") from None
    try:
        yield folder, dir_fd
    finally:
        os.close(dir_fd)


def _open_file(folder: Path, dir_fd: int, name: str) -> int:
    """The plain file ``name`` in the folder opened as ``dir_fd``: never through a link
    (``O_NOFOLLOW``), never a FIFO or device (opened without blocking, then refused)."""
    if name in ("", ".", "..") or os.path.basename(name) != name or "\0" in name:
        raise KatibError(f"{folder}: {name!r} is not a plain file name in that folder")
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | _NO_FOLLOW, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise KatibError(f"{folder / name} is a symbolic link: a model file is read only as a plain file of "
                             "the trial's artifacts folder") from None
        raise KatibError(f"cannot read {folder / name}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise KatibError(f"{folder / name} is not a plain file: a model file is read only as a plain file of the "
                         "trial's artifacts folder")
    os.set_blocking(fd, True)
    return fd


def _read(folder: Path, dir_fd: int, name: str, limit: int | None = None) -> bytes:
    fd = _open_file(folder, dir_fd, name)
    with os.fdopen(fd, "rb") as f:
        data = f.read() if limit is None else f.read(limit + 1)
    if limit is not None and len(data) > limit:
        raise KatibError(f"{folder / name} is larger than {limit} bytes: not a manifest save_model wrote")
    return data


def _names(fmt: str) -> set[str]:
    """The file names a model of format ``fmt`` may be saved as."""
    return {FILES[fmt], *(name for name, f in _BY_NAME.items() if f == fmt)}


def _find(folder: Path, dir_fd: int) -> SavedModel:
    try:
        os.stat(MANIFEST, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        manifest = None
    else:  # there: read as a plain file (a link or a FIFO in its place is refused, not passed over)
        manifest = _read(folder, dir_fd, MANIFEST, _MANIFEST_MAX)
    if manifest is not None:
        try:
            info = json.loads(manifest)
            fmt, name = info["format"], info["file"]
        except (ValueError, TypeError, KeyError):
            raise KatibError(f"{folder / MANIFEST} is not a manifest save_model wrote: it names a format and a "
                             "file") from None
        if not isinstance(fmt, str) or fmt not in FILES:
            raise KatibError(f"{folder / MANIFEST}: format must be one of {', '.join(FILES)} (got {fmt!r})")
        if not isinstance(name, str) or name not in _names(fmt):
            raise KatibError(f"{folder / MANIFEST}: file must be one of {', '.join(sorted(_names(fmt)))}, a plain "
                             f"name in the artifacts folder, for a {fmt} model (got {name!r})")
        return SavedModel(folder, fmt, name)
    found = sorted(name for name in os.listdir(dir_fd) if name in _BY_NAME)
    if len(found) != 1:
        what = f"{len(found)} model files ({', '.join(found)})" if found else "no model"
        raise KatibError(f"{folder} holds {what}: a trial saves one with katib.save_model(model) or writes "
                         f"one of {', '.join(_BY_NAME)} into {ARTIFACT_DIR_ENV}")
    return SavedModel(folder, _BY_NAME[found[0]], found[0])


#: Formats whose loading unpickles what the trial wrote: it runs whatever code that names.
PICKLED = ("sklearn", "pytorch")
#: What each format's loading lets the file do, as the refusal says it. A TorchScript model
#: is a program: ``torch.from_file`` in its ``forward`` reads, and with ``shared=True``
#: writes, any file the loader may open. An ONNX model may name external data files by path.
_RUNS = {"sklearn": "is unpickled, which runs whatever code it names", "pytorch": "is rebuilt from a pickle, which "
         "runs whatever code it names", "torchscript": "is a program: its forward can read and write any file you can "
         "(torch.from_file)", "onnx": "may name external data files, read with your rights"}


def shared_store(store: Any) -> bool:
    """Whether ``store`` is a ``katib server --auth`` one (it has users): its trials' files
    are its tenants', and a pickle of theirs is not to be loaded by the operator unasked."""
    from .store import UserStore

    return bool(UserStore(store).list_users())


def load_model(path: str | os.PathLike[str], allow_pickle: bool = True) -> Any:
    """The model saved in ``path`` (a trial's artifacts folder), as its library loads it: a
    scikit-learn estimator, a TorchScript or rebuilt PyTorch module (in eval mode), or an
    onnxruntime ``InferenceSession``. ``allow_pickle=False`` (a tenant's model: a ``katib
    server --auth`` store's) refuses every format: each lets the file act as the loader
    (``_RUNS``), a pickle by its code, TorchScript by its program, ONNX by its data paths."""
    with _opened_folder(path) as (folder, dir_fd):
        saved = _find(folder, dir_fd)
        file = saved.file_path
        if not allow_pickle:
            raise KatibError(f"{file} is a {saved.format} model, which {_RUNS[saved.format]}, as you, and this store's "
                             "trials are its tenants' (katib server --auth). Pass --trust-model-code "
                             "(trust_model_code=True) if you trust every editor of the experiment's namespace")
        # Each file is read through a descriptor opened in the folder's (no link followed,
        # a plain file): never by a path name, which a link swapped in later could redirect.
        if saved.format == "onnx":
            try:
                import onnxruntime
            except ImportError:
                raise KatibError(f"{file} is an ONNX model: serving it needs onnxruntime (pip install "
                                 "onnxruntime)") from None
            return onnxruntime.InferenceSession(_read(folder, dir_fd, saved.file), providers=["CPUExecutionProvider"])
        factory = _read(folder, dir_fd, "factory.pickle") if saved.format == "pytorch" else b""
        with os.fdopen(_open_file(folder, dir_fd, saved.file), "rb") as opened:
            if saved.format == "sklearn":
                import joblib

                return joblib.load(opened)
            import torch

            if saved.format == "torchscript":
                with _quiet():
                    return torch.jit.load(opened, map_location="cpu").eval()
            import cloudpickle

            module = cloudpickle.loads(factory)()
            module.load_state_dict(torch.load(opened, map_location="cpu", weights_only=True))
            return module.eval()


def predictor(saved: SavedModel, model: Any) -> Any:
    """``inputs (numpy) -> outputs (numpy)`` for a loaded model, as its format predicts."""
    import numpy as np

    if saved.format == "sklearn":
        proba = os.environ.get("PREDICT_PROBA", "false").lower() == "true" and hasattr(model, "predict_proba")
        return model.predict_proba if proba else model.predict  # KServe's sklearn server's switch
    if saved.format == "onnx":
        first = model.get_inputs()[0]
        width = {"tensor(float)": np.float32, "tensor(double)": np.float64}.get(first.type)

        def run_onnx(x: Any) -> Any:
            x = np.asarray(x)
            if width is not None and np.issubdtype(x.dtype, np.floating):
                x = x.astype(width)  # FP64 JSON numbers for a float32 graph, as for PyTorch
            return model.run(None, {first.name: x})[0]

        return run_onnx
    torch = sys.modules.get("torch") or __import__("torch")

    def run(x: Any) -> Any:
        tensor = torch.from_numpy(np.ascontiguousarray(x))
        if tensor.is_floating_point():
            tensor = tensor.float()
        with torch.no_grad():
            out = model(tensor)
        return out.numpy() if hasattr(out, "numpy") else np.asarray(out)

    return run
