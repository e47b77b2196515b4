"""KServe's side of ``katib serve``: the trial's model as a ``kserve.Model``, and the data
plane that hands it binary requests undecoded. This module imports kserve: ``katib.serve``
imports it only once ``_kserve()`` has (kserve parses ``sys.argv`` as it loads).

Every request's work (decoding binary tensors, predicting, encoding the answer) runs in the
model's own worker thread, one request at a time: KServe runs a synchronous ``predict`` and
its decoding on the event loop, where a 20 MB request held every other one, and
``/v2/health/live`` waited 10 s.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import kserve
from kserve.constants.constants import INFERENCE_CONTENT_LENGTH_HEADER
from kserve.errors import InferenceError, InvalidInput
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.infer_type import InferRequest, InferResponse
from kserve.protocol.rest.v2_datamodels import InferenceResponse
from kserve.utils.numpy_codec import from_np_dtype, to_np_dtype
from kserve.utils.utils import get_predict_input, get_predict_response

from ._model import find_model, load_model, predictor
from .errors import KatibError


class Undecoded(InferRequest):  # type: ignore[misc]
    """A binary-tensor request (a JSON header, then the tensors' bytes), decoded by the model
    in its worker thread. A header that does not describe the bytes (a shape larger than the
    data, a length past the body, no ``inputs``) is the client's error: 400."""

    def __init__(self, body: bytes, header_length: int, model_name: str) -> None:
        super().__init__(model_name=model_name, infer_inputs=[])
        self.body, self.header_length = body, header_length

    def decoded(self) -> InferRequest:
        try:
            return InferRequest.from_bytes(self.body, self.header_length, self.model_name)
        except InvalidInput:
            raise
        except Exception as exc:  # KServe's decoder raises what numpy and the JSON header give it
            raise InvalidInput(f"the binary tensors do not match their header ({INFERENCE_CONTENT_LENGTH_HEADER}: "
                               f"{self.header_length}): {type(exc).__name__}: {exc}") from None


class Encoded(InferResponse):  # type: ignore[misc]
    """An answer encoded in the worker thread: what KServe does with it on the event loop
    (``to_rest``, then FastAPI's ``jsonable_encoder``: a second a million numbers) is left
    with handing the bytes on. Without binary outputs they are the JSON FastAPI would have
    written (``_JsonByDefault`` labels them); its outputs are the response's own."""

    def __init__(self, response: InferResponse) -> None:
        self.__dict__.update(response.__dict__)
        rest, header_length = response.to_rest()
        if isinstance(rest, dict):
            rest = InferenceResponse.model_validate(rest).model_dump_json().encode()
        self.rest = rest, header_length

    def to_rest(self) -> tuple[bytes, int | None]:
        return self.rest


class OneModelDataPlane(DataPlane):  # type: ignore[misc]
    """KServe's data plane, with binary requests left for the model to decode (``Undecoded``),
    and ``/v2/health/ready`` ready only while every model it serves is (KServe's answers
    ready whatever its models are)."""

    def decode_inference_request(self, body: Any, headers: dict[str, str], model_name: str) -> Any:
        if not isinstance(body, bytes):
            return super().decode_inference_request(body, headers, model_name)
        length = headers.get(INFERENCE_CONTENT_LENGTH_HEADER)
        if length is None:
            raise InvalidInput(f"a binary inference request needs the {INFERENCE_CONTENT_LENGTH_HEADER} header, or a "
                               "JSON body with content-type: application/json")
        if not length.isdigit() or int(length) > len(body):
            raise InvalidInput(f"{INFERENCE_CONTENT_LENGTH_HEADER} must be the number of bytes of the JSON header, at "
                               f"most the body's {len(body)} (got {length[:40]!r})")
        return Undecoded(body, int(length), model_name)

    async def ready(self) -> bool:
        models = self.model_registry.get_models()
        return bool(models) and all([await self.model_registry.is_model_ready(name) for name in models])


def checked(payload: Any) -> None:
    """Refuse, naming the field, a request whose parts KServe would ignore or copy: a v2
    request with no input, or with several where the model takes one tensor (only a table,
    ``parameters.content_type: pd``, has one input a column), or that asks for an output
    more than once (each copy is the whole output again: 5,000 copies of one name in a
    180 KB request were a 50 MB answer); a v1 request without ``instances``."""
    if isinstance(payload, InferRequest):
        inputs = payload.inputs or []
        if not inputs:
            raise InvalidInput("inputs: a request needs one input tensor (got none)")
        for i, tensor in enumerate(inputs):
            if to_np_dtype(tensor.datatype) is None:
                raise InvalidInput(f"inputs[{i}].datatype: {str(tensor.datatype)[:40]!r} is not a tensor type of the "
                                   "protocol (BOOL, UINT8…UINT64, INT8…INT64, FP16, FP32, FP64, BYTES)")
        content_type = (payload.parameters or {}).get("content_type")
        content_type = getattr(content_type, "string_param", content_type)
        if len(inputs) > 1 and content_type != "pd":
            raise InvalidInput(f"inputs: the model takes one tensor (got {len(inputs)}); several are the columns "
                               "of one table only with parameters.content_type \"pd\"")
        asked = Counter(getattr(o, "name", None) for o in payload.request_outputs or [])  # one pass: 850,000 fit a body
        again = next((name for name, times in asked.items() if times > 1), None)
        if again is not None:
            raise InvalidInput(f"outputs: each output may be asked for once ({str(again)[:80]!r} is asked for "
                               f"{asked[again]} times)")
    elif isinstance(payload, dict) and "instances" not in payload and "inputs" not in payload:
        raise InvalidInput(f"instances: a v1 request is {{\"instances\": [...]}} (got the keys "
                           f"{', '.join(map(repr, list(payload)[:10])) or 'none'})")


class TrialModel(kserve.Model):  # type: ignore[misc]
    """The model saved in ``path``, loaded (``load_model``), answering in its worker thread."""

    def __init__(self, name: str, path: Path, allow_pickle: bool = True) -> None:
        super().__init__(name)
        self.path, self.allow_pickle = path, allow_pickle
        self.ready = False
        self._worker = ThreadPoolExecutor(1, thread_name_prefix=f"katib-serve-{name}")

    def load(self) -> bool:
        saved = find_model(self.path)
        self.format = saved.format
        try:
            self._model = load_model(self.path, self.allow_pickle)
        except KatibError:
            raise
        except Exception as exc:  # a file its library cannot read (truncated, another version's)
            raise KatibError(f"the {saved.format} model in {self.path} does not load: {type(exc).__name__}: "
                             f"{str(exc)[:300]}") from None
        self._predict = predictor(saved, self._model)
        self.ready = True
        return self.ready

    def get_input_types(self) -> list[dict[str, Any]]:  # /v2/models/{name}: what a scikit-learn model takes
        features = getattr(self._model, "n_features_in_", None)
        return [{"name": "input-0", "datatype": "FP32", "shape": [-1, int(features)]}] if features else []

    def get_output_types(self) -> list[dict[str, Any]]:
        classes = getattr(self._model, "classes_", None)
        return [{"name": "output-0", "datatype": from_np_dtype(classes.dtype), "shape": [-1]}] \
            if classes is not None else []

    async def predict(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._worker, self.answer, payload)

    def answer(self, payload: Any) -> Any:
        """``predict``'s work, in the worker thread: the response to ``payload`` (a v2
        ``InferRequest``, decoded or not, or a v1 body)."""
        if isinstance(payload, Undecoded):
            payload = payload.decoded()
        checked(payload)
        try:
            instances = get_predict_input(payload)
            result = self._predict(instances)
        except InvalidInput:
            raise
        except Exception as exc:  # the request's data does not fit the model: a client error
            raise InvalidInput(f"the {self.format} model cannot take this input: {type(exc).__name__}: {exc}") from None
        if getattr(getattr(result, "dtype", None), "kind", "") == "U":
            # Text predictions (a classifier's string labels) are BYTES; KServe encodes them
            # from an object array, and failed on numpy's fixed-width text with a bare 500.
            result = result.astype(object)
        try:
            response = get_predict_response(payload, result, self.name)
        except Exception as exc:  # what the model answered has no tensor form: the model's fault
            raise InferenceError(f"the {self.format} model's answer ({type(result).__name__}"
                                 f"{f' of {result.dtype}' if hasattr(result, 'dtype') else ''}) cannot be sent as a "
                                 f"tensor: {type(exc).__name__}: {exc}") from None
        return Encoded(response) if isinstance(response, InferResponse) else response

    def stop(self) -> None:
        super().stop()
        self._worker.shutdown(wait=False, cancel_futures=True)
